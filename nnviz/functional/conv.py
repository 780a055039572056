"""Convolution by im2col and one GEMM, its transpose (which *is* the convolution's input
gradient), the filter gradient, Winograd F(2×2, 3×3) and the kernel-offset route.

Conventions (as PyTorch): images ``x: (N, C, H, W)``; conv filters ``w: (O, C, kh, kw)``;
a column buffer ``col: (N, C, kh, kw, out_h, out_w)``, which reshaped is the GEMM operand
``(N, C*kh*kw, out_h*out_w)``. Geometry: kernel ``kh, kw``, stride ``sy, sx``, padding
``ph, pw``, dilation ``dy, dx``. ``im2col`` and ``col2im`` have a CuPy kernel beside their
NumPy twin; ``xp`` is always taken from the array.

3×3 stride-1 convolutions can also run as Winograd F(2×2, 3×3) (Lavin & Gray 2016), opt-in:
``conv2d(..., algorithm="winograd")``, ``with conv_algorithm("winograd"):`` or
``NNVIZ_CONV=winograd``.
"""
import contextlib
import contextvars
import os

import numpy
from numpy.lib.stride_tricks import as_strided

from .. import backend
from ..backend import get_array_module


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


def _im2col_cpu(x, kh, kw, sy, sx, ph, pw, dy, dx, pval, out=None):
    n, c, h, w = x.shape
    out_h = conv_outsize(h, kh, sy, ph, dy)
    out_w = conv_outsize(w, kw, sx, pw, dx)
    if out is None:
        out = numpy.empty((n, c, kh, kw, out_h, out_w), x.dtype)
    numpy.copyto(out, _windows(pad(x, ph, pw, pval), kh, kw, sy, sx, dy, dx, out_h, out_w))
    return out


def pad(x, ph, pw, pval=0):
    """``x: (N, C, H, W)`` with ``ph`` rows and ``pw`` columns of ``pval`` on each side
    (``x`` itself when there is no padding)."""
    if not (ph or pw):
        return x
    xp = get_array_module(x)
    n, c, h, w = x.shape
    out = xp.empty((n, c, h + 2 * ph, w + 2 * pw), x.dtype)
    out[:, :, :ph] = pval
    out[:, :, ph + h:] = pval
    out[:, :, ph:ph + h, :pw] = pval
    out[:, :, ph:ph + h, pw + w:] = pval
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def _windows(xpad, kh, kw, sy, sx, dy, dx, out_h, out_w):
    """A strided view ``(N, C, kh, kw, out_h, out_w)`` of every window of a padded image."""
    s_n, s_c, s_h, s_w = xpad.strides
    n, c = xpad.shape[:2]
    return as_strided(xpad, (n, c, kh, kw, out_h, out_w),
                      (s_n, s_c, s_h * dy, s_w * dx, s_h * sy, s_w * sx), writeable=False)


# the window geometry every GPU kernel below takes, after its input array. Each is a 32-bit int
# (image sides, kernel, stride, padding < 2^31); the kernels compute every flat index (the loop
# index i, plane offsets, positions in the buffers) in 64 bits (ptrdiff_t), so that arrays past
# 2^31 elements work: an im2col buffer of VGG's conv1_2 at 2048 px has 2.4e9.
GEOMETRY_PARAMS = ("int32 h, int32 w, int32 out_h, int32 out_w, int32 kh, int32 kw, int32 sy, "
                   "int32 sx, int32 ph, int32 pw")


