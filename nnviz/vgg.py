"""The one description of VGG16 and VGG19 (Simonyan & Zisserman 2015): layer names, widths,
parameter shapes, and the input conventions that weights come with.

Layer names follow the Caffe/Gatys convention: ``conv1_1, relu1_1, conv1_2, relu1_2, pool1,
…, conv5_3 (conv5_4 in VGG19), relu5_3, pool5, flatten, fc6, relu6, fc7, relu7, fc8``.
Dropout is the identity at inference and is not a layer. :mod:`nnviz.models` builds nets from
this layout and :mod:`nnviz.weights` checks files against it.
"""
from collections import OrderedDict

import numpy

from .errors import InputError

CONFIGS = {
    "vgg16": (2, 2, 3, 3, 3),   # convolutions per block
    "vgg19": (2, 2, 4, 4, 4),
}
WIDTHS = (64, 128, 256, 512, 512)
TOP_SIZE = 224                  # the input size the fully connected layers were built for
TOP_FEATURES = 512 * 7 * 7
FC_SIZES = {"fc6": (TOP_FEATURES, 4096), "fc7": (4096, 4096), "fc8": (4096, 1000)}
TOP_LAYERS = ("flatten", "fc6", "relu6", "fc7", "relu7", "fc8")

# input conventions stored with the weights ("preprocess" attribute)
PREPROCESSING = ("caffe", "torch")
CAFFE_MEAN_BGR = numpy.array([103.939, 116.779, 123.68], dtype=numpy.float32)
TORCH_MEAN_RGB = numpy.array([0.485, 0.456, 0.406], dtype=numpy.float32)
TORCH_STD_RGB = numpy.array([0.229, 0.224, 0.225], dtype=numpy.float32)


def check_arch(arch):
    if arch not in CONFIGS:
        raise InputError(f"unknown arch {arch!r}: expected one of {', '.join(CONFIGS)}")
    return arch


def layout(arch, include_top=True, pooling="max"):
    """The layers of ``arch`` in order: ``(name, kind, options)`` with ``kind`` one of
    ``conv``, ``relu``, ``pool``, ``flatten``, ``fc``; ``options`` the constructor's."""
    check_arch(arch)
    if pooling not in ("max", "avg"):
        raise ValueError(f"pooling must be 'max' or 'avg', got {pooling!r}")
    rows = []
    c_in = 3
    for block, (count, width) in enumerate(zip(CONFIGS[arch], WIDTHS), start=1):
        for i in range(1, count + 1):
            rows += [(f"conv{block}_{i}", "conv", dict(in_channels=c_in, out_channels=width,
                                                       kernel_size=3, padding=1)),
                     (f"relu{block}_{i}", "relu", {})]
            c_in = width
        rows.append((f"pool{block}", "pool", dict(kind=pooling, kernel_size=2, stride=2)))
    if include_top:
        rows.append(("flatten", "flatten", {}))
        for k, (name, (n_in, n_out)) in enumerate(FC_SIZES.items()):
            rows.append((name, "fc", dict(in_features=n_in, out_features=n_out)))
            if name != "fc8":
                rows.append((f"relu{6 + k}", "relu", {}))
    return rows


def conv_names(arch):
    """``["conv1_1", "conv1_2", "conv2_1", …]`` of a VGG."""
    return [name for name, kind, _ in layout(arch, include_top=False) if kind == "conv"]


def parameter_shapes(arch, include_top=True):
    """Ordered ``"conv1_1/weight" -> shape`` of every parameter (PyTorch layouts)."""
    shapes = OrderedDict()
    for name, kind, o in layout(arch, include_top):
        if kind == "conv":
            shapes[f"{name}/weight"] = (o["out_channels"], o["in_channels"], 3, 3)
            shapes[f"{name}/bias"] = (o["out_channels"],)
        elif kind == "fc":
            shapes[f"{name}/weight"] = (o["out_features"], o["in_features"])
            shapes[f"{name}/bias"] = (o["out_features"],)
    return shapes


def missing_top(what, source=None):
    """The error for something (``what``: a target, a layer) that needs the fully connected
    layers of a net built without them (the default weights are a convolutional backbone)."""
    return InputError(
        f"{what} needs the fully connected layers, which this net "
        f"({source or 'a convolutional backbone'}) does not have: import full VGG weights with "
        f"'nnviz weights import FILE' and pass --weights FILE (or use a convolutional target "
        f"such as conv5_3:12)")
