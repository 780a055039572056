"""nnviz as the oracle: another framework's forward and backward, layer by layer, against the
reference, with a verdict. The backward rules compared are the gradient (Simonyan et al. 2013),
the deconvnet (Zeiler & Fergus 2014), guided backprop (Springenberg et al. 2015) and, when
:mod:`nnviz.rules` has them, the LRP composites (Bach et al. 2015; zennit's names).

:func:`compare` runs one batch ``x`` (NCHW, preprocessed) through nnviz and through the user's
model — a PyTorch module in torchvision's layout (``features``, ``classifier``) or any module
whose leaf modules are a VGG's chain, a PyTorch state dict file, a Keras model (object,
``.keras`` or ``.h5``), or an ONNX file run by ONNX Runtime — with the same weights (read from
the user's model unless ``weights`` names the reference's), then goes back from the target's
seed under a backward rule on both sides. For every layer it reports the forward difference
(the activation) and the backward difference (the signal arriving at the layer's output, and
at the input): max-abs, relative to the layer's largest reference entry, and where the worst
element is, with both values.

Each layer gets a verdict:

- ``equal``: within ``atol + rtol · max|reference|`` (default rtol 1e-10 in float64, 1e-4 in
  float32; atol 0).
- ``tie``: the difference comes from max-pooling windows whose top two values differ by less
  than that tolerance (the dtype's resolution as the comparison sees it), where the switches
  may legitimately differ, or from ReLU inputs that close to zero; the count and the first
  location are printed.
- ``rule mismatch``: the framework's backward is consistent at every layer with some rule,
  but not the one asked for at some layers (e.g. a framework guiding only the convolutional
  ReLUs, as pytorch-cnn-visualizations does): those layers and the rule they act as are named.
- ``differs``: the first layer where the framework diverges beyond the bound, both values.

How a backward difference is explained: for every layer whose output signal reaches the
layer below differently, nnviz applies its own rule to the *framework's* incoming signal
(``dy``) on nnviz's forward state of that layer (masks, switches, weights) and compares with
the framework's outgoing signal (``dx``). A layer that maps ``dy`` to ``dx`` as the rule does
is consistent; one that differs only inside tied windows (or at ReLU kinks) is a tie; one
that maps as another rule does (the ReLU rules, no-switches unpooling, the LRP rules) is a
rule mismatch; anything else differs. Exit status of the command: 0 when every layer is
``equal`` or ``tie``, else 1.

Framework conventions are named presets (:data:`PRESETS`): PyTorch autograd as the model
stands (``torch``), hook-based guided or deconvnet ReLUs on every ReLU or on ``features``
only (``torch-guided``, ``torch-guided-features``, ``torch-deconvnet``,
``torch-deconvnet-features``), Captum's ``Saliency``, ``GuidedBackprop`` and
``Deconvolution``, zennit's ``guided_backprop`` and ``deconvnet`` composites and its LRP
composites once nnviz has them, Keras's gradient with the torch backend, and ONNX Runtime
(forward only, float32: it has no float64 convolution on the CPU and computes no gradients).

torch, keras, captum, zennit, onnx and onnxruntime are imported inside the functions that
need them, never at import time.
"""
import contextlib
import json
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy

from .. import backend, targets, weights_onnx
from .. import rules as R
from ..errors import InputError
from ..layers import Flatten, Linear, ReLU
from ..models import Net, layer_from_layout
from ..vgg import CONFIGS, FC_SIZES, PREPROCESSING, TOP_LAYERS, TOP_SIZE, conv_names, layout, parameter_shapes
from . import attribution

VERDICTS = ("equal", "tie", "rule mismatch", "differs")
DEFAULT_RTOL = {"float64": 1e-10, "float32": 1e-4}
DTYPES = ("float64", "float32")
LRP_COMPOSITES = ("epsilon_plus", "epsilon_gamma_box", "epsilon_alpha2_beta1", "epsilon_plus_flat",
                  "epsilon_alpha2_beta1_flat")
# the rules of the reference that guide only the convolutional part (pytorch-cnn-visualizations)
FEATURES_RULES = {"guided-features": "guided", "deconvnet-features": "deconvnet"}
KINDS = {"Conv2d": "conv", "ReLU": "relu", "MaxPool2d": "pool", "AvgPool2d": "avgpool",
         "Flatten": "flatten", "Linear": "fc"}


# ---------------------------------------------------------------------------------------
# presets: the framework conventions
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Preset:
    """A framework convention: how the framework side computes its backward signal.

    ``framework``: torch, captum, zennit, keras or onnx; ``method``: what is run there;
    ``rule``: the reference's rule it should match (the default of ``--rule``); ``seed``:
    ``"one"`` (the gradient of the target's score) or ``"score"`` (LRP: relevance starts
    from the score); ``scope``: ``"all"`` ReLUs or ``"features"`` only (hook presets)."""

    name: str
    framework: str
    method: str
    rule: object
    help: str
    seed: str = "one"
    scope: str = "all"
    acts: object = None       # the reference rule that reproduces the convention (default: rule)

    @property
    def backward(self):
        return self.framework != "onnx"


def _presets():
    p = [
        Preset("torch", "torch", "autograd", "backprop",
               "PyTorch autograd on the model as it stands (with any hooks the user registered)"),
        Preset("torch-guided", "torch", "guided", "guided",
               "PyTorch, a full backward hook at every ReLU returning clamp(grad_in, min=0): guided backprop"),
        Preset("torch-guided-features", "torch", "guided", "guided",
               "as torch-guided, hooks on the ReLUs of model.features only (pytorch-cnn-visualizations); "
               "matches --rule guided-features", scope="features", acts="guided-features"),
        Preset("torch-deconvnet", "torch", "deconvnet", "deconvnet",
               "PyTorch, a full backward hook at every ReLU returning clamp(grad_out, min=0): the deconvnet"),
        Preset("torch-deconvnet-features", "torch", "deconvnet", "deconvnet",
               "as torch-deconvnet, on the ReLUs of model.features only; matches --rule deconvnet-features",
               scope="features", acts="deconvnet-features"),
        Preset("captum-saliency", "captum", "Saliency", "backprop",
               "Captum Saliency(model).attribute(x, target, abs=False): the signed gradient"),
        Preset("captum-guided", "captum", "GuidedBackprop", "guided", "Captum GuidedBackprop"),
        Preset("captum-deconvnet", "captum", "Deconvolution", "deconvnet", "Captum Deconvolution"),
        Preset("captum-lrp", "captum", "LRP", "captum-lrp",
               "Captum LRP with its default rules (ε = 1e-9 at convolutions, linear layers and max pooling, "
               "ReLUs passed); seeded with the score; Captum shows no per-layer relevance, so the backward "
               "is compared at the input only", seed="score"),
        Preset("zennit-guided", "zennit", "guided_backprop", "guided",
               "zennit's guided_backprop composite, zennit.attribution.Gradient"),
        Preset("zennit-deconvnet", "zennit", "deconvnet", "deconvnet",
               "zennit's deconvnet composite, zennit.attribution.Gradient"),
        Preset("keras", "keras", "gradient", "backprop",
               "Keras 3 with the torch backend: the gradient by torch autograd through the Keras layers"),
        Preset("onnx", "onnx", "forward", None,
               "ONNX Runtime on the CPU: forward only, float32 (no float64 convolution, no gradients)"),
    ]
    for name in LRP_COMPOSITES:
        p.append(Preset(f"zennit-{name.replace('_', '-')}", "zennit", name, name,
                        f"zennit's {name} composite (LRP), zennit.attribution.Gradient with attr_output = "
                        f"the seed times the score", seed="score"))
    return OrderedDict((x.name, x) for x in p)


PRESETS = _presets()
DEFAULT_PRESET = {"torch": "torch", "keras": "keras", "onnx": "onnx"}


def lrp_available(name):
    """Whether nnviz's rules have the LRP composite ``name`` (issue 14 adds them)."""
    return name in getattr(R, "PRESETS", {})


def get_preset(name, framework):
    if name is None:
        return PRESETS[DEFAULT_PRESET[framework]]
    key = str(name).replace("_", "-")
    if key not in PRESETS:
        raise InputError(f"unknown preset {name!r}: expected one of {', '.join(PRESETS)}")
    preset = PRESETS[key]
    family = "torch" if preset.framework in ("torch", "captum", "zennit") else preset.framework
    if family != framework:
        raise InputError(f"preset {preset.name!r} runs a {family} model, but the model is a {framework} one")
    if preset.framework == "zennit" and preset.method in LRP_COMPOSITES and not lrp_available(preset.method):
        raise InputError(f"preset {preset.name!r}: nnviz has no LRP composite {preset.method!r} yet "
                         f"(nnviz.rules.PRESETS lacks it), so there is no reference to compare with")
    return preset


