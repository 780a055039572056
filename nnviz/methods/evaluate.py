"""Which maps explain the model? Sanity checks (Adebayo et al. 2018, "Sanity checks for saliency
maps", NeurIPS 2018) and faithfulness (Petsiuk, Das, Saenko 2018, "RISE: Randomized input
sampling for explanation of black-box models", BMVC 2018, sec. 4.1: deletion and insertion),
with completeness (Sundararajan et al. 2017; LRP's relevance conservation).

- Model-parameter randomization (Adebayo et al. 2018, sec. 3.1 and fig. 2, 4): the layers with
  parameters are redrawn with the net's own seeded random initialization
  (:func:`nnviz.models.init_layer`), *cascading* from the top layer down or *independently*
  one at a time, on a copy of the net (the caller's arrays are never written); each method's
  map after each step is compared with its map on the intact net.
- Random target (Adebayo et al. 2018's random-logit test, here also for channels): the map of
  the target against the map of another target, with the same similarities.
- Similarities (as the paper's fig. 4): maps are reduced to H×W as the paper's code does (the
  sum over colours of |map|, scaled to [0, 1] with the 99th percentile as 1; the signed sum,
  scaled by the 99th percentile of itself to [-1, 1]); then Spearman's rank correlation of
  the absolute maps (``spearman_abs``) and of the signed maps (``spearman``), SSIM of the
  absolute maps (7×7 windows, data range 1, as scikit-image's default) and the Pearson
  correlation of their HOG features (``skimage.feature.hog`` with its defaults).
- Deletion and insertion (RISE, ``evaluation.py``'s protocol): the pixels ranked by the map
  (:func:`rank_map`), most salient first, are set to the substrate (deletion: zero in the
  preprocessed space) or put back into a blurred copy (insertion: :func:`blur`, RISE's 11×11
  Gaussian of σ = 5 with zero padding), ``ceil(H·W / steps)`` pixels a step; the score after
  each step and the normalized area under the curve, ``(sum(s) - s[0]/2 - s[-1]/2) / n`` (the
  trapezoid rule on x = i/n). Scores: the class's softmax probability for an ``fc8`` target; otherwise the
  target channel's mean activation (a unit's value), divided by its value on the image, so
  that curves of different channels and images compare (1 = the intact image).
- Completeness: integrated gradients' sum minus the score difference (Captum's convergence
  delta); for LRP composites, the relevance at the input minus the score it started from.
- Over many images (``nnviz evaluate-aggregate``): the result CSVs of many runs merged, and
  means with percentile-bootstrap intervals (:func:`bootstrap_ci`), as tables and figures
  (:mod:`nnviz.plots`).

Arrays: ``x: (1, C, H, W)`` preprocessed (one image); maps on the host as float64.
"""
import contextlib
import copy
import math
import os
from collections import OrderedDict

import numpy

from .. import backend, models, plots, rules, tables, targets
from ..errors import BadFile, BadOption, BadShape, BadTarget
from ..functional import gaussian_blur
from ..progress import progress_bar
from ..vgg import TOP_LAYERS
from . import attribution, cam
from .lrp import lrp

MODES = ("cascade", "independent")
CURVES = ("deletion", "insertion")
METRICS = ("spearman_abs", "spearman", "ssim", "hog")
SANITY_COLUMNS = ("method", "randomized", "layer") + METRICS
RANDOM_TARGET_COLUMNS = ("method", "target", "other") + METRICS
CURVE_COLUMNS = ("method", "mode", "step", "fraction", "pixels", "score", "normalized")
AUC_COLUMNS = ("method", "mode", "auc")
COMPLETENESS_COLUMNS = ("method", "attribution_sum", "score_difference", "delta", "relative")
RANDOM = "random"                 # the ranking baseline's name in the curves


def _progress(total, desc, progress):
    """:func:`nnviz.progress.progress_bar` as a context (``progress=None``: on a terminal)."""
    return contextlib.closing(progress_bar(total, desc, progress))


# ---------------------------------------------------------------------------------------
# the methods compared
# ---------------------------------------------------------------------------------------

# the LRP composites compared: zennit's (rules.COMPOSITES) but the "_flat" ones, which differ
# from their base composite only at the first layer; epsilon_gamma_box (Montavon et al.'s VGG
# recipe, lrp's default) first
LRP_COMPOSITES = tuple(sorted((c for c in rules.COMPOSITES if not c.endswith("_flat")),
                              key=lambda c: c != "epsilon_gamma_box"))