def _im2col_gpu(x, kh, kw, sy, sx, ph, pw, dy, dx, pval):
    cupy = backend.cupy
    n, c, h, w = x.shape
    out_h = conv_outsize(h, kh, sy, ph, dy)
    out_w = conv_outsize(w, kw, sx, pw, dx)
    col = cupy.empty((n, c, kh, kw, out_h, out_w), dtype=x.dtype)
    kernel = backend.elementwise_kernel(
        f"raw T x, {GEOMETRY_PARAMS}, int32 dy, int32 dx, T pval",
        "T col",
        """
        // Sizes: i, the image plane and every flat index in 64 bits (col and x past 2^31
        // elements); the geometry (< 2^31) in 32. One i per element of col.
        ptrdiff_t ox = i % out_w;
        ptrdiff_t oy = i / out_w % out_h;
        int j = i / ((ptrdiff_t)out_w * out_h) % kw;
        int ii = i / ((ptrdiff_t)out_w * out_h * kw) % kh;
        ptrdiff_t plane = i / ((ptrdiff_t)out_w * out_h * kw * kh);   // n * C + c
        ptrdiff_t y = oy * sy - ph + (ptrdiff_t)ii * dy;
        ptrdiff_t xx = ox * sx - pw + (ptrdiff_t)j * dx;
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
        f"raw T col, {GEOMETRY_PARAMS}, int32 dy, int32 dx",
        "T img",
        """
        // Sizes: i, the image plane and the flat index into col in 64 bits (col and img past
        // 2^31 elements); positions within a plane (< 2^31 per side) in 32. One i per pixel
        // of img, which gathers what its windows hold: no two i write the same element.
        int xx = i % w;
        int y = i / w % h;
        ptrdiff_t plane = i / ((ptrdiff_t)w * h);
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
# this many bytes, so that memory stays bounded on large images and the block that im2col
# writes is still in cache (L3) when the GEMM reads it: 4 MB made the feed-forward style
# network's convolutions 1.2-1.7x faster than 24 MB on a 2-core EPYC (32 MB L3), VGG16's
# equal or faster. A block has at least COL_BLOCK_MIN_COLUMNS columns (output pixels), for
# which the GEMM keeps its pace (VGG's 512-channel layers lost 10% at 4 MB without it). On the
# GPU, blocks of whole images.
# ``$NNVIZ_COL_BLOCK_MB`` and ``$NNVIZ_GPU_COL_BLOCK_MB`` (megabytes, read at each call)
# override the defaults below.
COL_BLOCK_BYTES = 4 << 20
COL_BLOCK_MIN_COLUMNS = 1024
GPU_COL_BLOCK_BYTES = 2048 << 20


def col_block_budget(gpu=False):
    """The bytes a column-buffer block may take: ``$NNVIZ_COL_BLOCK_MB`` (on the GPU
    ``$NNVIZ_GPU_COL_BLOCK_MB``) megabytes when set, else :data:`COL_BLOCK_BYTES`
    (:data:`GPU_COL_BLOCK_BYTES`)."""
    name, default = ("NNVIZ_GPU_COL_BLOCK_MB", GPU_COL_BLOCK_BYTES) if gpu else \
        ("NNVIZ_COL_BLOCK_MB", COL_BLOCK_BYTES)
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"${name}={text!r}: expected a number of megabytes") from None
    return max(1, int(value * (1 << 20)))


