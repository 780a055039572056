"""A framework's model made ready to compare (:func:`load`): which framework runs it (a model
object or a file: PyTorch, Keras or ONNX), its preset, its side (the adapter that runs it
layer by layer) and nnviz's reference net, holding the model's own weights unless others are
named."""
import os
from dataclasses import dataclass, field

from ... import weights as W
from ... import weights_onnx
from ...errors import BadFile, BadOption
from ...vgg import PREPROCESSING
from .keras_side import KerasSide, keras_params, load_keras_model
from .onnx_side import OnnxSide
from .presets import Preset, get_preset
from .reference import net_from_params
from .torch_side import TorchSide, load_torch_state_dict, torch_params


def framework_of(model):
    """``"torch"``, ``"keras"`` or ``"onnx"`` for a model object or a file."""
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise BadFile(f"{path}: no such model file")
        with open(path, "rb") as fh:
            head = fh.read(8)
        low = path.lower()
        if low.endswith(".onnx"):
            return "onnx"
        if head == b"\x89HDF\r\n\x1a\n" or low.endswith((".keras", ".h5")):
            return "keras"
        if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80" or low.endswith((".pth", ".pt")):
            return "torch"
        raise BadFile(f"{path}: not a model nnviz compare can run (a PyTorch state dict .pth/.pt, "
                      f"a Keras .keras/.h5 model, or an ONNX .onnx file)")
    mod = type(model).__module__
    if mod.startswith("onnx"):
        return "onnx"
    if any(c.__module__.split(".")[0] == "keras" for c in type(model).__mro__):
        return "keras"            # before torch: on the torch backend a Keras model is a torch Module
    try:
        import torch
        if isinstance(model, torch.nn.Module):
            return "torch"
    except ImportError:
        pass
    raise BadFile(f"a {type(model).__name__} is not a model nnviz compare can run (a torch.nn.Module, a "
                  f"Keras model, or a path to a .pth/.pt, .keras/.h5 or .onnx file)")


@dataclass
class Subject:
    """A framework's model made ready to compare: ``side`` (runs the framework), ``net``
    (nnviz's reference net with the same weights unless ``weights`` named others), the
    preset, and a description."""

    side: object
    net: object
    preset: Preset
    what: str
    framework: str
    notes: list = field(default_factory=list)


def _open(fw, model, path):
    """``(the model the side runs, its description, a function giving its parameters, its
    default preprocessing)`` for a model object or file ``path`` of the framework ``fw``."""
    name = os.path.basename(path) if path else None
    if fw == "torch":
        obj = load_torch_state_dict(path) if path else model
        what = f"PyTorch state dict {name}" if path else f"PyTorch module {type(model).__name__}"
        return obj, what, lambda: torch_params(obj), "torch"
    if fw == "keras":
        obj = load_keras_model(path) if path else model
        what = f"Keras model {name}" if path else f"Keras model {model.name}"
        return obj, what, lambda: keras_params(obj), "caffe"
    if path is None:
        raise BadOption("an ONNX model is compared from its file: pass the path of the .onnx file")
    return weights_onnx.load(path), f"ONNX {name}", lambda: W.read(path)[0], "torch"


def load(model, preset=None, weights=None, net=None, preprocess=None, device=None):
    """Prepare ``model`` for :func:`nnviz.methods.compare.compare`: a :class:`Subject`.
    ``weights``: a weight file for the reference (default: the model's own weights); ``net``:
    a ready reference net instead (any chain of nnviz layers; the model's layers must match
    it); ``preprocess``: the input convention (default: torchvision's ``"torch"`` for PyTorch
    and ONNX models, ``"caffe"`` for Keras models)."""
    if isinstance(model, Subject):
        return model
    fw = framework_of(model)
    preset = get_preset(preset, fw)
    if preprocess is not None and preprocess not in PREPROCESSING:
        raise BadOption(f"unknown preprocessing {preprocess!r}: expected one of {', '.join(PREPROCESSING)}")
    path = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
    obj, what, params, default_pre = _open(fw, model, path)
    if net is None and weights is None:
        net = net_from_params(params(), preprocess=preprocess or default_pre, source=what, device=device)
    elif net is None:
        p, meta = W.read(weights)
        net = net_from_params(p, preprocess=preprocess or meta["preprocess"],
                              source=meta.get("source", os.path.basename(os.fspath(weights))), device=device)
    elif preprocess is not None:
        net.preprocessing = preprocess
    if fw == "torch":
        side = TorchSide(obj, net, preset, what)
    elif fw == "keras":
        side = KerasSide(obj, net, preset, what)
    else:
        side = OnnxSide(path, net, preset, model=obj)
    return Subject(side, net, preset, what, fw, list(getattr(side, "notes", [])))
