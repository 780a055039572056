"""The arithmetic of the layers, as functions of arrays (floor 5 of design.md):

- :mod:`.conv` — convolution by im2col and one GEMM, its transpose (which *is* the
  convolution's input gradient), the filter gradient, Winograd F(2×2, 3×3), kernel offsets;
- :mod:`.pool` — max pooling with switches, unpooling, average pooling;
- :mod:`.image` — ReLU, bilinear resizing, Gaussian blur, and the feed-forward style nets'
  padding, instance normalization, upsampling and concatenation.

Conventions (as PyTorch): images ``x: (N, C, H, W)``; conv filters ``w: (O, C, kh, kw)``.
Each routine that NumPy cannot express without loops or copies has a CuPy kernel beside its
NumPy twin (``im2col``, ``col2im``, ``max_pool2d``, ``max_pool2d_backward``, ``unpool``);
``xp`` is always taken from the array. Settings that a call may change (the convolution
algorithm) are scoped (:func:`conv_algorithm`), never process-global.
"""
from .conv import (
    CONV_ALGORITHMS,
    col2im,
    col_block_bytes,
    col_blocks,
    conv2d,
    conv2d_grad_weight,
    conv2d_grad_weight_offsets,
    conv2d_offsets,
    conv_algorithm,
    conv_outsize,
    conv_transpose2d,
    deconv_outsize,
    get_conv_algorithm,
    im2col,
    pad,
    pair,
    use_offsets,
    winograd_conv3x3,
    winograd_filters,
)
from .image import (
    concat_channels,
    gaussian_blur,
    gaussian_taps,
    instance_norm,
    instance_norm_backward,
    reflection_pad2d,
    reflection_pad2d_backward,
    relu,
    resize_bilinear,
    split_channels,
    upsample_nearest,
    upsample_nearest_backward,
)
from .pool import (
    avg_pool2d,
    avg_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
    unpool,
    unpool_backward,
    window_origins,
)

__all__ = [
    "CONV_ALGORITHMS", "col2im", "col_block_bytes", "col_blocks", "conv2d", "conv2d_grad_weight",
    "conv2d_grad_weight_offsets", "conv2d_offsets", "conv_algorithm", "conv_outsize",
    "conv_transpose2d", "deconv_outsize", "get_conv_algorithm", "im2col", "pad", "pair",
    "use_offsets", "winograd_conv3x3", "winograd_filters", "concat_channels", "gaussian_blur", "gaussian_taps",
    "instance_norm", "instance_norm_backward", "reflection_pad2d", "reflection_pad2d_backward",
    "relu", "resize_bilinear", "split_channels", "upsample_nearest", "upsample_nearest_backward",
    "avg_pool2d", "avg_pool2d_backward", "max_pool2d", "max_pool2d_backward", "unpool",
    "unpool_backward", "window_origins",
]
