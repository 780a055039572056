"""Layer-wise relevance propagation (nnviz.rules, nnviz.methods.lrp) against zennit 0.5.1 and
Captum, float64.

Oracles: zennit's rules as hooks on torch modules holding the same weights (every rule on a
single Conv2d, ConvTranspose2d, Linear and pooling layer; every rule and composite on VGG16
with random and with the default weights, a per-layer dict, class targets at 224 px), zennit's
own placement of rules by its composites, Captum's LRP where it implements the same rule (ε,
γ, α1β0, identity; the conditions of equality are in the test docstrings and the README), and
PyTorch autograd for LRP-0 = gradient × input and for the score that relevance conserves.
Inputs are random images (no pooling ties, no zero outputs)."""
import re
import sys
import types
from collections import OrderedDict


def _stub_torchvision():
    """zennit imports torchvision for its ResNet canonizers only, and the registry's
    torchvision cannot load beside the CPU torch: a stub with the two classes it names."""
    if "torchvision" in sys.modules:
        return
    tv, models, resnet = (types.ModuleType(n) for n in
                          ("torchvision", "torchvision.models", "torchvision.models.resnet"))
    resnet.Bottleneck = type("Bottleneck", (), {})
    resnet.BasicBlock = type("BasicBlock", (), {})
    tv.models, models.resnet = models, resnet
    sys.modules.update({"torchvision": tv, "torchvision.models": models,
                        "torchvision.models.resnet": resnet})


_stub_torchvision()

import h5py  # noqa: E402
import numpy  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import zennit.composites as ZC  # noqa: E402
import zennit.core as ZCore  # noqa: E402
import zennit.rules as ZR  # noqa: E402
from conftest import rel_err  # noqa: E402
from torch_twin import twin  # noqa: E402
from zennit.types import Activation, Convolution  # noqa: E402

import nnviz  # noqa: E402
from nnviz import layers as L  # noqa: E402
from nnviz import methods, render  # noqa: E402
from nnviz import rules as R  # noqa: E402
from nnviz.cli import main  # noqa: E402
from nnviz.methods.lrp import totals  # noqa: E402

TOL = 1e-8      # the bound: relative to the largest entry


# ---------------------------------------------------------------------------------------
# torch counterparts of nnviz layers and nets, and zennit's relevance
# ---------------------------------------------------------------------------------------

def _t(a):
    return torch.tensor(numpy.asarray(nnviz.backend.to_numpy(a), dtype=numpy.float64))


def torch_layer(layer, weights=True):
    """The torch module of an nnviz layer, float64, same parameters (``weights=False``: on
    the meta device, without them, for what depends on types only)."""
    kind = type(layer).__name__
    where = {} if weights else {"device": "meta"}
    if kind == "Conv2d":
        m = torch.nn.Conv2d(layer.in_channels, layer.out_channels, (layer.kh, layer.kw),
                            layer.stride, layer.padding, layer.dilation, bias=layer.bias is not None,
                            **where)
    elif kind == "ConvTranspose2d":
        m = torch.nn.ConvTranspose2d(layer.in_channels, layer.out_channels, (layer.kh, layer.kw),
                                     layer.stride, layer.padding, layer.output_padding,
                                     bias=layer.bias is not None, dilation=layer.dilation)
    elif kind == "Linear":
        m = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                            **where)
    elif kind == "ReLU":
        return torch.nn.ReLU()
    elif kind == "MaxPool2d":
        return torch.nn.MaxPool2d((layer.kh, layer.kw), layer.stride, layer.padding)
    elif kind == "AvgPool2d":
        return torch.nn.AvgPool2d((layer.kh, layer.kw), layer.stride, layer.padding)
    elif kind == "Flatten":
        return torch.nn.Flatten()
    else:
        raise TypeError(kind)
    if not weights:
        return m
    m = m.double()
    m.weight.data = _t(layer.weight)
    if layer.bias is not None:
        m.bias.data = _t(layer.bias)
    return m


def torch_net(net, until, weights=True):
    """``torch.nn.Sequential`` of the net's layers up to ``until``, under the same names (so
    that zennit's name maps and nnviz's dicts speak of the same layers)."""
    mods = OrderedDict()
    for name, layer in net.layers.items():
        mods[name] = torch_layer(layer, weights)
        if name == until:
            break
    return torch.nn.Sequential(mods)


def zennit_relevance(model, x, composite, mask, seed):
    """zennit's relevance at the input: the composite registered on ``model``, the gradient
    of the output seeded with ``mask`` (``seed="one"``) or ``mask * output`` (``"score"``),
    zennit's ``attr_output``."""
    xt = _t(x).requires_grad_(True)
    m = _t(mask)
    with composite.context(model) as hooked:
        out = hooked(xt)
        (r,) = torch.autograd.grad(out, xt, m * out if seed == "score" else m)
    return r.numpy()


