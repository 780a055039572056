"""``nnviz maximize | filters | class-model | dream | invert``: images optimized for what units
want (activation maximization, Simonyan's class models, DeepDream, Mahendran & Vedaldi's
inversion); see :mod:`nnviz.methods.maximization`, :mod:`~nnviz.methods.deepdream` and
:mod:`~nnviz.methods.inversion`."""
import sys

from .. import methods
from ..errors import InputError
from ..io import MAX_SIDE, PHOTOGRAPHS, load_image, save_png
from ..methods import deepdream, inversion, maximization, optimize
from ..render import grid
from .common import (
    CHANNELS,
    NONNEG,
    NONNEG_INT,
    PERCENT,
    POSITIVE,
    POSITIVE_INT,
    Outputs,
    Pair,
    add_common,
    add_parser,
    check_memory,
    integer,
    load_net,
    number,
    output_name,
    say,
    stem,
)

# sizes down to 1 pixel: a shallow layer works on small images (a layer too deep for the size is
# refused with its name, by the memory estimate's shape arithmetic)
ANY_SIZE = integer(1, MAX_SIDE)

EXAMPLES = {
    "maximize": """examples:
  nnviz maximize conv5_1:12                      # a channel, default weights
  nnviz maximize conv4_1:7:6,6 --steps 300       # one unit
  nnviz maximize conv5_1:12 --image sample:chelsea --blur-every 4 --snapshot-every 50
""",
    "filters": """examples:
  nnviz filters conv4_1                          # channels 0..15 in one grid
  nnviz filters conv5_1 --channels 0-63 --size 64 --batch 32
""",
    "class-model": """examples:
  nnviz class-model 130 --weights vgg16-keras.h5  # needs weights with fc layers
""",
    "dream": """examples:
  nnviz dream sample:astronaut                   # relu4_3, 4 octaves
  nnviz dream photo.jpg --layers relu4_2 relu5_1 --tile-size 512 --steps-per-octave 20
""",
    "invert": """examples:
  nnviz invert sample:chelsea --layer relu3_3
  nnviz invert photo.jpg --layer pool5 --steps 400 --size 224
""",
}


def _parser(sub, name, help):
    p = add_parser(sub, name, help, EXAMPLES[name])
    add_common(p)
    return p


def _loop_options(p, steps, lr):
    g = p.add_argument_group("optimization")
    g.add_argument("--steps", type=POSITIVE_INT, default=steps,
                   help=f"gradient steps of the optimization (default {steps})")
    g.add_argument("--lr", type=POSITIVE, default=lr,
                   help=f"step size in pixel levels (default {lr})")
    g.add_argument("--optimizer", default="adam", choices=optimize.Optimizer.KINDS,
                   help="the update rule: " + ", ".join(optimize.Optimizer.KINDS) + " (default adam)")
    g.add_argument("--snapshot-every", type=POSITIVE_INT, default=None, metavar="K",
                   help="write a snapshot PNG every K steps")
    return g


def _regularizers(g):
    g.add_argument("--lp", action=Pair, types=(number(1), NONNEG), default=(6, 1.0),
                   metavar=("P", "WEIGHT"), help="Lp regularizer (default 6 1.0)")
    g.add_argument("--tv", action=Pair, types=(number(1), NONNEG), default=(2, 0.5),
                   metavar=("BETA", "WEIGHT"), help="total variation regularizer (default 2 0.5)")
    g.add_argument("--jitter", type=NONNEG_INT, default=4,
                   help="random roll of up to N px (default 4)")
    g.add_argument("--blur-every", type=POSITIVE_INT, default=None, metavar="K",
                   help="Gaussian blur every K steps")
    g.add_argument("--blur-sigma", type=POSITIVE, default=0.5, help="blur's sigma in pixels")
    g.add_argument("--clip-small", type=PERCENT, default=None, metavar="PERCENTILE",
                   help="zero the pixels whose norm is below this percentile, each step")


