"""Neural style transfer: Gatys, Ecker & Bethge, "A Neural Algorithm of Artistic Style" (2015)
and "Image Style Transfer Using Convolutional Neural Networks" (CVPR 2016), eqs. 1-7;
texture synthesis from Gatys, Ecker & Bethge, "Texture Synthesis Using Convolutional Neural
Networks" (NIPS 2015); the channel-mean statistic from Li, Wang, Liu & Hou, "Demystifying
Neural Style Transfer" (IJCAI 2017), eq. 9 (its first-order, mean-only term).

At a layer, ``F: (N, M)`` is the generated image's feature matrix (N channels, M = H·W
positions), ``P`` the content image's, ``G = F Fᵀ / M`` its Gram matrix and
``A = Σₛ bₛ Fₛ Fₛᵀ / Mₛ`` the blended style target:

- content loss  ``½ Σ (F − P)²``                  dL/dF = ``F − P``              (paper eq. 1-2)
- style loss    ``1/(4N²) Σ (G − A)²``            dL/dF = ``(G − A) F / (N² M)`` (eq. 3-6, /M²
  folded into G so that style and result may differ in size)
- mean statistic ``1/N Σᵢ (μᵢ − aᵢ)²``, ``μ = F 1 / M``, dL/dF = ``2 (μ − a) 1ᵀ / (N M)``
- total ``content_weight Σ content + style_weight Σ_l (1/L) style_l + tv_weight TV(x)`` with
  ``TV(x) = Σ (x[.., i+1, j] − x[.., i, j])² + Σ (x[.., i, j+1] − x[.., i, j])²``.

Every gradient is written out by hand; one forward to the deepest layer used and one backward
from it, adding each layer's loss gradient as the backward passes that layer. scipy's L-BFGS-B
drives the optimization in float64 on the host; the features live in ``dtype`` on the net's
device. Arrays: ``x: (1, 3, H, W)`` preprocessed batches (see ``Net.preprocess``).
"""
import math
import time

import numpy

from .. import backend, models
from ..backend import get_array_module
from ..errors import BadOption, BadShape
from ..functional import resize_bilinear
from ..io import fit_size, load_image, resize
from .optimize import Result

CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STATISTICS = ("gram", "mean")
MODES = ("transfer", "content", "texture")
# the keys of a history row (one per L-BFGS iteration): the columns of the loss CSV
HISTORY_COLUMNS = ("iteration", "loss", "content", "style", "tv", "size", "seconds")
# Defaults tuned by hand for this module's normalization (see the README): caffe-preprocessed
# VGG features, 0..255 scale, content relu4_2, five style layers, images of ~512 pixels.
CONTENT_WEIGHT = 1.0
STYLE_WEIGHT = 1e4
TV_WEIGHT = 1e-3


# ---------------------------------------------------------------------------------------
# the losses at one layer: value and dL/dF, by hand
# ---------------------------------------------------------------------------------------

def _features(act):
    """(1, N, H, W) activation -> (N, M) feature matrix (a view)."""
    return act.reshape(act.shape[1], -1)


def gram(F):
    """``G = F Fᵀ / M`` of a feature matrix ``F: (N, M)``."""
    return (F @ F.T) / F.shape[1]


def content_loss(F, P):
    """``½ Σ (F − P)²`` and its gradient ``F − P``."""
    xp = get_array_module(F)
    d = F - P
    return float(xp.sum(d * d, dtype=xp.float64)) / 2, d


def style_loss(F, A):
    """``1/(4N²) Σ (G − A)²`` with ``G = F Fᵀ / M``, and its gradient ``(G − A) F / (N² M)``
    (``dG/dF`` gives ``2 F / M`` twice over the symmetric ``G − A``)."""
    xp = get_array_module(F)
    n, m = F.shape
    d = gram(F) - A
    loss = float(xp.sum(d * d, dtype=xp.float64)) / (4 * n * n)
    return loss, (d @ F) / (n * n * m)