def method_names():
    """Every method the checks compare, in order: the gradient (Simonyan et al. 2013), guided
    backprop, Grad-CAM, guided Grad-CAM, integrated gradients, SmoothGrad, gradient × input,
    and ``lrp-<composite>`` for the LRP composites of :data:`LRP_COMPOSITES`."""
    names = ["gradient", "guided", "gradcam", "guided-gradcam", "ig", "smoothgrad", "gradxinput"]
    return names + ["lrp-" + c.replace("_", "-") for c in LRP_COMPOSITES]


def check_methods(methods):
    """``methods`` (names, or a comma-separated string; None: all) as a checked list."""
    known = method_names()
    if methods is None:
        return known
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    methods = list(dict.fromkeys(methods))
    for m in methods:
        if m not in known:
            raise BadOption(f"unknown method {m!r}: expected one of {', '.join(known)}")
    if not methods:
        raise BadOption(f"no method given: expected some of {', '.join(known)}")
    return methods


def is_cam(method):
    return method == "gradcam"


def default_cam_layer(net, target):
    """The Grad-CAM layer for ``target``: the last convolutional ReLU for a fully connected
    target (relu5_3 on VGG16), else the layer just below the target's layer."""
    t = targets.parse(target)
    names = net.layer_names
    if t.layer in TOP_LAYERS and "flatten" in net.layers:
        below = names[:names.index("flatten")]
        return [n for n in below if n.startswith("relu")][-1]
    k = names.index(net.check_layer(t.layer, "target layer"))
    if k == 0:
        raise BadTarget(f"Grad-CAM needs a layer below the target's layer {t.layer!r}")
    return names[k - 1]


def attribute(net, x, target, method, cam_layer=None, ig_steps=16, samples=16, seed=0):
    """The raw map of ``method`` for ``target`` on ``x``, on the net's device: shaped as
    ``x`` ((N, 1, H, W) for Grad-CAM). ``ig_steps``: integrated gradients' midpoint steps;
    ``samples``: SmoothGrad's (of the gradient, sigma 0.15, noise seeded by ``seed``)."""
    if method == "gradient":
        return attribution.saliency(net, x, target)
    if method == "guided":       # guided backprop of the same score as the gradient (seed 1)
        return attribution.gradient(net, x, target, "guided")
    if method in ("gradcam", "guided-gradcam"):
        layer = cam_layer or default_cam_layer(net, target)
        f = cam.gradcam if method == "gradcam" else cam.guided_gradcam
        return f(net, x, target, layer=layer)
    if method == "ig":
        return attribution.integrated_gradients(net, x, target, steps=ig_steps)
    if method == "smoothgrad":
        return attribution.smoothgrad("saliency", net, x, target, n=samples, seed=seed)
    if method == "gradxinput":
        return attribution.gradient_x_input(net, x, target)
    if method.startswith("lrp-"):
        return lrp(net, x, target, rule=method[4:].replace("-", "_"), seed="score")
    raise BadOption(f"unknown method {method!r}: expected one of {', '.join(method_names())}")


# ---------------------------------------------------------------------------------------
# reductions and similarities
# ---------------------------------------------------------------------------------------

def _host(m):
    """A map (1, C, H, W) or (C, H, W) or (H, W) as a float64 host array (C, H, W)."""
    m = numpy.asarray(backend.to_numpy(m), dtype=numpy.float64)
    if m.ndim == 4:
        if m.shape[0] != 1:
            raise BadShape(f"one map at a time, got a batch of shape {m.shape}")
        m = m[0]
    return m[None] if m.ndim == 2 else m


def normalize_abs(m):
    """The paper's absolute map (its code's ``VisualizeImageGrayscale``): the sum over colours
    of |m|, scaled to [0, 1] between its minimum and its 99th percentile, clipped."""
    a = numpy.abs(_host(m)).sum(axis=0)
    lo, hi = a.min(), numpy.percentile(a, 99)
    if not hi > lo:
        return numpy.zeros_like(a)
    return numpy.clip((a - lo) / (hi - lo), 0.0, 1.0)


def normalize_signed(m):
    """The paper's diverging map: the sum over colours of m, divided by the 99th percentile of
    its absolute value, clipped to [-1, 1]."""
    s = _host(m).sum(axis=0)
    span = numpy.percentile(numpy.abs(s), 99)
    if not span > 0:
        span = numpy.abs(s).max()
    return numpy.clip(s / span, -1.0, 1.0) if span > 0 else numpy.zeros_like(s)


