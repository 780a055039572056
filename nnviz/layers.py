"""Layers with hand-written forward and backward passes.

Every layer has ``forward(x) -> y``, which keeps exactly what its backward rules need (named
attributes: ``input``, ``positive``, ``switches``, ``input_shape``), ``gradient(dy) -> dx``
(its gradient, written out), and ``backward(dy, rule="backprop") -> dx``, which asks the rule
(:mod:`nnviz.rules`; a rule name or object, default the gradient) how to pass ``dy`` down.
Each declares its ``family`` (``"convolution"``, ``"linear"``, ``"pooling"``, ``"maxpool"``,
``"activation"``, ``"norm"``, ``"shape"``, ``"block"``: what composites match on).

Parameterized layers hold ``weight`` and ``bias`` (PyTorch layouts: conv ``(O, C, kh, kw)``,
transposed conv ``(C, O, kh, kw)``, linear ``(out, in)``) and, after a gradient, ``grad_weight``
and ``grad_bias`` unless ``requires_grad`` is False. They offer their own map, which their
forward and gradient use and the LRP rules call with modified parameters:
``affine(x, weight, bias)`` (the output for input ``x``; ``bias`` None: none) and
``affine_t(g, weight, x)`` (the transpose of its linear part applied to ``g``, shaped as ``x``).
Pooling layers offer theirs with ``weight=None``. A layer computes in its input's dtype;
parameters are cast to it.
"""
import numpy

from . import functional as F
from . import rules as R
from .backend import get_array_module
from .errors import BadShape


class Layer:
    """Base class: a name (set by the net that holds the layer) for error messages."""

    name = None
    family = None
    params = ()
    input_shape = None
    output_shape = None          # set by forward; None until then

    def backward(self, dy, rule="backprop", x=None):
        """The signal at the input from ``dy`` at the output, under ``rule`` (a name or a
        :class:`nnviz.rules.Rule`; default the gradient; a ReLU rule's name leaves other
        layers their gradient, as in a net).

        ``x``: the layer's forward input, for the rules that read it (``rule.needs_input``:
        the LRP rules). A layer keeps its input only when ``requires_grad``; a
        :class:`~nnviz.models.Net` hands it the previous layer's output."""
        rule = R.for_layer(rule, self)
        self.check_signal(dy)
        if rule.needs_input:
            x = self.rule_input(rule, getattr(self, "input", None) if x is None else x)
        return rule.backward(self, dy, x)

    def rule_input(self, rule, x):
        """``x``, the forward input that ``rule`` reads, checked against the forward's."""
        if x is None:
            raise RuntimeError(f"{self._where()}: rule {rule.name!r} needs the layer's forward "
                               f"input: pass x=, or run the layer in a Net")
        if tuple(x.shape) != tuple(self.input_shape):
            raise ValueError(f"{self._where()}: input of shape {tuple(x.shape)} for rule "
                             f"{rule.name!r} does not match the forward input {tuple(self.input_shape)}")
        return x

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self):
        return ""

    def _where(self):
        return f"layer {self.name!r}" if self.name else type(self).__name__

    def _check_input(self, x, ndim=4, channels=None):
        if not hasattr(x, "ndim") or not hasattr(x, "dtype"):
            raise TypeError(f"{self._where()}: expected an array, got {type(x).__name__}")
        if x.ndim != ndim:
            layout = "(N, C, H, W)" if ndim == 4 else "(N, features)"
            raise ValueError(f"{self._where()}: expected a {ndim}-d input {layout}, "
                             f"got shape {tuple(x.shape)}")
        if channels is not None and x.shape[1] != channels:
            what = "channels" if ndim == 4 else "features"
            raise ValueError(f"{self._where()}: expected {channels} input {what}, "
                             f"got shape {tuple(x.shape)}")
        if x.dtype.kind != "f":
            raise TypeError(f"{self._where()}: expected a float array, got {x.dtype}")

    def _keep(self, x, y, keep_input):
        """What the rules read: both shapes, and the input (a reference, no copy) when
        ``keep_input`` (the weight gradient needs it; the input gradient does not)."""
        self.input = x if keep_input else None
        self.input_shape, self.output_shape = x.shape, y.shape

    def check_signal(self, dy):
        """Raise unless ``dy`` is shaped as the output of the last forward."""
        if self.output_shape is None:
            raise RuntimeError(f"{self._where()}: backward called before forward")
        if tuple(dy.shape) != tuple(self.output_shape):
            raise ValueError(f"{self._where()}: gradient of shape {tuple(dy.shape)} does not match "
                             f"the forward output {tuple(self.output_shape)}")

    def to(self, xp):
        """Move the parameters to the array module ``xp`` (numpy or cupy)."""
        for p in self.params:
            a = getattr(self, p)
            if a is not None:
                setattr(self, p, xp.asarray(a))
        return self