def register(sub):
    p = _parser(sub, "maximize", "the image that maximizes a channel, a unit or a class")
    p.add_argument("target", help="LAYER:CHANNEL, LAYER:CHANNEL:I,J or a class index")
    p.add_argument("--image", default=None, help="start from this image (default: noise)")
    p.add_argument("--size", type=ANY_SIZE, default=None,
                   help="image size (default 128; 224 for a class)")
    _regularizers(_loop_options(p, 200, 2.0))
    p.set_defaults(func=run_maximize)

    p = _parser(sub, "filters", "a grid of many channels of one layer, each maximized")
    p.add_argument("layer", help="the layer whose channels are drawn, e.g. conv4_1 ('nnviz info' "
                                 "lists the layers)")
    p.add_argument("--channels", type=CHANNELS, default=CHANNELS("0-15"),
                   help="the channels to draw, e.g. 0-15 or 3,7,9 (default 0-15)")
    p.add_argument("--size", type=ANY_SIZE, default=64, help="image size per channel (default 64)")
    p.add_argument("--batch", type=integer(1, 1024), default=16,
                   help="channels per forward (default 16)")
    _regularizers(_loop_options(p, 200, 2.0))
    p.set_defaults(func=run_filters)

    p = _parser(sub, "class-model", "Simonyan et al.'s class model: argmax S_c(I) - λ‖I‖²")
    p.add_argument("class_index", type=NONNEG_INT, help="an fc8 class (0..999)")
    p.add_argument("--l2", type=NONNEG, default=1e-3,
                   help="λ, the weight of the L2 penalty on the image (default 1e-3)")
    g = _loop_options(p, 200, 1.0)
    g.set_defaults(optimizer="sgd")
    p.set_defaults(func=run_class_model)

    p = _parser(sub, "dream", "DeepDream: amplify what layers see in an image")
    p.add_argument("image", help=f"the image to dream on: a file or sample:NAME ({', '.join(PHOTOGRAPHS)})")
    p.add_argument("--size", type=ANY_SIZE, default=None, help="resize the longer side first")
    p.add_argument("--layers", nargs="+", default=["relu4_3"], metavar="LAYER",
                   help="one or more layers whose activations are amplified, e.g. relu4_2 "
                        "relu5_1 ('nnviz info' lists them; default relu4_3)")
    p.add_argument("--octaves", type=integer(1, 32), default=4,
                   help="how many scales the image is dreamt at, smallest first (default 4)")
    p.add_argument("--octave-scale", type=number(1, 16), default=1.4,
                   help="each octave this much smaller (default 1.4)")
    p.add_argument("--steps-per-octave", type=POSITIVE_INT, default=10,
                   help="gradient steps at each octave (default 10)")
    p.add_argument("--step-size", type=POSITIVE, default=0.01,
                   help="step in half pixel ranges (default 0.01)")
    p.add_argument("--tile-size", type=integer(32, MAX_SIDE), default=512,
                   help="largest tile the net sees at once (default 512)")
    p.add_argument("--snapshot-every", type=POSITIVE_INT, default=None, metavar="K",
                   help="write a snapshot PNG every K steps")
    p.set_defaults(func=run_dream)

    p = _parser(sub, "invert", "Mahendran & Vedaldi: an image from a layer's representation")
    p.add_argument("image", help="the image whose representation is inverted: a file or "
                                 f"sample:NAME ({', '.join(PHOTOGRAPHS)})")
    p.add_argument("--layer", default="relu3_3",
                   help="the layer whose representation is matched, a name from 'nnviz info' "
                        "(default relu3_3)")
    p.add_argument("--size", type=ANY_SIZE, default=224, help="resize the longer side (default 224)")
    p.add_argument("--alpha", type=number(1), default=6, help="α of the α-norm (default 6)")
    p.add_argument("--alpha-weight", type=NONNEG, default=1e-3,
                   help="weight of the α-norm prior (default 1e-3)")
    p.add_argument("--tv-beta", type=number(1), default=2, help="β of the TV prior (default 2)")
    p.add_argument("--tv-weight", type=NONNEG, default=1e-2,
                   help="weight of the total variation prior (default 1e-2)")
    _loop_options(p, 200, 2.0)
    p.set_defaults(func=run_invert)


def _outputs(args, parts, inputs=(), snapshot="{name}-step{{step:05d}}.png", steps=None,
             named=(), **fields):
    """The checked output path ``OUT/name.png`` (``name``: :func:`output_name` of ``parts`` and
    the options; ``named``, the options that ``parts`` show) and the snapshot paths beside it
    (every one that the run can write, ``steps`` in all, checked now: a refusal writes
    nothing)."""
    outputs = Outputs(args, inputs)
    name = output_name(args, *parts, named=named)        # letters, digits and _.=+- only
    path = outputs.path(f"{name}.png")
    snapshots = None
    if args.snapshot_every:
        total = args.steps if steps is None else steps
        snapshots = outputs.series(snapshot.format(name=name),
                                   range(args.snapshot_every, total + 1, args.snapshot_every),
                                   **fields)
    return path, snapshots


def _finish(args, result, path, images=None, net=None):
    if net is not None and result.status == "stopped" and result.stopped and \
            all(s == 0 for s in result.stopped):
        # nothing was optimized: refuse, saying where the start became non-finite
        where = net.locate_nonfinite(lambda: net.forward(result.x))
        raise InputError(f"{result.message}{f' ({where})' if where else ''}; nothing written")
    save_png(result.image if images is None else images, path, force=True)
    if result.status == "interrupted":
        print(f"nnviz {args.command}: {result.message}; wrote {path}", file=sys.stderr,
              flush=True)
        return 1
    if result.message:
        print(f"nnviz: {result.message}")
    say(args, f"wrote {path}")
    return 0


