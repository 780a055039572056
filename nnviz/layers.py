"""Layers with hand-written forward and backward passes.

Every layer has ``forward(x) -> y``, which keeps exactly what its backward rules need (named
attributes: ``input``, ``positive``, ``switches``, ``input_shape``), ``gradient(dy) -> dx``
(its gradient, written out), and ``backward(dy, rule="backprop") -> dx``, which asks the rule
(:mod:`nnviz.rules`; a rule name or object, default the gradient) how to pass ``dy`` down.
Parameterized layers hold ``weight`` and ``bias`` (PyTorch layouts: conv ``(O, C, kh, kw)``,
transposed conv ``(C, O, kh, kw)``, linear ``(out, in)``) and, after a gradient, ``grad_weight``
and ``grad_bias`` unless ``requires_grad`` is False. A layer computes in its input's dtype;
parameters are cast to it.
"""
import numpy

from . import functional as F
from . import rules as R
from .backend import get_array_module


class Layer:
    """Base class: a name (set by the net that holds the layer) for error messages."""

    name = None
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
        self._check_grad(dy)
        if not rule.needs_input:
            return rule.backward(self, dy)
        x = getattr(self, "input", None) if x is None else x
        if x is None:
            raise RuntimeError(f"{self._where()}: rule {rule.name!r} needs the layer's forward "
                               f"input: pass x=, or run the layer in a Net")
        if tuple(x.shape) != tuple(self.input_shape):
            raise ValueError(f"{self._where()}: input of shape {tuple(x.shape)} for rule "
                             f"{rule.name!r} does not match the forward input {tuple(self.input_shape)}")
        return rule.backward(self, dy, x)

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

    def _check_grad(self, dy):
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
            raise ValueError(f"{self._where()}: input of shape {tuple(x.shape)} is smaller than the "
                             f"(dilated) kernel {(self.kh, self.kw)} with padding {self.padding}")
        y = F.conv2d(x, self._param("weight", x.dtype), self._param("bias", x.dtype),
                     self.stride, self.padding, self.dilation)
        self._keep(x, y, self.requires_grad)
        return y

    def gradient(self, dy):
        if self.requires_grad:
            gw = F.conv2d_grad_weight(self.input, dy, self.kh, self.kw, self.stride,
                                      self.padding, self.dilation)
            self._set_grads(gw, None if self.bias is None else dy.sum(axis=(0, 2, 3)))
        return F.conv_transpose2d(dy, self._param("weight", dy.dtype), None, self.stride,
                                  self.padding, self.dilation, output_size=self.input_shape[2:])


class ConvTranspose2d(_Parameterized):
    """Transposed convolution, as ``torch.nn.ConvTranspose2d`` (groups=1).

    x: (N, C, H, W) -> y: (N, O, H', W') with H' = (H-1)*sy - 2*ph + dy*(kh-1) + oph + 1;
    weight (C, O, kh, kw); bias (O,). Its input gradient is a convolution with the same filters.
    """

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
        y = F.conv_transpose2d(x, self._param("weight", x.dtype), self._param("bias", x.dtype),
                               self.stride, self.padding, self.dilation,
                               output_padding=self.output_padding)
        self._keep(x, y, self.requires_grad)
        return y

    def gradient(self, dy):
        if self.requires_grad:
            # the transposed conv is the adjoint of conv2d(., weight): exchange x and dy
            gw = F.conv2d_grad_weight(dy, self.input, self.kh, self.kw, self.stride,
                                      self.padding, self.dilation)
            self._set_grads(gw, None if self.bias is None else dy.sum(axis=(0, 2, 3)))
        return F.conv2d(dy, self._param("weight", dy.dtype), None, self.stride, self.padding,
                        self.dilation)


class ReLU(Layer):
    """``max(x, 0)``; keeps the mask ``positive = x > 0`` for its backward rules
    (:mod:`nnviz.rules`: backprop, deconvnet, guided, pass)."""

    def forward(self, x):
        self._check_input(x, x.ndim if hasattr(x, "ndim") else 4)
        y, self.positive = F.relu(x)
        self.input_shape, self.output_shape = x.shape, y.shape
        return y

    def gradient(self, dy):
        return dy * self.positive


class _Pool(Layer):
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
            raise ValueError(f"{self._where()}: input of shape {tuple(x.shape)} is smaller than "
                             f"the pooling window {(self.kh, self.kw)}")


class MaxPool2d(_Pool):
    """Max pooling, as ``torch.nn.MaxPool2d``; records ``switches`` (N, C, out_h, out_w): the
    index of each window's maximum in the flattened H×W input plane (PyTorch's
    ``return_indices``). The gradient goes to the switches (Zeiler's unpooling); the rule
    ``no_switches`` sends it to each window's first pixel instead."""

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
        h, w = self.input_shape[2:]
        return F.max_pool2d_backward(dy, self.switches, h, w, self.overlapping)


class MaxUnpool2d(_Pool):
    """Inverse of max pooling, as ``torch.nn.MaxUnpool2d``: ``forward(x, switches,
    output_size=None)`` puts each value at its switch in a zero map."""

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
        y = F.avg_pool2d(x, *self._geometry())
        self._keep(x, y, False)
        return y

    def gradient(self, dy):
        h, w = self.input_shape[2:]
        return F.avg_pool2d_backward(dy, h, w, *self._geometry())


class Linear(_Parameterized):
    """``y = x Wᵀ + b``, as ``torch.nn.Linear``: x: (N, in) -> y: (N, out); weight (out, in)."""

    def __init__(self, in_features, out_features, bias=True, dtype=numpy.float32):
        self.in_features, self.out_features = in_features, out_features
        self.weight = numpy.zeros((out_features, in_features), dtype)
        self.bias = numpy.zeros(out_features, dtype) if bias else None

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"

    def forward(self, x):
        self._check_input(x, 2, self.in_features)
        y = x @ self._param("weight", x.dtype).T
        if self.bias is not None:
            y += self._param("bias", x.dtype)
        self._keep(x, y, self.requires_grad)
        return y

    def gradient(self, dy):
        if self.requires_grad:
            self._set_grads(dy.T @ self.input, None if self.bias is None else dy.sum(axis=0))
        return dy @ self._param("weight", dy.dtype)


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W) in C, H, W order, as ``torch.nn.Flatten``."""

    def forward(self, x):
        self._check_input(x, x.ndim if hasattr(x, "ndim") and x.ndim >= 2 else 2)
        y = x.reshape(x.shape[0], int(numpy.prod(x.shape[1:])))
        self.input_shape, self.output_shape = x.shape, y.shape
        return y

    def gradient(self, dy):
        return dy.reshape(self.input_shape)