def ranks(a):
    """Ranks 1..n of the values of ``a`` (flattened), ties given their average rank."""
    a = numpy.asarray(a, dtype=numpy.float64).ravel()
    order = numpy.argsort(a, kind="mergesort")
    s = a[order]
    cut = numpy.flatnonzero(s[1:] != s[:-1]) + 1
    starts = numpy.concatenate([[0], cut])
    ends = numpy.concatenate([cut, [a.size]])
    r = numpy.empty(a.size)
    r[order] = numpy.repeat((starts + ends + 1) / 2.0, ends - starts)   # mean of ranks start+1..end
    return r


def pearson(a, b):
    """Pearson's correlation of two arrays (flattened); NaN when one is constant."""
    a = numpy.asarray(a, dtype=numpy.float64).ravel()
    b = numpy.asarray(b, dtype=numpy.float64).ravel()
    if a.shape != b.shape:
        raise BadShape(f"arrays of {a.size} and {b.size} values")
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else float("nan")


def spearman(a, b):
    """Spearman's rank correlation: Pearson's correlation of the (average-tie) ranks."""
    return pearson(ranks(a), ranks(b))


def _box_means(a, k):
    """Means over every k×k window inside ``a`` (H, W): (H - k + 1, W - k + 1)."""
    c = numpy.pad(a, ((1, 0), (1, 0))).cumsum(axis=0).cumsum(axis=1)
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def ssim(a, b, data_range=1.0, win=7, k1=0.01, k2=0.03):
    """The mean structural similarity (Wang et al. 2004) of two (H, W) maps over the k×k
    windows that lie inside them: local means, sample variances and covariance in ``win`` ×
    ``win`` windows, ``C1 = (k1 R)^2``, ``C2 = (k2 R)^2``: scikit-image's
    ``structural_similarity`` with its defaults (uniform window) and ``data_range=R``."""
    a = numpy.asarray(a, dtype=numpy.float64)
    b = numpy.asarray(b, dtype=numpy.float64)
    if a.shape != b.shape or a.ndim != 2 or min(a.shape) < win:
        raise BadShape(f"ssim of two 2-d maps of the same size, at least {win}×{win}; got "
                       f"{a.shape} and {b.shape}")
    ma, mb = _box_means(a, win), _box_means(b, win)
    unbiased = win * win / (win * win - 1.0)
    va = unbiased * (_box_means(a * a, win) - ma * ma)
    vb = unbiased * (_box_means(b * b, win) - mb * mb)
    cov = unbiased * (_box_means(a * b, win) - ma * mb)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return float(s.mean())


def hog_features(a):
    """scikit-image's HOG descriptor of a (H, W) map, with its defaults (9 orientations, 8×8
    cells, 3×3 blocks, L2-Hys)."""
    from skimage.feature import hog
    return hog(numpy.asarray(a, dtype=numpy.float64), feature_vector=True)


def hog_similarity(a, b):
    """Pearson's correlation of the HOG features of two (H, W) maps (Adebayo et al. 2018)."""
    return pearson(hog_features(a), hog_features(b))


class Reduced:
    """A map reduced for the similarities: ``abs`` and ``signed`` (H, W) (see
    :func:`normalize_abs`, :func:`normalize_signed`)."""

    __slots__ = ("abs", "signed")

    def __init__(self, m):
        self.abs, self.signed = normalize_abs(m), normalize_signed(m)


def similarities(m0, m1):
    """``{spearman_abs, spearman, ssim, hog}`` of two maps (raw maps or :class:`Reduced`)."""
    r0 = m0 if isinstance(m0, Reduced) else Reduced(m0)
    r1 = m1 if isinstance(m1, Reduced) else Reduced(m1)
    return {"spearman_abs": spearman(r0.abs, r1.abs), "spearman": spearman(r0.signed, r1.signed),
            "ssim": ssim(r0.abs, r1.abs, data_range=1.0), "hog": hog_similarity(r0.abs, r1.abs)}


# ---------------------------------------------------------------------------------------
# model-parameter randomization (Adebayo et al. 2018)
# ---------------------------------------------------------------------------------------

def copy_net(net):
    """A net of copies of ``net``'s layers that share its parameter arrays. Redrawing a
    layer of the copy assigns new arrays (:func:`nnviz.models.init_layer`), so the caller's
    net is never changed; its activations are not touched either."""
    c = copy.copy(net)
    c.layers = OrderedDict((name, copy.copy(layer)) for name, layer in net.layers.items())
    c.activations = OrderedDict()
    if hasattr(c, "input"):
        c.input = None
    return c


