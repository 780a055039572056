"""Evaluation commands (see :mod:`nnviz.methods.evaluate` for the papers):

- ``nnviz sanity``: Adebayo et al. 2018's model-parameter randomization (``--cascade``,
  ``--independent``) and random-target tests on one image: ``sanity.csv``,
  ``random-target.csv``, the grid of maps as layers are redrawn (the paper's fig. 2) and the
  similarity curves (fig. 4), as PNG and SVG;
- ``nnviz faithfulness``: Petsiuk et al. 2018's deletion and insertion curves of each
  method's ranking and of random rankings, and completeness: ``faithfulness.csv``,
  ``faithfulness-auc.csv``, ``completeness.csv`` and a figure with the AUCs in its legend;
- ``nnviz evaluate-aggregate``: the rows of many runs (e.g. ``nnviz batch sanity ...``)
  merged into means with 95% bootstrap intervals, and one figure over all images.

Both per-image commands take ``--image`` and ``--out``, so that ``nnviz batch`` runs them over
a folder. The tables and their summaries are :mod:`nnviz.methods.evaluate`'s, written by
:func:`nnviz.tables.write_csv`; the figures are :mod:`nnviz.plots`'.
"""
from .. import io, plots, tables, targets
from ..errors import BadOption
from ..methods import evaluate as E
from ..vgg import TOP_LAYERS
from .common import (
    NONNEG_INT,
    POSITIVE_INT,
    SIZE,
    Outputs,
    add_common,
    add_parser,
    check_net_memory,
    load_net,
    say,
    stem,
)

SANITY_EXAMPLES = """examples:
  nnviz sanity --image sample:astronaut --size 160 --methods gradient,guided --depth 6
  nnviz sanity --cascade --independent --methods gradient,guided,gradcam,guided-gradcam
  nnviz batch sanity --images photos/ --out checks -- --size 160 --depth 6
  nnviz evaluate-aggregate checks --out checks-summary
"""

FAITHFULNESS_EXAMPLES = """examples:
  nnviz faithfulness --image sample:astronaut --target pool5:441
  nnviz faithfulness --methods gradient,gradcam,ig --steps 25 --random 5
  nnviz batch faithfulness --images photos/ --out faith -- --steps 50
  nnviz evaluate-aggregate faith --out faith-summary
"""

AGGREGATE_EXAMPLES = """examples:
  nnviz evaluate-aggregate checks --out checks-summary
  nnviz evaluate-aggregate run1 run2 --bootstrap 20000 --out summary
"""

SANITY_LAYER = "relu5_3"         # default targets: the strongest channel of these layers
FAITHFULNESS_LAYER = "pool5"


def _add_inputs(p, default_layer):
    add_common(p)
    g = p.add_argument_group("image, target and methods")
    g.add_argument("--image", default="sample:astronaut", metavar="PATH",
                   help="an image file or sample:NAME (astronaut, chelsea, coffee)")
    g.add_argument("--size", type=SIZE, default=224, help="the image is resized to SIZE×SIZE")
    g.add_argument("--target", default=None, metavar="SPEC",
                   help="what the maps explain: CLASS (an fc8 index; needs the fully connected "
                        "layers and --size 224), LAYER:CHANNEL or LAYER:CHANNEL:I,J (default: "
                        f"the strongest channel of {default_layer})")
    g.add_argument("--methods", default=None, metavar="A,B,...",
                   help="comma-separated, from: " + ", ".join(E.method_names())
                        + " (default: all)")
    g.add_argument("--cam-layer", default=None, metavar="LAYER",
                   help="Grad-CAM's layer (default: the layer below the target's, or the last "
                        "convolutional ReLU for a class)")
    g.add_argument("--ig-steps", type=POSITIVE_INT, default=16,
                   help="integrated gradients' midpoint steps (default 16)")
    g.add_argument("--samples", type=POSITIVE_INT, default=16,
                   help="SmoothGrad's noisy samples (default 16)")