def _image(net, size, seed=0):
    img = numpy.random.default_rng(seed).uniform(0, 255, (1, size, size, 3))
    return net.preprocess(img).astype(numpy.float64)


def _mask(net, x, target):
    t = nnviz.targets.parse(target)
    act = net.forward(x, until=t.layer)
    return t.seed(act)


# ---------------------------------------------------------------------------------------
# every rule on a single layer
# ---------------------------------------------------------------------------------------

def _filled(layer, rng):
    layer.weight = rng.standard_normal(layer.weight.shape)
    layer.bias = rng.standard_normal(layer.bias.shape)
    return layer


def _single_layers():
    rng = numpy.random.default_rng(11)
    return {
        "conv": (_filled(L.Conv2d(3, 5, 3, stride=2, padding=1, dtype=numpy.float64), rng),
                 rng.standard_normal((2, 3, 9, 8))),
        "conv-dilated": (_filled(L.Conv2d(4, 3, (3, 2), stride=(1, 2), padding=(2, 0), dilation=2,
                                          dtype=numpy.float64), rng), rng.standard_normal((1, 4, 8, 9))),
        "transposed": (_filled(L.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1,
                                                 dtype=numpy.float64), rng),
                       rng.standard_normal((2, 3, 5, 6))),
        "linear": (_filled(L.Linear(7, 4, dtype=numpy.float64), rng), rng.standard_normal((3, 7))),
    }


def _box(x):
    c = numpy.arange(x.shape[1]).reshape(1, -1, 1, 1)
    return (-1.5 - 0.25 * c, 2.0 + 0.5 * c) if x.ndim == 4 else (-1.5, 2.0)


RULE_PAIRS = {
    "epsilon": (lambda b: R.Epsilon(), lambda b: ZR.Epsilon()),
    "epsilon-0.3-nobias": (lambda b: R.Epsilon(0.3, zero_params="bias"),
                           lambda b: ZR.Epsilon(0.3, zero_params="bias")),
    "epsilon-rms": (lambda b: R.Epsilon(R.Stabilizer(0.1, norm_scale=True)),
                    lambda b: ZR.Epsilon(ZCore.Stabilizer(0.1, norm_scale=True))),
    "epsilon-clip": (lambda b: R.Epsilon(R.Stabilizer(0.5, clip=True)),
                     lambda b: ZR.Epsilon(ZCore.Stabilizer(0.5, clip=True))),
    "gamma": (lambda b: R.Gamma(), lambda b: ZR.Gamma()),
    "gamma-0.7-nobias": (lambda b: R.Gamma(0.7, 1e-3, ["bias"]),
                         lambda b: ZR.Gamma(0.7, 1e-3, ["bias"])),
    "zplus": (lambda b: R.ZPlus(), lambda b: ZR.ZPlus()),
    "zplus-noweight": (lambda b: R.ZPlus(zero_params="weight"),
                       lambda b: ZR.ZPlus(zero_params="weight")),
    "alpha2beta1": (lambda b: R.AlphaBeta(), lambda b: ZR.AlphaBeta()),
    "alpha1beta0": (lambda b: R.AlphaBeta(1, 0, stabilizer=1e-4),
                    lambda b: ZR.AlphaBeta(1, 0, stabilizer=1e-4)),
    "zbox": (lambda b: R.ZBox(*b), lambda b: ZR.ZBox(*(_t(v) if hasattr(v, "shape") else v
                                                        for v in b))),
    "flat": (lambda b: R.Flat(), lambda b: ZR.Flat()),
    "wsquare": (lambda b: R.WSquare(), lambda b: ZR.WSquare()),
}


@pytest.mark.parametrize("which", list(_single_layers()))
@pytest.mark.parametrize("rule", list(RULE_PAIRS))
def test_every_rule_on_a_single_layer_matches_zennit(which, rule):
    """Each LRP rule (with its options: ε, γ, α/β, stabilizer as a number, rms-scaled or
    clipping, zero_params) on a convolution (strided, dilated), a transposed convolution and
    a linear layer, against zennit's rule hooked on the torch module."""
    layer, x = _single_layers()[which]
    ours, theirs = RULE_PAIRS[rule]
    y = layer.forward(x)
    dy = numpy.random.default_rng(5).standard_normal(y.shape)
    got = layer.backward(dy, ours(_box(x)), x=x)
    module = torch_layer(layer)
    ref = zennit_relevance(module, x, ZC.LayerMapComposite([(type(module), theirs(_box(x)))]), dy,
                           "one")
    assert got.shape == x.shape
    assert rel_err(got, ref) < 1e-12


