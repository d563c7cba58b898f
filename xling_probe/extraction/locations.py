"""Where an activation store lives: a local folder, or a URL that fsspec reads (object storage).

A store on a laptop or a cluster's shared file system is a folder; on a cloud or Kubernetes cluster
it is usually a bucket (``s3://bucket/run.zarr``, ``gs://...``, ``az://...``, or ``memory://`` in
tests). zarr reads and writes both; this module gives the store's own small files (the piece
markers) and its checks the same two-way form:

- a marker is written atomically: on a folder through a temporary file and ``os.replace``; on object
  storage by a single PUT, which stores find visible either whole or not at all;
- the free-space check runs on folders; object storage has no fixed size, so it is skipped there.

The fsspec backend for a URL scheme (``s3fs``, ``gcsfs``, ``adlfs``) is the user's to install;
a missing one is named in the error.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..errors import ExtractionError
from .store import atomic_write_bytes


def is_url(where: Any) -> bool:
    """Whether ``where`` names object storage (``scheme://...``) rather than a local folder."""
    return isinstance(where, str) and "://" in where and not where.startswith("file://")


class Location:
    """A local folder or an fsspec URL, with the few file operations the store needs."""

    def __init__(self, where: str | Path):
        self.remote = is_url(where)
        if self.remote:
            try:
                import fsspec

                self.fs, self.root = fsspec.core.url_to_fs(str(where))
            except (ImportError, ValueError) as exc:
                scheme = str(where).split("://", 1)[0]
                raise ExtractionError(
                    f"cannot open {where}: no file system for {scheme}:// ({exc}); install its fsspec backend "
                    "(s3fs for s3://, gcsfs for gs://, adlfs for az://)") from None
            self.url = str(where).rstrip("/")
            self.folder: Path | None = None
        else:
            text = str(where)
            self.folder = Path(text[len("file://"):] if text.startswith("file://") else text)
            self.url = str(self.folder)
            self.fs = None
            self.root = str(self.folder)

    # -- what zarr opens
    @property
    def target(self) -> str:
        return self.url

    @property
    def shown(self) -> str | Path:
        """How the store is named in messages and in ``acts.meta`` (a Path for folders)."""
        return self.folder if self.folder is not None else self.url

    def _join(self, rel: str) -> str:
        return f"{self.root.rstrip('/')}/{rel}"

    # -- small files
    def exists(self, rel: str) -> bool:
        if self.folder is not None:
            return (self.folder / rel).is_file()
        return bool(self.fs.exists(self._join(rel)))

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            if self.folder is not None:
                return (self.folder / rel).read_bytes()
            return self.fs.cat_file(self._join(rel))
        except (OSError, FileNotFoundError):
            return None

    def write_atomic(self, rel: str, data: bytes) -> None:
        if self.folder is not None:
            atomic_write_bytes(self.folder / rel, data)
        else:
            self.fs.pipe_file(self._join(rel), data)

    def remove(self, rel: str) -> None:
        try:
            if self.folder is not None:
                (self.folder / rel).unlink()
            else:
                self.fs.rm_file(self._join(rel))
        except (OSError, FileNotFoundError):
            pass

    def holds_other_files(self) -> bool:
        """Whether the location exists with content that is not a store (never overwritten)."""
        if self.folder is not None:
            return self.folder.exists() and any(self.folder.iterdir())
        try:
            return bool(self.fs.exists(self.root) and self.fs.ls(self.root))
        except (OSError, FileNotFoundError):
            return False

    def free_bytes(self) -> int | None:
        """Free space where a folder would be written; ``None`` for object storage (unbounded)."""
        if self.folder is None:
            return None
        parent = next(p for p in [self.folder, *self.folder.parents] if p.exists())
        return shutil.disk_usage(parent).free

    def free_where(self) -> str:
        if self.folder is None:
            return self.url
        return str(next(p for p in [self.folder, *self.folder.parents] if p.exists()))

    def __str__(self) -> str:
        return self.url