def mean_loss(F, a):
    """``1/N Σᵢ (μᵢ − aᵢ)²`` with channel means ``μ = F 1 / M``, and its gradient
    ``2 (μ − a) / (N M)`` at every position."""
    xp = get_array_module(F)
    n, m = F.shape
    d = F.mean(axis=1) - a
    loss = float(xp.sum(d * d, dtype=xp.float64)) / n
    return loss, xp.broadcast_to((2.0 / (n * m)) * d[:, None], F.shape)


def tv_loss(x):
    """``TV(x)`` of ``x: (N, C, H, W)`` (squared differences of vertical and horizontal
    neighbours, over all channels) and its gradient."""
    xp = get_array_module(x)
    dh = x[..., 1:, :] - x[..., :-1, :]
    dw = x[..., :, 1:] - x[..., :, :-1]
    g = xp.zeros_like(x)
    g[..., 1:, :] += 2 * dh
    g[..., :-1, :] -= 2 * dh
    g[..., :, 1:] += 2 * dw
    g[..., :, :-1] -= 2 * dw
    return float((dh * dh).sum() + (dw * dw).sum()), g


# ---------------------------------------------------------------------------------------
# the objective
# ---------------------------------------------------------------------------------------

class GatysLoss:
    """The style-transfer objective ``loss, grad = objective(x)`` for ``x: (1, 3, H, W)``
    float64 on the host; ``grad`` is float64 shaped as ``x``.

    ``content``: a preprocessed (1, 3, H, W) batch, the same size as ``x`` (None when
    ``content_weight`` is 0 or there are no content layers); ``styles``: a list of
    preprocessed (1, 3, h, w) batches of any size. Targets are computed once, in ``dtype`` on
    the net's device. ``statistic`` is ``"gram"`` (Gatys) or ``"mean"`` (channel means).
    After a call, ``terms`` holds the weighted terms (``content``, ``style``, ``tv``,
    ``total``) and ``layer_losses`` the unweighted loss of each layer.
    """

    def __init__(self, net, content, styles, *, content_layers=CONTENT_LAYERS,
                 style_layers=STYLE_LAYERS, content_weight=CONTENT_WEIGHT,
                 style_weight=STYLE_WEIGHT, tv_weight=TV_WEIGHT, style_blend_weights=None,
                 dtype=numpy.float32, statistic="gram"):
        self.net = net
        self.dtype = numpy.dtype(dtype)
        if self.dtype.kind != "f":
            raise BadOption(f"dtype must be a float type, got {self.dtype}")
        if statistic not in STATISTICS:
            raise BadOption(f"unknown style statistic {statistic!r}: expected one of "
                            f"{', '.join(STATISTICS)}")
        self.statistic = statistic
        self.content_weight, self.style_weight, self.tv_weight = \
            float(content_weight), float(style_weight), float(tv_weight)
        for what, w in (("content_weight", content_weight), ("style_weight", style_weight),
                        ("tv_weight", tv_weight)):
            if not (math.isfinite(w) and w >= 0):
                raise BadOption(f"{what} must be a finite number ≥ 0, got {w}")
        self.content_layers = tuple(content_layers) if self.content_weight else ()
        self.style_layers = tuple(style_layers) if self.style_weight else ()
        for name in self.content_layers + self.style_layers:
            net.check_layer(name)
        used = self.content_layers + self.style_layers
        names = net.layer_names
        self.deepest = max(used, key=names.index) if used else None

        if styles is not None and getattr(styles, "ndim", None) == 4:
            styles = [styles]
        styles = list(styles or [])
        if self.style_layers and not styles:
            raise BadOption("style_weight > 0 and style layers given, but no style image")
        self.blend = _blend_weights(style_blend_weights, len(styles)) if self.style_layers else []

        # content targets P: (N, M) per layer
        self.P = {}
        if self.content_layers:
            if content is None:
                raise BadOption("content_weight > 0 and content layers given, but no content image")
            content = self._batch(content, "content")
            self.content_shape = tuple(content.shape)
            net.forward(content, until=max(self.content_layers, key=names.index))
            self.P = {n: _features(net.activations[n]).copy() for n in self.content_layers}
        # style targets: A = Σ b_s F_s F_sᵀ / M_s (gram) or a = Σ b_s mean_s (mean)
        self.A = {}
        for s, b in zip(styles, self.blend):
            s = self._batch(s, "style")
            net.forward(s, until=max(self.style_layers, key=names.index))
            for n in self.style_layers:
                F = _features(net.activations[n])
                stat = gram(F) if statistic == "gram" else F.mean(axis=1)
                self.A[n] = self.A.get(n, 0) + b * stat
        net.activations.clear()
        self.terms, self.layer_losses = {}, {}

    def _batch(self, a, what):
        if getattr(a, "ndim", None) != 4 or a.shape[0] != 1 or a.shape[1] != 3:
            raise BadShape(f"{what} image: expected a preprocessed batch (1, 3, H, W), got shape "
                           f"{tuple(getattr(a, 'shape', ()))}")
        return backend.to_device(a, self.net.device).astype(self.dtype, copy=False)

    def _layer_grad(self, name, act):
        """Weighted loss gradient dL/dF at layer ``name`` (shaped as its activation); records
        the unweighted losses."""
        F = _features(act)
        g = 0
        if name in self.P:
            if F.shape != self.P[name].shape:
                raise BadShape(f"x gives {name} features {F.shape}, the content image "
                               f"{self.P[name].shape}: x must have the content's shape "
                               f"{self.content_shape}")
            loss, dF = content_loss(F, self.P[name])
            self.layer_losses[f"content/{name}"] = loss
            self.terms["content"] += self.content_weight * loss
            g = g + self.content_weight * dF
        if name in self.A:
            loss, dF = (style_loss if self.statistic == "gram" else mean_loss)(F, self.A[name])
            w = self.style_weight / len(self.style_layers)
            self.layer_losses[f"style/{name}"] = loss
            self.terms["style"] += w * loss
            g = g + w * dF
        return g.reshape(act.shape)

    def __call__(self, x):
        """``loss, grad`` at ``x: (1, 3, H, W)`` float64 (host)."""
        x = numpy.asarray(backend.to_numpy(x), dtype=numpy.float64)
        self.terms = {"content": 0.0, "style": 0.0, "tv": 0.0}
        self.layer_losses = {}
        grad = numpy.zeros_like(x)
        if self.deepest is not None:
            net = self.net
            net.forward(backend.to_device(x.astype(self.dtype), net.device), until=self.deepest)
            # one backward from the deepest layer, adding dL/dF at each layer with a loss
            seeds = {name: self._layer_grad(name, net.activations[name])
                     for name in set(self.P) | set(self.A)}
            dy = net.backward(seeds)
            net.activations.clear()
            grad += backend.to_numpy(dy).astype(numpy.float64)
        if self.tv_weight:
            tv, g = tv_loss(x)
            self.terms["tv"] = self.tv_weight * tv
            grad += self.tv_weight * g
        loss = self.terms["content"] + self.terms["style"] + self.terms["tv"]
        self.terms["total"] = loss
        return loss, grad