@pytest.mark.parametrize("pool", ["avg", "max", "max-overlapping"])
def test_norm_and_proportional_on_pooling_match_zennit(pool):
    """zennit's Norm on average pooling and on max pooling (the max as it is: Captum's ε-rule
    there); the proportional max-pool rule is zennit's Norm on an average pooling of the same
    window."""
    rng = numpy.random.default_rng(3)
    x = rng.uniform(0.1, 1.0, (2, 3, 9, 9))
    layer = {"avg": L.AvgPool2d(3, 2, 1), "max": L.MaxPool2d(2),
             "max-overlapping": L.MaxPool2d(3, 2, 1)}[pool]
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    module = torch_layer(layer)
    ref = zennit_relevance(module, x, ZC.LayerMapComposite([(type(module), ZR.Norm())]), dy, "one")
    assert rel_err(layer.backward(dy, R.Norm(), x=x), ref) < 1e-12
    if pool != "avg":
        window = torch.nn.AvgPool2d((layer.kh, layer.kw), layer.stride, layer.padding)
        ref = zennit_relevance(window, x, ZC.LayerMapComposite([(torch.nn.AvgPool2d, ZR.Norm())]),
                               dy, "one")
        assert rel_err(layer.backward(dy, "proportional", x=x), ref) < 1e-12


def test_a_layer_needs_its_input_for_lrp():
    """Layers keep their input only with requires_grad; an LRP rule then needs x=."""
    conv = L.Conv2d(3, 4, 3, padding=1, dtype=numpy.float64)
    conv.requires_grad = False
    y = conv.forward(numpy.ones((1, 3, 5, 5)))
    assert conv.input is None
    with pytest.raises(RuntimeError, match="needs the layer's forward input"):
        conv.backward(y, R.Epsilon())
    with pytest.raises(ValueError, match="does not match the forward input"):
        conv.backward(y, R.Epsilon(), x=numpy.ones((1, 3, 6, 6)))
    with pytest.raises(ValueError, match="has no bounds"):
        conv.backward(y, "zbox", x=numpy.ones((1, 3, 5, 5)))


# ---------------------------------------------------------------------------------------
# a layer that nnviz has never seen: every rule through its own map
# ---------------------------------------------------------------------------------------

class EinsumPointwise:
    """A 1×1 convolution written with einsum, only here: it offers what the rules read
    (``family``, ``params``, ``affine``, ``affine_t``) and a forward and gradient, and nothing
    of nnviz.layers. Weight (O, C), bias (O,)."""

    family = "convolution"
    params = ("weight", "bias")

    def __init__(self, weight, bias):
        self.weight, self.bias, self.name = weight, bias, None

    def affine(self, x, weight, bias=None):
        y = numpy.einsum("oc,nchw->nohw", weight, x)
        return y if bias is None else y + bias[None, :, None, None]

    def affine_t(self, g, weight, x):
        return numpy.einsum("oc,nohw->nchw", weight, g)

    def forward(self, x):
        self.input_shape = x.shape
        return self.affine(x, self.weight, self.bias)

    def gradient(self, dy):
        return self.affine_t(dy, self.weight, None)


def _einsum_net(rng):
    """nnviz: pointwise (einsum) → ReLU → Conv2d 3×3 → ReLU → pointwise (einsum); torch: the
    same with Conv2d(kernel_size=1) twins, under the same names."""
    p1 = EinsumPointwise(rng.standard_normal((6, 3)), rng.standard_normal(6))
    conv = _filled(L.Conv2d(6, 5, 3, padding=1, dtype=numpy.float64), rng)
    p2 = EinsumPointwise(rng.standard_normal((4, 5)), rng.standard_normal(4))
    net = nnviz.Net([("p1", p1), ("r1", L.ReLU()), ("conv", conv), ("r2", L.ReLU()), ("p2", p2)],
                    arch="einsum", device="cpu")
    mods = OrderedDict()
    for name, layer in net.layers.items():
        if isinstance(layer, EinsumPointwise):
            m = torch.nn.Conv2d(layer.weight.shape[1], layer.weight.shape[0], 1).double()
            m.weight.data = _t(layer.weight[:, :, None, None])
            m.bias.data = _t(layer.bias)
            mods[name] = m
        else:
            mods[name] = torch_layer(layer)
    return net, torch.nn.Sequential(mods)


