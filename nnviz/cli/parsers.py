"""The parsers of the method subcommands (everything but ``demo`` and ``batch``, which run
them): one place that the ``nnviz`` command, the demo and the batch runner build them from."""
import argparse

from ..errors import InputError
from . import attribution, compare, evaluate, fast_style, info, lrp, optimize, style, weights
from .common import did_you_mean, resolve

FAMILIES = (info, weights, attribution, lrp, optimize, style, evaluate, fast_style, compare)


def add_methods(sub):
    """Register every method subcommand on the subparsers ``sub``."""
    for family in FAMILIES:
        family.register(sub)


def method_parsers():
    """``{name: parser}`` of every method subcommand."""
    root = argparse.ArgumentParser(prog="nnviz")
    sub = root.add_subparsers(dest="command")
    add_methods(sub)
    return dict(sub.choices)


def parse(argv):
    """Parse ``argv`` (``[subcommand, options...]``) with that subcommand's parser; a usage
    error raises :class:`InputError` instead of exiting."""
    parsers = method_parsers()
    name = resolve(argv[0], parsers) if argv else None      # guided_backprop -> guided
    if name is None:
        given = argv[0] if argv else ""
        raise InputError(f"unknown method {given!r}{did_you_mean(given, parsers)}: expected one "
                         f"of {', '.join(parsers)}")
    argv = [name] + list(argv[1:])
    parser = parsers[name]

    def error(message):
        raise InputError(f"{parser.prog}: {message}")
    parser.error = error
    args = parser.parse_args(argv[1:])
    args.command = argv[0]
    return args
