"""The arithmetic of the layers, as functions of arrays: convolution by im2col and one GEMM,
its transpose (which *is* the convolution's input gradient), pooling with switches, unpooling,
and the three ReLU backward rules.

Conventions (as PyTorch): images ``x: (N, C, H, W)``; conv filters ``w: (O, C, kh, kw)``;
a column buffer ``col: (N, C, kh, kw, out_h, out_w)``, which reshaped is the GEMM operand
``(N, C*kh*kw, out_h*out_w)``. Geometry: kernel ``kh, kw``, stride ``sy, sx``, padding
``ph, pw``, dilation ``dy, dx``.

Each routine that NumPy cannot express without loops or copies has a CuPy kernel beside its
NumPy twin (``im2col``, ``col2im``, ``max_pool2d``, ``max_pool2d_backward``, ``unpool``);
``xp`` is always taken from the array.
"""
import os

import numpy
from numpy.lib.stride_tricks import as_strided

from . import backend
from .backend import get_array_module


def pair(v, name="value"):
    """``3 -> (3, 3)``; ``(3, 2) -> (3, 2)``."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def conv_outsize(size, k, s, p, d=1):
    """Output length of a convolution or pooling along one axis (floor mode, as PyTorch)."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def deconv_outsize(size, k, s, p, d=1, output_padding=0):
    """Output length of a transposed convolution along one axis (as PyTorch)."""
    return (size - 1) * s - 2 * p + d * (k - 1) + output_padding + 1


# ---------------------------------------------------------------------------------------
# im2col / col2im
# ---------------------------------------------------------------------------------------

def im2col(x, kh, kw, sy, sx, ph, pw, dy=1, dx=1, pval=0):
    """Gather every kernel window of ``x: (N, C, H, W)`` into ``col: (N, C, kh, kw, out_h, out_w)``.

    ``col[n, c, i, j, oy, ox] = x[n, c, oy*sy - ph + i*dy, ox*sx - pw + j*dx]`` (``pval``
    outside the image).
    """
    if backend.is_gpu_array(x):
        return _im2col_gpu(x, kh, kw, sy, sx, ph, pw, dy, dx, pval)
    return _im2col_cpu(x, kh, kw, sy, sx, ph, pw, dy, dx, pval)


def _im2col_cpu(x, kh, kw, sy, sx, ph, pw, dy, dx, pval):
    n, c, h, w = x.shape
    out_h = conv_outsize(h, kh, sy, ph, dy)
    out_w = conv_outsize(w, kw, sx, pw, dx)
    if ph or pw:
        x = numpy.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pval)
    return numpy.ascontiguousarray(_windows(x, kh, kw, sy, sx, dy, dx, out_h, out_w))


def _windows(xpad, kh, kw, sy, sx, dy, dx, out_h, out_w):
    """A strided view ``(N, C, kh, kw, out_h, out_w)`` of every window of a padded image."""
    s_n, s_c, s_h, s_w = xpad.strides
    n, c = xpad.shape[:2]
    return as_strided(xpad, (n, c, kh, kw, out_h, out_w),
                      (s_n, s_c, s_h * dy, s_w * dx, s_h * sy, s_w * sx), writeable=False)


def _im2col_gpu(x, kh, kw, sy, sx, ph, pw, dy, dx, pval):
    cupy = backend.cupy
    n, c, h, w = x.shape
    out_h = conv_outsize(h, kh, sy, ph, dy)
    out_w = conv_outsize(w, kw, sx, pw, dx)
    col = cupy.empty((n, c, kh, kw, out_h, out_w), dtype=x.dtype)
    kernel = backend.elementwise_kernel(
        "raw T x, int32 h, int32 w, int32 out_h, int32 out_w, int32 kh, int32 kw, "
        "int32 sy, int32 sx, int32 ph, int32 pw, int32 dy, int32 dx, T pval",
        "T col",
        """
        long long ox = i % out_w;
        long long oy = i / out_w % out_h;
        int j = i / ((long long)out_w * out_h) % kw;
        int ii = i / ((long long)out_w * out_h * kw) % kh;
        long long plane = i / ((long long)out_w * out_h * kw * kh);   // n * C + c
        long long y = oy * sy - ph + ii * dy;
        long long xx = ox * sx - pw + j * dx;
        col = (y >= 0 && y < h && xx >= 0 && xx < w) ? x[(plane * h + y) * w + xx] : pval;
        """,
        "nnviz_im2col")
    kernel(cupy.ascontiguousarray(x), h, w, out_h, out_w, kh, kw, sy, sx, ph, pw, dy, dx,
           x.dtype.type(pval), col)
    return col


