"""The ``nnviz`` command: one subcommand per method, one module per family of subcommands
(``info``, ``weights``, ``attribution``, ``optimize``, ``style``, ``demo``, ``batch``). Thin:
each parses, calls the library, and writes. Exit codes: 0 success, 1 a failed run, 2 a usage
error. Bad input is one clear line on stderr, not a traceback."""
import sys

from .. import __version__
from . import batch, demo, parsers
from .common import Parser, execute


def build_parser():
    parser = Parser(
        prog="nnviz", description="The classic visualizations of convolutional networks, on "
        "VGG16 and VGG19, every gradient written by hand.",
        epilog="Run 'nnviz COMMAND --help' for each command's options and examples. Commands "
        "also answer to their long names (guided-backprop, gradient-x-input, "
        "integrated-gradients, grad-cam, guided-grad-cam, deep-dream, ...); output names show "
        "the options that differ from their defaults; long runs report progress on stderr "
        "(-q silences it; $NNVIZ_PROGRESS_EVERY sets the seconds between lines when stderr is "
        "not a terminal).")
    parser.add_argument("--version", action="version", version=f"nnviz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parsers.add_methods(sub)
    demo.register(sub)
    batch.register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return execute(args)


if __name__ == "__main__":
    sys.exit(main())
