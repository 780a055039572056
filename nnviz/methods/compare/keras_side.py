"""The Keras side of a comparison: a Keras 3 model on the torch backend (an object, a
``.keras`` file or a full-model ``.h5``), its layers called one by one in the comparison's
dtype, each Conv2D's or Dense's fused ReLU applied as a step of its own, the gradient by torch
autograd; channels-last arrays turned to nnviz's NCHW. A file's config is checked to name only
a plain VGG's layers before Keras loads it.

keras is imported inside the functions that need it (with ``KERAS_BACKEND=torch``)."""
import json
import math
import os
from collections import OrderedDict

import numpy

from ... import weights as W
from ...errors import BadFile, BadOption
from .reference import kind_of, match
from .torch_side import import_torch, torch_dtype


def import_keras():
    """The ``keras`` module on the torch backend (a :class:`BadOption` otherwise)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        raise BadOption("comparing a Keras model needs keras (pip install keras)") from None
    if keras.backend.backend() != "torch":
        raise BadOption(f"Keras runs on the {keras.backend.backend()!r} backend; nnviz compare needs "
                        f"KERAS_BACKEND=torch (set it before Keras is first imported)")
    return keras


KERAS_ALLOWED = {"InputLayer", "Conv2D", "MaxPooling2D", "AveragePooling2D", "Flatten", "Dense", "Dropout",
                 "ReLU", "Activation", "Sequential", "Functional", "Model"}
# classes a config names beside its layers (dtype policies, initializers)
KERAS_CONFIG_ONLY = {"DTypePolicy", "GlorotUniform", "Zeros", "HeNormal", "HeUniform", "RandomNormal",
                     "RandomUniform", "GlorotNormal", "TruncatedNormal", "Constant", "Ones"}


def _config_classes(config):
    """Every ``class_name`` in a Keras model config (to refuse unknown layers before loading)."""
    found = set()
    if isinstance(config, dict):
        if "class_name" in config and isinstance(config["class_name"], str) and "config" in config:
            found.add(config["class_name"])
        for v in config.values():
            found |= _config_classes(v)
    elif isinstance(config, list):
        for v in config:
            found |= _config_classes(v)
    return found


def load_keras_model(path):
    """A Keras model from ``.keras`` or a legacy full-model ``.h5``, after checking that its
    config names only plain VGG layers (no ``Lambda``: nothing from the file is run)."""
    import zipfile
    name = os.path.basename(os.fspath(path))
    config = None
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if "config.json" in z.namelist():
                config = json.loads(z.read("config.json"))
    else:
        import h5py
        with h5py.File(path, "r") as f:
            if "model_config" in f.attrs:
                raw = f.attrs["model_config"]
                config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    if config is None:
        raise BadFile(f"{name}: no model config (a weights-only file); nnviz compare needs the model: "
                      f"save it with model.save('model.keras')")
    classes = _config_classes(config.get("config", config)) - KERAS_CONFIG_ONLY
    classes.discard(config.get("class_name"))
    bad = sorted(c for c in classes if c not in KERAS_ALLOWED and not c.startswith("__"))
    if bad:
        raise BadFile(f"{name}: layers {', '.join(bad)} are not part of a plain VGG (refused before loading: "
                      f"nothing from the file is run)")
    keras = import_keras()
    try:
        return keras.saving.load_model(os.fspath(path), compile=False, safe_mode=True)
    except (ValueError, TypeError, OSError, KeyError) as e:
        raise BadFile(f"{name}: Keras could not load the model: {e}") from None


def keras_layers(model):
    """``[(kind, label, layer, activation)]`` of a Keras model's layers in order (nested
    models unrolled); ``activation`` the fused activation of a Conv2D/Dense ("relu" or None)."""
    out = []

    def walk(m):
        for layer in m.layers:
            if getattr(layer, "layers", None):
                walk(layer)
                continue
            cls = type(layer).__name__
            act = None
            if cls in ("Conv2D", "Dense"):
                act = layer.get_config().get("activation", "linear")
                act = act if isinstance(act, str) else getattr(layer.activation, "__name__", str(act))
                if act not in ("relu", "linear") and not (act == "softmax" and cls == "Dense"):
                    raise BadFile(f"Keras layer {layer.name} has activation {act!r}; a VGG uses relu")
                out.append(("conv" if cls == "Conv2D" else "fc", layer.name, layer, act))
            elif cls == "MaxPooling2D":
                out.append(("pool", layer.name, layer, None))
            elif cls == "AveragePooling2D":
                out.append(("avgpool", layer.name, layer, None))
            elif cls == "Flatten":
                out.append(("flatten", layer.name, layer, None))
            elif cls == "ReLU" or (cls == "Activation" and layer.get_config().get("activation") == "relu"):
                out.append(("relu", layer.name, layer, "layer"))
            elif cls in ("InputLayer", "Dropout") or (cls == "Activation" and
                                                       layer.get_config().get("activation") in ("linear", "softmax")):
                continue
            else:
                raise BadFile(f"Keras layer {layer.name} ({cls}) is not a layer of a plain VGG")
    walk(model)
    return out


def keras_format(model):
    """The model's data format: ``"channels_last"`` (Keras's default) or ``"channels_first"``."""
    for _, _, layer, _ in keras_layers(model):
        fmt = getattr(layer, "data_format", None)
        if fmt:
            return fmt
    return "channels_last"


def keras_params(model):
    """nnviz parameters from a Keras model's layers, in order (kernels transposed to PyTorch
    layouts; the first Dense after a channels-last Flatten has its rows put in C, H, W order)."""
    convs, fcs = [], []
    last = keras_format(model) == "channels_last"
    shape = None
    for kind, label, layer, _ in keras_layers(model):
        if kind == "flatten":
            shape = tuple(layer.input.shape[1:])
        if kind not in ("conv", "fc"):
            continue
        ws = [numpy.asarray(w, numpy.float32) for w in layer.get_weights()]
        if len(ws) != 2:
            raise BadFile(f"Keras layer {label} has {len(ws)} weights; a VGG layer has a kernel and a bias")
        k, b = ws
        if kind == "conv":
            convs.append((label, k.shape, k.transpose(3, 2, 0, 1), b))    # (kh, kw, C, O) -> (O, C, kh, kw)
        else:
            w = k.T                                          # (in, out) -> (out, in)
            if not fcs and last and shape is not None and len(shape) == 3:
                h, wd, c = shape                             # Keras flattened H, W, C; nnviz C, H, W
                w = w.reshape(-1, h, wd, c).transpose(0, 3, 1, 2).reshape(w.shape[0], -1)
            fcs.append((label, k.shape, numpy.ascontiguousarray(w), b))
    return W.assemble(convs, fcs, None, f"the Keras model {model.name}")[0]


class KerasSide:
    """A Keras 3 model (torch backend) as the framework side: its layers are called one by one
    (clones in the comparison's dtype), a Conv2D's or Dense's fused ReLU applied separately so
    that both outputs are compared; the gradient comes from torch autograd."""

    framework = "keras"

    def __init__(self, model, net, preset, what=None):
        self.model, self.net, self.preset = model, net, preset
        self.what = what or f"Keras model {model.name}"
        self.last = keras_format(model) == "channels_last"
        found = []
        self.softmax = False
        for kind, label, layer, act in keras_layers(model):
            found.append((kind, label, (layer, act)))
            if act == "relu" and kind in ("conv", "fc"):
                found.append(("relu", f"{label} (its relu)", (layer, "fused")))
            self.softmax |= act == "softmax"
        self.steps = match(net, found, self.what)
        self.notes = ["the softmax after fc8 is left out: nnviz compares pre-softmax scores"] if self.softmax else []

    @property
    def names(self):
        return [s[0] for s in self.steps]

    def _clone(self, layer, dtype):
        """The layer in ``dtype`` with the same weights; a Conv2D's or Dense's activation left
        out (the ReLU is applied as a step of its own)."""
        cfg = layer.get_config()
        cfg["dtype"] = str(dtype)
        if type(layer).__name__ in ("Conv2D", "Dense"):
            cfg["activation"] = "linear"
        new = type(layer).from_config(cfg)
        weights = layer.get_weights()
        if weights:
            new.build((None,) + tuple(layer.input.shape[1:]))
            new.set_weights([numpy.asarray(w, dtype) for w in weights])
        return new

    def _to_nchw(self, t, flat_shape):
        a = t.detach().cpu().numpy()
        if not self.last:
            return a
        if a.ndim == 4:
            return a.transpose(0, 3, 1, 2)
        if flat_shape is not None and a.shape[1] == math.prod(flat_shape):
            h, w, c = flat_shape
            return a.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(a.shape[0], -1)
        return a

    def _from_nchw(self, a, flat_shape, flat):
        if not self.last:
            return a
        if a.ndim == 4:
            return a.transpose(0, 2, 3, 1)
        if flat and flat_shape is not None:
            h, w, c = flat_shape
            return a.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(a.shape[0], -1)
        return a

    def run(self, x, target, seed, dtype):
        torch = import_torch()
        keras = import_keras()
        relu = keras.activations.get("relu")
        tdtype = torch_dtype(dtype)
        xin = x.transpose(0, 2, 3, 1) if self.last else x
        xt = torch.from_numpy(numpy.ascontiguousarray(xin)).to(tdtype).requires_grad_(True)
        record = OrderedDict()
        kept = []

        def keep(name, h):
            record[name] = [h, None]
            kept.append(name)
            if h.requires_grad:
                def hook(g, name=name):
                    record[name][1] = g.detach().clone()
                h.register_hook(hook)

        keep("input", xt)
        h, flat_shape, flat_names = xt, None, set()
        for name, _, (layer, act) in self.steps:
            if layer is None:
                raise BadFile(f"{self.what}: no Flatten layer before the first Dense")
            if act == "fused":
                h = relu(h)
            else:
                if kind_of(self.net.layers[name]) == "flatten":
                    flat_shape = tuple(h.shape[1:])
                    flat_names.add(name)
                h = self._clone(layer, dtype)(h)
            keep(name, h)
            if name == target.layer:
                break
        if self.preset.backward:
            st = self._from_nchw(seed, flat_shape, target.layer in flat_names)
            torch.autograd.backward(h, grad_tensors=torch.from_numpy(numpy.ascontiguousarray(st)).to(tdtype))
        out = OrderedDict()
        for name in kept:
            a, g = record[name]
            fs = flat_shape if name in flat_names else None
            out[name] = (self._to_nchw(a, fs), None if g is None else self._to_nchw(g, fs))
        return out
