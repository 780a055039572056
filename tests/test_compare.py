"""``nnviz compare`` (issue 20) against the real frameworks, each test naming its oracle:
PyTorch autograd (plain, and with hook-based guided/deconvnet ReLUs, all or ``features`` only,
as pytorch-cnn-visualizations writes them), Captum's Saliency/GuidedBackprop/Deconvolution/LRP,
zennit's composites, Keras 3 on the torch backend — all in float64 — and ONNX Runtime on a
model exported by ``torch.onnx.export`` (forward, float32). Also: a float32 tie made in pooling
windows (``tie``, exit 0), one altered weight in the framework's copy (``differs`` at that
layer, exit 1), golden traces (``nnviz trace --format npz|npy|h5``, ``nnviz compare --golden``),
the pytest helper, ONNX weight import, and the old ``tools/compare_torch.py`` check (moved
here from test_attribution.py).

The PyTorch models are built here in torchvision's layout (``features``, ``avgpool``,
``classifier``, torchvision's state-dict keys) with ``torch.nn`` alone, independent of nnviz's
own builder. Inputs are real photographs at 32 px; targets are shallow so that each
comparison is quick, and every target's backward signal is checked to be non-zero.
"""
import importlib.util
import json
import os
import sys
import types

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy
import pytest

import nnviz
from nnviz import cli, io, methods
from nnviz.errors import InputError
from nnviz.layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU
from nnviz.methods import compare as C
from nnviz.methods.attribution import read_trace, weights_digest
from nnviz.testing import assert_matches_reference

torch = pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


