"""VGG16 and VGG19 (Simonyan & Zisserman 2015) as a :class:`Net` of named hand-written layers.

Layer names follow the Caffe/Gatys convention: ``conv1_1, relu1_1, conv1_2, relu1_2, pool1,
…, conv5_3 (conv5_4 in VGG19), relu5_3, pool5, flatten, fc6, relu6, fc7, relu7, fc8``.
Dropout is the identity at inference and is not a layer.
"""
from collections import OrderedDict

import numpy

from . import backend
from .functional import RULES
from .layers import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU

CAFFE_MEAN_BGR = numpy.array([103.939, 116.779, 123.68], dtype=numpy.float32)
TORCH_MEAN_RGB = numpy.array([0.485, 0.456, 0.406], dtype=numpy.float32)
TORCH_STD_RGB = numpy.array([0.229, 0.224, 0.225], dtype=numpy.float32)
PREPROCESSING = ("caffe", "torch")

CONFIGS = {
    "vgg16": (2, 2, 3, 3, 3),   # convolutions per block
    "vgg19": (2, 2, 4, 4, 4),
}
WIDTHS = (64, 128, 256, 512, 512)
TOP_SIZE = 224                  # the input size the fully connected layers were built for
TOP_FEATURES = 512 * 7 * 7


class Net:
    """A chain of named layers with forward to any layer and backward from any layer.

    ``layers``: ordered name -> layer; ``activations[name]``: each layer's output of the last
    forward. ``preprocessing`` (``"caffe"`` or ``"torch"``) is the input convention of the
    weights.
    """

    def __init__(self, layers, arch="custom", preprocessing="caffe", device=None):
        self.layers = OrderedDict(layers)
        for name, layer in self.layers.items():
            layer.name = name
        self.arch = arch
        self.preprocessing = preprocessing
        self.weights_info = {}
        self.activations = OrderedDict()
        self.device = "cpu"
        self.to(backend.resolve_device(device))

    # -- bookkeeping -----------------------------------------------------------------------
    @property
    def layer_names(self):
        return list(self.layers)

    @property
    def include_top(self):
        return "fc8" in self.layers

    def __repr__(self):
        return f"Net({self.arch!r}, {len(self.layers)} layers, device={self.device!r})"

    def to(self, device):
        """Move the parameters to ``"cpu"``, ``"gpu"`` or ``"auto"``; returns the net."""
        device = backend.resolve_device(device)
        xp = backend.get_xp(device)
        for layer in self.layers.values():
            layer.to(xp)
        self.device = device
        self.activations = OrderedDict()
        return self

    @property
    def xp(self):
        return backend.get_xp(self.device)

    def requires_grad_(self, flag=True):
        """Compute parameter gradients in backward (off by default: visualization needs only
        the input gradient)."""
        for layer in self.layers.values():
            if hasattr(layer, "requires_grad"):
                layer.requires_grad = flag
        return self

    def parameters(self):
        """``(name, array)`` pairs, ``"conv1_1/weight"`` style, in layer order."""
        for lname, layer in self.layers.items():
            for p in layer.params:
                a = getattr(layer, p)
                if a is not None:
                    yield f"{lname}/{p}", a

    def check_layer(self, name, what="layer"):
        if name not in self.layers:
            raise KeyError(f"unknown {what} {name!r} for {self.arch}: expected one of "
                           f"{', '.join(self.layers)}")
        return name

    # -- forward and backward --------------------------------------------------------------
    def _check_top(self, x_shape, until):
        """Fully connected layers only for a 224×224 input."""
        names = self.layer_names
        if self.arch not in CONFIGS or "flatten" not in self.layers:
            return until
        first_fc = names.index("flatten")
        if tuple(x_shape[2:]) == (TOP_SIZE, TOP_SIZE):
            return until
        if until is None:
            return names[first_fc - 1]   # the convolutional part only, up to pool5
        if names.index(until) >= first_fc:
            raise ValueError(f"layer {until!r} needs a {TOP_SIZE}×{TOP_SIZE} input (the fully "
                             f"connected layers take pool5 of shape (N, 512, 7, 7)), got input of "
                             f"shape {tuple(x_shape)}; ask for a layer up to pool5 instead")
        return until

    def forward(self, x, until=None):
        """Run ``x: (N, 3, H, W)`` up to and including layer ``until`` (default: the last).

        Computes in the input's float dtype; every layer's output is kept in ``activations``.
        """
        if not hasattr(x, "ndim") or x.ndim != 4:
            shape = tuple(getattr(x, "shape", ()))
            raise ValueError(f"{self.arch}: expected a preprocessed batch (N, 3, H, W), got shape "
                             f"{shape}; use net.preprocess(images) for (H, W, 3) images")
        if x.dtype.kind != "f":
            raise TypeError(f"{self.arch}: expected a float batch, got {x.dtype}; use "
                            f"net.preprocess(images) for uint8 images")
        if until is not None:
            self.check_layer(until)
        until = self._check_top(x.shape, until)
        x = backend.to_device(x, self.device)
        self.activations = OrderedDict()
        for name, layer in self.layers.items():
            x = layer.forward(x)
            self.activations[name] = x
            if name == until:
                break
        return x

    def _rules(self, rule):
        relus = [n for n, layer in self.layers.items() if isinstance(layer, ReLU)]
        if isinstance(rule, str):
            if rule not in RULES:
                raise ValueError(f"unknown backward rule {rule!r}: expected one of {', '.join(RULES)}")
            return {n: rule for n in relus}
        if isinstance(rule, dict):
            rules = {n: "backprop" for n in relus}
            for n, r in rule.items():
                if n not in rules:
                    raise KeyError(f"rule given for {n!r}, which is not a ReLU of {self.arch}: "
                                   f"expected one of {', '.join(relus)}")
                if r not in RULES:
                    raise ValueError(f"unknown backward rule {r!r} for {n!r}: expected one of "
                                     f"{', '.join(RULES)}")
                rules[n] = r
            return rules
        raise TypeError(f"rule must be a rule name or a dict of ReLU names to rules, got {rule!r}")

    def backward(self, dy, start=None, rule="backprop", stop=None, record=None):
        """Gradient with respect to the input, from gradient ``dy`` at the output of layer
        ``start`` (of the last forward). ``rule`` applies to every ReLU, or is a dict from ReLU
        names to rules (ReLUs not named take ``backprop``).

        ``dy`` may also be a dict ``{layer: gradient}``: one pass from the deepest of them,
        adding each gradient where its layer's output is met (objectives on several layers).
        ``stop``: return the gradient at the output of that layer instead of the input.
        ``record``: a dict that receives the gradient arriving at each layer's output."""
        seeds = dy if isinstance(dy, dict) else {self.check_layer(start, "start layer"): dy}
        if not seeds:
            raise ValueError("backward needs a gradient at one layer at least")
        names = self.layer_names
        for name, g in seeds.items():
            self.check_layer(name, "start layer")
            if name not in self.activations:
                raise RuntimeError(f"layer {name!r} was not reached by the last forward "
                                   f"(run forward(x, until={name!r}) first)")
            expected = tuple(self.activations[name].shape)
            if tuple(g.shape) != expected:
                raise ValueError(f"gradient of shape {tuple(g.shape)} does not match the output "
                                 f"of {name!r}, {expected}")
        if start is None or isinstance(dy, dict):
            start = max(seeds, key=names.index)
        lo = 0
        if stop is not None:
            self.check_layer(stop, "stop layer")
            lo = names.index(stop) + 1
            if lo > names.index(start) + 1:
                raise ValueError(f"stop layer {stop!r} lies above the start layer {start!r}")
        rules = self._rules(rule)
        dtype = self.activations[start].dtype
        g = None
        for name in reversed(names[lo:names.index(start) + 1]):
            if name in seeds:
                s = backend.to_device(seeds[name], self.device).astype(dtype, copy=False)
                g = s if g is None else g + s
            if record is not None:
                record[name] = g
            g = self.layers[name].backward(g, rules.get(name, "backprop"))
        return g

    # -- images ----------------------------------------------------------------------------
    def preprocess(self, images):
        """RGB images ``(H, W, 3)`` or ``(N, H, W, 3)``, uint8 or float in 0..255, to the
        NCHW float32 batch the weights expect, on the net's device."""
        a = backend.to_numpy(images)
        if a.ndim == 3:
            a = a[None]
        if a.ndim != 4 or a.shape[-1] != 3:
            raise ValueError(f"expected RGB images (H, W, 3) or (N, H, W, 3), got shape {a.shape}")
        a = a.astype(numpy.float32)
        if self.preprocessing == "caffe":
            a = a[..., ::-1] - CAFFE_MEAN_BGR
        elif self.preprocessing == "torch":
            a = (a / 255.0 - TORCH_MEAN_RGB) / TORCH_STD_RGB
        else:
            raise ValueError(f"unknown preprocessing {self.preprocessing!r}")
        return backend.to_device(numpy.ascontiguousarray(a.transpose(0, 3, 1, 2)), self.device)

    def deprocess(self, batch, clip=True):
        """Inverse of :meth:`preprocess`: NCHW batch -> uint8 RGB images ``(N, H, W, 3)``."""
        a = backend.to_numpy(batch).astype(numpy.float32)
        if a.ndim == 3:
            a = a[None]
        a = a.transpose(0, 2, 3, 1)
        if self.preprocessing == "caffe":
            a = (a + CAFFE_MEAN_BGR)[..., ::-1]
        else:
            a = (a * TORCH_STD_RGB + TORCH_MEAN_RGB) * 255.0
        return numpy.clip(numpy.rint(a), 0, 255).astype(numpy.uint8)

    # -- weights ---------------------------------------------------------------------------
    def load_weights(self, path):
        """Load a file of the project's HDF5 format (see :mod:`nnviz.weights`)."""
        from . import weights
        weights.load_into(self, path)
        return self

    def save_weights(self, path):
        from . import weights
        weights.save(self, path)

    # -- summary ---------------------------------------------------------------------------
    def summary(self, input_size=TOP_SIZE):
        """Rows ``(name, layer, output shape, parameter count)`` for a 1×3×size×size input."""
        x = self.xp.zeros((1, 3, input_size, input_size), dtype=numpy.float32)
        self.forward(x)
        rows = []
        for name, layer in self.layers.items():
            count = sum(int(getattr(layer, p).size) for p in layer.params
                        if getattr(layer, p) is not None)
            shape = tuple(self.activations[name].shape) if name in self.activations else None
            rows.append((name, layer, shape, count))
        self.activations = OrderedDict()
        return rows


