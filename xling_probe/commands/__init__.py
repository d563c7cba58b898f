"""Sub-commands of ``xling-probe``: one module each, with ``register(subparsers)``."""
