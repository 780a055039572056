"""The PyTorch side of a comparison: a ``torch.nn.Module`` (torchvision's VGG layout, or any
module whose leaves are a VGG's chain) or a state dict file, run layer by layer with every
output and the gradient arriving at it recorded: plain autograd, full backward hooks at the
ReLUs (guided backprop, the deconvnet), Captum's attributions, zennit's composites. Also the
torchvision-layout twin of an nnviz VGG.

torch, captum and zennit are imported inside the functions that need them."""
import contextlib
import os
from collections import OrderedDict

import numpy

from ... import backend
from ... import weights as W
from ...errors import BadFile, BadOption
from ...vgg import FC_SIZES, conv_names, layout
from .reference import match


def import_torch():
    """The ``torch`` module (a :class:`BadOption` when it is not installed)."""
    try:
        import torch
    except ImportError:
        raise BadOption("comparing a PyTorch model needs torch (pip install torch)") from None
    return torch


def torch_dtype(dtype):
    """torch's dtype for ``"float64"`` or ``"float32"``."""
    torch = import_torch()
    return torch.float64 if str(dtype) == "float64" else torch.float32


def torch_kind(module):
    """The nnviz kind of a leaf module, ``"skip"`` for identities at inference, None if unknown."""
    torch = import_torch()
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
            raise BadFile(f"the model's module {qual or type(m).__name__} ({type(m).__name__}) is not a "
                          f"layer of a plain VGG (Conv2d, ReLU, MaxPool2d, Linear, Dropout)")
        if kind == "conv" and (tuple(m.stride) != (1, 1) or tuple(m.dilation) != (1, 1) or m.groups != 1
                               or tuple(m.padding) != (m.kernel_size[0] // 2, m.kernel_size[1] // 2)):
            raise BadFile(f"the model's {qual} ({m}): stride, padding or groups differ from a VGG's")
        if kind == "pool" and (m.ceil_mode or m.dilation not in (1, (1, 1))):
            raise BadFile(f"the model's {qual} ({m}): ceil_mode or dilation differ from a VGG's")
        if kind != "skip":
            out.append((kind, qual, m))
    return out


def torch_params(module):
    """nnviz parameters from a module's leaves, in order."""
    convs, fcs = [], []
    for kind, qual, m in torch_layers(module):
        if kind in ("conv", "fc"):
            if m.bias is None:
                raise BadFile(f"the model's {qual} has no bias; a VGG's layers have biases")
            w, b = (t.detach().cpu().to(import_torch().float32).numpy() for t in (m.weight, m.bias))
            (convs if kind == "conv" else fcs).append((qual, tuple(w.shape), w, b))
    return W.assemble(convs, fcs, None, f"the PyTorch model ({type(module).__name__})")[0]


def torch_vgg(arch="vgg16", include_top=True):
    """A PyTorch VGG in torchvision's layout (``features``, ``avgpool``, ``classifier``; the
    state-dict keys of ``torchvision.models.vgg16``), built with ``torch.nn`` alone."""
    torch = import_torch()
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
    torch = import_torch()
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
    torch = import_torch()
    name = os.path.basename(os.fspath(path))
    sd = W.read_state_dict(path, loader="torch")
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise BadFile(f"{name}: holds a {type(sd).__name__}, not a state dict")
    sd = OrderedDict((str(k)[len("module."):] if str(k).startswith("module.") else str(k), v) for k, v in sd.items())
    convs = sum(1 for k, v in sd.items() if k.endswith("weight") and getattr(v, "ndim", 0) == 4)
    arch = W.ARCH_BY_CONVS.get(convs)
    if arch is None:
        raise BadFile(f"{name}: {convs} convolutions: not a VGG16 or VGG19 state dict")
    top = any(k.startswith("classifier.") for k in sd)
    model = torch_vgg(arch, include_top=top)
    want = model.state_dict()
    missing = [k for k in want if k not in sd]
    extra = [k for k in sd if k not in want]
    if missing or extra:
        raise BadFile(f"{name}: not torchvision's VGG layout (features.N, classifier.N): "
                      f"missing {missing[:3]}, unexpected {extra[:3]}")
    for k, v in sd.items():
        if tuple(v.shape) != tuple(want[k].shape):
            raise BadFile(f"{name}: {k} of shape {tuple(v.shape)}, expected {tuple(want[k].shape)}")
    model.load_state_dict({k: torch.from_numpy(numpy.asarray(v, numpy.float32)) for k, v in sd.items()})
    return model


def chain_module(steps, until, head=None):
    """A ``torch.nn.Module`` running the framework's layers ``steps`` (nnviz name, label,
    module or None for a flatten) up to ``until``, recording every output and the gradient
    arriving at it (tensor hooks fire under ``backward`` and ``autograd.grad`` alike).
    ``head``: None (return the activation of ``until``) or a function of it giving the
    scores that Captum's ``target`` indexes."""
    torch = import_torch()

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
    torch = import_torch()
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
        self.steps = match(net, [(k, q, m) for k, q, m in torch_layers(module)], self.what)

    @property
    def names(self):
        return [s[0] for s in self.steps]

    def _relus(self, scope):
        torch = import_torch()
        if scope == "features" and isinstance(getattr(self.module, "features", None), torch.nn.Module):
            return [m for m in self.module.features.modules() if isinstance(m, torch.nn.ReLU)]
        names = self.names
        end = names.index("flatten") if scope == "features" and "flatten" in names else len(names)
        return [m for n, _, m in self.steps[:end] if isinstance(m, torch.nn.ReLU)]

    def run(self, x, target, seed, dtype):
        torch = import_torch()
        tdtype = torch_dtype(dtype)
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
                    chain = chain_module(self.steps, target.layer)
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
            raise BadOption("the captum presets need Captum (pip install captum)") from None

        def head(h):              # the scores whose column `target` Captum differentiates
            if h.ndim == 2:
                return h
            if target.position is None:
                return h.sum(dim=(2, 3))
            return h[:, :, target.position[0], target.position[1]]
        chain = chain_module(self.steps, target.layer, head)
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
            raise BadOption("the zennit presets need zennit (pip install zennit)") from None
        except Exception as e:     # zennit imports torchvision for its ResNet canonizers
            raise BadOption(f"zennit could not be imported ({type(e).__name__}: {e}); it imports "
                            f"torchvision, which must load beside this torch") from None
        cls = zennit.composites.COMPOSITES[preset.method]
        kw = {}
        if preset.method == "epsilon_gamma_box":
            torch = import_torch()
            lo, hi = (self.net.preprocess(numpy.full((1, 1, 3), v, numpy.uint8)) for v in (0, 255))
            kw = dict(low=torch.from_numpy(backend.to_numpy(lo)).to(xt.dtype),
                      high=torch.from_numpy(backend.to_numpy(hi)).to(xt.dtype))
        chain = chain_module(self.steps, target.layer)
        with zennit.attribution.Gradient(model=chain, composite=cls(**kw)) as attributor:
            attributor(xt, attr_output=st)
        return chain


def _numpy_record(record, to_numpy):
    out = OrderedDict()
    for name, (a, g) in record.items():
        out[name] = (to_numpy(a), None if g is None else to_numpy(g))
    return out
