"""The priors of Mahendran & Vedaldi 2015, "Understanding Deep Image Representations by
Inverting Them", eq. (3) (α-norm) and eq. (5) (total variation with exponent β), Simonyan et
al. 2013's L2 decay and Yosinski et al. 2015's blur and clipping; the optimization loop shared
by the methods that make images (activation maximization, class models, DeepDream,
inversion; Gatys style transfer has its own L-BFGS driver), its memory estimate, and
:class:`Result`, the one type they all return, with the one writer of loss curves as CSV.
The gradient is normalized by its RMS as in keras-vis / Keras' "How convolutional neural
networks see the world". :class:`Adam` (Kingma & Ba 2015, as ``torch.optim.Adam``) is the
one Adam of nnviz: the loop's and the feed-forward style training's.

Every value comes with its hand-written gradient (no autograd). Images ``x: (N, 3, H, W)``
live in the net's preprocessed space (:meth:`Net.preprocess`); values are per image, ``(N,)``,
and gradients are those of the sum over the batch, shaped as ``x``. Regularizers see ``x``
divided by ``scale`` (the functions' argument; the loop passes half the pixel range, so that
images lie in about [-1, 1] whatever the preprocessing).
"""
import math
import time
from dataclasses import dataclass, field

import numpy

from .. import io, models, render
from ..backend import get_array_module, to_numpy
from ..errors import BadOption
from ..functional import gaussian_blur
from ..progress import progress_bar

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


# -- image operations (xp) -----------------------------------------------------------------


def periodic_blur(x, sigma):
    """Yosinski et al. 2015's periodic blur: :func:`nnviz.functional.gaussian_blur` of each
    channel, out to ``max(1, ⌈3σ⌉)`` pixels, the edge pixels repeated beyond the image (a
    mirrored edge would pull the border towards the image's inside colours)."""
    return gaussian_blur(x, sigma, radius=max(1, int(math.ceil(3 * sigma))), mode="nearest")


def clip_small_norm(x, percentile):
    """Yosinski et al.: set to 0 (the mean colour) the pixels whose norm over channels is below
    the ``percentile``-th percentile of the image."""
    xp = get_array_module(x)
    norm = xp.sqrt((x * x).sum(axis=1))                          # (N, H, W)
    thresh = xp.percentile(norm.reshape(len(x), -1), percentile, axis=1)
    return x * (norm >= thresh[:, None, None])[:, None]


# -- the loop ------------------------------------------------------------------------------

# the loop's own arrays, in images of the batch: x, the new x, the gradient, Adam's two moments,
# the jittered copy and the regularizers' temporaries
LOOP_BUFFERS = 12


def memory_estimate(net, n, h, w, until, buffers=LOOP_BUFFERS):
    """Bytes that :func:`run` on ``n`` images of ``h × w`` holds at its peak: the net's
    forward and backward to ``until`` (:func:`nnviz.models.memory_estimate`) and ``buffers``
    images' worth of float32 arrays of the loop (:data:`LOOP_BUFFERS`; a method adds its own)."""
    return models.memory_estimate(net, n, h, w, until) + int(buffers * n * 3 * h * w * 4)


@dataclass
class Result:
    """What every optimization method returns (maximize, class_model, filters, dream, invert,
    style transfer).

    ``x``: the optimized batch, preprocessed, on the net's device (``net.deprocess(x)`` shows
    it); ``history``: one dict per step (``step`` or ``iteration``, ``loss`` and each term's
    value: a float for one image, a list for several); ``images``: the pictures, RGB uint8
    ``(N, H, W, 3)``; ``labels``: a caption per image (filters); ``status``: ``"done"``,
    ``"stopped"`` (an image's step would have been non-finite), ``"interrupted"``, ``"line
    search failed"`` or ``"non-finite"``; ``message``: why it stopped early (None when it did
    not); ``stopped``: per image, the step it stopped at, or None; ``loss``: the final (style:
    the best) loss; ``seconds``: the time it took."""

    x: object
    history: list
    images: object = None
    labels: list = None
    status: str = "done"
    message: str = None
    stopped: list = None
    loss: object = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def ok(self):
        return self.status == "done"

    @property
    def image(self):
        """The first picture, RGB uint8 ``(H, W, 3)``."""
        return self.images[0]


def pixel_unit(net):
    """One pixel level (of 0..255) in the net's preprocessed space."""
    return 1.0 if net.preprocessing == "caffe" else 1.0 / (255.0 * 0.226)


