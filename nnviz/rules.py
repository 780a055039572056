"""Backward rules: how one layer passes the backward signal down (design contract, "Backward
rules").

A rule is an object with ``backward(layer, dy) -> dx``: it reads what the layer kept from its
forward and the incoming signal ``dy`` shaped as the layer's output, and returns the signal at
the layer's input. With no rule, a layer passes its gradient (:class:`Gradient`). A rule that
also reads the layer's forward input says so (``needs_input = True``, every LRP rule) and is
called as ``backward(layer, dy, x)``: the net hands it the previous layer's output.

Rules know layers only by what the layers offer, never by their class: a ``family``
(``"convolution"``, ``"linear"``, ``"pooling"`` (average and sum pooling), ``"maxpool"``,
``"activation"``, ``"norm"``, ``"shape"``, ``"sum"``, ``"block"``), ``gradient(dy)``, and for
the LRP rules the layer's own map with given parameters, ``affine(x, weight, bias)``, and its
transpose ``affine_t(g, weight, x)`` (pooling layers offer their map with ``weight=None``). A
layer class that nnviz has never seen and that offers these gets every rule.

At an activation (a ReLU) with input ``x`` and incoming ``dy``:

- ``backprop`` (the gradient; Simonyan et al. 2013): ``dx = dy * (x > 0)``
- ``deconvnet`` (Zeiler & Fergus 2014, sec. 2.1): ``dx = dy * (dy > 0)``
- ``guided`` (Springenberg et al. 2015, sec. 3.4): ``dx = dy * (x > 0) * (dy > 0)``: the
  layer's own gradient of ``dy⁺`` (for a ReLU6, ``dy⁺`` where ``0 < x < 6``)
- ``pass`` (LRP's ReLU; zennit's ``Pass``): ``dx = dy``

At a max pooling, the gradient routes ``dy`` to the recorded switches (the deconvnet's
unpooling, and LRP's winner-takes-all); ``no_switches`` routes it to each window's first pixel
instead (Zeiler & Fergus 2014, fig. 5's "without switches"); ``proportional`` shares it among
the window's pixels in proportion to their values.

Layer-wise relevance propagation (Bach et al. 2015; Montavon et al. 2017, 2019): the rules of
zennit 0.5.1 (``zennit.rules``), with its names, parameters, defaults, stabilizer and
``zero_params``, each built as zennit builds it: one basic rule (:class:`LRPRule`, zennit's
``BasicHook``) evaluates the layer's map on modified inputs with modified parameters, maps the
incoming relevance to a gradient for each output (dividing by a stabilized output), takes the
transposed map of each, and reduces them to the relevance at the input.

Which rule acts where is said by :func:`assign`: a preset name (a ReLU rule at every
activation, or an LRP composite by zennit's registered name), a dict from layers to rules, or
a :class:`Composite` (rules by layer family or class, a rule for the first layer, names that
override both: zennit's ``LayerMapComposite``, ``SpecialFirstLayerMapComposite`` and
``NameMapComposite`` in one). Layers can be named by name, by glob pattern (``conv5_*``) or by
index among the convolution and linear layers (0 = ``conv1_1``; ``range(1, 7)``, ``"1-6"``).
"""
import fnmatch
import re

from .backend import get_array_module
from .errors import BadRule, InputError, UnknownLayer

FAMILIES = ("convolution", "linear", "pooling", "maxpool", "activation", "norm", "shape", "sum",
            "block")
AFFINE = ("convolution", "linear")          # the families the LRP rules act on


def family(layer):
    """A layer's family (what composites match on), or None for an object without one."""
    return getattr(layer, "family", None)


class Rule:
    """A backward rule. It fits the layers of ``families`` (empty: any family) that offer the
    attributes ``needs``; ``fits_text`` is how errors name them. ``backward(layer, dy)``
    returns the signal at the layer's input (``backward(layer, dy, x)`` with the layer's
    forward input ``x`` when ``needs_input``)."""

    name = "rule"
    families = ()
    needs = ()
    fits_text = "layer"
    needs_input = False

    def fits_layer(self, layer):
        return ((not self.families or family(layer) in self.families)
                and all(hasattr(layer, a) for a in self.needs))

    def backward(self, layer, dy, x=None):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class Gradient(Rule):
    """The layer's own gradient (``layer.gradient(dy)``): backprop."""

    name = "backprop"

    def backward(self, layer, dy, x=None):
        return layer.gradient(dy)