def _blend_weights(weights, count):
    if weights is None:
        return [1.0 / count] * count
    weights = [float(w) for w in weights]
    if len(weights) != count:
        raise BadOption(f"{len(weights)} style blend weights for {count} style images")
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise BadOption(f"style blend weights must be ≥ 0 with a positive sum, got {weights}")
    total = sum(weights)
    return [w / total for w in weights]


# ---------------------------------------------------------------------------------------
# colours and palettes
# ---------------------------------------------------------------------------------------

def _rgb_to_ycbcr(a):
    """ITU-R BT.601 full-range (JPEG) YCbCr of RGB float images in 0..255."""
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return numpy.stack([y, 128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
                        128 + 0.5 * r - 0.418688 * g - 0.081312 * b], axis=-1)


def _ycbcr_to_rgb(a):
    y, cb, cr = a[..., 0], a[..., 1] - 128, a[..., 2] - 128
    return numpy.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb],
                       axis=-1)


def original_colors(generated, content):
    """The generated image's luminance with the content's chroma (neural-style's
    ``-original_colors 1``); RGB uint8 images of the same size."""
    y = _rgb_to_ycbcr(generated.astype(numpy.float64))[..., :1]
    cc = _rgb_to_ycbcr(content.astype(numpy.float64))[..., 1:]
    rgb = _ycbcr_to_rgb(numpy.concatenate([y, cc], axis=-1))
    return numpy.clip(numpy.rint(rgb), 0, 255).astype(numpy.uint8)


