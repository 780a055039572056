"""Element-wise maps and image operations: ReLU, bilinear resizing, Gaussian blur, and the
layers of the feed-forward style networks (reflection padding, instance normalization, nearest
upsampling, channel concatenation).

Arrays ``x: (N, C, H, W)``; ``xp`` is always taken from the array.
"""
import numpy

from .. import backend
from ..backend import get_array_module

# ---------------------------------------------------------------------------------------
# ReLU and resizing
# ---------------------------------------------------------------------------------------

def relu(x):
    """``max(x, 0)`` and the mask ``x > 0`` its backward rules need."""
    return get_array_module(x).maximum(x, 0), x > 0


def resize_bilinear(m, h, w):
    """Bilinear resize of ``m: (..., h0, w0)`` to ``(..., h, w)`` with half-pixel centres
    (PyTorch's ``interpolate(mode="bilinear", align_corners=False)`` without antialiasing,
    OpenCV's ``resize``), as two small matrix products; NumPy and CuPy."""
    xp = get_array_module(m)

    def matrix(n_out, n_in):
        src = numpy.maximum((numpy.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0)
        i0 = numpy.minimum(numpy.floor(src).astype(int), n_in - 1)
        i1 = numpy.minimum(i0 + 1, n_in - 1)
        f = src - i0
        a = numpy.zeros((n_out, n_in))
        numpy.add.at(a, (numpy.arange(n_out), i0), 1 - f)
        numpy.add.at(a, (numpy.arange(n_out), i1), f)
        return xp.asarray(a, dtype=m.dtype)

    rows, cols = matrix(h, m.shape[-2]), matrix(w, m.shape[-1])
    return xp.matmul(xp.matmul(rows, m), cols.T)


# ---------------------------------------------------------------------------------------
# feed-forward style networks (Johnson et al. 2016, Ulyanov et al. 2016): reflection
# padding, instance normalization, nearest upsampling, channel concatenation
# ---------------------------------------------------------------------------------------

def reflection_pad2d(x, left, right, top, bottom):
    """``x: (N, C, H, W)`` padded by reflection (the edge pixel not repeated), as PyTorch's
    ``ReflectionPad2d((left, right, top, bottom))``: (N, C, top+H+bottom, left+W+right)."""
    xp = get_array_module(x)
    return xp.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode="reflect")


def _fold_reflection(g, lo, hi, axis):
    """Along ``axis`` of ``g`` (padded by ``lo``/``hi`` reflected entries): the gradient of
    the unpadded array, each reflected entry added to the entry it copies."""
    n = g.shape[axis] - lo - hi

    def part(a, b, step=1):
        s = [slice(None)] * g.ndim
        s[axis] = slice(a, b, step)
        return tuple(s)
    out = g[part(lo, lo + n)].copy()
    if lo:     # padded entry i (< lo) copies entry lo - i: entries lo..1 of the input
        out[part(1, lo + 1)] += g[part(lo - 1, None, -1)]
    if hi:     # padded entry lo + n + j copies entry n - 2 - j: entries n-2 .. n-1-hi
        out[part(n - 1 - hi, n - 1)] += g[part(lo + n + hi - 1, lo + n - 1, -1)]
    return out


def reflection_pad2d_backward(gy, left, right, top, bottom):
    """Input gradient of :func:`reflection_pad2d`: ``gy: (N, C, top+H+bottom, left+W+right)``
    -> (N, C, H, W), the reflected rows and columns added back where they came from."""
    return _fold_reflection(_fold_reflection(gy, top, bottom, 2), left, right, 3)


KEPT_SCRATCH_BYTES = 64 << 20    # the largest scratch array that instance_norm keeps


def instance_norm(x, eps):
    """Each (sample, channel) plane of ``x: (N, C, H, W)`` normalized by its own mean and
    biased variance: ``x̂ = (x − μ) / √(σ² + ε)``; returns ``x̂`` and ``1/√(σ² + ε)``
    (N, C, 1, 1)."""
    xp = get_array_module(x)
    mu = x.mean(axis=(2, 3), keepdims=True)
    d = x - mu
    # the squares in a buffer kept between calls (warm pages), unless it would keep much
    sq = xp.multiply(d, d, out=backend.workspace(xp, x.dtype, "instance_norm", x.shape)
                     if x.nbytes <= KEPT_SCRATCH_BYTES else None)
    inv = 1 / xp.sqrt(sq.mean(axis=(2, 3), keepdims=True) + x.dtype.type(eps))
    d *= inv
    return d, inv


def instance_norm_backward(gxhat, xhat, inv):
    """Input gradient of :func:`instance_norm` from the gradient ``gxhat`` at ``x̂``:
    ``(g − mean(g) − x̂ · mean(g x̂)) / √(σ² + ε)``, means over each plane."""
    g_mean = gxhat.mean(axis=(2, 3), keepdims=True)
    gx_mean = (gxhat * xhat).mean(axis=(2, 3), keepdims=True)
    return (gxhat - g_mean - xhat * gx_mean) * inv


