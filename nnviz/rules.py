"""Backward rules: how one layer passes the backward signal down (design contract, "Backward
rules").

A rule is an object with ``backward(layer, dy) -> dx``: it reads what the layer kept from its
forward (a ReLU its mask ``positive = x > 0``, a max pooling its ``switches``) and the incoming
signal ``dy`` shaped as the layer's output, and returns the signal at the layer's input. With
no rule, a layer passes its gradient (:class:`Gradient`). A rule that also reads the layer's
forward input says so (``needs_input = True``, every LRP rule) and is called as
``backward(layer, dy, x)``: the net hands it the previous layer's output (layers keep their
input only when ``requires_grad``).

At a ReLU with input ``x`` and incoming ``dy``:

- ``backprop`` (the gradient; Simonyan et al. 2013): ``dx = dy * (x > 0)``
- ``deconvnet`` (Zeiler & Fergus 2014, sec. 2.1): ``dx = dy * (dy > 0)``
- ``guided`` (Springenberg et al. 2015, sec. 3.4): ``dx = dy * (x > 0) * (dy > 0)``
- ``pass`` (LRP's ReLU; zennit's ``Pass``): ``dx = dy``

At a max pooling, the gradient routes ``dy`` to the recorded switches (the deconvnet's
unpooling, and LRP's winner-takes-all); ``no_switches`` routes it to each window's first pixel
instead (Zeiler & Fergus 2014, fig. 5's "without switches"); ``proportional`` shares it among
the window's pixels in proportion to their values.

Layer-wise relevance propagation (Bach et al. 2015; Montavon et al. 2017, 2019): the rules of
zennit 0.5.1 (``zennit.rules``), with its names, parameters, defaults, stabilizer and
``zero_params``, each written out below as what it computes. On a convolution, transposed
convolution or linear layer ``z = f(x; W, b)``, each rule evaluates ``f`` with modified inputs
and parameters, divides the incoming relevance by a stabilized output, and takes the input
gradient of ``f`` (the transposed map) of that ratio: :func:`_affine` and :func:`_affine_t`.

Which rule acts where is said by :func:`assign`: a preset name (a ReLU rule at every ReLU, or
an LRP composite by zennit's registered name), a dict from layers to rules, or a
:class:`Composite` (rules by layer type, a rule for the first layer, names that override both:
zennit's ``LayerMapComposite``, ``SpecialFirstLayerMapComposite`` and ``NameMapComposite`` in
one). Layers can be named by name, by glob pattern (``conv5_*``) or by index among the
convolution and linear layers (0 = ``conv1_1``; ``range(1, 7)``, ``"1-6"``). This module knows
layers only by their class names, so that it sits below :mod:`nnviz.layers`.
"""
import fnmatch
import re

from . import functional as F
from .backend import get_array_module
from .errors import InputError


def _kind(layer):
    return type(layer).__name__


def _is_a(layer, kind):
    """Whether ``layer`` is of class ``kind`` (a class, a class name, or a tuple of them),
    subclasses included."""
    if isinstance(kind, tuple):
        return any(_is_a(layer, k) for k in kind)
    if isinstance(kind, type):
        return isinstance(layer, kind)
    return any(c.__name__ == kind for c in type(layer).__mro__)


class Rule:
    """A backward rule. ``fits``: the names of the layer classes it applies to (empty: any
    layer); ``backward(layer, dy)`` returns the signal at the layer's input (``backward(layer,
    dy, x)`` with the layer's forward input ``x`` when ``needs_input``)."""

    name = "rule"
    fits = ()
    needs_input = False

    def fits_layer(self, layer):
        return not self.fits or any(_is_a(layer, k) for k in self.fits)

    def fits_layer_kind(self, kind):
        """Whether it fits layers of class name ``kind``."""
        return not self.fits or kind in self.fits

    def backward(self, layer, dy):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class Gradient(Rule):
    """The layer's own gradient (``layer.gradient(dy)``): backprop."""

    name = "backprop"

    def backward(self, layer, dy):
        return layer.gradient(dy)


class Deconvnet(Rule):
    """Zeiler & Fergus 2014: the ReLU rectifies the backward signal, ``dy * (dy > 0)``."""

    name = "deconvnet"
    fits = ("ReLU",)

    def backward(self, layer, dy):
        return dy * (dy > 0)


class Guided(Rule):
    """Springenberg et al. 2015: ``dy * (x > 0) * (dy > 0)`` at a ReLU."""

    name = "guided"
    fits = ("ReLU",)

    def backward(self, layer, dy):
        return dy * (layer.positive & (dy > 0))


