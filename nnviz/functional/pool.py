"""Pooling: max pooling with its switches (and their CuPy kernels), unpooling, average
pooling, and the windows' first pixels (the deconvnet without switches).

Arrays ``x: (N, C, H, W)``; geometry ``kh, kw, sy, sx, ph, pw`` as in :mod:`.conv`.
"""
import numpy

from .. import backend
from ..backend import get_array_module
from .conv import GEOMETRY_PARAMS, col2im, conv_outsize, im2col, pad

# ---------------------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------------------

def max_pool2d(x, kh, kw, sy, sx, ph, pw):
    """Max pooling with switches, as PyTorch's ``max_pool2d(return_indices=True)``.

    Returns ``y: (N, C, out_h, out_w)`` and ``switches: (N, C, out_h, out_w)`` int64, the index
    of each window's maximum in the flattened ``H*W`` input plane (the first maximum on ties).
    """
    if backend.is_gpu_array(x):
        return _max_pool2d_gpu(x, kh, kw, sy, sx, ph, pw)
    n, c, h, w = x.shape
    out_h, out_w = conv_outsize(h, kh, sy, ph), conv_outsize(w, kw, sx, pw)
    if (kh, kw, sy, sx, ph, pw) == (2, 2, 2, 2, 0, 0):
        pooled = _max_pool2x2(x, out_h, out_w)
        if pooled is not None:
            return pooled
    x = pad(x, ph, pw, -numpy.inf)
    # A running maximum over the kh*kw offsets of the window (strided views, no column
    # buffer). Strictly greater wins, so the first maximum is kept on ties; a NaN always wins,
    # as in PyTorch.
    y = k = None
    for i in range(kh):
        for j in range(kw):
            v = x[:, :, i:i + sy * (out_h - 1) + 1:sy, j:j + sx * (out_w - 1) + 1:sx]
            if y is None:
                y, k = v.copy(), numpy.zeros(v.shape, numpy.int64)
                continue
            better = (v > y) | numpy.isnan(v)
            numpy.copyto(y, v, where=better)
            numpy.copyto(k, i * kw + j, where=better)
    rows = numpy.arange(out_h).reshape(-1, 1) * sy - ph + k // kw
    cols = numpy.arange(out_w) * sx - pw + k % kw
    return y, rows * w + cols


def _max_pool2x2(x, out_h, out_w):
    """2×2 windows with stride 2 (VGG's pooling) in two halving steps: the maximum of each
    pair of columns, then of each pair of rows. Taking the columns first keeps PyTorch's
    choice on ties (the first maximum in row-major order). Returns None when the input has
    a NaN, which the general path places as PyTorch does."""
    w = x.shape[3]
    x = x[:, :, :2 * out_h, :2 * out_w]
    left, right = x[..., 0::2], x[..., 1::2]                    # (N, C, 2*out_h, out_w)
    right_wins = right > left
    m = numpy.maximum(left, right)
    top, bottom = m[:, :, 0::2], m[:, :, 1::2]                  # (N, C, out_h, out_w)
    bottom_wins = bottom > top
    y = numpy.maximum(top, bottom)
    if numpy.isnan(y).any():
        return None
    switches = bottom_wins * numpy.int64(w)
    switches += numpy.where(bottom_wins, right_wins[:, :, 1::2], right_wins[:, :, 0::2])
    switches += numpy.arange(out_h).reshape(-1, 1) * (2 * w) + numpy.arange(out_w) * 2
    return y, switches


def _max_pool2d_gpu(x, kh, kw, sy, sx, ph, pw):
    cupy = backend.cupy
    n, c, h, w = x.shape
    out_h = conv_outsize(h, kh, sy, ph)
    out_w = conv_outsize(w, kw, sx, pw)
    y = cupy.empty((n, c, out_h, out_w), dtype=x.dtype)
    switches = cupy.empty((n, c, out_h, out_w), dtype=cupy.int64)
    kernel = backend.elementwise_kernel(
        f"raw T x, {GEOMETRY_PARAMS}",
        "T y, int64 switches",
        """
        // Sizes: i, the plane offset and the switch (an index into one H*W plane) in 64 bits
        // (x past 2^31 elements, planes past 2^31 pixels); positions (< 2^31 per side) in 32.
        // One i per window; each writes only its own y and switch.
        int ox = i % out_w;
        int oy = i / out_w % out_h;
        ptrdiff_t plane = i / ((ptrdiff_t)out_w * out_h);
        const T* p = &x[plane * h * w];
        int top = oy * sy - ph, left = ox * sx - pw;
        T best = 0;
        ptrdiff_t arg = -1;
        for (int ii = 0; ii < kh; ++ii) {
            int yy = top + ii;
            if (yy < 0 || yy >= h) continue;
            for (int j = 0; j < kw; ++j) {
                int xx = left + j;
                if (xx < 0 || xx >= w) continue;
                T v = p[(ptrdiff_t)yy * w + xx];
                if (arg < 0 || v > best || isnan(v)) {
                    best = v;
                    arg = (ptrdiff_t)yy * w + xx;
                    if (isnan(v)) { ii = kh; break; }
                }
            }
        }
        y = best;
        switches = arg;
        """,
        "nnviz_max_pool2d")
    kernel(cupy.ascontiguousarray(x), h, w, out_h, out_w, kh, kw, sy, sx, ph, pw, y, switches)
    return y, switches


