"""What every subcommand shares: the common options, loading the net, writing outputs."""
import os
import threading

from .. import backend
from ..io import InputError

ARCHS = ("vgg16", "vgg19")


def add_common(parser, weights=True, out=True):
    """The options every subcommand takes: --device, --seed, --quiet, and where fitting
    --arch/--weights and --out/--force."""
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
        g.add_argument("--conv", default=None, choices=("direct", "winograd"),
                       help="how 3×3 convolutions are computed: im2col + GEMM (direct), or "
                            "Winograd F(2×2,3×3) (default: $NNVIZ_CONV or direct)")
    if out:
        g.add_argument("--out", default="nnviz-out", help="output folder (default nnviz-out)")
        g.add_argument("--force", action="store_true", help="overwrite existing outputs")
    return g


_NET_CACHE = None   # None: build a net every call; a dict once enable_net_cache() is called


def enable_net_cache():
    """Keep nets between calls of :func:`load_net` (``nnviz batch``: one net per worker)."""
    global _NET_CACHE
    if _NET_CACHE is None:
        _NET_CACHE = {}


def load_net(args, include_top=True, pooling="max"):
    """The net named by --arch/--weights/--device/--seed (kept between calls once
    :func:`enable_net_cache` was called; one per thread, since a net holds its activations)."""
    from .. import functional, models
    if getattr(args, "conv", None):
        functional.set_conv_algorithm(args.conv)
    build = getattr(models, args.arch)
    weights = None if args.weights == "random" else args.weights
    if weights not in (None, "default") and not os.path.exists(weights):
        raise InputError(f"{weights}: no such weight file (import one with 'nnviz weights import')")
    key = (args.arch, args.weights,
           os.path.getmtime(weights) if weights not in (None, "default") else None,
           include_top, pooling, args.device, args.seed, threading.get_ident())
    if _NET_CACHE is not None and key in _NET_CACHE:
        return _NET_CACHE[key]
    net = build(weights=weights, include_top=include_top, pooling=pooling, seed=args.seed,
                device=args.device)
    if _NET_CACHE is not None:
        _NET_CACHE[key] = net
    return net


def say(args, *msg):
    if not getattr(args, "quiet", False):
        print(*msg, flush=True)
