"""The evaluation figures (matplotlib, drawn on its Agg canvas: no pyplot, no global backend),
beside :mod:`nnviz.render`'s images: the maps as the layers are redrawn (Adebayo et al. 2018,
fig. 2), the similarity curves (fig. 4), the deletion and insertion curves (Petsiuk et al.
2018), and their summaries over many images. matplotlib is imported here only, inside
functions; every figure is written atomically (:func:`save_figure`) as PNG or SVG."""
import os
import textwrap

import numpy

from . import io

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")


def figure(width, height):
    """A matplotlib ``Figure`` of ``width`` × ``height`` inches at 100 dpi on an Agg canvas."""
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


def color(methods, m):
    """A method's colour: its place in ``methods``; black for anything else (the baseline)."""
    methods = list(methods)
    return COLORS[methods.index(m) % len(COLORS)] if m in methods else "black"


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


def _ordered(values):
    return list(dict.fromkeys(values))


# ---------------------------------------------------------------------------------------
# sanity checks (Adebayo et al. 2018)
# ---------------------------------------------------------------------------------------

def maps_figure(image, result, methods, title):
    """The paper's fig. 2: a row per method, the image, the intact net's map, then one map per
    step (``result`` of :func:`nnviz.methods.evaluate.randomization_test`)."""
    layers = result["layers"]
    cols, rows = len(layers) + 2, len(methods)
    tile, left = 1.05, 0.5
    width = cols * tile + left
    title = textwrap.fill(title, int(0.9 * width / 0.075))   # about 0.075 in a character at 10 pt
    top = 0.3 + 0.18 * (title.count("\n") + 1)               # inches above the tiles
    height = rows * tile + top
    fig = figure(width, height)
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


def curves_figure(results, methods, title, metrics, bands=None):
    """The paper's fig. 4: a row per randomization mode, a panel per similarity of
    ``metrics``; x is the last layer redrawn (``intact`` first, similarity 1). ``results``:
    {mode: {"layers", "values": {method: {metric: [values per layer]}}}}; ``bands``: the same
    with (low, high)."""
    modes = list(results)
    width, legend = 4 * len(metrics) + 2.2, 2.1         # inches; the legend's column
    fig = figure(width, 3.4 * len(modes) + 0.6)
    fig.suptitle(title, fontsize=11)
    axes = fig.subplots(len(modes), len(metrics), squeeze=False)
    for r, mode in enumerate(modes):
        layers = results[mode]["layers"]
        xs = numpy.arange(len(layers) + 1)
        for c, metric in enumerate(metrics):
            ax = axes[r, c]
            for m in methods:
                values = results[mode]["values"].get(m)
                if values is None:
                    continue
                ys = [1.0] + list(values[metric])
                ax.plot(xs, ys, "o-", ms=3, lw=1.3, color=color(methods, m), label=m)
                if bands is not None:
                    lo, hi = bands[mode]["values"][m][metric]
                    ax.fill_between(xs, [1.0] + list(lo), [1.0] + list(hi),
                                    color=color(methods, m), alpha=0.15, lw=0)
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


def sanity_summary_figure(rows, summary, metrics):
    """:func:`curves_figure` of the means over many images (``summary``: rows with
    ``method, randomized, layer, metric, mean, low, high``) with their intervals as bands;
    ``rows``: the merged per-image rows (their ``task``, ``method``, ``randomized``, ``layer``)."""
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
            m: {k: get(m, k, "mean") for k in metrics} for m in methods}}
        bands[mode] = {"values": {m: {k: (get(m, k, "low"), get(m, k, "high")) for k in metrics}
                                  for m in methods}}
    return curves_figure(results, methods, f"similarity to the intact net's map: mean over {n} "
                         f"image{'s' * (n != 1)}, 95% bootstrap interval", metrics, bands)


# ---------------------------------------------------------------------------------------
# deletion and insertion (Petsiuk et al. 2018)
# ---------------------------------------------------------------------------------------