class _Parameterized(Layer):
    params = ("weight", "bias")
    requires_grad = True

    def _param(self, name, dtype):
        a = getattr(self, name)
        return None if a is None else a.astype(dtype, copy=False)

    def _set_grads(self, gw, gb):
        self.grad_weight = gw.astype(self.weight.dtype, copy=False)
        self.grad_bias = None if gb is None else gb.astype(self.bias.dtype, copy=False)


class Conv2d(_Parameterized):
    """2-D cross-correlation by im2col and one GEMM, as ``torch.nn.Conv2d``.

    x: (N, C, H, W) -> y: (N, O, out_h, out_w); weight (O, C, kh, kw); bias (O,).
    The input gradient is :func:`nnviz.functional.conv_transpose2d` with the same filters.
    """

    family = "convolution"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 bias=True, dtype=numpy.float32):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kh, self.kw = F.pair(kernel_size, "kernel_size")
        self.stride = F.pair(stride, "stride")
        self.padding = F.pair(padding, "padding")
        self.dilation = F.pair(dilation, "dilation")
        self.weight = numpy.zeros((out_channels, in_channels, self.kh, self.kw), dtype)
        self.bias = numpy.zeros(out_channels, dtype) if bias else None

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={(self.kh, self.kw)}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}")

    def forward(self, x):
        self._check_input(x, 4, self.in_channels)
        h, w = x.shape[2:]
        if min(F.conv_outsize(h, self.kh, self.stride[0], self.padding[0], self.dilation[0]),
               F.conv_outsize(w, self.kw, self.stride[1], self.padding[1], self.dilation[1])) < 1:
            raise BadShape(f"{self._where()}: input of shape {tuple(x.shape)} is smaller than the "
                             f"(dilated) kernel {(self.kh, self.kw)} with padding {self.padding}")
        y = self.affine(x, self._param("weight", x.dtype), self._param("bias", x.dtype))
        self._keep(x, y, self.requires_grad)
        return y

    def affine(self, x, weight, bias=None):
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation)

    def affine_t(self, g, weight, x):
        return self._transpose(g, weight, x.shape)

    def _transpose(self, g, weight, shape):
        return F.conv_transpose2d(g, weight, None, self.stride, self.padding, self.dilation,
                                  output_size=shape[2:])

    def gradient(self, dy):
        if self.requires_grad:
            gw = F.conv2d_grad_weight(self.input, dy, self.kh, self.kw, self.stride,
                                      self.padding, self.dilation)
            self._set_grads(gw, None if self.bias is None else dy.sum(axis=(0, 2, 3)))
        return self._transpose(dy, self._param("weight", dy.dtype), self.input_shape)


