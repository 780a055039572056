"""Attribution commands: ``saliency``, ``deconvnet``, ``guided``, ``top-units``, ``smoothgrad``,
``gradxinput``, ``ig``, ``gradcam``, ``guided-gradcam`` and ``trace`` (see
:mod:`nnviz.methods.attribution` and :mod:`nnviz.methods.cam` for the papers). Each takes one
or more images (``--image``, repeatable), one or more targets (``--target``, repeatable) and
writes PNGs into ``--out``."""
import sys

import numpy

from .. import io, methods, models, render, rules, targets
from ..backend import to_numpy
from ..errors import BadTarget
from ..methods.attribution import DEFAULT_LAYER, default_target
from ..vgg import TOP_LAYERS
from .common import (
    NONNEG,
    POSITIVE_INT,
    SIZE,
    Outputs,
    add_common,
    add_parser,
    check_memory,
    finite_or_explain,
    integer,
    load_net,
    output_name,
    say,
    slug,
    stem,
)

IN_NAME = ("image", "target")    # the options an output's name shows (one file per image and target)

TARGET_HELP = ("what to explain: CLASS (an fc8 index, needs weights with the fully connected "
               "layers and --size 224), LAYER:CHANNEL (the channel summed over space) or "
               "LAYER:CHANNEL:I,J (one unit); repeatable (default: per image, the "
               f"{DEFAULT_LAYER} unit in the middle of the image that rises most above its "
               "value on a blurred copy; the choice is printed on stderr). A target that is "
               "exactly 0 on an image is refused")

EXAMPLES = """examples:
  nnviz {name} --image sample:astronaut --target conv5_3:12
  nnviz {name} --weights random --size 64 --target relu4_3:5 --target relu5_3:7 --grid
"""


def add_inputs(p, grid=True, target=True):
    """The options of every attribution command: the common ones, --image, --size, and where
    fitting --target and --grid."""
    add_common(p)
    p.add_argument("--image", action="append", default=None, metavar="PATH",
                   help="an image file or sample:NAME (astronaut, chelsea, coffee); repeatable "
                        "(default sample:astronaut)")
    p.add_argument("--size", type=SIZE, default=224,
                   help="every image is resized to SIZE×SIZE, squashed to a square (its aspect "
                        "ratio is not kept; dream, invert, maximize --image and style keep it, "
                        "their --size being the longer side) (default 224)")
    if target:
        p.add_argument("--target", action="append", default=None, metavar="SPEC",
                       help=TARGET_HELP)
    if grid:
        p.add_argument("--grid", action="store_true",
                       help="put every image and target in one PNG (a row per image)")