class Deconvnet(Rule):
    """Zeiler & Fergus 2014: an activation rectifies the backward signal, ``dy * (dy > 0)``,
    whatever its forward input."""

    name = "deconvnet"
    families = ("activation",)
    fits_text = "ReLU (or another activation)"

    def backward(self, layer, dy, x=None):
        return dy * (dy > 0)


class Guided(Rule):
    """Springenberg et al. 2015: the layer's gradient of the rectified signal,
    ``gradient(dy * (dy > 0))``: at a ReLU ``dy * (x > 0) * (dy > 0)``."""

    name = "guided"
    families = ("activation",)
    fits_text = "ReLU (or another activation)"

    def backward(self, layer, dy, x=None):
        return layer.gradient(dy * (dy > 0))


class Pass(Rule):
    """The signal passes unchanged, ``dx = dy`` (zennit's ``Pass``; LRP's ReLU). Fits any
    layer whose input and output have the same shape."""

    name = "pass"

    def backward(self, layer, dy, x=None):
        if tuple(layer.input_shape) != tuple(dy.shape):
            raise BadRule(f"rule 'pass' at layer {layer.name!r}: its input {layer.input_shape} "
                          f"and output {tuple(dy.shape)} differ in shape")
        return dy


class NoSwitches(Rule):
    """Max pooling without the switches: each window's signal goes to its first (top-left)
    pixel, clamped into the plane (Zeiler & Fergus 2014, fig. 5): the layer's own unpooling
    (``unpool``) to its windows' first pixels (``first_pixels``)."""

    name = "no_switches"
    families = ("maxpool",)
    needs = ("first_pixels", "unpool")
    fits_text = "MaxPool2d (a max pooling)"

    def backward(self, layer, dy, x=None):
        return layer.unpool(dy, layer.first_pixels())


# ---------------------------------------------------------------------------------------
# layer-wise relevance propagation: one basic rule, and zennit's rules as its instances
# ---------------------------------------------------------------------------------------

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
        raise BadRule(f"a stabilizer must be a number or a function of z, got {value!r}")


def _names(zero_params):
    if zero_params is None:
        return ()
    return (zero_params,) if isinstance(zero_params, str) else tuple(zero_params)


class ParamMod:
    """zennit's ``ParamMod``: the layer's ``(weight, bias)`` in a dtype, each through
    ``modifier(p, name)`` (None: as they are), or zeros where ``zero_params`` names it; a
    parameter the layer does not have (a pooling's) is None."""

    def __init__(self, modifier=None, zero_params=None):
        self.modifier, self.zero = modifier, _names(zero_params)

    def __call__(self, layer, dtype):
        out = []
        for name in ("weight", "bias"):
            p = getattr(layer, name, None)
            if p is not None:
                p = p.astype(dtype, copy=False)
                if name in self.zero:
                    p = get_array_module(p).zeros_like(p)
                elif self.modifier is not None:
                    p = self.modifier(p, name)
            out.append(p)
        return tuple(out)


def _no_bias(zero_params):
    return _names(zero_params) + ("bias",)


def _clamp(lo=None, hi=None):
    """``p`` clamped to ``[lo, hi]`` (zennit's ``ClampMod``)."""
    def mod(p, name):
        xp = get_array_module(p)
        return xp.maximum(p, lo) if hi is None else xp.minimum(p, hi)
    return mod


def _gamma(gamma, lo=None, hi=None):
    """``p + γ·clamp(p)`` (zennit's ``GammaMod``)."""
    clamp = _clamp(lo, hi)
    return lambda p, name: p + gamma * clamp(p, name)


def _same(x):
    return x


def _pos(x):
    return get_array_module(x).maximum(x, 0)


def _neg(x):
    return get_array_module(x).minimum(x, 0)


def _ones(x):
    return get_array_module(x).ones_like(x)


