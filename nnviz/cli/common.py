"""What every subcommand shares: its parser, the common options, the net, and the paths it
writes (one check for all of them)."""
import argparse
import os
import re
import sys
import threading

from .. import backend, functional, models
from ..errors import InputError

ARCHS = ("vgg16", "vgg19")


def add_parser(sub, name, help, examples="", description=None):
    """A subcommand's parser, its examples shown as written (one line each)."""
    return sub.add_parser(name, help=help, description=description or help, epilog=examples,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_common(parser, weights=True, out=True):
    """The options every subcommand takes: --device, --seed, --quiet, and where fitting
    --arch/--weights/--conv and --out/--force."""
    g = parser.add_argument_group("common options")
    g.add_argument("--device", default=None, choices=backend.DEVICES,
                   help="cpu, gpu or auto (default: $NNVIZ_DEVICE or auto)")
    g.add_argument("--seed", type=int, default=0, help="seed for every random choice (default 0)")
    g.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    if weights:
        g.add_argument("--arch", default="vgg16", choices=ARCHS, help="network (default vgg16)")
        g.add_argument("--weights", default="default",
                       help="'default' (the bundled VGG16 backbone), 'random', or a weight file "
                            "made by 'nnviz weights import'")
        g.add_argument("--conv", default=None, choices=functional.CONV_ALGORITHMS,
                       help="how 3×3 convolutions are computed: im2col + GEMM (direct), or "
                            "Winograd F(2×2,3×3) (default: $NNVIZ_CONV or direct)")
    if out:
        g.add_argument("--out", default="nnviz-out", help="output folder (default nnviz-out)")
        g.add_argument("--force", action="store_true", help="overwrite existing outputs")
    return g


def run_command(args):
    """Run a parsed subcommand with its scoped settings (the convolution algorithm of
    ``--conv``); what ``nnviz``, the demo and the batch runner all call."""
    with functional.conv_algorithm(getattr(args, "conv", None)):
        return args.func(args)


def execute(args):
    """:func:`run_command` as a command line does it: the exit status, with bad input as one
    line on stderr (status 2) and a failed run as one line too (status 1)."""
    try:
        return run_command(args) or 0
    except KeyboardInterrupt:
        print("nnviz: interrupted", file=sys.stderr)
        return 1
    except (InputError, KeyError, ValueError, TypeError, RuntimeError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"nnviz {args.command}: error: {msg}", file=sys.stderr)
        return 2 if isinstance(e, (InputError, KeyError)) else 1


# -- nets ------------------------------------------------------------------------------------

class NetCache:
    """Nets kept between commands by their caller (the demo, a batch worker): one per set of
    options and per thread, since a net holds its activations."""

    def __init__(self):
        self.nets = {}
        self.builds = 0

    def get(self, key, build):
        key = key + (threading.get_ident(),)
        if key not in self.nets:
            self.nets[key] = build()
            self.builds += 1
        return self.nets[key]


def load_net(args, include_top=True, pooling="max"):
    """The net named by --arch/--weights/--device/--seed, from ``args.nets`` (a
    :class:`NetCache`) when the caller set one."""
    weights = None if args.weights == "random" else args.weights
    if weights not in (None, "default") and not os.path.exists(weights):
        raise InputError(f"{weights}: no such weight file (import one with 'nnviz weights import')")

    def build():
        return getattr(models, args.arch)(weights=weights, include_top=include_top,
                                          pooling=pooling, seed=args.seed, device=args.device)
    nets = getattr(args, "nets", None)
    if nets is None:
        return build()
    key = (args.arch, args.weights,
           os.path.getmtime(weights) if weights not in (None, "default") else None,
           include_top, pooling, args.device, args.seed)
    return nets.get(key, build)


def say(args, *msg):
    if not getattr(args, "quiet", False):
        print(*msg, flush=True)


# -- names and paths -------------------------------------------------------------------------

def stem(path):
    """A short name for an input: ``sample:astronaut`` -> ``astronaut``, ``a/b.jpg`` -> ``b``."""
    path = os.fspath(path)
    if path.startswith("sample:"):
        return path.split(":", 1)[1]
    return os.path.splitext(os.path.basename(path))[0] or "image"


def slug(text):
    """``text`` reduced to a safe file-name part (letters, digits, ``_.=+-``)."""
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", str(text)).strip("_") or "_"


def input_files(paths):
    """The real files among input names (not ``sample:NAME`` or ``none``)."""
    return [os.fspath(p) for p in paths
            if p and not str(p).startswith("sample:") and str(p).lower() != "none"]


class Outputs:
    """The one check for every path a command writes: never one of its inputs, never an
    existing file without ``--force``, never the same path twice in one run. Writing is
    atomic (:func:`nnviz.io.atomic_path`)."""

    def __init__(self, args, inputs=()):
        self.folder = getattr(args, "out", None) or "."
        self.force = bool(getattr(args, "force", False))
        self.inputs = input_files(inputs)
        self.taken = set()

    def path(self, name):
        """The checked path of file ``name`` in --out."""
        return self.check(os.path.join(self.folder, name))

    def check(self, path):
        """``path`` (as given), checked."""
        real = os.path.realpath(path)
        if real in self.taken:
            raise InputError(f"{path}: two outputs of this run would have the same path")
        for inp in self.inputs:
            if os.path.exists(inp) and os.path.exists(path) and os.path.samefile(inp, path):
                raise InputError(f"{path}: refusing to overwrite an input file")
        if os.path.exists(path) and not self.force:
            raise InputError(f"{path}: exists (use --force to overwrite)")
        self.taken.add(real)
        return path

    def pattern(self, template):
        """Snapshot paths: a function ``(step, **fields) -> path`` of ``template`` (a format
        string in --out, e.g. ``name-step{step:05d}.png``), each path checked when made."""
        def path(step, **fields):
            return self.check(os.path.join(self.folder, template.format(step=step, **fields)))
        return path
