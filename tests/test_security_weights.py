"""Hostile weight files (issue: hostile and broken input, items 1, 2 and 10), built with the
real libraries — Python's pickler with torch's own rebuild function for crafted tensor views
(tests/hostile.py), torch.save, zlib for decompression bombs, h5py's external storage,
ExternalLink and virtual datasets, Keras 3 for Lambda layers — and fed to ``nnviz weights
import`` and ``--weights``. Each is refused with exit status 2 and one line, writes nothing,
and leaves its input unchanged (hashes before and after). The oracle for what a tensor is:
``torch.load(weights_only=True)``."""
import hashlib
import os
import pickle
import time
import zipfile

import h5py
import hostile
import numpy
import pytest
import torch
from conftest import run_nnviz

from nnviz import weights
from nnviz.errors import InputError


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def run(argv, capsys):
    """``nnviz`` in-process: exit status and the lines it printed on stderr."""
    rc, _, err = run_nnviz(argv, capsys)
    return rc, err


def refused(src, tmp_path, capsys, *words):
    """``nnviz weights import src``: exit 2, one line naming the file and ``words``, nothing
    written, the input unchanged."""
    before = sha(src)
    out = tmp_path / "out"
    rc, lines = run(["weights", "import", src, "--out", out / "w.h5"], capsys)
    assert rc == 2 and len(lines) == 1, lines
    assert lines[0].startswith("nnviz weights: error: ") and os.path.basename(src) in lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert "\x1b" not in lines[0] and "weights_only=False" not in lines[0]
    assert not out.exists() or not any(out.iterdir())
    assert sha(src) == before
    return lines[0]


@pytest.fixture(params=["restricted", "torch"])
def loader(request, monkeypatch):
    monkeypatch.setenv("NNVIZ_TORCH_LOADER", request.param)
    return request.param


# -- 1. crafted views, bombs -------------------------------------------------------------------

@pytest.mark.parametrize("offset,size,stride", [
    (1000, (2, 3), (4, 1)),              # past the end: the old reader copied heap memory
    (0, (4096, 4096), (1 << 40, 1)),     # a huge stride: the old reader crashed (SIGSEGV)
    (11, (2,), (1,)),                     # one element too far
    (0, (3, 5), (5, 1)),                  # size larger than the storage
])
def test_view_outside_its_storage_is_refused(tmp_path, capsys, loader, offset, size, stride):
    s = hostile.storage("0", "FloatStorage", numpy.arange(12))
    src = hostile.write_pth(tmp_path / "view.pth", {"features.0.weight": hostile.Tensor(
        s, offset, size, stride)})
    with pytest.raises(RuntimeError):                  # the oracle refuses it too
        torch.load(src, weights_only=True)
    line = refused(src, tmp_path, capsys)
    if loader == "restricted":
        assert "beyond its storage" in line


def test_storage_shorter_than_it_says_is_refused(tmp_path, capsys, loader):
    s = hostile.Storage("0", "FloatStorage", 1 << 20, numpy.zeros(4, "<f4").tobytes())
    src = hostile.write_pth(tmp_path / "short.pth", {"w": hostile.Tensor(s, 0, (4,), (1,))})
    refused(src, tmp_path, capsys)


def test_decompression_bomb_is_refused_before_inflating(tmp_path, capsys, monkeypatch):
    """A 0.25 MB file whose storage record inflates to 256 MiB is refused at once (torch's
    own files store records uncompressed)."""
    monkeypatch.setenv("NNVIZ_TORCH_LOADER", "restricted")
    n = 64 << 20                                        # float32 elements: 256 MiB
    s = hostile.Storage("0", "FloatStorage", n, bytes(4 * n))
    src = hostile.write_pth(tmp_path / "bomb.pth", {"w": hostile.Tensor(s, 0, (n,), (1,))},
                            compress=True)
    assert os.path.getsize(src) < (1 << 20)
    start = time.perf_counter()
    refused(src, tmp_path, capsys, "inflates")
    assert time.perf_counter() - start < 5


def test_a_string_or_a_list_is_not_a_state_dict(tmp_path, capsys, loader):
    torch.save("hello", tmp_path / "str.pth")
    refused(tmp_path / "str.pth", tmp_path, capsys, "str", "not a state dict")
    torch.save({"features.0.weight": "not a tensor"}, tmp_path / "val.pth")
    refused(tmp_path / "val.pth", tmp_path, capsys, "features.0.weight", "not a tensor")


class _Command:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_refusal_names_the_global_and_never_runs_it(tmp_path, capsys, loader):
    """The message says which global was refused and that nnviz never runs code from a file
    (no ANSI escapes, no advice to pass weights_only=False)."""
    marker = tmp_path / "pwned"
    torch.save({"features.0.weight": _Command(marker)}, tmp_path / "evil.pth")
    line = refused(tmp_path / "evil.pth", tmp_path, capsys, "never runs code")
    assert "system" in line, line
    assert not marker.exists()


# -- 2. HDF5 that reads outside itself ----------------------------------------------------------