class LRPRule(Rule):
    """The basic LRP rule, zennit's ``BasicHook``: for each ``k``, the modified input
    ``x_k = inputs[k](x)`` and parameters ``(w_k, b_k) = params[k](layer)`` give the output
    ``z_k = layer.affine(x_k, w_k, b_k)``; ``mapper(dy, [z_k])`` turns the incoming relevance
    into a gradient ``g_k`` for each (None: none); ``layer.affine_t(g_k, w_k, x_k)`` takes it
    to the input, and ``reducer([x_k], [that])`` gives the relevance at the input. (zennit's
    output modifiers are the identity in every rule it ships, so there is no slot for them.)

    ``stabilizer`` (a number ε or a function, :class:`Stabilizer`) and ``zero_params``
    (``"weight"`` and/or ``"bias"``, zero in the modified layers) as zennit's."""

    families = AFFINE
    needs = ("affine", "affine_t")
    fits_text = "Conv2d, ConvTranspose2d or Linear (a convolution or linear layer)"
    needs_input = True
    args = ("stabilizer",)

    def __init__(self, inputs, params, mapper, reducer, stabilizer=1e-6, zero_params=None):
        self.inputs, self.params, self.mapper, self.reducer = inputs, params, mapper, reducer
        self.stabilizer = stabilizer
        self.stabilize = Stabilizer.ensure(stabilizer)
        self.zero_params = _names(zero_params)

    def backward(self, layer, dy, x=None):
        xs = [f(x) for f in self.inputs]
        ps = [m(layer, x.dtype) for m in self.params]
        zs = [layer.affine(xk, w, b) for xk, (w, b) in zip(xs, ps)]
        gs = self.mapper(dy, zs)
        back = [None if g is None else layer.affine_t(g, w, xk)
                for g, (w, _), xk in zip(gs, ps, xs)]
        return self.reducer(xs, back)

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
        super().__init__([_same], [ParamMod(None, zero_params)],
                         lambda dy, z: [dy / self.stabilize(z[0])],
                         lambda xs, gs: xs[0] * gs[0], epsilon, zero_params)
        self.epsilon = epsilon


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
        up, dn = _gamma(gamma, lo=0.0), _gamma(gamma, hi=0.0)       # W + γW⁺, W + γW⁻

        def mapper(dy, z):                  # z[4], the layer's own output, says which case
            raise_, lower = (z[4] > 0) * dy, (z[4] < 0) * dy
            return ([raise_ / self.stabilize(z[0] + z[1])] * 2
                    + [lower / self.stabilize(z[2] + z[3])] * 2 + [None])
        super().__init__([_pos, _neg, _pos, _neg, _same],
                         [ParamMod(up, zero_params), ParamMod(dn, _no_bias(zero_params)),
                          ParamMod(dn, zero_params), ParamMod(up, _no_bias(zero_params)),
                          ParamMod()],
                         mapper, lambda xs, gs: sum(x * g for x, g in zip(xs[:4], gs[:4])),
                         stabilizer, zero_params)
        self.gamma = gamma


class ZPlus(LRPRule):
    """LRP-z⁺ (Bach et al. 2015; Montavon et al. 2017; zennit ``ZPlus``; αβ with α=1, β=0):
    only the positive contributions, ``x⁺`` through ``W⁺`` (bias ``b⁺``) and ``x⁻`` through
    ``W⁻``: ``R_i = Σ_j (x_i⁺ w_ji⁺ + x_i⁻ w_ji⁻) R_j / z_j⁺``."""

    name = "zplus"

    def __init__(self, stabilizer=1e-6, zero_params=None):
        super().__init__([_pos, _neg],
                         [ParamMod(_clamp(lo=0.0), zero_params),
                          ParamMod(_clamp(hi=0.0), _no_bias(zero_params))],
                         lambda dy, z: [dy / self.stabilize(z[0] + z[1])] * 2,
                         lambda xs, gs: xs[0] * gs[0] + xs[1] * gs[1], stabilizer, zero_params)