EINSUM_RULES = {    # the seven rules: (nnviz, zennit)
    "epsilon": (R.Epsilon(0.1), ZR.Epsilon(0.1)), "gamma": (R.Gamma(0.3), ZR.Gamma(0.3)),
    "zplus": (R.ZPlus(), ZR.ZPlus()), "alphabeta": (R.AlphaBeta(2, 1), ZR.AlphaBeta(2, 1)),
    "flat": (R.Flat(), ZR.Flat()), "wsquare": (R.WSquare(), ZR.WSquare()),
    "zbox": (R.ZBox(-2.0, 3.0), ZR.ZBox(-2.0, 3.0))}


@pytest.mark.parametrize("name", list(EINSUM_RULES))
def test_a_layer_nnviz_has_never_seen_gets_every_rule(name):
    """A layer class defined only in this test (a pointwise convolution by einsum), in a Net
    with nnviz's own layers: each LRP rule at both of its instances (z^B at the first only,
    ε elsewhere) against zennit 0.5.1's rule on torch's Conv2d(kernel_size=1) with the same
    weights, float64; and its plain gradient against torch's. Nothing in nnviz.rules names
    the class: the rule calls the layer's affine and affine_t."""
    rng = numpy.random.default_rng(21)
    net, model = _einsum_net(rng)
    x = rng.uniform(-2.0, 3.0, (2, 3, 6, 7))
    ours, theirs = EINSUM_RULES[name]
    rest, rest_z = R.Epsilon(), ZR.Epsilon()
    if name == "zbox":
        rule = {"p1": ours, "conv": rest, "p2": rest, "r*": "pass"}
        names = [(("p1",), theirs), (("conv", "p2"), rest_z)]
    else:
        rule = {"p1": ours, "conv": rest, "p2": ours, "r*": "pass"}
        names = [(("p1", "p2"), theirs), (("conv",), rest_z)]
    composite = ZC.NameMapComposite(names + [(("r1", "r2"), ZR.Pass())])
    target = ("p2", 1)                      # the channel, its positive and negative units
    got = methods.lrp(net, x, target, rule=rule, seed="score")
    ref = zennit_relevance(model, x, composite, _mask(net, x, target), "score")
    assert numpy.abs(ref).max() > 0 and got.shape == x.shape
    assert rel_err(got, ref) < TOL
    xt = _t(x).requires_grad_(True)
    model(xt)[:, 1].sum().backward()
    assert rel_err(methods.saliency(net, x, target), xt.grad.numpy()) < 1e-12


# ---------------------------------------------------------------------------------------
# VGG16: every rule everywhere, every composite, a per-layer dict
# ---------------------------------------------------------------------------------------

SIZE = 64


def _zennit_composite(name, net):
    lo, hi = (_t(v) for v in net.pixel_bounds(numpy.float64))
    if name == "epsilon_gamma_box":
        return ZC.EpsilonGammaBox(lo, hi)
    if name == "zbox-first":
        return ZC.SpecialFirstLayerMapComposite([(Activation, ZR.Pass())],
                                                [(Convolution, ZR.ZBox(lo, hi))])
    return ZC.COMPOSITES[name]()


def _zennit_uniform_box(rule):
    """``rule`` on every convolution and linear layer but conv1_1, which gets z^B."""
    def make(net):
        lo, hi = (_t(v) for v in net.pixel_bounds(numpy.float64))
        return ZC.SpecialFirstLayerMapComposite(
            [(Activation, ZR.Pass()), ((Convolution, torch.nn.Linear), rule)],
            [(Convolution, ZR.ZBox(lo, hi))])
    return make


UNIFORM = {     # the six rules, each with z^B at conv1_1 only: (nnviz, zennit)
    "epsilon": ("epsilon", ZR.Epsilon()), "gamma": ("gamma", ZR.Gamma()),
    "zplus": ("zplus", ZR.ZPlus()), "alpha2_beta1": ("alphabeta:2:1", ZR.AlphaBeta(2, 1)),
    "flat": ("flat", ZR.Flat()), "wsquare": ("wsquare", ZR.WSquare())}
NET_CASES = {   # name: (nnviz rule, zennit composite, target, seed)
    name: (R.uniform(rule, names={"conv1_1": "zbox"}), _zennit_uniform_box(ref),
           ("conv5_3", 7, (1, 2)) if k % 2 else ("conv5_3", 7), "one" if k % 3 == 1 else "score")
    for k, (name, (rule, ref)) in enumerate(UNIFORM.items())}
NET_CASES.update((name, (name.replace("_", "-"), lambda n, name=name: _zennit_composite(name, n),
                         ("conv5_3", 11, (2, 1)) if "alpha" in name else ("conv5_3", 11),
                         "score")) for name in R.COMPOSITES)
