"""Which ``dask.distributed`` client a call runs on: the one passed, the active one, or none.

``client=None`` (the default of :func:`~xling_probe.measures.engine.similarity` and of a store-backed
:func:`~xling_probe.extraction.extract.extract`) uses the client a user has made active, as dask
itself does after ``Client(...)``; ``client=False`` keeps the work in this process. Inside a Dask task
there is never an automatic client (a task that scores one block must not fan out again), and
nothing here imports ``distributed``: without it, or without a client, the answer is ``None``.
"""

from __future__ import annotations

import sys
from typing import Any

from .errors import XlingProbeError


def resolve_client(client: Any) -> Any:
    """The client to run on (``None``: this process). ``client`` is a client, ``None`` (the active one) or ``False``."""
    if client is False:
        return None
    if client is True:
        raise XlingProbeError("client= takes a dask.distributed Client, None (use the active one) or False (none)")
    if client is not None:
        if not hasattr(client, "submit") or not hasattr(client, "gather"):
            raise XlingProbeError(f"client= must be a dask.distributed Client, got {type(client).__name__}")
        return client
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        distributed.get_worker()
        return None  # inside a task
    except (ValueError, AttributeError):
        pass
    try:
        active = distributed.default_client()
    except (ValueError, AttributeError):
        return None
    return None if getattr(active, "status", "running") in ("closed", "closing") else active