def noise(net, n, size, seed=None, dtype=numpy.float32, amplitude=10.0):
    """Grey images with uniform noise of ± ``amplitude`` levels (Keras' blog: 128 + noise),
    preprocessed: (n, 3, h, w)."""
    h, w = (size, size) if numpy.isscalar(size) else size
    rng = numpy.random.default_rng(seed)
    img = 128.0 + rng.uniform(-amplitude, amplitude, (n, h, w, 3))
    return net.preprocess(img).astype(dtype)


class Adam:
    """Adam (Kingma & Ba 2015) as ``torch.optim.Adam`` (no weight decay, no amsgrad): the one
    Adam of nnviz, for the image optimizers (:class:`Optimizer`) and the feed-forward style
    training (:func:`nnviz.methods.fast_style.train`)::

        m ← β₁ m + (1 − β₁) g        v ← β₂ v + (1 − β₂) g²
        p ← p − lr · (m / (1 − β₁ᵗ)) / (√v / √(1 − β₂ᵗ) + ε)

    (the paper's ``lr · m̂ / (√v̂ + ε)`` with bias-corrected moments, in torch's order of
    operations). ``params``: ``{key: array}``, updated in place by :meth:`step` (the layers
    hold the same arrays); :meth:`deltas` gives the steps without applying them. ``warmup``:
    W > 0 scales the rate of step t by min(1, t / W) (a linear warm-up, as
    ``torch.optim.lr_scheduler.LambdaLR`` with ``lambda e: min(1, (e + 1) / W)``). ``m``,
    ``v`` (by key), ``t`` and :meth:`state` are what a checkpoint keeps."""

    def __init__(self, params=None, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, warmup=0):
        self.params = {} if params is None else params
        self.lr, self.betas, self.eps = float(lr), tuple(betas), float(eps)
        self.warmup = int(warmup)
        self.t = 0
        self.m = {k: get_array_module(p).zeros_like(p) for k, p in self.params.items()}
        self.v = {k: get_array_module(p).zeros_like(p) for k, p in self.params.items()}

    def deltas(self, grads):
        """One step: the moments updated with ``grads`` (``{key: gradient}``; a key seen for
        the first time starts from zero moments) and ``{key: what the step subtracts}``."""
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.t, math.sqrt(1 - b2 ** self.t)
        lr = self.lr * min(1.0, self.t / self.warmup) if self.warmup > 0 else self.lr
        out = {}
        for k, g in grads.items():
            xp = get_array_module(g)
            if k in self.params:
                g = g.astype(self.params[k].dtype, copy=False)
            if k not in self.m:
                self.m[k], self.v[k] = xp.zeros_like(g), xp.zeros_like(g)
            m, v = self.m[k], self.v[k]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            out[k] = (lr / c1) * m / (xp.sqrt(v) / c2 + self.eps)
        return out

    def step(self, grads):
        """Update every parameter in place from ``grads`` (``{key: gradient}``)."""
        for k, d in self.deltas({k: grads[k] for k in self.params}).items():
            self.params[k] -= d

    def state(self):
        return dict(t=self.t, lr=self.lr, betas=list(self.betas), eps=self.eps, warmup=self.warmup)


class Optimizer:
    """Descent steps ``x − lr · update(g)`` of one array: ``sgd``, ``rmsprop`` (ρ=0.9, ε=1e-7
    outside the root, as Keras) or ``adam`` (:class:`Adam`), elementwise, on the arrays'
    device. :meth:`step` returns the new array (the loop checks it before it applies it)."""

    KINDS = ("adam", "rmsprop", "sgd")

    def __init__(self, kind, lr):
        if kind not in self.KINDS:
            raise BadOption(f"unknown optimizer {kind!r}: expected one of {', '.join(self.KINDS)}")
        if not (math.isfinite(float(lr)) and lr > 0):
            raise BadOption(f"learning rate {lr}: must be a finite number > 0")
        self.kind, self.lr, self.v = kind, lr, None
        self.adam = Adam(lr=lr) if kind == "adam" else None

    def step(self, x, g):
        if self.kind == "sgd":
            return x - self.lr * g
        if self.kind == "adam":
            return x - self.adam.deltas({"x": g})["x"]
        xp = get_array_module(x)
        if self.v is None:
            self.v = xp.zeros_like(g)
        self.v = 0.9 * self.v + 0.1 * g * g
        return x - self.lr * g / (xp.sqrt(self.v) + 1e-7)