def quantize(img, colors):
    """An RGB uint8 image reduced to ``colors`` colours (Pillow's median cut)."""
    from PIL import Image
    if not 2 <= int(colors) <= 256:
        raise BadOption(f"palette must have 2 to 256 colours, got {colors}")
    return numpy.asarray(Image.fromarray(img).quantize(int(colors)).convert("RGB"))


def _as_image(img, what):
    if isinstance(img, str):
        return load_image(img)
    a = numpy.asarray(backend.to_numpy(img))
    if a.ndim != 3 or a.shape[-1] != 3:
        raise BadShape(f"{what}: expected an RGB image (H, W, 3), got shape {a.shape}")
    return numpy.clip(a, 0, 255).astype(numpy.uint8)


# ---------------------------------------------------------------------------------------
# the optimization
# ---------------------------------------------------------------------------------------

class _NonFinite(ArithmeticError):
    pass


def default_scales(image_size):
    """Coarse to fine: halve until below 1024 when the image is 1024 pixels or more."""
    sizes = [int(image_size)]
    while sizes[0] >= 1024:
        sizes.insert(0, sizes[0] // 2)
    return tuple(sizes)


def _prepare(content_img, style_imgs, mode, init, palette, content_weight, style_weight):
    """Check the inputs of :func:`transfer`; returns (content RGB or None, style RGBs, init,
    content_weight, style_weight) as the mode asks."""
    if mode not in MODES:
        raise BadOption(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
    if isinstance(style_imgs, (str, numpy.ndarray)):
        style_imgs = [style_imgs]
    styles = [_as_image(s, f"style image {i + 1}") for i, s in enumerate(style_imgs or [])]
    from_noise = isinstance(init, str) and init == "content" and mode != "transfer"
    if mode == "content":
        style_weight, styles = 0.0, []
    elif mode == "texture":
        content_weight = 0.0
    if from_noise:
        init = "noise"
    if mode != "content" and not styles:
        raise BadOption(f"mode {mode!r} needs at least one style image")
    if palette:
        styles = [quantize(s, palette) for s in styles]
    if content_img is None and mode != "texture":
        raise BadOption(f"mode {mode!r} needs a content image")
    content = None if content_img is None else _as_image(content_img, "content image")
    if isinstance(init, str) and init not in ("content", "noise"):
        raise BadOption(f"init must be 'content', 'noise' or an image, got {init!r}")
    init = init if isinstance(init, str) else _as_image(init, "init image")
    return content, styles, init, content_weight, style_weight


def _start(net, x0, shape, init, content, rng):
    """The first image of a scale: the last scale's result upscaled, the init image, the
    content, or white noise around mid-grey; preprocessed float64 (1, 3, H, W)."""
    if x0 is not None:                       # coarse to fine: upscale the last result
        return resize_bilinear(x0, *shape)
    if not isinstance(init, str):
        img = resize(init, shape)
    elif init == "content" and content is not None:
        img = content
    else:
        img = rng.uniform(64, 192, shape + (3,))
    return backend.to_numpy(net.preprocess(img)).astype(numpy.float64)


class _Run:
    """The L-BFGS-B run over the scales: the objective with the best image so far, and the
    per-iteration record."""

    def __init__(self, options, callback, print_every, snapshot_every, finish):
        self.options, self.callback, self.print_every = options, callback, print_every
        self.snapshot_every, self.finish = snapshot_every, finish
        self.history, self.iteration = [], 0

    def scale(self, objective, x0, size):
        """Minimize ``objective`` from ``x0`` at one scale; returns (best x, status, message)."""
        from scipy.optimize import minimize
        best = {"loss": math.inf, "x": x0, "terms": {}}
        last = [time.perf_counter()]

        def fun(flat):
            x = flat.reshape(x0.shape)
            loss, grad = objective(x)
            if not (math.isfinite(loss) and numpy.isfinite(grad).all()):
                raise _NonFinite(f"non-finite {'loss' if not math.isfinite(loss) else 'gradient'}")
            if loss < best["loss"]:
                best.update(loss=loss, x=x.copy(), terms=dict(objective.terms))
            return loss, grad.ravel()

        def on_iteration(intermediate_result):
            self.iteration += 1
            now = time.perf_counter()
            t = best["terms"]
            info = dict(iteration=self.iteration, size=size, loss=float(intermediate_result.fun),
                        content=t.get("content", 0.0), style=t.get("style", 0.0),
                        tv=t.get("tv", 0.0), seconds=now - last[0])
            last[0] = now
            self.history.append(info)
            self._report(info, best["x"])

        status, message = "done", None
        try:
            res = minimize(fun, x0.ravel(), jac=True, method="L-BFGS-B", callback=on_iteration,
                           options=self.options)
            if res.status == 2 or "ABNORMAL" in str(res.message):
                status = "line search failed"
                message = (f"L-BFGS stopped at iteration {self.iteration}: {res.message} (the line "
                           f"search found no lower loss); keeping the best image so far")
        except KeyboardInterrupt:
            status = "interrupted"
            message = f"interrupted at iteration {self.iteration}; keeping the best image so far"
        except _NonFinite as e:
            status = "non-finite"
            message = (f"stopped at iteration {self.iteration}: {e} (try smaller weights); "
                       f"keeping the last good image")
        return best["x"], best["loss"], status, message

    def _report(self, info, x):
        k = self.iteration
        if self.print_every and (k % self.print_every == 0 or k == 1):
            print(f"iter {k:4d} @{info['size']}px  loss {info['loss']:.4e}  content "
                  f"{info['content']:.3e}  style {info['style']:.3e}  tv {info['tv']:.3e}  "
                  f"{info['seconds']:.2f} s/iter", flush=True)
        if self.callback is not None:
            if self.snapshot_every and k % self.snapshot_every == 0:
                info = dict(info, image=self.finish(x))
            self.callback(info)


def transfer(net, content_img, style_imgs, *, style_blend_weights=None,
             content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS,
             content_weight=CONTENT_WEIGHT, style_weight=STYLE_WEIGHT, tv_weight=TV_WEIGHT,
             init="content", image_size=512, style_scale=1.0, original_colors=False,
             max_iter=500, snapshot_every=0, seed=0, callback=None, mode="transfer",
             style_statistic="gram", palette=None, scales=None, dtype=numpy.float32,
             print_every=0, lbfgs_options=None):
    """Gatys style transfer by L-BFGS-B; returns a :class:`~nnviz.methods.optimize.Result`
    (``image``: RGB uint8 at the working size, the best of the run; ``x`` its preprocessed
    float64 batch; ``history``: a dict per iteration with ``iteration``, ``size``, ``loss``,
    the terms and ``seconds``; ``status``: ``"done"``, ``"interrupted"``, ``"line search
    failed"`` or ``"non-finite"``; ``loss``: the best loss).

    ``content_img``: RGB image (H, W, 3) or a path / ``"sample:NAME"`` (may be None for
    ``mode="texture"``); ``style_imgs``: a list of them. The optimization runs with the
    content's longer side at ``image_size`` (coarse to fine over ``scales``, ``max_iter``
    iterations at each), the styles' at ``style_scale · image_size``. ``init``: ``"content"``,
    ``"noise"`` or an RGB image. ``mode``: ``"transfer"``, ``"content"`` (reconstruct the
    content from noise, no style) or ``"texture"`` (synthesize the style from noise, no
    content). ``callback(info)`` is called after every iteration with a dict (``iteration``,
    ``size``, ``loss``, ``content``, ``style``, ``tv``, ``seconds``, and ``image`` every
    ``snapshot_every`` iterations). Ctrl-C stops and keeps the best image so far, as does a
    line-search failure or a non-finite value. The net is built by the caller (Gatys
    recommends ``pooling="avg"``).
    """
    content_full, styles, init, content_weight, style_weight = _prepare(
        content_img, style_imgs, mode, init, palette, content_weight, style_weight)
    if max_iter < 0 or snapshot_every < 0:
        raise BadOption("max_iter and snapshot_every must be ≥ 0")
    scales = default_scales(image_size) if scales is None else tuple(int(s) for s in scales)
    if not scales or min(scales) < 16:
        raise BadOption(f"image sizes must be at least 16 pixels, got {scales}")
    h0, w0 = (content_full if content_full is not None else styles[0]).shape[:2]
    rng = numpy.random.default_rng(seed)
    options = dict(maxiter=int(max_iter), maxcor=20, ftol=0.0, gtol=0.0, maxls=20)
    options.update(lbfgs_options or {})
    start = time.perf_counter()
    content = None
    run = _Run(options, callback, print_every, snapshot_every,
               lambda x: _finish(net, x, content, original_colors))
    x0, loss, status, message = None, math.inf, "done", None
    for size in scales:
        shape = fit_size((h0, w0), size)
        content = None if content_full is None else resize(content_full, shape)
        objective = GatysLoss(
            net, None if content is None else net.preprocess(content),
            [net.preprocess(resize(s, max(16, round(size * style_scale)))) for s in styles],
            content_layers=content_layers, style_layers=style_layers,
            content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
            style_blend_weights=style_blend_weights, dtype=dtype, statistic=style_statistic)
        x0 = _start(net, x0, shape, init, content, rng)
        x0, loss, status, message = run.scale(objective, x0, size)
        if status != "done":
            break
    image = _finish(net, x0, content, original_colors)
    return Result(x0, run.history, images=image[None], status=status, message=message,
                  loss=loss, seconds=time.perf_counter() - start)


def memory_estimate(net, shape, style_shapes, size, style_scale=1.0, layers=(),
                    dtype=numpy.float32):
    """Bytes that :func:`transfer` holds at its peak at the scale ``size`` (its largest): the
    net's forward and backward of the image (``shape``: the content's (H, W) or, without one,
    the first style image's; None: ``size`` square) and the forward alone of each style image
    (``style_shapes``, one at a time) at ``style_scale · size``, to the deepest of ``layers``
    that the net has, in ``dtype``; plus L-BFGS-B's float64 history (20 pairs of vectors) and
    its work arrays."""
    h, w = (size, size) if shape is None else fit_size(shape, size)
    used = [n for n in layers if n in net.layers]
    until = max(used, key=net.layer_names.index) if used else None
    need = models.memory_estimate(net, 1, h, w, until, dtype)
    side = max(16, round(size * style_scale))
    for st in style_shapes:
        need = max(need, models.memory_estimate(net, 1, *fit_size(st, side), until, dtype,
                                                backward=False))
    return need + (2 * 20 + 10) * 3 * h * w * 8


def _finish(net, x, content, keep_colors):
    image = net.deprocess(x)[0]
    if keep_colors and content is not None:
        image = original_colors(image, content)
    return image
