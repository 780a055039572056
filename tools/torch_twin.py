"""A PyTorch twin of an nnviz ``Net``: the independent reference that tests and
``tools/compare_torch.py`` check nnviz against.

The twin is a chain of ``torch.nn.functional`` calls (conv2d, relu, max_pool2d, avg_pool2d,
flatten, linear) holding copies of the net's weights, in float64 (default) or float32. Its
``forward`` returns every named layer's output, so that torch's autograd gives the gradient
at any layer.

The three ReLU backward rules are custom ``torch.autograd.Function``s written from their
formulas (design contract), selectable per ReLU name as in ``Net.backward(rule=...)``:

- ``backprop`` (Simonyan et al. 2013): ``dx = dy * (x > 0)``
- ``deconvnet`` (Zeiler & Fergus 2014): ``dx = dy * (dy > 0)``
- ``guided`` (Springenberg et al. 2015): ``dx = dy * (x > 0) * (dy > 0)``

:meth:`TorchTwin.project` is a second, explicit top-down pass without autograd, Zeiler's
deconvnet as written in the paper: ``F.conv_transpose2d`` with the same filters, the rule at
each ReLU, and ``F.max_unpool2d`` with the indices from torch's ``return_indices`` (or fixed
top-left positions, ``switches="fixed"``).

Usage::

    t = twin(net, dtype=torch.float64)
    out = t.forward(x, until="conv5_3", rule={"relu5_3": "guided"})   # name -> tensor
"""
from collections import OrderedDict

import numpy
import torch
import torch.nn.functional as F

RULES = ("backprop", "deconvnet", "guided")


class BackpropReLU(torch.autograd.Function):
    """ReLU whose backward is the gradient: ``dy * (x > 0)``."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return dy * (x > 0).to(dy.dtype)


class DeconvnetReLU(torch.autograd.Function):
    """ReLU whose backward rectifies the signal (Zeiler & Fergus 2014): ``dy * (dy > 0)``."""

    @staticmethod
    def forward(ctx, x):
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, dy):
        return dy * (dy > 0).to(dy.dtype)


class GuidedReLU(torch.autograd.Function):
    """Guided backprop (Springenberg et al. 2015): ``dy * (x > 0) * (dy > 0)``."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return dy * ((x > 0) & (dy > 0)).to(dy.dtype)


RELU_FUNCTIONS = {"backprop": BackpropReLU, "deconvnet": DeconvnetReLU, "guided": GuidedReLU}


def relu_rule(x, rule):
    """Apply the ReLU of backward rule ``rule`` to tensor ``x``."""
    if rule not in RELU_FUNCTIONS:
        raise ValueError(f"unknown rule {rule!r}: expected one of {', '.join(RULES)}")
    return RELU_FUNCTIONS[rule].apply(x)


def _tensor(a, dtype):
    # nnviz arrays may live on a GPU (CuPy): bring them to the host by their own .get()
    if hasattr(a, "get") and not isinstance(a, numpy.ndarray):
        a = a.get()
    return torch.from_numpy(numpy.array(a, dtype=numpy.float64)).to(dtype)