class ConvTranspose2d(_Parameterized):
    """Transposed convolution, as ``torch.nn.ConvTranspose2d`` (groups=1).

    x: (N, C, H, W) -> y: (N, O, H', W') with H' = (H-1)*sy - 2*ph + dy*(kh-1) + oph + 1;
    weight (C, O, kh, kw); bias (O,). Its input gradient is a convolution with the same filters.
    """

    family = "convolution"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, bias=True, dilation=1, dtype=numpy.float32):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kh, self.kw = F.pair(kernel_size, "kernel_size")
        self.stride = F.pair(stride, "stride")
        self.padding = F.pair(padding, "padding")
        self.output_padding = F.pair(output_padding, "output_padding")
        self.dilation = F.pair(dilation, "dilation")
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= max(s, d):
                raise ValueError(f"output_padding {self.output_padding} must be smaller than "
                                 f"stride {self.stride} or dilation {self.dilation}")
        self.weight = numpy.zeros((in_channels, out_channels, self.kh, self.kw), dtype)
        self.bias = numpy.zeros(out_channels, dtype) if bias else None

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={(self.kh, self.kw)}, "
                f"stride={self.stride}, padding={self.padding}, "
                f"output_padding={self.output_padding}, dilation={self.dilation}")

    def forward(self, x):
        self._check_input(x, 4, self.in_channels)
        y = self.affine(x, self._param("weight", x.dtype), self._param("bias", x.dtype))
        self._keep(x, y, self.requires_grad)
        return y

    def affine(self, x, weight, bias=None):
        return F.conv_transpose2d(x, weight, bias, self.stride, self.padding, self.dilation,
                                  output_padding=self.output_padding)

    def affine_t(self, g, weight, x):
        return F.conv2d(g, weight, None, self.stride, self.padding, self.dilation)

    def gradient(self, dy):
        if self.requires_grad:
            # the transposed conv is the adjoint of conv2d(., weight): exchange x and dy
            gw = F.conv2d_grad_weight(dy, self.input, self.kh, self.kw, self.stride,
                                      self.padding, self.dilation)
            self._set_grads(gw, None if self.bias is None else dy.sum(axis=(0, 2, 3)))
        return self.affine_t(dy, self._param("weight", dy.dtype), None)


class ReLU(Layer):
    """``max(x, 0)``; keeps the mask ``positive = x > 0`` for its backward rules
    (:mod:`nnviz.rules`: backprop, deconvnet, guided, pass)."""

    family = "activation"

    def forward(self, x):
        self._check_input(x, x.ndim if hasattr(x, "ndim") else 4)
        y, self.positive = F.relu(x)
        self.input_shape, self.output_shape = x.shape, y.shape
        return y

    def gradient(self, dy):
        return dy * self.positive


class _Pool(Layer):
    family = "pooling"

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kh, self.kw = F.pair(kernel_size, "kernel_size")
        self.stride = (self.kh, self.kw) if stride is None else F.pair(stride, "stride")
        self.padding = F.pair(padding, "padding")
        if self.padding[0] > self.kh // 2 or self.padding[1] > self.kw // 2:
            raise ValueError(f"padding {self.padding} must be at most half of the kernel "
                             f"{(self.kh, self.kw)}")

    def extra_repr(self):
        return f"kernel_size={(self.kh, self.kw)}, stride={self.stride}, padding={self.padding}"

    def _geometry(self):
        return (self.kh, self.kw) + self.stride + self.padding

    def _check_size(self, x):
        h, w = x.shape[2:]
        if min(F.conv_outsize(h, self.kh, self.stride[0], self.padding[0]),
               F.conv_outsize(w, self.kw, self.stride[1], self.padding[1])) < 1:
            raise BadShape(f"{self._where()}: input of shape {tuple(x.shape)} is smaller than "
                             f"the pooling window {(self.kh, self.kw)}")