def _own_file(path, secret=None, how=None):
    """A tiny file of nnviz's format (attributes and one dataset), with ``how``:
    ``external`` (conv1_1/weight stored in the file ``secret``), ``link`` (an ExternalLink to
    ``secret``) or ``virtual`` (a virtual dataset mapping ``secret``)."""
    with h5py.File(path, "w") as f:
        f.attrs.update(arch="vgg16", preprocess="caffe", source="test", license="test")
        g = f.create_group("conv1_1")
        if how == "external":
            g.create_dataset("weight", shape=(64, 3, 3, 3), dtype="<f4",
                             external=[(str(secret), 0, 64 * 27 * 4)])
        elif how == "link":
            g["weight"] = h5py.ExternalLink(str(secret), "/data")
        elif how == "virtual":
            layout = h5py.VirtualLayout(shape=(64, 3, 3, 3), dtype="<f4")
            layout[:] = h5py.VirtualSource(str(secret), "data", shape=(64, 3, 3, 3))
            g.create_virtual_dataset("weight", layout, fillvalue=0)
        else:
            g.create_dataset("weight", data=numpy.zeros((64, 3, 3, 3), "<f4"))
        g.create_dataset("bias", data=numpy.zeros(64, "<f4"))
    return path


@pytest.mark.parametrize("how,word", [("external", "stored in other files"),
                                      ("link", "link to another file"), ("virtual", "virtual")])
def test_hdf5_reading_outside_the_file_is_refused(tmp_path, capsys, how, word):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(os.urandom(64 * 27 * 4))
    if how != "external":
        with h5py.File(tmp_path / "secret.h5", "w") as f:
            f.create_dataset("data", data=numpy.ones((64, 3, 3, 3), "<f4"))
        secret = tmp_path / "secret.h5"
    src = _own_file(tmp_path / f"{how}.h5", secret, how)
    with h5py.File(src, "r") as f:                    # h5py itself would read the other file
        assert numpy.asarray(f["conv1_1/weight"]).size == 64 * 27
    refused(src, tmp_path, capsys, word)
    before = sha(src)
    rc, lines = run(["info", "--weights", src], capsys)            # and as --weights
    assert rc == 2 and len(lines) == 1 and word in lines[0], lines
    assert sha(src) == before


# -- non-finite weights, Lambda layers ------------------------------------------------------------

def _torch_vgg_state(seed=0):
    g = torch.Generator().manual_seed(seed)
    sd, c_in, k = {}, 3, 0
    for width, count in zip((64, 128, 256, 512, 512), (2, 2, 3, 3, 3)):
        for _ in range(count):
            sd[f"features.{k}.weight"] = torch.randn(width, c_in, 3, 3, generator=g) * 0.05
            sd[f"features.{k}.bias"] = torch.zeros(width)
            c_in, k = width, k + 2
        k += 1
    return sd


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_layer(tmp_path, capsys, bad):
    sd = _torch_vgg_state()
    sd["features.10.weight"][3, 2, 1, 0] = bad                 # conv3_1
    torch.save(sd, tmp_path / "nan.pth")
    refused(tmp_path / "nan.pth", tmp_path, capsys, "conv3_1", "non-finite")
    # a file of nnviz's own format with NaN, loaded with --weights: refused too
    good = tmp_path / "good.h5"
    torch.save(_torch_vgg_state(), tmp_path / "good.pth")
    weights.convert(tmp_path / "good.pth", good)
    with h5py.File(good, "r+") as f:
        w = f["conv4_2/weight"][...]
        w[0, 0, 0, 0] = bad
        f["conv4_2/weight"][...] = w
    rc, lines = run(["saliency", "--weights", good, "--size", "32", "--out", tmp_path / "o"],
                    capsys)
    assert rc == 2 and len(lines) == 1 and "conv4_2" in lines[0] and "non-finite" in lines[0]
    assert not (tmp_path / "o").exists()


def test_lambda_layers_are_named_as_ignored(tmp_path, capsys):
    """Keras 3 models with a Lambda layer before VGG16, saved as legacy .h5 and as .keras: the
    weights import, and the command says the Lambda was ignored (its code never ran)."""
    keras = pytest.importorskip("keras")
    marker = tmp_path / "lambda-ran"
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t * 1.0, name="scale")(inp)
    model = keras.Model(inp, vgg(x))
    for ext in (".h5", ".keras"):
        src = tmp_path / f"lam{ext}"
        model.save(src)
        rc, lines = run(["weights", "import", src, "--out", tmp_path / f"w{ext}.h5"], capsys)
        assert rc == 0, lines
        assert any("Lambda layer 'scale' was ignored" in ln for ln in lines), lines
        assert (tmp_path / f"w{ext}.h5").exists() and not marker.exists()


def test_pickle_of_our_own_globals_does_not_pass_as_storage(tmp_path, loader):
    """A tensor whose 'storage' is another tensor, or a plain value, is refused."""
    s = hostile.storage("0", "FloatStorage", numpy.arange(6))
    t = hostile.Tensor(s, 0, (2, 3), (3, 1))
    evil = hostile.Tensor(t, 0, (2,), (1,))
    src = hostile.write_pth(tmp_path / "nested.pth", {"a": t, "b": evil})
    with pytest.raises(InputError):
        weights.read_state_dict(src, loader=loader)


def test_pickle_larger_than_the_bound_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "MAX_PICKLE_BYTES", 1000)
    src = tmp_path / "big.pth"
    with zipfile.ZipFile(src, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"x": "y" * 5000}, protocol=2))
    with pytest.raises(InputError, match="pickle is larger"):
        weights.read_state_dict(src, loader="restricted")
