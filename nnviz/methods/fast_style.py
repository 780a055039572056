"""Feed-forward style transfer and texture synthesis: Johnson, Alahi & Fei-Fei, "Perceptual
Losses for Real-Time Style Transfer and Super-Resolution" (ECCV 2016), and Ulyanov, Lebedev,
Vedaldi & Lempitsky, "Texture Networks: Feed-forward Synthesis of Textures and Stylized
Images" (ICML 2016), with instance normalization (Ulyanov, Vedaldi & Lempitsky 2016).

A network is trained once on Gatys's losses (:mod:`nnviz.methods.style`: the same ``gram``,
``content_loss``, ``style_loss`` and ``tv_loss``, through the same VGG16) and then stylizes a
photograph, or makes a texture from noise, in one forward pass.

- :func:`transformer` — Johnson et al.'s image transformation network (sec. 3.1 and the
  supplementary material): 9×9 conv 32, two stride-2 3×3 convs 64 and 128, five residual
  blocks of 128, two ×2 upsamplings (nearest, then a 3×3 conv: the upsampling of the
  PyTorch example, in place of fractionally strided convs), a 9×9 conv to 3 channels and a
  scaled tanh to pixels (0, 255); reflection padding, instance normalization; ``width``
  scales every channel count. No parameter without a gradient: convolutions followed by an
  instance norm have no bias, nor have the residual blocks' last norms (the norm after the
  upsampling removes any shift of the residual stream). Input and output: RGB pixels (N, 3, H, W) in 0..255.
- :func:`texture_generator` — Ulyanov et al.'s multi-scale generator (sec. 3.1, fig. 2): ``K``
  noise tensors, the k-th at 1/2ᵏ of the size, each through a block of 3×3, 3×3 and 1×1
  convs (instance norm, leaky ReLU); from the coarsest up, each result upsampled ×2 and
  joined (channel concatenation) with the next finer one, then another block; a 1×1 conv to
  RGB. Its input is one noise array (N, 3K, H, W); scale k average-pools its own 3 channels
  by 2ᵏ.
- Training (Johnson's perceptual losses): content at ``relu2_2``, style (Gram matrices) at
  ``relu1_2, relu2_2, relu3_3, relu4_3``, total variation; per image as in
  :class:`~nnviz.methods.style.GatysLoss`, averaged over the batch::

      L = 1/B Σ_b [ content_weight · Σ content_l + style_weight · Σ_l (1/L) style_l
                    + tv_weight · TV(y_b) ]

  Gradients of every parameter by the layers' hand-written backward (VGG's backward from
  the deepest loss layer, adding each layer's ``dL/dF`` on the way, then the network's);
  hand-written Adam (:class:`nnviz.methods.optimize.Adam`, as ``torch.optim.Adam``);
  batches of random crops with scale jitter and flips (:class:`Crops`) from a folder, or
  from scikit-image's bundled colour photographs (:data:`nnviz.io.SAMPLES`).
- Files: one HDF5 file holds a model (architecture, width, normalization, training options,
  the style image's SHA-256, the loss history and every parameter); a checkpoint adds Adam's
  moments, the step and the random generator's state, so that a resumed run continues the
  very same loss curve. Reading one only reads arrays and JSON text: nothing in it is run.
"""
import dataclasses
import hashlib
import json
import math
import os
import time

import numpy

from .. import __version__, backend, io
from ..backend import get_array_module
from ..errors import BadFile, BadOption, BadShape, InputError
from ..layers import (
    AvgPool2d,
    ChannelSlice,
    Conv2d,
    InstanceNorm2d,
    Join,
    LeakyReLU,
    ReflectionPad2d,
    ReLU,
    ResidualBlock,
    ScaledTanh,
    Sequential,
    Upsample,
)
from ..models import Net, vgg16
from ..progress import progress_bar
from ..vgg import CAFFE_MEAN_BGR, TORCH_MEAN_RGB, TORCH_STD_RGB
from .optimize import Adam, Result
from .style import content_loss, gram, style_loss, tv_loss

ARCHS = ("johnson", "ulyanov")
MODES = {"transfer": "johnson", "texture": "ulyanov"}
CONTENT_LAYERS = ("relu2_2",)
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
# Defaults tuned by hand (README): caffe-preprocessed VGG16 features on 0..255 pixels,
# this module's loss normalization (that of GatysLoss), crops of 128 to 256 pixels.
CONTENT_WEIGHT = 1.0
STYLE_WEIGHT = 3e3
TV_WEIGHT = 1e-1
LR = 1e-3           # Johnson et al.'s; larger rates grow tanh-saturated blobs at the output
FORMAT = "nnviz-fast-style"
FORMAT_VERSION = 1
HISTORY_COLUMNS = ("step", "loss", "content", "style", "tv", "seconds")