# ---------------------------------------------------------------------------------------
# the reference's rule
# ---------------------------------------------------------------------------------------

def resolve_rule(net, rule):
    """A rule :meth:`nnviz.models.Net.backward` takes, from ``rule``: a preset name, a dict,
    a Composite, or ``"guided-features"`` / ``"deconvnet-features"`` (that rule at the ReLUs
    before ``flatten``, the gradient in the classifier)."""
    if isinstance(rule, str):
        key = rule.replace("_", "-")
        if key == "captum-lrp":
            return captum_lrp_rule()
        if key in FEATURES_RULES:
            names = net.layer_names
            end = names.index("flatten") if "flatten" in names else len(names)
            return {n: FEATURES_RULES[key] for n in names[:end] if isinstance(net.layers[n], ReLU)}
        name = rule.replace("-", "_")
        if name in LRP_COMPOSITES and not lrp_available(name):
            raise InputError(f"rule {rule!r}: nnviz has no LRP composite {name!r} yet")
        rule = name if name in getattr(R, "PRESETS", {}) else rule
    place_rules(net, rule, "float64")          # an unknown or misplaced rule: a clear error now
    return rule


def captum_lrp_rule():
    """The rules of Captum's ``LRP`` with its defaults, as nnviz rules: ε = 1e-9 at
    convolutions and linear layers, Captum's ε at max pooling (nnviz's ``Norm``), the relevance
    passed through ReLUs."""
    if not all(hasattr(R, n) for n in ("Epsilon", "Norm")):
        raise InputError("rule 'captum-lrp': nnviz has no LRP rules yet")
    return R.Composite([("Conv2d", R.Epsilon(1e-9)), ("Linear", R.Epsilon(1e-9)),
                        ("MaxPool2d", R.Norm(1e-9)), ("ReLU", "pass")])


def place_rules(net, rule, dtype):
    """``{layer name: Rule}``: where ``rule`` puts which rule in ``net`` (LRP box rules get
    the bounds of the net's pixel range where the net can place them)."""
    placer = getattr(net, "assign_rules", None)
    try:
        return placer(rule, numpy.dtype(dtype)) if placer else R.assign(net.layers, rule)
    except (KeyError, ValueError, TypeError) as e:
        raise InputError(f"rule {rule_text(rule)!r}: {e.args[0] if e.args else e}") from None


def is_relevance(rule):
    """Whether ``rule`` places LRP rules (its signal is relevance, seeded with the score)."""
    test = getattr(R, "is_relevance", None)
    try:
        return bool(test(rule)) if test else False
    except (KeyError, ValueError, TypeError, InputError):
        return False


def rule_text(rule):
    """A short, JSON-friendly description of a rule."""
    if rule is None or isinstance(rule, str):
        return rule or "backprop"
    if isinstance(rule, dict):
        return {str(k): (v if isinstance(v, str) else getattr(v, "name", repr(v))) for k, v in rule.items()}
    return repr(rule)


def _rule_name(rule):
    return getattr(rule, "name", None) or type(rule).__name__


# ---------------------------------------------------------------------------------------
# the reference net, from the model's weights
# ---------------------------------------------------------------------------------------

def net_from_params(params, arch=None, preprocess="torch", source="", pooling="max", device=None):
    """A :class:`nnviz.models.Net` holding ``params`` (``"conv1_1/weight" -> array``, PyTorch
    layouts): VGG16 or VGG19 by the number of convolutions, with its top when ``fc8`` is there."""
    convs = sum(1 for k in params if k.startswith("conv") and k.endswith("/weight"))
    found = {sum(c): a for a, c in CONFIGS.items()}.get(convs)
    if found is None or (arch is not None and arch != found):
        raise InputError(f"{source or 'the model'}: {convs} convolutions, not a "
                         f"{arch or ' or '.join(CONFIGS)}")
    top = "fc8/weight" in params
    shapes = parameter_shapes(found, include_top=top)
    for key, shape in shapes.items():
        if key not in params:
            raise InputError(f"{source or 'the model'}: no {key}")
        if tuple(params[key].shape) != shape:
            raise InputError(f"{source or 'the model'}: {key} of shape {tuple(params[key].shape)}, "
                             f"expected {shape}")
    rows = layout(found, include_top=top, pooling=pooling)
    net = Net([(name, layer_from_layout(kind, o)) for name, kind, o in rows], arch=found, preprocessing=preprocess,
              device="cpu")
    for key in shapes:
        layer, p = key.split("/")
        setattr(net.layers[layer], p, numpy.ascontiguousarray(params[key], dtype=numpy.float32))
        net.layers[layer].requires_grad = False
    net.weights_info = dict(arch=found, source=source, preprocess=preprocess, include_top=top)
    return net.to(device or "cpu")


def _assemble(convs, fcs, source):
    """``"conv1_1/weight" -> array`` from lists of (weight, bias) in the model's order."""
    arch = {sum(c): a for a, c in CONFIGS.items()}.get(len(convs))
    if arch is None:
        raise InputError(f"{source}: {len(convs)} convolutions and {len(fcs)} linear layers: not a VGG "
                         f"(VGG16 has 13 convolutions, VGG19 16)")
    if len(fcs) not in (0, 3):
        raise InputError(f"{source}: {len(fcs)} linear layers; a VGG has 3 (fc6, fc7, fc8) or none")
    params = OrderedDict()
    for name, (w, b) in zip(conv_names(arch) + list(FC_SIZES), convs + fcs):
        params[f"{name}/weight"], params[f"{name}/bias"] = w, b
    return params


# ---------------------------------------------------------------------------------------
# matching the framework's layers to nnviz's
# ---------------------------------------------------------------------------------------

def _match(net, found, what):
    """``found``: the framework's layers in order, ``(kind, label, handle)``. Returns
    ``[(nnviz name, label, handle)]`` in the net's order; a flatten the framework does
    implicitly (torchvision's ``torch.flatten`` in ``forward``) gets handle None."""
    out, i = [], 0
    for name in net.layer_names:
        kind = KINDS[type(net.layers[name]).__name__]
        if i < len(found) and found[i][0] == kind:
            out.append((name, found[i][1], found[i][2]))
            i += 1
        elif kind == "flatten" and i < len(found) and found[i][0] == "fc":
            out.append((name, "(flatten in forward)", None))
        elif i >= len(found):
            break
        else:
            raise InputError(f"{what}: its layer {found[i][1]} is a {found[i][0]} where {net.arch} has "
                             f"{name} (a {kind}): not the same chain of layers")
    if i < len(found):
        raise InputError(f"{what}: layers left over after {net.layer_names[-1]}: "
                         f"{', '.join(str(f[1]) for f in found[i:i + 3])}")
    return out


# ---------------------------------------------------------------------------------------
# PyTorch (plain autograd, hooks, Captum, zennit)
# ---------------------------------------------------------------------------------------

def _torch():
    try:
        import torch
    except ImportError:
        raise InputError("comparing a PyTorch model needs torch (pip install torch)") from None
    return torch


def _torch_dtype(dtype):
    torch = _torch()
    return torch.float64 if str(dtype) == "float64" else torch.float32


def torch_kind(module):
    """The nnviz kind of a leaf module, ``"skip"`` for identities at inference, None if unknown."""
    torch = _torch()
    nn = torch.nn
    for cls, kind in ((nn.Conv2d, "conv"), (nn.ReLU, "relu"), (nn.MaxPool2d, "pool"), (nn.AvgPool2d, "avgpool"),
                      (nn.Flatten, "flatten"), (nn.Linear, "fc")):
        if isinstance(module, cls):
            return kind
    if isinstance(module, (nn.Dropout, nn.Dropout2d, nn.Identity, nn.AdaptiveAvgPool2d)):
        return "skip"
    return None


