"""The ``xling-probe`` command line: :func:`main` and one module per sub-command.

Each sub-command module defines ``register(subparsers)``; :mod:`.main` collects every module of this
package that has one, so adding a command never touches the others. :mod:`.options` holds the options
and argument types the commands share.
"""

from .main import main

__all__ = ["main"]