class MaxPool2d(_Pool):
    """Max pooling, as ``torch.nn.MaxPool2d``; records ``switches`` (N, C, out_h, out_w): the
    index of each window's maximum in the flattened H×W input plane (PyTorch's
    ``return_indices``). The gradient goes to the switches (Zeiler's unpooling); the rule
    ``no_switches`` sends it to each window's first pixel instead (:meth:`unpool` to
    :meth:`first_pixels`)."""

    family = "maxpool"

    def forward(self, x):
        self._check_input(x)
        self._check_size(x)
        y, self.switches = F.max_pool2d(x, *self._geometry())
        self._keep(x, y, False)
        return y

    @property
    def overlapping(self):
        return self.stride[0] < self.kh or self.stride[1] < self.kw

    def gradient(self, dy):
        return self.unpool(dy, self.switches)

    def unpool(self, dy, switches):
        """``dy`` (shaped as the output) routed to the input pixels that ``switches`` (flat
        indices in each H×W plane) name; overlapping windows add what lands on one pixel."""
        h, w = self.input_shape[2:]
        return F.max_pool2d_backward(dy, switches, h, w, self.overlapping)

    def first_pixels(self):
        """The switches of each window's first (top-left) pixel, clamped into the plane."""
        h, w = self.input_shape[2:]
        return F.window_origins(self.switches, h, w, self.stride, self.padding)

    def affine(self, x, weight=None, bias=None):
        """The map at ``x``: each window's maximum (``weight``, ``bias``: none)."""
        return F.max_pool2d(x, *self._geometry())[0]

    def affine_t(self, g, weight, x):
        """The transpose of the map that picks each window's maximum of ``x``."""
        h, w = x.shape[2:]
        return F.max_pool2d_backward(g, F.max_pool2d(x, *self._geometry())[1], h, w,
                                     self.overlapping)

    def average(self):
        """An average pooling of the same windows (the proportional rule reads the window so)."""
        return AvgPool2d((self.kh, self.kw), self.stride, self.padding)


class MaxUnpool2d(_Pool):
    """Inverse of max pooling, as ``torch.nn.MaxUnpool2d``: ``forward(x, switches,
    output_size=None)`` puts each value at its switch in a zero map."""

    family = "shape"

    def forward(self, x, switches, output_size=None):
        self._check_input(x)
        if tuple(switches.shape) != tuple(x.shape):
            raise ValueError(f"{self._where()}: switches of shape {tuple(switches.shape)} do not "
                             f"match the input {tuple(x.shape)}")
        h, w = x.shape[2:]
        default = ((h - 1) * self.stride[0] - 2 * self.padding[0] + self.kh,
                   (w - 1) * self.stride[1] - 2 * self.padding[1] + self.kw)
        if output_size is None:
            out_h, out_w = default
        else:
            out_h, out_w = tuple(output_size)[-2:]
            if not all(d - s < o < d + s for o, d, s in zip((out_h, out_w), default, self.stride)):
                raise ValueError(f"{self._where()}: output_size {(out_h, out_w)} is not between "
                                 f"{tuple(d - s for d, s in zip(default, self.stride))} and "
                                 f"{tuple(d + s for d, s in zip(default, self.stride))} (exclusive)")
        xp = get_array_module(switches)
        if switches.size and (int(switches.min()) < 0 or int(switches.max()) >= out_h * out_w):
            raise ValueError(f"{self._where()}: a switch lies outside the output plane "
                             f"{(out_h, out_w)}")
        self.switches = xp.asarray(switches, dtype=xp.int64)
        y = F.unpool(x, self.switches, out_h, out_w, accumulate=False)
        self._keep(x, y, False)
        return y

    def gradient(self, dy):
        return F.unpool_backward(dy, self.switches)


class AvgPool2d(_Pool):
    """Average pooling, as ``torch.nn.AvgPool2d`` (count_include_pad=True)."""

    def forward(self, x):
        self._check_input(x)
        self._check_size(x)
        y = self.affine(x)
        self._keep(x, y, False)
        return y

    def affine(self, x, weight=None, bias=None):
        """The map (linear, no parameters)."""
        return F.avg_pool2d(x, *self._geometry())

    def affine_t(self, g, weight, x):
        return F.avg_pool2d_backward(g, x.shape[2], x.shape[3], *self._geometry())

    def gradient(self, dy):
        h, w = self.input_shape[2:]
        return F.avg_pool2d_backward(dy, h, w, *self._geometry())


