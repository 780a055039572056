"""The ``nnviz`` command: one subcommand per method. Exit codes: 0 success, 1 a failed run,
2 a usage error. Bad input is one clear line on stderr, not a traceback."""
import argparse
import importlib
import sys

from . import __version__
from .commands import MODULES
from .io import InputError


def build_parser():
    parser = argparse.ArgumentParser(
        prog="nnviz", description="The classic visualizations of convolutional networks, on "
        "VGG16 and VGG19, every gradient written by hand.",
        epilog="Run 'nnviz COMMAND --help' for each command's options and examples.")
    parser.add_argument("--version", action="version", version=f"nnviz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in MODULES:
        try:
            module = importlib.import_module(f"nnviz.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"nnviz.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("nnviz: interrupted", file=sys.stderr)
        return 1
    except (InputError, KeyError, ValueError, TypeError, RuntimeError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"nnviz {args.command}: error: {msg}", file=sys.stderr)
        return 2 if isinstance(e, (InputError, KeyError)) else 1


if __name__ == "__main__":
    sys.exit(main())