# Every rule everywhere (z^B at conv1_1) and every composite, on random and on the default
# weights (the matrix); targets a channel or one unit, seeds the score or one. Below
# fc6 (64 px stops at pool5) the fc layers' ε is not reached: ε on every layer with the fc
# layers is checked against zennit at 224 px with class targets (two composites), in the
# dict, against Captum, and with ε = 0 against PyTorch's gradient × input.
WEIGHT_CASES = [(w, c) for w in ("random", "default") for c in NET_CASES]


@pytest.fixture(scope="module")
def vggs():
    nets = {}

    def get(weights):
        if weights not in nets:
            net = nnviz.vgg16(weights=None if weights == "random" else "default", seed=0,
                              include_top=False)
            nets[weights] = net, torch_net(net, "conv5_3")
        return nets[weights]
    return get


@pytest.mark.parametrize("weights,case", WEIGHT_CASES)
def test_vgg16_relevance_matches_zennit(vggs, weights, case):
    """On VGG16 (random and default weights), 64 px, float64: each rule on every convolution
    with z^B at conv1_1 (Pass at ReLUs, the gradient at max pooling), and each composite by
    name (hyphens too), against zennit's SpecialFirstLayerMapComposite and its registered
    composites with the same target (a channel or one unit) and attr_output (score or one)."""
    net, model = vggs(weights)
    rule, composite, target, seed = NET_CASES[case]
    x = _image(net, SIZE)
    got = methods.lrp(net, x, target, rule=rule, seed=seed)
    ref = zennit_relevance(model, x, composite(net), _mask(net, x, target), seed)
    assert rel_err(got, ref) < TOL
    assert numpy.abs(ref).max() > 0


def test_per_layer_dict_matches_zennit_name_map(vggs):
    """Rules by index (0 = conv1_1), range and pattern in one dict, as Net.backward takes
    it, against zennit's NameMapComposite with the layers spelled out."""
    net, model = vggs("default")
    x = _image(net, SIZE, seed=4)
    rule = {0: "zbox", range(1, 4): "gamma:0.5", "4-6": "wsquare", "conv4_*": "epsilon:0.25",
            "conv5_[12]": "alphabeta:1:0", "conv5_3": R.Flat(stabilizer=1e-3), "relu*": "pass"}
    target = ("conv5_3", 5, (2, 2))
    got = methods.lrp(net, x, target, rule=rule, seed="score")
    lo, hi = (_t(v) for v in net.pixel_bounds(numpy.float64))
    relus = tuple(n for n in net.layer_names if n.startswith("relu"))
    composite = ZC.NameMapComposite([
        (("conv1_1",), ZR.ZBox(lo, hi)), (("conv1_2", "conv2_1", "conv2_2"), ZR.Gamma(0.5)),
        (("conv3_1", "conv3_2", "conv3_3"), ZR.WSquare()),
        (("conv4_1", "conv4_2", "conv4_3"), ZR.Epsilon(0.25)),
        (("conv5_1", "conv5_2"), ZR.AlphaBeta(1, 0)), (("conv5_3",), ZR.Flat(stabilizer=1e-3)),
        (relus, ZR.Pass())])
    ref = zennit_relevance(model, x, composite, _mask(net, x, target), "score")
    assert rel_err(got, ref) < TOL


AT_224 = {"epsilon_plus_flat": ["Epsilon", "Gradient", "ZPlus", "Flat"],
          "epsilon_gamma_box": ["Epsilon", "Gradient", "Gamma", "ZBox"]}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(AT_224))
def test_class_target_at_224_matches_zennit(top, name):
    """A class target (fc8, pre-softmax) at 224 px, through the fully connected layers (ε),
    the flatten and the convolutions' rules of two composites (z⁺ with flat on conv1_1; γ with
    z^B on conv1_1), against zennit. Two composites (test time): the others differ only in
    the convolutions' rules, checked at 64 px."""
    net = top
    for layer in net.layers.values():                   # float64 once, not per rule call
        for p in layer.params:
            setattr(layer, p, getattr(layer, p).astype(numpy.float64))
    x = _image(net, 224, seed=2)
    rec = {}
    got = methods.lrp(net, x, 3, rule=name, seed="score", record=rec)
    ref = zennit_relevance(torch_net(net, "fc8"), x, _zennit_composite(name, net), _mask(net, x, 3),
                           "score")
    assert rel_err(got, ref) < TOL
    assert [type(rec[n].rule).__name__ for n in ("fc8", "flatten", "conv5_3", "conv1_1")] == AT_224[name]


