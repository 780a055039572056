"""nnviz as the oracle: another framework's forward and backward, layer by layer, against the
reference, with a verdict. The backward rules compared are the gradient (Simonyan et al. 2013),
the deconvnet (Zeiler & Fergus 2014), guided backprop (Springenberg et al. 2015) and the LRP
composites of :mod:`nnviz.rules` (Bach et al. 2015; zennit's names).

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
``torch-deconvnet-features``), Captum's ``Saliency``, ``GuidedBackprop``, ``Deconvolution``
and ``LRP``, zennit's ``guided_backprop`` and ``deconvnet`` composites and its LRP
composites, Keras's gradient with the torch backend, and ONNX Runtime (forward only,
float32: it has no float64 convolution on the CPU and computes no gradients).

The package, one module per idea: :mod:`.presets` (the conventions and the reference's
rule), :mod:`.reference` (nnviz's net from the model's weights, layer matching, the default
target, the reference's run), :mod:`.torch_side`, :mod:`.keras_side`, :mod:`.onnx_side` (the
framework adapters), :mod:`.subject` (loading a model), :mod:`.diff` (differences and the
bound), :mod:`.local` (the local rule checks and ties), :mod:`.report` (rows, verdicts, the
report). torch, keras, captum, zennit, onnx and onnxruntime are imported inside the functions
that need them, never at import time.
"""
import json
import os
from collections import OrderedDict

import numpy

from ... import backend, targets
from ... import rules as R
from ...errors import BadFile, BadOption, BadRule, BadShape, BadTarget, InputError, UnknownLayer
from ...layers import Flatten, Linear
from ...vgg import PREPROCESSING
from .. import attribution
from ..lrp import start_signal
from .diff import DEFAULT_RTOL, DTYPES, Diff, diff
from .presets import PRESETS, Preset, get_preset, place_rules, resolve_rule, rule_text
from .reference import default_target, net_from_params, run_reference
from .report import VERDICTS, Report, Row, analyze
from .subject import Subject, framework_of, load
from .torch_side import torch_vgg, torch_vgg_from_net

__all__ = ["compare", "load", "Subject", "Report", "Row", "Diff", "diff", "Preset", "PRESETS", "VERDICTS",
           "DTYPES", "DEFAULT_RTOL", "get_preset", "resolve_rule", "default_target", "framework_of",
           "net_from_params", "torch_vgg", "torch_vgg_from_net"]


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
    trace, meta = None, {}
    if golden is not None:
        trace, meta, x, target, rule, dtype = _golden(golden, net, x, target, rule, dtype, preprocess, onnx)
    x, dtype = _batch(x, dtype, onnx)
    rtol = DEFAULT_RTOL[dtype] if rtol is None else float(rtol)
    atol = float(atol or 0.0)
    t = _target(subject, x, target)
    backward = preset.backward
    if rule is None:
        rule = preset.rule or "backprop"
    given = rule if isinstance(rule, str) else None       # the name as the user spelled it
    rule = resolve_rule(net, rule) if backward else rule
    placed = place_rules(net, rule, dtype) if backward else {}
    if golden is not None:
        seed_kind = meta.get("seed", "one")
    else:
        seed_kind = "score" if backward and R.is_relevance(rule) else "one"
    names = net.layer_names[:net.layer_names.index(t.layer) + 1]
    if golden is None:
        ref, seed = run_reference(net, x, t, placed, seed_kind, backward)
        ref_what = (f"{net.arch} ({net.weights_info.get('source') or 'given net'}), "
                    f"{'weights from the model' if weights is None else 'reference weights'}")
    else:
        ref, seed = _golden_reference(trace, net, names, t, seed_kind, backward)
        ref_what = f"golden trace {os.path.basename(os.fspath(golden))}"
    fw = side.run(x, t, numpy.asarray(seed, dtype), dtype)
    report = analyze(net, ref, fw, names, placed, rtol, atol, backward, _preferred(net, preset, dtype))
    notes = _notes(subject, meta, ref, backward)
    report.reasons += [f"note: {n}" for n in notes]
    shown = given or rule_text(rule)
    report.info = dict(framework=subject.what, preset=preset.name, rule=rule_text(rule) if backward else None,
                       rule_name=given, rule_text=(json.dumps(shown) if isinstance(shown, dict) else shown)
                       if backward else "none (forward only)",
                       dtype=dtype, target=str(t), input_shape=list(x.shape), rtol=rtol, atol=atol,
                       reference=ref_what, seed=seed_kind, golden=None if golden is None else os.fspath(golden),
                       notes=notes)
    return report