class Linear(_Parameterized):
    """``y = x Wᵀ + b``, as ``torch.nn.Linear``: x: (N, in) -> y: (N, out); weight (out, in)."""

    family = "linear"

    def __init__(self, in_features, out_features, bias=True, dtype=numpy.float32):
        self.in_features, self.out_features = in_features, out_features
        self.weight = numpy.zeros((out_features, in_features), dtype)
        self.bias = numpy.zeros(out_features, dtype) if bias else None

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"

    def forward(self, x):
        self._check_input(x, 2, self.in_features)
        y = self.affine(x, self._param("weight", x.dtype), self._param("bias", x.dtype))
        self._keep(x, y, self.requires_grad)
        return y

    def affine(self, x, weight, bias=None):
        y = x @ weight.T
        if bias is not None:
            y += bias
        return y

    def affine_t(self, g, weight, x=None):
        return g @ weight

    def gradient(self, dy):
        if self.requires_grad:
            self._set_grads(dy.T @ self.input, None if self.bias is None else dy.sum(axis=0))
        return self.affine_t(dy, self._param("weight", dy.dtype))


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W) in C, H, W order, as ``torch.nn.Flatten``."""

    family = "shape"

    def forward(self, x):
        self._check_input(x, x.ndim if hasattr(x, "ndim") and x.ndim >= 2 else 2)
        y = x.reshape(x.shape[0], int(numpy.prod(x.shape[1:])))
        self.input_shape, self.output_shape = x.shape, y.shape
        return y

    def gradient(self, dy):
        return dy.reshape(self.input_shape)


# ---------------------------------------------------------------------------------------
# layers of the feed-forward style and texture networks (Johnson, Alahi & Fei-Fei 2016;
# Ulyanov, Lebedev, Vedaldi & Lempitsky 2016; instance normalization: Ulyanov, Vedaldi &
# Lempitsky 2016), and the containers that hold their residual and multi-scale graphs
# ---------------------------------------------------------------------------------------

class ReflectionPad2d(Layer):
    """Padding by reflection, as ``torch.nn.ReflectionPad2d``: ``padding`` an int or
    ``(left, right, top, bottom)``; each must be smaller than the input's side."""

    family = "shape"

    def __init__(self, padding):
        if isinstance(padding, (tuple, list)):
            if len(padding) != 4:
                raise ValueError(f"padding must be an int or (left, right, top, bottom), got {padding!r}")
            self.padding = tuple(int(p) for p in padding)
        else:
            self.padding = (int(padding),) * 4
        if min(self.padding) < 0:
            raise ValueError(f"padding must be ≥ 0, got {self.padding}")

    def extra_repr(self):
        return f"{self.padding}"

    def forward(self, x):
        self._check_input(x)
        left, right, top, bottom = self.padding
        h, w = x.shape[2:]
        if max(top, bottom) >= h or max(left, right) >= w:
            raise BadShape(f"{self._where()}: reflection padding {self.padding} needs an input "
                             f"larger than it on each side, got shape {tuple(x.shape)}")
        y = F.reflection_pad2d(x, left, right, top, bottom)
        self._keep(x, y, False)
        return y

    def gradient(self, dy):
        return F.reflection_pad2d_backward(dy, *self.padding)