def register(sub):
    def parser(name, help, func, grid=True, target=True):
        p = add_parser(sub, name, help, EXAMPLES.format(name=name))
        add_inputs(p, grid, target)
        p.set_defaults(func=func, command_name=name)
        return p

    parser("saliency", "Simonyan et al. 2013: gradient of a score, max over colours of |g|",
           run_saliency)
    p = parser("deconvnet", "Zeiler & Fergus 2014: deconvnet projection of a unit or channel",
               run_deconvnet)
    p.add_argument("--mode", choices=("unit", "channel"), default="unit",
                   help="project the channel's strongest unit (default) or the whole channel")
    p.add_argument("--no-switches", action="store_true",
                   help="unpool to the top-left of each window instead of the recorded switches")
    p = parser("guided", "Springenberg et al. 2015: guided backpropagation of a unit or channel",
               run_guided)
    p.add_argument("--mode", choices=("unit", "channel"), default="unit",
                   help="the channel's strongest unit (default) or the whole channel")
    p = parser("top-units", "Zeiler & Fergus 2014: projections of a layer's strongest channels, "
               "with image crops of their receptive fields", run_top_units, grid=False, target=False)
    p.add_argument("--layer", default="relu5_3",
                   help="the layer whose strongest channels are shown, a name from 'nnviz info' "
                        "(default relu5_3)")
    p.add_argument("-n", type=integer(1, 4096), default=9,
                   help="how many channels (default 9; at most the layer's)")
    p.add_argument("--rule", choices=("guided", "deconvnet"), default="guided",
                   help="projection rule (default guided)")
    p = parser("smoothgrad", "Smilkov et al. 2017: a map averaged over noisy copies of the input",
               run_smoothgrad)
    p.add_argument("--method", default="saliency",
                   choices=("saliency", "gradxinput", "guided", "deconvnet", "ig"),
                   help="the map to smooth (default saliency)")
    p.add_argument("--samples", type=POSITIVE_INT, default=50, help="noisy samples (default 50)")
    p.add_argument("--sigma", type=NONNEG, default=0.15,
                   help="noise level, a fraction of the input's range (default 0.15)")
    p.add_argument("--steps", type=POSITIVE_INT, default=16,
                   help="steps when --method ig (default 16)")
    p.add_argument("--squared", action="store_true",
                   help="SmoothGrad-Squared (Hooker et al. 2019): average the squared maps")
    parser("gradxinput", "gradient × input", run_gradxinput)
    p = parser("ig", "Sundararajan et al. 2017: integrated gradients", run_ig)
    p.add_argument("--steps", type=POSITIVE_INT, default=64, help="integration steps (default 64)")
    p.add_argument("--integration", choices=("midpoint", "trapezoid", "left", "right"),
                   default="midpoint", help="quadrature rule (default midpoint)")
    p.add_argument("--baseline", choices=("zero", "black"), default="zero",
                   help="zero input (the mean image under Caffe preprocessing) or a black image")
    for name, func in (("gradcam", run_gradcam), ("guided-gradcam", run_guided_gradcam)):
        p = parser(name, "Selvaraju et al. 2017: " + ("Grad-CAM heat map over the image"
                   if name == "gradcam" else "guided backprop times the Grad-CAM map"), func)
        p.add_argument("--layer", default="relu5_3",
                       help="convolutional layer of the map (default relu5_3)")
    p = parser("trace", "every layer's activation and gradient, written to one HDF5 file",
               run_trace, grid=False)
    p.add_argument("--rule", choices=("backprop", "deconvnet", "guided") + tuple(rules.COMPOSITES),
                   type=lambda s: s.replace("-", "_"), default="backprop",
                   help="ReLU backward rule (default backprop), or an LRP composite (hyphens "
                        "allowed): the trace then holds each layer's relevance, its sum per "
                        "image and the rule there")
    p.add_argument("--format", choices=("h5", "npz", "npy"), default="h5",
                   help="h5 (HDF5, default), npz (one NumPy archive) or npy (a folder of .npy files "
                        "and meta.json): the same arrays and schema, see nnviz.methods.attribution."
                        "write_trace; nnviz compare --golden reads all three")


# ---------------------------------------------------------------------------------------
# shared steps
# ---------------------------------------------------------------------------------------

def setup(args):
    """(net, images (N, H, W, 3) uint8, x (N, 3, H, W), paths, targets) from the arguments: the
    images loaded, the targets checked (refused where exactly 0), or each image's default
    target chosen. The net keeps the images' forward (see :meth:`Net.reusing_forward`)."""
    paths = args.image or ["sample:astronaut"]
    specs = [targets.parse(s) for s in (getattr(args, "target", None) or [])]
    needs_top = any(t.layer in TOP_LAYERS for t in specs)
    for t in specs:        # before the net is built: the fully connected layers take 224 px
        models.check_size(args.arch, t.layer, (args.size, args.size), f"target {t}", "--size")
    net = load_net(args, include_top=needs_top and args.weights != "default")
    for t in specs:
        t.check(net)
    _check_memory(args, net, len(paths), specs)
    images = numpy.stack([io.load_image(p, (args.size, args.size)) for p in paths])
    x = net.preprocess(images)
    if specs:
        _refuse_zero(net, x, paths, specs)
    elif hasattr(args, "target"):         # top-units has no target
        chosen = default_target(net, x)
        each = "; ".join(d if len(paths) == 1 else f"{stem(p)}: {d}"
                         for p, d in zip(paths, chosen.details))
        args.chosen_note = f"nnviz {args.command_name}: no --target given: chose {chosen.rule} ({each})"
        specs = [chosen if len(chosen) > 1 else chosen[0]]
    return net, images, x, paths, specs


def announce(args):
    """Print, once, on stderr, which default target was chosen and why: after the maps are
    computed, so that a run refused for bad input still says one line only."""
    note = getattr(args, "chosen_note", None)
    if note and not getattr(args, "quiet", False):
        print(note, file=sys.stderr, flush=True)
    args.chosen_note = None


