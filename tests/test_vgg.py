"""VGG16 and VGG19 with random weights against their PyTorch twins (tools/torch_twin.py:
torch.nn.functional layers with the same weights; the ReLU rules as autograd.Functions
written from their formulas): logits, every intermediate activation, and the input gradient
from a unit of conv5_3 / conv5_4 under each rule. Plus the errors a user meets first."""
import numpy
import pytest
import torch
from conftest import rel_err
from torch_twin import twin

import nnviz

LAST_CONV = {"vgg16": "conv5_3", "vgg19": "conv5_4"}


@pytest.fixture(scope="module", params=["vgg16", "vgg19"])
def full_net(request):
    return getattr(nnviz, request.param)(seed=0)


@pytest.fixture(params=["direct", "winograd"])
def conv_algorithm(request):
    """Every whole-net comparison runs with im2col + GEMM and with Winograd F(2×2, 3×3)."""
    from nnviz import functional
    with functional.conv_algorithm(request.param):
        yield request.param


@pytest.mark.slow
def test_logits_and_activations_match_torch_at_224(full_net, conv_algorithm):
    """float32, the whole net with its top: every layer's output within 1e-4 relative."""
    x = numpy.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(numpy.float32) * 50
    logits = full_net.forward(x)
    assert logits.shape == (1, 1000) and logits.dtype == numpy.float32
    with torch.no_grad():
        ref = twin(full_net, torch.float32).forward(x)
    assert list(ref) == full_net.layer_names
    for name, t in ref.items():
        assert rel_err(full_net.activations[name], t) < 1e-4, name


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_activations_and_unit_gradients_match_torch_float64(arch, conv_algorithm):
    """float64 at 64×64, convolutional part: activations and the input gradient from one unit
    of the last conv layer under each rule, to 1e-10."""
    net = getattr(nnviz, arch)(seed=1, include_top=False)
    t = twin(net, torch.float64)
    x = numpy.random.default_rng(2).standard_normal((2, 3, 64, 64)) * 50
    start = LAST_CONV[arch]
    net.forward(x, until=start)
    with torch.no_grad():
        ref = t.forward(x, until=start)
    for name, a in ref.items():
        assert rel_err(net.activations[name], a) < 1e-10, name
    seed = numpy.zeros(net.activations[start].shape)
    seed[0, 5, 1, 2] = 1.0
    seed[1, 9, 3, 0] = 1.0
    for rule in ("backprop", "deconvnet", "guided"):
        g = net.backward(seed, start=start, rule=rule)
        assert g.shape == x.shape and g.dtype == numpy.float64
        g_ref = t.gradient(x, start, seed, rule=rule)
        assert numpy.abs(g_ref.numpy()).max() > 0
        assert rel_err(g, g_ref) < 1e-10, rule


def test_rule_per_relu_matches_torch():
    """A dict of rules: guided only in block 5, the plain gradient elsewhere."""
    net = nnviz.vgg16(seed=2, include_top=False)
    x = numpy.random.default_rng(3).standard_normal((1, 3, 32, 32)) * 50
    y = net.forward(x, until="relu5_3")
    seed = numpy.random.default_rng(4).standard_normal(y.shape)
    rule = {"relu5_1": "guided", "relu5_2": "guided", "relu5_3": "guided"}
    g = net.backward(seed, start="relu5_3", rule=rule)
    assert rel_err(g, twin(net).gradient(x, "relu5_3", seed, rule=rule)) < 1e-10
    assert rel_err(g, net.backward(seed, start="relu5_3")) > 1e-3   # the rule mattered


def test_avg_pooling_net_matches_torch():
    net = nnviz.vgg19(seed=3, include_top=False, pooling="avg")
    x = numpy.random.default_rng(5).standard_normal((1, 3, 32, 32)) * 50
    y = net.forward(x, until="relu5_1")
    seed = numpy.random.default_rng(6).standard_normal(y.shape)
    assert rel_err(net.backward(seed, "relu5_1"), twin(net).gradient(x, "relu5_1", seed)) < 1e-10


def test_seeded_random_weights_are_reproducible():
    a, b, c = (nnviz.vgg16(seed=s, include_top=False) for s in (7, 7, 8))
    assert numpy.array_equal(a.layers["conv3_1"].weight, b.layers["conv3_1"].weight)
    assert not numpy.array_equal(a.layers["conv3_1"].weight, c.layers["conv3_1"].weight)


def test_layer_names_follow_caffe_convention():
    names = nnviz.vgg19(seed=0).layer_names   # fc weights: a few seconds, once
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names[-9:] == ["conv5_4", "relu5_4", "pool5", "flatten", "fc6", "relu6", "fc7",
                          "relu7", "fc8"]
    assert len([n for n in names if n.startswith("conv")]) == 16
    assert len([n for n in nnviz.vgg16(seed=0, include_top=False).layer_names
                if n.startswith("conv")]) == 13


