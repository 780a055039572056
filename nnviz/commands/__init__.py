"""Subcommands of the ``nnviz`` command, one module each, each with ``register(subparsers)``.

Modules listed here that are not installed are skipped, so that each method can add its own
module without touching the others."""
MODULES = ("info", "weights", "attribution", "optimize", "style", "demo", "batch")
