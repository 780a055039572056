"""A :class:`Net` of named hand-written layers, and VGG16 and VGG19 (Simonyan & Zisserman
2015) built from the layout in :mod:`nnviz.vgg`.

A net runs forward to any layer and backward from any layer under any backward rule
(:mod:`nnviz.rules`); :func:`reach` and :func:`receptive_field` give the input pixels a unit
sees.
"""
import contextlib
import math
from collections import OrderedDict

import numpy

from . import backend, functional, vgg
from . import rules as R
from . import weights as W
from .errors import BadShape, InputError, UnknownLayer
from .layers import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU
from .vgg import CAFFE_MEAN_BGR, CONFIGS, TOP_LAYERS, TOP_SIZE, TORCH_MEAN_RGB, TORCH_STD_RGB


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
        self.checking_finite = False
        self._reuse, self._given = False, None
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
            if hasattr(layer, "to"):
                layer.to(xp)
            else:                   # a layer of the user's own: its parameters
                for p in getattr(layer, "params", ()):
                    if getattr(layer, p, None) is not None:
                        setattr(layer, p, xp.asarray(getattr(layer, p)))
        self.device = device
        self.activations = OrderedDict()
        self.input = self._given = None
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

    def named_parameters(self):
        """``(key, layer, attr)`` of every parameter, in layer order: ``key`` as
        ``"conv1_1/weight"`` or, inside a block, ``"res1/conv1/weight"``; ``layer`` the layer that
        holds it and ``attr`` its attribute. The one walk over a net's parameters."""
        def walk(prefix, layer):
            inner = getattr(layer, "layers", None)           # a block: its sub-layers
            if isinstance(inner, dict):
                for n, sub in inner.items():
                    yield from walk(f"{prefix}{n}/", sub)
                return
            for p in layer.params:
                if getattr(layer, p, None) is not None:
                    yield f"{prefix}{p}", layer, p
        for name, layer in self.layers.items():
            yield from walk(f"{name}/", layer)

    def parameters(self):
        """``(key, array)`` pairs of :meth:`named_parameters`."""
        for key, layer, p in self.named_parameters():
            yield key, getattr(layer, p)

    def check_layer(self, name, what="layer"):
        """``name`` if the net has that layer; else a KeyError listing the layers (an
        InputError saying how to get them for a fully connected layer the net lacks)."""
        if name not in self.layers:
            if name in TOP_LAYERS and self.arch in CONFIGS:
                raise vgg.missing_top(f"{what} {name!r}", self.weights_info.get("source"))
            raise UnknownLayer(f"unknown {what} {name!r} for {self.arch}: expected one of "
                           f"{', '.join(self.layers)}")
        return name

    # -- forward and backward --------------------------------------------------------------
    @contextlib.contextmanager
    def finite_checks(self):
        """Within the block, :meth:`forward` and :meth:`backward` raise :class:`InputError` at
        the first layer whose output (forward) or the signal it passes down (backward) is not
        finite, naming the layer (and its parameters when they are not finite). Scoped to this
        net; costs one ``isfinite`` per layer."""
        old, self.checking_finite = self.checking_finite, True
        try:
            yield self
        finally:
            self.checking_finite = old

    def locate_nonfinite(self, run):
        """Where a computation goes non-finite: ``run()`` (a call that runs this net forward
        and maybe back) once more with :meth:`finite_checks` on; the one line naming the first
        layer whose output (forward) or passed-down signal (backward) is not finite, or None
        when every layer stayed finite. The one NaN locator of nnviz."""
        try:
            with self.finite_checks():
                run()
        except InputError as e:
            return str(e)
        return None

    def _not_finite(self, a):
        return not bool(backend.get_array_module(a).isfinite(a).all())

    def _bad_params(self, name):
        layer = self.layers[name]
        bad = []
        for p in getattr(layer, "params", ()):
            a = getattr(layer, p, None)
            if a is not None and self._not_finite(a):
                k = int((~backend.get_array_module(a).isfinite(a)).sum())
                bad.append(f"{name}/{p} holds {k} non-finite values")
        return f" ({'; '.join(bad)})" if bad else ""

    def needs_size(self, layer):
        """The input size ``(H, W)`` that ``layer`` can only be reached from, or None (any
        size): :func:`needs_size` of this net's architecture."""
        return needs_size(self.arch, layer) if layer in self.layers else None

    def check_size(self, layer, size, what=None, option=None):
        """:func:`check_size` of ``layer`` of this net for an input of ``size``."""
        if layer not in self.layers:
            return layer
        return check_size(self.arch, layer, size, what, option)

    def _check_top(self, x_shape, until):
        """Fully connected layers only for a 224×224 input: ``until`` as it may be reached
        (None: the convolutional part only, up to pool5, for another size)."""
        if until is None:
            if self.needs_size("flatten") not in (None, tuple(x_shape[2:])):
                return self.layer_names[self.layer_names.index("flatten") - 1]
            return until
        self.check_size(until, x_shape, f"layer {until!r}")
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
        until = self._check_top(x.shape, until) or self.layer_names[-1]
        given = x
        start = self._reusable(given, until)
        if start is None:
            x = backend.to_device(x, self.device)
            self.input, self._given = x, given   # the first layer's input, for LRP rules
            self.activations = OrderedDict()
            if self.checking_finite and self._not_finite(x):
                raise InputError("not finite: the input of the forward pass (before "
                                 f"{self.layer_names[0]!r}) holds NaN or Inf")
            start = 0
        elif start == len(self.activations) and until in self.activations:
            return self.activations[until]
        else:
            x = self.activations[self.layer_names[start - 1]]
        for name, layer in list(self.layers.items())[start:]:
            x = layer.forward(x)
            self.activations[name] = x
            if self.checking_finite and self._not_finite(x):
                raise InputError(f"not finite: the forward pass became non-finite at layer "
                                 f"{name!r} (its activation){self._bad_params(name)}")
            if name == until:
                break
        return x

    @contextlib.contextmanager
    def reusing_forward(self):
        """Within the block, :meth:`forward` of the same input object as the last forward (its
        caller promises that neither it nor the weights change) returns the activations it
        has, and goes on from the last layer reached when asked for a deeper one: a command
        that explains several targets of one image under several rules runs the image's
        forward once. Off under :meth:`finite_checks` (which must see every layer run)."""
        old, self._reuse = self._reuse, True
        try:
            yield self
        finally:
            self._reuse = old

    def _reusable(self, given, until):
        """The index of the first layer still to run for ``given`` up to ``until`` when the
        last forward's activations can be reused (len(activations) when none is), else None."""
        if not self._reuse or self.checking_finite or given is not self._given or not self.activations:
            return None
        if until in self.activations:
            return len(self.activations)
        names = self.layer_names
        last = next(reversed(self.activations))
        return names.index(last) + 1 if names.index(until) > names.index(last) else None

    def backward(self, dy, start=None, rule="backprop", stop=None, record=None):
        """Gradient with respect to the input, from gradient ``dy`` at the output of layer
        ``start`` (of the last forward). ``rule``: a preset name (``"backprop"``,
        ``"deconvnet"``, ``"guided"``: that rule at every ReLU; an LRP composite such as
        ``"epsilon_gamma_box"``), a dict from layers to rules, or a
        :class:`nnviz.rules.Composite` (see :func:`nnviz.rules.assign`); layers that no rule
        names pass their gradient. Rules that read a layer's input (LRP) get it from
        :meth:`layer_input`.

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
        dtype = self.activations[start].dtype
        rules = self.assign_rules(rule, dtype)
        g = None
        below = dict(zip(names[1:], names))
        for name in reversed(names[lo:names.index(start) + 1]):
            if name in seeds:
                s = backend.to_device(seeds[name], self.device).astype(dtype, copy=False)
                if self.checking_finite and self._not_finite(s):
                    raise InputError(f"not finite: the backward signal given at layer {name!r} "
                                     "holds NaN or Inf")
                g = s if g is None else g + s
            if record is not None:
                record[name] = g
            g = self._back(name, g, rules.get(name, R.GRADIENT))
            if self.checking_finite and self._not_finite(g):
                to = f"the signal arriving at {below[name]!r}" if name in below else "the input"
                raise InputError(f"not finite: the backward signal became non-finite going "
                                 f"back through layer {name!r} ({to}){self._bad_params(name)}")
        return g

    def _back(self, name, g, rule):
        """The signal at layer ``name``'s input from ``g`` at its output, under ``rule`` (placed
        once per backward by :meth:`assign_rules`): the rule is called with the layer (its
        own gradient and map) and, when it reads it, the layer's forward input."""
        layer = self.layers[name]
        check = getattr(layer, "check_signal", None)
        if check is not None:
            check(g)
        x = None
        if rule.needs_input:
            x = self.layer_input(name)
            if hasattr(layer, "rule_input"):
                x = layer.rule_input(rule, x)
        return rule.backward(layer, g, x)

    def layer_input(self, name):
        """The input of layer ``name`` in the last forward: the previous layer's output, or
        the net's input for the first layer (what LRP rules read; layers themselves keep
        their input only when ``requires_grad``)."""
        k = self.layer_names.index(self.check_layer(name))
        x = self.input if k == 0 else self.activations.get(self.layer_names[k - 1])
        if x is None:
            raise RuntimeError(f"layer {name!r} was not reached by the last forward")
        return x

    def pixel_bounds(self, dtype=numpy.float32):
        """``(low, high)``: pixel values 0 and 255 after :meth:`preprocess`, shaped
        ``(1, 3, 1, 1)``, on the net's device: the input box of LRP's z^B rule."""
        lo = self.preprocess(numpy.zeros((1, 1, 3), numpy.float32)).astype(dtype)
        hi = self.preprocess(numpy.full((1, 1, 3), 255, numpy.float32)).astype(dtype)
        return lo, hi

    def assign_rules(self, rule, dtype=numpy.float32):
        """``{layer name: Rule}``: where ``rule`` (as :meth:`backward` takes it) places which
        rule (:func:`nnviz.rules.assign`); a z^B rule without bounds gets the net's
        :meth:`pixel_bounds`."""
        return R.assign(self.layers, rule, box=lambda: self.pixel_bounds(dtype))

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
        W.load_into(self, path)
        return self

    def save_weights(self, path):
        W.save(self, path)

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


