"""The ``medlens`` command. Each sub-command is one module here exposing ``add_parser`` (cheap:
argparse only) and ``run(args)`` (imports what it needs)."""
