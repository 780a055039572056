"""Attribution: which pixels of the input make a unit, a channel or a class respond.

- saliency: Simonyan, Vedaldi, Zisserman 2013, "Deep inside convolutional networks", eq. (2)-(3):
  the gradient w = dS/dI of the (pre-softmax) score; the map is max over colours of |w|.
- deconvnet: Zeiler & Fergus 2014, "Visualizing and understanding convolutional networks",
  sec. 2.1: unpooling through the switches, rectification of the signal, transposed filters.
- guided backprop: Springenberg et al. 2015, "Striving for simplicity", sec. 3.4 and fig. 1
  (the ReLU passes the signal where both the forward input and the backward signal are > 0).
- SmoothGrad: Smilkov et al. 2017, eq. (3): the mean map over inputs x + N(0, sigma^2).
- gradient x input: Shrikumar et al. 2016/2017: x * dS/dx.
- integrated gradients: Sundararajan, Taly, Yan 2017, eq. (1) and its Riemann approximation
  (sec. 5), here by the midpoint rule.
(Grad-CAM is in :mod:`nnviz.methods.cam`.)

Arrays: inputs ``x: (N, C, H, W)`` are preprocessed batches (``net.preprocess``); every map is a
raw array on the net's device shaped as ``x``. Every image of a
batch gets the gradient of its own score: the seeds of all images go back at once (the images
are independent). Gradients are written by hand in the layers (``Net.backward``); there is no
autograd here.

Targets (``nnviz.targets``): a class index of ``fc8`` (pre-softmax score), ``(layer, channel)``
(the channel's activation summed over space) or ``(layer, channel, (i, j))`` (one unit).
"""
import hashlib
import json
import os
from collections import OrderedDict

import numpy

from .. import backend, rules, targets
from ..backend import get_array_module
from ..errors import InputError
from ..functional import gaussian_blur
from ..models import memory_estimate as net_memory
from ..models import receptive_field

MODES = ("unit", "channel")
# the deconvnet without switches: rectifying ReLUs, unpooling to each window's first pixel
DECONVNET_NO_SWITCHES = rules.Composite([("activation", "deconvnet"), ("maxpool", "no_switches")])


# ---------------------------------------------------------------------------------------
# forward to a target, and back
# ---------------------------------------------------------------------------------------

def as_batch(net, x):
    """``x`` checked as a preprocessed batch (N, C, H, W) of floats, on the net's device."""
    if not hasattr(x, "ndim") or x.ndim != 4:
        raise InputError(f"expected a preprocessed batch x: (N, C, H, W), got shape "
                         f"{tuple(getattr(x, 'shape', ()))}; use net.preprocess(images)")
    if x.dtype.kind != "f":
        raise InputError(f"expected a float batch, got {x.dtype}; use net.preprocess(images)")
    return backend.to_device(x, net.device)


def forward_to(net, x, layer):
    """Run ``x`` up to ``layer``; an unknown layer, or a fully connected layer at a size other
    than 224 (:meth:`nnviz.models.Net.check_size`), is an InputError."""
    targets.Target(layer, 0).check(net)
    net.forward(x, until=layer)
    return net.activations[layer]


def target_activation(net, x, target):
    """Parse and check ``target``, forward ``x`` to its layer; returns (target, activation)."""
    t = targets.parse(target).check(net)
    act = forward_to(net, x, t.layer)
    t.check(net, act.shape)
    return t, act


def gradient(net, x, target, rule="backprop"):
    """The gradient of the target's score with respect to ``x`` under the ReLU ``rule``
    (``"backprop"``, ``"deconvnet"``, ``"guided"`` or a dict ReLU name -> rule)."""
    x = as_batch(net, x)
    t, act = target_activation(net, x, target)
    return net.backward(t.seed(act), start=t.layer, rule=rule)


def saliency(net, x, target):
    """Simonyan et al. 2013: the plain gradient of the target's score (``fc8`` class scores
    are pre-softmax) with respect to the input. ``x: (N, C, H, W)`` -> same shape; render it
    with ``nnviz.render.magnitude`` (max over colours of |g|)."""
    return gradient(net, x, target, "backprop")