# -- errors that help --------------------------------------------------------------------

def test_wrong_rank_names_the_shape(top):
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\), got shape \(32, 32, 3\)"):
        top.forward(numpy.zeros((32, 32, 3), numpy.float32))


def test_wrong_channel_count_names_layer_and_shape(top):
    with pytest.raises(ValueError, match=r"layer 'conv1_1': expected 3 input channels, got shape \(1, 4, 32, 32\)"):
        top.forward(numpy.zeros((1, 4, 32, 32), numpy.float32))


def test_uint8_input_points_to_preprocess(top):
    with pytest.raises(TypeError, match="preprocess"):
        top.forward(numpy.zeros((1, 3, 32, 32), numpy.uint8))


def test_unknown_layer_for_until_and_start(top):
    x = numpy.zeros((1, 3, 32, 32), numpy.float32)
    with pytest.raises(KeyError, match="unknown layer 'conv6_1'.*conv1_1"):
        top.forward(x, until="conv6_1")
    top.forward(x, until="conv3_1")
    with pytest.raises(KeyError, match="unknown start layer 'conv9'"):
        top.backward(numpy.zeros((1, 1)), start="conv9")
    with pytest.raises(RuntimeError, match="'conv4_1' was not reached"):
        top.backward(numpy.zeros((1, 512, 4, 4)), start="conv4_1")
    with pytest.raises(ValueError, match=r"gradient of shape \(1, 3\) does not match the output "
                                         r"of 'conv3_1', \(1, 256, 8, 8\)"):
        top.backward(numpy.zeros((1, 3)), start="conv3_1")


def test_unknown_rule(top):
    x = numpy.zeros((1, 3, 32, 32), numpy.float32)
    y = top.forward(x, until="relu1_1")
    with pytest.raises(ValueError, match="unknown backward rule 'gudied'.*guided"):
        top.backward(y, start="relu1_1", rule="gudied")
    with pytest.raises(KeyError, match="'conv1_1', which is not a ReLU"):
        top.backward(y, start="relu1_1", rule={"conv1_1": "guided"})


def test_top_needs_224(top):
    x = numpy.zeros((1, 3, 64, 64), numpy.float32)
    with pytest.raises(ValueError, match=r"'fc8' needs a 224×224 input.*\(1, 3, 64, 64\)"):
        top.forward(x, until="fc8")
    y = top.forward(x)           # without `until`: the convolutional part, up to pool5
    assert y.shape == (1, 512, 2, 2) and list(top.activations)[-1] == "pool5"


def test_input_smaller_than_the_net_needs():
    net = nnviz.vgg16(seed=0, include_top=False)
    with pytest.raises(ValueError, match="layer 'pool5': input of shape \\(1, 512, 1, 1\\) is smaller"):
        net.forward(numpy.zeros((1, 3, 16, 16), numpy.float32))


def test_preprocess_round_trip():
    img = numpy.random.default_rng(0).integers(0, 256, (2, 20, 30, 3), dtype=numpy.uint8)
    for convention in ("caffe", "torch"):
        net = nnviz.vgg16(seed=0, include_top=False)
        net.preprocessing = convention
        x = net.preprocess(img)
        assert x.shape == (2, 3, 20, 30) and x.dtype == numpy.float32
        numpy.testing.assert_array_equal(net.deprocess(x), img)
    net.preprocessing = "caffe"
    x = net.preprocess(img[0])
    # BGR minus the ImageNet mean (Caffe's convention, as Keras' preprocess_input)
    numpy.testing.assert_allclose(x[0, 0], img[0, :, :, 2] - 103.939, atol=1e-4)


def test_backward_from_several_layers_stop_and_record_match_torch():
    """Seeds at two layers (a dict) in one pass, ``stop`` and ``record``, against autograd of
    (out[a]·sa + out[b]·sb) on the PyTorch twin."""
    net = nnviz.vgg16(seed=4, include_top=False)
    t = twin(net)
    x = numpy.random.default_rng(7).standard_normal((1, 3, 32, 32)) * 50
    net.forward(x, until="relu4_2")
    rng = numpy.random.default_rng(8)
    seeds = {name: rng.standard_normal(net.activations[name].shape) for name in ("relu3_1", "relu4_2")}
    record = {}
    g = net.backward(seeds, rule="guided", record=record)
    xt = t.tensor(x, requires_grad=True)
    out = t.forward(xt, until="relu4_2", rule="guided")
    out["pool2"].retain_grad()
    sum(((out[n] * t.tensor(s)).sum() for n, s in seeds.items())).backward()
    assert rel_err(g, xt.grad) < 1e-10
    assert rel_err(record["pool2"], out["pool2"].grad) < 1e-10
    at_pool2 = net.backward(seeds, rule="guided", stop="pool2")
    assert at_pool2.shape == net.activations["pool2"].shape
    assert rel_err(at_pool2, out["pool2"].grad) < 1e-10