# -- input sizes ----------------------------------------------------------------------------

def needs_size(arch, layer):
    """The input size ``(H, W)`` that ``layer`` of the architecture ``arch`` can only be reached
    from (a VGG's fully connected layers and the flatten before them: 224×224), or None (any
    size)."""
    return (TOP_SIZE, TOP_SIZE) if arch in CONFIGS and layer in TOP_LAYERS else None


def check_size(arch, layer, size, what=None, option=None):
    """``layer`` if it can be reached from an input of ``size`` ((H, W) or a batch's shape
    (N, C, H, W)); else a :class:`BadShape` naming ``what`` (default: the layer) and the size it
    needs (``option``: how the user sets it, e.g. ``--size``). The one "needs 224 px" check:
    :meth:`Net.forward`, the attribution commands and the evaluations call it (before loading
    a net, with its architecture's name)."""
    need = needs_size(arch, layer)
    shape = tuple(int(v) for v in size)
    size = shape[-2:]
    if need is None or size == need:
        return layer
    what = what or f"layer {layer!r}"
    if option:
        raise BadShape(f"{what} needs {option} {need[0]} (the fully connected layers take "
                       f"{need[0]}×{need[1]} images), got {option} "
                       f"{size[0] if size[0] == size[1] else size}")
    got = f"input of shape {shape}" if len(shape) == 4 else f"an input of size {size[0]}×{size[1]}"
    raise BadShape(f"{what} needs a {need[0]}×{need[1]} input (the fully connected layers take "
                   f"pool5 of shape (N, 512, 7, 7)), got {got}; ask for a layer up to pool5 instead")