def col2im(col, h, w, sy, sx, ph, pw, dy=1, dx=1):
    """Adjoint of :func:`im2col`: sum every window of ``col: (N, C, kh, kw, out_h, out_w)``
    back into the image ``(N, C, h, w)`` it came from."""
    if backend.is_gpu_array(col):
        return _col2im_gpu(col, h, w, sy, sx, ph, pw, dy, dx)
    return _col2im_cpu(col, h, w, sy, sx, ph, pw, dy, dx)


def _col2im_cpu(col, h, w, sy, sx, ph, pw, dy, dx):
    n, c, kh, kw, out_h, out_w = col.shape
    img = numpy.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=col.dtype)
    for i in range(kh):
        y0 = i * dy
        for j in range(kw):
            x0 = j * dx
            img[:, :, y0:y0 + sy * (out_h - 1) + 1:sy, x0:x0 + sx * (out_w - 1) + 1:sx] += col[:, :, i, j]
    return img[:, :, ph:ph + h, pw:pw + w]


def _col2im_gpu(col, h, w, sy, sx, ph, pw, dy, dx):
    cupy = backend.cupy
    n, c, kh, kw, out_h, out_w = col.shape
    img = cupy.empty((n, c, h, w), dtype=col.dtype)
    # Gather (no atomics): each pixel sums the window entries that read it.
    kernel = backend.elementwise_kernel(
        "raw T col, int32 h, int32 w, int32 out_h, int32 out_w, int32 kh, int32 kw, "
        "int32 sy, int32 sx, int32 ph, int32 pw, int32 dy, int32 dx",
        "T img",
        """
        int xx = i % w;
        int y = i / w % h;
        long long plane = i / ((long long)w * h);
        T acc = 0;
        for (int ii = 0; ii < kh; ++ii) {
            int ty = y + ph - ii * dy;
            if (ty < 0 || ty % sy != 0) continue;
            int oy = ty / sy;
            if (oy >= out_h) continue;
            for (int j = 0; j < kw; ++j) {
                int tx = xx + pw - j * dx;
                if (tx < 0 || tx % sx != 0) continue;
                int ox = tx / sx;
                if (ox >= out_w) continue;
                acc += col[(((plane * kh + ii) * kw + j) * out_h + oy) * out_w + ox];
            }
        }
        img = acc;
        """,
        "nnviz_col2im")
    kernel(cupy.ascontiguousarray(col), h, w, out_h, out_w, kh, kw, sy, sx, ph, pw, dy, dx, img)
    return img


# ---------------------------------------------------------------------------------------
# convolution and its transpose
# ---------------------------------------------------------------------------------------

# The column buffer is built in blocks (of images, or of output rows of one image) of at most
# this many bytes, so that memory stays bounded on large images and the GEMM operands stay
# warm in cache. On the GPU, blocks of whole images.
COL_BLOCK_BYTES = int(os.environ.get("NNVIZ_COL_BLOCK_MB", "24")) << 20
GPU_COL_BLOCK_BYTES = int(os.environ.get("NNVIZ_GPU_COL_BLOCK_MB", "2048")) << 20


