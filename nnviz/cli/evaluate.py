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
a folder. Figures are drawn with matplotlib's Agg canvas (no pyplot, no global backend).
"""
import csv
import os
import textwrap

import numpy

from .. import io, targets
from ..backend import to_numpy
from ..errors import InputError
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
                   help="folders searched (recursively) for sanity.csv, random-target.csv, "
                        "faithfulness.csv, faithfulness-auc.csv and completeness.csv")
    add_common(p, weights=False)
    p.add_argument("--bootstrap", type=POSITIVE_INT, default=10000,
                   help="bootstrap resamples (default 10000)")
    p.set_defaults(func=run_aggregate, command_name="evaluate-aggregate")


# ---------------------------------------------------------------------------------------
# shared steps
# ---------------------------------------------------------------------------------------

def _setup(args, default_layer):
    """(net, image (H, W, 3) uint8, x (1, 3, H, W), target, methods, options)."""
    methods = E.check_methods(args.methods)
    spec = targets.parse(args.target) if args.target is not None else None
    others = [targets.parse(s) for s in (getattr(args, "other_target", None),) if s is not None]
    needs_top = any(t.layer in TOP_LAYERS for t in ([spec] if spec else []) + others)
    if needs_top and args.size != 224:
        raise InputError(f"target {spec} needs --size 224 (the fully connected layers take "
                         f"224×224 images), got --size {args.size}")
    net = load_net(args, include_top=needs_top and args.weights != "default")
    # IG runs 8 path points at a time; faithfulness --batch images along a curve
    check_net_memory(args, net, max(8, getattr(args, "batch", 1)), args.size, args.size,
                     until=spec.layer if spec else default_layer)
    image = io.load_image(args.image, (args.size, args.size))
    x = net.preprocess(image)
    if spec is None:
        act = net.forward(x, until=default_layer)
        spec = targets.Target(default_layer, int(numpy.argmax(to_numpy(act.sum(axis=(0, 2, 3))))))
    spec.check(net, tuple(net.forward(x, until=spec.layer).shape))
    if args.cam_layer is not None:
        names = net.layer_names
        if names.index(net.check_layer(args.cam_layer, "Grad-CAM layer")) >= names.index(spec.layer):
            raise InputError(f"--cam-layer {args.cam_layer}: Grad-CAM's layer must come before "
                             f"the target's layer {spec.layer!r}")
    options = dict(cam_layer=args.cam_layer, ig_steps=args.ig_steps, samples=args.samples,
                   seed=args.seed)
    return net, image, x, spec, methods, options


def _value(v):
    if isinstance(v, (float, numpy.floating)):
        return format(float(v), ".8g")
    if isinstance(v, (numpy.integer,)):
        return int(v)
    return v


def write_csv(path, columns, rows):
    """Rows (dicts) under ``columns``, atomically; floats with 8 significant digits."""
    with io.atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(columns)
            for row in rows:
                w.writerow([_value(row[c]) for c in columns])
    return path


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, paths):
    """Write ``fig`` to each of ``paths`` (the format from the extension), atomically."""
    for path in paths:
        with io.atomic_path(path) as tmp:
            fig.savefig(tmp, format=os.path.splitext(path)[1][1:], dpi=100)
    return paths


def _both(outputs, name):
    return [outputs.path(f"{name}.png"), outputs.path(f"{name}.svg")]


COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")


def _color(methods, m):
    return "black" if m == E.RANDOM else COLORS[list(methods).index(m) % len(COLORS)]


# ---------------------------------------------------------------------------------------
# nnviz sanity
# ---------------------------------------------------------------------------------------

def _wrap(name, width=14):
    """A method's name on lines of about ``width`` characters, broken after hyphens."""
    lines, line = [], ""
    for part in name.split("-"):
        piece = part if not line else "-" + part
        if line and len(line) + len(piece) > width:
            lines.append(line + "-")
            line = part
        else:
            line += piece
    return "\n".join(lines + [line])