# -- geometry -------------------------------------------------------------------------------

def _geometry(layer):
    """(kernel, stride, padding) of a layer along each axis; layers without a window (ReLU)
    are (1, 1, 0). Dilated kernels count their span."""
    if isinstance(layer, (Conv2d, MaxPool2d, AvgPool2d)):
        d = getattr(layer, "dilation", (1, 1))
        k = (d[0] * (layer.kh - 1) + 1, d[1] * (layer.kw - 1) + 1)
        return k, layer.stride, layer.padding
    if isinstance(layer, ReLU):
        return (1, 1), (1, 1), (0, 0)
    raise InputError(f"layer {layer.name!r} ({type(layer).__name__}) has no spatial geometry")


def _span(net, layer):
    """Per axis (rows, columns): the stride S of ``layer``'s grid in input pixels, the offset
    ``left`` of a unit's first input pixel before p·S, and the receptive field's size."""
    names = net.layer_names
    size, jump, left = [1, 1], [1, 1], [0, 0]
    for name in names[:names.index(net.check_layer(layer)) + 1]:
        k, s, p = _geometry(net.layers[name])
        for a in range(2):
            size[a] += (k[a] - 1) * jump[a]
            left[a] += p[a] * jump[a]
            jump[a] *= s[a]
    return jump, left, size


