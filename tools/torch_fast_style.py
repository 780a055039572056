"""PyTorch twins of nnviz's feed-forward style networks and of their training
(:mod:`nnviz.methods.fast_style`): the independent reference that tests/test_fast_style.py and
tools/bench_fast_style.py check nnviz against.

- :func:`module` mirrors any nnviz layer as ``torch.nn`` modules with copies of its
  parameters (``nn.Conv2d``, ``nn.ReflectionPad2d``, ``nn.InstanceNorm2d``, ``nn.Upsample``,
  ``nn.LeakyReLU``, ``nn.AvgPool2d``, ``torch.cat``; a residual block as ``x + body(x)``);
  :func:`twin` a whole ``Net`` as an ``nn.Sequential`` whose parameter names, with ``.`` read
  as ``/``, are nnviz's keys.
- :func:`perceptual_loss` is Johnson et al.'s loss written from the formulas of design.md
  (Gatys's content, Gram and TV terms, averaged over the batch) on a VGG twin from
  ``torch_twin``; autograd gives every gradient, ``torch.optim.Adam`` steps.
"""
from collections import OrderedDict

import numpy
import torch
from torch import nn

from nnviz.vgg import CAFFE_MEAN_BGR, TORCH_MEAN_RGB, TORCH_STD_RGB


def _t(a, dtype):
    if hasattr(a, "get") and not isinstance(a, numpy.ndarray):
        a = a.get()
    return torch.from_numpy(numpy.array(a, dtype=numpy.float64)).to(dtype)


class ScaledTanh(nn.Module):
    def __init__(self, scale, shift):
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x):
        return self.shift + self.scale * torch.tanh(x)


class ChannelSlice(nn.Module):
    def __init__(self, start, stop):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x):
        return x[:, self.start:self.stop]


class Residual(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


class Join(nn.Module):
    def __init__(self, branches):
        super().__init__()
        self.branches = nn.ModuleDict(branches)

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches.values()], dim=1)


def _copy(mod, layer, dtype, names=("weight", "bias")):
    for p in names:
        a = getattr(layer, p, None)
        if a is not None:
            getattr(mod, p).data = _t(a, dtype)
    return mod


def module(layer, dtype=torch.float64):
    """The ``torch.nn`` twin of one nnviz layer (containers recursively)."""
    kind = type(layer).__name__
    if kind in ("Sequential", "Residual", "ResidualBlock", "Join"):
        subs = OrderedDict((n, module(sub, dtype)) for n, sub in layer.layers.items())
        if kind == "Join":
            return Join(subs)
        seq = nn.Sequential(subs)
        return Residual(seq) if kind != "Sequential" else seq
    if kind == "Conv2d":
        m = nn.Conv2d(layer.in_channels, layer.out_channels, (layer.kh, layer.kw), layer.stride,
                      layer.padding, layer.dilation, bias=layer.bias is not None)
        return _copy(m.to(dtype), layer, dtype)
    if kind == "InstanceNorm2d":
        m = nn.InstanceNorm2d(layer.num_features, eps=layer.eps, affine=layer.affine).to(dtype)
        if layer.affine and layer.bias is None:       # scale only: the shift stays 0
            m.bias.requires_grad_(False)
        return _copy(m, layer, dtype)
    if kind == "ReflectionPad2d":
        return nn.ReflectionPad2d(layer.padding)
    if kind == "ReLU":
        return nn.ReLU()
    if kind == "LeakyReLU":
        return nn.LeakyReLU(layer.negative_slope)
    if kind == "Upsample":
        return nn.Upsample(scale_factor=tuple(float(s) for s in layer.scale), mode="nearest")
    if kind == "ScaledTanh":
        return ScaledTanh(layer.scale, layer.shift)
    if kind == "ChannelSlice":
        return ChannelSlice(layer.start, layer.stop)
    if kind == "AvgPool2d":
        return nn.AvgPool2d((layer.kh, layer.kw), layer.stride, layer.padding)
    raise TypeError(f"no torch twin for {kind}")