def _maps_figure(image, result, methods, title):
    """The paper's fig. 2: a row per method, the intact net's map then one map per step."""
    layers = result["layers"]
    cols, rows = len(layers) + 2, len(methods)
    tile, left = 1.05, 0.5
    width = cols * tile + left
    title = textwrap.fill(title, int(0.9 * width / 0.075))   # about 0.075 in a character at 10 pt
    top = 0.3 + 0.18 * (title.count("\n") + 1)               # inches above the tiles
    height = rows * tile + top
    fig = _figure(width, height)
    fig.suptitle(title, fontsize=10, y=1 - 0.08 / height, va="top")
    grid = fig.add_gridspec(rows, cols, left=left / width, right=0.995, top=1 - top / height,
                            bottom=0.005, wspace=0.04, hspace=0.04)
    heads = ["image", "intact"] + layers
    for i, m in enumerate(methods):
        tiles = [image, result["original"][m].abs] + [result["maps"][n][m].abs for n in layers]
        for j, t in enumerate(tiles):
            ax = fig.add_subplot(grid[i, j])
            if j == 0:
                ax.imshow(t)
            else:
                ax.imshow(t, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(heads[j], fontsize=7, pad=3)
            if j == 0:
                ax.set_ylabel(_wrap(m), fontsize=8)
    return fig


def _curves_figure(results, methods, title, bands=None):
    """The paper's fig. 4: a row per randomization mode, a panel per similarity; x is the
    last layer redrawn (``intact`` first, similarity 1). ``results``: {mode: {"layers",
    "values": {method: {metric: [values per layer]}}}}; ``bands``: same with (low, high)."""
    modes = list(results)
    width, legend = 4 * len(E.METRICS) + 2.2, 2.1         # inches; the legend's column
    fig = _figure(width, 3.4 * len(modes) + 0.6)
    fig.suptitle(title, fontsize=11)
    axes = fig.subplots(len(modes), len(E.METRICS), squeeze=False)
    for r, mode in enumerate(modes):
        layers = results[mode]["layers"]
        xs = numpy.arange(len(layers) + 1)
        for c, metric in enumerate(E.METRICS):
            ax = axes[r, c]
            for m in methods:
                values = results[mode]["values"].get(m)
                if values is None:
                    continue
                ys = [1.0] + list(values[metric])
                ax.plot(xs, ys, "o-", ms=3, lw=1.3, color=_color(methods, m), label=m)
                if bands is not None:
                    lo, hi = bands[mode]["values"][m][metric]
                    ax.fill_between(xs, [1.0] + list(lo), [1.0] + list(hi),
                                    color=_color(methods, m), alpha=0.15, lw=0)
            ax.axhline(0, color="gray", lw=0.6, ls=":")
            ax.set_ylim(-1.05, 1.05)
            ax.set_xticks(xs)
            ax.set_xticklabels(["intact"] + layers, rotation=60, fontsize=7)
            ax.set_title(f"{metric} ({mode})", fontsize=9)
            ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0, 1 - legend / width, 0.95))
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1 - legend / width, 0.5),
               fontsize=8, frameon=False)
    return fig


def _by_method(rows, layers, methods):
    out = {}
    for m in methods:
        sel = {r["layer"]: r for r in rows if r["method"] == m}
        out[m] = {k: [float(sel[n][k]) for n in layers] for k in E.METRICS}
    return out


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
    written = [write_csv(csv_path, E.SANITY_COLUMNS, rows),
               write_csv(random_path, E.RANDOM_TARGET_COLUMNS, random_rows)]
    name = stem(args.image)
    for mode, res in results.items():
        fig = _maps_figure(image, res, methods, f"{name}, target {spec}: maps as the layers are "
                           f"redrawn ({mode}, top first)")
        written += save_figure(fig, map_paths[mode])
    curves = {mode: {"layers": res["layers"], "values": _by_method(res["rows"], res["layers"],
                                                                    methods)}
              for mode, res in results.items()}
    fig = _curves_figure(curves, methods, f"{name}, target {spec}: similarity to the intact "
                         f"net's map (Adebayo et al. 2018)")
    written += save_figure(fig, curve_paths)
    for w in written:
        say(args, w)
    return 0