def _common(args, snapshots):
    return dict(steps=args.steps, lr=args.lr, optimizer=args.optimizer, seed=args.seed,
                snapshot_every=args.snapshot_every, snapshot_path=snapshots,
                progress=not args.quiet)


def _reg(args):
    return dict(lp=tuple(args.lp), tv=tuple(args.tv), jitter=args.jitter,
                blur_every=args.blur_every, blur_sigma=args.blur_sigma, clip_small=args.clip_small)


def _check_memory(args, need, n, h, w):
    """:func:`check_memory` of a method's estimate ``need`` for ``n`` images of ``h × w``."""
    return check_memory(args, need, f"{getattr(args, 'command', 'this run')} on {n} "
                                    f"image{'s' if n != 1 else ''} of {h}×{w}")


def run_maximize(args):
    net = load_net(args, include_top=args.target.isdigit() or args.target.startswith("fc"))
    inputs = [args.image] if args.image else []
    path, snapshots = _outputs(args, ("maximize", args.target), inputs)
    t, = maximization.as_targets(args.target, net)
    size = args.size or (224 if args.image or net.needs_size(t.layer) else 128)
    _check_memory(args, optimize.memory_estimate(net, 1, size, size, t.layer), 1, size, size)
    x0 = None
    if args.image:
        x0 = net.preprocess(load_image(args.image, size))
    r = methods.maximize(net, args.target, x0=x0, size=args.size, **_reg(args),
                         **_common(args, snapshots))
    h = r.history
    say(args, f"{args.target}: objective {h[0]['objective']:.4g} -> {h[-1]['objective']:.4g}")
    return _finish(args, r, path, net=net)


def run_filters(args):
    net = load_net(args, include_top=False)
    net.check_layer(args.layer)
    batches = -(-len(args.channels) // args.batch)
    path, snapshots = _outputs(args, ("filters", args.layer),
                               snapshot="{name}-batch{{batch}}-step{{step:05d}}.png",
                               batch=range(batches))
    n = min(args.batch, len(args.channels))
    _check_memory(args, optimize.memory_estimate(net, n, args.size, args.size, args.layer), n,
                  args.size, args.size)
    r = methods.filters(net, args.layer, args.channels, size=args.size,
                        batch=args.batch, **_reg(args), **_common(args, snapshots))
    return _finish(args, r, path, grid(list(r.images), r.labels), net=net)


def run_class_model(args):
    net = load_net(args, include_top=True)
    path, snapshots = _outputs(args, ("class-model", args.class_index))
    _check_memory(args, optimize.memory_estimate(net, 1, 224, 224, "fc8"), 1, 224, 224)
    r = methods.class_model(net, args.class_index, l2=args.l2, **_common(args, snapshots))
    return _finish(args, r, path, net=net)


def run_dream(args):
    net = load_net(args, include_top=False)
    path, snapshots = _outputs(args, ("dream", stem(args.image)), [args.image],
                               steps=args.octaves * args.steps_per_octave)
    for layer in args.layers:
        net.check_layer(layer)
    img = load_image(args.image, args.size)
    h, w = img.shape[:2]
    check_memory(args, deepdream.memory_estimate(net, h, w, args.layers, args.tile_size),
                 f"dream on an image of {h}×{w}")
    x = net.preprocess(img)
    r = methods.dream(
        net, x, layers=args.layers, octaves=args.octaves, octave_scale=args.octave_scale,
        steps_per_octave=args.steps_per_octave, step_size=args.step_size,
        tile_size=args.tile_size, seed=args.seed, snapshot_every=args.snapshot_every,
        snapshot_path=snapshots, progress=not args.quiet)
    return _finish(args, r, path, net=net)


def run_invert(args):
    net = load_net(args, include_top=False)
    path, snapshots = _outputs(args, ("invert", stem(args.image), args.layer),
                               [args.image], named=("layer",))
    net.check_layer(args.layer)
    img = load_image(args.image, args.size)
    h, w = img.shape[:2]
    _check_memory(args, inversion.memory_estimate(net, 1, h, w, args.layer), 1, h, w)
    image = net.preprocess(img)
    r = methods.invert(net, image, args.layer, alpha=args.alpha, tv_beta=args.tv_beta,
                       alpha_weight=args.alpha_weight, tv_weight=args.tv_weight,
                       **_common(args, snapshots))
    h = r.history
    say(args, f"representation loss {h[0]['objective']:.4g} -> {h[-1]['objective']:.4g}")
    return _finish(args, r, path, net=net)