class AlphaBeta(LRPRule):
    """LRP-αβ (Bach et al. 2015; zennit ``AlphaBeta``), α − β = 1: the positive contributions
    ``z⁺`` (``x⁺W⁺ + x⁻W⁻ + b⁺``) get α times their share, the negative ones ``z⁻``
    (``x⁺W⁻ + x⁻W⁺ + b⁻``) β times theirs, subtracted: ``R = α R⁺ − β R⁻``."""

    name = "alphabeta"
    args = ("alpha", "beta", "stabilizer")

    def __init__(self, alpha=2.0, beta=1.0, stabilizer=1e-6, zero_params=None):
        if alpha < 0 or beta < 0:
            raise BadRule(f"AlphaBeta: alpha={alpha} and beta={beta} must both be >= 0")
        if alpha - beta != 1:
            raise BadRule(f"AlphaBeta: alpha - beta must be 1, got {alpha} - {beta}")
        pos, neg = _clamp(lo=0.0), _clamp(hi=0.0)

        def mapper(dy, z):
            return [dy / self.stabilize(z[0] + z[1])] * 2 + [dy / self.stabilize(z[2] + z[3])] * 2

        def reducer(xs, gs):
            return (alpha * (xs[0] * gs[0] + xs[1] * gs[1])
                    - beta * (xs[2] * gs[2] + xs[3] * gs[3]))
        super().__init__([_pos, _neg, _pos, _neg],
                         [ParamMod(pos, zero_params), ParamMod(neg, _no_bias(zero_params)),
                          ParamMod(neg, zero_params), ParamMod(pos, _no_bias(zero_params))],
                         mapper, reducer, stabilizer, zero_params)
        self.alpha, self.beta = alpha, beta


class ZBox(LRPRule):
    """LRP-z^B for a box-bounded input ``low ≤ x ≤ high`` (Montavon et al. 2017; zennit
    ``ZBox``): ``z = Wx + b − (W⁺l + b⁺) − (W⁻h + b⁻)``,
    ``R = x·Wᵀs − l·W⁺ᵀs − h·W⁻ᵀs`` with ``s = R_out / z``. ``low`` and ``high`` broadcast
    to the input, e.g. ``(1, 3, 1, 1)``; None: the net fills in its preprocessed pixel values
    0 and 255 per channel (:func:`assign`'s ``box``)."""

    name = "zbox"

    def __init__(self, low=None, high=None, stabilizer=1e-6, zero_params=None):
        def bound(value):
            def at(x):
                if value is None:
                    raise BadRule("rule 'zbox' has no bounds: give ZBox(low, high), or run it "
                                  "in a Net (its pixel range)")
                xp = get_array_module(x)
                return xp.broadcast_to(xp.asarray(value, dtype=x.dtype), x.shape)
            return at
        super().__init__([_same, bound(low), bound(high)],
                         [ParamMod(None, zero_params), ParamMod(_clamp(lo=0.0), zero_params),
                          ParamMod(_clamp(hi=0.0), zero_params)],
                         lambda dy, z: [dy / self.stabilize(z[0] - z[1] - z[2])] * 3,
                         lambda xs, gs: xs[0] * gs[0] - xs[1] * gs[1] - xs[2] * gs[2],
                         stabilizer, zero_params)
        self.low, self.high = low, high

    def bind(self, low, high):
        """A copy with these bounds."""
        return ZBox(low, high, self.stabilizer, self.zero_params)

    def __repr__(self):
        bounds = "" if self.low is None else "low, high, "
        return f"ZBox({bounds}stabilizer={self.stabilizer!r})"


class Flat(LRPRule):
    """LRP-flat (Lapuschkin et al. 2019; zennit ``Flat``): every input of a unit's receptive
    field gets the same share, whatever its value or weight: all-ones input and weights, no
    bias, ``R_i = Σ_j R_j / stab(n_j)``, ``n_j`` the inputs unit j sees."""

    name = "flat"

    def __init__(self, stabilizer=1e-6, zero_params=None):
        super().__init__([_ones], [ParamMod(lambda p, name: _ones(p), _no_bias(zero_params))],
                         lambda dy, z: [dy / self.stabilize(z[0])], lambda xs, gs: gs[0],
                         stabilizer, zero_params)