def _golden(golden, net, x, target, rule, dtype, preprocess, onnx):
    """What a golden trace brings: ``(trace, meta, x, target, rule, dtype)``, each checked
    against what the caller asked for."""
    trace, meta = attribution.read_trace(golden)
    if x is not None:
        raise BadOption("give x or golden, not both: a golden trace brings its own input")
    x = trace["input"][0]
    gdtype = str(numpy.asarray(x).dtype)
    if dtype is not None and str(numpy.dtype(dtype)) != gdtype and not onnx:
        raise BadOption(f"the golden trace is {gdtype}; dtype {dtype} asks for another")
    if target is not None and str(targets.parse(target)) != meta.get("target"):
        raise BadTarget(f"the golden trace's target is {meta.get('target')}; target {target} asks for another")
    grule = meta.get("rule", "backprop")
    if rule is not None and rule_text(rule) != grule:
        raise BadRule(f"the golden trace's rule is {grule!r}; rule {rule_text(rule)!r} asks for another")
    if meta.get("preprocess") in PREPROCESSING and preprocess is None:
        net.preprocessing = meta["preprocess"]     # the input convention (and LRP's pixel bounds) of the trace
    return trace, meta, x, meta.get("target"), grule, "float32" if onnx else gdtype


def _batch(x, dtype, onnx):
    """``(x, dtype)``: the batch checked, on the host in the comparison's dtype."""
    if x is None:
        raise BadOption("compare needs an input batch x (N, 3, H, W) (net.preprocess(images)) or a golden trace")
    if not hasattr(x, "ndim") or x.ndim != 4 or x.shape[1] != 3:
        raise BadShape(f"expected a preprocessed batch (N, 3, H, W), got shape {tuple(getattr(x, 'shape', ()))}")
    dtype = str(numpy.dtype(("float32" if onnx else "float64") if dtype is None else dtype))
    if dtype not in DTYPES:
        raise BadOption(f"dtype {dtype}: expected float64 or float32")
    if onnx and dtype != "float32":
        raise BadOption("ONNX Runtime has no float64 convolution on the CPU: ONNX models are compared "
                        "forward only, in float32 (dtype float32)")
    return numpy.asarray(backend.to_numpy(x)).astype(dtype), dtype


def _target(subject, x, target):
    """The target (default: :func:`default_target`), checked against the net, the input's
    size, the framework's layers and the preset."""
    net, preset = subject.net, subject.preset
    if target is None:
        target = default_target(net, backend.to_device(x, net.device))
    t = targets.parse(target).check(net)
    net.check_size(t.layer, x.shape, f"target {t}")
    names = subject.side.names
    if t.layer not in names:
        raise UnknownLayer(f"target {t}: the {subject.what} has no layer {t.layer!r} (its layers end at "
                           f"{names[-1]})")
    if preset.method == "LRP" and t.position is None and not isinstance(net.layers[t.layer], (Linear, Flatten)):
        raise BadTarget(f"target {t}: Captum's LRP explains one output, a class or one unit (LAYER:CHANNEL:I,J); "
                        f"a channel summed over space is no output it can start from")
    return t


def _golden_reference(trace, net, names, t, seed, backward):
    """``(trace, start signal)`` of the reference from a golden trace, as :func:`run_reference`
    gives them."""
    missing = [n for n in names if n not in trace]
    if missing:
        raise BadFile(f"the golden trace has no layer {missing[0]!r}")
    ref = OrderedDict((n, trace[n]) for n in ["input"] + names)
    t.check(net, numpy.shape(ref[t.layer][0]))
    dy = start_signal(t, numpy.asarray(ref[t.layer][0]), seed)
    if not backward:
        ref = OrderedDict((n, (a, None)) for n, (a, g) in ref.items())
    return ref, dy


def _preferred(net, preset, dtype):
    """``{layer: Rule}`` of the rule the framework's preset stands for (tried first where a
    layer does not follow the rule asked for); empty where the net cannot place it."""
    if not preset.backward or not (preset.acts or preset.rule):
        return {}
    try:
        return place_rules(net, resolve_rule(net, preset.acts or preset.rule), dtype)
    except InputError:
        return {}


def _notes(subject, meta, ref, backward):
    """The notes of a report: the subject's, a golden trace made with other weights, a
    reference signal that is zero everywhere."""
    notes = list(subject.notes)
    if meta.get("weights_sha256"):
        mine = attribution.weights_digest(subject.net)
        if mine != meta["weights_sha256"]:
            notes.append(f"the golden trace was made with other weights (sha256 {meta['weights_sha256'][:12]}…, "
                         f"the model's {mine[:12]}…)")
    if backward and not numpy.abs(numpy.asarray(ref["input"][1], numpy.float64)).max() > 0:
        notes.append("the reference's signal at the input is zero everywhere (a dead target?): the backward "
                     "comparison says little; choose another target")
    return notes