def reach(net, layer):
    """``(stride S, left, right)`` of ``layer``'s receptive field along the rows: the output at
    position p sees input pixels ``[p·S − left, p·S + S − 1 + right]`` (right: beyond its own
    S pixels, at least 0)."""
    (s, _), (left, _), (size, _) = _span(net, layer)
    return s, left, max(0, size - s - left)


def receptive_field(net, layer, position, size=None):
    """The input rectangle ``(top, left, bottom, right)`` (inclusive) that unit ``position``
    (i, j) of ``layer`` sees; clipped to the image when ``size=(H, W)`` is given."""
    jump, left, rf = _span(net, layer)
    lo = [position[a] * jump[a] - left[a] for a in range(2)]
    hi = [lo[a] + rf[a] - 1 for a in range(2)]
    if size is not None:
        lo = [max(0, v) for v in lo]
        hi = [min(m - 1, v) for v, m in zip(hi, size)]
    return lo[0], lo[1], hi[0], hi[1]


def out_size(net, layer, h, w):
    """Spatial size of ``layer``'s output for an ``h × w`` input (shape arithmetic only)."""
    names = net.layer_names
    for name in names[:names.index(net.check_layer(layer)) + 1]:
        k, s, p = _geometry(net.layers[name])
        h, w = functional.conv_outsize(h, k[0], s[0], p[0]), functional.conv_outsize(w, k[1], s[1], p[1])
    return h, w


