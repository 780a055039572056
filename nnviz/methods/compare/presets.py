"""The framework conventions that :func:`nnviz.methods.compare.compare` knows (:data:`PRESETS`)
and the reference's rule: a preset by name, a rule as :meth:`nnviz.models.Net.backward` takes
it (also the features-only rules of pytorch-cnn-visualizations and Captum's LRP rules), where
it places which rule, and a short text for it."""
from collections import OrderedDict
from dataclasses import dataclass

import numpy

from ... import rules as R
from ...errors import BadOption, BadRule
from ...layers import ReLU
from .local import captum_lrp_rule

# the rules of the reference that guide only the convolutional part (pytorch-cnn-visualizations)
FEATURES_RULES = {"guided-features": "guided", "deconvnet-features": "deconvnet"}


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
    for name in R.COMPOSITES:
        p.append(Preset(f"zennit-{name.replace('_', '-')}", "zennit", name, name,
                        f"zennit's {name} composite (LRP), zennit.attribution.Gradient with attr_output = "
                        f"the seed times the score", seed="score"))
    return OrderedDict((x.name, x) for x in p)


PRESETS = _presets()
DEFAULT_PRESET = {"torch": "torch", "keras": "keras", "onnx": "onnx"}


def get_preset(name, framework):
    """The :class:`Preset` called ``name`` (underscores allowed; None: the framework's
    default), checked to run a model of ``framework`` (torch, keras or onnx)."""
    if name is None:
        return PRESETS[DEFAULT_PRESET[framework]]
    key = str(name).replace("_", "-")
    if key not in PRESETS:
        raise BadOption(f"unknown preset {name!r}: expected one of {', '.join(PRESETS)}")
    preset = PRESETS[key]
    family = "torch" if preset.framework in ("torch", "captum", "zennit") else preset.framework
    if family != framework:
        raise BadOption(f"preset {preset.name!r} runs a {family} model, but the model is a {framework} one")
    return preset


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
        rule = name if name in R.PRESETS else rule
    place_rules(net, rule, "float64")          # an unknown or misplaced rule: a clear error now
    return rule


def place_rules(net, rule, dtype):
    """``{layer name: Rule}``: where ``rule`` puts which rule in ``net`` (LRP box rules get
    the bounds of the net's pixel range); a :class:`BadRule` naming the rule if it cannot."""
    try:
        return net.assign_rules(rule, numpy.dtype(dtype))
    except (KeyError, ValueError, TypeError) as e:
        raise BadRule(f"rule {rule_text(rule)!r}: {e.args[0] if e.args else e}") from None


def rule_text(rule):
    """A short, JSON-friendly description of a rule."""
    if rule is None or isinstance(rule, str):
        return rule or "backprop"
    if isinstance(rule, dict):
        return {str(k): (v if isinstance(v, str) else getattr(v, "name", repr(v))) for k, v in rule.items()}
    return repr(rule)