def parameter_layers(net, start=None):
    """The layers with parameters from ``start`` (a layer name; default the top) down to
    the first layer, top first: the order of the cascading randomization."""
    names = net.layer_names
    top = names.index(net.check_layer(start, "start layer")) if start is not None else len(names) - 1
    return [n for n in reversed(names[:top + 1]) if getattr(net.layers[n], "weight", None) is not None]


def randomize(net, name, seed=0):
    """Redraw layer ``name`` of ``net`` (a copy: see :func:`copy_net`) with the VGG builders'
    initialization, from the seed ``(seed, position of the layer)``: the same layer gets the
    same draw in the cascading and independent tests."""
    layer = net.layers[net.check_layer(name)]
    if getattr(layer, "weight", None) is None:
        raise BadOption(f"layer {name!r} has no parameters to randomize")
    models.init_layer(layer, numpy.random.default_rng([int(seed), net.layer_names.index(name)]))
    layer.to(net.xp)
    return net


def _one_image(net, x):
    x = attribution.as_batch(net, x)
    if x.shape[0] != 1:
        raise BadShape(f"the checks take one image at a time, got a batch of {x.shape[0]}")
    return x


def _layers_for(net, target, start, depth):
    t = targets.parse(target).check(net)
    layers = parameter_layers(net, start or t.layer)
    if depth is not None:
        if int(depth) < 1:
            raise BadOption(f"depth {depth}: randomize at least one layer")
        layers = layers[:int(depth)]
    if not layers:
        raise BadOption(f"no layer with parameters at or below {start or t.layer!r}")
    return layers


def randomization_test(net, x, target, methods=None, mode="cascade", start=None, depth=None,
                       seed=0, options=None, progress=None):
    """Adebayo et al. 2018's model-parameter randomization test on one image.

    ``mode``: ``"cascade"`` (redraw the layers with parameters from ``start`` (default: the
    target's layer) down, keeping each redrawn layer random for the next steps) or
    ``"independent"`` (one layer at a time, the others intact). ``depth``: how many layers
    (default all). ``options``: keyword arguments of :func:`attribute`.

    Returns a dict: ``layers`` (in the order redrawn), ``original`` ({method: Reduced}),
    ``maps`` ({layer: {method: Reduced}}) and ``rows`` (dicts with the columns
    :data:`SANITY_COLUMNS`, one per method and step). ``net`` is left as it was.
    """
    if mode not in MODES:
        raise BadOption(f"randomization mode {mode!r}: expected one of {', '.join(MODES)}")
    methods = check_methods(methods)
    x = _one_image(net, x)
    options = dict(options or {})
    layers = _layers_for(net, target, start, depth)
    original = {m: Reduced(attribute(net, x, target, m, **options)) for m in methods}
    maps, rows = OrderedDict(), []
    work = copy_net(net)
    with _progress(len(layers) * len(methods), f"sanity {mode}", progress) as bar:
        for name in layers:
            if mode == "independent":
                work = copy_net(net)
            randomize(work, name, seed)
            maps[name] = {}
            for m in methods:
                r = Reduced(attribute(work, x, target, m, **options))
                maps[name][m] = r
                rows.append(dict(method=m, randomized=mode, layer=name,
                                 **similarities(original[m], r)))
                bar.update(1)
    return {"layers": layers, "original": original, "maps": maps, "rows": rows}


def other_target(net, x, target, seed=0):
    """Another target of the same layer, drawn with ``seed``: another class of ``fc8``, or
    another channel (at the same position for a unit)."""
    t = targets.parse(target).check(net)
    act = attribution.forward_to(net, _one_image(net, x), t.layer)
    choices = [c for c in range(act.shape[1]) if c != t.channel]
    if not choices:
        raise BadTarget(f"layer {t.layer!r} has one channel: no other target")
    c = int(numpy.random.default_rng(seed).choice(choices))
    return targets.Target(t.layer, c, t.position)