@pytest.mark.parametrize("name", list(R.COMPOSITES))
def test_composites_place_rules_where_zennit_does(top, name):
    """Which rule acts at which layer: nnviz's assignment against zennit's module_map walked
    over the torch modules in order (layers zennit leaves alone pass the gradient)."""
    net = top
    placed = net.assign_rules(name)
    model = torch_net(net, "fc8", weights=False)
    composite = _zennit_composite(name, net)
    ctx = {}
    for mod_name, module in model.named_children():
        hook = composite.module_map(ctx, mod_name, module)
        ours = type(placed.get(mod_name, R.GRADIENT)).__name__
        assert ours == (type(hook).__name__ if hook is not None else "Gradient"), mod_name


# ---------------------------------------------------------------------------------------
# Captum's LRP, where it implements the same rule
# ---------------------------------------------------------------------------------------

def _captum_relevance(model, x, target, rules_by_name):
    from captum.attr import LRP
    for name, module in model.named_children():
        if name in rules_by_name:
            module.rule = rules_by_name[name]
    xt = _t(x).requires_grad_(True)
    return LRP(model).attribute(xt, target=target).detach().numpy()


def _no_bias_net():
    net = nnviz.vgg16(seed=5, include_top=False)
    for layer in net.layers.values():
        if getattr(layer, "bias", None) is not None:
            layer.bias = numpy.zeros_like(layer.bias)
    return net


@pytest.mark.parametrize("which", ["epsilon", "gamma", "alpha1beta0", "identity"])
def test_captum_lrp_where_it_implements_the_same_rule(which):
    """Captum 0.9's LRP, unit targets on conv4_1 (conv5_2 for identity; seeded with the unit's value, as Captum
    does). Captum applies its ε-rule (ε = 1e-9) at convolutions *and max pooling* (nnviz:
    Norm there, not zennit's winner-takes-all gradient). Its γ-rule scales only the weights
    (W + γW⁺, keeping b) and does not split by sign: it equals zennit's generalized γ for
    non-negative inputs, zero biases and a positive target output, so γ is compared on a
    net without biases above conv1_1 (ε there). Its α1β0 (W⁺ with b) equals z⁺ (W⁺ with b⁺,
    plus x⁻W⁻) under the same conditions. Its identity rule is Pass, on conv5_1 (whose input,
    from pool4, and output have one shape); after a ReLU Captum's identity rule is lost (its
    input hook does not hand the relevance to the ReLU's hook), so it is not compared there.
    """
    from captum.attr._utils.lrp_rules import Alpha1_Beta0_Rule, EpsilonRule, GammaRule, IdentityRule
    net = _no_bias_net() if which in ("gamma", "alpha1beta0") else nnviz.vgg16(seed=5, include_top=False)
    until = "conv5_2" if which == "identity" else "conv4_1"
    x = _image(net, SIZE, seed=6)
    act = net.forward(x, until=until)
    c = 9
    i, j = (int(v) for v in numpy.unravel_index(act[0, c].argmax(), act.shape[2:]))
    assert act[0, c, i, j] > 0
    model = torch_net(net, until)
    below = net.layer_names[:net.layer_names.index(until) + 1]
    convs = [n for n in below if n.startswith("conv")]
    pools = [n for n in below if n.startswith("pool")]
    ours = {n: R.Epsilon(1e-9) for n in convs}
    ours.update({n: R.Norm(1e-9) for n in pools})
    ours.update({n: "pass" for n in below if n.startswith("relu")})
    theirs = {}
    if which == "gamma":
        ours.update({n: R.Gamma(0.25, stabilizer=1e-9) for n in convs[1:]})
        theirs = {n: GammaRule(0.25) for n in convs[1:]}
    elif which == "alpha1beta0":
        ours.update({n: R.ZPlus(stabilizer=1e-9) for n in convs[1:]})
        theirs = {n: Alpha1_Beta0_Rule() for n in convs[1:]}
    elif which == "identity":
        ours["conv5_1"] = "pass"
        theirs = {"conv5_1": IdentityRule()}
    theirs.update({n: EpsilonRule(1e-9) for n in convs + pools if n not in theirs})
    got = methods.lrp(net, x, (until, c, (i, j)), rule=ours, seed="score")
    ref = _captum_relevance(model, x, (c, i, j), theirs)
    assert rel_err(got, ref) < TOL


# ---------------------------------------------------------------------------------------
# properties: LRP-0 = gradient × input, conservation, z⁺ non-negative
# ---------------------------------------------------------------------------------------