class TorchTwin:
    """The PyTorch twin of an nnviz ``Net`` (see the module docstring).

    ``ops``: ordered name -> (kind, params) with kind one of ``conv``, ``relu``, ``maxpool``,
    ``avgpool``, ``flatten``, ``linear``.
    """

    def __init__(self, net, dtype=torch.float64):
        self.dtype = dtype
        self.ops = OrderedDict()
        for name, layer in net.layers.items():
            kind = type(layer).__name__
            if kind == "Conv2d":
                self.ops[name] = ("conv", dict(
                    weight=_tensor(layer.weight, dtype),
                    bias=None if layer.bias is None else _tensor(layer.bias, dtype),
                    stride=tuple(layer.stride), padding=tuple(layer.padding),
                    dilation=tuple(layer.dilation)))
            elif kind == "ReLU":
                self.ops[name] = ("relu", {})
            elif kind == "MaxPool2d":
                self.ops[name] = ("maxpool", dict(kernel_size=(layer.kh, layer.kw),
                                                  stride=tuple(layer.stride),
                                                  padding=tuple(layer.padding)))
            elif kind == "AvgPool2d":
                self.ops[name] = ("avgpool", dict(kernel_size=(layer.kh, layer.kw),
                                                  stride=tuple(layer.stride),
                                                  padding=tuple(layer.padding)))
            elif kind == "Flatten":
                self.ops[name] = ("flatten", {})
            elif kind == "Linear":
                self.ops[name] = ("linear", dict(
                    weight=_tensor(layer.weight, dtype),
                    bias=None if layer.bias is None else _tensor(layer.bias, dtype)))
            else:
                raise TypeError(f"layer {name!r}: no torch twin for {kind}")
        self.indices = OrderedDict()   # maxpool name -> torch's return_indices of the last forward
        self.shapes = OrderedDict()    # name -> input shape of the last forward

    @property
    def names(self):
        return list(self.ops)

    def _rules(self, rule):
        relus = [n for n, (k, _) in self.ops.items() if k == "relu"]
        if isinstance(rule, str):
            return {n: rule for n in relus}
        rules = {n: "backprop" for n in relus}
        for n, r in (rule or {}).items():
            if n not in rules:
                raise KeyError(f"{n!r} is not a ReLU")
            rules[n] = r
        return rules

    def tensor(self, x, requires_grad=False):
        """An nnviz array (NumPy or CuPy) as a tensor of the twin's dtype."""
        t = x.to(self.dtype) if torch.is_tensor(x) else _tensor(x, self.dtype)
        return t.detach().requires_grad_(requires_grad)

    def forward(self, x, until=None, rule="backprop"):
        """Run ``x: (N, C, H, W)`` (tensor, or NumPy/CuPy array) up to and including ``until``;
        returns an ordered dict name -> output tensor (part of the autograd graph). ``rule``:
        the backward rule of every ReLU, or a dict ReLU name -> rule (others: backprop)."""
        if until is not None and until not in self.ops:
            raise KeyError(f"unknown layer {until!r}")
        rules = self._rules(rule)
        if not torch.is_tensor(x):
            x = self.tensor(x)
        out = OrderedDict()
        self.indices = OrderedDict()
        self.shapes = OrderedDict()
        for name, (kind, p) in self.ops.items():
            self.shapes[name] = tuple(x.shape)
            if kind == "conv":
                x = F.conv2d(x, p["weight"], p["bias"], p["stride"], p["padding"], p["dilation"])
            elif kind == "relu":
                x = relu_rule(x, rules[name])
            elif kind == "maxpool":
                x, idx = F.max_pool2d(x, p["kernel_size"], p["stride"], p["padding"],
                                      return_indices=True)
                self.indices[name] = idx
            elif kind == "avgpool":
                x = F.avg_pool2d(x, p["kernel_size"], p["stride"], p["padding"])
            elif kind == "flatten":
                x = torch.flatten(x, 1)
            elif kind == "linear":
                x = F.linear(x, p["weight"], p["bias"])
            out[name] = x
            if name == until:
                break
        return out

    def gradient(self, x, start, seed, rule="backprop"):
        """Input gradient by torch autograd of ``(out[start] * seed).sum()`` (``seed`` a tensor
        or array shaped as the output of ``start``) with the given ReLU rules."""
        xt = self.tensor(x, requires_grad=True)
        out = self.forward(xt, until=start, rule=rule)
        seed = self.tensor(seed)
        (g,) = torch.autograd.grad((out[start] * seed).sum(), xt)
        return g

    def project(self, x, start, seed, rule="deconvnet", switches="recorded"):
        """Explicit top-down pass (no autograd) from ``seed`` at the output of ``start``:
        transposed convolutions with the same filters, the rule at every ReLU, and
        ``F.max_unpool2d`` through torch's ``return_indices`` (``switches="recorded"``) or to
        the top-left of each window (``switches="fixed"``). Returns the map at the input."""
        rules = self._rules(rule)
        with torch.no_grad():
            acts = self.forward(self.tensor(x), until=start)
            names = list(acts)
            dy = self.tensor(seed)
            for k in range(len(names) - 1, -1, -1):
                name = names[k]
                kind, p = self.ops[name]
                in_shape = self.shapes[name]
                if kind == "conv":
                    out_pad = _output_padding(in_shape[2:], dy.shape[2:], p)
                    dy = F.conv_transpose2d(dy, p["weight"], None, p["stride"], p["padding"],
                                            out_pad, 1, p["dilation"])
                elif kind == "relu":
                    x_in = acts[names[k - 1]] if k > 0 else self.tensor(x)
                    r = rules[name]
                    if r == "backprop":
                        dy = dy * (x_in > 0)
                    elif r == "deconvnet":
                        dy = dy * (dy > 0)
                    else:
                        dy = dy * ((x_in > 0) & (dy > 0))
                elif kind == "maxpool":
                    idx = self.indices[name]
                    if switches == "fixed":
                        idx = fixed_switches(in_shape, dy.shape, p)
                    dy = F.max_unpool2d(dy, idx, p["kernel_size"], p["stride"], p["padding"],
                                        output_size=in_shape[2:])
                elif kind == "avgpool":
                    xin = torch.zeros(in_shape, dtype=self.dtype, requires_grad=True)
                    with torch.enable_grad():
                        y = F.avg_pool2d(xin, p["kernel_size"], p["stride"], p["padding"])
                        (dy,) = torch.autograd.grad((y * dy).sum(), xin)
                elif kind == "flatten":
                    dy = dy.reshape(in_shape)
                elif kind == "linear":
                    dy = dy @ p["weight"]
        return dy


def _output_padding(in_hw, out_hw, p):
    """The output_padding that makes conv_transpose2d give back the conv's input size."""
    pads = []
    for size, o, k, s, pd, d in zip(in_hw, out_hw, p["weight"].shape[2:], p["stride"],
                                    p["padding"], p["dilation"]):
        pads.append(size - ((o - 1) * s - 2 * pd + d * (k - 1) + 1))
    return tuple(pads)


def fixed_switches(in_shape, out_shape, p):
    """Indices of the top-left pixel of each pooling window (clamped into the plane), in
    torch's ``return_indices`` layout: (N, C, out_h, out_w) flat indices into H*W."""
    n, c, h, w = in_shape
    oh, ow = out_shape[2:]
    (sy, sx), (py, px) = p["stride"], p["padding"]
    rows = (torch.arange(oh) * sy - py).clamp(0, h - 1)
    cols = (torch.arange(ow) * sx - px).clamp(0, w - 1)
    idx = rows[:, None] * w + cols[None, :]
    return idx.expand(n, c, oh, ow).contiguous()


def twin(net, dtype=torch.float64):
    """The PyTorch twin of ``net`` (same layers, same weights) in ``dtype``."""
    return TorchTwin(net, dtype)