def _block_shape(n, rows, row_bytes, budget, row_cols=0):
    """``(nb, rb)``: blocks of ``nb`` whole images (``rb == rows``) when one image's buffer fits
    ``budget`` bytes, else of ``rb`` rows of one image (at least one row, and at least
    :data:`COL_BLOCK_MIN_COLUMNS` columns when a row has ``row_cols`` of them)."""
    if row_bytes * rows <= budget:
        return min(n, max(1, budget // (row_bytes * rows))), rows
    least = -(-COL_BLOCK_MIN_COLUMNS // row_cols) if row_cols else 1
    return 1, min(rows, max(least, budget // row_bytes))


def _col_block_shape(n, k, out_h, out_w, itemsize, gpu):
    """``(nb, rb, row_bytes)`` of the blocks of :func:`col_blocks`: ``k = C·kh·kw`` rows of
    the column buffer, ``row_bytes`` for one output row of one image."""
    row_bytes = k * out_w * itemsize
    nb, rb = _block_shape(n, out_h, row_bytes, col_block_budget(gpu), out_w)
    return nb, rb, row_bytes


def col_block_bytes(n, c, kh, kw, out_h, out_w, itemsize, gpu=False):
    """Bytes of the largest column-buffer block that :func:`col_blocks` builds for ``n``
    images of ``c`` channels, a ``kh × kw`` kernel and an ``out_h × out_w`` output."""
    nb, rb, row_bytes = _col_block_shape(n, c * kh * kw, out_h, out_w, itemsize, gpu)
    return nb * rb * row_bytes


def col_blocks(x, kh, kw, sy, sx, ph, pw, dy=1, dx=1):
    """im2col in blocks: yields ``(n0, n1, r0, r1, col)`` where ``col: (n1-n0, C*kh*kw,
    (r1-r0)*out_w)`` holds the windows of output rows ``r0:r1`` of images ``n0:n1``."""
    n, c, h, w = x.shape
    out_h = conv_outsize(h, kh, sy, ph, dy)
    out_w = conv_outsize(w, kw, sx, pw, dx)
    k = c * kh * kw
    gpu = backend.is_gpu_array(x)
    nb, rb, _ = _col_block_shape(n, k, out_h, out_w, x.dtype.itemsize, gpu)
    if gpu or rb == out_h:                  # whole images (always on the GPU)
        for n0 in range(0, n, nb):
            n1 = min(n, n0 + nb)
            if gpu:
                col = im2col(x[n0:n1], kh, kw, sy, sx, ph, pw, dy, dx)
            else:                           # into a buffer kept between calls: warm pages
                col = _im2col_cpu(x[n0:n1], kh, kw, sy, sx, ph, pw, dy, dx, 0, backend.workspace(
                    numpy, x.dtype, "col_blocks", (n1 - n0, c, kh, kw, out_h, out_w)))
            yield n0, n1, 0, out_h, col.reshape(n1 - n0, k, out_h * out_w)
        return
    xpad = pad(x, ph, pw)
    for n0 in range(n):
        for r0 in range(0, out_h, rb):
            r1 = min(out_h, r0 + rb)
            rows = xpad[n0:n0 + 1, :, r0 * sy:(r1 - 1) * sy + (kh - 1) * dy + 1]
            col = backend.workspace(numpy, x.dtype, "col_blocks", (1, c, kh, kw, r1 - r0, out_w))
            numpy.copyto(col, _windows(rows, kh, kw, sy, sx, dy, dx, r1 - r0, out_w))
            yield n0, n0 + 1, r0, r1, col.reshape(1, k, (r1 - r0) * out_w)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, algorithm=None):
    """Cross-correlation as PyTorch's ``conv2d``: ``x: (N, C, H, W)``, ``w: (O, C, kh, kw)``,
    ``b: (O,)`` -> ``y: (N, O, out_h, out_w)``. A GEMM ``(O, C*kh*kw) @ (C*kh*kw, P)`` per
    block of the column buffer (see :func:`col_blocks`); with ``algorithm="winograd"`` (or
    :func:`conv_algorithm`), 3×3 stride-1 layers go through :func:`winograd_conv3x3`."""
    if backend.is_gpu_array(x):
        backend.apply_tf32()       # the calling context's TF32 setting (backend.tf32)
    xp = get_array_module(x)
    sy, sx = pair(stride)
    ph, pw = pair(padding)
    dy, dx = pair(dilation)
    o, c, kh, kw = w.shape
    n, _, h, wd = x.shape
    if _use_winograd(algorithm, kh, kw, sy, sx, dy, dx, c, o):
        return winograd_conv3x3(x, winograd_filters(w), b, (ph, pw))
    if use_offsets(x, kh, kw, c, o, ph, pw, sy, sx):      # few output channels
        return conv2d_offsets(x, w, b, stride, padding, dilation)
    out_h = conv_outsize(h, kh, sy, ph, dy)
    out_w = conv_outsize(wd, kw, sx, pw, dx)
    y = xp.empty((n, o, out_h, out_w), dtype=x.dtype)
    w2 = xp.ascontiguousarray(w.reshape(o, -1))
    for n0, n1, r0, r1, col in col_blocks(x, kh, kw, sy, sx, ph, pw, dy, dx):
        if (r0, r1) == (0, out_h):
            out = y[n0:n1].reshape(n1 - n0, o, out_h * out_w)
        else:                              # rows of one image (host only): a strided view
            out = y[n0:n1, :, r0:r1].view()
            out.shape = (n1 - n0, o, (r1 - r0) * out_w)     # raises rather than copy
        xp.matmul(w2, col, out=out)        # the GEMM writes y in place
    if b is not None:
        add_bias(y, b)
    return y


def add_bias(y, b):
    """``y += b`` over the channels of ``y: (N, O, ...)``, in place."""
    y += b.reshape((1, -1) + (1,) * (y.ndim - 2))


def conv_transpose2d(x, w, b=None, stride=1, padding=0, dilation=1, output_size=None,
                     output_padding=0, algorithm=None):
    """Transposed convolution as PyTorch's ``conv_transpose2d``, and the input gradient of
    :func:`conv2d`: ``x: (N, C, H, W)``, ``w: (C, O, kh, kw)`` -> ``(N, O, H', W')``.

    ``output_size`` (H', W') fixes the output; otherwise it follows from ``output_padding``.
    A conv2d with filters ``w`` maps (N, O, H', W') to (N, C, H, W); this is its adjoint:
    ``col = w.T @ x`` scattered back by :func:`col2im`, in blocks of input rows. With stride 1
    the same map is a plain correlation with the flipped, transposed filters, which
    :func:`conv2d` computes; that route is taken where it moves fewer bytes
    (:func:`_col2im_cheaper`), or through Winograd when ``algorithm`` asks for it.
    """
    if backend.is_gpu_array(x):
        backend.apply_tf32()       # the calling context's TF32 setting (backend.tf32)
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
    as_conv = (sy, sx) == (1, 1) and qh >= 0 and qw >= 0 and (out_h, out_w) == (
        deconv_outsize(h, kh, 1, ph, dy), deconv_outsize(wd, kw, 1, pw, dx))
    if as_conv and _use_winograd(algorithm, kh, kw, sy, sx, dy, dx, c, o):
        # the flipped, transposed filters, transformed without copying them first
        u = winograd_filters(w, flip=True).transpose(0, 2, 1)        # (16, O, C)
        return winograd_conv3x3(x, u, b, (qh, qw))
    if as_conv and not _col2im_cheaper(c, o, kh * kw, h * wd):
        flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)           # (O, C, kh, kw)
        return conv2d(x, xp.ascontiguousarray(flipped), b, 1, (qh, qw), (dy, dx))
    y = _conv_transpose2d_col2im(x, w, sy, sx, ph, pw, dy, dx, out_h, out_w)
    if b is not None:
        add_bias(y, b)
    return y


def _col2im_cheaper(c, o, k, p):
    """Whether the stride-1 transposed convolution of ``C`` channels into ``O`` (``k`` kernel
    taps, ``p`` input pixels) moves fewer bytes as GEMM + col2im than as a convolution with
    the flipped filters. col2im: the column buffer ``O*k*p`` written and read, and ``k``
    read-modify-write passes over the ``O*p`` image; flipped conv: its column buffer ``C*k*p``
    written and read, the padded copy of the input, and the filters flipped (``C*O*k``,
    a slow strided copy). Measured on VGG16's layers, this picks the faster of the two."""
    return o * (4 * k * p - 3 * c * k) < 20 * c * p


def _conv_transpose2d_col2im(x, w, sy, sx, ph, pw, dy, dx, out_h, out_w):
    """``col = w.T @ x`` for a block of input rows, added into the (padded) output image
    window by window; the blocks keep the column buffer within ``COL_BLOCK_BYTES``."""
    xp = get_array_module(x)
    c, o, kh, kw = w.shape
    n, _, h, wd = x.shape
    wt = w.reshape(c, o * kh * kw).T                        # (O*kh*kw, C), a transposed view
    if backend.is_gpu_array(x):
        # (O*kh*kw, C) @ (N, C, H*W) -> (N, O*kh*kw, H*W): the whole column buffer at once
        col = xp.matmul(wt, x.reshape(n, c, h * wd)).reshape(n, o, kh, kw, h, wd)
        return col2im(col, out_h, out_w, sy, sx, ph, pw, dy, dx)
    hp = max(out_h + 2 * ph, (h - 1) * sy + dy * (kh - 1) + 1)
    wp = max(out_w + 2 * pw, (wd - 1) * sx + dx * (kw - 1) + 1)
    img = xp.zeros((n, o, hp, wp), dtype=x.dtype)
    nb, rb = _block_shape(n, h, o * kh * kw * wd * x.dtype.itemsize, col_block_budget(), wd)
    for n0 in range(0, n, nb):
        n1 = min(n, n0 + nb)
        for r0 in range(0, h, rb):
            r1 = min(h, r0 + rb)
            # (O*kh*kw, C) @ (nb, C, rows*W) -> the columns of these input rows
            col = xp.matmul(wt, x[n0:n1, :, r0:r1].reshape(n1 - n0, c, -1))
            col = col.reshape(n1 - n0, o, kh, kw, r1 - r0, wd)
            for i in range(kh):
                y0 = r0 * sy + i * dy
                for j in range(kw):
                    x0 = j * dx
                    img[n0:n1, :, y0:y0 + sy * (r1 - r0 - 1) + 1:sy,
                        x0:x0 + sx * (wd - 1) + 1:sx] += col[:, :, i, j]
    return numpy.ascontiguousarray(img[:, :, ph:ph + out_h, pw:pw + out_w])


# ---------------------------------------------------------------------------------------
# Winograd F(2x2, 3x3)
# ---------------------------------------------------------------------------------------
# Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016), eq. (8):
# each 2×2 output tile is Y = A^T [(G g G^T) ⊙ (B^T d B)] A, with d the 4×4 input tile around
# it and g the 3×3 filter: 16 multiplies instead of 36 (2.25× fewer). Summed over channels,
# the products become 16 GEMMs  M[ξν] = U[ξν] @ V[ξν],  U = G g G^T: (16, O, C),
# V = B^T d B: (16, C, tiles). Opt-in (``algorithm="winograd"``): see the README's benchmark.

CONV_ALGORITHMS = ("direct", "winograd")
_conv_algorithm = contextvars.ContextVar("nnviz_conv_algorithm", default=None)
WINOGRAD_MIN_CHANNELS = 16     # below this the transforms cost more than the GEMM saves

_G = numpy.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])


@contextlib.contextmanager
def conv_algorithm(name):
    """Within the block, every 3×3 stride-1 convolution and its input gradient use ``name``:
    ``"direct"`` (im2col + GEMM) or ``"winograd"``; ``None`` changes nothing. Outside any
    block the algorithm is ``$NNVIZ_CONV`` (default ``"direct"``); a call's ``algorithm=``
    argument overrides both. Scoped to the current thread or task (a context variable)."""
    if name is None:
        yield get_conv_algorithm()
        return
    token = _conv_algorithm.set(_check_algorithm(name))
    try:
        yield name
    finally:
        _conv_algorithm.reset(token)


def get_conv_algorithm():
    """The algorithm in force here (see :func:`conv_algorithm`)."""
    name = _conv_algorithm.get()
    return _check_algorithm(os.environ.get("NNVIZ_CONV") or "direct" if name is None else name)


def _check_algorithm(name):
    if name not in CONV_ALGORITHMS:
        raise ValueError(f"unknown convolution algorithm {name!r}: expected one of "
                         f"{', '.join(CONV_ALGORITHMS)}")
    return name


def _use_winograd(algorithm, kh, kw, sy, sx, dy, dx, c, o):
    algorithm = get_conv_algorithm() if algorithm is None else _check_algorithm(algorithm)
    return (algorithm == "winograd" and (kh, kw, sy, sx, dy, dx) == (3, 3, 1, 1, 1, 1)
            and min(c, o) >= WINOGRAD_MIN_CHANNELS)


def winograd_filters(w, flip=False):
    """``U = G g G^T`` for every filter: ``w: (O, C, 3, 3)`` -> ``(16, O, C)``, the 4×4
    transformed tile flattened first. ``flip=True`` transforms the filters rotated by 180°
    (the transposed convolution's), without copying them."""
    xp = get_array_module(w)
    g = _G[:, ::-1] if flip else _G
    k = numpy.kron(g, g)                    # (16, 9): k[4a+b, 3i+j] = g[a, i] g[b, j]
    o, c = w.shape[:2]
    # (16, 9) @ (9, O*C), the second a transposed view of the filters
    return xp.matmul(xp.asarray(k, dtype=w.dtype), w.reshape(o * c, 9).T).reshape(16, o, c)


def winograd_conv3x3(x, u, b=None, padding=(1, 1)):
    """A 3×3, stride-1 cross-correlation by Winograd F(2×2, 3×3): ``x: (N, C, H, W)``,
    ``u: (16, O, C)`` from :func:`winograd_filters`, ``b: (O,)`` -> ``(N, O, out_h, out_w)``.

    Tiles are processed in blocks (of images, or of tile rows) whose transformed input stays
    within ``COL_BLOCK_BYTES``.
    """
    xp = get_array_module(x)
    n, c, h, wd = x.shape
    o = u.shape[1]
    ph, pw = pair(padding)
    dt = x.dtype
    out_h, out_w = h + 2 * ph - 2, wd + 2 * pw - 2
    th, tw = -(-out_h // 2), -(-out_w // 2)              # tiles down and across
    hp = 2 * th + 2                                      # padded height the tiles read
    # The zero-padded input split by column parity, so that every read below is a slice
    # with a contiguous last axis: e[p][..., m] = xpad[..., 2m + p], (2, N, C, hp, tw + 1).
    e = xp.zeros((2, n, c, hp, tw + 1), dt)
    for p in (0, 1):
        q0 = pw + (p - pw) % 2                           # first padded column of parity p
        m0, cnt = q0 // 2, len(range(q0, pw + wd, 2))
        e[p, :, :, ph:ph + h, m0:m0 + cnt] = x[:, :, :, q0 - pw::2]
    y = xp.empty((n, o, 2 * th, 2 * tw), dt)
    y6 = y.reshape(n, o, th, 2, tw, 2)                   # [n, o, ty, i, tx, j]
    nb, rb = _block_shape(n, th, 16 * max(c, o) * tw * dt.itemsize,       # bytes per tile row
                          col_block_budget(backend.is_gpu_array(x)))
    for n0 in range(0, n, nb):
        n1 = min(n, n0 + nb)
        for t0 in range(0, th, rb):
            t1 = min(th, t0 + rb)
            m, nt = n1 - n0, t1 - t0
            # scratch, kept between calls: V (16, C, tiles), M (16, O, tiles) and the halves
            v = backend.workspace(xp, dt, "winograd_v", (4, 4, c, m, nt, tw))
            cols = backend.workspace(xp, dt, "winograd_cols", (4, m, c, 2 * nt + 2, tw))
            mm = backend.workspace(xp, dt, "winograd_m", (4, 4, o, m, nt, tw))
            s9 = backend.workspace(xp, dt, "winograd_s", (9, o, m, nt, tw))
            s, tmp = s9[:8].reshape(2, 4, o, m, nt, tw), s9[8]     # A^T M, and a temporary

            # V = B^T d B: first across (the tile's columns b), then down (its rows a)
            e0 = e[0, n0:n1, :, 2 * t0:2 * t1 + 2]
            e1 = e[1, n0:n1, :, 2 * t0:2 * t1 + 2]
            d0, d1, d2, d3 = e0[..., :tw], e1[..., :tw], e0[..., 1:], e1[..., 1:]
            xp.subtract(d0, d2, out=cols[0])
            xp.add(d1, d2, out=cols[1])
            xp.subtract(d2, d1, out=cols[2])
            xp.subtract(d1, d3, out=cols[3])
            for j in range(4):
                r0, r1, r2, r3 = (cols[j][:, :, a:a + 2 * nt:2] for a in range(4))
                vj = v[:, j].transpose(0, 2, 1, 3, 4)               # [a] (m, C, nt, tw)
                xp.subtract(r0, r2, out=vj[0])
                xp.add(r1, r2, out=vj[1])
                xp.subtract(r2, r1, out=vj[2])
                xp.subtract(r1, r3, out=vj[3])

            # M[ξν] = U[ξν] @ V[ξν]: 16 GEMMs (O, C) @ (C, tiles)
            xp.matmul(u, v.reshape(16, c, m * nt * tw), out=mm.reshape(16, o, m * nt * tw))

            # Y = A^T M A: first down, then across, into y's 2×2 tiles
            for bb in range(4):
                xp.add(mm[0, bb], mm[1, bb], out=s[0, bb])
                s[0, bb] += mm[2, bb]
                xp.subtract(mm[1, bb], mm[2, bb], out=s[1, bb])
                s[1, bb] -= mm[3, bb]
            for i in range(2):
                si = s[i]
                out = y6[n0:n1, :, t0:t1, i].transpose(1, 0, 2, 3, 4)    # (O, m, nt, tw, 2)
                xp.add(si[0], si[1], out=tmp)
                xp.add(tmp, si[2], out=out[..., 0])
                xp.subtract(si[1], si[2], out=tmp)
                xp.subtract(tmp, si[3], out=out[..., 1])
    if (2 * th, 2 * tw) != (out_h, out_w):
        y = xp.ascontiguousarray(y[:, :, :out_h, :out_w])
    if b is not None:
        add_bias(y, b)
    return y


def conv2d_grad_weight(x, gy, kh, kw, stride=1, padding=0, dilation=1):
    """Gradient of :func:`conv2d` with respect to its filters: ``x: (N, C, H, W)``, the output
    gradient ``gy: (N, O, out_h, out_w)`` -> ``(O, C, kh, kw)``.

    With the roles of ``x`` and ``gy`` exchanged it is also the weight gradient of
    :func:`conv_transpose2d`."""
    if backend.is_gpu_array(x):
        backend.apply_tf32()       # the calling context's TF32 setting (backend.tf32)
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
    if use_offsets(x, kh, kw, c, o, ph, pw, sy, sx):      # no gather of windows
        return conv2d_grad_weight_offsets(x, gy, kh, kw, stride, padding, dilation)
    gw = xp.zeros((o, c * kh * kw), dtype=x.dtype)
    for n0, n1, r0, r1, col in col_blocks(x, kh, kw, sy, sx, ph, pw, dy, dx):
        g = gy[n0:n1, :, r0:r1].reshape(n1 - n0, o, -1)               # (nb, O, P)
        gw += xp.tensordot(g, col, axes=([0, 2], [0, 2]))              # sum over images and P
    return gw.reshape(o, c, kh, kw)



OFFSETS_MAX_BYTES = 512 << 20     # the kernel-offset buffer of one image, at most


def use_offsets(x, kh, kw, c, o, ph=0, pw=0, sy=1, sx=1):
    """Whether the forward and the filter gradient of a convolution of ``c`` to ``o``
    channels are cheaper by kernel offsets (:func:`conv2d_offsets`,
    :func:`conv2d_grad_weight_offsets`): their buffer holds ``o·kh·kw`` rows per image where
    im2col's holds ``c·kh·kw``, and they need no gather of windows, but they compute every
    position of the input plane, ``sy·sx`` times the outputs of a strided convolution. Both
    when ``o`` is at most a quarter of ``c`` (the convolutions to RGB of a feed-forward style
    network, VGG's input gradient), the stride is 1, the filters larger than 1×1 and the
    buffer at most :data:`OFFSETS_MAX_BYTES` per image. (Measured on a 2-core EPYC, batch 4:
    9×9 from 32 channels to 3, 3.4× faster than im2col; 3×3 from 128 to 64 or from 64 to 32,
    10–20% slower; strided, up to 6× slower.)"""
    h, w = x.shape[2] + 2 * ph, x.shape[3] + 2 * pw
    if kh * kw == 1 or (sy, sx) != (1, 1) or o * kh * kw * h * w * x.dtype.itemsize > OFFSETS_MAX_BYTES:
        return False
    return 4 * o <= c


def conv2d_offsets(x, w, b=None, stride=1, padding=0, dilation=1):
    """:func:`conv2d` by kernel offsets, for few output channels: per image, one GEMM
    ``U = W' x`` with ``W': (O·kh·kw, C)`` over the whole (padded) plane, then
    ``y[o, oy, ox] = Σ_ij U[o, i, j, oy·sy + i·dy, ox·sx + j·dx]`` (kh·kw shifted adds)."""
    xp = get_array_module(x)
    sy, sx = pair(stride)
    ph, pw = pair(padding)
    dy, dx = pair(dilation)
    o, c, kh, kw = w.shape
    n, _, h, wd = x.shape
    out_h, out_w = conv_outsize(h, kh, sy, ph, dy), conv_outsize(wd, kw, sx, pw, dx)
    xpad = pad(x, ph, pw) if ph or pw else x
    hp, wp = xpad.shape[2:]
    w2 = xp.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(o * kh * kw, c))
    y = xp.zeros((n, o, out_h, out_w), dtype=x.dtype)
    for k in range(n):
        u = (w2 @ xpad[k].reshape(c, hp * wp)).reshape(o, kh, kw, hp, wp)
        for i in range(kh):
            for j in range(kw):
                y[k] += u[:, i, j, i * dy:i * dy + (out_h - 1) * sy + 1:sy,
                          j * dx:j * dx + (out_w - 1) * sx + 1:sx]
    if b is not None:
        add_bias(y, b)
    return y


def conv2d_grad_weight_offsets(x, gy, kh, kw, stride=1, padding=0, dilation=1):
    """:func:`conv2d_grad_weight` by kernel offsets, for few output channels: per image, the
    output gradient spread to every kernel offset in the padded input's frame,
    ``D[o, i, j, oy·sy + i·dy, ox·sx + j·dx] = gy[o, oy, ox]`` (``O·kh·kw`` rows), then one
    GEMM ``D xᵀ`` -> (O, kh, kw, C)."""
    xp = get_array_module(x)
    sy, sx = pair(stride)
    ph, pw = pair(padding)
    dy, dx = pair(dilation)
    n, c = x.shape[:2]
    o, out_h, out_w = gy.shape[1:]
    xpad = pad(x, ph, pw) if ph or pw else x
    hp, wp = xpad.shape[2:]
    gw = xp.zeros((o * kh * kw, c), dtype=x.dtype)
    d = xp.empty((o, kh, kw, hp, wp), dtype=x.dtype)
    for k in range(n):
        d[...] = 0
        for i in range(kh):
            for j in range(kw):
                d[:, i, j, i * dy:i * dy + (out_h - 1) * sy + 1:sy,
                  j * dx:j * dx + (out_w - 1) * sx + 1:sx] = gy[k]
        gw += d.reshape(o * kh * kw, hp * wp) @ xpad[k].reshape(c, hp * wp).T
    return gw.reshape(o, kh, kw, c).transpose(0, 3, 1, 2)