def unpool(x, switches, out_h, out_w, accumulate):
    """Place each value of ``x: (N, C, h, w)`` at its switch in a zero ``(N, C, out_h, out_w)``.

    ``accumulate=True`` sums values that share a switch (the gradient of max pooling with
    overlapping windows); ``accumulate=False`` lets the last write win, exactly as PyTorch's
    ``max_unpool2d``. With non-overlapping windows the two agree.
    """
    xp = get_array_module(x)
    n, c = x.shape[:2]
    out = xp.zeros((n * c, out_h * out_w), dtype=x.dtype)
    if xp is numpy or accumulate:
        # flat indices into out: the switch plus the start of its (image, channel) plane
        flat = (switches.reshape(n * c, -1)
                + xp.arange(0, n * c * out_h * out_w, out_h * out_w).reshape(-1, 1)).reshape(-1)
    if xp is numpy:
        if accumulate:
            numpy.add.at(out.reshape(-1), flat, x.reshape(-1))
        else:
            out.reshape(-1)[flat] = x.reshape(-1)
    elif accumulate:       # values that share a switch are summed: atomics, in CuPy's scatter
        backend.cupyx.scatter_add(out.reshape(-1), flat, x.reshape(-1))
    else:
        # Sizes: i and the flat index into out in 64 bits (out past 2^31 elements). One i per
        # value of x; with distinct switches (non-overlapping windows) no two i write the same
        # element of out, else the last write wins in an unspecified order, as in PyTorch.
        kernel = backend.elementwise_kernel(
            "T x, int64 sw, int64 plane_in, int64 plane_out", "raw T out",
            "out[(i / plane_in) * plane_out + sw] = x;",
            "nnviz_unpool")
        kernel(xp.ascontiguousarray(x), xp.ascontiguousarray(switches),
               x.shape[2] * x.shape[3], out_h * out_w, out)
    return out.reshape(n, c, out_h, out_w)


def max_pool2d_backward(gy, switches, h, w, overlapping):
    """Input gradient of max pooling: each window's gradient goes to its switch (Zeiler's
    unpooling). ``overlapping`` windows sum what lands on a shared pixel."""
    return unpool(gy, switches, h, w, accumulate=overlapping)


def unpool_backward(gy, switches):
    """Input gradient of :func:`unpool` (with distinct switches): read ``gy`` at the switches."""
    xp = get_array_module(gy)
    n, c = switches.shape[:2]
    flat = gy.reshape(n, c, -1)
    return xp.take_along_axis(flat, switches.reshape(n, c, -1), axis=2).reshape(switches.shape)


def avg_pool2d(x, kh, kw, sy, sx, ph, pw):
    """Average pooling as PyTorch's ``avg_pool2d`` (zero padding counted in the mean)."""
    col = im2col(x, kh, kw, sy, sx, ph, pw)
    return col.sum(axis=(2, 3)) / (kh * kw)


def avg_pool2d_backward(gy, h, w, kh, kw, sy, sx, ph, pw):
    xp = get_array_module(gy)
    n, c, out_h, out_w = gy.shape
    col = xp.broadcast_to((gy / (kh * kw))[:, :, None, None], (n, c, kh, kw, out_h, out_w))
    return col2im(xp.ascontiguousarray(col), h, w, sy, sx, ph, pw)


def window_origins(like, h, w, stride, padding):
    """For pooling outputs shaped as ``like`` (N, C, out_h, out_w) over an ``h × w`` plane, the
    flat index of each window's first (top-left) pixel, clamped into the plane: switches that
    ignore the values (the deconvnet "without switches")."""
    xp = get_array_module(like)
    oh, ow = like.shape[2:]
    rows = xp.clip(xp.arange(oh) * stride[0] - padding[0], 0, h - 1)
    cols = xp.clip(xp.arange(ow) * stride[1] - padding[1], 0, w - 1)
    idx = (rows[:, None] * w + cols[None, :]).astype(xp.int64)
    return xp.ascontiguousarray(xp.broadcast_to(idx, like.shape))


