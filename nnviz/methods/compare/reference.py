"""The reference side of a comparison: nnviz's VGG holding the framework's weights (built by
:mod:`nnviz.models`, the parameters named and checked by :func:`nnviz.weights.assemble`), the
framework's layers matched to its layers, compare's default target, and the reference's own
forward and backward, every layer recorded."""
from collections import OrderedDict

import numpy

from ... import backend, models, targets
from ... import weights as W
from ...errors import BadFile
from ...vgg import CONFIGS, TOP_SIZE
from ..lrp import start_signal

KINDS = {"Conv2d": "conv", "ReLU": "relu", "MaxPool2d": "pool", "AvgPool2d": "avgpool",
         "Flatten": "flatten", "Linear": "fc"}
BUILDERS = {"vgg16": models.vgg16, "vgg19": models.vgg19}


def kind_of(layer):
    """The kind of an nnviz layer as the frameworks' layers are matched to it (conv, relu,
    pool, avgpool, flatten, fc)."""
    return KINDS[type(layer).__name__]


def net_from_params(params, arch=None, preprocess="torch", source="", pooling="max", device=None):
    """A :class:`nnviz.models.Net` holding ``params`` (``"conv1_1/weight" -> array``, PyTorch
    layouts, as :func:`nnviz.weights.assemble` names them): VGG16 or VGG19 by the number of
    convolutions, with its top when ``fc8`` is there."""
    what = source or "the model"
    convs = sum(1 for k in params if k.startswith("conv") and k.endswith("/weight"))
    found = W.ARCH_BY_CONVS.get(convs)
    if found is None or (arch is not None and arch != found):
        raise BadFile(f"{what}: {convs} convolutions, not a {arch or ' or '.join(CONFIGS)}")
    net = BUILDERS[found](include_top="fc8/weight" in params, pooling=pooling, seed=0, device="cpu")
    shapes = OrderedDict((key, tuple(a.shape)) for key, a in net.parameters())
    for key, shape in shapes.items():
        if key not in params:
            raise BadFile(f"{what}: no {key}")
        if tuple(params[key].shape) != shape:
            raise BadFile(f"{what}: {key} of shape {tuple(params[key].shape)}, expected {shape}")
    for key in shapes:
        layer, p = key.split("/")
        setattr(net.layers[layer], p, numpy.ascontiguousarray(params[key], dtype=numpy.float32))
    net.preprocessing = preprocess
    net.weights_info = dict(arch=found, source=source, preprocess=preprocess, include_top=net.include_top)
    return net.to(device or "cpu")


def match(net, found, what):
    """``found``: the framework's layers in order, ``(kind, label, handle)``. Returns
    ``[(nnviz name, label, handle)]`` in the net's order; a flatten the framework does
    implicitly (torchvision's ``torch.flatten`` in ``forward``) gets handle None."""
    out, i = [], 0
    for name in net.layer_names:
        kind = kind_of(net.layers[name])
        if i < len(found) and found[i][0] == kind:
            out.append((name, found[i][1], found[i][2]))
            i += 1
        elif kind == "flatten" and i < len(found) and found[i][0] == "fc":
            out.append((name, "(flatten in forward)", None))
        elif i >= len(found):
            break
        else:
            raise BadFile(f"{what}: its layer {found[i][1]} is a {found[i][0]} where {net.arch} has "
                          f"{name} (a {kind}): not the same chain of layers")
    if i < len(found):
        raise BadFile(f"{what}: layers left over after {net.layer_names[-1]}: "
                      f"{', '.join(str(f[1]) for f in found[i:i + 3])}")
    return out


def default_target(net, x):
    """The top class of fc8 for a net with its top at 224 px; else the strongest channel of
    the last layer before ``flatten`` (pool5), over the batch.

    Not :func:`nnviz.methods.attribution.default_target` (one unit of pool5 per image, on the
    image's content): a comparison runs one target on both sides, and Captum's presets take
    one class or channel for the batch."""
    if net.include_top and tuple(x.shape[2:]) == (TOP_SIZE, TOP_SIZE):
        y = backend.to_numpy(net.forward(x))
        return targets.Target("fc8", int(numpy.argmax(y[0])))
    names = net.layer_names
    last = names[names.index("flatten") - 1] if "flatten" in names else names[-1]
    act = net.forward(x, until=last)
    return targets.Target(last, targets.strongest_channels(act.sum(axis=0), 1)[0])


def run_reference(net, x, t, placed, seed, backward):
    """nnviz's side of the comparison on the batch ``x`` (on the host): the forward up to the
    target ``t``'s layer and, when ``backward``, the backward from its start signal under the
    placed rules ``placed``. Returns ``(trace, start signal)``, ``trace`` as
    :func:`nnviz.methods.attribution.read_trace` gives it: ``name -> (activation, signal
    arriving at its output)``, ``"input"`` first (the signal there: the result)."""
    act = net.forward(backend.to_device(x, net.device), until=t.layer)
    t.check(net, act.shape)
    dy = start_signal(t, act, seed)
    record = OrderedDict()
    dx = net.backward(dy, start=t.layer, rule=placed, record=record) if backward else None
    ref = OrderedDict([("input", (x, None if dx is None else backend.to_numpy(dx)))])
    for name in net.layer_names[:net.layer_names.index(t.layer) + 1]:
        ref[name] = (backend.to_numpy(net.activations[name]), backend.to_numpy(record[name]) if backward else None)
    return ref, backend.to_numpy(dy)
