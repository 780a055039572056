"""Backward rules as objects on any layer (nnviz.rules), checked against PyTorch: the ReLU
rules as autograd Functions written from the design contract's formulas (tools/torch_twin.py),
``pass`` as an identity-backward Function, and the deconvnet's unpooling without switches as a
scatter to each window's first pixel built here with torch's index_add. Float64, inputs away
from ReLU kinks and pooling ties."""
import numpy
import pytest
import torch
import torch.nn.functional as TF
import torch_twin
from conftest import rel_err
from torch_twin import twin

from nnviz import layers as L
from nnviz import rules


class PassReLU(torch.autograd.Function):
    """A ReLU whose backward passes the signal unchanged (LRP's ReLU, zennit's Pass)."""

    @staticmethod
    def forward(ctx, x):
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, dy):
        return dy


def _seed(net, x, layer, seed=0):
    y = net.forward(x, until=layer)
    return numpy.random.default_rng(seed).standard_normal(y.shape)


def _x(size=32, seed=1):
    return numpy.random.default_rng(seed).standard_normal((1, 3, size, size)) * 50


def test_composite_by_type_first_layer_and_names_matches_torch(net):
    """Rules by layer type, a rule for the first layer it fits, names over both: as the
    per-ReLU dict that the twin takes."""
    x = _x()
    seed = _seed(net, x, "relu5_3")
    comp = rules.Composite([(L.ReLU, rules.Guided())], first="deconvnet",
                           names={"relu5_3": "backprop", "relu3_2": rules.Deconvnet()})
    g = net.backward(seed, start="relu5_3", rule=comp)
    relus = [n for n in net.layer_names if n.startswith("relu")]
    per_relu = {n: "guided" for n in relus}
    per_relu.update(relu1_1="deconvnet", relu5_3="backprop", relu3_2="deconvnet")
    ref = twin(net).gradient(x, "relu5_3", seed, rule=per_relu)
    assert rel_err(g, ref) < 1e-10
    assert rel_err(g, net.backward(seed, start="relu5_3", rule="guided")) > 1e-3


@pytest.mark.parametrize("how", ["preset", "dict", "object"])
def test_pass_at_every_relu_matches_torch(net, monkeypatch, how):
    monkeypatch.setitem(torch_twin.RELU_FUNCTIONS, "pass", PassReLU)
    x = _x(seed=2)
    seed = _seed(net, x, "conv4_2", 5)
    relus = [n for n in net.layer_names[:net.layer_names.index("conv4_2")] if n.startswith("relu")]
    rule = {"preset": "pass", "dict": {n: "pass" for n in relus},
            "object": rules.Composite({"activation": rules.Pass()})}[how]
    g = net.backward(seed, start="conv4_2", rule=rule)
    ref = twin(net).gradient(x, "conv4_2", seed, rule={n: "pass" for n in relus})
    assert rel_err(g, ref) < 1e-10


def _first_pixel_unpool(dy, h, w, k, s, p):
    """Reference: each window's signal added at its first (top-left) pixel, clamped into the
    plane, with torch's index_add (PyTorch has no such layer)."""
    n, c, oh, ow = dy.shape
    rows = (torch.arange(oh) * s - p).clamp(0, h - 1)
    cols = (torch.arange(ow) * s - p).clamp(0, w - 1)
    flat = (rows[:, None] * w + cols[None, :]).reshape(-1)
    out = torch.zeros(n * c, h * w, dtype=dy.dtype)
    out.index_add_(1, flat, dy.reshape(n * c, -1))
    return out.reshape(n, c, h, w)


@pytest.mark.parametrize("shape,k,s,p", [((2, 3, 8, 8), 2, 2, 0), ((1, 2, 9, 7), 3, 2, 1),
                                         ((1, 1, 6, 10), 3, 1, 1), ((2, 2, 7, 7), 2, 2, 1)])
def test_no_switches_on_max_pool_matches_first_pixel_scatter(shape, k, s, p):
    rng = numpy.random.default_rng(4)
    x = rng.permutation(numpy.prod(shape)).reshape(shape) / numpy.prod(shape) - 0.5  # no ties
    pool = L.MaxPool2d(k, s, p)
    y = pool.forward(x)
    dy = rng.standard_normal(y.shape)
    g = pool.backward(dy, rule="no_switches")
    ref = _first_pixel_unpool(torch.tensor(dy), shape[2], shape[3], k, s, p)
    assert rel_err(g, ref) < 1e-12
    # and the gradient itself still goes to the switches, as torch's max_pool2d
    tx = torch.tensor(x, requires_grad=True)
    TF.max_pool2d(tx, k, s, p).backward(torch.tensor(dy))
    assert rel_err(pool.backward(dy), tx.grad) < 1e-12


def test_rule_objects_on_a_single_relu_follow_the_formulas():
    rng = numpy.random.default_rng(6)
    x = rng.standard_normal((2, 3, 4, 5))
    x[numpy.abs(x) < 0.05] = 0.5            # away from the kink
    dy = rng.standard_normal(x.shape)
    relu = L.ReLU()
    relu.forward(x)
    assert numpy.array_equal(relu.backward(dy, rules.Guided()), dy * ((x > 0) & (dy > 0)))
    assert numpy.array_equal(relu.backward(dy, rules.Deconvnet()), dy * (dy > 0))
    assert numpy.array_equal(relu.backward(dy, "pass"), dy)
    assert numpy.array_equal(relu.backward(dy), dy * (x > 0))


def test_errors_name_the_rule_and_the_layer(net):
    y = net.forward(_x(), until="pool2")
    with pytest.raises(ValueError, match="unknown backward rule 'nope'.*guided"):
        net.backward(y, start="pool2", rule={"relu1_1": "nope"})
    with pytest.raises(KeyError, match="rule 'no_switches' given for 'relu2_1', which is not a MaxPool2d"):
        net.backward(y, start="pool2", rule={"relu2_1": "no_switches"})
    with pytest.raises(KeyError, match="'conv9_9', which is not a layer of this net.*conv1_1"):
        net.backward(y, start="pool2", rule={"conv9_9": "guided"})
    with pytest.raises(KeyError, match="'guided' given for 'pool1', which is not a ReLU"):
        net.backward(y, start="pool2", rule=rules.Composite(names={"pool1": "guided"}))
    with pytest.raises(TypeError, match="rule must be"):
        net.backward(y, start="pool2", rule=3)


def test_rule_on_any_layer_in_a_dict(net):
    """A dict may name any layer: the deconvnet without switches, as one dict."""
    x = _x(seed=7)
    seed = _seed(net, x, "relu3_3", 8)
    names = net.layer_names[:net.layer_names.index("relu3_3") + 1]
    rule = {n: ("deconvnet" if n.startswith("relu") else "no_switches")
            for n in names if n.startswith(("relu", "pool"))}
    g = net.backward(seed, start="relu3_3", rule=rule)
    comp = rules.Composite([("activation", "deconvnet"), (L.MaxPool2d, "no_switches")])
    assert numpy.array_equal(g, net.backward(seed, start="relu3_3", rule=comp))
    ref = twin(net).project(x, "relu3_3", seed, rule="deconvnet", switches="fixed")
    assert rel_err(g, ref) < 1e-10