class InstanceNorm2d(_Parameterized):
    """Instance normalization (Ulyanov, Vedaldi & Lempitsky 2016), as
    ``torch.nn.InstanceNorm2d(num_features, eps=1e-5, affine=...)`` (no running statistics):
    each (sample, channel) plane normalized by its own mean and biased variance, then, when
    ``affine``, scaled by ``weight`` (C,) (init 1) and shifted by ``bias`` (C,) (init 0).
    Keeps the normalized input ``xhat`` and ``1/√(σ² + ε)`` for its gradient. ``bias=False``
    (with ``affine``): the scale only, for a norm whose shift a later normalization removes
    anyway (a parameter whose gradient is 0)."""

    family = "norm"

    def __init__(self, num_features, eps=1e-5, affine=False, bias=True, dtype=numpy.float32):
        self.num_features, self.eps, self.affine = num_features, float(eps), bool(affine)
        self.weight = numpy.ones(num_features, dtype) if affine else None
        self.bias = numpy.zeros(num_features, dtype) if affine and bias else None

    def extra_repr(self):
        extra = "" if not self.affine or self.bias is not None else ", bias=False"
        return f"{self.num_features}, eps={self.eps:g}, affine={self.affine}{extra}"

    def forward(self, x):
        self._check_input(x, 4, self.num_features)
        self.xhat, self.inv_std = F.instance_norm(x, self.eps)
        y = self.xhat
        if self.affine:
            y = y * self._param("weight", x.dtype)[:, None, None]
            if self.bias is not None:
                y += self._param("bias", x.dtype)[:, None, None]
        self._keep(x, y, False)
        return y

    def gradient(self, dy):
        g = dy
        if self.affine:
            if self.requires_grad:
                self._set_grads((dy * self.xhat).sum(axis=(0, 2, 3)),
                                None if self.bias is None else dy.sum(axis=(0, 2, 3)))
            g = dy * self._param("weight", dy.dtype)[:, None, None]
        return F.instance_norm_backward(g, self.xhat, self.inv_std)


class Upsample(Layer):
    """Nearest-neighbour upsampling by an integer factor, as ``torch.nn.Upsample(
    scale_factor=s, mode="nearest")``: (N, C, H, W) -> (N, C, H·sy, W·sx)."""

    family = "shape"

    def __init__(self, scale_factor=2, mode="nearest"):
        if mode != "nearest":
            raise ValueError(f"only mode='nearest' is implemented, got {mode!r}")
        s = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * 2
        if len(s) != 2 or any(int(v) != v or v < 1 for v in s):
            raise ValueError(f"scale_factor must be a positive integer (or a pair), got {scale_factor!r}")
        self.scale = (int(s[0]), int(s[1]))

    def extra_repr(self):
        return f"scale_factor={self.scale}, mode='nearest'"

    def forward(self, x):
        self._check_input(x)
        y = F.upsample_nearest(x, *self.scale)
        self._keep(x, y, False)
        return y

    def gradient(self, dy):
        return F.upsample_nearest_backward(dy, *self.scale)


class Concat(Layer):
    """Channel concatenation of several inputs, as ``torch.cat(xs, dim=1)``: ``forward(xs)``
    takes a list of (N, Cᵢ, H, W) arrays; ``gradient(dy)`` returns the list of their
    gradients."""

    family = "shape"

    def forward(self, xs):
        xs = list(xs)
        if not xs:
            raise ValueError(f"{self._where()}: nothing to concatenate")
        for x in xs:
            self._check_input(x)
            if x.shape[0] != xs[0].shape[0] or x.shape[2:] != xs[0].shape[2:]:
                raise ValueError(f"{self._where()}: inputs of shapes "
                                 f"{[tuple(a.shape) for a in xs]} differ in batch or size")
        y = F.concat_channels(xs)
        self.sizes = [x.shape[1] for x in xs]
        self.input_shape, self.output_shape = [x.shape for x in xs], y.shape
        return y

    def gradient(self, dy):
        return F.split_channels(dy, self.sizes)


