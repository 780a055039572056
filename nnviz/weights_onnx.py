"""ONNX import of VGG-shaped models: the weights of a graph exported by ``torch.onnx.export``
(or any ONNX graph that is a chain of ``Conv``, ``Relu``, ``MaxPool``, ``Flatten`` and
``Gemm`` / ``MatMul`` + ``Add`` nodes), read with the ``onnx`` package as data — initializers
and ``Constant`` nodes. Nothing in the file is run.

:func:`chain` walks the graph from its one data input along the data path and gives one step
per layer, in order: ``Step(kind, label, output, weight, bias)`` with ``kind`` one of ``conv``,
``relu``, ``pool`` (2×2 max pooling, stride 2), ``avgpool`` (2×2 average pooling), ``flatten``,
``fc``; ``output`` is the name of the tensor the step writes (what ``nnviz compare`` asks ONNX
Runtime for), weights in PyTorch layouts (conv ``(O, C, kh, kw)``, linear ``(out, in)``).
Identity-like nodes (``Dropout``, ``Identity``, a 1×1 ``AveragePool`` such as torchvision's
``AdaptiveAvgPool2d((7, 7))`` at 224 px) and a final ``Softmax`` are passed over.

:func:`read_onnx` returns what :func:`nnviz.weights.read` expects of a reader; the input
convention recorded is ``"torch"`` (torchvision's), which ``nnviz weights import --preprocess``
can override. Graphs that compute channels-last (a ``Transpose`` on the data path, as
tf2onnx writes for Keras models) are refused with a clear error.
"""
import os
from dataclasses import dataclass

import numpy

from .errors import InputError

SKIPPED = ("Dropout", "Identity")


@dataclass
class Step:
    kind: str
    label: str
    output: str
    weight: numpy.ndarray = None
    bias: numpy.ndarray = None
    stored: tuple = None          # the weight's shape as stored in the file


def load(path):
    """The ``onnx.ModelProto`` of ``path`` (external data from its folder), or an InputError."""
    try:
        import onnx
    except ImportError:
        raise InputError(f"{path}: reading ONNX files needs the onnx package (pip install onnx)") from None
    from google.protobuf.message import DecodeError
    name = os.path.basename(os.fspath(path))
    try:
        model = onnx.load(os.fspath(path))
    except (DecodeError, OSError, ValueError, RuntimeError) as e:
        raise InputError(f"{name}: not a readable ONNX file: {e}") from None
    if not model.graph.node:
        raise InputError(f"{name}: not an ONNX model (its graph has no nodes)")
    return model


def _attrs(node):
    import onnx
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _constants(graph):
    """Tensor name -> numpy array for every initializer and Constant node (data, never run)."""
    from onnx import numpy_helper
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            a = _attrs(node)
            if "value" in a:
                values[node.output[0]] = numpy_helper.to_array(a["value"])
    # Identity nodes that forward a constant (torch's exporter writes them for shared weights)
    for node in graph.node:
        if node.op_type == "Identity" and node.input and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    return values


def _label(node, k):
    return node.name or f"{node.op_type} node #{k}"


def _const(values, node, k, i, name):
    """Input ``i`` of ``node``: a stored array (float32), None if absent."""
    if len(node.input) <= i or not node.input[i]:
        return None
    if node.input[i] not in values:
        raise InputError(f"{name}: {_label(node, k)} ({node.op_type}): input {node.input[i]!r} is not "
                         f"stored in the file (weights computed by the graph are not supported)")
    return numpy.asarray(values[node.input[i]], dtype=numpy.float32)


def _check(cond, name, node, k, what):
    if not cond:
        raise InputError(f"{name}: {_label(node, k)} ({node.op_type}) {what}: not a layer of a plain "
                         f"VGG")