def random_target_test(net, x, target, other=None, methods=None, seed=0, options=None,
                       progress=None):
    """Adebayo et al. 2018's random-logit test: each method's map for ``target`` against its
    map for ``other`` (default :func:`other_target`). Returns rows with the columns
    :data:`RANDOM_TARGET_COLUMNS`."""
    methods = check_methods(methods)
    x = _one_image(net, x)
    t = targets.parse(target).check(net)
    o = targets.parse(other).check(net) if other is not None else other_target(net, x, t, seed)
    options = dict(options or {})
    rows = []
    with _progress(len(methods), "random target", progress) as bar:
        for m in methods:
            a = attribute(net, x, t, m, **options)
            b = attribute(net, x, o, m, **options)
            rows.append(dict(method=m, target=str(t), other=str(o), **similarities(a, b)))
            bar.update(1)
    return rows


# ---------------------------------------------------------------------------------------
# deletion and insertion (Petsiuk et al. 2018)
# ---------------------------------------------------------------------------------------

SIGNED_ATTRIBUTIONS = ("ig", "gradxinput")


def rank_map(m, method):
    """The (H, W) map whose order ranks the pixels, as the method's own rendering reduces
    it: a CAM itself; the largest |value| over colours for gradients (gradient, guided
    backprop, guided Grad-CAM, SmoothGrad); the sum over colours for signed attributions
    (integrated gradients, gradient × input, LRP: positive evidence first)."""
    m = _host(m)
    if is_cam(method) or m.shape[0] == 1:
        return m[0]
    if method in SIGNED_ATTRIBUTIONS or method.startswith("lrp-"):
        return m.sum(axis=0)
    return numpy.abs(m).max(axis=0)


def ranking(saliency, seed=0):
    """Flat pixel indices of an (H, W) map, most salient first; equal values in an order
    drawn with ``seed`` (ties carry no ranking, e.g. the zeros of a CAM)."""
    s = numpy.asarray(saliency, dtype=numpy.float64).ravel()
    perm = numpy.random.default_rng(seed).permutation(s.size)
    return perm[numpy.argsort(-s[perm], kind="stable")]


def random_ranking(shape, seed):
    """A uniformly random order of the H×W pixels (the baseline ranking)."""
    return numpy.random.default_rng(seed).permutation(int(numpy.prod(shape)))


def substrate(x, mode):
    """What the pixels become (deletion: zeros) or start from (insertion: ``x`` blurred by
    RISE's choices, Petsiuk et al.'s ``evaluation.py``: a Gaussian of σ = 5 px on an 11×11
    window (the response of ``scipy.ndimage.gaussian_filter(sigma=5)`` to an 11×11 impulse,
    its tails folded back in), zero padding, same size: :func:`nnviz.functional.gaussian_blur`,
    computed in float64 and returned in ``x``'s dtype)."""
    if mode == "deletion":
        return backend.get_array_module(x).zeros_like(x)
    if mode == "insertion":
        return gaussian_blur(x.astype(numpy.float64), 5.0, mode="constant", window=11).astype(x.dtype)
    raise BadOption(f"curve {mode!r}: expected one of {', '.join(CURVES)}")


def scores(net, xs, target):
    """The score of ``target`` for each image of ``xs`` (host float64, (N,)): the softmax
    probability of an ``fc8`` class, else the channel's mean activation (a unit's value)."""
    t = targets.parse(target)
    act = attribution.forward_to(net, xs, t.layer)
    a = numpy.asarray(backend.to_numpy(act), dtype=numpy.float64)
    if t.is_class:
        z = a - a.max(axis=1, keepdims=True)
        e = numpy.exp(z)
        return e[:, t.channel] / e.sum(axis=1)
    if a.ndim == 2:
        return a[:, t.channel]
    if t.position is not None:
        return a[:, t.channel, t.position[0], t.position[1]]
    return a[:, t.channel].mean(axis=(1, 2))


def auc(curve):
    """RISE's normalized area under a curve of n + 1 scores at x = 0, 1/n, ..., 1 (the
    trapezoid rule)."""
    y = numpy.asarray(curve, dtype=numpy.float64)
    if y.size < 2:
        raise BadShape("a curve needs two points at least")
    return float((y.sum() - y[0] / 2 - y[-1] / 2) / (y.size - 1))