class LeakyReLU(Layer):
    """``x`` where ``x > 0``, else ``negative_slope · x``, as ``torch.nn.LeakyReLU`` (Ulyanov
    et al.'s generator). Keeps the mask ``positive = x > 0``."""

    family = "activation"

    def __init__(self, negative_slope=0.01):
        self.negative_slope = float(negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope:g}"

    def forward(self, x):
        self._check_input(x, x.ndim if hasattr(x, "ndim") else 4)
        xp = get_array_module(x)
        self.positive = x > 0
        y = xp.where(self.positive, x, x * x.dtype.type(self.negative_slope))
        self._keep(x, y, False)
        return y

    def gradient(self, dy):
        xp = get_array_module(dy)
        return xp.where(self.positive, dy, dy * dy.dtype.type(self.negative_slope))


class ScaledTanh(Layer):
    """``shift + scale · tanh(x)``: maps a network's output into a range (Johnson et al.'s
    output layer; ``ScaledTanh(127.5, 127.5)`` gives pixels in (0, 255)). Keeps ``tanh(x)``."""

    family = "activation"

    def __init__(self, scale=1.0, shift=0.0):
        self.scale, self.shift = float(scale), float(shift)

    def extra_repr(self):
        return f"scale={self.scale:g}, shift={self.shift:g}"

    def forward(self, x):
        self._check_input(x, x.ndim if hasattr(x, "ndim") else 4)
        xp = get_array_module(x)
        self.tanh = xp.tanh(x)
        y = self.tanh * x.dtype.type(self.scale) + x.dtype.type(self.shift)
        self._keep(x, y, False)
        return y

    def gradient(self, dy):
        t = self.tanh
        return dy * (dy.dtype.type(self.scale) * (1 - t * t))


class ChannelSlice(Layer):
    """Channels ``start:stop`` of the input, as ``x[:, start:stop]`` (each scale of Ulyanov's
    generator takes its own noise channels)."""

    family = "shape"

    def __init__(self, start, stop):
        self.start, self.stop = int(start), int(stop)
        if not 0 <= self.start < self.stop:
            raise ValueError(f"channel slice {self.start}:{self.stop} is empty or negative")

    def extra_repr(self):
        return f"{self.start}, {self.stop}"

    def forward(self, x):
        self._check_input(x)
        if x.shape[1] < self.stop:
            raise ValueError(f"{self._where()}: channels {self.start}:{self.stop} of an input of "
                             f"shape {tuple(x.shape)}")
        y = get_array_module(x).ascontiguousarray(x[:, self.start:self.stop])
        self._keep(x, y, False)
        return y

    def gradient(self, dy):
        xp = get_array_module(dy)
        dx = xp.zeros(self.input_shape, dy.dtype)
        dx[:, self.start:self.stop] = dy
        return dx