def _conv(node, k, a, const, name):
    w, b = const(1), const(2)
    _check(w is not None and w.ndim == 4, name, node, k, "has no 4-d weight")
    kh, kw = w.shape[2:]
    _check(a.get("group", 1) == 1, name, node, k, f"is a grouped convolution (group {a.get('group')})")
    _check(list(a.get("strides", [1, 1])) == [1, 1], name, node, k, f"has strides {a.get('strides')}")
    _check(list(a.get("dilations", [1, 1])) == [1, 1], name, node, k,
           f"has dilations {a.get('dilations')}")
    pads = list(a.get("pads", [0, 0, 0, 0]))
    _check(pads == [kh // 2, kw // 2] * 2 and a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"),
           name, node, k, f"has padding {pads} (a VGG pads its {kh}×{kw} kernels by {kh // 2})")
    if b is None:
        b = numpy.zeros(w.shape[0], numpy.float32)
    return Step("conv", _label(node, k), node.output[0], w, b, tuple(w.shape))


def _pool(node, k, a, name):
    """The pooling step, or None for torchvision's AdaptiveAvgPool2d((7, 7)) at 224 px (an
    identity average pooling)."""
    op = node.op_type
    ks, st = list(a.get("kernel_shape", [])), list(a.get("strides", a.get("kernel_shape", [])))
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if op == "AveragePool" and ks == [1, 1] and st == [1, 1] and not any(pads):
        return None
    _check(ks == [2, 2] and st == [2, 2] and not any(pads) and not a.get("ceil_mode", 0),
           name, node, k, f"has kernel {ks}, strides {st}, pads {pads} (a VGG pools 2×2, stride 2)")
    return Step("pool" if op == "MaxPool" else "avgpool", _label(node, k), node.output[0])


def _gemm(node, k, a, const, name):
    w, b = const(1), const(2)
    _check(w is not None and w.ndim == 2, name, node, k, "has no 2-d weight")
    _check(not a.get("transA", 0) and a.get("alpha", 1.0) == 1.0 and a.get("beta", 1.0) == 1.0,
           name, node, k, f"scales or transposes its input ({a})")
    stored = tuple(w.shape)
    w = w if a.get("transB", 0) else w.T
    if b is None:
        b = numpy.zeros(w.shape[0], numpy.float32)
    return Step("fc", _label(node, k), node.output[0], numpy.ascontiguousarray(w), b.reshape(-1), stored)


def _matmul(node, k, const, values, consumers, name):
    """A MatMul, with the Add of a constant after it as its bias when there is one."""
    w = const(1)
    _check(w is not None and w.ndim == 2, name, node, k, "has no 2-d weight")
    out = node.output[0]
    nxt = consumers.get(out, [])
    b = None
    if len(nxt) == 1 and nxt[0][1].op_type == "Add":
        add = nxt[0][1]
        other = [i for i in add.input if i != out]
        if len(other) == 1 and other[0] in values:
            b = numpy.asarray(values[other[0]], numpy.float32).reshape(-1)
            out = add.output[0]
    if b is None:
        b = numpy.zeros(w.shape[1], numpy.float32)
    return Step("fc", _label(node, k), out, numpy.ascontiguousarray(w.T), b, tuple(w.shape))


def _refuse(node, k, op, name):
    if op == "GlobalAveragePool":
        raise InputError(f"{name}: {_label(node, k)} (GlobalAveragePool): a global average pooling "
                         f"is not part of a VGG")
    if op == "Transpose":
        raise InputError(f"{name}: {_label(node, k)} (Transpose) on the data path: a channels-last "
                         f"graph (as tf2onnx writes for Keras); export the model channels-first "
                         f"(NCHW), as torch.onnx.export does")
    raise InputError(f"{name}: {_label(node, k)} ({op}) on the data path is not a layer of a "
                     f"plain VGG (Conv, Relu, MaxPool, Flatten, Gemm)")


def _step(node, k, values, consumers, outputs, name):
    """The :class:`Step` of one node on the data path (None: passed over) and the tensor it
    hands on."""
    op, a, out = node.op_type, _attrs(node), node.output[0]

    def const(i):
        return _const(values, node, k, i, name)
    if op == "Conv":
        return _conv(node, k, a, const, name), out
    if op == "Relu":
        return Step("relu", _label(node, k), out), out
    if op in ("MaxPool", "AveragePool"):
        return _pool(node, k, a, name), out
    if op in ("Flatten", "Reshape"):
        _check(op == "Reshape" or a.get("axis", 1) == 1, name, node, k, f"flattens from axis {a.get('axis')}")
        return Step("flatten", _label(node, k), out), out
    if op == "Gemm":
        return _gemm(node, k, a, const, name), out
    if op == "MatMul":
        step = _matmul(node, k, const, values, consumers, name)
        return step, step.output
    if op in SKIPPED or (op == "Softmax" and out in outputs):
        return None, out
    _refuse(node, k, op, name)


def chain(model, name="model.onnx"):
    """The layers of ``model`` (an ``onnx.ModelProto``) along its data path: a list of
    :class:`Step`. Raises InputError naming the node where the graph is no plain VGG chain."""
    graph = model.graph
    values = _constants(graph)
    inputs = [i.name for i in graph.input if i.name not in values]
    if len(inputs) != 1:
        raise InputError(f"{name}: expected one data input, found {len(inputs)} ({', '.join(inputs)})")
    outputs = {o.name for o in graph.output}
    consumers = {}
    for k, node in enumerate(graph.node):
        if node.input and node.op_type not in ("Shape", "Size", "Constant"):
            consumers.setdefault(node.input[0], []).append((k, node))
    steps, current = [], inputs[0]
    while consumers.get(current):
        users = consumers[current]
        if len(users) > 1:
            raise InputError(f"{name}: tensor {current!r} feeds {len(users)} nodes "
                             f"({', '.join(_label(n, k) for k, n in users)}): not a chain of layers")
        k, node = users[0]
        step, current = _step(node, k, values, consumers, outputs, name)
        if step is not None:
            steps.append(step)
    if not steps:
        raise InputError(f"{name}: no layers found along the data path from input {inputs[0]!r}")
    return steps


def input_info(model):
    """``(name, shape)`` of the data input; shape entries None where dynamic."""
    graph = model.graph
    init = {t.name for t in graph.initializer}
    for i in graph.input:
        if i.name not in init:
            dims = [d.dim_value if d.HasField("dim_value") else None
                    for d in i.type.tensor_type.shape.dim]
            return i.name, tuple(dims)
    raise InputError("the ONNX graph has no data input")


def read_onnx(path, name=None):
    """The reader :func:`nnviz.weights.read` calls for ``.onnx`` files: ``(convs, fcs, meta)``
    with ``convs``, ``fcs`` lists of ``(label, stored shape, weight, bias)`` in PyTorch layouts."""
    name = name or os.path.basename(os.fspath(path))
    steps = chain(load(path), name)
    convs = [(s.label, s.stored, s.weight, s.bias) for s in steps if s.kind == "conv"]
    fcs = [(s.label, s.stored, s.weight, s.bias) for s in steps if s.kind == "fc"]
    return convs, fcs, dict(preprocess="torch", kind="onnx", what="ONNX")
