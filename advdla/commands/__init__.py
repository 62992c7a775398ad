"""One module per ``advdla`` subcommand; each defines ``register(subparsers)``. See :mod:`advdla.cli`."""