# -- models built here, in torchvision's layout ---------------------------------------------
class TorchvisionVGG(torch.nn.Module):
    """torchvision.models.vgg16's structure and state-dict keys (torchvision itself is not
    installed beside the pinned CPU torch)."""

    def __init__(self, cfg=CFG16, top=False, fc=(512 * 7 * 7, 4096, 4096, 1000), pool=(7, 7)):
        super().__init__()
        layers, c = [], 3
        for v in cfg:
            if v == "M":
                layers.append(torch.nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [torch.nn.Conv2d(c, v, kernel_size=3, padding=1), torch.nn.ReLU(inplace=True)]
                c = v
        self.features = torch.nn.Sequential(*layers)
        self.top = top
        if top:
            self.avgpool = torch.nn.AdaptiveAvgPool2d(pool)
            self.classifier = torch.nn.Sequential(
                torch.nn.Linear(fc[0], fc[1]), torch.nn.ReLU(True), torch.nn.Dropout(),
                torch.nn.Linear(fc[1], fc[2]), torch.nn.ReLU(True), torch.nn.Dropout(),
                torch.nn.Linear(fc[2], fc[3]))

    def forward(self, x):
        x = self.features(x)
        if not self.top:
            return x
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def state_dict_of(net):
    """nnviz's parameters under torchvision's keys: ``features.N`` counting every layer before
    ``flatten``, ``classifier.0/3/6`` for the linear layers (Dropout between them)."""
    sd, feat, fc, in_features = {}, 0, 0, True
    for name in net.layer_names:
        layer = net.layers[name]
        if isinstance(layer, Flatten):
            in_features = False
            continue
        if in_features:
            key, feat = f"features.{feat}", feat + 1
        elif isinstance(layer, Linear):
            key, fc = f"classifier.{3 * fc}", fc + 1
        else:
            continue
        if isinstance(layer, (Conv2d, Linear)):
            sd[f"{key}.weight"] = torch.from_numpy(numpy.array(layer.weight, numpy.float32))
            sd[f"{key}.bias"] = torch.from_numpy(numpy.array(layer.bias, numpy.float32))
    return sd


def torch_twin(net, **kw):
    model = TorchvisionVGG(top=net.include_top, **kw)
    model.load_state_dict(state_dict_of(net))
    return model.eval()


@pytest.fixture(scope="module")
def model(net):
    return torch_twin(net)


@pytest.fixture(scope="module")
def x(net):
    return net.preprocess(io.load_image("sample:chelsea", (32, 32))).astype(numpy.float64)


def strongest(net, x, layer):
    act = net.forward(x, until=layer)
    return f"{layer}:{int(numpy.argmax(act.sum(axis=(0, 2, 3))))}"


def assert_nontrivial(report, net, x):
    """The comparison is not vacuous: every layer up to the target is a row, and the
    reference's signal at the input is not zero."""
    assert [r.name for r in report.rows][:2] == ["input", "conv1_1"]
    assert not any("zero everywhere" in r for r in report.reasons), report.reasons


def stub_torchvision():
    """zennit 0.5.1 imports torchvision for its ResNet canonizers only."""
    if "zennit" in sys.modules:
        return
    tv, models, resnet = (types.ModuleType(n) for n in ("torchvision", "torchvision.models",
                                                          "torchvision.models.resnet"))
    resnet.Bottleneck = type("Bottleneck", (torch.nn.Module,), {})
    resnet.BasicBlock = type("BasicBlock", (torch.nn.Module,), {})
    tv.models, models.resnet = models, resnet
    sys.modules.update({"torchvision": tv, "torchvision.models": models, "torchvision.models.resnet": resnet})


# -- PyTorch, Captum: equal, and a wrong rule is named ------------------------------------
TORCH_CASES = [  # preset, the rule it implements, a wrong rule, what the ReLUs then act as
    ("torch", "backprop", "guided", "backprop"),
    ("torch-guided", "guided", "backprop", "guided"),
    ("torch-deconvnet", "deconvnet", "guided", "deconvnet"),
    ("captum-saliency", "backprop", "deconvnet", "backprop"),
    ("captum-guided", "guided", "deconvnet", "guided"),
    ("captum-deconvnet", "deconvnet", "backprop", "deconvnet"),
]


@pytest.mark.parametrize("preset,rule,wrong,acts_as", TORCH_CASES)
def test_torch_and_captum_presets_equal_in_float64(preset, rule, wrong, acts_as, net, model, x):
    """Oracle: PyTorch autograd on a torchvision-layout VGG16 (plain, or with full backward
    hooks at every ReLU), and Captum's Saliency (abs=False), GuidedBackprop, Deconvolution.
    Every layer equal to 1e-10 in float64; the same framework against another rule is a
    rule mismatch naming the ReLUs and the rule they act as."""
    if preset.startswith("captum"):
        pytest.importorskip("captum")
    target = strongest(net, x, "relu2_2")
    report = C.compare(model, x, target, preset=preset)
    assert report.verdict == "equal", report.table()
    assert report.info["rule"] == rule and report.exit_status == 0
    assert all(r.verdict == "equal" and r.backward.rel < 1e-10 and r.forward.rel < 1e-10 for r in report.rows)
    assert_nontrivial(report, net, x)
    bad = C.compare(model, x, target, preset=preset, rule=wrong)
    assert bad.verdict == "rule mismatch" and bad.exit_status == 1, bad.table()
    named = {m["layer"] for m in bad.mismatches}
    assert named and named <= {n for n in net.layer_names if n.startswith("relu")}
    assert {m["acts_as"] for m in bad.mismatches} == {acts_as}


def test_captum_lrp_at_the_input(net, model, x):
    """Oracle: Captum 0.9's LRP with its default rules (ε = 1e-9 at convolutions and max
    pooling, ReLUs passed), the strongest unit of relu2_2: its relevance at the input equals
    nnviz's ``captum-lrp`` composite to 1e-10 (Captum shows no per-layer relevance: only the
    input row has a backward); against nnviz's epsilon_plus (z⁺ at the convolutions) it
    differs; a channel target (no output Captum can seed) is refused."""
    pytest.importorskip("captum")
    act = net.forward(x, until="relu2_2")
    c, i, j = (int(v) for v in numpy.unravel_index(numpy.argmax(act[0]), act.shape[1:]))
    report = C.compare(model, x, f"relu2_2:{c}:{i},{j}", preset="captum-lrp")
    assert report.verdict == "equal", report.table()
    assert [r.name for r in report.rows if r.backward is not None] == ["input"]
    assert 0 < report.row("input").backward.scale and report.row("input").backward.rel < 1e-10
    other = C.compare(model, x, f"relu2_2:{c}:{i},{j}", preset="captum-lrp", rule="epsilon_plus")
    assert other.verdict == "differs" and other.exit_status == 1
    with pytest.raises(InputError, match="one unit"):
        C.compare(model, x, f"relu2_2:{c}", preset="captum-lrp")


def test_zennit_composites_equal_in_float64(net, model, x, tmp_path):
    """Oracle: zennit 0.5.1's guided_backprop, deconvnet and epsilon_gamma_box composites
    (zennit.attribution.Gradient, attr_output = the seed times the score), every layer equal
    to 1e-10 in float64, also against a golden LRP trace; asked for another composite, the
    layers whose rule differs are named."""
    stub_torchvision()
    pytest.importorskip("zennit")
    target = strongest(net, x, "relu2_2")
    for preset in ("zennit-guided", "zennit-deconvnet", "zennit-epsilon-gamma-box"):
        report = C.compare(model, x, target, preset=preset)
        assert report.verdict == "equal", report.table()
        assert_nontrivial(report, net, x)
    # zennit's γ rule where nnviz is asked for z⁺: the convolutions are named, acting as γ (zB at conv1_1)
    report = C.compare(model, x, target, preset="zennit-epsilon-gamma-box", rule="epsilon_plus")
    assert report.verdict == "rule mismatch", report.table()
    assert {m["layer"] for m in report.mismatches} <= {n for n in net.layer_names if n.startswith("conv")}
    assert {m["acts_as"] for m in report.mismatches} == {"gamma", "zbox"}
    # a golden LRP trace (relevance, seeded with the score, the trace's pixel bounds for zB)
    path = str(tmp_path / "lrp.npz")
    methods.trace(net, x, target, "epsilon_gamma_box", path=path)
    assert read_trace(path)[1]["signal"] == "relevance"
    report = C.compare(model, golden=path, preset="zennit-epsilon-gamma-box")
    assert report.verdict == "equal", report.table()


# -- the features-only convention of pytorch-cnn-visualizations -------------------------------
class CnnVisualizationsGuidedBackprop:
    """pytorch-cnn-visualizations (utkuozbulak), src/guided_backprop.py, ``update_relus``: hooks
    on the ReLUs of ``model.features`` only, as written there (legacy module backward hooks)."""

    def __init__(self, model):
        self.model = model
        self.forward_relu_outputs = []
        for module in self.model.features._modules.values():
            if isinstance(module, torch.nn.ReLU):
                module.register_backward_hook(self.relu_backward_hook_function)
                module.register_forward_hook(self.relu_forward_hook_function)

    def relu_backward_hook_function(self, module, grad_in, grad_out):
        corresponding_forward_output = self.forward_relu_outputs[-1]
        corresponding_forward_output[corresponding_forward_output > 0] = 1
        modified_grad_out = corresponding_forward_output * torch.clamp(grad_in[0], min=0.0)
        del self.forward_relu_outputs[-1]
        return (modified_grad_out,)

    def relu_forward_hook_function(self, module, ten_in, ten_out):
        self.forward_relu_outputs.append(ten_out)


def mini_vgg(seed=0):
    """A VGG-shaped net small enough to have fully connected layers at 16 px: two conv
    blocks, then flatten, fc6, relu6, fc7, relu7, fc8 (VGG's names), with its torch twin."""
    rng = numpy.random.default_rng(seed)
    layers = [("conv1_1", Conv2d(3, 8, 3, padding=1)), ("relu1_1", ReLU()), ("pool1", MaxPool2d(2)),
              ("conv2_1", Conv2d(8, 16, 3, padding=1)), ("relu2_1", ReLU()), ("pool2", MaxPool2d(2)),
              ("flatten", Flatten()), ("fc6", Linear(16 * 4 * 4, 32)), ("relu6", ReLU()),
              ("fc7", Linear(32, 32)), ("relu7", ReLU()), ("fc8", Linear(32, 10))]
    for _, layer in layers:
        if hasattr(layer, "weight"):
            fan_in = numpy.prod(layer.weight.shape[1:])
            layer.weight = (rng.standard_normal(layer.weight.shape) * numpy.sqrt(2 / fan_in)).astype(numpy.float32)
            layer.bias = rng.uniform(-0.1, 0.1, layer.bias.shape).astype(numpy.float32)
    net = nnviz.Net(layers, arch="mini-vgg", preprocessing="torch")
    model = TorchvisionVGG(cfg=[8, "M", 16, "M"], top=True, fc=(16 * 4 * 4, 32, 32, 10), pool=(4, 4))
    sd = {"features.0.weight": layers[0][1].weight, "features.0.bias": layers[0][1].bias,
          "features.3.weight": layers[3][1].weight, "features.3.bias": layers[3][1].bias}
    for k, (_, layer) in zip((0, 3, 6), [layers[7], layers[9], layers[11]]):
        sd[f"classifier.{k}.weight"], sd[f"classifier.{k}.bias"] = layer.weight, layer.bias
    model.load_state_dict({k: torch.from_numpy(numpy.asarray(v)) for k, v in sd.items()})
    return net, model.eval()


def test_features_only_hooks_are_a_rule_mismatch_naming_the_classifier_relus():
    """Oracle: PyTorch autograd with pytorch-cnn-visualizations' own hook code (guided ReLUs on
    ``model.features`` only), on a VGG-shaped net with fully connected layers. Compared with
    guided backprop it is a rule mismatch at relu6 and relu7, which act as the gradient; with
    nnviz's ``guided-features`` rule it is equal; nnviz's own ``torch-guided-features`` preset
    gives the same verdicts."""
    net, model = mini_vgg(3)
    x = numpy.random.default_rng(1).standard_normal((2, 3, 16, 16))
    CnnVisualizationsGuidedBackprop(model)
    report = C.compare(model, x, "fc8:3", net=net, rule="guided")
    assert report.verdict == "rule mismatch" and report.exit_status == 1, report.table()
    assert [(m["layer"], m["acts_as"]) for m in report.mismatches] == [("relu7", "backprop"), ("relu6", "backprop")]
    assert "rule mismatch at relu7, relu6" in report.reasons[0]
    assert report.row("input").verdict == "rule mismatch"
    assert C.compare(model, x, "fc8:3", net=net, rule="guided-features").verdict == "equal"
    clean_net, clean = mini_vgg(3)
    mine = C.compare(clean, x, "fc8:3", net=clean_net, preset="torch-guided-features")
    assert mine.verdict == "rule mismatch" and {m["layer"] for m in mine.mismatches} == {"relu6", "relu7"}
    assert C.compare(clean, x, "fc8:3", net=clean_net, preset="torch-guided-features",
                     rule="guided-features").verdict == "equal"
    assert C.compare(clean, x, "fc8:3", net=clean_net, preset="torch-guided").verdict == "equal"


# -- Keras (torch backend) ---------------------------------------------------------------------
def test_keras_file_equal_in_float64(tmp_path, capsys):
    """Oracle: Keras 3 (torch backend) running keras.applications.VGG16's layers (random
    weights, 32 px), read from a .keras file; nnviz reads the same file's weights. Every layer
    (each Conv2D's fused ReLU compared as a layer of its own) equal to 1e-10 in float64, from
    Python and from the command line (exit 0)."""
    keras = pytest.importorskip("keras")
    k = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = str(tmp_path / "vgg16.keras")
    k.save(path)
    subject = C.load(path)
    x = subject.net.preprocess(io.load_image("sample:coffee", (32, 32)))
    report = C.compare(subject, x, strongest(subject.net, x.astype(numpy.float64), "relu3_1"))
    assert report.verdict == "equal", report.table()
    assert report.info["dtype"] == "float64" and subject.net.preprocessing == "caffe"
    assert_nontrivial(report, subject.net, x)
    rc = cli.main(["compare", path, "--size", "32", "--image", "sample:coffee", "--target", "pool1:3",
                   "--json", "-"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["verdict"] == "equal" and out["layers"][-1]["layer"] == "pool1"


# -- ONNX Runtime --------------------------------------------------------------------------------
def test_onnx_export_forward_equal_in_float32(net, model, x, tmp_path, capsys):
    """Oracle: ONNX Runtime (CPU) on the VGG16 exported by torch.onnx.export (the TorchScript
    exporter, dynamo=False: the new one needs onnxscript, not installed); nnviz reads the
    weights from the .onnx with the onnx package. Forward only, float32, every layer equal to
    1e-4; a float64 request is bad input (exit 2)."""
    pytest.importorskip("onnxruntime")
    path = str(tmp_path / "vgg16.onnx")
    torch.onnx.export(model, (torch.zeros(1, 3, 32, 32),), path, dynamo=False, input_names=["input"])
    report = C.compare(path, x.astype(numpy.float32), strongest(net, x, "conv4_3"))
    assert report.verdict == "equal", report.table()
    assert report.info["dtype"] == "float32" and all(r.backward is None for r in report.rows)
    assert max(r.forward.rel for r in report.rows) < 1e-4
    assert report.row("conv4_3").forward.max_abs > 0          # computed by ONNX Runtime, not copied
    rc = cli.main(["compare", path, "--size", "32", "--target", "conv4_3:1", "--dtype", "float64"])
    err = capsys.readouterr().err
    assert rc == 2 and "float32" in err and len(err.strip().splitlines()) == 1


def test_onnx_import_of_weights_gemm_and_flatten(tmp_path, capsys):
    """Oracle: the state dict of the PyTorch model that torch.onnx.export wrote. The ONNX
    reader (initializers only, via the onnx package) gives back every tensor, Gemm weights
    (transB) included, and ONNX Runtime's forward of the fully connected part equals nnviz's;
    a graph with a layer that is no VGG's is refused with one line (exit 2)."""
    from nnviz import weights_onnx
    net, model = mini_vgg(5)
    path = str(tmp_path / "mini.onnx")
    torch.onnx.export(model, (torch.zeros(1, 3, 16, 16),), path, dynamo=False, input_names=["input"])
    steps = weights_onnx.chain(weights_onnx.load(path), "mini.onnx")
    assert [s.kind for s in steps] == ["conv", "relu", "pool", "conv", "relu", "pool", "flatten",
                                       "fc", "relu", "fc", "relu", "fc"]
    sd = model.state_dict()
    for s, key in zip([s for s in steps if s.weight is not None],
                      ["features.0", "features.3", "classifier.0", "classifier.3", "classifier.6"]):
        assert numpy.array_equal(s.weight, sd[f"{key}.weight"].numpy())
        assert numpy.array_equal(s.bias, sd[f"{key}.bias"].numpy())
    x = numpy.random.default_rng(2).standard_normal((1, 3, 16, 16)).astype(numpy.float32)
    report = C.compare(path, x, "fc8:4", net=net)
    assert report.verdict == "equal" and report.row("fc8").forward.rel < 1e-5, report.table()
    bad = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
    bad_path = str(tmp_path / "bad.onnx")
    torch.onnx.export(bad.train(), (torch.zeros(1, 3, 8, 8),), bad_path, dynamo=False,
                      training=torch.onnx.TrainingMode.TRAINING)
    rc = cli.main(["weights", "import", bad_path, "--out", str(tmp_path / "w.h5")])
    err = capsys.readouterr().err
    assert rc == 2 and "BatchNormalization" in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "w.h5")


def test_onnx_vgg16_imports_as_nnviz_weights(model, net, tmp_path):
    """Oracle: the exported model's own tensors: ``nnviz weights import x.onnx`` writes nnviz's
    format (arch detected, torchvision's preprocessing) holding exactly them."""
    path = str(tmp_path / "vgg16.onnx")
    torch.onnx.export(model, (torch.zeros(1, 3, 32, 32),), path, dynamo=False)
    assert cli.main(["weights", "import", path, "--out", str(tmp_path / "v.h5"), "-q"]) == 0
    back = nnviz.vgg16(weights=str(tmp_path / "v.h5"), include_top=False)
    assert back.preprocessing == "torch"
    for (k, a), (k2, b) in zip(back.parameters(), net.parameters()):
        assert k == k2 and numpy.array_equal(a, b)


# -- ties and real differences -------------------------------------------------------------------
def near_ties(net, x, count=40):
    """``x`` moved (float64, least-norm steps) so that in ``count`` pool1 windows the two
    largest conv1_2 outputs are equal: d_k(x) = a_k(x) - b_k(x) is linear in x between ReLU
    kinks, its Jacobian J (one batched backward); chord steps x -= J⁺ d(x) until d ~ 1e-12."""
    net.forward(x, until="relu1_2")
    a = net.activations["relu1_2"][0]
    c, h, w = a.shape
    win = a.reshape(c, h // 2, 2, w // 2, 2).transpose(0, 1, 3, 2, 4).reshape(c, h // 2, w // 2, 4)
    top = numpy.sort(win, axis=-1)
    gap = numpy.where(top[..., -2] > 0.1 * a.max(), top[..., -1] - top[..., -2], numpy.inf)
    windows = numpy.stack(numpy.unravel_index(numpy.argsort(gap, axis=None)[:count], gap.shape), axis=1)
    pairs = []
    for ch, i, j in windows:
        p, q = numpy.argsort(-win[ch, i, j])[:2]
        pairs.append(((ch, 2 * i + p // 2, 2 * j + p % 2), (ch, 2 * i + q // 2, 2 * j + q % 2)))
    act = net.forward(numpy.repeat(x, len(pairs), axis=0), until="conv1_2")
    seed = numpy.zeros_like(act)
    for k, (p, q) in enumerate(pairs):
        seed[(k,) + p], seed[(k,) + q] = 1, -1
    pinv = numpy.linalg.pinv(net.backward(seed, start="conv1_2").reshape(len(pairs), -1))
    for _ in range(6):
        act = net.forward(x, until="conv1_2")[0]
        d = numpy.array([act[p] - act[q] for p, q in pairs])
        x = x - (pinv @ d).reshape(x.shape)
    assert numpy.abs(d).max() < 1e-9 * numpy.abs(act).max(), numpy.abs(d).max()
    return x


def test_float32_ties_in_pooling_windows_are_a_tie_and_pass(net, model, x):
    """Oracle: PyTorch autograd in float32, on an input made to tie (to float64 precision) in
    40 pool1 windows: float32 rounding then routes the gradient of some windows differently in
    PyTorch and in nnviz. The verdict is ``tie`` at pool1 (count, first window and its two
    values reported), the rows below pool1 are ties, the exit status 0, and the pytest helper
    passes; the photograph before the ties were made is equal in float32."""
    xt = near_ties(net, x)
    x32 = xt.astype(numpy.float32)
    report = C.compare(model, x32, "conv2_1:5", dtype="float32")
    assert report.verdict == "tie" and report.exit_status == 0, report.table()
    (tie,) = report.ties
    assert tie["layer"] == "pool1" and tie["count"] >= 1
    v1, v2 = tie["values"]
    assert abs(v1 - v2) <= 1e-4 * abs(v1)
    assert report.row("relu1_2").verdict == "tie" and report.row("pool1").verdict == "equal"
    assert report.row("relu1_2").backward.rel > 1e-4          # a real difference, explained
    assert "tie at pool1" in report.table()
    assert_matches_reference(model, x32, target="conv2_1:5", dtype="float32")
    assert C.compare(model, x.astype(numpy.float32), "conv2_1:5", dtype="float32").verdict == "equal"


def test_one_altered_weight_is_the_first_difference_exit_1(net, tmp_path, capsys):
    """Oracle: PyTorch autograd on a torchvision state dict in which one weight of conv3_1 was
    changed, against nnviz with the unchanged weights (--weights): conv3_1 is named as the first
    layer that differs, with both values; the layers before it are equal; exit status 1."""
    ref = str(tmp_path / "reference.h5")
    net.save_weights(ref)
    sd = state_dict_of(net)
    sd["features.10.weight"][5, 17, 1, 1] += 0.05          # conv3_1 (features.10)
    path = str(tmp_path / "altered.pth")
    torch.save(sd, path)
    out_json = str(tmp_path / "report.json")
    rc = cli.main(["compare", path, "--weights", ref, "--size", "32", "--target", "relu3_2:5",
                   "--image", "sample:chelsea", "--json", out_json])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "first difference: conv3_1 (forward)" in out and "verdict: differs" in out
    rep = json.load(open(out_json))
    assert rep["first_difference"]["layer"] == "conv3_1" and rep["exit_status"] == 1
    rows = {r["layer"]: r for r in rep["layers"]}
    assert rows["pool2"]["forward"]["relative"] < 1e-10 and rows["conv3_1"]["verdict"] == "differs"
    assert rows["conv3_1"]["forward"]["where"][1] == 5          # the altered filter's channel
    assert rc == cli.main(["compare", path, "--weights", ref, "--size", "32", "--target", "relu3_2:5", "-q"])
    capsys.readouterr()


# -- golden traces ---------------------------------------------------------------------------------
def test_trace_formats_schema_and_golden_compare(net, model, x, tmp_path, capsys):
    """Oracle: the arrays ``nnviz.methods.trace`` returns, loaded back with NumPy alone from
    .npz and from a folder of .npy (allow_pickle=False), and with h5py from .h5, all with the
    documented schema; then PyTorch with guided hooks checked against the saved trace
    (``--golden``, nnviz not recomputing: exit 0) and plain PyTorch autograd against the same
    guided trace (rule mismatch, exit 1)."""
    target = strongest(net, x, "relu2_2")
    ref = methods.trace(net, x, target, "guided")
    paths = {}
    for fmt in ("npz", "npy", "h5"):
        p = str(tmp_path / ("trace" if fmt == "npy" else f"trace.{fmt}"))
        methods.trace(net, x, target, "guided", path=p, format=fmt)
        paths[fmt] = p
    with numpy.load(paths["npz"], allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        assert numpy.array_equal(z["relu2_2/gradient"], ref["relu2_2"][1])
    assert meta["schema"] == "nnviz-trace/1" and meta["layers"][0] == "input" and meta["layers"][-1] == "relu2_2"
    assert meta["rule"] == "guided" and meta["dtype"] == "float64" and meta["target"] == target
    assert meta["weights_sha256"] == weights_digest(net) and len(meta["weights_sha256"]) == 64
    assert numpy.array_equal(numpy.load(os.path.join(paths["npy"], "conv2_1.activation.npy")), ref["conv2_1"][0])
    for fmt, p in paths.items():
        arrays, m = read_trace(p)
        assert m["layers"] == meta["layers"], fmt
        for name, (a, g) in ref.items():
            assert numpy.array_equal(arrays[name][0], a) and numpy.array_equal(arrays[name][1], g), (fmt, name)
    pth = str(tmp_path / "vgg16.pth")
    torch.save(model.state_dict(), pth)
    rc = cli.main(["compare", pth, "--golden", paths["npz"], "--preset", "torch-guided"])
    out = capsys.readouterr().out
    assert rc == 0 and "verdict: equal" in out and "golden trace trace.npz" in out, out
    rc = cli.main(["compare", pth, "--golden", paths["npy"], "--preset", "torch"])
    out = capsys.readouterr().out
    assert rc == 1 and "verdict: rule mismatch" in out and "act as 'backprop'" in out, out


def test_trace_command_writes_npz_and_npy(tmp_path, capsys):
    """``nnviz trace --format npz`` and ``--format npy`` write the schema's files; the
    gradient at the input is non-zero (oracle: the same trace read from HDF5)."""
    base = ["trace", "--weights", "random", "--size", "32", "--target", "relu3_1:2", "--rule", "guided"]
    outs = {}
    for fmt in ("npz", "npy", "h5"):
        rc = cli.main(base + ["--out", str(tmp_path / fmt), "--format", fmt])
        out = capsys.readouterr().out.split()
        assert rc == 0 and len(out) == 1
        outs[fmt] = out[0]
    assert outs["npz"].endswith(".npz") and os.path.isdir(outs["npy"]) and outs["h5"].endswith(".h5")
    arrays = {fmt: read_trace(p)[0] for fmt, p in outs.items()}
    assert numpy.abs(arrays["h5"]["input"][1]).max() > 0
    for fmt in ("npz", "npy"):
        assert numpy.array_equal(arrays[fmt]["input"][1], arrays["h5"]["input"][1])


# -- the pytest helper, the old tool, bad input ----------------------------------------------------
def test_pytest_helper_passes_and_fails_with_the_report(net, model, x):
    """Oracle: PyTorch with guided hooks (passes) and plain autograd asked for guided (fails,
    the AssertionError carrying the per-layer table and the verdict)."""
    target = strongest(net, x, "relu2_2")
    report = assert_matches_reference(model, x, rule="guided", preset="torch-guided", target=target)
    assert report.verdict == "equal"
    with pytest.raises(AssertionError) as e:
        assert_matches_reference(model, x, rule="guided", target=target)
    text = str(e.value)
    assert "rule mismatch" in text and "relu1_1" in text and "backward max|d|" in text


def test_compare_torch_tool_reports_every_layer(tmp_path, capsys):
    """tools/compare_torch.py (now a wrapper over nnviz compare): nnviz vs PyTorch with guided
    hooks, layer by layer, float64: every layer within 1e-10 (moved from test_attribution.py)."""
    path = os.path.join(ROOT, "tools", "compare_torch.py")
    spec = importlib.util.spec_from_file_location("compare_torch", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    report = str(tmp_path / "r.json")
    assert mod.main(["--weights", "random", "--size", "32", "--dtype", "float64",
                     "--target", "relu4_1:3", "--rule", "guided", "--json", report]) == 0
    out = capsys.readouterr().out
    assert "relu4_1" in out and "conv1_1" in out and "verdict: equal" in out
    rows = json.load(open(report))["layers"]
    assert [r["layer"] for r in rows][-1] == "relu4_1" and len(rows) == 20
    worst = max(max(r["forward"]["relative"], r["backward"]["relative"]) for r in rows)
    assert worst < 1e-10


BAD = [([], "compare needs MODEL"),
       (["{pth}", "--preset", "keras"], "runs a keras model"),
       (["{pth}", "--preset", "nope"], "unknown preset 'nope'"),
       (["{pth}", "--rule", "sideways"], "unknown backward rule 'sideways'"),
       (["{pth}", "--target", "fc8:3", "--size", "32"], "fully connected"),
       (["{pth}", "--json", "{pth}"], "refusing to overwrite an input file"),
       (["{txt}"], "not a model nnviz compare can run")]


@pytest.mark.parametrize("argv,message", BAD)
def test_bad_input_is_one_line_exit_2(argv, message, model, tmp_path, capsys):
    pth, txt = tmp_path / "m.pth", tmp_path / "m.txt"
    torch.save(model.state_dict(), pth)
    txt.write_text("hello")
    argv = [a.format(pth=pth, txt=txt) for a in argv]
    rc = cli.main(["compare"] + argv + ["--size", "32"] * ("--size" not in argv and bool(argv)))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_python_entry_point():
    """``nnviz.compare`` is the library function."""
    assert nnviz.compare is C.compare
    with pytest.raises(InputError, match="needs an input batch"):
        nnviz.compare(TorchvisionVGG())
