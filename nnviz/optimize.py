"""Seeing what units want: images optimized for a unit, a channel, a class or a layer.

- :func:`maximize` — activation maximization (Erhan et al. 2009; Yosinski et al. 2015,
  "Understanding Neural Networks Through Deep Visualization": L2 decay, Gaussian blur every
  few steps, clipping of pixels with small norm, jitter), with the Lp and total-variation
  regularizers of Mahendran & Vedaldi 2015 (eq. 3 and 5) as in keras-vis / Keras' "How
  convolutional neural networks see the world" (gradient normalized by its RMS).
- :func:`class_model` — Simonyan, Vedaldi & Zisserman 2013, eq. (1):
  ``argmax_I S_c(I) − λ‖I‖²₂`` with ``S_c`` the pre-softmax class score.
- :func:`dream` — DeepDream (Mordvintsev, Olah & Tyka 2015; TensorFlow's DeepDream tutorial):
  gradient ascent on the mean activation of layers, octaves carrying the detail, tiled
  gradients with a random roll.
- :func:`invert` — Mahendran & Vedaldi 2015, eq. (1)–(5): ``argmin_x ‖Φ(x) − Φ₀‖² / ‖Φ₀‖²
  + λ_α N_α(x) + λ_TV TV_β(x)``.

Every value comes with its hand-written gradient (no autograd). Images ``x: (N, 3, H, W)``
live in the net's preprocessed space (:meth:`Net.preprocess`); values are per image, ``(N,)``,
and gradients are those of the sum over the batch, shaped as ``x``. Regularizers see ``x``
divided by ``scale`` (the functions' argument; the optimizers pass half the pixel range, so
that images lie in about [-1, 1] whatever the preprocessing).
"""
import math
import sys

import numpy

from . import backend, functional, targets
from .backend import get_array_module, to_numpy

# -- regularizers ---------------------------------------------------------------------------


def lp_norm(x, p=6.0, scale=1.0):
    """Mahendran & Vedaldi's α-norm ``‖x/s‖_p^p`` normalized by the image size D = C·H·W:
    ``value[n] = Σ |x[n]/s|^p / D``; gradient ``p |x/s|^(p-1) sign(x) / (s D)``."""
    xp = get_array_module(x)
    d = x[0].size
    a = xp.abs(x / scale)
    value = (a ** p).reshape(len(x), -1).sum(axis=1) / d
    grad = p * a ** (p - 1) * xp.sign(x) / (scale * d)
    return value, grad


def total_variation(x, beta=2.0, scale=1.0):
    """Total variation with exponent β (Mahendran & Vedaldi eq. 5; keras-vis), per channel,
    normalized by the image size D = C·H·W::

        TV_β = Σ_{c, i<H-1, j<W-1} ((x[i+1,j] − x[i,j])² + (x[i,j+1] − x[i,j])²)^(β/2) / D

    on ``x/s``. For β < 2 the gradient is infinite where both differences vanish (0 · ∞ gives
    NaN; :func:`maximize` reports it as the ``tv`` term)."""
    xp = get_array_module(x)
    d = x[0].size
    z = x / scale
    a = z[:, :, 1:, :-1] - z[:, :, :-1, :-1]     # down differences
    b = z[:, :, :-1, 1:] - z[:, :, :-1, :-1]     # right differences
    s = a * a + b * b
    value = (s ** (beta / 2)).reshape(len(x), -1).sum(axis=1) / d
    g = beta * s ** (beta / 2 - 1) / (scale * d)  # d s^(β/2) / d a = β s^(β/2-1) a
    ga, gb = g * a, g * b
    grad = xp.zeros_like(x)
    grad[:, :, 1:, :-1] += ga
    grad[:, :, :-1, 1:] += gb
    grad[:, :, :-1, :-1] -= ga + gb
    return value, grad


def l2_decay(x, scale=1.0):
    """Simonyan's ``‖x/s‖²₂`` per image (not normalized by size, as in the paper)."""
    z = x / scale
    return (z * z).reshape(len(x), -1).sum(axis=1), 2 * z / scale


# -- objectives through the net ------------------------------------------------------------