def torch_layers(module):
    """``[(kind, qualified name, leaf module)]`` of ``module``'s leaves in registration order
    (the execution order of torchvision's VGG: features, avgpool, classifier)."""
    out = []
    for qual, m in module.named_modules():
        if any(True for _ in m.children()):
            continue
        kind = torch_kind(m)
        if kind is None:
            raise InputError(f"the model's module {qual or type(m).__name__} ({type(m).__name__}) is not a "
                             f"layer of a plain VGG (Conv2d, ReLU, MaxPool2d, Linear, Dropout)")
        if kind == "conv" and (tuple(m.stride) != (1, 1) or tuple(m.dilation) != (1, 1) or m.groups != 1
                               or tuple(m.padding) != (m.kernel_size[0] // 2, m.kernel_size[1] // 2)):
            raise InputError(f"the model's {qual} ({m}): stride, padding or groups differ from a VGG's")
        if kind == "pool" and (m.ceil_mode or m.dilation not in (1, (1, 1))):
            raise InputError(f"the model's {qual} ({m}): ceil_mode or dilation differ from a VGG's")
        if kind != "skip":
            out.append((kind, qual, m))
    return out


def torch_params(module):
    """nnviz parameters from a module's leaves, in order."""
    convs, fcs = [], []
    for kind, qual, m in torch_layers(module):
        if kind in ("conv", "fc"):
            if m.bias is None:
                raise InputError(f"the model's {qual} has no bias; a VGG's layers have biases")
            item = (m.weight.detach().cpu().to(_torch().float32).numpy(),
                    m.bias.detach().cpu().to(_torch().float32).numpy())
            (convs if kind == "conv" else fcs).append(item)
    return _assemble(convs, fcs, f"the PyTorch model ({type(module).__name__})")


def torch_vgg(arch="vgg16", include_top=True):
    """A PyTorch VGG in torchvision's layout (``features``, ``avgpool``, ``classifier``; the
    state-dict keys of ``torchvision.models.vgg16``), built with ``torch.nn`` alone."""
    torch = _torch()
    nn = torch.nn
    feats, c_in = [], 3
    for _, kind, o in layout(arch, include_top=False):
        if kind == "conv":
            feats.append(nn.Conv2d(c_in, o["out_channels"], 3, padding=1))
            c_in = o["out_channels"]
        elif kind == "relu":
            feats.append(nn.ReLU(inplace=True))
        elif kind == "pool":
            feats.append(nn.MaxPool2d(2, 2))

    class VGG(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*feats)
            if include_top:
                self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
                self.classifier = nn.Sequential(
                    nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                    nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 1000))

        def forward(self, x):
            x = self.features(x)
            if not include_top:
                return x
            return self.classifier(torch.flatten(self.avgpool(x), 1))

    return VGG().eval()


def torch_vgg_from_net(net):
    """The torchvision-layout PyTorch twin of a VGG ``net`` (same weights, float32)."""
    torch = _torch()
    model = torch_vgg(net.arch, include_top=net.include_top)
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    fcs = [m for m in model.classifier if isinstance(m, torch.nn.Linear)] if net.include_top else []
    names = conv_names(net.arch) + (list(FC_SIZES) if net.include_top else [])
    with torch.no_grad():
        for name, m in zip(names, convs + fcs):
            layer = net.layers[name]
            m.weight.copy_(torch.from_numpy(numpy.asarray(backend.to_numpy(layer.weight), numpy.float32)))
            m.bias.copy_(torch.from_numpy(numpy.asarray(backend.to_numpy(layer.bias), numpy.float32)))
    return model


def load_torch_state_dict(path):
    """A torchvision-layout module holding the state dict in ``path`` (read with
    ``torch.load(weights_only=True)`` by :func:`nnviz.weights.read_state_dict`: no code runs)."""
    from .. import weights as W
    torch = _torch()
    name = os.path.basename(os.fspath(path))
    sd = W.read_state_dict(path, loader="torch")
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise InputError(f"{name}: holds a {type(sd).__name__}, not a state dict")
    sd = OrderedDict((str(k)[len("module."):] if str(k).startswith("module.") else str(k), v) for k, v in sd.items())
    convs = sum(1 for k, v in sd.items() if k.endswith("weight") and getattr(v, "ndim", 0) == 4)
    arch = {sum(c): a for a, c in CONFIGS.items()}.get(convs)
    if arch is None:
        raise InputError(f"{name}: {convs} convolutions: not a VGG16 or VGG19 state dict")
    top = any(k.startswith("classifier.") for k in sd)
    model = torch_vgg(arch, include_top=top)
    want = model.state_dict()
    missing = [k for k in want if k not in sd]
    extra = [k for k in sd if k not in want]
    if missing or extra:
        raise InputError(f"{name}: not torchvision's VGG layout (features.N, classifier.N): "
                         f"missing {missing[:3]}, unexpected {extra[:3]}")
    for k, v in sd.items():
        if tuple(v.shape) != tuple(want[k].shape):
            raise InputError(f"{name}: {k} of shape {tuple(v.shape)}, expected {tuple(want[k].shape)}")
    model.load_state_dict({k: torch.from_numpy(numpy.asarray(v, numpy.float32)) for k, v in sd.items()})
    return model


def _chain_module(steps, until, head=None):
    """A ``torch.nn.Module`` running the framework's layers ``steps`` (nnviz name, label,
    module or None for a flatten) up to ``until``, recording every output and the gradient
    arriving at it (tensor hooks fire under ``backward`` and ``autograd.grad`` alike).
    ``head``: None (return the activation of ``until``) or a function of it giving the
    scores that Captum's ``target`` indexes."""
    torch = _torch()

    class Chain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.names, self.flat = [], []
            mods = []
            for name, _, m in steps:
                self.names.append(name)
                self.flat.append(m is None)        # a flatten the model does in forward
                mods.append(m if m is not None else torch.nn.Identity())
                if name == until:
                    break
            self.layers = torch.nn.ModuleList(mods)
            self.record = OrderedDict()

        def _hook(self, name, h):
            if h.requires_grad:
                def hook(g, name=name):
                    self.record[name][1] = g.detach().clone()
                h.register_hook(hook)

        def forward(self, x):
            # a tensor's gradient hook is registered after the next module ran: hooks run in
            # order, and Captum's, which rewrite the gradient at a ReLU's input, come first
            self.record = OrderedDict([("input", [x.detach().clone(), None])])
            h, prev = x, "input"
            for name, m, flat in zip(self.names, self.layers, self.flat):
                out = torch.flatten(h, 1) if flat else m(h)
                self._hook(prev, h)
                h, prev = out, name
                self.record[name] = [h.detach().clone(), None]
            self._hook(prev, h)
            return h if head is None else head(h)

    return Chain()


@contextlib.contextmanager
def _torch_prepared(module, dtype, used):
    """The module in eval mode, its ReLUs not in place (in-place ReLUs would overwrite the
    recorded activations and break full backward hooks), the parameters of the ``used``
    leaves in ``dtype``; all restored after."""
    torch = _torch()
    params = [p for m in used for p in list(m.parameters()) + list(m.buffers())]
    dtypes = [p.dtype for p in params]
    training = module.training
    inplace = [(m, m.inplace) for m in module.modules() if hasattr(m, "inplace")]
    try:
        module.eval()
        for m, _ in inplace:
            m.inplace = False
        with torch.no_grad():
            for p in params:
                if p.is_floating_point():
                    p.data = p.data.to(dtype)
        yield module
    finally:
        with torch.no_grad():
            for p, d in zip(params, dtypes):
                p.data = p.data.to(d)
        for m, flag in inplace:
            m.inplace = flag
        module.train(training)


class TorchSide:
    """A PyTorch module as the framework side."""

    framework = "torch"

    def __init__(self, module, net, preset, what=None):
        self.module, self.net, self.preset = module, net, preset
        self.what = what or f"PyTorch module {type(module).__name__}"
        self.steps = _match(net, [(k, q, m) for k, q, m in torch_layers(module)], self.what)

    @property
    def names(self):
        return [s[0] for s in self.steps]

    def _relus(self, scope):
        torch = _torch()
        if scope == "features" and isinstance(getattr(self.module, "features", None), torch.nn.Module):
            return [m for m in self.module.features.modules() if isinstance(m, torch.nn.ReLU)]
        names = self.names
        end = names.index("flatten") if scope == "features" and "flatten" in names else len(names)
        return [m for n, _, m in self.steps[:end] if isinstance(m, torch.nn.ReLU)]

    def run(self, x, target, seed, dtype):
        torch = _torch()
        tdtype = _torch_dtype(dtype)
        p = self.preset
        used = []
        for name, _, m in self.steps:
            used += [m] if m is not None else []
            if name == target.layer:
                break
        with _torch_prepared(self.module, tdtype, used):
            xt = torch.from_numpy(numpy.ascontiguousarray(x)).to(tdtype).requires_grad_(True)
            st = torch.from_numpy(numpy.ascontiguousarray(seed)).to(tdtype)
            handles = []
            if p.framework == "torch" and p.method in ("guided", "deconvnet"):
                if p.method == "guided":
                    def hook(m, grad_in, grad_out):        # grad_in = dy * (x > 0)
                        return (torch.clamp(grad_in[0], min=0.0),)
                else:
                    def hook(m, grad_in, grad_out):        # the deconvnet rectifies dy
                        return (torch.clamp(grad_out[0], min=0.0),)
                handles = [m.register_full_backward_hook(hook) for m in self._relus(p.scope)]
            try:
                if p.framework == "captum":
                    chain = self._captum(xt, target, p)
                elif p.framework == "zennit":
                    chain = self._zennit(xt, target, st, p)
                else:
                    chain = _chain_module(self.steps, target.layer)
                    out = chain(xt)
                    torch.autograd.backward(out, grad_tensors=st)
            finally:
                for h in handles:
                    h.remove()
            return _numpy_record(chain.record, lambda t: t.cpu().numpy())

    def _captum(self, xt, target, preset):
        try:
            import captum.attr as ca
        except ImportError:
            raise InputError("the captum presets need Captum (pip install captum)") from None

        def head(h):              # the scores whose column `target` Captum differentiates
            if h.ndim == 2:
                return h
            if target.position is None:
                return h.sum(dim=(2, 3))
            return h[:, :, target.position[0], target.position[1]]
        chain = _chain_module(self.steps, target.layer, head)
        method = getattr(ca, preset.method)(chain)
        kw = {"abs": False} if preset.method == "Saliency" else {}
        if preset.method != "LRP":
            method.attribute(xt, target=int(target.channel), **kw)
            return chain
        bare = [m for m in chain.modules() if not hasattr(m, "rule")]
        try:
            relevance = method.attribute(xt, target=int(target.channel))
        finally:
            for m in bare:                       # Captum leaves its default rules on the modules
                if hasattr(m, "rule"):
                    del m.rule
        # Captum's signals between layers are normalized gradients, not relevance: keep the
        # activations, and the relevance at the input (its attribution)
        for name in chain.record:
            chain.record[name][1] = None
        chain.record["input"][1] = relevance.detach().clone()
        return chain

    def _zennit(self, xt, target, st, preset):
        try:
            import zennit.attribution
            import zennit.composites
        except ImportError:
            raise InputError("the zennit presets need zennit (pip install zennit)") from None
        except Exception as e:     # zennit imports torchvision for its ResNet canonizers
            raise InputError(f"zennit could not be imported ({type(e).__name__}: {e}); it imports "
                             f"torchvision, which must load beside this torch") from None
        cls = zennit.composites.COMPOSITES[preset.method]
        kw = {}
        if preset.method == "epsilon_gamma_box":
            torch = _torch()
            lo, hi = (self.net.preprocess(numpy.full((1, 1, 3), v, numpy.uint8)) for v in (0, 255))
            kw = dict(low=torch.from_numpy(backend.to_numpy(lo)).to(xt.dtype),
                      high=torch.from_numpy(backend.to_numpy(hi)).to(xt.dtype))
        chain = _chain_module(self.steps, target.layer)
        with zennit.attribution.Gradient(model=chain, composite=cls(**kw)) as attributor:
            attributor(xt, attr_output=st)
        return chain


def _numpy_record(record, to_numpy):
    out = OrderedDict()
    for name, (a, g) in record.items():
        out[name] = (to_numpy(a), None if g is None else to_numpy(g))
    return out


# ---------------------------------------------------------------------------------------
# Keras 3 (torch backend)
# ---------------------------------------------------------------------------------------

def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        raise InputError("comparing a Keras model needs keras (pip install keras)") from None
    if keras.backend.backend() != "torch":
        raise InputError(f"Keras runs on the {keras.backend.backend()!r} backend; nnviz compare needs "
                         f"KERAS_BACKEND=torch (set it before Keras is first imported)")
    return keras


KERAS_ALLOWED = {"InputLayer", "Conv2D", "MaxPooling2D", "AveragePooling2D", "Flatten", "Dense", "Dropout",
                 "ReLU", "Activation", "Sequential", "Functional", "Model"}


def _keras_config_classes(config):
    """Every ``class_name`` in a Keras model config (to refuse unknown layers before loading)."""
    found = set()
    if isinstance(config, dict):
        if "class_name" in config and isinstance(config["class_name"], str) and "config" in config:
            found.add(config["class_name"])
        for v in config.values():
            found |= _keras_config_classes(v)
    elif isinstance(config, list):
        for v in config:
            found |= _keras_config_classes(v)
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
        raise InputError(f"{name}: no model config (a weights-only file); nnviz compare needs the model: "
                         f"save it with model.save('model.keras')")
    classes = _keras_config_classes(config.get("config", config)) - {"DTypePolicy", "GlorotUniform", "Zeros",
                                                                   "HeNormal", "HeUniform", "RandomNormal",
                                                                   "RandomUniform", "GlorotNormal",
                                                                   "TruncatedNormal", "Constant", "Ones"}
    classes.discard(config.get("class_name"))
    bad = sorted(c for c in classes if c not in KERAS_ALLOWED and not c.startswith("__"))
    if bad:
        raise InputError(f"{name}: layers {', '.join(bad)} are not part of a plain VGG (refused before loading: "
                         f"nothing from the file is run)")
    keras = _keras()
    try:
        return keras.saving.load_model(os.fspath(path), compile=False, safe_mode=True)
    except (ValueError, TypeError, OSError, KeyError) as e:
        raise InputError(f"{name}: Keras could not load the model: {e}") from None


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
                    raise InputError(f"Keras layer {layer.name} has activation {act!r}; a VGG uses relu")
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
                raise InputError(f"Keras layer {layer.name} ({cls}) is not a layer of a plain VGG")
    walk(model)
    return out


def _keras_format(model):
    for _, _, layer, _ in keras_layers(model):
        fmt = getattr(layer, "data_format", None)
        if fmt:
            return fmt
    return "channels_last"


def keras_params(model):
    """nnviz parameters from a Keras model's layers, in order (kernels transposed to PyTorch
    layouts; the first Dense after a channels-last Flatten has its rows put in C, H, W order)."""
    convs, fcs = [], []
    last = _keras_format(model) == "channels_last"
    shape = None
    for kind, label, layer, _ in keras_layers(model):
        if kind == "flatten":
            shape = tuple(layer.input.shape[1:])
        if kind not in ("conv", "fc"):
            continue
        ws = [numpy.asarray(w, numpy.float32) for w in layer.get_weights()]
        if len(ws) != 2:
            raise InputError(f"Keras layer {label} has {len(ws)} weights; a VGG layer has a kernel and a bias")
        k, b = ws
        if kind == "conv":
            convs.append((k.transpose(3, 2, 0, 1), b))        # (kh, kw, C, O) -> (O, C, kh, kw)
        else:
            w = k.T                                          # (in, out) -> (out, in)
            if not fcs and last and shape is not None and len(shape) == 3:
                h, wd, c = shape                             # Keras flattened H, W, C; nnviz C, H, W
                w = w.reshape(-1, h, wd, c).transpose(0, 3, 1, 2).reshape(w.shape[0], -1)
            fcs.append((numpy.ascontiguousarray(w), b))
    return _assemble(convs, fcs, f"the Keras model {model.name}")


class KerasSide:
    """A Keras 3 model (torch backend) as the framework side: its layers are called one by one
    (clones in the comparison's dtype), a Conv2D's or Dense's fused ReLU applied separately so
    that both outputs are compared; the gradient comes from torch autograd."""

    framework = "keras"

    def __init__(self, model, net, preset, what=None):
        self.model, self.net, self.preset = model, net, preset
        self.what = what or f"Keras model {model.name}"
        self.last = _keras_format(model) == "channels_last"
        found = []
        self.softmax = False
        for kind, label, layer, act in keras_layers(model):
            found.append((kind, label, (layer, act)))
            if act == "relu" and kind in ("conv", "fc"):
                found.append(("relu", f"{label} (its relu)", (layer, "fused")))
            self.softmax |= act == "softmax"
        self.steps = _match(net, found, self.what)
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
        torch = _torch()
        keras = _keras()
        relu = keras.activations.get("relu")
        tdtype = _torch_dtype(dtype)
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
                raise InputError(f"{self.what}: no Flatten layer before the first Dense")
            if act == "fused":
                h = relu(h)
            else:
                if KINDS[type(self.net.layers[name]).__name__] == "flatten":
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


# ---------------------------------------------------------------------------------------
# ONNX Runtime (forward only, float32)
# ---------------------------------------------------------------------------------------

class OnnxSide:
    """An ONNX model run by ONNX Runtime on the CPU, every layer's output added to the graph's
    outputs; forward only, float32."""

    framework = "onnx"

    def __init__(self, path, net, preset, model=None):
        self.path = os.fspath(path)
        self.name = os.path.basename(self.path)
        self.what = f"ONNX {self.name}"
        self.proto = model if model is not None else weights_onnx.load(self.path)
        steps = weights_onnx.chain(self.proto, self.name)
        self.steps = _match(net, [(s.kind, s.label, s.output) for s in steps], self.what)
        self.net, self.preset = net, preset
        self.input_name, self.input_shape = weights_onnx.input_info(self.proto)
        self.session = None

    @property
    def names(self):
        return [s[0] for s in self.steps]

    def _session(self):
        if self.session is None:
            try:
                import onnx
                import onnxruntime as ort
            except ImportError:
                raise InputError("comparing an ONNX model needs onnx and onnxruntime "
                                 "(pip install onnx onnxruntime)") from None
            proto = onnx.ModelProto()
            proto.CopyFrom(self.proto)
            have = {o.name for o in proto.graph.output}
            for _, _, out in self.steps:
                if out not in have:
                    proto.graph.output.append(onnx.helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None))
            self.session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        return self.session

    def run(self, x, target, seed, dtype):
        shape = tuple(x.shape)
        if len(self.input_shape) != 4 or any(d not in (None, 0) and d != s for d, s in zip(self.input_shape, shape)):
            raise InputError(f"{self.name} takes input of shape {self.input_shape}, got {shape} "
                             f"(use --size {self.input_shape[-1]} if that is fixed)")
        steps = []
        for s in self.steps:
            steps.append(s)
            if s[0] == target.layer:
                break
        outs = self._session().run([s[2] for s in steps], {self.input_name: numpy.ascontiguousarray(x, numpy.float32)})
        record = OrderedDict([("input", (numpy.asarray(x, numpy.float32), None))])
        for (name, _, _), a in zip(steps, outs):
            record[name] = (a, None)
        return record