def _vgg(arch, include_top, pooling, seed):
    if pooling not in ("max", "avg"):
        raise ValueError(f"pooling must be 'max' or 'avg', got {pooling!r}")
    rng = numpy.random.default_rng(seed)
    layers = []
    c_in = 3
    for block, (count, width) in enumerate(zip(CONFIGS[arch], WIDTHS), start=1):
        for i in range(1, count + 1):
            conv = Conv2d(c_in, width, 3, padding=1)
            layers += [(f"conv{block}_{i}", conv), (f"relu{block}_{i}", ReLU())]
            c_in = width
        pool = MaxPool2d(2, 2) if pooling == "max" else AvgPool2d(2, 2)
        layers.append((f"pool{block}", pool))
    if include_top:
        layers += [("flatten", Flatten()),
                   ("fc6", Linear(TOP_FEATURES, 4096)), ("relu6", ReLU()),
                   ("fc7", Linear(4096, 4096)), ("relu7", ReLU()),
                   ("fc8", Linear(4096, 1000))]
    for _, layer in layers:
        if hasattr(layer, "weight"):
            # He-normal weights keep activations O(1) through the depth; small random biases
            fan_in = int(numpy.prod(layer.weight.shape[1:]))
            layer.weight = (rng.standard_normal(layer.weight.shape, dtype=numpy.float32)
                            * numpy.float32(numpy.sqrt(2.0 / fan_in)))
            layer.bias = rng.uniform(-0.05, 0.05, layer.bias.shape).astype(numpy.float32)
            layer.requires_grad = False
    return layers


def _build(arch, weights, include_top, pooling, seed, device):
    net = Net(_vgg(arch, include_top, pooling, seed), arch=arch, device="cpu")
    if weights is not None:
        from . import weights as weights_mod
        path = weights_mod.default_path(arch) if weights == "default" else weights
        weights_mod.load_into(net, path)
    return net.to(device)


def vgg16(weights=None, include_top=True, pooling="max", seed=None, device=None):
    """VGG16. ``weights``: None (random, seeded by ``seed``), ``"default"`` or a path."""
    return _build("vgg16", weights, include_top, pooling, seed, device)


def vgg19(weights=None, include_top=True, pooling="max", seed=None, device=None):
    """VGG19. ``weights``: None (random, seeded by ``seed``), ``"default"`` or a path."""
    return _build("vgg19", weights, include_top, pooling, seed, device)