def as_targets(target, net, n=None):
    """A list of :class:`nnviz.targets.Target` (one per image) on one layer, checked."""
    ts = list(target) if isinstance(target, (list,)) else [target]
    ts = [targets.parse(t) for t in ts]
    for t in ts:
        if t.is_class and not net.include_top:   # before Target.check's "unknown layer fc8"
            raise targets.InputError(
                f"class target {t} needs the fully connected layers, which these weights "
                f"({net.weights_info.get('source', 'convolutional part only')}) do not have: "
                f"import full VGG weights with 'nnviz weights import FILE' and pass --weights")
        t.check(net)
    if n is not None and len(ts) == 1:
        ts = ts * n
    if len({t.layer for t in ts}) != 1:
        raise ValueError(f"targets of one batch must share a layer, got {sorted({t.layer for t in ts})}")
    return ts


def target_objective(net, x, target):
    """Value ``(N,)`` and input gradient of each image's target: a class's pre-softmax score,
    a channel's activation averaged over positions (Keras' ``K.mean``; ``Target.score`` / (H·W)),
    or one unit's activation. ``target``: one target, or a list with one per image."""
    ts = as_targets(target, net, len(x))
    if len(ts) != len(x):
        raise ValueError(f"{len(ts)} targets for a batch of {len(x)} images")
    layer = ts[0].layer
    act = net.forward(x, until=layer)
    xp = get_array_module(act)
    dy = xp.zeros_like(act)
    values = []
    for n, t in enumerate(ts):
        t.check(net, act.shape)
        if act.ndim == 2 or t.position is not None:
            idx = (n, t.channel) if act.ndim == 2 else (n, t.channel) + tuple(t.position)
            values.append(act[idx])
            dy[idx] = 1
        else:
            m = act.shape[2] * act.shape[3]
            values.append(act[n, t.channel].sum() / m)
            dy[n, t.channel] = 1.0 / m
    return xp.stack(values), net.backward(dy, start=layer)


def dream_objective(net, x, layers, reduce="mean"):
    """DeepDream's objective (TF tutorial: ``sum of reduce_mean(activation)`` over layers):
    ``Σ_l mean(act_l)`` (``reduce="sum"``: ``Σ_l Σ act_l``) over the whole batch; returns
    ``(value, gradient)``, value a float."""
    layers = _check_layers(net, layers)
    xp = get_array_module(x)
    deepest = max(layers, key=net.layer_names.index)
    net.forward(x, until=deepest)
    value, seeds = 0.0, {}
    for name in layers:
        act = net.activations[name]
        w = 1.0 / act.size if reduce == "mean" else 1.0
        value += float(act.sum()) * w
        seeds[name] = xp.full_like(act, w)
    return value, net.backward(seeds)


def _check_layers(net, layers):
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise ValueError("dream: give at least one layer")
    for name in layers:
        net.check_layer(name)
        if name in ("flatten",) or name.startswith("fc") or name.startswith("relu") and \
                name[4:].isdigit():
            raise ValueError(f"dream: layer {name!r} is not convolutional; use a conv, relu "
                             f"or pool layer up to pool5")
    return layers


# -- tiles: gradients of a big image with memory bounded by the tile --------------------------


def _geometry(layer):
    """(kernel, stride, padding) of a layer along one axis (identity layers: (1, 1, 0))."""
    if hasattr(layer, "kh"):
        d = getattr(layer, "dilation", (1, 1))[0]
        return d * (layer.kh - 1) + 1, layer.stride[0], layer.padding[0]
    return 1, 1, 0


def reach(net, layer):
    """``(stride S, left, right)`` of ``layer``'s receptive field: the output at position p
    sees input pixels ``[p·S − left, p·S + S − 1 + right]`` (right: beyond its own S pixels)."""
    names = net.layer_names
    rf, jump, left = 1, 1, 0
    for name in names[:names.index(layer) + 1]:
        k, s, p = _geometry(net.layers[name])
        rf += (k - 1) * jump
        left += p * jump
        jump *= s
    return jump, left, max(0, rf - jump - left)