def steps_of(h, w, steps):
    """``(pixels per step, number of steps)`` for an h × w image and about ``steps`` steps."""
    steps = int(steps)
    if steps < 1:
        raise BadOption(f"steps must be >= 1, got {steps}")
    hw = h * w
    per = -(-hw // min(steps, hw))
    return per, -(-hw // per)


def causal_curve(net, x, target, order, mode="deletion", steps=50, batch=4, progress=None):
    """The deletion or insertion curve of one image for the pixel ``order`` (flat indices,
    most salient first; see :func:`ranking`).

    Returns a dict: ``fraction`` (i/n), ``pixels`` (changed after step i), ``score`` (raw),
    ``normalized`` (the probability itself for an ``fc8`` class, else score / score of the
    intact image) and ``auc`` (of ``normalized``)."""
    x = _one_image(net, x)
    t = targets.parse(target).check(net)
    xp = backend.get_array_module(x)
    h, w = x.shape[2:]
    order = numpy.asarray(order).ravel()
    if order.size != h * w or not numpy.array_equal(numpy.sort(order), numpy.arange(h * w)):
        raise BadShape(f"the pixel order must be a permutation of the {h}×{w} pixels")
    per, n = steps_of(h, w, steps)
    if mode == "deletion":
        start, finish = x, substrate(x, mode)
    else:
        start, finish = substrate(x, mode), x
    rank = numpy.empty(h * w, dtype=numpy.int64)
    rank[order] = numpy.arange(h * w)
    rank = xp.asarray(rank.reshape(1, 1, h, w))
    pixels = numpy.minimum(numpy.arange(n + 1) * per, h * w)
    out = numpy.empty(n + 1)
    batch = max(1, int(batch))
    with _progress(n + 1, mode, progress) as bar:
        for lo in range(0, n + 1, batch):
            k = xp.asarray(pixels[lo:lo + batch].reshape(-1, 1, 1, 1))
            xs = xp.where(rank < k, finish, start)                        # (b, C, H, W)
            out[lo:lo + batch] = scores(net, xs.astype(x.dtype, copy=False), t)
            bar.update(len(pixels[lo:lo + batch]))
    if t.is_class:
        normalized = out.copy()
    else:
        ref = float(scores(net, x, t)[0])
        if not ref > 0:
            raise BadTarget(f"target {t} scores {ref:.4g} on the image: nothing to delete or "
                            f"insert; pick a channel that responds (e.g. the strongest)")
        normalized = out / ref
    return {"fraction": numpy.arange(n + 1) / n, "pixels": pixels, "score": out,
            "normalized": normalized, "auc": auc(normalized)}


def faithfulness(net, x, target, methods=None, steps=50, random_orders=5, seed=0, batch=4,
                 options=None, maps=None, progress=None):
    """Deletion and insertion curves (Petsiuk et al. 2018) of each method's ranking on one
    image, and of ``random_orders`` random rankings (method ``"random"``: the mean curve, and
    the mean of their AUCs).

    Returns a dict: ``curves`` {(method, mode): curve dict of :func:`causal_curve`},
    ``maps`` {method: raw map on the host} (``maps`` given: used instead of computing them)."""
    methods = check_methods(methods)
    x = _one_image(net, x)
    t = targets.parse(target).check(net)
    options = dict(options or {})
    maps = dict(maps or {})
    for m in methods:
        if m not in maps:
            maps[m] = _host(attribute(net, x, t, m, **options))
    h, w = x.shape[2:]
    curves = OrderedDict()
    random_orders = int(random_orders)
    total = (len(methods) + random_orders) * len(CURVES)
    with _progress(total, "faithfulness", progress) as bar:
        for m in methods:
            order = ranking(rank_map(maps[m], m), seed)
            for mode in CURVES:
                curves[(m, mode)] = causal_curve(net, x, t, order, mode, steps, batch, False)
                bar.update(1)
        if random_orders > 0:
            for mode in CURVES:
                runs = []
                for k in range(random_orders):
                    runs.append(causal_curve(net, x, t, random_ranking((h, w), [seed, k]), mode,
                                             steps, batch, False))
                    bar.update(1)
                mean = {key: numpy.mean([r[key] for r in runs], axis=0)
                        for key in ("score", "normalized")}
                curves[(RANDOM, mode)] = dict(runs[0], **mean,
                                              auc=float(numpy.mean([r["auc"] for r in runs])))
    return {"curves": curves, "maps": maps}


# ---------------------------------------------------------------------------------------
# completeness
# ---------------------------------------------------------------------------------------

def completeness(net, x, target, method, attributions, baseline=None):
    """How far a map's sum is from the score it explains, for one image: integrated gradients
    (``method="ig"``): ``sum - (S(x) - S(baseline))``, Captum's convergence delta with the
    target's score S (pre-softmax class score, or the channel's activation summed over space);
    LRP (``lrp-*``): ``sum(relevance) - S(x)``. Returns a dict with the columns
    :data:`COMPLETENESS_COLUMNS`."""
    x = _one_image(net, x)
    t = targets.parse(target).check(net)
    total = float(numpy.asarray(backend.to_numpy(attributions), dtype=numpy.float64).sum())
    s_x = float(backend.to_numpy(t.score(attribution.forward_to(net, x, t.layer)))[0])
    if method == "ig":
        xp = backend.get_array_module(x)
        b = xp.zeros_like(x) if baseline is None else backend.to_device(baseline, net.device)
        s_b = float(backend.to_numpy(t.score(attribution.forward_to(net, b.astype(x.dtype), t.layer)))[0])
        diff = s_x - s_b
    elif method.startswith("lrp-"):
        diff = s_x
    else:
        raise BadOption(f"completeness is defined for ig and lrp-* methods, not {method!r}")
    delta = total - diff
    return {"method": method, "attribution_sum": total, "score_difference": diff,
            "delta": delta, "relative": delta / diff if diff else float("nan")}


# ---------------------------------------------------------------------------------------
# over many images
# ---------------------------------------------------------------------------------------

def bootstrap_ci(values, n_boot=10000, level=0.95, seed=0):
    """``(mean, low, high)``: the mean of ``values`` and its percentile bootstrap interval
    (``n_boot`` resamples with replacement, drawn with ``seed``); NaN values are dropped."""
    v = numpy.asarray(values, dtype=numpy.float64).ravel()
    v = v[~numpy.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = numpy.random.default_rng(seed)
    means = v[rng.integers(0, v.size, (int(n_boot), v.size))].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = numpy.quantile(means, [alpha, 1 - alpha])
    return float(v.mean()), float(low), float(high)


def similarity_curves(rows, layers, methods):
    """``{method: {metric: [similarity after each of layers]}}`` of one randomization's rows
    (the curves of :func:`nnviz.plots.curves_figure`)."""
    out = {}
    for m in methods:
        sel = {r["layer"]: r for r in rows if r["method"] == m}
        out[m] = {k: [float(sel[n][k]) for n in layers] for k in METRICS}
    return out


def curve_rows(curves):
    """The rows of :func:`faithfulness`'s ``curves``: one per step (:data:`CURVE_COLUMNS`),
    and one AUC per method and mode (:data:`AUC_COLUMNS`)."""
    rows, aucs = [], []
    for (m, mode), c in curves.items():
        aucs.append({"method": m, "mode": mode, "auc": c["auc"]})
        for i in range(len(c["score"])):
            rows.append({"method": m, "mode": mode, "step": i, "fraction": c["fraction"][i],
                         "pixels": c["pixels"][i], "score": c["score"][i],
                         "normalized": c["normalized"][i]})
    return rows, aucs


RESULT_FILES = ("sanity.csv", "random-target.csv", "faithfulness.csv", "faithfulness-auc.csv",
                "completeness.csv")
STAT_COLUMNS = ("metric", "mean", "low", "high", "n")
# the result files summarized: their columns, and the summary's group keys and metrics
SUMMARIES = {
    "sanity.csv": (SANITY_COLUMNS, ("method", "randomized", "layer"), METRICS),
    "random-target.csv": (RANDOM_TARGET_COLUMNS, ("method",), METRICS),
    "faithfulness-auc.csv": (AUC_COLUMNS, ("method", "mode"), ("auc",)),
    "completeness.csv": (COMPLETENESS_COLUMNS, ("method",), ("delta", "relative")),
}


def find_results(folders):
    """{file name: [(task, path)]} for the result CSVs (:data:`RESULT_FILES`) under
    ``folders`` (recursively, hidden folders such as ``.partial`` skipped; the task is the
    folder holding the file, relative to the folder given)."""
    found = {name: [] for name in RESULT_FILES}
    for folder in folders:
        if not os.path.isdir(folder):
            raise BadFile(f"{folder}: no such folder")
        for d, subdirs, files in os.walk(folder):
            subdirs[:] = sorted(s for s in subdirs if not s.startswith("."))
            for name in RESULT_FILES:
                if name in files:
                    task = os.path.relpath(d, folder)
                    task = os.path.basename(os.path.abspath(folder)) if task == "." else task
                    found[name].append((task, os.path.join(d, name)))
    if not any(found.values()):
        raise BadFile(f"no {', '.join(RESULT_FILES)} under {', '.join(folders)}: run nnviz "
                      f"sanity or nnviz faithfulness (or nnviz batch of them) there first")
    return found


def _merged(found, name):
    return [dict(row, task=task) for task, path in found[name] for row in tables.read_csv(path)]


def summarize(rows, keys, metrics, n_boot, seed):
    """One row per group of ``keys`` and per metric: mean, low, high, n (images)."""
    groups = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    out = []
    for key, members in groups.items():
        for metric in metrics:
            values = [float(r[metric]) for r in members]
            mean, low, high = bootstrap_ci(values, n_boot, seed=seed)
            out.append(dict(zip(keys, key), metric=metric, mean=mean, low=low, high=high,
                            n=len(values)))
    return out


def curve_summary(rows, n_boot, seed):
    """The mean deletion and insertion curves over the images of ``rows`` (the merged rows
    of faithfulness.csv), each step's 95% interval from at most 2000 bootstrap resamples:
    ``{"methods", "curves": {(method, mode): {"fraction", "normalized", "auc"}}, "bands":
    {(method, mode): (low, high)}, "images"}``."""
    ordered = list(dict.fromkeys(r["method"] for r in rows))
    methods = [m for m in ordered if m != RANDOM]
    curves, bands = {}, {}
    for m in methods + [RANDOM]:
        for mode in CURVES:
            sel = [r for r in rows if r["method"] == m and r["mode"] == mode]
            if not sel:
                continue
            steps = sorted({int(r["step"]) for r in sel})
            per_task = {}
            for r in sel:
                per_task.setdefault(r["task"], {})[int(r["step"])] = float(r["normalized"])
            full = [t for t in per_task.values() if len(t) == len(steps)]
            if len(full) != len(per_task):
                raise BadFile(f"{m} {mode}: the runs have different numbers of steps; "
                              f"aggregate runs made with the same --steps")
            ys = numpy.array([[t[s] for s in steps] for t in full])          # (images, steps)
            stats = numpy.array([bootstrap_ci(ys[:, j], min(n_boot, 2000), seed=seed)
                                 for j in range(len(steps))])
            curves[(m, mode)] = {"fraction": numpy.array(steps) / max(steps),
                                 "normalized": stats[:, 0], "auc": auc(stats[:, 0])}
            bands[(m, mode)] = (stats[:, 1], stats[:, 2])
    return {"methods": methods, "curves": curves, "bands": bands,
            "images": len(dict.fromkeys(r["task"] for r in rows))}


def aggregate(found, n_boot=10000, seed=0):
    """What ``nnviz evaluate-aggregate`` writes from the result files ``found``
    (:func:`find_results`), in the order written: ``[(name, make)]``, where ``make()`` is a
    table ``(columns, rows)`` for a name ending in ``.csv`` (the merged rows, with their
    ``task``; the summaries of :func:`summarize`), else a figure (:mod:`nnviz.plots`).
    Nothing is computed before ``make`` is called, so that every path can be checked first."""
    done = {}

    def summary(file):           # a result file's merged rows and their summary, once
        if file not in done:
            _, keys, metrics = SUMMARIES[file]
            rows = _merged(found, file)
            done[file] = rows, summarize(rows, keys, metrics, n_boot, seed)
        return done[file]

    def pair(file, merged_name, summary_name):
        columns, keys, _ = SUMMARIES[file]
        return [(merged_name, lambda: (("task",) + columns, summary(file)[0])),
                (summary_name, lambda: (keys + STAT_COLUMNS, summary(file)[1]))]

    def faithfulness_figure():
        aucs = summary("faithfulness-auc.csv")[1] if found["faithfulness-auc.csv"] else None
        curves = curve_summary(_merged(found, "faithfulness.csv"), n_boot, seed)
        return plots.faithfulness_summary_figure(curves, aucs, CURVES, RANDOM)

    plan = []
    if found["sanity.csv"]:
        plan += pair("sanity.csv", "sanity-all.csv", "sanity-summary.csv")
        plan.append(("sanity-summary",
                     lambda: plots.sanity_summary_figure(*summary("sanity.csv"), METRICS)))
    if found["random-target.csv"]:
        plan += pair("random-target.csv", "random-target-all.csv", "random-target-summary.csv")
    if found["faithfulness-auc.csv"]:
        plan += pair("faithfulness-auc.csv", "faithfulness-auc-all.csv", "faithfulness-summary.csv")
    if found["faithfulness.csv"]:
        plan.append(("faithfulness-summary", faithfulness_figure))
    if found["completeness.csv"]:
        plan += pair("completeness.csv", "completeness-all.csv", "completeness-summary.csv")
    return plan