def _refuse_zero(net, x, paths, specs):
    """A target that is exactly 0 on an image (its channel, unit or class score) has nothing
    to attribute there: an InputError naming the target, the image and the image's strongest
    channels of that layer."""
    deepest = max((t.layer for t in specs), key=net.layer_names.index)
    net.forward(x, until=deepest)
    for t in specs:
        act = net.activations[t.layer]
        t.check(net, act.shape)
        for i in targets.zero_images(t, act):
            top = ", ".join(str(c) for c in targets.strongest_channels(act[i]))
            what = "class" if t.is_class else "channel"
            raise BadTarget(f"{t} is exactly 0 on {stem(paths[i])}: nothing to attribute; try "
                             f"--target {'' if t.is_class else t.layer + ':'}N (the image's "
                             f"strongest {what}s: {top})")


def _nonzero(maps, t, paths, name):
    """Refuse a map that is zero everywhere on an image (its target's gradient is): one line
    naming the method, the target and the image."""
    flat = maps.reshape(maps.shape[0], -1)
    for i in range(flat.shape[0]):
        if not bool((flat[i] != 0).any()):
            raise BadTarget(f"{name} of {t} is zero everywhere on {stem(paths[i])} (its gradient "
                             f"is): nothing to draw; try another --target")
    return maps


def _check_memory(args, net, n, specs):
    """Refuse, before any image is loaded, a run whose estimated memory
    (:func:`nnviz.methods.attribution.memory_estimate`) exceeds the limit."""
    name = args.command_name
    layers = [t.layer for t in specs] or [DEFAULT_LAYER]
    if name in ("gradcam", "guided-gradcam", "top-units"):
        layers.append(args.layer)
    layers = [a for a in layers if a in net.layers]
    until = max(layers, key=net.layer_names.index) if layers else None
    method = args.method if name == "smoothgrad" else name
    need = methods.attribution.memory_estimate(
        net, n, args.size, args.size, until, method, steps=getattr(args, "steps", None),
        smoothed=name == "smoothgrad", channels=getattr(args, "n", None))
    check_memory(args, need, f"{name} on {n} image{'s' if n != 1 else ''} of "
                             f"{args.size}×{args.size}")


def _picture(kind, g, image, net):
    """One image's map (C, H, W) as RGB uint8, in the method's customary rendering."""
    if kind == "magnitude":
        return render.gray_to_rgb(render.magnitude(g))
    if kind == "cam":
        return render.overlay(image, to_numpy(g)[0])
    if kind == "diverging":
        return render.diverging_map(g, image)
    return render.signed(g, bgr=net.preprocessing == "caffe")


def _each(t, i):
    """Image ``i``'s target: its own of the per-image default targets, else ``t``."""
    return t[i] if isinstance(t, targets.PerImage) else t


def _write(args, kind, compute):
    """Run ``compute(net, x, target) -> maps (N, ...)`` for every target and write the PNGs."""
    net, images, x, paths, specs = setup(args)
    name = args.command_name
    outputs = Outputs(args, paths)
    if args.grid:
        pngs = {outputs.path(output_name(args, name, "grid") + ".png"): None}
    else:
        pngs = {outputs.path(output_name(args, name, stem(p), _each(t, i), named=IN_NAME) + ".png"): (i, k)
                for i, p in enumerate(paths) for k, t in enumerate(specs)}
    with net.reusing_forward():           # one forward of the images for every target
        maps = [_nonzero(finite_or_explain(net, compute(net, x, t), lambda t=t: compute(net, x, t),
                                           f"{name} of {t}"), t, paths, name) for t in specs]
    announce(args)
    written = []
    if args.grid:
        tiles, labels = [], []
        for i, path in enumerate(paths):
            tiles.append(images[i])
            labels.append(stem(path))
            for t, m in zip(specs, maps):
                tiles.append(_picture(kind, m[i], images[i], net))
                labels.append(str(_each(t, i)))
        out, = pngs
        written.append(io.save_png(render.grid(tiles, labels, ncols=len(specs) + 1), out))
    else:
        for out, (i, k) in pngs.items():
            written.append(io.save_png(_picture(kind, maps[k][i], images[i], net), out))
    for w in written:
        say(args, w)
    return 0


# ---------------------------------------------------------------------------------------
# the commands
# ---------------------------------------------------------------------------------------