def register(sub):
    p = add_parser(sub, "sanity", "Adebayo et al. 2018: do the maps change when the weights are "
                   "randomized? (cascading / independent randomization, random target)",
                   SANITY_EXAMPLES)
    _add_inputs(p, SANITY_LAYER)
    g = p.add_argument_group("randomization")
    g.add_argument("--cascade", action="store_true",
                   help="redraw the layers from --start down, one more at each step (the "
                        "default when neither --cascade nor --independent is given)")
    g.add_argument("--independent", action="store_true",
                   help="redraw one layer at a time, the others intact")
    g.add_argument("--start", default=None, metavar="LAYER",
                   help="the first (top) layer redrawn (default: the target's layer, i.e. the "
                        "top layer with parameters at or below it)")
    g.add_argument("--depth", type=POSITIVE_INT, default=None,
                   help="redraw at most this many layers (default: all down to conv1_1)")
    g.add_argument("--other-target", default=None, metavar="SPEC",
                   help="the random-target test's other target (default: another channel or "
                        "class of the same layer, drawn with --seed)")
    p.set_defaults(func=run_sanity, command_name="sanity")

    p = add_parser(sub, "faithfulness", "Petsiuk et al. 2018: deletion and insertion curves of "
                   "each method's pixel ranking, against random rankings; completeness",
                   FAITHFULNESS_EXAMPLES)
    _add_inputs(p, FAITHFULNESS_LAYER)
    g = p.add_argument_group("deletion and insertion")
    g.add_argument("--steps", type=POSITIVE_INT, default=50,
                   help="steps of each curve; ceil(H·W / STEPS) pixels a step (default 50)")
    g.add_argument("--random", type=NONNEG_INT, default=5,
                   help="random rankings averaged as the baseline (default 5; 0: none)")
    g.add_argument("--batch", type=POSITIVE_INT, default=4,
                   help="images per forward pass along a curve (default 4)")
    p.set_defaults(func=run_faithfulness, command_name="faithfulness")

    p = add_parser(sub, "evaluate-aggregate", "merge the CSVs of sanity / faithfulness runs "
                   "(e.g. of 'nnviz batch') into means with 95 percent bootstrap intervals and "
                   "figures over all images", AGGREGATE_EXAMPLES)
    p.add_argument("folders", nargs="+", metavar="FOLDER",
                   help="folders searched (recursively) for "
                        f"{', '.join(E.RESULT_FILES[:-1])} and {E.RESULT_FILES[-1]}")
    add_common(p, weights=False)
    p.add_argument("--bootstrap", type=POSITIVE_INT, default=10000,
                   help="bootstrap resamples (default 10000)")
    p.set_defaults(func=run_aggregate, command_name="evaluate-aggregate")


# ---------------------------------------------------------------------------------------
# shared steps
# ---------------------------------------------------------------------------------------

def _setup(args, default_layer):
    """(net, image (H, W, 3) uint8, x (1, 3, H, W), target, methods, options). With no
    --target, the strongest channel of ``default_layer`` (:func:`nnviz.targets.strongest_channels`),
    not :func:`~nnviz.methods.attribution.default_target`'s unit: redrawing the layers above
    a single unit often silences it (its maps go constant, their similarities NaN), where a
    whole channel keeps responding (tests/test_evaluate.py's batch run pins this)."""
    methods = E.check_methods(args.methods)
    spec = targets.parse(args.target) if args.target is not None else None
    others = [targets.parse(s) for s in (getattr(args, "other_target", None),) if s is not None]
    given = ([spec] if spec else []) + others
    net = load_net(args, include_top=any(t.layer in TOP_LAYERS for t in given)
                   and args.weights != "default")
    for t in given:
        net.check_size(t.layer, (args.size, args.size), f"target {t}", "--size")
    # IG runs 8 path points at a time; faithfulness --batch images along a curve
    check_net_memory(args, net, max(8, getattr(args, "batch", 1)), args.size, args.size,
                     until=spec.layer if spec else default_layer)
    image = io.load_image(args.image, (args.size, args.size))
    x = net.preprocess(image)
    if spec is None:
        act = net.forward(x, until=default_layer)
        spec = targets.Target(default_layer, targets.strongest_channels(act[0], 1)[0])
    spec.check(net, tuple(net.forward(x, until=spec.layer).shape))
    if args.cam_layer is not None:
        names = net.layer_names
        if names.index(net.check_layer(args.cam_layer, "Grad-CAM layer")) >= names.index(spec.layer):
            raise BadOption(f"--cam-layer {args.cam_layer}: Grad-CAM's layer must come before "
                            f"the target's layer {spec.layer!r}")
    options = dict(cam_layer=args.cam_layer, ig_steps=args.ig_steps, samples=args.samples,
                   seed=args.seed)
    return net, image, x, spec, methods, options