# ---------------------------------------------------------------------------------------
# the networks
# ---------------------------------------------------------------------------------------

def _channels(c, width):
    return max(1, int(round(c * width)))


def _init(net, seed, dtype):
    """PyTorch's default initialization of every convolution (weights and biases uniform in
    ±1/√fan_in), from ``seed``; instance norms start at weight 1, bias 0."""
    rng = numpy.random.default_rng(seed)
    for _, layer, attr in net.named_parameters():
        a = getattr(layer, attr)
        if isinstance(layer, Conv2d):
            bound = 1 / math.sqrt(layer.in_channels * layer.kh * layer.kw)
            setattr(layer, attr, rng.uniform(-bound, bound, a.shape).astype(dtype))
        else:
            setattr(layer, attr, numpy.asarray(a, dtype=dtype))
    return net


def transformer(width=1.0, seed=0, dtype=numpy.float32, device=None):
    """Johnson et al.'s transformation network (see the module docstring) as a :class:`Net`
    of named layers: RGB pixels (N, 3, H, W) in 0..255 -> (N, 3, H', W') in (0, 255), with
    H' = 4⌈H/4⌉ (sizes divisible by 4 come back unchanged; :func:`stylize` pads the others)."""
    width = _check_width(width)
    c1, c2, c3 = _channels(32, width), _channels(64, width), _channels(128, width)
    layers = []

    def conv_block(i, cin, cout, k, stride=1, up=False):
        if up:
            layers.append((f"up{i}", Upsample(2)))
        layers.extend([(f"pad{i}", ReflectionPad2d(k // 2)),
                       (f"conv{i}", Conv2d(cin, cout, k, stride, bias=False, dtype=dtype)),
                       (f"in{i}", InstanceNorm2d(cout, affine=True, dtype=dtype)),
                       (f"relu{i}", ReLU())])
    conv_block(1, 3, c1, 9)
    conv_block(2, c1, c2, 3, 2)
    conv_block(3, c2, c3, 3, 2)
    for i in range(1, 6):
        layers.append((f"res{i}", ResidualBlock(c3, 3, shift=False, dtype=dtype)))
    conv_block(4, c3, c2, 3, up=True)
    conv_block(5, c2, c1, 3, up=True)
    layers.extend([("pad6", ReflectionPad2d(4)), ("conv6", Conv2d(c1, 3, 9, dtype=dtype)),
                   ("out", ScaledTanh(127.5, 127.5))])
    net = Net(layers, arch="johnson", preprocessing="pixels", device="cpu")
    return _init(net, seed, dtype).to(backend.resolve_device(device))


def texture_generator(scales=5, width=1.0, seed=0, dtype=numpy.float32, device=None):
    """Ulyanov et al.'s multi-scale texture generator (see the module docstring) as a
    :class:`Net`: noise (N, 3·scales, H, W), H and W divisible by 2^(scales−1) -> RGB pixels
    (N, 3, H, W) in (0, 255). ``width`` scales the 8 channels of each scale."""
    width = _check_width(width)
    scales = int(scales)
    if not 1 <= scales <= 8:
        raise BadOption(f"scales must be 1 to 8, got {scales}")
    c = _channels(8, width)

    def block(cin, cout):
        out = []
        for i, (a, b, k) in enumerate(((cin, cout, 3), (cout, cout, 3), (cout, cout, 1)), 1):
            if k > 1:
                out.append((f"pad{i}", ReflectionPad2d(k // 2)))
            out.extend([(f"conv{i}", Conv2d(a, b, k, bias=False, dtype=dtype)),
                        (f"in{i}", InstanceNorm2d(b, affine=True, dtype=dtype)),
                        (f"lrelu{i}", LeakyReLU(0.01))])
        return out

    def noise(k):
        out = [("noise", ChannelSlice(3 * k, 3 * k + 3))]
        if k:
            out.append(("pool", AvgPool2d(2 ** k)))
        return out + block(3, c)

    level, channels = Sequential(noise(scales - 1)), c          # the coarsest scale
    for k in range(scales - 2, -1, -1):
        join = Join([("coarser", Sequential([(f"scale{k + 1}", level), ("up", Upsample(2))])),
                     (f"noise{k}", Sequential(noise(k)))])
        channels += c
        level = Sequential([("join", join)] + block(channels, channels))
    layers = [("scale0", level), ("conv_out", Conv2d(channels, 3, 1, dtype=dtype)),
              ("out", ScaledTanh(127.5, 127.5))]
    net = Net(layers, arch="ulyanov", preprocessing="noise", device="cpu")
    net.scales = scales
    return _init(net, seed, dtype).to(backend.resolve_device(device))


def _check_width(width):
    width = float(width)
    if not (math.isfinite(width) and 0 < width <= 8):
        raise BadOption(f"width must be a number in (0, 8], got {width}")
    return width


def gradients(net):
    """``{key: gradient}`` of every parameter after a backward (``grad_weight`` …), keyed as
    :meth:`Net.named_parameters`."""
    return {k: getattr(layer, f"grad_{a}") for k, layer, a in net.named_parameters()}


# ---------------------------------------------------------------------------------------
# the perceptual losses
# ---------------------------------------------------------------------------------------

def _to_vgg(net, y):
    """RGB pixels (N, 3, H, W) -> the VGG's preprocessed input (same dtype)."""
    xp, dt = get_array_module(y), y.dtype
    if net.preprocessing == "caffe":
        return y[:, ::-1] - xp.asarray(CAFFE_MEAN_BGR, dtype=dt)[:, None, None]
    return (y / dt.type(255) - xp.asarray(TORCH_MEAN_RGB, dtype=dt)[:, None, None]) \
        / xp.asarray(TORCH_STD_RGB, dtype=dt)[:, None, None]


def _from_vgg_grad(net, g):
    """The gradient at the VGG's input -> at the RGB pixels (the transpose of :func:`_to_vgg`)."""
    if net.preprocessing == "caffe":
        return g[:, ::-1]
    xp, dt = get_array_module(g), g.dtype
    return g / (dt.type(255) * xp.asarray(TORCH_STD_RGB, dtype=dt)[:, None, None])


class PerceptualLoss:
    """Johnson et al.'s loss of a batch of generated pixels ``y: (B, 3, H, W)`` given the
    content batch (pixels, same shape; None for textures): ``terms, dL/dy = loss(y,
    content)``, ``terms`` the batch means (``content``, ``style``, ``tv``, ``total``,
    weighted). ``style``: RGB uint8 (h, w, 3), its Gram matrices computed once. ``vgg`` a
    VGG :class:`Net` (its own parameters are not trained); ``dtype`` the features'."""

    def __init__(self, vgg, style, *, content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS,
                 content_weight=CONTENT_WEIGHT, style_weight=STYLE_WEIGHT, tv_weight=TV_WEIGHT,
                 dtype=numpy.float32):
        self.vgg, self.dtype = vgg, numpy.dtype(dtype)
        for what, w in (("content_weight", content_weight), ("style_weight", style_weight),
                        ("tv_weight", tv_weight)):
            if not (math.isfinite(float(w)) and float(w) >= 0):
                raise BadOption(f"{what} must be a finite number ≥ 0, got {w}")
        self.content_weight, self.style_weight, self.tv_weight = \
            float(content_weight), float(style_weight), float(tv_weight)
        self.content_layers = tuple(content_layers) if self.content_weight else ()
        self.style_layers = tuple(style_layers) if self.style_weight else ()
        for n in self.content_layers + self.style_layers:
            vgg.check_layer(n)
        names = vgg.layer_names
        self.deepest = max(self.content_layers + self.style_layers, key=names.index, default=None)
        self.A = {}
        if self.style_layers:
            s = numpy.asarray(style, dtype=numpy.float64).transpose(2, 0, 1)[None]
            s = backend.to_device(s.astype(self.dtype), vgg.device)
            vgg.forward(_to_vgg(vgg, s), until=max(self.style_layers, key=names.index))
            self.A = {n: gram(_features(vgg.activations[n], 0)) for n in self.style_layers}
            vgg.activations.clear()

    def targets(self, content):
        """The content features ``{layer: (B, C, h, w)}`` of a pixel batch."""
        if not self.content_layers or content is None:
            return {}
        vgg = self.vgg
        vgg.forward(_to_vgg(vgg, content.astype(self.dtype, copy=False)),
                    until=max(self.content_layers, key=vgg.layer_names.index))
        out = {n: vgg.activations[n] for n in self.content_layers}
        vgg.activations.clear()
        return out

    def __call__(self, y, content=None):
        vgg, b = self.vgg, y.shape[0]
        y = y.astype(self.dtype, copy=False)
        P = self.targets(content)
        if self.content_layers and not P:
            raise BadOption("content_weight > 0 and content layers given, but no content batch")
        terms = {"content": 0.0, "style": 0.0, "tv": 0.0}
        grad = 0
        if self.deepest is not None:
            vgg.forward(_to_vgg(vgg, y), until=self.deepest)
            seeds = {}
            for n in dict.fromkeys(self.content_layers + self.style_layers):
                act = vgg.activations[n]
                g = get_array_module(act).zeros_like(act)
                for i in range(b):
                    F = _features(act, i)
                    if n in P:
                        loss, dF = content_loss(F, _features(P[n], i))
                        terms["content"] += self.content_weight * loss / b
                        g[i] += (self.content_weight / b) * dF.reshape(act.shape[1:])
                    if n in self.A:
                        w = self.style_weight / len(self.style_layers)
                        loss, dF = style_loss(F, self.A[n])
                        terms["style"] += w * loss / b
                        g[i] += (w / b) * dF.reshape(act.shape[1:])
                seeds[n] = g
            grad = _from_vgg_grad(vgg, vgg.backward(seeds))
            vgg.activations.clear()
        if self.tv_weight:
            tv, g = tv_loss(y)
            terms["tv"] = self.tv_weight * tv / b
            grad = grad + (self.tv_weight / b) * g
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms, grad


def _features(act, i):
    """Image ``i`` of a (B, C, h, w) activation as its (C, h·w) feature matrix."""
    return act[i].reshape(act.shape[1], -1)


# ---------------------------------------------------------------------------------------
# data: random crops
# ---------------------------------------------------------------------------------------

def default_images():
    """scikit-image's bundled colour photographs (:data:`nnviz.io.SAMPLES`, no download):
    ``[(name, RGB uint8)]``."""
    return [(name, io.sample_image(name)) for name in io.SAMPLES]


def folder_images(folder):
    """Every image in ``folder`` (:func:`nnviz.io.list_images`: sorted by name, not its
    subfolders): ``[(name, RGB uint8)]``."""
    paths = io.list_images(folder)
    if not paths:
        raise BadFile(f"{folder}: no images ({', '.join(io.IMAGE_EXTENSIONS)}) in the folder")
    return [(os.path.basename(p), io.load_image(p)) for p in paths]


class Crops:
    """Batches of random ``size × size`` crops (RGB pixels, float, (B, 3, size, size)): pick
    an image, resize it so that its shorter side is ``size · s`` with ``s`` uniform in
    ``scale`` (scale jitter), crop at a random place, flip left-right with probability ½.
    ``rng`` a NumPy Generator (its state goes into checkpoints)."""

    def __init__(self, images, size, batch, rng, scale=(1.0, 2.0), flip=True):
        self.images = [img for _, img in images]
        if not self.images:
            raise BadOption("no content images to train on")
        self.size, self.batch, self.rng, self.flip = int(size), int(batch), rng, bool(flip)
        self.scale = (float(scale[0]), float(scale[1]))
        if not 1.0 <= self.scale[0] <= self.scale[1]:
            raise BadOption(f"scale jitter must be 1 ≤ lo ≤ hi, got {self.scale}")

    def sample(self):
        out = numpy.empty((self.batch, 3, self.size, self.size), numpy.float32)
        for b in range(self.batch):
            img = self.images[int(self.rng.integers(len(self.images)))]
            h, w = img.shape[:2]
            s = self.size * self.rng.uniform(*self.scale) / min(h, w)
            shape = (max(self.size, round(h * s)), max(self.size, round(w * s)))
            img = io.resize(img, shape)
            y = int(self.rng.integers(shape[0] - self.size + 1))
            x = int(self.rng.integers(shape[1] - self.size + 1))
            crop = img[y:y + self.size, x:x + self.size]
            if self.flip and self.rng.random() < 0.5:
                crop = crop[:, ::-1]
            out[b] = crop.transpose(2, 0, 1)
        return out


def noise_batch(rng, batch, scales, h, w, dtype=numpy.float32):
    """Uniform noise in [0, 1) for the texture generator: (batch, 3·scales, h, w)."""
    return rng.random((batch, 3 * scales, h, w)).astype(dtype)


# ---------------------------------------------------------------------------------------
# the model and its file
# ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class StyleModel:
    """A trained (or training) network and what it was made from. ``net``: the
    :class:`Net`; ``arch``: ``"johnson"`` (stylizes photographs) or ``"ulyanov"`` (textures
    from noise); ``width``; ``scales`` (ulyanov); ``norm``: ``"instance"``; ``options``: the
    training options; ``style_sha256``/``style_name``: the style image's; ``history``: one
    dict per step (``HISTORY_COLUMNS``)."""

    net: Net
    arch: str
    width: float
    options: dict
    style_sha256: str = ""
    style_name: str = ""
    scales: int = 0
    norm: str = "instance"
    history: list = dataclasses.field(default_factory=list)

    @property
    def step(self):
        return int(self.history[-1]["step"]) if self.history else 0


def build(arch, width, scales=5, seed=0, dtype=numpy.float32, device=None):
    """The untrained network of ``arch`` (``"johnson"`` or ``"ulyanov"``)."""
    if arch == "johnson":
        return transformer(width, seed=seed, dtype=dtype, device=device)
    if arch == "ulyanov":
        return texture_generator(scales, width, seed=seed, dtype=dtype, device=device)
    raise BadOption(f"unknown architecture {arch!r}: expected one of {', '.join(ARCHS)}")


def save(model, path, state=None):
    """Write ``model`` to the HDF5 file ``path`` atomically; ``state`` (a checkpoint's):
    ``{"adam": Adam, "rng": Generator}``. Returns the path."""
    import h5py
    with io.atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, arch=model.arch,
                           width=float(model.width), scales=int(model.scales), norm=model.norm,
                           options=json.dumps(model.options, sort_keys=True),
                           style_sha256=model.style_sha256, style_name=model.style_name,
                           kind="checkpoint" if state else "model", nnviz=__version__)
            for key, a in model.net.parameters():
                f.create_dataset(f"params/{key}", data=backend.to_numpy(a))
            rows = [[float(h[c]) for c in HISTORY_COLUMNS] for h in model.history]
            f.create_dataset("history", data=numpy.asarray(rows, numpy.float64).reshape(-1, len(HISTORY_COLUMNS)))
            f["history"].attrs["columns"] = json.dumps(HISTORY_COLUMNS)
            if state:
                adam = state["adam"]
                f.attrs.update(adam=json.dumps(adam.state()),
                               rng=json.dumps(state["rng"].bit_generator.state))
                for key in adam.m:
                    f.create_dataset(f"adam/m/{key}", data=backend.to_numpy(adam.m[key]))
                    f.create_dataset(f"adam/v/{key}", data=backend.to_numpy(adam.v[key]))
    return os.fspath(path)


def _attr(f, path, key, kind):
    if key not in f.attrs:
        raise BadFile(f"{path}: no {key!r} attribute: not an nnviz style model")
    v = f.attrs[key]
    v = v.decode() if isinstance(v, bytes) else v
    try:
        return kind(v)
    except (TypeError, ValueError):
        raise BadFile(f"{path}: attribute {key!r} is not a {kind.__name__}: {v!r}") from None


def _json(f, path, key):
    try:
        return json.loads(_attr(f, path, key, str))
    except json.JSONDecodeError as e:
        raise BadFile(f"{path}: attribute {key!r} is not valid JSON ({e})") from None


def load(path, device=None, dtype=numpy.float32, with_state=False):
    """The :class:`StyleModel` in the file ``path`` (made by :func:`save`); every shape is
    checked against the architecture the file names. ``with_state``: also return the
    checkpoint's state ``{"step", "adam": {...}, "m", "v", "rng"}`` (None for a model file).
    Reads arrays and JSON text only."""
    import h5py
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise BadFile(f"{path}: no such model file")
    try:
        with h5py.File(path, "r") as f:
            if _attr(f, path, "format", str) != FORMAT:
                raise BadFile(f"{path}: not an nnviz style model (format "
                              f"{f.attrs.get('format')!r})")
            version = _attr(f, path, "format_version", int)
            if version > FORMAT_VERSION:
                raise BadFile(f"{path}: format version {version} is newer than this nnviz "
                              f"reads ({FORMAT_VERSION})")
            arch = _attr(f, path, "arch", str)
            if arch not in ARCHS:
                raise BadFile(f"{path}: unknown architecture {arch!r}")
            width = _attr(f, path, "width", float)
            scales = _attr(f, path, "scales", int)
            norm = _attr(f, path, "norm", str)
            if norm != "instance":
                raise BadFile(f"{path}: unknown normalization {norm!r}")
            try:
                net = build(arch, width, scales or 5, dtype=dtype)
            except InputError as e:
                raise BadFile(f"{path}: {e}") from None
            params = {}
            for key, a in net.parameters():
                _check_shape(f, path, f"params/{key}", a.shape)
                params[key] = numpy.asarray(f[f"params/{key}"], dtype=dtype)
            extra = sorted(set(_keys(f, "params")) - set(params))
            if extra:
                raise BadFile(f"{path}: parameters the {arch} network does not have: "
                              f"{', '.join(extra[:5])}")
            history = []
            if "history" in f:
                rows = numpy.asarray(f["history"], dtype=numpy.float64)
                if rows.ndim != 2 or rows.shape[1] != len(HISTORY_COLUMNS):
                    raise BadFile(f"{path}: history of shape {rows.shape}, expected "
                                  f"(steps, {len(HISTORY_COLUMNS)})")
                history = [dict(zip(HISTORY_COLUMNS, map(float, r))) for r in rows]
                for h in history:
                    h["step"] = int(h["step"])
            model = StyleModel(net, arch, width, _json(f, path, "options"),
                               _attr(f, path, "style_sha256", str), _attr(f, path, "style_name", str),
                               scales, norm, history)
            state = None
            if with_state and _attr(f, path, "kind", str) == "checkpoint":
                state = dict(adam=_json(f, path, "adam"), rng=_json(f, path, "rng"), m={}, v={})
                for key, a in params.items():
                    for mv in ("m", "v"):
                        _check_shape(f, path, f"adam/{mv}/{key}", a.shape)
                        state[mv][key] = numpy.asarray(f[f"adam/{mv}/{key}"], dtype=dtype)
    except OSError as e:
        raise BadFile(f"{path}: not a readable HDF5 model file (truncated or damaged?): {e}") from None
    for key, layer, attr in net.named_parameters():
        setattr(layer, attr, params[key])
    net.to(backend.resolve_device(device))
    return (model, state) if with_state else model


def _check_shape(f, path, key, shape):
    import h5py
    if key not in f or not isinstance(f[key], h5py.Dataset):
        raise BadFile(f"{path}: no dataset {key!r} in the file")
    if tuple(f[key].shape) != tuple(shape):
        raise BadFile(f"{path}: {key} has shape {tuple(f[key].shape)}, the network expects "
                      f"{tuple(shape)}")


def _keys(f, group):
    import h5py
    out = []
    if group in f:
        f[group].visititems(lambda k, v: out.append(k) if isinstance(v, h5py.Dataset) else None)
    return out


def style_hash(style):
    """SHA-256 of a style file's bytes (or of an RGB array's bytes and shape)."""
    if isinstance(style, (str, os.PathLike)) and not str(style).startswith("sample:"):
        with open(style, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    a = numpy.ascontiguousarray(io.load_image(style) if isinstance(style, str) else style)
    return hashlib.sha256(repr(a.shape).encode() + a.tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------

def check_options(mode, size, batch, steps, scales=5):
    """BadOption unless the training options fit; ``(size, batch, steps)`` as ints."""
    size, batch, steps, scales = int(size), int(batch), int(steps), int(scales)
    if mode not in MODES:
        raise BadOption(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
    if size < 16 or size % 4:
        raise BadOption(f"size must be a multiple of 4, at least 16, got {size}")
    if mode == "texture" and not 1 <= scales <= 8:
        raise BadOption(f"scales must be 1 to 8, got {scales}")
    if mode == "texture" and size % 2 ** (scales - 1):
        raise BadOption(f"size {size} must be divisible by 2^(scales-1) = {2 ** (scales - 1)}")
    if batch < 1 or steps < 0:
        raise BadOption(f"batch must be ≥ 1 and steps ≥ 0, got {batch} and {steps}")
    return size, batch, steps


def _options(o, steps, dtype):
    """The training options ``o`` (given, or a checkpoint's) and ``steps`` checked: the
    options as a model file keeps them (texture mode has no content term; ``style_size``
    defaults to ``size``), and the steps as an int."""
    size, batch, steps = check_options(o["mode"], o["size"], o["batch"], steps, o["scales"])
    if int(o["warmup"]) < 0:
        raise BadOption(f"warmup must be ≥ 0 steps, got {o['warmup']}")
    texture = o["mode"] == "texture"
    return dict(mode=o["mode"], width=float(o["width"]), size=size, batch=batch, lr=float(o["lr"]),
                content_weight=0.0 if texture else float(o["content_weight"]),
                style_weight=float(o["style_weight"]), tv_weight=float(o["tv_weight"]),
                content_layers=list(o["content_layers"]), style_layers=list(o["style_layers"]),
                style_size=int(o["style_size"] or size), scale=[float(v) for v in o["scale"]],
                scales=int(o["scales"]), seed=int(o["seed"]), warmup=int(o["warmup"]),
                dtype=numpy.dtype(dtype).name), steps


def _prepare(style, given, steps, resume, dtype):
    """What :func:`train` starts from: the style image (RGB) and its hash, the model and state
    of the checkpoint ``resume`` (which must be one, of this style; None, None without it),
    the checked options (``given``, or the checkpoint's: they win) and steps."""
    style_img = io.load_image(style) if isinstance(style, str) else numpy.asarray(style)
    if style_img.ndim != 3 or style_img.shape[-1] != 3:
        raise BadShape(f"style image: expected RGB (h, w, 3), got shape {style_img.shape}")
    sha = style_hash(style)
    model, state = None, None
    if resume is not None:
        model, state = load(resume, dtype=dtype, with_state=True)
        if state is None:
            raise BadFile(f"{resume}: a model file, not a checkpoint (no optimizer state)")
        if model.style_sha256 != sha:
            raise BadFile(f"{resume}: trained on another style image (SHA-256 "
                          f"{model.style_sha256[:12]}…, this one {sha[:12]}…)")
        given = dict(model.options, warmup=model.options.get("warmup", 0))   # none before it
    o, steps = _options(given, steps, dtype)
    return style_img, sha, model, state, o, steps


def _optimizer(net, o, state, device):
    """Adam on every parameter of ``net`` and the random generator of the batches, with a
    checkpoint's ``state`` (Adam's moments and step, the generator's state) put back."""
    rng = numpy.random.default_rng(o["seed"])
    adam = Adam(dict(net.parameters()), o["lr"], warmup=o["warmup"])
    if state is not None:
        rng.bit_generator.state = state["rng"]
        adam.t = int(state["adam"]["t"])
        for k in adam.m:
            adam.m[k][...] = backend.to_device(state["m"][k], device)
            adam.v[k][...] = backend.to_device(state["v"][k], device)
    return adam, rng


def _new_model(o, style, sha, dtype, device):
    """The untrained :class:`StyleModel` of the checked options ``o``."""
    arch = MODES[o["mode"]]
    net = build(arch, o["width"], o["scales"], seed=o["seed"], dtype=dtype, device=device)
    return StyleModel(net, arch, o["width"], o, sha,
                      os.path.basename(style) if isinstance(style, str) else "array",
                      o["scales"] if arch == "ulyanov" else 0)


def _batch(crops, rng, o, dtype, device):
    """A step's input and its content batch: crops of the photographs (transfer), or noise
    and no content (texture)."""
    if crops is not None:
        x = backend.to_device(crops.sample().astype(dtype), device)
        return x, x
    z = noise_batch(rng, o["batch"], o["scales"], o["size"], o["size"], dtype)
    return backend.to_device(z, device), None


def _step(net, loss, adam, x, content, step):
    """One training step on the batch ``x`` (its content, or None): forward, the perceptual
    loss, the backward to every parameter and Adam's update; returns the loss terms."""
    y = net.forward(x)
    terms, g = loss(y, content)
    net.backward(g.astype(y.dtype, copy=False), start=net.layer_names[-1])
    adam.step(gradients(net))
    if not math.isfinite(terms["total"]):
        raise FloatingPointError(f"the loss is not finite at step {step} "
                                 f"(try a smaller learning rate or weights)")
    return terms, y


def train(style, images=None, *, mode="transfer", width=1.0, size=256, batch=4, steps=2000,
          lr=LR, content_weight=CONTENT_WEIGHT, style_weight=STYLE_WEIGHT, tv_weight=TV_WEIGHT,
          content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS, style_size=None,
          scale=(1.0, 2.0), scales=5, vgg=None, seed=0, dtype=numpy.float32,
          checkpoint=None, checkpoint_every=0, resume=None, progress=True, callback=None,
          warmup=0):
    """Train a feed-forward network on one style; returns a
    :class:`~nnviz.methods.optimize.Result` whose ``extra["model"]`` is the
    :class:`StyleModel`, ``history`` its loss per step (``step, loss, content, style, tv,
    seconds``), ``x``/``images`` the last batch's outputs (pixels; RGB uint8), ``status``
    ``"done"`` or ``"interrupted"`` (Ctrl-C: the model so far, and a checkpoint when asked).

    ``style``: an image path, ``"sample:NAME"`` or RGB uint8 (h, w, 3), resized so that its
    longer side is ``style_size`` (default ``size``). ``images``: a folder, or a list of
    ``(name, RGB)`` pairs, of content images (default: scikit-image's colour photographs).
    ``mode``: ``"transfer"`` (Johnson's transformer, content + style + TV) or ``"texture"``
    (Ulyanov's generator from noise with ``scales`` scales, style + TV only). Crops of
    ``size`` pixels (scale jitter ``scale``), ``batch`` per step, ``steps`` steps of Adam
    at ``lr``. ``vgg``: the loss network (default: VGG16 with the default weights).
    ``checkpoint``: a path written (atomically) every ``checkpoint_every`` steps and at the
    end; ``resume``: a checkpoint to continue (its options win over the arguments, except
    ``steps``, the total to reach). ``callback(step, terms)`` after each step. ``warmup``:
    the rate grows linearly over the first ``warmup`` steps
    (:class:`~nnviz.methods.optimize.Adam`); at small widths it keeps the first steps from
    saturating the output (without it the loss jumps 10-100× at step 2 and takes ~70 steps
    to come back).
    """
    start = time.perf_counter()
    style_img, sha, model, state, o, steps = _prepare(style, dict(
        mode=mode, width=width, size=size, batch=batch, lr=lr, scale=scale,
        content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
        content_layers=content_layers, style_layers=style_layers, style_size=style_size,
        scales=scales, seed=seed, warmup=warmup), steps, resume, dtype)
    if o["mode"] == "transfer":
        imgs = default_images() if images is None else (
            folder_images(images) if isinstance(images, (str, os.PathLike)) else list(images))
    vgg = vgg16(weights="default", include_top=False) if vgg is None else vgg
    o["vgg"] = dict(arch=vgg.arch, source=vgg.weights_info.get("source", "random"),
                    preprocess=vgg.preprocessing)
    loss = PerceptualLoss(vgg, io.resize(style_img, o["style_size"]), dtype=dtype, **{
        k: o[k] for k in ("content_layers", "style_layers", "content_weight", "style_weight",
                          "tv_weight")})
    if model is None:
        model = _new_model(o, style, sha, dtype, vgg.device)
    net = model.net.to(vgg.device).requires_grad_(True)     # a resumed one: onto the VGG's device
    adam, rng = _optimizer(net, o, state, vgg.device)
    crops = Crops(imgs, o["size"], o["batch"], rng, o["scale"]) if o["mode"] == "transfer" else None

    def save_checkpoint():
        if checkpoint:
            save(model, checkpoint, dict(adam=adam, rng=rng))

    status, y = "done", None
    bar = progress_bar(max(0, steps - model.step), "train-style", progress)
    try:
        while model.step < steps:
            t0 = time.perf_counter()
            x, content = _batch(crops, rng, o, dtype, vgg.device)
            terms, y = _step(net, loss, adam, x, content, model.step + 1)
            row = dict(step=model.step + 1, loss=terms["total"], content=terms["content"],
                       style=terms["style"], tv=terms["tv"], seconds=time.perf_counter() - t0)
            model.history.append(row)
            bar.update(1)
            bar.set_postfix(loss=f"{terms['total']:.4g}")
            if callback is not None:
                callback(row["step"], terms)
            if checkpoint_every and row["step"] % checkpoint_every == 0:
                save_checkpoint()
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        bar.close()
    net.activations.clear()
    save_checkpoint()
    net.requires_grad_(False)
    return Result(y, model.history, images=None if y is None else _to_uint8(y), status=status,
                  message=f"interrupted at step {model.step}" if status != "done" else None,
                  loss=model.history[-1]["loss"] if model.history else None,
                  seconds=time.perf_counter() - start, extra=dict(model=model))


def _to_uint8(y):
    a = backend.to_numpy(y).astype(numpy.float64).transpose(0, 2, 3, 1)
    return numpy.clip(numpy.rint(a), 0, 255).astype(numpy.uint8)


# ---------------------------------------------------------------------------------------
# stylizing and generating
# ---------------------------------------------------------------------------------------

def stylize(model, images, batch=4, size=None, dtype=numpy.float32):
    """Each RGB uint8 image (H, W, 3) through the model in one forward pass (images of the
    same size batched ``batch`` at a time); returns RGB uint8 images of the same sizes, in
    order. ``size``: first resize each so that its longer side is ``size``. Sides not
    divisible by 4 are padded by reflection for the network and cropped back."""
    if model.arch != "johnson":
        raise BadOption(f"a {model.arch} model makes textures from noise: use generate()")
    net = model.net
    imgs = [numpy.asarray(a) for a in images]
    for i, a in enumerate(imgs):
        if a.ndim != 3 or a.shape[-1] != 3:
            raise BadShape(f"image {i + 1}: expected RGB (H, W, 3), got shape {a.shape}")
    if size:
        imgs = [io.resize(a, int(size)) for a in imgs]
    out = [None] * len(imgs)
    groups = {}
    for i, a in enumerate(imgs):
        groups.setdefault(a.shape, []).append(i)
    xp = net.xp
    for (h, w, _), idx in groups.items():
        ph, pw = -h % 4, -w % 4
        if min(h, w) < 8:
            raise BadShape(f"image of {h}×{w} pixels is too small to stylize (8 at least)")
        for k in range(0, len(idx), int(batch)):
            part = idx[k:k + int(batch)]
            x = numpy.stack([imgs[i] for i in part]).transpose(0, 3, 1, 2).astype(dtype)
            if ph or pw:
                x = numpy.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
            y = net.forward(xp.asarray(x))[:, :, :h, :w]
            for i, img in zip(part, _to_uint8(y)):
                out[i] = img
    net.activations.clear()
    return out


def generate(model, count=1, size=256, seed=0, dtype=numpy.float32):
    """``count`` textures of ``size`` (an int or (h, w), rounded up to a multiple of
    2^(scales−1)) from a texture model, each from its own noise; RGB uint8 images."""
    if model.arch != "ulyanov":
        raise BadOption(f"a {model.arch} model stylizes photographs: use stylize()")
    h, w = (size, size) if numpy.isscalar(size) else size
    m = 2 ** (model.scales - 1)
    h, w = -(-int(h) // m) * m, -(-int(w) // m) * m
    rng = numpy.random.default_rng(seed)
    out = []
    for _ in range(int(count)):
        z = model.net.xp.asarray(noise_batch(rng, 1, model.scales, h, w, dtype))
        out.append(_to_uint8(model.net.forward(z))[0])
    model.net.activations.clear()
    return out


# ---------------------------------------------------------------------------------------
# the loss curve (its CSV: nnviz.tables.write_csv with HISTORY_COLUMNS, every digit)
# ---------------------------------------------------------------------------------------