def twin(net, dtype=torch.float64):
    """An ``nn.Sequential`` twin of a feed-forward style ``Net`` (same layers, same weights)."""
    return nn.Sequential(OrderedDict((n, module(layer, dtype)) for n, layer in net.layers.items()))


def key(torch_name):
    """nnviz's parameter key of a torch parameter name (``res1.body.conv1.weight`` ->
    ``res1/conv1/weight``; ``scale0.join.branches.coarser…`` likewise)."""
    parts = [p for p in torch_name.split(".") if p not in ("body", "branches")]
    return "/".join(parts)


def named_parameters(mod):
    """``{nnviz key: parameter}`` of the trained parameters of a twin."""
    return {key(n): p for n, p in mod.named_parameters() if p.requires_grad}


def to_vgg(y, preprocessing="caffe"):
    """RGB pixels -> the VGG's preprocessed input (as nnviz's Net.preprocess, on tensors)."""
    dt = y.dtype
    if preprocessing == "caffe":
        return y.flip(1) - torch.from_numpy(CAFFE_MEAN_BGR).to(dt)[:, None, None]
    mean = torch.from_numpy(TORCH_MEAN_RGB).to(dt)[:, None, None]
    std = torch.from_numpy(TORCH_STD_RGB).to(dt)[:, None, None]
    return (y / 255 - mean) / std


def gram(f):
    """(B, C, h, w) -> (B, C, C): F Fᵀ / M per image."""
    b, c = f.shape[:2]
    f = f.reshape(b, c, -1)
    return f @ f.transpose(1, 2) / f.shape[2]


def style_targets(vgg_twin, style, layers, preprocessing="caffe", dtype=torch.float64):
    """Gram matrices of an RGB uint8 style image ``(h, w, 3)`` at ``layers``."""
    s = torch.from_numpy(numpy.asarray(style, numpy.float64).transpose(2, 0, 1)[None]).to(dtype)
    with torch.no_grad():
        acts = vgg_twin.forward(to_vgg(s, preprocessing), until=max(layers, key=vgg_twin.names.index))
    return {n: gram(acts[n])[0] for n in layers}


def perceptual_loss(vgg_twin, y, content, A, content_layers, style_layers, content_weight,
                    style_weight, tv_weight, preprocessing="caffe"):
    """Johnson et al.'s loss of pixels ``y`` (B, 3, H, W) (design.md's formulas, batch mean):
    returns (total, {content, style, tv})."""
    b = y.shape[0]
    names = vgg_twin.names
    terms = {"content": y.new_zeros(()), "style": y.new_zeros(()), "tv": y.new_zeros(())}
    c_layers = list(content_layers) if content_weight else []
    s_layers = list(style_layers) if style_weight else []
    if c_layers and content is not None:
        with torch.no_grad():
            P = vgg_twin.forward(to_vgg(content, preprocessing), until=max(c_layers, key=names.index))
    if c_layers or s_layers:
        acts = vgg_twin.forward(to_vgg(y, preprocessing), until=max(c_layers + s_layers, key=names.index))
        for n in c_layers:
            terms["content"] = terms["content"] + content_weight * 0.5 * ((acts[n] - P[n]) ** 2).sum() / b
        for n in s_layers:
            c = acts[n].shape[1]
            d = gram(acts[n]) - A[n]
            terms["style"] = terms["style"] + style_weight / len(s_layers) * (d * d).sum() / (4 * c * c) / b
    if tv_weight:
        tv = ((y[:, :, 1:] - y[:, :, :-1]) ** 2).sum() + ((y[:, :, :, 1:] - y[:, :, :, :-1]) ** 2).sum()
        terms["tv"] = tv_weight * tv / b
    return terms["content"] + terms["style"] + terms["tv"], terms