def _both(outputs, name):
    return [outputs.path(f"{name}.png"), outputs.path(f"{name}.svg")]


def _done(args, written):
    for w in written:
        say(args, w)
    return 0


def run_sanity(args):
    modes = [m for m, on in (("cascade", args.cascade), ("independent", args.independent)) if on]
    modes = modes or ["cascade"]
    net, image, x, spec, methods, options = _setup(args, SANITY_LAYER)
    if args.start is not None:
        net.check_layer(args.start, "start layer")
    other = None
    if args.other_target:
        other = targets.parse(args.other_target)
        other.check(net, tuple(net.forward(x, until=other.layer).shape))
    outputs = Outputs(args, [args.image])
    csv_path = outputs.path("sanity.csv")
    random_path = outputs.path("random-target.csv")
    map_paths = {mode: _both(outputs, f"sanity-maps-{mode}") for mode in modes}
    curve_paths = _both(outputs, "sanity-curves")
    progress = None if not args.quiet else False
    rows, results = [], {}
    for mode in modes:
        res = E.randomization_test(net, x, spec, methods, mode=mode, start=args.start,
                                   depth=args.depth, seed=args.seed, options=options,
                                   progress=progress)
        rows += res["rows"]
        results[mode] = res
    random_rows = E.random_target_test(net, x, spec, other, methods, seed=args.seed,
                                       options=options, progress=progress)
    written = [tables.write_csv(csv_path, E.SANITY_COLUMNS, rows),
               tables.write_csv(random_path, E.RANDOM_TARGET_COLUMNS, random_rows)]
    name = stem(args.image)
    for mode, res in results.items():
        fig = plots.maps_figure(image, res, methods, f"{name}, target {spec}: maps as the layers "
                                f"are redrawn ({mode}, top first)")
        written += plots.save_figure(fig, map_paths[mode])
    curves = {mode: {"layers": res["layers"],
                     "values": E.similarity_curves(res["rows"], res["layers"], methods)}
              for mode, res in results.items()}
    fig = plots.curves_figure(curves, methods, f"{name}, target {spec}: similarity to the intact "
                              f"net's map (Adebayo et al. 2018)", E.METRICS)
    written += plots.save_figure(fig, curve_paths)
    return _done(args, written)


def run_faithfulness(args):
    net, image, x, spec, methods, options = _setup(args, FAITHFULNESS_LAYER)
    outputs = Outputs(args, [args.image])
    paths = [outputs.path(n) for n in ("faithfulness.csv", "faithfulness-auc.csv",
                                         "completeness.csv")]
    fig_paths = _both(outputs, "faithfulness")
    progress = None if not args.quiet else False
    res = E.faithfulness(net, x, spec, methods, steps=args.steps, random_orders=args.random,
                         seed=args.seed, batch=args.batch, options=options, progress=progress)
    rows, aucs = E.curve_rows(res["curves"])
    complete = [E.completeness(net, x, spec, m, res["maps"][m]) for m in methods
                if m == "ig" or m.startswith("lrp-")]
    written = [tables.write_csv(paths[0], E.CURVE_COLUMNS, rows),
               tables.write_csv(paths[1], E.AUC_COLUMNS, aucs),
               tables.write_csv(paths[2], E.COMPLETENESS_COLUMNS, complete)]
    fig = plots.faithfulness_figure(res["curves"], methods, f"{stem(args.image)}, target {spec}: "
                                    f"deletion and insertion (Petsiuk et al. 2018)",
                                    plots.score_label(spec), E.CURVES, E.RANDOM)
    written += plots.save_figure(fig, fig_paths)
    return _done(args, written)


def run_aggregate(args):
    found = E.find_results(args.folders)
    outputs = Outputs(args, [])
    plan = [(name, make, outputs.path(name) if name.endswith(".csv") else _both(outputs, name))
            for name, make in E.aggregate(found, args.bootstrap, args.seed)]
    written = []
    for name, make, path in plan:
        if name.endswith(".csv"):
            written.append(tables.write_csv(path, *make()))
        else:
            written += plots.save_figure(make(), path)
    return _done(args, written)