def out_size(net, layer, h, w):
    """Spatial size of ``layer``'s output for an ``h × w`` input (shape arithmetic only)."""
    names = net.layer_names
    for name in names[:names.index(layer) + 1]:
        k, s, p = _geometry(net.layers[name])
        h, w = functional.conv_outsize(h, k, s, p), functional.conv_outsize(w, k, s, p)
    return h, w


def tile_plan(net, layers, shape, tile_size):
    """Tiles of an image of ``shape`` (N, C, H, W): a list of ((y0, y1), (x0, x1)) *cores*
    that partition the image, and the halo around them.

    The net processes each core with a halo of ``max(left, right)`` reach of the deepest layer
    (rounded up to the stride S), so that every activation whose position lies in the core is
    computed exactly as on the whole image (cores and halos start at multiples of S, so the
    pooling grids line up; at the image's borders the tile stops there, as the image does).
    ``tile_size`` bounds the processed tile: core = tile_size − 2·halo, rounded down to S.
    """
    deepest = max(layers, key=net.layer_names.index)
    stride, left, right = reach(net, deepest)
    halo = -(-max(left, right) // stride) * stride
    core = (tile_size - 2 * halo) // stride * stride
    if core <= 0:
        raise ValueError(f"tile_size {tile_size} is too small for layer {deepest!r}: its "
                         f"receptive field needs a halo of {halo} px on each side; use a "
                         f"tile_size above {2 * halo + stride}")
    h, w = shape[2:]

    def cuts(n):
        if n <= tile_size:
            return [(0, n)]
        return [(a, min(a + core, n)) for a in range(0, n, core)]
    return [(r, c) for r in cuts(h) for c in cuts(w)], halo


def tiled_dream_gradient(net, x, layers, tile_size=512, reduce="mean"):
    """:func:`dream_objective` computed tile by tile: same value and gradient (to rounding),
    memory bounded by ``tile_size`` (see :func:`tile_plan`).

    What we do about the *mean*: each tile contributes the sum of the activations in its core
    divided by the count of the *whole* image's activations of that layer, so the tiles add up
    to exactly the whole image's mean (TF's tutorial instead takes each tile's own mean, which
    weighs tiles by 1/their size; for equal tiles the two differ by a constant factor, which the
    gradient normalization removes).
    """
    layers = _check_layers(net, layers)
    xp = get_array_module(x)
    n, _, h, w = x.shape
    plan, halo = tile_plan(net, layers, x.shape, tile_size)
    deepest = max(layers, key=net.layer_names.index)
    counts = {}                   # layer -> the whole image's activation count
    grad = xp.zeros_like(x)
    value = 0.0
    for (y0, y1), (x0, x1) in plan:
        a0, b0 = max(0, y0 - halo), max(0, x0 - halo)
        a1, b1 = min(h, y1 + halo), min(w, x1 + halo)
        net.forward(x[:, :, a0:a1, b0:b1], until=deepest)
        seeds = {}
        for name in layers:
            act = net.activations[name]
            stride = reach(net, name)[0]
            r0, c0 = (y0 - a0) // stride, (x0 - b0) // stride
            r1 = act.shape[2] if y1 == h else (y1 - a0) // stride
            c1 = act.shape[3] if x1 == w else (x1 - b0) // stride
            if name not in counts:
                counts[name] = n * act.shape[1] * math.prod(out_size(net, name, h, w))
            wgt = 1.0 / counts[name] if reduce == "mean" else 1.0
            seed = xp.zeros_like(act)
            seed[:, :, r0:r1, c0:c1] = wgt
            value += float(act[:, :, r0:r1, c0:c1].sum()) * wgt
            seeds[name] = seed
        grad[:, :, a0:a1, b0:b1] += net.backward(seeds)
    net.activations.clear()
    return value, grad


# -- image operations (xp) -----------------------------------------------------------------


def gaussian_blur(x, sigma):
    """Separable Gaussian blur of each channel of ``x: (N, C, H, W)`` (edges replicated), on
    the array's device (Yosinski et al.'s periodic blur)."""
    xp = get_array_module(x)
    r = max(1, int(math.ceil(3 * sigma)))
    k = numpy.exp(-0.5 * (numpy.arange(-r, r + 1) / sigma) ** 2)
    k = (k / k.sum()).tolist()
    h, w = x.shape[2:]
    p = xp.pad(x, ((0, 0), (0, 0), (r, r), (0, 0)), mode="edge")
    y = sum(k[i] * p[:, :, i:i + h] for i in range(2 * r + 1))
    p = xp.pad(y, ((0, 0), (0, 0), (0, 0), (r, r)), mode="edge")
    return sum(k[i] * p[:, :, :, i:i + w] for i in range(2 * r + 1)).astype(x.dtype, copy=False)


def clip_small_norm(x, percentile):
    """Yosinski et al.: set to 0 (the mean colour) the pixels whose norm over channels is below
    the ``percentile``-th percentile of the image."""
    xp = get_array_module(x)
    norm = xp.sqrt((x * x).sum(axis=1))                          # (N, H, W)
    thresh = xp.percentile(norm.reshape(len(x), -1), percentile, axis=1)
    return x * (norm >= thresh[:, None, None])[:, None]


def resize_bilinear(x, h, w):
    """Bilinear resize of ``x: (N, C, H, W)`` to (h, w), pixel centres aligned (as PIL, TF's
    ``tf.image.resize`` without antialias), on the array's device."""
    xp = get_array_module(x)
    H, W = x.shape[2:]
    if (H, W) == (h, w):
        return x.copy()

    def axis(n_out, n_in):
        pos = numpy.clip((numpy.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        i0 = numpy.floor(pos).astype(numpy.int64)
        i1 = numpy.minimum(i0 + 1, n_in - 1)
        f = (pos - i0).astype(x.dtype)
        return xp.asarray(i0), xp.asarray(i1), xp.asarray(f)
    i0, i1, fy = axis(h, H)
    y = x[:, :, i0] * (1 - fy)[:, None] + x[:, :, i1] * fy[:, None]
    j0, j1, fx = axis(w, W)
    return y[:, :, :, j0] * (1 - fx) + y[:, :, :, j1] * fx


# -- the optimization loop -----------------------------------------------------------------


class History(list):
    """A list of dicts (``step``, ``loss`` and each term's value; a float for one image, a
    list for several), with ``message`` (why images stopped early, or None) and ``stopped``
    (per image: the step it stopped at, or None)."""

    message = None
    stopped = None


def pixel_unit(net):
    """One pixel level (of 0..255) in the net's preprocessed space."""
    return 1.0 if net.preprocessing == "caffe" else 1.0 / (255.0 * 0.226)


def pixel_bounds(net, dtype):
    """(lo, hi): the preprocessed values of pixel levels 0 and 255, shaped (1, 3, 1, 1)."""
    lo = net.preprocess(numpy.zeros((1, 1, 3), numpy.float32)).astype(dtype)
    hi = net.preprocess(numpy.full((1, 1, 3), 255, numpy.float32)).astype(dtype)
    return lo, hi


def noise(net, n, size, seed=None, dtype=numpy.float32, amplitude=10.0):
    """Grey images with uniform noise of ± ``amplitude`` levels (Keras' blog: 128 + noise),
    preprocessed: (n, 3, h, w)."""
    h, w = (size, size) if numpy.isscalar(size) else size
    rng = numpy.random.default_rng(seed)
    img = 128.0 + rng.uniform(-amplitude, amplitude, (n, h, w, 3))
    return net.preprocess(img).astype(dtype)


class Optimizer:
    """Descent steps ``x − lr · update(g)``: ``sgd``, ``rmsprop`` (ρ=0.9, as Keras) or ``adam``
    (β=(0.9, 0.999), bias-corrected), elementwise, on the arrays' device."""

    KINDS = ("adam", "rmsprop", "sgd")

    def __init__(self, kind, lr):
        if kind not in self.KINDS:
            raise ValueError(f"unknown optimizer {kind!r}: expected one of {', '.join(self.KINDS)}")
        self.kind, self.lr, self.t, self.m, self.v = kind, lr, 0, None, None

    def step(self, x, g):
        xp = get_array_module(x)
        self.t += 1
        if self.kind == "sgd":
            return x - self.lr * g
        if self.v is None:
            self.m, self.v = xp.zeros_like(g), xp.zeros_like(g)
        if self.kind == "rmsprop":
            self.v = 0.9 * self.v + 0.1 * g * g
            return x - self.lr * g / (xp.sqrt(self.v) + 1e-7)
        self.m = 0.9 * self.m + 0.1 * g
        self.v = 0.999 * self.v + 0.001 * g * g
        mh, vh = self.m / (1 - 0.9 ** self.t), self.v / (1 - 0.999 ** self.t)
        return x - self.lr * mh / (xp.sqrt(vh) + 1e-8)


def progress_bar(total, desc, progress):
    """tqdm on a terminal, nothing otherwise (or when ``progress`` is False)."""
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, disable=not (progress and sys.stderr.isatty()),
                leave=False)


def save_snapshot(net, x, path, step):
    from .io import save_png
    from .render import grid
    imgs = net.deprocess(x)
    save_png(imgs[0] if len(imgs) == 1 else grid(list(imgs)), path.format(step=step))


def _per_image_finite(xp, v, g):
    fv = numpy.isfinite(to_numpy(v).astype(numpy.float64))
    fg = to_numpy(xp.isfinite(g).reshape(len(g), -1).all(axis=1))
    return fv & fg


def _record(v):
    v = to_numpy(v).astype(numpy.float64)
    return float(v[0]) if len(v) == 1 else [float(a) for a in v]


def run(net, x, terms, *, steps, lr, optimizer="adam", grad_norm="rms", jitter=0,
        blur_every=None, blur_sigma=0.5, clip_small=None, clip_range=True, seed=None,
        snapshot_every=None, snapshot_path=None, callback=None, progress=True, desc="optimize"):
    """Minimize ``Σ weight · value`` of ``terms`` over the images ``x: (N, 3, H, W)``.

    ``terms``: ``(name, weight, fn, jittered)`` with ``fn(x) -> (values (N,), grad)``; jittered
    terms (the net's) see the image rolled by a random shift of at most ``jitter`` pixels and
    their gradient is rolled back. ``grad_norm="rms"`` divides each image's gradient by its
    RMS (Keras' recipe). ``lr`` is in pixel levels (0..255). Each step checks every term and
    the normalization for non-finite values; an image whose step would be non-finite stops
    there (its last finite state is kept) with a message naming the term; the loop ends when
    every image has stopped. Returns ``(x, History)``; the history's last entry is the value
    after the last step.
    """
    xp = get_array_module(x)
    rng = numpy.random.default_rng(seed)
    n = len(x)
    opt = Optimizer(optimizer, lr * pixel_unit(net))
    lo, hi = pixel_bounds(net, x.dtype)
    active = numpy.ones(n, bool)
    moved = numpy.zeros(n, bool)        # has the objective's gradient ever been non-zero?
    history, notes = History(), [None] * n
    history.stopped = [None] * n
    bar = progress_bar(steps, desc, progress)
    for step in range(steps + 1):
        shift = tuple(int(s) for s in rng.integers(-jitter, jitter + 1, 2)) if jitter else (0, 0)
        xj = xp.roll(x, shift, axis=(2, 3)) if any(shift) else x
        grad = xp.zeros_like(x)
        loss = numpy.zeros(n)
        why = [None] * n
        rec = {"step": step}
        for name, weight, fn, jittered in terms:
            with numpy.errstate(all="ignore"):      # non-finite values are reported below
                v, g = fn(xj if jittered else x)
            if jittered and any(shift):
                g = xp.roll(g, (-shift[0], -shift[1]), axis=(2, 3))
            for k in numpy.flatnonzero(~_per_image_finite(xp, v, g)):
                why[k] = why[k] or f"the {name} term is not finite"
            if name == "objective":
                moved |= to_numpy(xp.abs(g).reshape(n, -1).max(axis=1) > 0)
            rec[name] = _record(v)
            loss += weight * to_numpy(v).astype(numpy.float64)
            grad = grad + weight * g
        rec["loss"] = _record(loss)
        history.append(rec)
        if step == steps:
            break
        scale = numpy.ones(n)
        if grad_norm == "rms":
            scale = to_numpy(xp.sqrt((grad * grad).reshape(n, -1).mean(axis=1))).astype(numpy.float64)
            for k in numpy.flatnonzero(~(numpy.isfinite(scale) & (scale > 0))):
                why[k] = why[k] or (f"normalization: the gradient's RMS is {scale[k]:g}, nothing to "
                                    f"normalize (a dead target at this image?)")
        elif grad_norm is not None:
            raise ValueError(f"grad_norm must be 'rms' or None, got {grad_norm!r}")
        for k in range(n):
            if active[k] and why[k]:
                active[k] = False
                history.stopped[k] = step
                notes[k] = f"image {k} stopped at step {step}: {why[k]}; kept its last finite state"
        if not active.any():
            break
        scale = numpy.where(active & numpy.isfinite(scale) & (scale > 0), scale, 1.0)
        on = xp.asarray(active.reshape(n, 1, 1, 1))
        grad = xp.where(on, grad / xp.asarray(scale.reshape(n, 1, 1, 1), dtype=x.dtype), 0)
        new = opt.step(x, grad)
        if blur_every and (step + 1) % blur_every == 0:
            new = gaussian_blur(new, blur_sigma)
        if clip_small:
            new = clip_small_norm(new, clip_small)
        if clip_range:
            new = xp.minimum(xp.maximum(new, lo), hi)
        x = xp.where(on, new, x).astype(x.dtype, copy=False)
        if snapshot_every and snapshot_path and (step + 1) % snapshot_every == 0:
            save_snapshot(net, x, snapshot_path, step + 1)
        if callback is not None:
            callback(step, x, rec)
        bar.update(1)
    bar.close()
    for k in numpy.flatnonzero(~moved):
        notes[k] = notes[k] or (f"image {k}: the objective's gradient stayed 0 (a dead target "
                                f"at this image; only the regularizers moved it)")
    msgs = [m for m in notes if m]
    history.message = "; ".join(msgs) if msgs else None
    return x, history


def regularizer_terms(net, lp=None, tv=None, l2=None):
    """Loss terms for :func:`run`: ``lp=(p, weight)``, ``tv=(beta, weight)``, ``l2=weight``,
    on images in units of half the pixel range."""
    s = 127.5 * pixel_unit(net)
    terms = []
    if lp is not None and lp[1]:
        terms.append(("lp", lp[1], lambda x, p=lp[0]: lp_norm(x, p, s), False))
    if tv is not None and tv[1]:
        terms.append(("tv", tv[1], lambda x, b=tv[0]: total_variation(x, b, s), False))
    if l2:
        terms.append(("l2", l2, lambda x: l2_decay(x, s), False))
    return terms


def maximize(net, target, x0=None, size=None, steps=200, lr=2.0, lp=(6, 1.0), tv=(2, 0.5),
             l2=None, jitter=4, blur_every=None, blur_sigma=0.5, clip_small=None,
             optimizer="adam", grad_norm="rms", seed=None, snapshot_every=None,
             snapshot_path=None, callback=None, progress=True):
    """The image that maximizes ``target`` (a class, a channel, a unit; or a list of targets of
    one layer, one per image — many channels in one batch), regularized.

    Loss: ``−objective + lp_w · lp_norm_p(x) + tv_w · TV_β(x) + l2 · ‖x‖²`` (regularizers on
    images scaled to about [-1, 1]; ``lp=(p, weight)``, ``tv=(β, weight)``). ``x0``: a
    preprocessed batch to start from (default: grey plus noise of ``size``, 224 for a class and
    128 otherwise). ``lr`` in pixel levels. ``blur_every`` steps a Gaussian blur of
    ``blur_sigma``; ``clip_small``: a percentile of pixel norms to zero each step.
    Returns ``(x, history)``: the batch (preprocessed; ``net.deprocess`` shows it) and a
    :class:`History` (step, objective, each term; ``history.message`` when stopped early).
    """
    probe = as_targets(target, net)
    n = len(probe) if x0 is None else len(x0)
    ts = as_targets(target, net, n)
    if x0 is None:
        size = size or (224 if ts[0].is_class else 128)
        x0 = noise(net, n, size, seed)
    x0 = backend.to_device(x0, net.device)
    terms = [("objective", -1.0, lambda x: target_objective(net, x, ts), True)]
    terms += regularizer_terms(net, lp, tv, l2)
    return run(net, x0, terms, steps=steps, lr=lr, optimizer=optimizer, grad_norm=grad_norm,
               jitter=jitter, blur_every=blur_every, blur_sigma=blur_sigma,
               clip_small=clip_small, seed=seed, snapshot_every=snapshot_every,
               snapshot_path=snapshot_path, callback=callback, progress=progress,
               desc=f"maximize {ts[0] if len(ts) == 1 else ts[0].layer}")


def filters(net, layer, channels=None, size=64, batch=16, progress=True, **kw):
    """Maximize many channels of ``layer`` (default: the first 16), ``batch`` at a time, one image
    per channel in one forward. Returns ``(images uint8 (K, size, size, 3), labels, histories)``;
    a label says "stopped" when its image stopped early (see :func:`run`)."""
    net.check_layer(layer)
    if channels is None:
        channels = range(16)
    channels = [int(c) for c in channels]
    seed = kw.pop("seed", None)
    images, labels, histories = [], [], []
    for b in range(0, len(channels), batch):
        chunk = channels[b:b + batch]
        x, hist = maximize(net, [(layer, c) for c in chunk], size=size, progress=progress,
                           seed=None if seed is None else seed + b, **kw)
        images.extend(net.deprocess(x))
        for k, c in enumerate(chunk):
            labels.append(f"{c}" if hist.stopped[k] is None else f"{c} stopped")
            histories.append(hist)
    return numpy.stack(images), labels, histories


def class_model(net, class_index, size=224, steps=200, lr=1.0, l2=1e-3, optimizer="sgd",
                grad_norm="rms", seed=None, **kw):
    """Simonyan et al. 2013, eq. (1): ``argmax_I S_c(I) − λ‖I‖²₂`` from the zero (mean) image,
    by gradient ascent; ``S_c`` is ``fc8``'s pre-softmax score. Needs the fully connected
    layers (a clear error on the default, convolutional-only weights). Returns
    ``(x, history)`` as :func:`maximize`."""
    t, = as_targets(("fc8", int(class_index)), net)
    x0 = kw.pop("x0", None)
    if x0 is None:
        x0 = net.xp.zeros((1, 3, size, size), numpy.float32)
    kw.setdefault("jitter", 0)
    return maximize(net, t, x0=x0, steps=steps, lr=lr, lp=None, tv=None, l2=l2,
                    optimizer=optimizer, grad_norm=grad_norm, seed=seed, **kw)


def representation_loss(net, x, layer, phi0):
    """Mahendran & Vedaldi's ``‖Φ(x) − Φ₀‖² / ‖Φ₀‖²`` per image, and its input gradient."""
    phi = net.forward(x, until=layer)
    n = len(x)
    diff = phi - phi0
    norm = (phi0 * phi0).reshape(n, -1).sum(axis=1)
    value = (diff * diff).reshape(n, -1).sum(axis=1) / norm
    shape = (n,) + (1,) * (phi.ndim - 1)
    return value, net.backward(2 * diff / norm.reshape(shape), start=layer)


def invert(net, image, layer, steps=200, lr=2.0, alpha=6, tv_beta=2, alpha_weight=1e-3,
           tv_weight=1e-2, x0=None, optimizer="adam", jitter=0, seed=None, progress=True, **kw):
    """Mahendran & Vedaldi 2015: the image whose representation at ``layer`` matches that of
    ``image`` (preprocessed (N, 3, H, W)): minimize ``‖Φ(x) − Φ₀‖²/‖Φ₀‖² + λ_α N_α(x) +
    λ_TV TV_β(x)`` from noise (N_α, TV_β: :func:`lp_norm`, :func:`total_variation`, on images
    in units of half the pixel range). Returns ``(x, history)``; ``history[i]["objective"]`` is
    the representation loss."""
    net.check_layer(layer)
    image = backend.to_device(image, net.device)
    phi0 = net.forward(image, until=layer).copy()
    if not float((phi0 * phi0).sum()) > 0:
        raise ValueError(f"the representation of the image at {layer!r} is all zero: nothing "
                         f"to invert")
    if x0 is None:
        x0 = noise(net, len(image), image.shape[2:], seed, image.dtype)
    terms = [("objective", 1.0, lambda x: representation_loss(net, x, layer, phi0), True)]
    terms += regularizer_terms(net, (alpha, alpha_weight), (tv_beta, tv_weight))
    kw.setdefault("grad_norm", None)
    return run(net, x0, terms, steps=steps, lr=lr, optimizer=optimizer, jitter=jitter,
               seed=seed, progress=progress, desc=f"invert {layer}", **kw)


def dream(net, image, layers=("relu4_3",), octaves=4, octave_scale=1.4, steps_per_octave=10,
          step_size=0.01, tile_size=512, roll=True, grad_norm="std", seed=None,
          snapshot_every=None, snapshot_path=None, callback=None, progress=True):
    """DeepDream (Mordvintsev et al. 2015) on ``image`` (preprocessed (N, 3, H, W)): gradient
    ascent on :func:`dream_objective` of ``layers``, in ``octaves`` scales ``octave_scale``
    apart, smallest first; the detail (result − the octave's base) is upsampled and carried to
    the next octave (the original notebook). Each step: roll the image by a random shift
    (``roll``; TF's tutorial), the tiled gradient (:func:`tiled_dream_gradient`; memory bounded
    by ``tile_size``), roll back, normalize by its std (``"std"``, TF) or mean |g|
    (``"mean_abs"``, the notebook), step ``step_size`` half-ranges (TF's units: images in
    [-1, 1]), clip to the pixel range. Returns ``(x, History)``."""
    layers = _check_layers(net, layers)
    image = backend.to_device(image, net.device)
    xp = get_array_module(image)
    rng = numpy.random.default_rng(seed)
    lo, hi = pixel_bounds(net, image.dtype)
    step_px = step_size * 127.5 * pixel_unit(net)
    h, w = image.shape[2:]
    sizes = [(max(1, round(h / octave_scale ** k)), max(1, round(w / octave_scale ** k)))
             for k in reversed(range(octaves))]
    history = History()
    history.stopped = [None]
    bar = progress_bar(octaves * steps_per_octave, "dream", progress)
    detail = None
    step = 0
    for octave, (oh, ow) in enumerate(sizes):
        base = resize_bilinear(image, oh, ow)
        detail = xp.zeros_like(base) if detail is None else resize_bilinear(detail, oh, ow)
        x = base + detail
        for _ in range(steps_per_octave):
            shift = (int(rng.integers(0, oh)), int(rng.integers(0, ow))) if roll else (0, 0)
            value, g = tiled_dream_gradient(net, xp.roll(x, shift, axis=(2, 3)), layers, tile_size)
            g = xp.roll(g, (-shift[0], -shift[1]), axis=(2, 3))
            if grad_norm == "std":
                scale = float(g.std())
            elif grad_norm == "mean_abs":
                scale = float(xp.abs(g).mean())
            else:
                raise ValueError(f"grad_norm must be 'std' or 'mean_abs', got {grad_norm!r}")
            history.append({"step": step, "octave": octave, "objective": value,
                            "size": (oh, ow)})
            bad = None if math.isfinite(value) else "the objective is not finite"
            if bad is None and not (math.isfinite(scale) and scale > 0):
                bad = f"normalization: the gradient's {grad_norm} is {scale:g}"
            if bad:
                history.message = f"stopped at step {step} (octave {octave}): {bad}; kept the " \
                                  f"last finite image"
                history.stopped = [step]
                bar.close()
                return x, history
            x = xp.minimum(xp.maximum(x + (step_px / scale) * g, lo), hi)
            step += 1
            if snapshot_every and snapshot_path and step % snapshot_every == 0:
                save_snapshot(net, x, snapshot_path, step)
            if callback is not None:
                callback(step, x, history[-1])
            bar.update(1)
        detail = x - base
    bar.close()
    return x, history
