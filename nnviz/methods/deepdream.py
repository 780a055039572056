"""DeepDream (Mordvintsev, Olah & Tyka 2015, "Inceptionism: Going Deeper into Neural
Networks"; TensorFlow's DeepDream tutorial): gradient ascent on the mean activation of layers,
octaves carrying the detail, tiled gradients with a random roll, so that any image size runs
in memory bounded by the tile.
"""
import math
import time

import numpy

from .. import backend, models
from ..backend import get_array_module
from ..errors import BadOption, BadShape
from ..functional import resize_bilinear
from ..models import out_size, reach
from ..progress import progress_bar
from .optimize import Result, pixel_unit, save_snapshot


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
        raise BadOption("dream: give at least one layer")
    for name in layers:
        net.check_layer(name)
        if name in ("flatten",) or name.startswith("fc") or name.startswith("relu") and \
                name[4:].isdigit():
            raise BadOption(f"dream: layer {name!r} is not convolutional; use a conv, relu "
                            f"or pool layer up to pool5")
    return layers


# -- tiles: gradients of a big image with memory bounded by the tile --------------------------


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
        raise BadOption(f"tile_size {tile_size} is too small for layer {deepest!r}: its "
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


def memory_estimate(net, h, w, layers, tile_size=512):
    """Bytes that :func:`dream` on an image of ``h × w`` holds at its peak: the forward and
    backward of one tile (at most ``tile_size`` a side) to the deepest of ``layers``
    (:func:`nnviz.models.memory_estimate`; the tiles go through the net one at a time), and
    the whole image's arrays (x, the octave's base and detail, the gradient, rolled copies:
    ten float32 images)."""
    deepest = max(layers, key=net.layer_names.index)
    tile = models.memory_estimate(net, 1, min(h, tile_size), min(w, tile_size), deepest)
    return tile + 10 * 3 * h * w * 4


def _octaves(net, h, w, layers, octaves, octave_scale):
    """The octaves' sizes ``(h, w)``, smallest first; BadShape when the smallest is too small
    for the deepest layer."""
    sizes = [(max(1, round(h / octave_scale ** k)), max(1, round(w / octave_scale ** k)))
             for k in reversed(range(octaves))]
    deepest = max(layers, key=net.layer_names.index)
    if min(out_size(net, deepest, *sizes[0])) < 1:
        raise BadShape(f"dream: the smallest octave would be {sizes[0][1]}×{sizes[0][0]} "
                       f"pixels, too small for layer {deepest!r}: use fewer octaves "
                       f"({octaves}) or a smaller octave scale ({octave_scale:g})")
    return sizes


def _ascend(net, x, layers, tile_size, shift, grad_norm, step_size):
    """One step of ``step_size`` half-ranges of gradient ascent from ``x`` (the gradient of
    ``x`` rolled by ``shift``, rolled back and normalized): ``(value, new, bad)``,
    ``bad`` why the step cannot be taken (a non-finite objective, normalization or step,
    checked before it is applied), else None."""
    xp = get_array_module(x)
    value, g = tiled_dream_gradient(net, xp.roll(x, shift, axis=(2, 3)), layers, tile_size)
    g = xp.roll(g, (-shift[0], -shift[1]), axis=(2, 3))
    scale = float(g.std()) if grad_norm == "std" else float(xp.abs(g).mean())
    if not math.isfinite(value):
        return value, None, "the objective is not finite"
    if not (math.isfinite(scale) and scale > 0):
        return value, None, f"normalization: the gradient's {grad_norm} is {scale:g}"
    with numpy.errstate(all="ignore"):
        new = x + (step_size * 127.5 * pixel_unit(net) / scale) * g
    if not bool(xp.isfinite(new).all()):
        return value, None, f"the step is not finite (step size {step_size:g})"
    return value, new, None


def _full_size(image, x, base, bounds):
    """What an interrupted run keeps: ``x`` of an earlier octave with its detail carried to
    the full size, as the next octave would (``x`` itself at the full size)."""
    h, w = image.shape[2:]
    if tuple(x.shape[2:]) == (h, w):
        return x
    if base is not None and base.shape == x.shape:
        x = image + resize_bilinear(x - base, h, w)
    else:
        x = resize_bilinear(x, h, w)
    xp = get_array_module(x)
    return xp.minimum(xp.maximum(x, bounds[0]), bounds[1])


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
    [-1, 1]), clip to the pixel range. Each step is checked before it is applied: a
    non-finite objective, normalization or step stops the run there, keeping the last finite
    image (status ``"stopped"``). Ctrl-C (SIGTERM under the ``nnviz`` command) stops it too,
    keeping the last image (status ``"interrupted"``). Returns a
    :class:`~nnviz.methods.optimize.Result`."""
    layers = _check_layers(net, layers)
    _check_options(octaves, octave_scale, steps_per_octave, step_size, tile_size)
    image = backend.to_device(image, net.device)
    xp = get_array_module(image)
    rng = numpy.random.default_rng(seed)
    lo, hi = net.pixel_bounds(image.dtype)
    sizes = _octaves(net, *image.shape[2:], layers, octaves, octave_scale)
    history = []
    start = time.perf_counter()

    def result(x, status="done", message=None, stopped=None):
        bar.close()
        return Result(x, history, images=net.deprocess(x), status=status, message=message,
                      stopped=[stopped], loss=history[-1]["objective"] if history else None,
                      seconds=time.perf_counter() - start)
    if grad_norm not in ("std", "mean_abs"):
        raise BadOption(f"grad_norm must be 'std' or 'mean_abs', got {grad_norm!r}")
    bar = progress_bar(octaves * steps_per_octave, "dream", progress)
    detail, step, x, base = None, 0, image, None
    try:
        for octave, (oh, ow) in enumerate(sizes):
            base = resize_bilinear(image, oh, ow)
            detail = xp.zeros_like(base) if detail is None else resize_bilinear(detail, oh, ow)
            x = base + detail
            for _ in range(steps_per_octave):
                shift = (int(rng.integers(0, oh)), int(rng.integers(0, ow))) if roll else (0, 0)
                value, new, bad = _ascend(net, x, layers, tile_size, shift, grad_norm, step_size)
                history.append({"step": step, "octave": octave, "objective": value,
                                "size": (oh, ow)})
                if bad:
                    return result(x, "stopped", f"stopped at step {step} (octave {octave}): "
                                  f"{bad}; kept the last finite image", step)
                x = xp.minimum(xp.maximum(new, lo), hi)
                step += 1
                if snapshot_every and snapshot_path and step % snapshot_every == 0:
                    save_snapshot(net, x, snapshot_path, step)
                if callback is not None:
                    callback(step, x, history[-1])
                bar.update(1)
            detail = x - base
    except KeyboardInterrupt:
        return result(_full_size(image, x, base, (lo, hi)), "interrupted", f"interrupted at step "
                      f"{step} of {octaves * steps_per_octave}; kept the last image")
    return result(x)


def _check_options(octaves, octave_scale, steps_per_octave, step_size, tile_size):
    """BadOption for an option out of its range (the CLI's parser checks them too)."""
    checks = (("octaves", octaves, lambda v: int(v) == v and v >= 1, "an integer ≥ 1"),
              ("octave_scale", octave_scale, lambda v: math.isfinite(v) and v >= 1,
               "a finite number ≥ 1"),
              ("steps_per_octave", steps_per_octave, lambda v: int(v) == v and v >= 0,
               "an integer ≥ 0"),
              ("step_size", step_size, lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
              ("tile_size", tile_size, lambda v: int(v) == v and v >= 1, "an integer ≥ 1"))
    for name, value, ok, what in checks:
        try:
            good = ok(float(value))
        except (TypeError, ValueError, OverflowError):
            good = False
        if not good:
            raise BadOption(f"dream: {name} {value}: must be {what}")