def memory_estimate(net, n, h, w, until=None, method="saliency", steps=None, smoothed=False,
                    channels=None):
    """Bytes that ``method`` (``saliency``, ``ig``, ``top-units``, ``trace``, …) holds at its
    peak on ``n`` images of ``h × w`` explained at layer ``until``: the forward and backward of
    the batch it runs at once (:func:`nnviz.models.memory_estimate`; integrated gradients:
    ``n`` images times up to 8 path points), and its own arrays, each ``n`` float32 images:
    the images, x and the map (3), integrated gradients' path and sums (3 more), SmoothGrad's
    noise, noisy copy and running sum (3 more, ``smoothed``), top units' unit and channel
    projections (2 per channel of ``channels``); a trace keeps every layer's gradient too
    (twice the net's)."""
    batch, extra = n, 3.0
    if method == "ig":
        batch, extra = n * min(8, int(steps or 64) + 1), extra + 3
    if smoothed:
        extra += 3
    if method == "top-units":
        extra += 2 * int(channels or 9)
    need = net_memory(net, batch, h, w, until)
    if method == "trace":
        need *= 2
    return need + int(extra * n * 3 * h * w * 4)


# ---------------------------------------------------------------------------------------
# deconvnet and guided backprop: projections of units
# ---------------------------------------------------------------------------------------