def col_blocks(x, kh, kw, sy, sx, ph, pw, dy=1, dx=1):
    """im2col in blocks: yields ``(n0, n1, r0, r1, col)`` where ``col: (n1-n0, C*kh*kw,
    (r1-r0)*out_w)`` holds the windows of output rows ``r0:r1`` of images ``n0:n1``."""
    n, c, h, w = x.shape
    out_h = conv_outsize(h, kh, sy, ph, dy)
    out_w = conv_outsize(w, kw, sx, pw, dx)
    k = c * kh * kw
    row_bytes = k * out_w * x.dtype.itemsize
    gpu = backend.is_gpu_array(x)
    budget = GPU_COL_BLOCK_BYTES if gpu else COL_BLOCK_BYTES
    if gpu or row_bytes * out_h <= budget:
        nb = max(1, budget // (row_bytes * out_h))
        for n0 in range(0, n, nb):
            n1 = min(n, n0 + nb)
            col = im2col(x[n0:n1], kh, kw, sy, sx, ph, pw, dy, dx)
            yield n0, n1, 0, out_h, col.reshape(n1 - n0, k, out_h * out_w)
        return
    rb = max(1, budget // row_bytes)
    xpad = numpy.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    for n0 in range(n):
        for r0 in range(0, out_h, rb):
            r1 = min(out_h, r0 + rb)
            rows = xpad[n0:n0 + 1, :, r0 * sy:(r1 - 1) * sy + (kh - 1) * dy + 1]
            col = numpy.ascontiguousarray(_windows(rows, kh, kw, sy, sx, dy, dx, r1 - r0, out_w))
            yield n0, n0 + 1, r0, r1, col.reshape(1, k, (r1 - r0) * out_w)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1):
    """Cross-correlation as PyTorch's ``conv2d``: ``x: (N, C, H, W)``, ``w: (O, C, kh, kw)``,
    ``b: (O,)`` -> ``y: (N, O, out_h, out_w)``. A GEMM ``(O, C*kh*kw) @ (C*kh*kw, P)`` per
    block of the column buffer (see :func:`col_blocks`)."""
    xp = get_array_module(x)
    sy, sx = pair(stride)
    ph, pw = pair(padding)
    dy, dx = pair(dilation)
    o, _, kh, kw = w.shape
    n, _, h, wd = x.shape
    out_h = conv_outsize(h, kh, sy, ph, dy)
    out_w = conv_outsize(wd, kw, sx, pw, dx)
    y = xp.empty((n, o, out_h, out_w), dtype=x.dtype)
    w2 = xp.ascontiguousarray(w.reshape(o, -1))
    for n0, n1, r0, r1, col in col_blocks(x, kh, kw, sy, sx, ph, pw, dy, dx):
        if r0 == 0 and r1 == out_h:        # whole images: the GEMM writes y in place
            xp.matmul(w2, col, out=y[n0:n1].reshape(n1 - n0, o, out_h * out_w))
        else:
            y[n0:n1, :, r0:r1] = xp.matmul(w2, col).reshape(n1 - n0, o, r1 - r0, out_w)
    if b is not None:
        y += b.reshape(1, o, 1, 1)
    return y


def conv_transpose2d(x, w, b=None, stride=1, padding=0, dilation=1, output_size=None,
                     output_padding=0):
    """Transposed convolution as PyTorch's ``conv_transpose2d``, and the input gradient of
    :func:`conv2d`: ``x: (N, C, H, W)``, ``w: (C, O, kh, kw)`` -> ``(N, O, H', W')``.

    ``output_size`` (H', W') fixes the output; otherwise it follows from ``output_padding``.
    A conv2d with filters ``w`` maps (N, O, H', W') to (N, C, H, W); this is its adjoint:
    ``col = w.T @ x`` scattered back by :func:`col2im`. With stride 1 the same map is a plain
    correlation with the flipped, transposed filters, which :func:`conv2d` computes in blocks.
    """
    xp = get_array_module(x)
    sy, sx = pair(stride)
    ph, pw = pair(padding)
    dy, dx = pair(dilation)
    c, o, kh, kw = w.shape
    n, _, h, wd = x.shape
    if output_size is None:
        oph, opw = pair(output_padding)
        output_size = (deconv_outsize(h, kh, sy, ph, dy, oph), deconv_outsize(wd, kw, sx, pw, dx, opw))
    out_h, out_w = output_size
    qh, qw = dy * (kh - 1) - ph, dx * (kw - 1) - pw      # the padding of the equivalent conv
    if (sy, sx) == (1, 1) and qh >= 0 and qw >= 0 and (out_h, out_w) == (
            deconv_outsize(h, kh, 1, ph, dy), deconv_outsize(wd, kw, 1, pw, dx)):
        flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)           # (O, C, kh, kw)
        return conv2d(x, xp.ascontiguousarray(flipped), b, 1, (qh, qw), (dy, dx))
    # (O*kh*kw, C) @ (N, C, H*W) -> (N, O*kh*kw, H*W) = col of the output image
    col = xp.matmul(w.reshape(c, -1).T, x.reshape(n, c, h * wd))
    y = col2im(col.reshape(n, o, kh, kw, h, wd), out_h, out_w, sy, sx, ph, pw, dy, dx)
    if b is not None:
        y += b.reshape(1, o, 1, 1)
    return y