def test_lrp0_is_gradient_times_input(vggs):
    """LRP-0 (ε = 0 on every convolution, Pass at ReLUs, the gradient at max pooling), seeded
    with the score, equals x ⊙ ∂score/∂x from PyTorch autograd (innvestigate#126)."""
    net, _ = vggs("default")
    x = _image(net, SIZE, seed=8)
    target = ("conv5_3", 3)
    got = methods.lrp(net, x, target, rule=R.uniform("epsilon:0"), seed="score")
    ref = twin(net).gradient(x, target[0], _mask(net, x, target)).numpy() * x
    assert rel_err(got, ref) < 1e-10


def test_relevance_is_conserved_layer_by_layer_without_biases():
    """Zero biases and ε = 0: the relevance summed at every layer equals the target's score
    (computed by the PyTorch twin), image by image."""
    net = _no_bias_net()
    x = numpy.concatenate([_image(net, SIZE, seed=s) for s in (1, 2)])
    rec = {}
    methods.lrp(net, x, ("conv5_2", 17), rule=R.uniform("epsilon:0"), seed="score", record=rec)
    score = twin(net).forward(x, until="conv5_2")["conv5_2"][:, 17].sum(dim=(1, 2)).numpy()
    assert list(rec)[0] == "conv5_2" and list(rec)[-1] == "input"
    for name, _, sums in totals(rec):
        assert numpy.allclose(sums, score, rtol=1e-10, atol=0), name


def test_zplus_relevance_is_never_negative(vggs):
    """Under z⁺ on every convolution, a non-negative seed gives non-negative relevance at
    every layer (the inputs of all but conv1_1 are ReLU outputs; z⁺ sends x⁻ through W⁻,
    so conv1_1's input relevance is non-negative too)."""
    net, _ = vggs("default")
    x = _image(net, SIZE, seed=9)
    rec = {}
    methods.lrp(net, x, ("conv5_1", 40), rule="epsilon_plus", seed="one", record=rec)
    for name, step in rec.items():
        assert step.relevance.min() >= 0, name
    assert rec["input"].relevance.max() > 0


# ---------------------------------------------------------------------------------------
# rules by name, pattern and index; errors
# ---------------------------------------------------------------------------------------

def test_rules_by_index_pattern_and_spec(top):
    net = top
    placed = net.assign_rules(R.composite("epsilon-gamma-box", names={
        "conv4_*": "epsilon:0.25", "13-15": "epsilon:0", 12: R.AlphaBeta(1, 0)}))
    assert repr(placed["conv1_1"]).startswith("ZBox(low, high")
    assert repr(placed["conv3_3"]) == "Gamma(gamma=0.25, stabilizer=1e-06)"
    assert repr(placed["conv4_2"]) == "Epsilon(epsilon=0.25)"
    assert repr(placed["conv5_3"]) == "AlphaBeta(alpha=1, beta=0, stabilizer=1e-06)"
    assert [repr(placed[n]) for n in ("fc6", "fc7", "fc8")] == ["Epsilon(epsilon=0.0)"] * 3
    assert repr(placed["relu3_1"]) == "Pass()" and "pool1" not in placed
    assert R.parse_map("conv1_1=zbox, conv5_*=epsilon:0.25,1-6=gamma:0.25") == {
        "conv1_1": "zbox", "conv5_*": "epsilon:0.25", "1-6": "gamma:0.25"}
    lo, hi = net.pixel_bounds(numpy.float64)
    assert numpy.allclose(placed["conv1_1"].low, lo) and numpy.allclose(lo.ravel(), [-103.939, -116.779, -123.68])
    assert numpy.allclose(hi - lo, 255)


@pytest.mark.parametrize("rule,error,match", [
    ({"relu1_1": "gamma"}, KeyError, "'gamma' given for 'relu1_1', which is not a Conv2d"),
    ({"conv6_*": "gamma"}, KeyError, "pattern 'conv6_\\*' matches no layer"),
    ({16: "gamma"}, KeyError, "index 16 out of range: .*16 convolution and linear .*15 = 'fc8'"),
    ({"pool*": "gamma"}, KeyError, "'gamma' given for 'pool1', which is not a Conv2d"),
    ({"conv1_1": "epsilon:x"}, ValueError, "rule 'epsilon:x'"),
    ({"conv1_1": "zbox:1"}, ValueError, "unknown backward rule 'zbox:1'"),
    ({"conv1_1": "alphabeta:3:1"}, ValueError, "alpha - beta must be 1"),
    ("epsilon-gamma", ValueError, "unknown backward rule 'epsilon-gamma'"),
    ("gamma", ValueError, "not a preset for a whole net.*uniform"),
])
def test_rule_errors_name_the_rule_and_the_layer(top, rule, error, match):
    with pytest.raises(error, match=match):
        top.assign_rules(rule)


