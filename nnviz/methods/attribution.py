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
- Grad-CAM and guided Grad-CAM: Selvaraju et al. 2017, eq. (1)-(2) and sec. 3.1.

Arrays: inputs ``x: (N, C, H, W)`` are preprocessed batches (``net.preprocess``); every map is a
raw array on the net's device shaped as ``x`` (Grad-CAM: ``(N, 1, H, W)``). Every image of a
batch gets the gradient of its own score: the seeds of all images go back at once (the images
are independent). Gradients are written by hand in the layers (``Net.backward``); there is no
autograd here.

Targets (``nnviz.targets``): a class index of ``fc8`` (pre-softmax score), ``(layer, channel)``
(the channel's activation summed over space) or ``(layer, channel, (i, j))`` (one unit).
"""
from collections import OrderedDict

import numpy

from .. import backend, targets
from ..backend import get_array_module
from ..io import InputError
from ..layers import AvgPool2d, Conv2d, MaxPool2d, ReLU

MODES = ("unit", "channel")
TOP_LAYERS = ("flatten", "fc6", "relu6", "fc7", "relu7", "fc8")


def check_top(net, target):
    """A target in the fully connected layers of a net built without them (the default
    weights are a convolutional backbone) is an InputError that says how to get them."""
    if target.layer in TOP_LAYERS and target.layer not in net.layers:
        source = net.weights_info.get("source", "a convolutional backbone")
        raise InputError(
            f"target {target} needs the fully connected layers, which this net ({source}) does "
            f"not have: import full VGG weights with 'nnviz weights import FILE' and pass "
            f"--weights FILE (or use a convolutional target such as conv5_3:12)")


# ---------------------------------------------------------------------------------------
# forward to a target, and back
# ---------------------------------------------------------------------------------------

def _as_batch(net, x):
    if not hasattr(x, "ndim") or x.ndim != 4:
        raise InputError(f"expected a preprocessed batch x: (N, C, H, W), got shape "
                         f"{tuple(getattr(x, 'shape', ()))}; use net.preprocess(images)")
    if x.dtype.kind != "f":
        raise InputError(f"expected a float batch, got {x.dtype}; use net.preprocess(images)")
    return backend.to_device(x, net.device)


def _forward(net, x, layer):
    """Run ``x`` up to ``layer``; a fully connected layer at a size other than 224 is an
    InputError (the user asked for the impossible), as is an unknown layer."""
    if layer not in net.layers:
        raise InputError(f"unknown layer {layer!r} for {net.arch}: expected one of "
                         f"{', '.join(net.layers)}")
    try:
        net.forward(x, until=layer)
    except ValueError as e:
        if "needs a" in str(e):
            raise InputError(str(e)) from None
        raise
    return net.activations[layer]


def _target(net, x, target):
    """Parse and check ``target``, forward ``x`` to its layer; returns (target, activation)."""
    t = targets.parse(target)
    check_top(net, t)
    t.check(net)
    act = _forward(net, x, t.layer)
    t.check(net, act.shape)
    return t, act


def gradient(net, x, target, rule="backprop"):
    """The gradient of the target's score with respect to ``x`` under the ReLU ``rule``
    (``"backprop"``, ``"deconvnet"``, ``"guided"`` or a dict ReLU name -> rule)."""
    x = _as_batch(net, x)
    t, act = _target(net, x, target)
    return net.backward(t.seed(act), start=t.layer, rule=rule)


def saliency(net, x, target):
    """Simonyan et al. 2013: the plain gradient of the target's score (``fc8`` class scores
    are pre-softmax) with respect to the input. ``x: (N, C, H, W)`` -> same shape; render it
    with ``nnviz.render.magnitude`` (max over colours of |g|)."""
    return gradient(net, x, target, "backprop")


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
        else:
            positions = numpy.tile(numpy.asarray(position, dtype=numpy.int64), (n, 1))
        mask[xp.asarray(rows), xp.asarray(channels), xp.asarray(positions[:, 0]),
             xp.asarray(positions[:, 1])] = 1
    return (mask * act if seed == "activation" else mask), positions


def fixed_switches(pool, in_shape, switches):
    """Switches that point to the top-left pixel of each pooling window (clamped into the
    plane), shaped as the recorded ``switches`` (N, C, out_h, out_w)."""
    xp = get_array_module(switches)
    h, w = in_shape[2:]
    oh, ow = switches.shape[2:]
    rows = xp.clip(xp.arange(oh) * pool.stride[0] - pool.padding[0], 0, h - 1)
    cols = xp.clip(xp.arange(ow) * pool.stride[1] - pool.padding[1], 0, w - 1)
    idx = (rows[:, None] * w + cols[None, :]).astype(xp.int64)
    return xp.ascontiguousarray(xp.broadcast_to(idx, switches.shape))


def _project(net, x, layer, channels, position, mode, rule, seed, switches=True):
    x = _as_batch(net, x)
    t = targets.Target(layer, int(numpy.max(channels)), position)
    check_top(net, t)
    t.check(net)
    act = _forward(net, x, layer)
    targets.Target(layer, int(numpy.min(channels)), position).check(net, act.shape)
    t.check(net, act.shape)
    dy, positions = _unit_seed(act, channels, position, mode, seed)
    if switches:
        return net.backward(dy, start=layer, rule=rule), positions
    # Zeiler's unpooling without the switches: every window's signal goes to its top-left
    # pixel. The pools' recorded switches are swapped for the fixed ones for this backward.
    names = net.layer_names[:net.layer_names.index(layer) + 1]
    pools = [(net.layers[n], net.activations[names[k - 1]].shape if k else x.shape)
             for k, n in enumerate(names) if isinstance(net.layers[n], MaxPool2d)]
    saved = [p.switches for p, _ in pools]
    try:
        for p, in_shape in pools:
            p.switches = fixed_switches(p, in_shape, p.switches)
        return net.backward(dy, start=layer, rule=rule), positions
    finally:
        for (p, _), s in zip(pools, saved):
            p.switches = s


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


def receptive_field(net, layer, position, size=None):
    """The input rectangle ``(top, left, bottom, right)`` (inclusive) that unit ``position``
    (i, j) of ``layer`` sees, from the geometry of the convolutions and poolings before it;
    clipped to the image when ``size=(H, W)`` is given."""
    lo = list(position)
    hi = list(position)
    names = net.layer_names[:net.layer_names.index(layer) + 1]
    for name in reversed(names):
        layer_ = net.layers[name]
        if isinstance(layer_, Conv2d):
            k, s, p, d = (layer_.kh, layer_.kw), layer_.stride, layer_.padding, layer_.dilation
        elif isinstance(layer_, (MaxPool2d, AvgPool2d)):
            k, s, p, d = (layer_.kh, layer_.kw), layer_.stride, layer_.padding, (1, 1)
        elif isinstance(layer_, ReLU):
            continue
        else:
            raise InputError(f"layer {name!r} ({type(layer_).__name__}) has no spatial geometry")
        for a in range(2):
            lo[a] = lo[a] * s[a] - p[a]
            hi[a] = hi[a] * s[a] - p[a] + d[a] * (k[a] - 1)
    if size is not None:
        lo = [max(0, v) for v in lo]
        hi = [min(m - 1, v) for v, m in zip(hi, size)]
    return lo[0], lo[1], hi[0], hi[1]


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
    x = _as_batch(net, x)
    act = _forward(net, x, layer)
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
# SmoothGrad, gradient x input, integrated gradients
# ---------------------------------------------------------------------------------------

def gradient_x_input(net, x, target):
    """Gradient × input (Shrikumar et al.): ``x * dS/dx``, elementwise, shaped as ``x``.
    ``x`` is the preprocessed input (for Caffe weights: BGR minus the ImageNet mean)."""
    x = _as_batch(net, x)
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


def smoothgrad(method, net, x, target, n=50, sigma=0.15, seed=0, **kw):
    """Smilkov et al. 2017, eq. (3): the mean of ``method(net, x + noise_k, target, **kw)`` over
    ``n`` samples, ``noise_k ~ N(0, s^2)`` with ``s = sigma * (max(x_i) - min(x_i))`` per
    image ``x_i`` (the paper's noise level sigma / (x_max - x_min)).

    ``method``: a function ``(net, x, target, **kw)`` or a name (``"saliency"``,
    ``"gradxinput"``, ``"ig"``, ``"guided"`` and ``"deconvnet"`` (the gradient of the target's
    score under that ReLU rule, seed 1)). The noise is drawn on the host, reproducibly:
    ``rng = numpy.random.default_rng(seed)``, then for each sample in turn
    ``rng.standard_normal(x.shape)`` (float64), scaled and cast to ``x``'s dtype.
    """
    f = _method(method)
    x = _as_batch(net, x)
    n = int(n)
    if n < 1:
        raise InputError(f"smoothgrad needs n >= 1 samples, got {n}")
    if not sigma >= 0:
        raise InputError(f"sigma must be >= 0, got {sigma}")
    xp = get_array_module(x)
    flat = x.reshape(x.shape[0], -1)
    scale = (sigma * (flat.max(axis=1) - flat.min(axis=1))).reshape(-1, 1, 1, 1)
    rng = numpy.random.default_rng(seed)
    total = None
    for _ in range(n):
        noise = backend.to_device(rng.standard_normal(x.shape), net.device).astype(x.dtype)
        g = f(net, x + scale * noise, target, **kw)
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
    x = _as_batch(net, x)
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


def score(net, x, target):
    """The target's score per image, (N,) on the net's device."""
    t, act = _target(net, _as_batch(net, x), target)
    return t.score(act)


# ---------------------------------------------------------------------------------------
# Grad-CAM
# ---------------------------------------------------------------------------------------

def resize_bilinear(m, h, w):
    """Bilinear resize of maps ``m: (..., h0, w0)`` to ``(..., h, w)`` with half-pixel
    centres (PyTorch's ``interpolate(mode="bilinear", align_corners=False)``, OpenCV's
    ``resize``), as two small matrix products; runs on NumPy and CuPy."""
    xp = get_array_module(m)

    def matrix(n_out, n_in):
        src = (numpy.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        src = numpy.maximum(src, 0)
        i0 = numpy.minimum(numpy.floor(src).astype(int), n_in - 1)
        i1 = numpy.minimum(i0 + 1, n_in - 1)
        f = src - i0
        a = numpy.zeros((n_out, n_in))
        numpy.add.at(a, (numpy.arange(n_out), i0), 1 - f)
        numpy.add.at(a, (numpy.arange(n_out), i1), f)
        return xp.asarray(a, dtype=m.dtype)

    rows, cols = matrix(h, m.shape[-2]), matrix(w, m.shape[-1])
    return xp.matmul(xp.matmul(rows, m), cols.T)


def gradcam(net, x, target, layer="relu5_3", upsample=True):
    """Selvaraju et al. 2017, eq. (1)-(2): weights ``alpha_c`` = spatial mean of the gradient
    of the target's score at the output of ``layer``; the map is
    ``ReLU(sum_c alpha_c A_c)``, bilinearly upsampled to the input (half-pixel centres).

    ``x: (N, C, H, W)`` -> ``(N, 1, H, W)`` (``(N, 1, h, w)`` at the layer's resolution with
    ``upsample=False``).
    """
    x = _as_batch(net, x)
    t, act = _target(net, x, target)
    if layer not in net.layers:
        raise InputError(f"unknown Grad-CAM layer {layer!r} for {net.arch}: expected one of "
                         f"{', '.join(net.layers)}")
    names = net.layer_names
    if names.index(layer) >= names.index(t.layer):
        raise InputError(f"Grad-CAM layer {layer!r} must come before the target's layer "
                         f"{t.layer!r}")
    a = net.activations[layer]
    if a.ndim != 4:
        raise InputError(f"Grad-CAM layer {layer!r} has no spatial map; give a convolutional "
                         f"layer (e.g. relu5_3)")
    g = net.backward(t.seed(act), t.layer, stop=layer)          # dS/dA: (N, K, h, w)
    alpha = g.mean(axis=(2, 3), keepdims=True)                        # (N, K, 1, 1)
    cam = (alpha * a).sum(axis=1, keepdims=True)
    cam = cam * (cam > 0)
    if upsample:
        cam = resize_bilinear(cam, x.shape[2], x.shape[3])
    return cam


def guided_gradcam(net, x, target, layer="relu5_3"):
    """Selvaraju et al. 2017, sec. 3.1: guided backprop of the target's score (seed 1, every
    ReLU guided) times the upsampled Grad-CAM map. ``x: (N, C, H, W)`` -> shaped as ``x``."""
    cam = gradcam(net, x, target, layer)
    return gradient(net, x, target, "guided") * cam


# ---------------------------------------------------------------------------------------
# trace: every layer's activation and gradient, to HDF5
# ---------------------------------------------------------------------------------------

def trace(net, x, target, rule="backprop", path=None, force=True):
    """Forward ``x`` to the target's layer and go back from its seed (the gradient of the
    score) under ``rule``, recording for every layer its activation and the gradient arriving
    at its output, and the gradient at the input (``"input"``).

    Returns an ordered dict name -> (activation, gradient) (device arrays). With ``path``, also
    writes one HDF5 file, atomically: a group per layer (``input`` first) with datasets
    ``activation`` and ``gradient``; file attributes ``arch``, ``target``, ``rule``.
    """
    x = _as_batch(net, x)
    t, act = _target(net, x, target)
    record = OrderedDict()
    dx = net.backward(t.seed(act), t.layer, rule=rule, record=record)
    out = OrderedDict([("input", (x, dx))])
    for name in net.activations:
        out[name] = (net.activations[name], record[name])
    if path is not None:
        import h5py
        from ..io import atomic_path
        with atomic_path(path, force=force) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["arch"] = net.arch
                f.attrs["target"] = str(t)
                f.attrs["rule"] = rule if isinstance(rule, str) else repr(sorted(rule.items()))
                f.attrs["layers"] = list(out)
                for name, (a, g) in out.items():
                    grp = f.create_group(name)
                    grp.create_dataset("activation", data=backend.to_numpy(a))
                    grp.create_dataset("gradient", data=backend.to_numpy(g))
    return out