class WSquare(LRPRule):
    """LRP-w² (Montavon et al. 2017; zennit ``WSquare``): shares by squared weights, whatever
    the input: ``R_i = Σ_j w_ji² R_j / stab(Σ_i' w_ji'² + b_j²)`` (zennit squares the bias
    too)."""

    name = "wsquare"

    def __init__(self, stabilizer=1e-6, zero_params=None):
        super().__init__([_ones], [ParamMod(lambda p, name: p * p, zero_params)],
                         lambda dy, z: [dy / self.stabilize(z[0])], lambda xs, gs: gs[0],
                         stabilizer, zero_params)


class Norm(LRPRule):
    """zennit's ``Norm`` (its rule for average and sum pooling and for residual sums): the
    layer's map as it is, each input's share of the output,
    ``R = x · fᵀ(R_out / stab(f(x)))``. On a max pooling (``f`` the max) it is Captum's
    ε-rule there: the winner gets ``R·x/stab(x)``."""

    name = "norm"
    families = ("pooling", "maxpool", "sum")
    fits_text = "AvgPool2d or MaxPool2d (a pooling or sum layer)"

    def __init__(self, stabilizer=1e-6):
        super().__init__([_same], [ParamMod()], lambda dy, z: [dy / self.stabilize(z[0])],
                         lambda xs, gs: xs[0] * gs[0], stabilizer)


class Proportional(Rule):
    """Max pooling's alternative to winner-takes-all: each window's relevance is shared among
    its pixels in proportion to their values, the window read as an average pooling
    (``layer.average()``, the layer's own) under :class:`Norm` (zennit's ``Norm`` on
    ``AvgPool2d`` with the same window): ``R_i = x_i Σ_w R_w / (k·stab(mean_w x))``, ``k``
    the window's size."""

    name = "proportional"
    families = ("maxpool",)
    needs = ("average",)
    fits_text = "MaxPool2d (a max pooling)"
    needs_input = True
    args = ("stabilizer",)

    def __init__(self, stabilizer=1e-6):
        self.stabilizer, self.norm = stabilizer, Norm(stabilizer)

    def backward(self, layer, dy, x=None):
        return self.norm.backward(layer.average(), dy, x)

    def __repr__(self):
        return f"Proportional(stabilizer={self.stabilizer!r})"


GRADIENT = Gradient()
RULES = {r.name: r for r in (GRADIENT, Deconvnet(), Guided(), Pass(), NoSwitches())}
# rules with parameters, by name: "epsilon:0.25" is Epsilon(0.25), "alphabeta:1:0" AlphaBeta(1, 0)
LRP_RULES = {r.name: r for r in (Epsilon, Gamma, ZPlus, AlphaBeta, ZBox, Flat, WSquare, Norm,
                                 Proportional)}
ALIASES = {"gradient": "backprop", "no-switches": "no_switches", "lrp0": "epsilon:0",
           "lrp-0": "epsilon:0", "alpha_beta": "alphabeta", "z_plus": "zplus", "z+": "zplus",
           "w2": "wsquare", "w_square": "wsquare", "z_box": "zbox"}