class Pass(Rule):
    """The signal passes unchanged, ``dx = dy`` (zennit's ``Pass``; LRP's ReLU). Fits any
    layer whose input and output have the same shape."""

    name = "pass"

    def backward(self, layer, dy):
        if tuple(layer.input_shape) != tuple(dy.shape):
            raise ValueError(f"rule 'pass' at layer {layer.name!r}: its input {layer.input_shape} "
                             f"and output {tuple(dy.shape)} differ in shape")
        return dy


class NoSwitches(Rule):
    """Max pooling without the switches: each window's signal goes to its first (top-left)
    pixel, clamped into the plane (Zeiler & Fergus 2014, fig. 5). Overlapping windows sum
    what lands on a shared pixel."""

    name = "no_switches"
    fits = ("MaxPool2d",)

    def backward(self, layer, dy):
        h, w = layer.input_shape[2:]
        first = F.window_origins(dy, h, w, layer.stride, layer.padding)
        return F.unpool(dy, first, h, w, accumulate=layer.overlapping)


# ---------------------------------------------------------------------------------------
# layer-wise relevance propagation
# ---------------------------------------------------------------------------------------

AFFINE = ("Conv2d", "ConvTranspose2d", "Linear")     # the layers the LRP rules act on


class Stabilizer:
    """zennit's ``Stabilizer``: the denominator ``z`` made safe to divide by. Adds ``epsilon``
    with the sign of each entry, zero counting as positive: ``z + ε·sign(z)``; ``clip=True``
    gives ``sign(z)·max(|z|, ε)`` instead. ``norm_scale=True`` scales ε by the root mean square
    of ``z`` over ``dim`` (default every axis but the batch)."""

    def __init__(self, epsilon=1e-6, clip=False, norm_scale=False, dim=None):
        self.epsilon, self.clip, self.norm_scale, self.dim = epsilon, clip, norm_scale, dim

    def __call__(self, z):
        xp = get_array_module(z)
        sign = xp.where(z < 0, -1.0, 1.0).astype(z.dtype)
        eps = self.epsilon
        if self.norm_scale:
            dim = tuple(range(1, z.ndim)) if self.dim is None else self.dim
            eps = eps * xp.sqrt((z * z).mean(axis=dim, keepdims=True))
        if self.clip:
            return sign * xp.maximum(xp.abs(z), eps)
        return z + sign * eps

    def __repr__(self):
        return f"Stabilizer({self.epsilon}, clip={self.clip}, norm_scale={self.norm_scale})"

    @classmethod
    def ensure(cls, value):
        """A float gives ``Stabilizer(value)``; a function ``z -> stabilized z`` is used as is."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls(float(value))
        if callable(value):
            return value
        raise TypeError(f"a stabilizer must be a number or a function of z, got {value!r}")


def _zero_names(zero_params):
    if zero_params is None:
        return ()
    return (zero_params,) if isinstance(zero_params, str) else tuple(zero_params)


def _pos(a):
    return get_array_module(a).maximum(a, 0)


def _neg(a):
    return get_array_module(a).minimum(a, 0)


def _affine(layer, x, w, b=None):
    """The layer's map with parameters ``w``, ``b`` in place of its own: ``f(x; w, b)``."""
    if _is_a(layer, "Linear"):
        return x @ w.T if b is None else x @ w.T + b
    if _is_a(layer, "ConvTranspose2d"):
        return F.conv_transpose2d(x, w, b, layer.stride, layer.padding, layer.dilation,
                                  output_padding=layer.output_padding)
    return F.conv2d(x, w, b, layer.stride, layer.padding, layer.dilation)


def _affine_t(layer, g, w, x):
    """Its input gradient with weights ``w`` (the transposed map), ``g`` shaped as the output:
    ``∂(g · f(x; w)) / ∂x``, shaped as ``x``."""
    if _is_a(layer, "Linear"):
        return g @ w
    if _is_a(layer, "ConvTranspose2d"):
        return F.conv2d(g, w, None, layer.stride, layer.padding, layer.dilation)
    return F.conv_transpose2d(g, w, None, layer.stride, layer.padding, layer.dilation,
                              output_size=x.shape[2:])