def strongest_units(act, channel):
    """For ``act: (N, C, H, W)``, the (i, j) of the largest activation of ``channel`` in each
    image: an int array (N, 2) on the host (the first maximum on ties)."""
    a = act[:, channel].reshape(act.shape[0], -1)
    k = backend.to_numpy(a.argmax(axis=1))
    return numpy.stack([k // act.shape[3], k % act.shape[3]], axis=1)


def _unit_seed(act, channels, position, mode, seed):
    """The seed at a layer: ``channels`` (N,) one channel per image; ``mode="unit"`` keeps the
    unit at ``position`` (default: the channel's strongest, per image), ``"channel"`` the whole
    channel; every other activation is zero. ``seed="activation"`` seeds with the activation
    values, ``"one"`` with 1. Returns (seed array, positions (N, 2) or None)."""
    xp = get_array_module(act)
    if mode not in MODES:
        raise InputError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    if seed not in ("activation", "one"):
        raise InputError(f"seed {seed!r}: expected 'activation' or 'one'")
    n = act.shape[0]
    channels = numpy.broadcast_to(numpy.asarray(channels, dtype=numpy.int64), (n,))
    mask = xp.zeros_like(act)
    rows = numpy.arange(n)
    positions = None
    if act.ndim == 2 or (mode == "channel" and position is None):
        mask[xp.asarray(rows), xp.asarray(channels)] = 1
    else:
        if position is None:
            positions = numpy.stack([strongest_units(act[r:r + 1], int(c))[0]
                                     for r, c in zip(rows, channels)])
        else:              # one (i, j) for every image, or (N, 2): one per image
            positions = numpy.broadcast_to(numpy.asarray(position, dtype=numpy.int64).reshape(-1, 2),
                                           (n, 2)).copy()
        mask[xp.asarray(rows), xp.asarray(channels), xp.asarray(positions[:, 0]),
             xp.asarray(positions[:, 1])] = 1
    return (mask * act if seed == "activation" else mask), positions


def _project(net, x, layer, channels, position, mode, rule, seed, switches=True):
    x = as_batch(net, x)
    pos = [None] if position is None else [tuple(int(v) for v in p)
                                           for p in numpy.asarray(position).reshape(-1, 2)]
    for p in pos:
        targets.Target(layer, int(numpy.max(channels)), p).check(net)
    act = forward_to(net, x, layer)
    for p in pos:
        for c in (numpy.min(channels), numpy.max(channels)):
            targets.Target(layer, int(c), p).check(net, act.shape)
    dy, positions = _unit_seed(act, channels, position, mode, seed)
    if not switches:      # Zeiler's unpooling to each window's first pixel (deconvnet only)
        rule = DECONVNET_NO_SWITCHES
    return net.backward(dy, start=layer, rule=rule), positions


def deconvnet(net, x, layer, channel, position=None, mode="unit", switches=True,
              seed="activation"):
    """Zeiler & Fergus 2014: project a unit of ``layer`` back to the input with the deconvnet.

    ``mode="unit"`` (default) keeps the strongest unit of ``channel`` in each image (or the
    unit at ``position=(i, j)``) and zeroes every other activation of the layer; ``"channel"``
    keeps the whole channel. The seed is the activation itself (``seed="activation"``), as
    Zeiler projects the feature map's values; ``seed="one"`` seeds with 1. Going down: ReLUs
    rectify the signal (``dy * (dy > 0)``), max pooling unpools through the switches of the
    forward, convolutions apply the transposed filters. ``switches=False`` unpools to the
    top-left pixel of each window instead, to show what the switches contribute.

    ``x: (N, C, H, W)`` -> the projection, shaped as ``x``.
    """
    g, _ = _project(net, x, layer, channel, position, mode, "deconvnet", seed, switches)
    return g


def guided_backprop(net, x, layer, channel, position=None, mode="unit", seed="one"):
    """Springenberg et al. 2015: guided backpropagation of a unit of ``layer``.

    Units are chosen as in :func:`deconvnet`. The seed is 1 at the kept unit(s)
    (``seed="one"``): guided backprop is the gradient of the unit's activation with the ReLUs
    passing only positive signal where the forward input was positive
    (``dy * (x > 0) * (dy > 0)``), as in Springenberg et al.'s reconstructions and the standard
    implementations (Captum's ``GuidedBackprop``, Keras/TF ``guided ReLU`` gradients).
    ``seed="activation"`` seeds with the activation, as the deconvnet does.

    ``x: (N, C, H, W)`` -> the map, shaped as ``x``.
    """
    g, _ = _project(net, x, layer, channel, position, mode, "guided", seed)
    return g


def top_units(net, x, layer, n=9, rule="guided"):
    """Zeiler & Fergus 2014, fig. 2 style: for each image, the ``n`` channels of ``layer`` with
    the largest summed activation, and for each the projection of its strongest unit and of
    the whole channel, with ``rule`` ``"guided"`` (seed 1) or ``"deconvnet"`` (seed: the
    activation).

    Returns a dict: ``channels`` (N, n) and ``positions`` (N, n, 2) int arrays on the host,
    ``unit`` and ``channel``: (N, n, C, H, W) maps on the net's device, and ``boxes``
    (N, n, 4): the receptive field (top, left, bottom, right) of each strongest unit.
    """
    if rule not in ("guided", "deconvnet"):
        raise InputError(f"rule {rule!r}: expected 'guided' or 'deconvnet'")
    x = as_batch(net, x)
    act = forward_to(net, x, layer)
    if act.ndim != 4:
        raise InputError(f"layer {layer!r} has no spatial map; give a convolutional layer")
    n = int(n)
    if not 1 <= n <= act.shape[1]:
        raise InputError(f"n={n}: layer {layer!r} has {act.shape[1]} channels")
    xp = get_array_module(act)
    sums = backend.to_numpy(act.sum(axis=(2, 3)))
    channels = numpy.argsort(-sums, axis=1, kind="stable")[:, :n]          # (N, n)
    seed = "one" if rule == "guided" else "activation"
    unit, whole, positions = [], [], []
    for k in range(n):
        g, pos = _project(net, x, layer, channels[:, k], None, "unit", rule, seed)
        unit.append(g)
        positions.append(pos)
        g, _ = _project(net, x, layer, channels[:, k], None, "channel", rule, seed)
        whole.append(g)
    positions = numpy.stack(positions, axis=1)                               # (N, n, 2)
    size = tuple(x.shape[2:])
    boxes = numpy.array([[receptive_field(net, layer, p, size) for p in row] for row in positions])
    return {"channels": channels, "positions": positions, "boxes": boxes,
            "unit": xp.stack(unit, axis=1), "channel": xp.stack(whole, axis=1)}


# ---------------------------------------------------------------------------------------
# default targets: a unit on the image's content, not on its border
# ---------------------------------------------------------------------------------------

DEFAULT_LAYER = "pool5"


def central_units(net, layer, shape, size, region=0.5):
    """A bool map (h, w) of ``layer``'s units whose receptive field is centred in the middle
    ``region`` of an image of ``size=(H, W)`` (0.5: the middle half of each side), for a layer
    map of ``shape=(h, w)``."""
    h, w = shape
    H, W = size
    lo, hi = (1 - region) / 2, (1 + region) / 2
    m = numpy.zeros((h, w), bool)
    for i in range(h):
        for j in range(w):
            top, left, bottom, right = receptive_field(net, layer, (i, j))
            ci, cj = (top + bottom) / 2, (left + right) / 2
            m[i, j] = lo * (H - 1) <= ci <= hi * (H - 1) and lo * (W - 1) <= cj <= hi * (W - 1)
    return m


def default_target(net, x, layer=DEFAULT_LAYER, sigma=None, region=0.5):
    """One unit of ``layer`` per image that shows the image's content: among the units whose
    receptive field is centred in the middle ``region`` of the image (:func:`central_units`;
    all units when none is), the (channel, position) whose activation rises most above its
    activation on a blurred copy of the image (a Gaussian of ``sigma`` pixels, default
    ``max(H, W) / 28``, 8 px at 224: :func:`nnviz.functional.gaussian_blur`, scipy's
    edges and radius), among units that are > 0.

    Why: the image border is an edge that a blurred copy keeps, and the network's strongest
    channel on the raw image is often an edge detector firing at the border (the default
    HED weights are tuned for edges); units whose response the blur leaves intact respond to
    the frame, units that lose it respond to the content. A unit of the middle keeps the map
    off the frame.

    Returns a :class:`nnviz.targets.PerImage` (``[i]``: image i's :class:`Target`, with
    ``.reason``: one line saying what was chosen and why; ``.rule`` the rule and
    ``.details[i]`` image i's unit and values). An image with no unit > 0 at
    ``layer`` is an :class:`InputError` (nothing to attribute).
    """
    x = as_batch(net, x)
    H, W = x.shape[2:]
    sigma = max(H, W) / 28 if sigma is None else float(sigma)
    # the blurred copy first, the image last: its forward is the one the net keeps
    ref = backend.to_numpy(forward_to(net, gaussian_blur(x, sigma), layer)).astype(numpy.float64)
    act = forward_to(net, x, layer)
    if act.ndim != 4:
        raise InputError(f"default targets are units of a convolutional layer, not {layer!r}")
    act = backend.to_numpy(act).astype(numpy.float64)
    middle = central_units(net, layer, act.shape[2:], (H, W), region)
    where = f"among units centred in the middle {region:.0%} of each side"
    if not middle.any():
        middle[:] = True
        where = f"among all units ({H}×{W} is too small for a {layer} unit centred in its middle)"
    chosen, why = [], []
    for i in range(act.shape[0]):
        a, gain = act[i], act[i] - ref[i]
        ok = (a > 0) & middle
        if not ok.any():
            ok = a > 0
            if not ok.any():
                raise InputError(f"every unit of {layer} is 0 on image {i}: nothing to attribute")
        c, pi, pj = numpy.unravel_index(numpy.where(ok, gain, -numpy.inf).argmax(), a.shape)
        t = targets.Target(layer, int(c), (int(pi), int(pj)))
        chosen.append(t)
        why.append(f"{t}: {a[c, pi, pj]:.3g} here, {ref[i, c, pi, pj]:.3g} on a copy blurred by "
                   f"{sigma:.3g} px")
    rule = f"the {layer} unit that the image excites most beyond a blurred copy, {where}"
    named = why if len(why) == 1 else [f"image {i}: {w}" for i, w in enumerate(why)]
    out = targets.PerImage(chosen, f"{rule} ({'; '.join(named)})")
    out.rule, out.details = rule, why
    return out


# ---------------------------------------------------------------------------------------
# SmoothGrad, gradient x input, integrated gradients
# ---------------------------------------------------------------------------------------

def gradient_x_input(net, x, target):
    """Gradient × input (Shrikumar et al.): ``x * dS/dx``, elementwise, shaped as ``x``.
    ``x`` is the preprocessed input (for Caffe weights: BGR minus the ImageNet mean)."""
    x = as_batch(net, x)
    return x * saliency(net, x, target)


def _method(method):
    if callable(method):
        return method
    table = {"saliency": saliency, "gradxinput": gradient_x_input,
             "gradient_x_input": gradient_x_input, "ig": integrated_gradients,
             "integrated_gradients": integrated_gradients,
             "guided": lambda net, x, target, **kw: gradient(net, x, target, "guided"),
             "deconvnet": lambda net, x, target, **kw: gradient(net, x, target, "deconvnet")}
    if method not in table:
        raise InputError(f"method {method!r}: expected a function or one of {', '.join(table)}")
    return table[method]


def smoothgrad(method, net, x, target, n=50, sigma=0.15, seed=0, squared=False, **kw):
    """Smilkov et al. 2017, eq. (3): the mean of ``method(net, x + noise_k, target, **kw)`` over
    ``n`` samples (50, the paper's "n = 50 ... diminishing returns"), ``noise_k ~ N(0, s^2)``
    with ``s = sigma * (max(x_i) - min(x_i))`` per image ``x_i`` (the paper's noise level
    sigma / (x_max - x_min); 0.15, within its recommended 10-20%).
    ``squared=True``: SmoothGrad-Squared (Hooker, Erhan, Kindermans, Kim 2019, "A benchmark
    for interpretability methods in deep neural networks", sec. 3), the mean of the squared
    maps, ``mean_k method(...)**2``.

    ``method``: a function ``(net, x, target, **kw)`` or a name (``"saliency"``,
    ``"gradxinput"``, ``"ig"``, ``"guided"`` and ``"deconvnet"`` (the gradient of the target's
    score under that ReLU rule, seed 1)). The noise is drawn on the host, reproducibly:
    ``rng = numpy.random.default_rng(seed)``, then for each sample in turn
    ``rng.standard_normal(x.shape)`` (float64), scaled and cast to ``x``'s dtype.
    """
    f = _method(method)
    x = as_batch(net, x)
    n = int(n)
    if n < 1:
        raise InputError(f"smoothgrad needs n >= 1 samples, got {n}")
    if not (sigma >= 0 and numpy.isfinite(sigma)):
        raise InputError(f"sigma must be a finite number >= 0, got {sigma}")
    xp = get_array_module(x)
    flat = x.reshape(x.shape[0], -1)
    scale = (sigma * (flat.max(axis=1) - flat.min(axis=1))).reshape(-1, 1, 1, 1)
    rng = numpy.random.default_rng(seed)
    total = None
    for _ in range(n):
        noise = backend.to_device(rng.standard_normal(x.shape), net.device).astype(x.dtype)
        g = f(net, x + scale * noise, target, **kw)
        if squared:
            g = g * g
        total = g if total is None else total + g
    return total / xp.asarray(n, dtype=total.dtype)


INTEGRATION = ("trapezoid", "midpoint", "left", "right")


def integration_points(steps, integration="midpoint"):
    """The points ``alpha`` in [0, 1] and weights (summing to 1) of a quadrature rule with
    ``steps`` intervals: ``trapezoid`` (steps + 1 points, halves at the ends), ``midpoint``,
    ``left`` or ``right`` Riemann sums (steps points)."""
    steps = int(steps)
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    k = numpy.arange(steps + 1, dtype=numpy.float64)
    if integration == "trapezoid":
        w = numpy.full(steps + 1, 1.0 / steps)
        w[[0, -1]] /= 2
        return k / steps, w
    if integration == "midpoint":
        return (k[:-1] + 0.5) / steps, numpy.full(steps, 1.0 / steps)
    if integration == "left":
        return k[:-1] / steps, numpy.full(steps, 1.0 / steps)
    if integration == "right":
        return k[1:] / steps, numpy.full(steps, 1.0 / steps)
    raise InputError(f"integration {integration!r}: expected one of {', '.join(INTEGRATION)}")


def integrated_gradients(net, x, target, baseline=None, steps=64, integration="midpoint",
                         batch=8):
    """Sundararajan et al. 2017, eq. (1): ``(x - x') * integral_0^1 dS/dx(x' + a (x - x')) da``
    with baseline ``x'`` (default zeros, i.e. the mean image for Caffe preprocessing).

    The integral is the midpoint Riemann sum with ``steps`` points, ``a = (k + 1/2) / steps``
    (``integration="trapezoid"``, ``"left"`` or ``"right"`` for the others). On a ReLU
    network the midpoint rule is the most accurate of these for the same cost: completeness,
    ``sum(attributions) = S(x) - S(x')``, holds to about 0.1-0.2% at 64 steps on VGG16, where
    the trapezoid rule is off by up to 1% and the left/right sums by more.
    ``batch`` path points of all images go through the net together.

    ``x: (N, C, H, W)`` -> attributions shaped as ``x``.
    """
    x = as_batch(net, x)
    xp = get_array_module(x)
    if baseline is None:
        baseline = xp.zeros_like(x)
    else:
        baseline = backend.to_device(baseline, net.device).astype(x.dtype, copy=False)
        baseline = xp.broadcast_to(baseline, x.shape)
    alphas, weights = integration_points(steps, integration)
    diff = x - baseline
    n = x.shape[0]
    total = xp.zeros_like(x)
    batch = max(1, int(batch))
    for start in range(0, len(alphas), batch):
        a = alphas[start:start + batch]
        w = weights[start:start + batch]
        path = baseline[None] + xp.asarray(a, dtype=x.dtype).reshape(-1, 1, 1, 1, 1) * diff[None]
        g = gradient(net, path.reshape((-1,) + x.shape[1:]), target)
        g = g.reshape((len(a), n) + x.shape[1:])
        total += (xp.asarray(w, dtype=x.dtype).reshape(-1, 1, 1, 1, 1) * g).sum(axis=0)
    return diff * total


# ---------------------------------------------------------------------------------------
# Grad-CAM
# ---------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------
# trace: every layer's activation and gradient, to HDF5
# ---------------------------------------------------------------------------------------

def trace(net, x, target, rule="backprop", path=None, force=True, format=None):
    """Forward ``x`` to the target's layer and go back from its seed (the gradient of the
    score) under ``rule``, recording for every layer its activation and the gradient arriving
    at its output, and the gradient at the input (``"input"``).

    With LRP rules (an LRP composite such as ``"epsilon_gamma_box"``, or a composite or dict
    that places LRP rules: :func:`nnviz.rules.is_relevance`) the signal is relevance, seeded
    with the target's score (:func:`nnviz.methods.lrp.lrp`).

    Returns an ordered dict name -> (activation, gradient or relevance) (device arrays). With
    ``path``, also writes one HDF5 file, atomically: a group per layer (``input`` first) with
    datasets ``activation`` and ``gradient`` (LRP: ``relevance`` and ``relevance_sum``, its
    sum per image, and the group attribute ``rule``, the rule that layer applies); file
    attributes ``arch``, ``target``, ``rule``, and ``meta``: the JSON of :func:`trace_meta`.
    ``format`` ``"npz"`` or ``"npy"`` (or a path ending in ``.npz``, or not in ``.h5``)
    writes the same arrays and description with NumPy alone (:func:`write_trace`), for tests
    in any language; :func:`read_trace` reads all three.
    """
    x = as_batch(net, x)
    t, act = target_activation(net, x, target)
    relevance = rules.is_relevance(rule)
    seed = t.seed(act) * act if relevance else t.seed(act)
    placed = net.assign_rules(rule, act.dtype) if relevance else rule
    record = OrderedDict()
    dx = net.backward(seed, t.layer, rule=placed, record=record)
    out = OrderedDict([("input", (x, dx))])
    for name in net.activations:
        out[name] = (net.activations[name], record[name])
    if path is not None and trace_format(path, format) != "h5":       # .npz, or a folder of .npy
        write_trace(out, path, trace_meta(net, x, t, rule, relevance), format, force)
        return out
    if path is not None:
        import h5py

        from ..io import atomic_path
        with atomic_path(path, force=force) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["arch"] = net.arch
                f.attrs["target"] = str(t)
                f.attrs["rule"] = rule if isinstance(rule, str) else repr(
                    sorted(rule.items(), key=str) if isinstance(rule, dict) else rule)
                f.attrs["layers"] = list(out)
                f.attrs["meta"] = json.dumps(trace_meta(net, x, t, rule, relevance))
                for name, (a, g) in out.items():
                    grp = f.create_group(name)
                    grp.create_dataset("activation", data=backend.to_numpy(a))
                    if not relevance:
                        grp.create_dataset("gradient", data=backend.to_numpy(g))
                        continue
                    g = backend.to_numpy(g)
                    grp.create_dataset("relevance", data=g)
                    grp.create_dataset("relevance_sum", data=g.reshape(g.shape[0], -1).sum(axis=1))
                    if name != "input":
                        grp.attrs["rule"] = repr(placed.get(name, rules.GRADIENT))
    return out


# ---------------------------------------------------------------------------------------
# trace files: HDF5, .npz, or a folder of .npy files, with one schema
# ---------------------------------------------------------------------------------------

TRACE_SCHEMA = "nnviz-trace/1"
TRACE_FORMATS = ("h5", "npz", "npy")


def trace_format(path, format=None):
    """The format of a trace file: ``format`` when given (``h5``, ``npz``, ``npy``), else from
    ``path``: ``.npz``, ``.h5``/``.hdf5``, anything else a folder of ``.npy`` files."""
    if format is not None:
        if format not in TRACE_FORMATS:
            raise InputError(f"trace format {format!r}: expected one of {', '.join(TRACE_FORMATS)}")
        return format
    low = os.fspath(path).lower()
    if low.endswith(".npz"):
        return "npz"
    if low.endswith((".h5", ".hdf5")):
        return "h5"
    return "npy"


def weights_digest(net):
    """The sha256 of ``net``'s parameters: each parameter's name, shape and float32
    little-endian bytes, in layer order. The same weights give the same digest whatever file
    they came from (a Keras file, a state dict, an ONNX model, nnviz's own)."""
    h = hashlib.sha256()
    for key, a in net.parameters():
        a = numpy.ascontiguousarray(backend.to_numpy(a), dtype="<f4")
        h.update(f"{key}{tuple(a.shape)}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _rule_meta(rule):
    if rule is None or isinstance(rule, str):
        return rule or "backprop"
    if isinstance(rule, dict) and all(isinstance(v, str) or hasattr(v, "name") for v in rule.values()):
        return {str(k): (v if isinstance(v, str) else v.name) for k, v in rule.items()}
    return repr(rule)


def trace_meta(net, x, target, rule, relevance=False):
    """The trace's description (schema ``nnviz-trace/1``): ``schema``, ``arch``, ``layers``
    (in order, ``input`` first), ``target``, ``rule`` (a name, a dict layer -> rule name, or
    the repr of a composite), ``signal`` (``gradient``, or ``relevance`` under LRP rules),
    ``seed`` (``one``: the gradient of the target's score; ``score``: relevance starts from the
    score), ``dtype``, ``input_shape``, ``preprocess``, ``weights_sha256``
    (:func:`weights_digest`), ``weights_source`` and ``nnviz`` (the version)."""
    from .. import __version__
    layers = ["input"] + list(net.activations)
    return dict(schema=TRACE_SCHEMA, arch=net.arch, layers=layers, target=str(target), rule=_rule_meta(rule),
                signal="relevance" if relevance else "gradient", seed="score" if relevance else "one",
                dtype=str(x.dtype), input_shape=[int(s) for s in x.shape], preprocess=net.preprocessing,
                weights_sha256=weights_digest(net), weights_source=str(net.weights_info.get("source", "")),
                nnviz=__version__)


def write_trace(out, path, meta, format=None, force=True):
    """Write the trace ``out`` (name -> (activation, signal)) with ``meta`` to ``path``,
    atomically, as ``npz`` (arrays ``"<layer>/activation"`` and ``"<layer>/<signal>"``, and
    ``"meta"``: the JSON of ``meta`` as a 0-d string array) or ``npy`` (a folder:
    ``<layer>.activation.npy``, ``<layer>.<signal>.npy`` and ``meta.json``). Every array is
    NCHW (or (N, features)) in the trace's dtype; ``<signal>`` is ``gradient`` or
    ``relevance`` as ``meta["signal"]`` says. Returns ``path``."""
    import shutil
    import tempfile

    from ..io import atomic_path
    fmt = trace_format(path, format)
    signal = meta.get("signal", "gradient")
    arrays = OrderedDict()
    for name, (a, g) in out.items():
        arrays[f"{name}/activation"] = backend.to_numpy(a)
        arrays[f"{name}/{signal}"] = backend.to_numpy(g)
    text = json.dumps(meta, indent=1)
    if fmt == "npz":
        with atomic_path(path, force=force) as tmp:
            with open(tmp, "wb") as fh:
                numpy.savez(fh, meta=numpy.array(text), **arrays)
        return path
    if fmt != "npy":
        raise InputError(f"write_trace writes npz or npy; {fmt!r} traces are written by trace()")
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path):
        if not force:
            raise InputError(f"{path}: exists (use --force to overwrite)")
        if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, "meta.json")):
            raise InputError(f"{path}: exists and is not a trace folder (no meta.json): refusing to replace it")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.{os.getpid()}-", suffix=".tmp", dir=parent)
    try:
        for key, a in arrays.items():
            numpy.save(os.path.join(tmp, key.replace("/", ".") + ".npy"), a)
        with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-", dir=parent)
            os.replace(path, os.path.join(old, "trace"))
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_trace(path):
    """A trace written by :func:`trace` (``.h5``, ``.npz`` or a folder of ``.npy``):
    ``(arrays, meta)`` with ``arrays`` an ordered dict name -> (activation, signal) (NumPy,
    ``input`` first) and ``meta`` as :func:`trace_meta` describes (for HDF5 traces written
    before the schema, what their attributes say). Nothing from the file is run
    (``allow_pickle=False``)."""
    path = os.fspath(path)
    name = os.path.basename(path.rstrip(os.sep)) or path
    if not os.path.exists(path):
        raise InputError(f"{path}: no such trace")
    fmt = "npy" if os.path.isdir(path) else trace_format(path)
    try:
        if fmt == "npz":
            with numpy.load(path, allow_pickle=False) as z:
                if "meta" not in z.files:
                    raise InputError(f"{name}: an .npz without 'meta': not an nnviz trace")
                meta = json.loads(str(z["meta"]))
                signal = meta.get("signal", "gradient")
                arrays = OrderedDict((n, (z[f"{n}/activation"], z[f"{n}/{signal}"])) for n in meta["layers"])
        elif fmt == "npy":
            mpath = os.path.join(path, "meta.json")
            if not os.path.isfile(mpath):
                raise InputError(f"{name}: a folder without meta.json: not an nnviz trace")
            with open(mpath, encoding="utf-8") as fh:
                meta = json.load(fh)
            signal = meta.get("signal", "gradient")
            arrays = OrderedDict(
                (n, tuple(numpy.load(os.path.join(path, f"{n}.{k}.npy"), allow_pickle=False)
                          for k in ("activation", signal))) for n in meta["layers"])
        else:
            import h5py
            with h5py.File(path, "r") as f:
                if "meta" in f.attrs:
                    meta = json.loads(f.attrs["meta"])
                else:
                    meta = dict(schema=None, arch=str(f.attrs.get("arch", "")), target=str(f.attrs.get("target", "")),
                                rule=str(f.attrs.get("rule", "backprop")), layers=[str(v) for v in f.attrs["layers"]])
                    first = f[meta["layers"][0]]
                    meta["signal"] = "relevance" if "relevance" in first else "gradient"
                    meta["seed"] = "score" if meta["signal"] == "relevance" else "one"
                signal = meta.get("signal", "gradient")
                arrays = OrderedDict((n, (f[n]["activation"][()], f[n][signal][()])) for n in meta["layers"])
    except InputError:
        raise
    except (KeyError, ValueError, OSError, EOFError) as e:
        raise InputError(f"{name}: not a readable nnviz trace: {e}") from None
    return arrays, meta