def save_snapshot(net, x, path, step):
    """Write the images of ``x`` (a grid for several) to ``path(step)`` (a function) or
    ``path.format(step=step)`` (a format string)."""
    imgs = net.deprocess(x)
    io.save_png(imgs[0] if len(imgs) == 1 else render.grid(list(imgs)),
                path(step) if callable(path) else path.format(step=step))


def _per_image_finite(xp, v, g):
    fv = numpy.isfinite(to_numpy(v).astype(numpy.float64))
    fg = to_numpy(xp.isfinite(g).reshape(len(g), -1).all(axis=1))
    return fv & fg


def _record(v):
    v = to_numpy(v).astype(numpy.float64)
    return float(v[0]) if len(v) == 1 else [float(a) for a in v]


def _evaluate(terms, x, shift, n):
    """Every term at ``x`` (jittered terms at ``x`` rolled by ``shift``): the history row, the
    total loss (N,), the weighted gradient, why each image is not finite (or None), and which
    images' objective gradient is non-zero."""
    xp = get_array_module(x)
    xj = xp.roll(x, shift, axis=(2, 3)) if any(shift) else x
    grad, loss, why, row = xp.zeros_like(x), numpy.zeros(n), [None] * n, {}
    moved = numpy.zeros(n, bool)
    for name, weight, fn, jittered in terms:
        with numpy.errstate(all="ignore"):      # non-finite values are reported below
            v, g = fn(xj if jittered else x)
        if jittered and any(shift):
            g = xp.roll(g, (-shift[0], -shift[1]), axis=(2, 3))
        for k in numpy.flatnonzero(~_per_image_finite(xp, v, g)):
            why[k] = why[k] or f"the {name} term is not finite"
        if name == "objective":
            moved = to_numpy(xp.abs(g).reshape(n, -1).max(axis=1) > 0)
        row[name] = _record(v)
        loss += weight * to_numpy(v).astype(numpy.float64)
        grad = grad + weight * g
    row["loss"] = _record(loss)
    return row, grad, why, moved


def _rms_scale(grad, why, grad_norm):
    """Per image, what the gradient is divided by (its RMS, or 1); notes images whose RMS is
    not a positive finite number in ``why``."""
    n = len(grad)
    if grad_norm is None:
        return numpy.ones(n)
    if grad_norm != "rms":
        raise BadOption(f"grad_norm must be 'rms' or None, got {grad_norm!r}")
    xp = get_array_module(grad)
    scale = to_numpy(xp.sqrt((grad * grad).reshape(n, -1).mean(axis=1))).astype(numpy.float64)
    for k in numpy.flatnonzero(~(numpy.isfinite(scale) & (scale > 0))):
        why[k] = why[k] or (f"normalization: the gradient's RMS is {scale[k]:g}, nothing to "
                            f"normalize (a dead target at this image?)")
    return scale


class _Stops:
    """Which images of the batch are still optimized; for the others, the step they stopped at
    and why."""

    def __init__(self, n):
        self.active = numpy.ones(n, bool)
        self.stopped, self.notes = [None] * n, [None] * n

    def stop(self, k, step, why):
        self.active[k], self.stopped[k] = False, step
        self.notes[k] = f"image {k} stopped at step {step}: {why}; kept its last finite state"


def _descend(opt, x, grad, scale, why, stops, step, lr):
    """The optimizer's step from ``x`` with each active image's gradient divided by its
    ``scale``: images with a reason in ``why`` stop first, then those whose step is not
    finite (checked before it is applied: a learning rate too large). Returns the new batch,
    or None when no image is left."""
    xp = get_array_module(x)
    n, active = len(x), stops.active
    for k in numpy.flatnonzero(active & numpy.array([w is not None for w in why])):
        stops.stop(k, step, why[k])
    if not active.any():
        return None
    scale = numpy.where(active & numpy.isfinite(scale) & (scale > 0), scale, 1.0)
    on = xp.asarray(active.reshape(n, 1, 1, 1))
    grad = xp.where(on, grad / xp.asarray(scale.reshape(n, 1, 1, 1), dtype=x.dtype), 0)
    with numpy.errstate(all="ignore"):      # a non-finite step is reported below
        new = opt.step(x, grad)
    ok = to_numpy(xp.isfinite(new).reshape(n, -1).all(axis=1))
    for k in numpy.flatnonzero(active & ~ok):
        stops.stop(k, step, f"the step is not finite (learning rate {lr:g})")
    return new if active.any() else None