class Sequential(Layer):
    """A chain of named sub-layers, as ``torch.nn.Sequential``: one layer of a :class:`Net`
    that holds a block. Its parameters are named by path (``"conv1/weight"``; in a net
    ``"res1/conv1/weight"``), readable with ``getattr(block, "conv1/weight")``; the gradient
    runs every sub-layer's gradient in reverse (each sets its own parameter gradients);
    ``requires_grad`` and ``to`` reach every sub-layer."""

    family = "block"

    def __init__(self, layers):
        items = layers.items() if isinstance(layers, dict) else layers
        self.layers = {}
        for n, layer in items:
            if not isinstance(n, str) or not n or "/" in n:
                raise ValueError(f"sub-layer names must be non-empty strings without '/', got {n!r}")
            if n in self.layers:
                raise ValueError(f"two sub-layers named {n!r}")
            self.layers[n] = layer
        self.name = None

    @property
    def name(self):
        return self.__dict__.get("_name")

    @name.setter
    def name(self, value):
        self.__dict__["_name"] = value
        for n, layer in self.layers.items():
            layer.name = f"{value}/{n}" if value else n

    @property
    def params(self):
        return tuple(f"{n}/{p}" for n, layer in self.layers.items() for p in layer.params)

    def __getattr__(self, attr):
        layers = self.__dict__.get("layers", {})
        head, _, rest = attr.partition("/")
        if not rest or head not in layers:
            raise AttributeError(f"{type(self).__name__} has no attribute {attr!r}")
        return getattr(layers[head], rest)

    @property
    def requires_grad(self):
        return any(getattr(layer, "requires_grad", False) for layer in self.layers.values())

    @requires_grad.setter
    def requires_grad(self, flag):
        for layer in self.layers.values():
            if hasattr(layer, "requires_grad"):
                layer.requires_grad = flag

    def to(self, xp):
        for layer in self.layers.values():
            layer.to(xp)
        return self

    def extra_repr(self):
        return ", ".join(f"{n}={layer!r}" for n, layer in self.layers.items())

    def _run(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def _run_back(self, dy):
        for layer in reversed(list(self.layers.values())):
            dy = layer.backward(dy)
        return dy

    def forward(self, x):
        self._check_input(x)
        y = self._run(x)
        self.input_shape, self.output_shape = x.shape, y.shape
        return y

    def gradient(self, dy):
        return self._run_back(dy)


class Residual(Sequential):
    """``x + body(x)`` with ``body`` the chain of named sub-layers (He et al. 2016's residual
    connection); its gradient is ``dy + body's input gradient of dy``."""

    def forward(self, x):
        self._check_input(x)
        y = self._run(x)
        if y.shape != x.shape:
            raise ValueError(f"{self._where()}: the residual body maps {tuple(x.shape)} to "
                             f"{tuple(y.shape)}; it must keep the shape")
        y = y + x
        self.input_shape, self.output_shape = x.shape, y.shape
        return y

    def gradient(self, dy):
        return dy + self._run_back(dy)


class ResidualBlock(Residual):
    """Johnson et al.'s residual block with instance normalization: ``x + IN(conv(pad(ReLU(
    IN(conv(pad(x)))))))``, two ``k × k`` convolutions of ``channels`` (no bias: the
    normalization after each removes it), reflection padding ``k // 2``. Sub-layers
    ``pad1, conv1, in1, relu1, pad2, conv2, in2``. ``shift=False`` drops ``in2``'s bias (in
    a net that normalizes after its residual blocks, as Johnson's does, that shift is
    removed downstream: its gradient is 0)."""

    def __init__(self, channels, kernel_size=3, shift=True, dtype=numpy.float32):
        k = int(kernel_size)
        super().__init__([
            ("pad1", ReflectionPad2d(k // 2)),
            ("conv1", Conv2d(channels, channels, k, bias=False, dtype=dtype)),
            ("in1", InstanceNorm2d(channels, affine=True, dtype=dtype)),
            ("relu1", ReLU()),
            ("pad2", ReflectionPad2d(k // 2)),
            ("conv2", Conv2d(channels, channels, k, bias=False, dtype=dtype)),
            ("in2", InstanceNorm2d(channels, affine=True, bias=shift, dtype=dtype)),
        ])
        self.channels = channels


class Join(Sequential):
    """Branches run on the same input, their outputs joined along the channels (Ulyanov et
    al.'s join of a coarser scale, upsampled, with the next finer one): ``forward(x) =
    concat([branch(x) for branch])``; the gradient is the sum of the branches' input
    gradients. The sub-layers are the branches (usually :class:`Sequential`)."""

    def __init__(self, branches):
        super().__init__(branches)
        self.concat = Concat()

    def forward(self, x):
        self._check_input(x)
        y = self.concat.forward([layer.forward(x) for layer in self.layers.values()])
        self.input_shape, self.output_shape = x.shape, y.shape
        return y

    def gradient(self, dy):
        dx = None
        for layer, g in zip(self.layers.values(), self.concat.gradient(dy)):
            g = layer.backward(g)
            dx = g if dx is None else dx + g
        return dx