# ---------------------------------------------------------------------------------------
# loading a model
# ---------------------------------------------------------------------------------------

def framework_of(model):
    """``"torch"``, ``"keras"`` or ``"onnx"`` for a model object or a file."""
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise InputError(f"{path}: no such model file")
        with open(path, "rb") as fh:
            head = fh.read(8)
        low = path.lower()
        if low.endswith(".onnx"):
            return "onnx"
        if head == b"\x89HDF\r\n\x1a\n" or low.endswith((".keras", ".h5")):
            return "keras"
        if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80" or low.endswith((".pth", ".pt")):
            return "torch"
        raise InputError(f"{path}: not a model nnviz compare can run (a PyTorch state dict .pth/.pt, "
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
    raise InputError(f"a {type(model).__name__} is not a model nnviz compare can run (a torch.nn.Module, a "
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


def load(model, preset=None, weights=None, net=None, preprocess=None, device=None):
    """Prepare ``model`` for :func:`compare`: a :class:`Subject`. ``weights``: a weight file
    for the reference (default: the model's own weights); ``net``: a ready reference net
    instead (any chain of nnviz layers; the model's layers must match it); ``preprocess``:
    the input convention (default: torchvision's ``"torch"`` for PyTorch and ONNX models,
    ``"caffe"`` for Keras models)."""
    if isinstance(model, Subject):
        return model
    fw = framework_of(model)
    preset = get_preset(preset, fw)
    if preprocess is not None and preprocess not in PREPROCESSING:
        raise InputError(f"unknown preprocessing {preprocess!r}: expected one of {', '.join(PREPROCESSING)}")
    path = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
    name = os.path.basename(path) if path else None
    proto = None
    if fw == "torch":
        obj = load_torch_state_dict(path) if path else model
        what = f"PyTorch state dict {name}" if path else f"PyTorch module {type(model).__name__}"
        params = (lambda: torch_params(obj))
        default_pre = "torch"
    elif fw == "keras":
        obj = load_keras_model(path) if path else model
        what = f"Keras model {name}" if path else f"Keras model {model.name}"
        params = (lambda: keras_params(obj))
        default_pre = "caffe"
    else:
        proto = weights_onnx.load(path) if path else model
        obj = path or name
        what = f"ONNX {name}" if path else "ONNX model"
        if path is None:
            raise InputError("an ONNX model is compared from its file: pass the path of the .onnx file")

        def params():
            from .. import weights as W
            return W.read(path)[0]
        default_pre = "torch"
    pre = preprocess or default_pre
    if net is None:
        if weights is None:
            net = net_from_params(params(), preprocess=pre, source=what, device=device)
        else:
            from .. import weights as W
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
        side = OnnxSide(path, net, preset, model=proto)
    return Subject(side, net, preset, what, fw, list(getattr(side, "notes", [])))


# ---------------------------------------------------------------------------------------
# differences
# ---------------------------------------------------------------------------------------

@dataclass
class Diff:
    """One comparison of two arrays: the largest absolute difference, that over the largest
    reference magnitude, where it is (an index into the array) and both values there."""

    max_abs: float
    rel: float
    where: tuple
    reference: float
    framework: float
    scale: float
    shape_ref: tuple = None
    shape_fw: tuple = None

    def ok(self, rtol, atol):
        if self.shape_ref != self.shape_fw:
            return False
        return bool(self.max_abs <= atol + rtol * self.scale)

    def to_dict(self):
        d = dict(max_abs=self.max_abs, relative=self.rel, where=list(self.where), reference=self.reference,
                 framework=self.framework)
        if self.shape_ref != self.shape_fw:
            d.update(shape_reference=list(self.shape_ref), shape_framework=list(self.shape_fw))
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def diff(ref, other):
    """:class:`Diff` of ``other`` against ``ref`` (float64 on the host)."""
    a = numpy.asarray(backend.to_numpy(ref), numpy.float64)
    b = numpy.asarray(backend.to_numpy(other), numpy.float64)
    if a.shape != b.shape:
        return Diff(math.inf, math.inf, (), math.nan, math.nan, 0.0, a.shape, b.shape)
    if a.size == 0:
        return Diff(0.0, 0.0, (), 0.0, 0.0, 0.0, a.shape, b.shape)
    d = numpy.abs(a - b)
    bad = ~numpy.isfinite(d)
    k = int(numpy.argmax(bad)) if bad.any() else int(numpy.argmax(d))
    where = tuple(int(i) for i in numpy.unravel_index(k, a.shape))
    scale = float(numpy.abs(a).max())
    m = math.inf if bad.any() else float(d.flat[k])
    rel = m / scale if scale > 0 else (0.0 if m == 0 else math.inf)
    return Diff(m, rel, where, float(a.flat[k]), float(b.flat[k]), scale, a.shape, b.shape)


@dataclass
class Local:
    """How one layer maps the framework's incoming signal to its outgoing one: ``status``
    ``ok``, ``tie``, ``mismatch`` (``acts_as`` names the rule it follows) or ``differs``."""

    status: str
    expected: str = ""
    acts_as: str = ""
    count: int = 0
    where: tuple = ()
    values: tuple = ()
    diff: Diff = None


def _tol(rtol, atol, a):
    return atol + rtol * (float(numpy.abs(a).max()) if a.size else 0.0)


def _apply(layer, rule, a_in, dy):
    """nnviz's ``rule`` at ``layer`` on the framework's ``dy``, with the layer's forward state
    from the reference's input ``a_in``."""
    keep = getattr(layer, "requires_grad", None)
    if keep is not None:
        layer.requires_grad = True           # keep the input (LRP rules read it)
    try:
        layer.forward(a_in)
        if keep is not None:
            layer.requires_grad = False      # the input's signal only
        return backend.to_numpy(layer.backward(dy, rule))
    finally:
        if keep is not None:
            layer.requires_grad = keep


def _pool_ties(layer, a_in, bad, tol):
    """Whether the elements ``bad`` (N, C, H, W) all lie in max-pooling windows whose top two
    values differ by at most ``tol``; with the count of such windows holding a bad element,
    the first one's (n, c, i, j) and its two values."""
    n, c, h, w = a_in.shape
    kh, kw, (sy, sx), (ph, pw) = layer.kh, layer.kw, layer.stride, layer.padding
    a = numpy.pad(a_in, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-numpy.inf)
    b = numpy.pad(bad, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out_h, out_w = (h + 2 * ph - kh) // sy + 1, (w + 2 * pw - kw) // sx + 1
    win = numpy.lib.stride_tricks.sliding_window_view(a, (kh, kw), axis=(2, 3))[:, :, ::sy, ::sx]
    win = win[:, :, :out_h, :out_w].reshape(n, c, out_h, out_w, kh * kw)
    top = numpy.partition(win, kh * kw - 2, axis=-1)[..., -2:]          # (…, 2): second, first
    tied = (top[..., 1] - top[..., 0]) <= tol
    cover = numpy.zeros(a.shape, bool)
    hit = numpy.zeros((n, c, out_h, out_w), bool)
    for i in range(kh):
        for j in range(kw):
            sl = (slice(None), slice(None), slice(i, i + sy * out_h, sy), slice(j, j + sx * out_w, sx))
            cover[sl] |= tied
            hit |= b[sl]
    covered = not (bad & ~cover[:, :, ph:ph + h, pw:pw + w]).any()
    windows = hit & tied
    count = int(windows.sum())
    if not count:
        return covered, 0, (), ()
    first = tuple(int(v) for v in numpy.argwhere(windows)[0])
    return covered, count, first, (float(top[first][1]), float(top[first][0]))


def _kink_ties(a_in, bad, tol):
    """Whether the elements ``bad`` all sit at ReLU inputs within ``tol`` of zero."""
    near = numpy.abs(a_in) <= tol
    covered = not (bad & ~near).any()
    hits = bad & near
    count = int(hits.sum())
    first = tuple(int(v) for v in numpy.argwhere(hits)[0]) if count else ()
    return covered, count, first, ((float(a_in[first]),) if count else ())


def _candidates(layer, known=()):
    """Rules a framework may follow at ``layer`` instead of the one asked for: ``known`` first
    (the rule of the framework's preset, then those the known composites place at this
    layer), the ReLU rules, unpooling with or without switches, the LRP rules with zennit's
    defaults."""
    kind = type(layer).__name__
    out = [R.GRADIENT]
    if kind == "ReLU":
        out = [R.get(n) for n in ("backprop", "guided", "deconvnet", "pass")]
    elif kind == "MaxPool2d":
        out.append(R.get("no_switches"))
    elif kind in ("Conv2d", "Linear"):
        for cls in ("Epsilon", "ZPlus", "Gamma", "AlphaBeta", "Flat", "WSquare"):
            make = getattr(R, cls, None)
            if isinstance(make, type):
                try:
                    out.append(make())
                except (TypeError, ValueError):
                    pass
    return [r for r in known if r.fits_layer(layer)] + out


def known_rules(net, dtype):
    """``{layer: [rules]}`` that the LRP composites of :mod:`nnviz.rules` place in ``net``
    (zB with the net's pixel bounds, first-layer rules): candidates for a rule mismatch."""
    out = {}
    for name in getattr(R, "PRESETS", {}):
        if name not in LRP_COMPOSITES:
            continue
        try:
            placed = place_rules(net, name, dtype)
        except InputError:
            continue
        for layer, rule in placed.items():
            out.setdefault(layer, []).append(rule)
    return out


def check_layer(layer, rule, a_in, dy, dx, rtol, atol, known=()):
    """:class:`Local`: does ``layer`` under ``rule`` map the framework's ``dy`` to its ``dx``?
    If not: a tie, another rule (a mismatch; ``known``: more candidates), or a difference."""
    dtype = numpy.dtype(dy.dtype)
    dev = lambda a: backend.to_device(numpy.ascontiguousarray(a, dtype), "gpu" if _on_gpu(layer) else "cpu")
    a_dev, dy_dev = dev(a_in), dev(dy)
    expected = _rule_name(rule)

    def bad_of(r):
        if numpy.shape(r) != numpy.shape(dx):
            return numpy.ones(numpy.shape(dx), bool)
        return numpy.abs(r.astype(numpy.float64) - dx) > _tol(rtol, atol, dx)

    try:
        r = _apply(layer, rule, a_dev, dy_dev)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        return Local("differs", expected, diff=None, values=(str(e),))
    bad = bad_of(r)
    if not bad.any():
        return Local("ok", expected)
    tie_tol = _tol(rtol, atol, a_in)
    kind = type(layer).__name__

    def ties_of(mask):
        if kind == "MaxPool2d" and a_in.ndim == 4:
            return _pool_ties(layer, a_in, mask, tie_tol)
        if kind == "ReLU":
            return _kink_ties(a_in, mask, tie_tol)
        return False, 0, (), ()
    covered, count, where, values = ties_of(bad)
    if covered and count:
        return Local("tie", expected, count=count, where=where, values=values)
    for cand in _candidates(layer, known):
        if cand is rule or repr(cand) == repr(rule):
            continue
        try:
            rc = _apply(layer, cand, a_dev, dy_dev)
        except (ValueError, KeyError, TypeError, RuntimeError):
            continue
        bc = bad_of(rc)
        if not bc.any() or ties_of(bc)[0]:
            same = _rule_name(cand) == expected            # the same rule with other parameters
            return Local("mismatch", repr(rule) if same else expected,
                         acts_as=repr(cand) if same else _rule_name(cand))
    return Local("differs", expected, diff=diff(r, dx))


def _on_gpu(layer):
    w = getattr(layer, "weight", None)
    return w is not None and not isinstance(w, numpy.ndarray)


# ---------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------

@dataclass
class Row:
    """One layer: its forward and backward :class:`Diff` (None where not compared) and its
    verdict with the reason."""

    name: str
    kind: str
    forward: Diff = None
    backward: Diff = None
    verdict: str = "equal"
    reason: str = ""

    def to_dict(self):
        return dict(layer=self.name, kind=self.kind, verdict=self.verdict, reason=self.reason,
                    forward=None if self.forward is None else self.forward.to_dict(),
                    backward=None if self.backward is None else self.backward.to_dict())


def _fmt(v, spec=".2e"):
    if v is None:
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return format(v, spec)


def _where(t):
    return "(" + ",".join(str(i) for i in t) + ")" if t else "-"


@dataclass
class Report:
    """The result of :func:`compare`: ``rows`` (one per layer, ``input`` first), the overall
    ``verdict``, its ``reasons`` (lines), ``ties``, ``mismatches``, ``first_difference``,
    ``info`` (what was compared); ``ok`` and ``exit_status`` (0 for equal or tie, else 1);
    :meth:`table` for people, :meth:`to_dict` / :meth:`to_json` for machines."""

    rows: list
    verdict: str
    reasons: list
    info: dict
    ties: list = field(default_factory=list)
    mismatches: list = field(default_factory=list)
    first_difference: dict = None

    @property
    def ok(self):
        return self.verdict in ("equal", "tie")

    @property
    def exit_status(self):
        return 0 if self.ok else 1

    def row(self, name):
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no layer {name!r} in the report")

    def to_dict(self):
        return dict(schema="nnviz-compare/1", verdict=self.verdict, ok=self.ok, exit_status=self.exit_status,
                    reasons=self.reasons, info=self.info, ties=self.ties, mismatches=self.mismatches,
                    first_difference=self.first_difference, layers=[r.to_dict() for r in self.rows])

    def to_json(self, indent=1):
        return json.dumps(self.to_dict(), indent=indent)

    def table(self):
        i = self.info
        lines = [f"{i['framework']} ({i['preset']}) against nnviz {i['reference']}",
                 f"rule {i['rule_text']}, {i['dtype']}, target {i['target']}, input {tuple(i['input_shape'])}; "
                 f"equal when |d| <= {i['atol']:g} + {i['rtol']:g} x the layer's largest |value|"]
        head = (f"{'layer':<10} {'forward max|d|':>14} {'relative':>9} {'where':<16} "
                f"{'backward max|d|':>15} {'relative':>9} {'where':<16} verdict")
        lines += [head, "-" * len(head)]
        for r in self.rows:
            f, b = r.forward, r.backward
            lines.append(f"{r.name:<10} {_fmt(f and f.max_abs, '.3e'):>14} {_fmt(f and f.rel):>9} "
                         f"{_where(f.where) if f else '-':<16} {_fmt(b and b.max_abs, '.3e'):>15} "
                         f"{_fmt(b and b.rel):>9} {_where(b.where) if b else '-':<16} {r.verdict}")
        lines.append(f"verdict: {self.verdict}")
        lines += [f"  {line}" for line in self.reasons]
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def _severity(v):
    return VERDICTS.index(v)


def _analyze(net, ref, fw, names, rules_map, rtol, atol, backward, prefer=None):
    """The rows and the verdicts (see the module docstring); ``rules_map``: layer -> Rule;
    ``prefer``: layer -> the rule the framework's preset stands for (tried first when a layer
    does not follow ``rules_map``)."""
    order = ["input"] + names
    rows = []
    for name in order:
        kind = "input" if name == "input" else type(net.layers[name]).__name__
        a_ref, g_ref = ref[name]
        a_fw, g_fw = fw.get(name, (None, None))
        row = Row(name, kind)
        row.forward = diff(a_ref, a_fw) if a_fw is not None else None
        if backward and g_ref is not None and g_fw is not None:     # None: the framework shows none
            row.backward = diff(g_ref, g_fw)
        rows.append(row)
    by = {r.name: r for r in rows}
    reasons, ties, mismatches, first = [], [], [], None

    # forward: the first layer beyond the bound
    bad_fwd = [r for r in rows if r.forward is not None and not r.forward.ok(rtol, atol)]
    if bad_fwd:
        r0 = bad_fwd[0]
        f = r0.forward
        first = dict(layer=r0.name, direction="forward", **f.to_dict())
        if f.shape_ref != f.shape_fw:
            what = f"shapes differ: nnviz {tuple(f.shape_ref)}, framework {tuple(f.shape_fw)}"
        else:
            what = (f"max|d| {f.max_abs:.3e} (relative {f.rel:.2e}) at {_where(f.where)}: nnviz {f.reference:.9g}, "
                    f"framework {f.framework:.9g}")
        reasons.append(f"first difference: {r0.name} (forward): {what}")
        start = order.index(r0.name)
        for k, r in enumerate(rows):
            if k >= start:
                r.verdict, r.reason = "differs", (f"forward {what}" if k == start else
                                                  f"follows the forward difference at {r0.name}")
            elif r.backward is not None and not r.backward.ok(rtol, atol):
                r.verdict, r.reason = "differs", f"the backward follows the forward difference at {r0.name}"
        return rows, "differs", reasons, ties, mismatches, first

    if not backward:
        reasons.append(f"every layer's forward within {rtol:g} of its largest value (forward only)")
        return rows, "equal", reasons, ties, mismatches, first

    # backward: local checks where a layer's output signal reaches the layer below differently
    local, known = {}, None
    target = names[-1]
    for k in range(len(names) - 1, -1, -1):
        name = names[k]
        below = order[k]                  # the row whose gradient is this layer's dx
        if by[below].backward is None or by[below].backward.ok(rtol, atol):
            continue
        dy, dx = fw[name][1], fw[below][1]
        if dy is None or dx is None:
            local[name] = Local("unknown", values=("the framework shows no signal above it to locate the "
                                                   "difference",))
            continue
        if numpy.shape(dy) != numpy.shape(ref[name][1]) or numpy.shape(dx) != numpy.shape(ref[below][0]):
            local[name] = Local("differs", values=("the framework's signal has another shape",))
            continue
        a_in = numpy.asarray(backend.to_numpy(ref[below][0]), dtype=numpy.asarray(dy).dtype)
        if known is None:
            known = known_rules(net, a_in.dtype)
        local[name] = check_layer(net.layers[name], rules_map.get(name, R.GRADIENT), a_in, numpy.asarray(dy),
                                  numpy.asarray(dx, numpy.float64), rtol, atol,
                                  [(prefer or {}).get(name, R.GRADIENT)] + known.get(name, []))
    seed_row = by[target]
    seed_bad = seed_row.backward is not None and not seed_row.backward.ok(rtol, atol)
    observed = [r.name for r in rows if r.backward is not None]
    if observed == ["input"]:
        reasons.append("the framework shows its signal at the input only: the backward is compared there")
    if seed_bad:
        seed_row.verdict = "differs"
        seed_row.reason = "the framework starts from another signal at the target (its seed differs)"
    for k in range(len(order) - 2, -1, -1):
        r = rows[k]
        if r.backward is None or r.backward.ok(rtol, atol):
            continue
        culprits = [n for n in names[k:] if n in local and local[n].status != "ok"]
        statuses = {local[n].status for n in culprits}
        if seed_bad or "differs" in statuses:
            r.verdict = "differs"
            top = [n for n in reversed(names[k:]) if n in local and local[n].status == "differs"]
            r.reason = (f"follows the difference at {top[0]}" if top else "follows the seed's difference")
        elif "unknown" in statuses:
            r.verdict = "differs"
            r.reason = "differs; " + next(local[n].values[0] for n in culprits if local[n].status == "unknown")
        elif "mismatch" in statuses:
            r.verdict = "rule mismatch"
            r.reason = "; ".join(f"{n} acts as {local[n].acts_as!r}" for n in reversed(culprits)
                                 if local[n].status == "mismatch")
        elif "tie" in statuses:
            r.verdict = "tie"
            r.reason = "follows the tie at " + ", ".join(n for n in reversed(culprits) if local[n].status == "tie")
        else:
            r.verdict = "differs"
            r.reason = "the signal differs, yet every layer above maps it as the rule does"
    # summaries, from the top
    for name in reversed(names):
        lc = local.get(name)
        if lc is None or lc.status == "ok":
            continue
        if lc.status == "tie":
            if type(net.layers[name]).__name__ == "MaxPool2d":
                v1, v2 = lc.values
                text = (f"tie at {name}: {lc.count} pooling window(s) whose top two values differ by less than the "
                        f"tolerance (first: image {lc.where[0]}, channel {lc.where[1]}, window "
                        f"({lc.where[2]}, {lc.where[3]}): {v1:.9g} and {v2:.9g}); the switches may "
                        f"legitimately differ there")
            else:
                text = (f"tie at {name}: {lc.count} ReLU input(s) within the tolerance of zero (first at "
                        f"{_where(lc.where)}: {lc.values[0]:.3g}); the mask may legitimately differ there")
            ties.append(dict(layer=name, count=lc.count, first=list(lc.where), values=list(lc.values)))
            reasons.append(text)
        elif lc.status == "mismatch":
            mismatches.append(dict(layer=name, acts_as=lc.acts_as, expected=lc.expected))
        elif lc.status == "differs" and first is None:
            k = names.index(name)
            below = order[k]
            d = lc.diff or by[below].backward
            first = dict(layer=name, direction="backward", **(d.to_dict() if d else {}))
            if d is not None and d.shape_ref == d.shape_fw:
                reasons.append(f"first difference: {name} (backward, the signal it passes down to {below}): "
                               f"max|d| {d.max_abs:.3e} (relative {d.rel:.2e}) at {_where(d.where)}: nnviz's "
                               f"{lc.expected!r} gives {d.reference:.9g}, the framework {d.framework:.9g}")
            else:
                reasons.append(f"first difference: {name} (backward): {' '.join(lc.values) or 'no signal'}")
    if mismatches:
        groups = OrderedDict()
        for m in mismatches:
            groups.setdefault((m["acts_as"], m["expected"]), []).append(m["layer"])
        for (acts, exp), layers in groups.items():
            reasons.insert(0, f"rule mismatch at {', '.join(layers)}: {'it acts' if len(layers) == 1 else 'they act'} "
                              f"as {acts!r} where the rule asks for {exp!r}")
    if seed_bad and first is None:
        d = seed_row.backward
        first = dict(layer=target, direction="seed", **d.to_dict())
        reasons.insert(0, f"first difference: the seed at {target}: max|d| {d.max_abs:.3e} at {_where(d.where)}: "
                          f"nnviz {d.reference:.9g}, framework {d.framework:.9g}")
    verdict = max((r.verdict for r in rows), key=_severity)
    if verdict == "differs" and first is None:
        r0 = next(r for r in reversed(rows) if r.verdict == "differs")
        first = dict(layer=r0.name, direction="backward", **r0.backward.to_dict())
        where = "the signal at the input" if r0.name == "input" else f"the signal at {r0.name}'s output"
        reasons.append(f"first difference: {where}: {r0.reason}")
    if verdict == "equal":
        reasons.append(f"every layer within {rtol:g} of its largest value, forward and backward")
    return rows, verdict, reasons, ties, mismatches, first


# ---------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------

def _seed(t, act, kind):
    s = t.seed(act)
    return s * act if kind == "score" else s


def default_target(net, x):
    """The top class of fc8 for a net with its top at 224 px; else the strongest channel of
    the last layer before ``flatten`` (pool5), over the batch."""
    if net.include_top and tuple(x.shape[2:]) == (TOP_SIZE, TOP_SIZE):
        y = backend.to_numpy(net.forward(x))
        return targets.Target("fc8", int(numpy.argmax(y[0])))
    names = net.layer_names
    last = names[names.index("flatten") - 1] if "flatten" in names else names[-1]
    act = backend.to_numpy(net.forward(x, until=last))
    return targets.Target(last, int(numpy.argmax(act.sum(axis=(0, 2, 3)) if act.ndim == 4 else act.sum(axis=0))))


def compare(model, x=None, target=None, *, rule=None, preset=None, weights=None, net=None, golden=None,
            dtype=None, rtol=None, atol=0.0, preprocess=None, device=None):
    """Compare ``model`` with nnviz, layer by layer; returns a :class:`Report`.

    ``model``: a ``torch.nn.Module`` (torchvision's VGG layout, or any module whose leaves are
    a VGG's chain), a Keras model, or the path of a PyTorch state dict (``.pth``/``.pt``),
    Keras model (``.keras``/``.h5``) or ONNX file; or a :class:`Subject` from :func:`load`.
    ``x``: a preprocessed batch (N, 3, H, W) (``net.preprocess(images)``); ``target``: as for
    :func:`nnviz.methods.saliency` (default: the top class at 224 px with a top, else the
    strongest channel of pool5); ``rule``: the reference's rule (default: the preset's; also
    ``"guided-features"``, ``"deconvnet-features"``); ``preset``: see :data:`PRESETS`
    (default ``torch``, ``keras`` or ``onnx``); ``weights``: the reference's weight file
    (default: the model's own weights); ``net``: a ready reference net instead;
    ``golden``: a trace file written by :func:`nnviz.methods.trace` (``.h5``, ``.npz`` or a
    folder of ``.npy``) to compare with instead of computing the reference — its input,
    target and rule are used; ``dtype``: ``"float64"`` (default) or ``"float32"`` (ONNX:
    float32 only); ``rtol``/``atol``: the bound (default rtol 1e-10 in float64, 1e-4 in
    float32; atol 0)."""
    subject = load(model, preset=preset, weights=weights, net=net, preprocess=preprocess, device=device)
    net, side, preset = subject.net, subject.side, subject.preset
    onnx = subject.framework == "onnx"
    meta = None
    if golden is not None:
        ref_trace, meta = attribution.read_trace(golden)
        if x is not None:
            raise InputError("give x or golden, not both: a golden trace brings its own input")
        x = ref_trace["input"][0]
        gdtype = str(numpy.asarray(x).dtype)
        if dtype is not None and str(numpy.dtype(dtype)) != gdtype and not onnx:
            raise InputError(f"the golden trace is {gdtype}; dtype {dtype} asks for another")
        dtype = "float32" if onnx else gdtype
        if target is not None and str(targets.parse(target)) != meta.get("target"):
            raise InputError(f"the golden trace's target is {meta.get('target')}; target {target} asks for another")
        target = meta.get("target")
        grule = meta.get("rule", "backprop")
        if rule is not None and rule_text(rule) != grule:
            raise InputError(f"the golden trace's rule is {grule!r}; rule {rule_text(rule)!r} asks for another")
        rule = grule
        if meta.get("preprocess") in PREPROCESSING and preprocess is None:
            net.preprocessing = meta["preprocess"]     # the input convention (and LRP's pixel bounds) of the trace
    if x is None:
        raise InputError("compare needs an input batch x (N, 3, H, W) (net.preprocess(images)) or a golden trace")
    if not hasattr(x, "ndim") or x.ndim != 4 or x.shape[1] != 3:
        raise InputError(f"expected a preprocessed batch (N, 3, H, W), got shape {tuple(getattr(x, 'shape', ()))}")
    if dtype is None:
        dtype = "float32" if onnx else "float64"
    dtype = str(numpy.dtype(dtype))
    if dtype not in DTYPES:
        raise InputError(f"dtype {dtype}: expected float64 or float32")
    if onnx and dtype != "float32":
        raise InputError("ONNX Runtime has no float64 convolution on the CPU: ONNX models are compared "
                         "forward only, in float32 (dtype float32)")
    rtol = DEFAULT_RTOL[dtype] if rtol is None else float(rtol)
    atol = float(atol or 0.0)
    x = numpy.asarray(backend.to_numpy(x)).astype(dtype)
    xd = backend.to_device(x, net.device)
    if target is None:
        target = default_target(net, xd)
    t = targets.parse(target).check(net)
    if net.arch in CONFIGS and t.layer in TOP_LAYERS and tuple(x.shape[2:]) != (TOP_SIZE, TOP_SIZE):
        raise InputError(f"target {t} needs a {TOP_SIZE}×{TOP_SIZE} input, got {tuple(x.shape[2:])}")
    if t.layer not in side.names:
        raise InputError(f"target {t}: the {subject.what} has no layer {t.layer!r} (its layers end at "
                         f"{side.names[-1]})")
    backward = preset.backward
    if preset.method == "LRP" and t.position is None and not isinstance(net.layers[t.layer], (Linear, Flatten)):
        raise InputError(f"target {t}: Captum's LRP explains one output, a class or one unit (LAYER:CHANNEL:I,J); "
                         f"a channel summed over space is no output it can start from")
    if rule is None:
        rule = preset.rule or "backprop"
    given = rule if isinstance(rule, str) else None       # the name as the user spelled it
    rule = resolve_rule(net, rule) if backward else rule
    placed = place_rules(net, rule, dtype) if backward else {}
    if golden is not None:
        seed_kind = meta.get("seed", "one")
    else:
        seed_kind = "score" if backward and is_relevance(rule) else "one"
    names = net.layer_names[:net.layer_names.index(t.layer) + 1]
    if golden is None:
        act = net.forward(xd, until=t.layer)
        t.check(net, act.shape)
        seed = _seed(t, act, seed_kind)
        record = OrderedDict()
        dx = net.backward(seed, start=t.layer, rule=placed, record=record) if backward else None
        ref = OrderedDict([("input", (x, None if dx is None else backend.to_numpy(dx)))])
        for name in names:
            ref[name] = (backend.to_numpy(net.activations[name]),
                         backend.to_numpy(record[name]) if backward else None)
        seed = backend.to_numpy(seed)
        ref_what = (f"{net.arch} ({net.weights_info.get('source') or 'given net'}), "
                    f"{'weights from the model' if weights is None and subject.net is net else 'reference weights'}")
    else:
        missing = [n for n in names if n not in ref_trace]
        if missing:
            raise InputError(f"the golden trace has no layer {missing[0]!r}")
        ref = OrderedDict((n, ref_trace[n]) for n in ["input"] + names)
        t.check(net, numpy.shape(ref[t.layer][0]))
        seed = _seed(t, numpy.asarray(ref[t.layer][0]), seed_kind)
        ref_what = f"golden trace {os.path.basename(os.fspath(golden))}"
        if not backward:
            ref = OrderedDict((n, (a, None)) for n, (a, g) in ref.items())
    fw = side.run(x, t, numpy.asarray(seed, dtype), dtype)
    prefer = {}
    if backward and (preset.acts or preset.rule):
        try:
            prefer = place_rules(net, resolve_rule(net, preset.acts or preset.rule), dtype)
        except InputError:
            prefer = {}
    rows, verdict, reasons, ties, mismatches, first = _analyze(net, ref, fw, names, placed, rtol, atol, backward,
                                                               prefer)
    notes = list(subject.notes)
    if golden is not None and meta.get("weights_sha256"):
        mine = attribution.weights_digest(net)
        if mine != meta["weights_sha256"]:
            notes.append(f"the golden trace was made with other weights (sha256 {meta['weights_sha256'][:12]}…, "
                         f"the model's {mine[:12]}…)")
    if backward and not numpy.abs(numpy.asarray(ref["input"][1], numpy.float64)).max() > 0:
        notes.append("the reference's signal at the input is zero everywhere (a dead target?): the backward "
                     "comparison says little; choose another target")
    reasons += [f"note: {n}" for n in notes]
    shown = given or rule_text(rule)
    info = dict(framework=subject.what, preset=preset.name, rule=rule_text(rule) if backward else None,
                rule_name=given, rule_text=(json.dumps(shown) if isinstance(shown, dict) else shown)
                if backward else "none (forward only)",
                dtype=dtype, target=str(t), input_shape=list(x.shape), rtol=rtol, atol=atol, reference=ref_what,
                seed=seed_kind, golden=None if golden is None else os.fspath(golden), notes=notes)
    return Report(rows, verdict, reasons, info, ties, mismatches, first)