def _constrain(x, step, blur_every, blur_sigma, clip_small, bounds):
    """Yosinski et al.'s blur (every ``blur_every`` steps) and small-norm clipping, then the
    pixel range ``bounds`` (lo, hi; None: no clipping)."""
    if blur_every and (step + 1) % blur_every == 0:
        x = periodic_blur(x, blur_sigma)
    if clip_small:
        x = clip_small_norm(x, clip_small)
    if bounds is not None:
        xp = get_array_module(x)
        x = xp.minimum(xp.maximum(x, bounds[0]), bounds[1])
    return x


def _result(net, x, history, stops, moved, steps, interrupted, start):
    """The loop's :class:`Result`: interrupted, or its stopped images and dead targets noted."""
    seconds = time.perf_counter() - start
    if interrupted:
        done = len(history) - 1 if history else 0
        return Result(x, history, images=net.deprocess(x), status="interrupted",
                      message=f"interrupted at step {max(done, 0)} of {steps}; kept the last image",
                      stopped=stops.stopped, loss=history[-1]["loss"] if history else None,
                      seconds=seconds)
    notes = stops.notes
    for k in numpy.flatnonzero(~moved):
        notes[k] = notes[k] or (f"image {k}: the objective's gradient stayed 0 (a dead target "
                                f"at this image; only the regularizers moved it)")
    msgs = [m for m in notes if m]
    return Result(x, history, images=net.deprocess(x), status="stopped" if any(
        s is not None for s in stops.stopped) else "done", message="; ".join(msgs) if msgs else None,
        stopped=stops.stopped, loss=history[-1]["loss"], seconds=seconds)


def run(net, x, terms, *, steps, lr, optimizer="adam", grad_norm="rms", jitter=0,
        blur_every=None, blur_sigma=0.5, clip_small=None, clip_range=True, seed=None,
        snapshot_every=None, snapshot_path=None, callback=None, progress=True, desc="optimize"):
    """Minimize ``Σ weight · value`` of ``terms`` over the images ``x: (N, 3, H, W)``.

    ``terms``: ``(name, weight, fn, jittered)`` with ``fn(x) -> (values (N,), grad)``; jittered
    terms (the net's) see the image rolled by a random shift of at most ``jitter`` pixels and
    their gradient is rolled back. ``grad_norm="rms"`` divides each image's gradient by its
    RMS (Keras' recipe). ``lr`` is in pixel levels (0..255). Each step checks every term,
    the normalization and the step itself (before it is applied) for non-finite values; an
    image whose step would be non-finite stops there (its last finite state is kept) with a
    message naming the term or the step; the loop ends when every image has stopped. Ctrl-C
    (and SIGTERM under the ``nnviz`` command) stops the loop too: the result keeps the last
    state, with status ``"interrupted"``. Returns a :class:`Result`; its history's last entry
    is the value after the last step.
    """
    xp = get_array_module(x)
    rng = numpy.random.default_rng(seed)
    n = len(x)
    start = time.perf_counter()
    opt = Optimizer(optimizer, lr * pixel_unit(net))
    bounds = net.pixel_bounds(x.dtype) if clip_range else None
    stops = _Stops(n)
    moved = numpy.zeros(n, bool)        # has the objective's gradient ever been non-zero?
    history = []
    bar = progress_bar(steps, desc, progress)
    interrupted = False
    try:
        for step in range(steps + 1):
            shift = tuple(int(s) for s in rng.integers(-jitter, jitter + 1, 2)) if jitter \
                else (0, 0)
            row, grad, why, objective_moved = _evaluate(terms, x, shift, n)
            moved |= objective_moved
            history.append(dict(step=step, **row))
            if step == steps:
                break
            new = _descend(opt, x, grad, _rms_scale(grad, why, grad_norm), why, stops, step, lr)
            if new is None:
                break
            new = _constrain(new, step, blur_every, blur_sigma, clip_small, bounds)
            x = xp.where(xp.asarray(stops.active.reshape(n, 1, 1, 1)), new, x).astype(x.dtype, copy=False)
            if snapshot_every and snapshot_path and (step + 1) % snapshot_every == 0:
                save_snapshot(net, x, snapshot_path, step + 1)
            if callback is not None:
                callback(step, x, history[-1])
            bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    bar.close()
    return _result(net, x, history, stops, moved, steps, interrupted, start)


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