# ---------------------------------------------------------------------------------------
# the command, the trace, the picture
# ---------------------------------------------------------------------------------------

def _run(argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:          # argparse's usage errors
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def test_lrp_command_writes_red_and_blue_over_the_image(tmp_path, capsys):
    rc, out, err = _run(["lrp", "--weights", "random", "--size", "64", "--out", str(tmp_path),
                         "--target", "conv5_3:2", "--rule", "epsilon-alpha2-beta1",
                         "--rule-map", "conv1_1=zbox,conv5_*=epsilon:0.25", "--table"], capsys)
    assert rc == 0, err
    png = tmp_path / ("lrp-astronaut-conv5_3_2-epsilon-alpha2-beta1-map-rule_map=conv1_1=zbox_conv5__=epsilon_0.25"
                      "-size=64-weights=random.png")
    assert str(png) in out and "ZBox(low, high" in out and "Epsilon(epsilon=0.25)" in out
    from PIL import Image
    img = numpy.asarray(Image.open(png)).astype(int)
    red, blue = img[..., 0] - img[..., 2] > 60, img[..., 2] - img[..., 0] > 60
    assert img.shape == (64, 64, 3) and red.sum() > 5 and blue.sum() > 5


def test_lrp_command_puts_several_rules_side_by_side(tmp_path, capsys):
    rc, out, err = _run(["lrp", "--weights", "random", "--size", "32", "--out", str(tmp_path),
                         "--target", "conv4_3:5", "--rule", "epsilon-plus", "--rule", "zplus",
                         "--rule", "epsilon:0", "--grid"], capsys)
    assert rc == 0, err
    png = tmp_path / "lrp-grid-epsilon-plus-zplus-epsilon_0-size=32-target=conv4_3_5-weights=random.png"
    from PIL import Image
    assert str(png) in out and Image.open(png).size[0] > 4 * 32


@pytest.mark.parametrize("argv,match", [
    (["--rule", "nope"], "unknown backward rule 'nope'"),
    (["--rule", "guided"], "expected an LRP composite"),
    (["--rule-map", "conv1_1"], "expected LAYER=RULE"),
    (["--rule-map", "conv9_*=flat"], "matches no layer"),
    (["--rule", "epsilon_plus", "--gamma", "0.5"], "--gamma is a parameter of epsilon_gamma_box"),
    (["--epsilon", "-1"], "--epsilon.*must be a number ≥ 0"),
])
def test_lrp_command_bad_input_is_one_line_and_status_2(tmp_path, capsys, argv, match):
    rc, out, err = _run(["lrp", "--weights", "random", "--size", "32", "--out", str(tmp_path),
                         "--target", "conv5_3:2"] + argv, capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and re.search(match, err), err
    assert not list(tmp_path.iterdir())


def test_trace_with_an_lrp_composite_writes_relevance_and_sums(tmp_path, capsys):
    rc, out, err = _run(["trace", "--weights", "random", "--size", "32", "--out", str(tmp_path),
                         "--target", "conv4_3:1", "--rule", "epsilon-plus"], capsys)
    assert rc == 0, err
    with h5py.File(tmp_path / "trace-astronaut-conv4_3_1-epsilon_plus-size=32-weights=random.h5") as f:
        assert f.attrs["rule"] == "epsilon_plus"
        assert f["conv2_1"].attrs["rule"] == "ZPlus(stabilizer=1e-06)"
        assert f["pool2"].attrs["rule"] == "Gradient()"
        for name in f.attrs["layers"]:
            r = f[name]["relevance"][()]
            assert numpy.allclose(f[name]["relevance_sum"][()], r.reshape(len(r), -1).sum(axis=1))
        assert f["input"]["relevance"].shape == (1, 3, 32, 32)


def test_relevance_picture_is_symmetric_about_zero():
    """Equal and opposite relevance get equal and opposite colours: red and blue, white at 0."""
    r = numpy.zeros((3, 4, 4))
    r[:, 0, 0], r[:, 1, 1] = 1.0, -1.0
    img = render.relevance(r, percentile=100)
    assert tuple(img[0, 0]) == (255, 0, 0) and tuple(img[1, 1]) == (0, 0, 255)
    assert tuple(img[2, 2]) == (255, 255, 255)
    over = render.relevance(r, numpy.full((4, 4, 3), 100, numpy.uint8), percentile=100)
    assert tuple(over[0, 0]) == (255, 0, 0) and over[2, 2, 0] == over[2, 2, 2] < 255