def score_label(target):
    """The y axis of a target's deletion and insertion curves."""
    return f"probability of class {target.channel}" if target.is_class else \
        f"{target} score / score on the image"


def faithfulness_figure(curves, methods, title, ylabel, modes, baseline, bands=None, aucs=None):
    """Deletion and insertion (``modes``) side by side, a curve per method and the
    ``baseline``'s (random rankings: dashed black), the AUC (with its interval when given)
    in the legend. ``curves``: {(method, mode): {"fraction", "normalized", "auc"}};
    ``bands``: {(method, mode): (low, high)}; ``aucs``: {(method, mode): (mean, low, high)}."""
    def label(m, mode):
        auc = (aucs or {}).get((m, mode))
        return f"{m} (AUC {curves[(m, mode)]['auc']:.3f})" if auc is None else \
            f"{m} (AUC {auc[0]:.3f} [{auc[1]:.3f}, {auc[2]:.3f}])"

    shown = [(m, mode) for m in list(methods) + [baseline] for mode in modes if (m, mode) in curves]
    entries = len({m for m, _ in shown})
    # two legend columns under a 5-inch panel if the labels fit (about 0.05 in a character)
    ncol = 2 if max((len(label(*k)) for k in shown), default=0) * 0.05 < 2.4 else 1
    below = 0.15 * -(-entries // ncol) + 0.15        # inches of legend under the panels
    title = textwrap.fill(title, int(0.9 * 11 / 0.075))    # about 0.075 in a character at 10 pt
    top = 0.37 + 0.18 * (title.count("\n") + 1)            # inches above the panels
    height = 3.8 + top + below
    fig = figure(11, height)
    fig.suptitle(title, fontsize=10, y=1 - 0.1 / height, va="top")
    axes = fig.subplots(1, len(modes), squeeze=False)[0]
    for ax, mode in zip(axes, modes):
        for m in list(methods) + [baseline]:
            c = curves.get((m, mode))
            if c is None:
                continue
            ax.plot(c["fraction"], c["normalized"], "--" if m == baseline else "-",
                    color=color(methods, m), lw=1.4, label=label(m, mode))
            if bands is not None and (m, mode) in bands:
                lo, hi = bands[(m, mode)]
                ax.fill_between(c["fraction"], lo, hi, color=color(methods, m), alpha=0.15, lw=0)
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


def faithfulness_summary_figure(summary, auc_summary, modes, baseline):
    """:func:`faithfulness_figure` of the mean curves over many images with their intervals
    (``summary``: :func:`nnviz.methods.evaluate.curve_summary`), the AUCs' means and
    intervals from ``auc_summary`` (rows ``method, mode, mean, low, high``) when given."""
    aucs = None
    if auc_summary:
        aucs = {(s["method"], s["mode"]): (s["mean"], s["low"], s["high"]) for s in auc_summary}
    n = summary["images"]
    return faithfulness_figure(summary["curves"], summary["methods"], f"deletion and insertion: "
                               f"mean over {n} image{'s' * (n != 1)}, 95% bootstrap interval (AUC: "
                               f"mean [interval]); the score is a class's probability, else the "
                               f"score over the intact image's", "score", modes, baseline,
                               summary["bands"], aucs)


def loss_curve(history, path, title="training loss"):
    """The total loss and its terms per step of a feed-forward style net's training
    (``history``: dicts with ``step``, ``loss``, ``content``, ``style``, ``tv``; log scale) as a
    PNG, atomically. Returns ``path``."""
    fig = figure(6.4, 3.6)
    ax = fig.add_subplot()
    steps = [h["step"] for h in history]
    for key, style in (("loss", "-"), ("content", "--"), ("style", "--"), ("tv", ":")):
        v = [h[key] for h in history]
        if any(a > 0 for a in v):
            ax.plot(steps, v, style, label="total" if key == "loss" else key)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (batch mean)")
    ax.set_title(title)
    ax.legend(loc="upper right")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return os.fspath(path)
