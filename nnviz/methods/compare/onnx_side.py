"""The ONNX side of a comparison: an ONNX file run by ONNX Runtime on the CPU, every layer's
output added to the graph's outputs; forward only and in float32 (ONNX Runtime has no float64
convolution on the CPU and computes no gradients). The layers are read by
:mod:`nnviz.weights_onnx`.

onnx and onnxruntime are imported inside the functions that need them."""
import os
from collections import OrderedDict

import numpy

from ... import weights_onnx
from ...errors import BadOption, BadShape
from .reference import match


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
        self.steps = match(net, [(s.kind, s.label, s.output) for s in steps], self.what)
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
                raise BadOption("comparing an ONNX model needs onnx and onnxruntime "
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
            raise BadShape(f"{self.name} takes input of shape {self.input_shape}, got {shape} "
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