# ---------------------------------------------------------------------------------------
# nnviz faithfulness
# ---------------------------------------------------------------------------------------

def _faithfulness_figure(curves, methods, title, ylabel, bands=None, aucs=None):
    """Deletion and insertion side by side, a curve per method (random: dashed black), the
    AUC (with its interval when given) in the legend."""
    def label(m, mode):
        auc = (aucs or {}).get((m, mode))
        return f"{m} (AUC {curves[(m, mode)]['auc']:.3f})" if auc is None else \
            f"{m} (AUC {auc[0]:.3f} [{auc[1]:.3f}, {auc[2]:.3f}])"

    shown = [(m, mode) for m in list(methods) + [E.RANDOM] for mode in E.CURVES
             if (m, mode) in curves]
    entries = len({m for m, _ in shown})
    # two legend columns under a 5-inch panel if the labels fit (about 0.05 in a character)
    ncol = 2 if max((len(label(*k)) for k in shown), default=0) * 0.05 < 2.4 else 1
    below = 0.15 * -(-entries // ncol) + 0.15        # inches of legend under the panels
    title = textwrap.fill(title, int(0.9 * 11 / 0.075))    # about 0.075 in a character at 10 pt
    top = 0.37 + 0.18 * (title.count("\n") + 1)            # inches above the panels
    height = 3.8 + top + below
    fig = _figure(11, height)
    fig.suptitle(title, fontsize=10, y=1 - 0.1 / height, va="top")
    axes = fig.subplots(1, 2)
    for ax, mode in zip(axes, E.CURVES):
        for m in list(methods) + [E.RANDOM]:
            c = curves.get((m, mode))
            if c is None:
                continue
            ax.plot(c["fraction"], c["normalized"], "--" if m == E.RANDOM else "-",
                    color=_color(methods, m), lw=1.4, label=label(m, mode))
            if bands is not None and (m, mode) in bands:
                lo, hi = bands[(m, mode)]
                ax.fill_between(c["fraction"], lo, hi, color=_color(methods, m), alpha=0.15, lw=0)
        ax.set_title(f"{mode} ({'lower' if mode == 'deletion' else 'higher'} AUC is better)",
                     fontsize=9)
        ax.set_xlabel(f"fraction of pixels {'deleted' if mode == 'deletion' else 'inserted'}")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        # under the panel, so that no curve is hidden
        ax.legend(fontsize=7, ncol=ncol, loc="upper center", frameon=False,
                  bbox_to_anchor=(0.5, -0.14), columnspacing=1.0, handlelength=1.6)
    fig.subplots_adjust(left=0.065, right=0.99, wspace=0.2, top=1 - top / height,
                        bottom=(below + 0.55) / height)
    return fig


def _ylabel(spec):
    return f"probability of class {spec.channel}" if spec.is_class else \
        f"{spec} score / score on the image"


def run_faithfulness(args):
    net, image, x, spec, methods, options = _setup(args, FAITHFULNESS_LAYER)
    outputs = Outputs(args, [args.image])
    paths = [outputs.path(n) for n in ("faithfulness.csv", "faithfulness-auc.csv",
                                         "completeness.csv")]
    fig_paths = _both(outputs, "faithfulness")
    progress = None if not args.quiet else False
    res = E.faithfulness(net, x, spec, methods, steps=args.steps, random_orders=args.random,
                         seed=args.seed, batch=args.batch, options=options, progress=progress)
    rows, aucs = [], []
    for (m, mode), c in res["curves"].items():
        aucs.append({"method": m, "mode": mode, "auc": c["auc"]})
        for i in range(len(c["score"])):
            rows.append({"method": m, "mode": mode, "step": i, "fraction": c["fraction"][i],
                         "pixels": c["pixels"][i], "score": c["score"][i],
                         "normalized": c["normalized"][i]})
    complete = [E.completeness(net, x, spec, m, res["maps"][m]) for m in methods
                if m == "ig" or m.startswith("lrp-")]
    written = [write_csv(paths[0], E.CURVE_COLUMNS, rows), write_csv(paths[1], E.AUC_COLUMNS, aucs),
               write_csv(paths[2], E.COMPLETENESS_COLUMNS, complete)]
    fig = _faithfulness_figure(res["curves"], methods, f"{stem(args.image)}, target {spec}: "
                               f"deletion and insertion (Petsiuk et al. 2018)", _ylabel(spec))
    written += save_figure(fig, fig_paths)
    for w in written:
        say(args, w)
    return 0


# ---------------------------------------------------------------------------------------
# nnviz evaluate-aggregate
# ---------------------------------------------------------------------------------------

FILES = ("sanity.csv", "random-target.csv", "faithfulness.csv", "faithfulness-auc.csv",
         "completeness.csv")


def find_results(folders):
    """{file name: [(task, path)]} for the result CSVs under ``folders`` (recursively; the
    task is the folder holding the file, relative to the folder given)."""
    found = {name: [] for name in FILES}
    for folder in folders:
        if not os.path.isdir(folder):
            raise InputError(f"{folder}: no such folder")
        for d, subdirs, files in os.walk(folder):
            subdirs[:] = sorted(s for s in subdirs if not s.startswith("."))   # skip .partial
            for name in FILES:
                if name in files:
                    task = os.path.relpath(d, folder)
                    task = os.path.basename(os.path.abspath(folder)) if task == "." else task
                    found[name].append((task, os.path.join(d, name)))
    if not any(found.values()):
        raise InputError(f"no {', '.join(FILES)} under {', '.join(folders)}: run nnviz sanity "
                         f"or nnviz faithfulness (or nnviz batch of them) there first")
    return found


def _merged(found, name):
    rows = []
    for task, path in found[name]:
        for row in read_csv(path):
            rows.append(dict(row, task=task))
    return rows


def _ordered(values):
    return list(dict.fromkeys(values))


def summarize(rows, keys, metrics, n_boot, seed):
    """One row per group of ``keys`` and per metric: mean, low, high, n (images)."""
    groups = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    out = []
    for key, members in groups.items():
        for metric in metrics:
            values = [float(r[metric]) for r in members]
            mean, low, high = E.bootstrap_ci(values, n_boot, seed=seed)
            out.append(dict(zip(keys, key), metric=metric, mean=mean, low=low, high=high,
                            n=len(values)))
    return out


def run_aggregate(args):
    found = find_results(args.folders)
    outputs = Outputs(args, [])
    plan = []
    if found["sanity.csv"]:
        plan += [("sanity-all.csv", "sanity-summary.csv"), ("sanity-summary", None)]
    if found["random-target.csv"]:
        plan += [("random-target-all.csv", "random-target-summary.csv")]
    if found["faithfulness-auc.csv"]:
        plan += [("faithfulness-auc-all.csv", "faithfulness-summary.csv")]
    if found["faithfulness.csv"]:
        plan += [("faithfulness-summary", None)]
    if found["completeness.csv"]:
        plan += [("completeness-all.csv", "completeness-summary.csv")]
    paths = {}
    for a, b in plan:
        for n in (a, b):
            if n is None:
                continue
            paths[n] = _both(outputs, n) if not n.endswith(".csv") else outputs.path(n)
    written = []
    boot, seed = args.bootstrap, args.seed
    stat_cols = ("metric", "mean", "low", "high", "n")
    if found["sanity.csv"]:
        rows = _merged(found, "sanity.csv")
        written.append(write_csv(paths["sanity-all.csv"], ("task",) + E.SANITY_COLUMNS, rows))
        summary = summarize(rows, ("method", "randomized", "layer"), E.METRICS, boot, seed)
        written.append(write_csv(paths["sanity-summary.csv"], ("method", "randomized", "layer")
                                 + stat_cols, summary))
        written += save_figure(_sanity_summary_figure(rows, summary), paths["sanity-summary"])
    if found["random-target.csv"]:
        rows = _merged(found, "random-target.csv")
        written.append(write_csv(paths["random-target-all.csv"], ("task",) + E.RANDOM_TARGET_COLUMNS,
                                 rows))
        written.append(write_csv(paths["random-target-summary.csv"], ("method",) + stat_cols,
                                 summarize(rows, ("method",), E.METRICS, boot, seed)))
    auc_summary = None
    if found["faithfulness-auc.csv"]:
        rows = _merged(found, "faithfulness-auc.csv")
        written.append(write_csv(paths["faithfulness-auc-all.csv"], ("task",) + E.AUC_COLUMNS, rows))
        auc_summary = summarize(rows, ("method", "mode"), ("auc",), boot, seed)
        written.append(write_csv(paths["faithfulness-summary.csv"], ("method", "mode") + stat_cols,
                                 auc_summary))
    if found["faithfulness.csv"]:
        rows = _merged(found, "faithfulness.csv")
        written += save_figure(_faithfulness_summary_figure(rows, auc_summary, boot, seed),
                               paths["faithfulness-summary"])
    if found["completeness.csv"]:
        rows = _merged(found, "completeness.csv")
        written.append(write_csv(paths["completeness-all.csv"], ("task",) + E.COMPLETENESS_COLUMNS,
                                 rows))
        written.append(write_csv(paths["completeness-summary.csv"], ("method",) + stat_cols,
                                 summarize(rows, ("method",), ("delta", "relative"), boot, seed)))
    for w in written:
        say(args, w)
    return 0


def _sanity_summary_figure(rows, summary):
    methods = _ordered(r["method"] for r in rows)
    n = len(_ordered(r["task"] for r in rows))
    results, bands = {}, {}
    for mode in _ordered(r["randomized"] for r in rows):
        layers = _ordered(r["layer"] for r in rows if r["randomized"] == mode)
        stats = {(s["method"], s["layer"], s["metric"]): s for s in summary
                 if s["randomized"] == mode}

        def get(m, k, what, stats=stats, layers=layers):
            return [stats[(m, layer, k)][what] for layer in layers]
        results[mode] = {"layers": layers, "values": {
            m: {k: get(m, k, "mean") for k in E.METRICS} for m in methods}}
        bands[mode] = {"values": {m: {k: (get(m, k, "low"), get(m, k, "high")) for k in E.METRICS}
                                  for m in methods}}
    return _curves_figure(results, methods, f"similarity to the intact net's map: mean over {n} "
                          f"image{'s' * (n != 1)}, 95% bootstrap interval", bands)


def _faithfulness_summary_figure(rows, auc_summary, n_boot, seed):
    methods = [m for m in _ordered(r["method"] for r in rows) if m != E.RANDOM]
    tasks = _ordered(r["task"] for r in rows)
    curves, bands = {}, {}
    for m in methods + [E.RANDOM]:
        for mode in E.CURVES:
            sel = [r for r in rows if r["method"] == m and r["mode"] == mode]
            if not sel:
                continue
            steps = sorted({int(r["step"]) for r in sel})
            per_task = {}
            for r in sel:
                per_task.setdefault(r["task"], {})[int(r["step"])] = float(r["normalized"])
            full = [t for t in per_task.values() if len(t) == len(steps)]
            if len(full) != len(per_task):
                raise InputError(f"{m} {mode}: the runs have different numbers of steps; "
                                 f"aggregate runs made with the same --steps")
            ys = numpy.array([[t[s] for s in steps] for t in full])          # (images, steps)
            stats = numpy.array([E.bootstrap_ci(ys[:, j], min(n_boot, 2000), seed=seed)
                                 for j in range(len(steps))])
            fraction = numpy.array(steps) / max(steps)
            curves[(m, mode)] = {"fraction": fraction, "normalized": stats[:, 0],
                                 "auc": E.auc(stats[:, 0])}
            bands[(m, mode)] = (stats[:, 1], stats[:, 2])
    aucs = None
    if auc_summary:
        aucs = {(s["method"], s["mode"]): (s["mean"], s["low"], s["high"]) for s in auc_summary}
    n = len(tasks)
    return _faithfulness_figure(curves, methods, f"deletion and insertion: mean over {n} "
                                f"image{'s' * (n != 1)}, 95% bootstrap interval (AUC: mean "
                                f"[interval]); the score is a class's probability, else the "
                                f"score over the intact image's", "score", bands, aucs)