def upsample_nearest(x, sy, sx):
    """``x: (N, C, H, W)`` -> (N, C, H·sy, W·sx), each pixel repeated ``sy × sx`` times
    (PyTorch's ``interpolate(mode="nearest")`` by an integer factor)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    # the columns repeated (a contiguous copy), then each row written sy times: two passes
    # with long inner loops, 2-3x faster than one copy of a 6-d broadcast
    y = xp.empty((n, c, h, sy, w * sx), x.dtype)
    y[...] = xp.repeat(x, sx, axis=3)[:, :, :, None, :]
    return y.reshape(n, c, h * sy, w * sx)


def _sum_slices(a, axis):
    """``a.sum(axis)`` as a chain of whole-array adds of its slices along ``axis`` (NumPy's
    reduction over a short strided axis runs an inner loop of that length: 10-15x slower)."""
    parts = [a[(slice(None),) * axis + (i,)] for i in range(a.shape[axis])]
    if len(parts) == 1:
        return parts[0]
    out = get_array_module(a).add(parts[0], parts[1])
    for p in parts[2:]:
        out += p
    return out


def upsample_nearest_backward(gy, sy, sx):
    """Input gradient of :func:`upsample_nearest`: the sum over each ``sy × sx`` block."""
    n, c, hs, ws = gy.shape
    g6 = gy.reshape(n, c, hs // sy, sy, ws // sx, sx)
    return get_array_module(gy).ascontiguousarray(_sum_slices(_sum_slices(g6, 3), 4))


def concat_channels(xs):
    """Arrays (N, Cᵢ, H, W) joined along the channels: (N, ΣCᵢ, H, W)."""
    return get_array_module(*xs).concatenate(xs, axis=1)


def split_channels(gy, sizes):
    """Input gradients of :func:`concat_channels`: ``gy`` cut into ``sizes`` channels."""
    out, c = [], 0
    for s in sizes:
        out.append(gy[:, c:c + s])
        c += s
    return out




# ---------------------------------------------------------------------------------------
# Gaussian blur: the one blur of nnviz
# ---------------------------------------------------------------------------------------

BLUR_MODES = {"reflect": "symmetric", "nearest": "edge", "constant": "constant"}


def gaussian_taps(sigma, radius=None, window=None):
    """The 1-D taps of a Gaussian of ``sigma`` (``exp(-t²/2σ²)``, ``t = -radius..radius``,
    normalized to sum 1); ``radius`` defaults to scipy's ``int(4σ + 0.5)``. ``window=k``
    (odd): those taps folded into ``k`` by reflecting the ones beyond its ends back in, as
    ``scipy.ndimage.gaussian_filter1d`` of an impulse at the middle of a ``k``-long array
    (mode "reflect"): the 1-D factor of RISE's blur kernel (Petsiuk et al. 2018's
    ``evaluation.py``, ``klen=11, nsig=5``)."""
    r = int(4.0 * sigma + 0.5) if radius is None else int(radius)
    t = numpy.arange(-r, r + 1, dtype=numpy.float64)
    k = numpy.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    if window is None:
        return k
    window = int(window)
    out = numpy.zeros(window)
    c = window // 2
    for tap, offset in zip(k, range(-r, r + 1)):
        j = c + offset
        while not 0 <= j < window:       # symmetric reflection about the half-pixel edges
            j = -j - 1 if j < 0 else 2 * window - j - 1
        out[j] += tap
    return out


def gaussian_blur(x, sigma, radius=None, mode="reflect", window=None):
    """``x: (N, C, H, W)`` blurred over H and W, separably, by :func:`gaussian_taps` (a
    Gaussian of ``sigma`` pixels out to ``radius``, default ``int(4σ + 0.5)``; or folded into
    ``window`` taps), on the array's device, in its dtype. ``mode`` says what lies beyond the
    edges: ``"reflect"`` (mirrored half a pixel out, scipy's default: ``gaussian_filter(x, (0,
    0, σ, σ))`` exactly), ``"nearest"`` (the edge pixel repeated) or ``"constant"`` (zeros).
    ``sigma`` ≤ 0 returns a copy."""
    if mode not in BLUR_MODES:
        raise ValueError(f"blur mode {mode!r}: expected one of {', '.join(BLUR_MODES)}")
    xp = get_array_module(x)
    if not sigma > 0:
        return x.copy()
    k = gaussian_taps(sigma, radius, window)
    r = len(k) // 2
    for axis in (2, 3):
        xpad = _pad_axis(xp, x, axis, r, BLUR_MODES[mode])
        off = (xpad.shape[axis] - x.shape[axis]) // 2 - r
        out = xp.zeros_like(x)
        for t in range(2 * r + 1):
            sl = [slice(None)] * 4
            sl[axis] = slice(off + t, off + t + x.shape[axis])
            out += x.dtype.type(k[t]) * xpad[tuple(sl)]
        x = out
    return x


def _pad_axis(xp, x, axis, r, mode):
    """``x`` padded by ``r`` on both sides of ``axis`` with numpy's ``mode``; a reflection
    wider than the array is made in steps of at most its length."""
    if mode != "symmetric":
        p = [(0, 0)] * 4
        p[axis] = (r, r)
        return xp.pad(x, p, mode=mode)
    left = r
    while left > 0:
        step = min(left, x.shape[axis])
        p = [(0, 0)] * 4
        p[axis] = (step, step)
        x = xp.pad(x, p, mode=mode)
        left -= step
    return x