class LRPRule(Rule):
    """Base of the LRP rules on convolutions and linear layers: the stabilizer (a number ε
    or a function, :class:`Stabilizer`) and ``zero_params`` (parameter names, ``"weight"``
    and/or ``"bias"``, set to zero in the modified layers), as zennit's."""

    fits = AFFINE
    needs_input = True
    args = ("stabilizer",)

    def __init__(self, stabilizer=1e-6, zero_params=None):
        self.stabilizer = stabilizer
        self.stabilize = Stabilizer.ensure(stabilizer)
        self.zero_params = _zero_names(zero_params)

    def params(self, layer, dtype, modify=None, zero_bias=False):
        """``(w, b)``: the layer's weight and bias in ``dtype``, each through ``modify``, or
        zeros where ``zero_params`` (and ``zero_bias``) say so; zennit's ``ParamMod``."""
        zero = self.zero_params + (("bias",) if zero_bias else ())
        out = []
        for name in ("weight", "bias"):
            p = getattr(layer, name, None)
            if p is not None:
                p = p.astype(dtype, copy=False)
                p = get_array_module(p).zeros_like(p) if name in zero else (
                    p if modify is None else modify(p))
            out.append(p)
        return out

    def __repr__(self):
        shown = [f"{a}={getattr(self, a)!r}" for a in self.args]
        if self.zero_params:
            shown.append(f"zero_params={list(self.zero_params)!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


class Epsilon(LRPRule):
    """LRP-ε (Bach et al. 2015; zennit ``Epsilon``); ``epsilon=0`` is LRP-0:
    ``R_i = x_i Σ_j w_ji R_j / (z_j + ε·sign(z_j))``, ``z = Wx + b``."""

    name = "epsilon"
    args = ("epsilon",)

    def __init__(self, epsilon=1e-6, zero_params=None):
        super().__init__(epsilon, zero_params)
        self.epsilon = epsilon

    def backward(self, layer, dy, x):
        w, b = self.params(layer, x.dtype)
        z = _affine(layer, x, w, b)
        return x * _affine_t(layer, dy / self.stabilize(z), w, x)


class Gamma(LRPRule):
    """Generalized LRP-γ (Montavon et al. 2019; Andéol et al. 2021; zennit ``Gamma``): where
    the output ``z = Wx + b`` is positive, the relevance goes to the contributions that raise
    it, favoured by γ: ``x⁺`` through ``W + γW⁺`` (bias ``b + γb⁺``) and ``x⁻`` through
    ``W + γW⁻``; where ``z`` is negative, to those that lower it (``x⁺`` through ``W + γW⁻``
    with ``b + γb⁻``, ``x⁻`` through ``W + γW⁺``). For ``x ≥ 0`` and ``z > 0`` this is
    ``R_i = x_i Σ_j (w_ji + γw_ji⁺) R_j / (Σ_i' x_i' (w_ji' + γw_ji'⁺) + b_j + γb_j⁺)``."""

    name = "gamma"
    args = ("gamma", "stabilizer")

    def __init__(self, gamma=0.25, stabilizer=1e-6, zero_params=None):
        super().__init__(stabilizer, zero_params)
        self.gamma = gamma

    def backward(self, layer, dy, x):
        up, b_up = self.params(layer, x.dtype, lambda p: p + self.gamma * _pos(p))    # W + γW⁺
        dn, b_dn = self.params(layer, x.dtype, lambda p: p + self.gamma * _neg(p))    # W + γW⁻
        w, b = (p if p is None else p.astype(x.dtype) for p in (layer.weight, layer.bias))
        z = _affine(layer, x, w, b)                    # the layer's own output, for the sign
        x_pos, x_neg = _pos(x), _neg(x)
        z_up = _affine(layer, x_pos, up, b_up) + _affine(layer, x_neg, dn)      # what raises z
        z_down = _affine(layer, x_pos, dn, b_dn) + _affine(layer, x_neg, up)    # what lowers it
        sp = (z > 0) * dy / self.stabilize(z_up)
        sn = (z < 0) * dy / self.stabilize(z_down)
        return (x_pos * (_affine_t(layer, sp, up, x) + _affine_t(layer, sn, dn, x))
                + x_neg * (_affine_t(layer, sp, dn, x) + _affine_t(layer, sn, up, x)))


class ZPlus(LRPRule):
    """LRP-z⁺ (Bach et al. 2015; Montavon et al. 2017; zennit ``ZPlus``; αβ with α=1, β=0):
    only the positive contributions, ``x⁺`` through ``W⁺`` (bias ``b⁺``) and ``x⁻`` through
    ``W⁻``: ``R_i = Σ_j (x_i⁺ w_ji⁺ + x_i⁻ w_ji⁻) R_j / z_j⁺``."""

    name = "zplus"

    def backward(self, layer, dy, x):
        wp, bp = self.params(layer, x.dtype, _pos)
        wn, _ = self.params(layer, x.dtype, _neg, zero_bias=True)
        x_pos, x_neg = _pos(x), _neg(x)
        s = dy / self.stabilize(_affine(layer, x_pos, wp, bp) + _affine(layer, x_neg, wn))
        return x_pos * _affine_t(layer, s, wp, x) + x_neg * _affine_t(layer, s, wn, x)


class AlphaBeta(LRPRule):
    """LRP-αβ (Bach et al. 2015; zennit ``AlphaBeta``), α − β = 1: the positive contributions
    ``z⁺`` (``x⁺W⁺ + x⁻W⁻ + b⁺``) get α times their share, the negative ones ``z⁻``
    (``x⁺W⁻ + x⁻W⁺ + b⁻``) β times theirs, subtracted: ``R = α R⁺ − β R⁻``."""

    name = "alphabeta"
    args = ("alpha", "beta", "stabilizer")

    def __init__(self, alpha=2.0, beta=1.0, stabilizer=1e-6, zero_params=None):
        if alpha < 0 or beta < 0:
            raise InputError(f"AlphaBeta: alpha={alpha} and beta={beta} must both be >= 0")
        if alpha - beta != 1:
            raise InputError(f"AlphaBeta: alpha - beta must be 1, got {alpha} - {beta}")
        super().__init__(stabilizer, zero_params)
        self.alpha, self.beta = alpha, beta

    def backward(self, layer, dy, x):
        wp, bp = self.params(layer, x.dtype, _pos)
        wn, bn = self.params(layer, x.dtype, _neg)
        x_pos, x_neg = _pos(x), _neg(x)
        sp = dy / self.stabilize(_affine(layer, x_pos, wp, bp) + _affine(layer, x_neg, wn))
        sn = dy / self.stabilize(_affine(layer, x_pos, wn, bn) + _affine(layer, x_neg, wp))
        return (self.alpha * (x_pos * _affine_t(layer, sp, wp, x) + x_neg * _affine_t(layer, sp, wn, x))
                - self.beta * (x_pos * _affine_t(layer, sn, wn, x) + x_neg * _affine_t(layer, sn, wp, x)))


class ZBox(LRPRule):
    """LRP-z^B for a box-bounded input ``low ≤ x ≤ high`` (Montavon et al. 2017; zennit
    ``ZBox``): ``z = Wx + b − (W⁺l + b⁺) − (W⁻h + b⁻)``,
    ``R = x·Wᵀs − l·W⁺ᵀs − h·W⁻ᵀs`` with ``s = R_out / z``. ``low`` and ``high`` broadcast
    to the input, e.g. ``(1, 3, 1, 1)``; None: the net fills in its preprocessed pixel values
    0 and 255 per channel (:func:`assign`'s ``box``)."""

    name = "zbox"

    def __init__(self, low=None, high=None, stabilizer=1e-6, zero_params=None):
        super().__init__(stabilizer, zero_params)
        self.low, self.high = low, high

    def bind(self, low, high):
        """A copy with these bounds."""
        return ZBox(low, high, self.stabilizer, self.zero_params)

    def __repr__(self):
        bounds = "" if self.low is None else "low, high, "
        return f"ZBox({bounds}stabilizer={self.stabilizer!r})"

    def backward(self, layer, dy, x):
        if self.low is None or self.high is None:
            raise ValueError(f"rule 'zbox' at layer {layer.name!r} has no bounds: give "
                             f"ZBox(low, high), or run it in a Net (its pixel range)")
        xp = get_array_module(x)
        lo = xp.broadcast_to(xp.asarray(self.low, dtype=x.dtype), x.shape)
        hi = xp.broadcast_to(xp.asarray(self.high, dtype=x.dtype), x.shape)
        w, b = self.params(layer, x.dtype)
        wp, bp = self.params(layer, x.dtype, _pos)
        wn, bn = self.params(layer, x.dtype, _neg)
        z = _affine(layer, x, w, b) - (_affine(layer, lo, wp, bp) + _affine(layer, hi, wn, bn))
        s = dy / self.stabilize(z)
        return (x * _affine_t(layer, s, w, x)
                - (lo * _affine_t(layer, s, wp, x) + hi * _affine_t(layer, s, wn, x)))


class Flat(LRPRule):
    """LRP-flat (Lapuschkin et al. 2019; zennit ``Flat``): every input of a unit's receptive
    field gets the same share, whatever its value or weight: all-ones input and weights, no
    bias, ``R_i = Σ_j R_j / stab(n_j)``, ``n_j`` the inputs unit j sees."""

    name = "flat"

    def backward(self, layer, dy, x):
        xp = get_array_module(x)
        w, _ = self.params(layer, x.dtype, xp.ones_like, zero_bias=True)
        z = _affine(layer, xp.ones_like(x), w)
        return _affine_t(layer, dy / self.stabilize(z), w, x)


class WSquare(LRPRule):
    """LRP-w² (Montavon et al. 2017; zennit ``WSquare``): shares by squared weights, whatever
    the input: ``R_i = Σ_j w_ji² R_j / stab(Σ_i' w_ji'² + b_j²)`` (zennit squares the bias
    too)."""

    name = "wsquare"

    def backward(self, layer, dy, x):
        xp = get_array_module(x)
        w2, b2 = self.params(layer, x.dtype, lambda p: p * p)
        z = _affine(layer, xp.ones_like(x), w2, b2)
        return _affine_t(layer, dy / self.stabilize(z), w2, x)


def _pool(layer, x):
    geometry = (layer.kh, layer.kw) + tuple(layer.stride) + tuple(layer.padding)
    if _is_a(layer, "MaxPool2d"):
        return F.max_pool2d(x, *geometry)[0]
    return F.avg_pool2d(x, *geometry)


class Norm(LRPRule):
    """zennit's ``Norm`` (its rule for average and sum pooling): the layer as it is, each
    input's share of the output, ``R = x · ∂f/∂x ᵀ (R_out / stab(f(x)))``. On a max pooling
    (``f`` the max) it is Captum's ε-rule there: the winner gets ``R·x/stab(x)``."""

    name = "norm"
    fits = ("AvgPool2d", "MaxPool2d")

    def __init__(self, stabilizer=1e-6):
        super().__init__(stabilizer)

    def backward(self, layer, dy, x):
        return x * layer.gradient(dy / self.stabilize(_pool(layer, x)))


class Proportional(LRPRule):
    """Max pooling's alternative to winner-takes-all: each window's relevance is shared among
    its pixels in proportion to their values, the window read as an average pooling under
    :class:`Norm` (zennit's ``Norm`` on ``AvgPool2d`` with the same window):
    ``R_i = x_i Σ_w R_w / (k·stab(mean_w x))``, ``k`` the window's size."""

    name = "proportional"
    fits = ("MaxPool2d",)

    def __init__(self, stabilizer=1e-6):
        super().__init__(stabilizer)

    def backward(self, layer, dy, x):
        geometry = (layer.kh, layer.kw) + tuple(layer.stride) + tuple(layer.padding)
        s = dy / self.stabilize(F.avg_pool2d(x, *geometry))
        return x * F.avg_pool2d_backward(s, x.shape[2], x.shape[3], *geometry)


GRADIENT = Gradient()
RULES = {r.name: r for r in (GRADIENT, Deconvnet(), Guided(), Pass(), NoSwitches())}
# rules with parameters, by name: "epsilon:0.25" is Epsilon(0.25), "alphabeta:1:0" AlphaBeta(1, 0)
LRP_RULES = {r.name: r for r in (Epsilon, Gamma, ZPlus, AlphaBeta, ZBox, Flat, WSquare, Norm,
                                 Proportional)}
ALIASES = {"gradient": "backprop", "no-switches": "no_switches", "lrp0": "epsilon:0",
           "lrp-0": "epsilon:0", "alpha_beta": "alphabeta", "z_plus": "zplus", "z+": "zplus",
           "w2": "wsquare", "w_square": "wsquare", "z_box": "zbox"}


def get(rule):
    """A :class:`Rule` from a rule object, a rule name or None (the gradient). Names with
    parameters: ``"epsilon:0.25"``, ``"gamma:0.5"``, ``"alphabeta:1:0"``, ``"zplus:1e-9"``
    (the constructor's positional arguments); ``"zbox"`` takes the net's pixel range."""
    if rule is None:
        return GRADIENT
    if isinstance(rule, Rule):
        return rule
    if isinstance(rule, str):
        name = ALIASES.get(rule, rule)
        if name in RULES:
            return RULES[name]
        head, *args = name.split(":")
        head = ALIASES.get(head, head)
        if head in LRP_RULES and not (head == "zbox" and args):
            try:
                values = [float(a) for a in args]
                return LRP_RULES[head](*values)
            except (TypeError, ValueError) as e:
                raise InputError(f"rule {rule!r}: {e}") from None
        raise InputError(f"unknown backward rule {rule!r}: expected one of "
                         f"{', '.join(list(RULES) + list(LRP_RULES) + list(PRESETS))} "
                         f"(LRP rules with parameters as epsilon:0.25, gamma:0.25, alphabeta:2:1)")
    raise TypeError(f"a rule must be a rule name or a nnviz.rules.Rule, got {rule!r}")


def for_layer(rule, layer):
    """The rule that acts at ``layer`` when a single layer is asked for ``rule``: a preset name
    (``"guided"``…) acts as it does in a net (its rule where it fits, the gradient
    elsewhere); any other rule must fit the layer."""
    if isinstance(rule, str) and _preset_name(rule) in PRESETS:
        return PRESETS[_preset_name(rule)].assign({layer.name or "layer": layer}).get(
            layer.name or "layer", GRADIENT)
    return check_fits(get(rule), layer)


def check_fits(rule, layer, name=None):
    """Raise a KeyError naming the rule and the layer when ``rule`` does not fit ``layer``."""
    if not rule.fits_layer(layer):
        where = name or layer.name or _kind(layer)
        raise KeyError(f"rule {rule.name!r} given for {where!r}, which is not a "
                       f"{' or '.join(map(str, rule.fits))} ({_kind(layer)})")
    return rule


class Composite:
    """Rules by layer type, an optional rule for the first layer it fits, and layer names that
    override both.

    ``layer_map``: ``[(kind, rule), ...]`` (or a dict), ``kind`` a layer class, its name or a
    tuple of them; the first entry that a layer is an instance of gives its rule. ``first``: a
    rule for the first layer (in forward order) that it fits, or ``(kind, rule)`` for the first
    layer of that kind, e.g. a box rule on ``conv1_1``. ``names``: ``{layers: rule}``, applied
    last, in order (see :func:`select` for names, patterns and indices). Rules may be objects
    or names. Layers that nothing names pass their gradient. ``name``: a label (the preset's
    name)."""

    def __init__(self, layer_map=(), first=None, names=None, name=None):
        items = layer_map.items() if isinstance(layer_map, dict) else layer_map
        self.layer_map = [(kind, get(r)) for kind, r in items]
        if isinstance(first, tuple):
            self.first = (first[0], get(first[1]))
        else:
            self.first = None if first is None else (None, get(first))
        self.names = {n: get(r) for n, r in (names or {}).items()}
        self.name = name

    def __repr__(self):
        if self.name:
            return f"Composite({self.name!r})"
        return (f"Composite(layer_map={self.layer_map!r}, first={self.first!r}, "
                f"names={self.names!r})")

    def with_names(self, names):
        """A copy with ``names`` applied after this composite's own."""
        out = Composite(self.layer_map, None, {**self.names, **names}, name=None)
        out.first = self.first
        return out

    def assign(self, layers):
        """``{name: rule}`` for the ordered ``layers`` (name -> layer)."""
        out = {}
        for name, layer in layers.items():
            for kind, rule in self.layer_map:
                if _is_a(layer, kind):
                    out[name] = check_fits(rule, layer, name)
                    break
        if self.first is not None:
            kind, rule = self.first
            for name, layer in layers.items():
                if _is_a(layer, kind) if kind is not None else rule.fits_layer(layer):
                    out[name] = check_fits(rule, layer, name)
                    break
        out.update(_named(layers, self.names))
        return out

    def rules(self):
        """Every rule this composite may place."""
        first = [] if self.first is None else [self.first[1]]
        return [r for _, r in self.layer_map] + first + list(self.names.values())


_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


def select(layers, key):
    """The names of the layers that ``key`` picks in the ordered ``layers``: a layer name; a
    glob pattern (``"conv5_*"``, ``"fc?"``); an int, a ``range`` or a string ``"3"`` /
    ``"1-6"`` (inclusive): indices among the convolution and linear layers counted from the
    input, 0 being ``conv1_1`` (zennit#76). Returns ``(names, one)``, ``one`` when ``key``
    named a single layer (whose rule must fit it)."""
    affine = [n for n, layer in layers.items() if _is_a(layer, AFFINE)]
    if isinstance(key, str) and _RANGE.fullmatch(key):
        lo, hi = _RANGE.fullmatch(key).groups()
        key = int(lo) if hi is None else range(int(lo), int(hi) + 1)
    if isinstance(key, (int, range)) and not isinstance(key, bool):
        idx = [key] if isinstance(key, int) else list(key)
        bad = [i for i in idx if not 0 <= i < len(affine)]
        if bad or not idx:
            raise KeyError(f"layer index {bad[0] if bad else key!r} out of range: this net has "
                           f"{len(affine)} convolution and linear layers, 0 = {affine[0]!r} … "
                           f"{len(affine) - 1} = {affine[-1]!r}")
        return [affine[i] for i in idx], isinstance(key, int)
    if not isinstance(key, str):
        raise TypeError(f"a layer must be given by name, pattern or index, got {key!r}")
    if any(c in key for c in "*?["):
        names = [n for n in layers if fnmatch.fnmatchcase(n, key)]
        if not names:
            raise KeyError(f"layer pattern {key!r} matches no layer of this net: expected "
                           f"names among {', '.join(layers)}")
        return names, False
    if key not in layers:
        raise KeyError(f"rule given for {key!r}, which is not a layer of this net: "
                       f"expected one of {', '.join(layers)}")
    return [key], True


def _named(layers, names):
    """``{name: rule}`` from ``{layers: rule}`` (:func:`select`), later entries winning. A
    single layer must fit its rule; a pattern or range places it where it fits (at one layer
    at least)."""
    out = {}
    for key, rule in names.items():
        rule = get(rule)
        picked, one = select(layers, key)
        if one:
            out[picked[0]] = check_fits(rule, layers[picked[0]], picked[0])
            continue
        fitting = [n for n in picked if rule.fits_layer(layers[n])]
        if not fitting:
            check_fits(rule, layers[picked[0]], picked[0])       # raises, naming both
        out.update((n, rule) for n in fitting)
    return out


def parse_map(text):
    """``{layers: rule spec}`` from the command-line spelling
    ``"conv1_1=zbox,conv5_*=epsilon:0.25,13-15=epsilon:0"`` (:func:`select`, :func:`get`)."""
    out = {}
    for entry in (e.strip() for e in str(text).split(",")):
        if not entry:
            continue
        key, eq, spec = entry.partition("=")
        if not eq or not key.strip() or not spec.strip():
            raise InputError(f"rule map entry {entry!r}: expected LAYER=RULE, e.g. "
                             f"conv1_1=zbox, conv5_*=epsilon:0.25 or 1-6=gamma:0.25")
        get(spec.strip())                                       # an unknown rule fails here
        out[key.strip()] = spec.strip()
    if not out:
        raise InputError(f"rule map {text!r} names no layer")
    return out


# ---------------------------------------------------------------------------------------
# composites: zennit's registered ones, with its parameters
# ---------------------------------------------------------------------------------------

CONV = ("Conv2d", "ConvTranspose2d")


def _lrp_base(stabilizer):
    """What every zennit composite puts on activations and average pooling."""
    return [("ReLU", Pass()), ("AvgPool2d", Norm(stabilizer))]


def epsilon_gamma_box(low=None, high=None, epsilon=1e-6, gamma=0.25, stabilizer=1e-6,
                      zero_params=None, names=None):
    """zennit ``EpsilonGammaBox``: z^B on the first convolution, γ on the other
    convolutions, ε on linear layers."""
    return Composite(_lrp_base(stabilizer) + [
        (CONV, Gamma(gamma, stabilizer, zero_params)), ("Linear", Epsilon(epsilon, zero_params))],
        first=(CONV, ZBox(low, high, stabilizer, zero_params)), names=names,
        name="epsilon_gamma_box")


def epsilon_plus(epsilon=1e-6, stabilizer=1e-6, zero_params=None, names=None):
    """zennit ``EpsilonPlus``: z⁺ on convolutions, ε on linear layers."""
    return Composite(_lrp_base(stabilizer) + [
        (CONV, ZPlus(stabilizer, zero_params)), ("Linear", Epsilon(epsilon, zero_params))],
        names=names, name="epsilon_plus")


def epsilon_alpha2_beta1(epsilon=1e-6, stabilizer=1e-6, zero_params=None, names=None):
    """zennit ``EpsilonAlpha2Beta1``: α2β1 on convolutions, ε on linear layers."""
    return Composite(_lrp_base(stabilizer) + [
        (CONV, AlphaBeta(2, 1, stabilizer, zero_params)), ("Linear", Epsilon(epsilon, zero_params))],
        names=names, name="epsilon_alpha2_beta1")


def epsilon_plus_flat(epsilon=1e-6, stabilizer=1e-6, zero_params=None, names=None):
    """zennit ``EpsilonPlusFlat``: flat on the first convolution or linear layer, then as
    :func:`epsilon_plus`."""
    out = epsilon_plus(epsilon, stabilizer, zero_params, names)
    out.first, out.name = (AFFINE, Flat(stabilizer, zero_params)), "epsilon_plus_flat"
    return out


def epsilon_alpha2_beta1_flat(epsilon=1e-6, stabilizer=1e-6, zero_params=None, names=None):
    """zennit ``EpsilonAlpha2Beta1Flat``: flat on the first convolution or linear layer, then
    as :func:`epsilon_alpha2_beta1`."""
    out = epsilon_alpha2_beta1(epsilon, stabilizer, zero_params, names)
    out.first, out.name = (AFFINE, Flat(stabilizer, zero_params)), "epsilon_alpha2_beta1_flat"
    return out


COMPOSITES = {f.__name__: f for f in (epsilon_plus, epsilon_gamma_box, epsilon_alpha2_beta1,
                                      epsilon_plus_flat, epsilon_alpha2_beta1_flat)}


def composite(name, **options):
    """An LRP composite by zennit's registered name (hyphens allowed), with its options
    (``epsilon``, ``gamma``, ``stabilizer``, ``zero_params``, ``low``/``high`` for
    ``epsilon_gamma_box``) and ``names`` overriding it, e.g. Montavon et al. 2019's VGG16
    recipe: ``composite("epsilon_gamma_box", names={"conv4_*": "epsilon:0.25",
    "conv5_*": "epsilon:0.25", "fc*": "epsilon:0"})``."""
    key = _preset_name(name)
    if key not in COMPOSITES:
        raise InputError(f"unknown LRP composite {name!r}: expected one of {', '.join(COMPOSITES)}")
    try:
        return COMPOSITES[key](**options)
    except TypeError as e:
        raise InputError(f"composite {name!r}: {e}") from None


def uniform(rule, stabilizer=1e-6, names=None):
    """One LRP ``rule`` on every convolution and linear layer, with what zennit's composites
    put elsewhere (``Pass`` at ReLUs, ``Norm`` at average pooling; max pooling passes its
    gradient): zennit's ``LayerMapComposite`` with that rule."""
    rule = get(rule)
    return Composite(_lrp_base(stabilizer) + [(AFFINE, rule)], names=names,
                     name=None if names else f"{rule!r} everywhere")


def composite_name(name):
    """The registered name of the LRP composite ``name`` (hyphens allowed), or None."""
    name = _preset_name(name)
    return name if name in COMPOSITES else None


def _preset_name(name):
    name = ALIASES.get(name, name)
    return name.replace("-", "_") if name.replace("-", "_") in COMPOSITES else name


# the ReLU rules as presets (that rule at every ReLU, the gradient elsewhere), and zennit's
# LRP composites with their defaults
PRESETS = {name: Composite([("ReLU", name)], name=name) for name in ("deconvnet", "guided", "pass")}
PRESETS.update((name, f()) for name, f in COMPOSITES.items())


def is_relevance(rule):
    """Whether ``rule`` (a preset name, dict or composite) places LRP rules: its signal is
    relevance, seeded with the target's score."""
    if isinstance(rule, str):
        if _preset_name(rule) not in PRESETS:
            try:
                return isinstance(get(rule), LRPRule)
            except InputError:
                return False
        rule = PRESETS[_preset_name(rule)]
    if isinstance(rule, Composite):
        return any(isinstance(r, LRPRule) for r in rule.rules())
    if isinstance(rule, dict):
        return any(isinstance(get(r), LRPRule) for r in rule.values())
    return False


def assign(layers, rule, box=None):
    """``{layer name: Rule}`` for the ordered ``layers`` (name -> layer) from ``rule``: None or
    ``"backprop"`` (the gradient everywhere), a preset name (``"deconvnet"``, ``"guided"``,
    ``"pass"``: that rule at every ReLU; an LRP composite by zennit's name), a dict from
    layers (names, patterns, indices: :func:`select`) to rules, or a :class:`Composite`.
    Layers not in the result pass their gradient.

    ``box``: ``(low, high)`` or a function returning it, the input's bounds for a
    :class:`ZBox` placed without its own (a net gives its preprocessed pixel values 0 and
    255)."""
    out = _assign(layers, rule)
    for name, r in out.items():
        if isinstance(r, ZBox) and r.low is None:
            if box is None:
                raise ValueError(f"rule 'zbox' at {name!r} has no bounds: give ZBox(low, high)")
            low, high = box() if callable(box) else box
            out[name] = r.bind(low, high)
    return out


def _assign(layers, rule):
    if rule is None:
        return {}
    if isinstance(rule, str):
        name = _preset_name(rule)
        if name == "backprop":
            return {}
        if name in PRESETS:
            return PRESETS[name].assign(layers)
        get(rule)            # raises: unknown, or a rule that is no preset
        raise ValueError(f"rule {rule!r} is not a preset for a whole net: expected one of "
                         f"backprop, {', '.join(PRESETS)}; give it per layer in a dict, or "
                         f"nnviz.rules.uniform({rule!r}) for every convolution and linear layer")
    if isinstance(rule, dict):
        return _named(layers, rule)
    if isinstance(rule, Composite):
        return rule.assign(layers)
    raise TypeError(f"rule must be a preset name, a dict from layer names to rules or a "
                    f"nnviz.rules.Composite, got {rule!r}")