def is_lrp(rule):
    """Whether ``rule`` (an object) passes relevance: an LRP rule (it reads the input)."""
    return isinstance(rule, (LRPRule, Proportional))


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
                raise BadRule(f"rule {rule!r}: {e}") from None
        raise BadRule(f"unknown backward rule {rule!r}: expected one of "
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
    """``rule`` if it fits ``layer``; else a :class:`BadRule` naming the rule and the layer."""
    if not rule.fits_layer(layer):
        where = name or getattr(layer, "name", None) or "layer"
        kind = family(layer)
        raise BadRule(f"rule {rule.name!r} given for {where!r}, which is not a {rule.fits_text} "
                      f"({f'a {kind} layer' if kind else 'a layer of no family'})")
    return rule


def matches(layer, key):
    """Whether ``layer`` is of ``key``: a family name (:data:`FAMILIES`), a layer class, a
    function of the layer, or a tuple of these."""
    if isinstance(key, tuple):
        return any(matches(layer, k) for k in key)
    if isinstance(key, type):
        return isinstance(layer, key)
    if isinstance(key, str):
        if key not in FAMILIES:
            raise BadRule(f"unknown layer family {key!r}: expected one of {', '.join(FAMILIES)}, "
                          f"a layer class (e.g. nnviz.layers.ReLU) or a function of the layer")
        return family(layer) == key
    if callable(key):
        return bool(key(layer))
    raise BadRule(f"a composite matches layers by family, class or function, got {key!r}")


class Composite:
    """Rules by layer family or class, an optional rule for the first layer it fits, and layer
    names that override both.

    ``layer_map``: ``[(key, rule), ...]`` (or a dict), ``key`` a family (``"activation"``,
    ``"convolution"``, ``"linear"``, ``"pooling"``, ``"maxpool"``, ``"norm"``, ``"sum"``…), a
    layer class, a function of the layer, or a tuple of them (:func:`matches`); the first
    entry that a layer matches gives its rule. ``first``: a rule for the first layer (in
    forward order) that it fits, or ``(key, rule)`` for the first layer of that key, e.g. a
    box rule on ``conv1_1``. ``names``: ``{layers: rule}``, applied last, in order (see
    :func:`select` for names, patterns and indices). Rules may be objects or names. Layers
    that nothing names pass their gradient. ``name``: a label (the preset's name)."""

    def __init__(self, layer_map=(), first=None, names=None, name=None):
        items = layer_map.items() if isinstance(layer_map, dict) else layer_map
        self.layer_map = [(key, get(r)) for key, r in items]
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

    def assign(self, layers):
        """``{name: rule}`` for the ordered ``layers`` (name -> layer)."""
        out = {}
        for name, layer in layers.items():
            for key, rule in self.layer_map:
                if matches(layer, key):
                    out[name] = check_fits(rule, layer, name)
                    break
        if self.first is not None:
            key, rule = self.first
            for name, layer in layers.items():
                if matches(layer, key) if key is not None else rule.fits_layer(layer):
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
    affine = [n for n, layer in layers.items() if family(layer) in AFFINE]
    if isinstance(key, str) and _RANGE.fullmatch(key):
        lo, hi = _RANGE.fullmatch(key).groups()
        key = int(lo) if hi is None else range(int(lo), int(hi) + 1)
    if isinstance(key, (int, range)) and not isinstance(key, bool):
        idx = [key] if isinstance(key, int) else list(key)
        bad = [i for i in idx if not 0 <= i < len(affine)]
        if bad or not idx:
            raise UnknownLayer(f"layer index {bad[0] if bad else key!r} out of range: this net has "
                               f"{len(affine)} convolution and linear layers, 0 = {affine[0]!r} … "
                               f"{len(affine) - 1} = {affine[-1]!r}")
        return [affine[i] for i in idx], isinstance(key, int)
    if not isinstance(key, str):
        raise TypeError(f"a layer must be given by name, pattern or index, got {key!r}")
    if any(c in key for c in "*?["):
        names = [n for n in layers if fnmatch.fnmatchcase(n, key)]
        if not names:
            raise UnknownLayer(f"layer pattern {key!r} matches no layer of this net: expected "
                               f"names among {', '.join(layers)}")
        return names, False
    if key not in layers:
        raise UnknownLayer(f"rule given for {key!r}, which is not a layer of this net: "
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
            raise BadRule(f"rule map entry {entry!r}: expected LAYER=RULE, e.g. "
                          f"conv1_1=zbox, conv5_*=epsilon:0.25 or 1-6=gamma:0.25")
        get(spec.strip())                                       # an unknown rule fails here
        out[key.strip()] = spec.strip()
    if not out:
        raise BadRule(f"rule map {text!r} names no layer")
    return out


# ---------------------------------------------------------------------------------------
# composites: zennit's registered ones, with its parameters
# ---------------------------------------------------------------------------------------

def _lrp_base(stabilizer):
    """What every zennit composite puts elsewhere (its ``layer_map_base``): Pass at
    activations and normalizations, Norm at average pooling and residual sums."""
    return [("activation", Pass()), ("sum", Norm(stabilizer)), ("pooling", Norm(stabilizer)),
            ("norm", Pass())]


def epsilon_gamma_box(low=None, high=None, epsilon=1e-6, gamma=0.25, stabilizer=1e-6,
                      zero_params=None, names=None):
    """zennit ``EpsilonGammaBox``: z^B on the first convolution, γ on the other
    convolutions, ε on linear layers."""
    return Composite(_lrp_base(stabilizer) + [
        ("convolution", Gamma(gamma, stabilizer, zero_params)), ("linear", Epsilon(epsilon, zero_params))],
        first=("convolution", ZBox(low, high, stabilizer, zero_params)), names=names,
        name="epsilon_gamma_box")


def epsilon_plus(epsilon=1e-6, stabilizer=1e-6, zero_params=None, names=None):
    """zennit ``EpsilonPlus``: z⁺ on convolutions, ε on linear layers."""
    return Composite(_lrp_base(stabilizer) + [
        ("convolution", ZPlus(stabilizer, zero_params)), ("linear", Epsilon(epsilon, zero_params))],
        names=names, name="epsilon_plus")


def epsilon_alpha2_beta1(epsilon=1e-6, stabilizer=1e-6, zero_params=None, names=None):
    """zennit ``EpsilonAlpha2Beta1``: α2β1 on convolutions, ε on linear layers."""
    return Composite(_lrp_base(stabilizer) + [
        ("convolution", AlphaBeta(2, 1, stabilizer, zero_params)), ("linear", Epsilon(epsilon, zero_params))],
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
        raise BadRule(f"unknown LRP composite {name!r}: expected one of {', '.join(COMPOSITES)}")
    try:
        return COMPOSITES[key](**options)
    except TypeError as e:
        raise BadRule(f"composite {name!r}: {e}") from None


def uniform(rule, stabilizer=1e-6, names=None):
    """One LRP ``rule`` on every convolution and linear layer, with what zennit's composites
    put elsewhere (``Pass`` at activations, ``Norm`` at average pooling; max pooling passes
    its gradient): zennit's ``LayerMapComposite`` with that rule."""
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


# the ReLU rules as presets (that rule at every activation, the gradient elsewhere), and
# zennit's LRP composites with their defaults
PRESETS = {name: Composite([("activation", name)], name=name) for name in ("deconvnet", "guided", "pass")}
PRESETS.update((name, f()) for name, f in COMPOSITES.items())


def is_relevance(rule):
    """Whether ``rule`` (a preset name, dict or composite) places LRP rules: its signal is
    relevance, seeded with the target's score."""
    if isinstance(rule, str):
        if _preset_name(rule) not in PRESETS:
            try:
                return is_lrp(get(rule))
            except InputError:
                return False
        rule = PRESETS[_preset_name(rule)]
    if isinstance(rule, Composite):
        return any(is_lrp(r) for r in rule.rules())
    if isinstance(rule, dict):
        return any(is_lrp(get(r)) for r in rule.values())
    return False


def assign(layers, rule, box=None):
    """``{layer name: Rule}`` for the ordered ``layers`` (name -> layer) from ``rule``: None or
    ``"backprop"`` (the gradient everywhere), a preset name (``"deconvnet"``, ``"guided"``,
    ``"pass"``: that rule at every activation; an LRP composite by zennit's name), a dict from
    layers (names, patterns, indices: :func:`select`) to rules, or a :class:`Composite`.
    Layers not in the result pass their gradient.

    ``box``: ``(low, high)`` or a function returning it, the input's bounds for a
    :class:`ZBox` placed without its own (a net gives its preprocessed pixel values 0 and
    255)."""
    out = _assign(layers, rule)
    for name, r in out.items():
        if isinstance(r, ZBox) and r.low is None:
            if box is None:
                raise BadRule(f"rule 'zbox' at {name!r} has no bounds: give ZBox(low, high)")
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
        raise BadRule(f"rule {rule!r} is not a preset for a whole net: expected one of "
                      f"backprop, {', '.join(PRESETS)}; give it per layer in a dict, or "
                      f"nnviz.rules.uniform({rule!r}) for every convolution and linear layer")
    if isinstance(rule, dict):
        return _named(layers, rule)
    if isinstance(rule, Composite):
        return rule.assign(layers)
    raise TypeError(f"rule must be a preset name, a dict from layer names to rules or a "
                    f"nnviz.rules.Composite, got {rule!r}")