def run_saliency(args):
    return _write(args, "magnitude", methods.saliency)


def _position(args, t):
    """The unit to project: the target's, except a chosen default target's under --mode channel."""
    return None if args.mode == "channel" and not args.target else t.position


def run_deconvnet(args):
    return _write(args, "signed", lambda net, x, t: methods.deconvnet(
        net, x, t.layer, t.channel, _position(args, t), mode=args.mode,
        switches=not args.no_switches))


def run_guided(args):
    return _write(args, "signed", lambda net, x, t: methods.guided_backprop(
        net, x, t.layer, t.channel, _position(args, t), mode=args.mode))


def run_smoothgrad(args):
    kw = {"steps": args.steps} if args.method == "ig" else {}
    kind = ("magnitude" if args.method == "saliency" or args.squared else
            "diverging" if args.method in ("gradxinput", "ig") else "signed")
    return _write(args, kind, lambda net, x, t: methods.smoothgrad(
        args.method, net, x, t, n=args.samples, sigma=args.sigma, seed=args.seed,
        squared=args.squared, **kw))


def run_gradxinput(args):
    return _write(args, "diverging", methods.gradient_x_input)


def run_ig(args):

    def compute(net, x, t):
        baseline = None
        if args.baseline == "black":
            baseline = net.preprocess(numpy.zeros((1,) + tuple(x.shape[2:]) + (3,), numpy.uint8))
        return methods.integrated_gradients(net, x, t, baseline=baseline, steps=args.steps,
                                    integration=args.integration)
    return _write(args, "diverging", compute)


def run_gradcam(args):
    return _write(args, "cam", lambda net, x, t: methods.gradcam(net, x, t, layer=args.layer))


def run_guided_gradcam(args):
    return _write(args, "signed", lambda net, x, t: methods.guided_gradcam(net, x, t, layer=args.layer))


TILE = 128


def _tile(img):
    return io.resize(render.gray_to_rgb(img), (TILE, TILE))


def run_top_units(args):
    """One PNG per image: for each of the n strongest channels, the projection of its
    strongest unit (cropped to the unit's receptive field), the image crop, and the
    projection of the whole channel (Zeiler & Fergus 2014, fig. 2)."""
    net, images, x, paths, _ = setup(args)
    outputs = Outputs(args, paths)
    outs = [outputs.path(output_name(args, "top-units", stem(p), args.layer,
                                     named=("image", "layer")) + ".png") for p in paths]
    with net.reusing_forward():           # one forward for every channel's projections
        res = methods.top_units(net, x, args.layer, n=args.n, rule=args.rule)
    finite_or_explain(net, res["channel"], lambda: methods.top_units(
        net, x, args.layer, n=args.n, rule=args.rule), f"top-units of {args.layer}")
    bgr = net.preprocessing == "caffe"
    for i, out in enumerate(outs):
        tiles, labels = [], []
        for k in range(res["channels"].shape[1]):
            top, left, bottom, right = res["boxes"][i, k]
            unit = to_numpy(res["unit"][i, k])[:, top:bottom + 1, left:right + 1]
            c = int(res["channels"][i, k])
            pi, pj = res["positions"][i, k]
            tiles += [_tile(render.signed(unit, bgr=bgr)),
                      _tile(images[i, top:bottom + 1, left:right + 1]),
                      _tile(render.signed(res["channel"][i, k], bgr=bgr))]
            labels += [f"{c} unit {pi},{pj}", f"{c} image", f"{c} channel"]
        say(args, io.save_png(render.grid(tiles, labels, ncols=9), out))
    return 0


def run_trace(args):
    """One trace per target (``--format``: an HDF5 file, an .npz, or a folder of .npy): every
    layer's ``activation`` and ``gradient`` (or ``relevance``), with the schema's metadata."""
    net, images, x, paths, specs = setup(args)
    outputs = Outputs(args, paths)
    name = "-".join(slug(stem(p)) for p in paths)
    ext = {"h5": ".h5", "npz": ".npz", "npy": ""}[args.format]
    outs = [outputs.path(output_name(args, "trace", name, t, args.rule,
                                     named=IN_NAME + ("rule", "format")) + ext) for t in specs]
    with net.reusing_forward():
        for t, out in zip(specs, outs):
            announce(args)
            methods.trace(net, x, t, args.rule, out, format=args.format)
            say(args, out)
    return 0