def conv2d_grad_weight(x, gy, kh, kw, stride=1, padding=0, dilation=1):
    """Gradient of :func:`conv2d` with respect to its filters: ``x: (N, C, H, W)``, the output
    gradient ``gy: (N, O, out_h, out_w)`` -> ``(O, C, kh, kw)``.

    With the roles of ``x`` and ``gy`` exchanged it is also the weight gradient of
    :func:`conv_transpose2d`."""
    xp = get_array_module(x)
    sy, sx = pair(stride)
    ph, pw = pair(padding)
    dy, dx = pair(dilation)
    n, c, h, w = x.shape
    o = gy.shape[1]
    out_h, out_w = conv_outsize(h, kh, sy, ph, dy), conv_outsize(w, kw, sx, pw, dx)
    if tuple(gy.shape) != (n, o, out_h, out_w):
        raise ValueError(f"gradient shape {tuple(gy.shape)} does not match the convolution's "
                         f"output {(n, o, out_h, out_w)}")
    gw = xp.zeros((o, c * kh * kw), dtype=x.dtype)
    for n0, n1, r0, r1, col in col_blocks(x, kh, kw, sy, sx, ph, pw, dy, dx):
        g = gy[n0:n1, :, r0:r1].reshape(n1 - n0, o, -1)               # (nb, O, P)
        gw += xp.tensordot(g, col, axes=([0, 2], [0, 2]))              # sum over images and P
    return gw.reshape(o, c, kh, kw)


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
    if ph or pw:
        x = numpy.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-numpy.inf)
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
            k[better] = i * kw + j
    rows = numpy.arange(out_h).reshape(-1, 1) * sy - ph + k // kw
    cols = numpy.arange(out_w) * sx - pw + k % kw
    return y, rows * w + cols


def _max_pool2d_gpu(x, kh, kw, sy, sx, ph, pw):
    cupy = backend.cupy
    n, c, h, w = x.shape
    out_h = conv_outsize(h, kh, sy, ph)
    out_w = conv_outsize(w, kw, sx, pw)
    y = cupy.empty((n, c, out_h, out_w), dtype=x.dtype)
    switches = cupy.empty((n, c, out_h, out_w), dtype=cupy.int64)
    kernel = backend.elementwise_kernel(
        "raw T x, int32 h, int32 w, int32 out_h, int32 out_w, int32 kh, int32 kw, "
        "int32 sy, int32 sx, int32 ph, int32 pw",
        "T y, int64 switches",
        """
        int ox = i % out_w;
        int oy = i / out_w % out_h;
        long long plane = i / ((long long)out_w * out_h);
        const T* p = &x[plane * h * w];
        int top = oy * sy - ph, left = ox * sx - pw;
        T best = 0;
        long long arg = -1;
        for (int ii = 0; ii < kh; ++ii) {
            int yy = top + ii;
            if (yy < 0 || yy >= h) continue;
            for (int j = 0; j < kw; ++j) {
                int xx = left + j;
                if (xx < 0 || xx >= w) continue;
                T v = p[yy * w + xx];
                if (arg < 0 || v > best || isnan(v)) {
                    best = v;
                    arg = yy * w + xx;
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
    if xp is numpy:
        rows = numpy.arange(n * c).reshape(-1, 1)
        sw = switches.reshape(n * c, -1)
        if accumulate:
            numpy.add.at(out, (rows, sw), x.reshape(n * c, -1))
        else:
            out[rows, sw] = x.reshape(n * c, -1)
    elif accumulate:
        flat = (xp.arange(n * c).reshape(-1, 1) * (out_h * out_w) + switches.reshape(n * c, -1))
        backend.cupyx.scatter_add(out.reshape(-1), flat.reshape(-1), x.reshape(-1))
    else:
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


# ---------------------------------------------------------------------------------------
# ReLU and its three backward rules
# ---------------------------------------------------------------------------------------

RULES = ("backprop", "deconvnet", "guided")


def relu_backward(dy, positive, rule="backprop"):
    """The three ReLU backward rules, given the forward's mask ``positive = x > 0``.

    - ``backprop`` (the gradient; Simonyan et al. 2013): ``dy * (x > 0)``
    - ``deconvnet`` (Zeiler & Fergus 2014): ``dy * (dy > 0)``
    - ``guided`` (Springenberg et al. 2015): ``dy * (x > 0) * (dy > 0)``
    """
    if rule == "backprop":
        return dy * positive
    if rule == "deconvnet":
        return dy * (dy > 0)
    if rule == "guided":
        return dy * (positive & (dy > 0))
    raise ValueError(f"unknown backward rule {rule!r}: expected one of {', '.join(RULES)}")