def memory_estimate(net, n, h, w, until=None, dtype=numpy.float32, backward=True):
    """Bytes that a forward of ``n`` images of ``h × w`` up to layer ``until`` (default: as far
    as :meth:`Net.forward` goes), and a backward from there, hold at their peak (shape
    arithmetic only, nothing allocated): every layer's output (kept in ``activations``), what
    the layers keep for their backward (ReLU masks, max pooling's int64 switches), during the
    backward the incoming and outgoing signals of the largest layer, the largest
    column-buffer block of the convolutions (:func:`nnviz.functional.col_block_bytes`) and the
    parameters. A caller adds its method's own buffers."""
    item = numpy.dtype(dtype).itemsize
    names = net.layer_names
    last = names.index(net.check_layer(until)) if until is not None else len(names) - 1
    if net.arch in CONFIGS and "flatten" in net.layers and (h, w) != (TOP_SIZE, TOP_SIZE):
        last = min(last, names.index("flatten") - 1)
    c, total, largest, col = 3, 0, n * 3 * h * w * item, 0
    for name in names[:last + 1]:
        layer = net.layers[name]
        if isinstance(layer, (Linear, Flatten)):
            c, h, w = (layer.weight.shape[0] if isinstance(layer, Linear) else c * h * w), 1, 1
            out = n * c * item
        else:
            k, s, p = _geometry(layer)
            oh = functional.conv_outsize(h, k[0], s[0], p[0])
            ow = functional.conv_outsize(w, k[1], s[1], p[1])
            if isinstance(layer, Conv2d) and oh > 0 and ow > 0:
                # the column buffer of one convolution: its largest block, or all of it
                col = max(col, functional.col_block_bytes(n, c, k[0], k[1], oh, ow, item,
                                                          net.device == "gpu"))
                c = layer.weight.shape[0]
            h, w = oh, ow
            if h < 1 or w < 1:
                raise InputError(f"the input is too small for layer {name!r}: its output would "
                                 f"be {max(h, 0)}×{max(w, 0)}; use a larger image size")
            out = n * c * h * w * item
            if isinstance(layer, ReLU):
                out += n * c * h * w                   # the boolean mask
            elif isinstance(layer, MaxPool2d):
                out += n * c * h * w * 8               # the int64 switches
        total += out
        largest = max(largest, n * c * h * w * item)
    params = sum(int(a.nbytes) for _, a in net.parameters())
    signals = 3 * largest if backward else largest     # dy, dx and a temporary
    # column buffers: the block kept between calls (functional.col_blocks), and during the
    # backward a transposed convolution's own block and its output image
    cols = 3 * col if backward else 2 * col
    # measured against tracemalloc's peak (tests/test_hostile_cli.py): within 1% without the
    # margin at 512 px, so a margin of 15% on what a run allocates
    return int(1.15 * (total + signals + cols) + params)


# -- VGG ---------------------------------------------------------------------------------------

def layer_from_layout(kind, options):
    """The layer of one row of :func:`nnviz.vgg.layout`: ``kind`` (conv, relu, pool, flatten,
    linear) and its constructor's options."""
    if kind == "conv":
        return Conv2d(**options)
    if kind == "relu":
        return ReLU()
    if kind == "pool":
        o = dict(options)
        return (MaxPool2d if o.pop("kind") == "max" else AvgPool2d)(**o)
    if kind == "flatten":
        return Flatten()
    return Linear(**options)


def init_layer(layer, seed=None):
    """Draw a convolution's or linear layer's parameters as the VGG builders do: He-normal
    weights (std sqrt(2 / fan_in)), biases uniform in [-0.05, 0.05], float32 on the host.
    ``seed``: anything ``numpy.random.default_rng`` takes (a Generator is used as is). New
    arrays are assigned: arrays shared with another net are never written. Returns ``layer``."""
    rng = numpy.random.default_rng(seed)
    # He-normal weights keep activations O(1) through the depth; small random biases
    fan_in = math.prod(layer.weight.shape[1:])
    layer.weight = (rng.standard_normal(layer.weight.shape, dtype=numpy.float32)
                    * numpy.float32(numpy.sqrt(2.0 / fan_in)))
    layer.bias = rng.uniform(-0.05, 0.05, layer.bias.shape).astype(numpy.float32)
    return layer


def _vgg(arch, include_top, pooling, seed):
    rng = numpy.random.default_rng(seed)
    layers = [(name, layer_from_layout(kind, o)) for name, kind, o in vgg.layout(arch, include_top, pooling)]
    for _, layer in layers:
        if hasattr(layer, "weight"):
            init_layer(layer, rng)
            layer.requires_grad = False
    return layers


def _build(arch, weights, include_top, pooling, seed, device):
    net = Net(_vgg(arch, include_top, pooling, seed), arch=arch, device="cpu")
    if weights is not None:
        W.load_into(net, W.default_path(arch) if weights == "default" else weights)
    return net.to(device)
def vgg16(weights=None, include_top=True, pooling="max", seed=None, device=None):
    """VGG16. ``weights``: None (random, seeded by ``seed``), ``"default"`` or a path."""
    return _build("vgg16", weights, include_top, pooling, seed, device)


def vgg19(weights=None, include_top=True, pooling="max", seed=None, device=None):
    """VGG19. ``weights``: None (random, seeded by ``seed``), ``"default"`` or a path."""
    return _build("vgg19", weights, include_top, pooling, seed, device)
