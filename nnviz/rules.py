"""Backward rules: how one layer passes the backward signal down (design contract, "Backward
rules").

A rule is an object with ``backward(layer, dy) -> dx``: it reads what the layer kept from its
forward (a ReLU its mask ``positive = x > 0``, a max pooling its ``switches``, a convolution
its ``input``) and the incoming signal ``dy`` shaped as the layer's output, and returns the
signal at the layer's input. With no rule, a layer passes its gradient (:class:`Gradient`).

At a ReLU with input ``x`` and incoming ``dy``:

- ``backprop`` (the gradient; Simonyan et al. 2013): ``dx = dy * (x > 0)``
- ``deconvnet`` (Zeiler & Fergus 2014, sec. 2.1): ``dx = dy * (dy > 0)``
- ``guided`` (Springenberg et al. 2015, sec. 3.4): ``dx = dy * (x > 0) * (dy > 0)``
- ``pass`` (LRP's ReLU; zennit's ``Pass``): ``dx = dy``

At a max pooling, the gradient routes ``dy`` to the recorded switches (the deconvnet's
unpooling); ``no_switches`` routes it to each window's first pixel instead (Zeiler & Fergus
2014, fig. 5's "without switches").

Which rule acts where is said by :func:`assign`: a preset name (that rule at every ReLU), a
dict from layer names to rules, or a :class:`Composite` (rules by layer type, a rule for the
first layer, names that override both: zennit's ``LayerMapComposite``,
``SpecialFirstLayerMapComposite`` and ``NameMapComposite`` in one). This module knows layers
only by their class names, so that it sits below :mod:`nnviz.layers`.
"""
from . import functional as F


def _kind(layer):
    return type(layer).__name__


def _is_a(layer, kind):
    """Whether ``layer`` is of class ``kind`` (a class or a class name), subclasses included."""
    if isinstance(kind, type):
        return isinstance(layer, kind)
    return any(c.__name__ == kind for c in type(layer).__mro__)


class Rule:
    """A backward rule. ``fits``: the names of the layer classes it applies to (empty: any
    layer); ``backward(layer, dy)`` returns the signal at the layer's input."""

    name = "rule"
    fits = ()

    def fits_layer(self, layer):
        return not self.fits or any(_is_a(layer, k) for k in self.fits)

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


GRADIENT = Gradient()
RULES = {r.name: r for r in (GRADIENT, Deconvnet(), Guided(), Pass(), NoSwitches())}
ALIASES = {"gradient": "backprop", "no-switches": "no_switches"}


def get(rule):
    """A :class:`Rule` from a rule object, a rule name or None (the gradient)."""
    if rule is None:
        return GRADIENT
    if isinstance(rule, Rule):
        return rule
    if isinstance(rule, str):
        name = ALIASES.get(rule, rule)
        if name in RULES:
            return RULES[name]
        raise ValueError(f"unknown backward rule {rule!r}: expected one of "
                         f"{', '.join(list(RULES) + list(PRESETS))}")
    raise TypeError(f"a rule must be a rule name or a nnviz.rules.Rule, got {rule!r}")


def for_layer(rule, layer):
    """The rule that acts at ``layer`` when a single layer is asked for ``rule``: a preset name
    (``"guided"``…) acts as it does in a net (its rule where it fits, the gradient
    elsewhere); any other rule must fit the layer."""
    if isinstance(rule, str) and ALIASES.get(rule, rule) in PRESETS:
        return PRESETS[ALIASES.get(rule, rule)].assign({layer.name or "layer": layer}).get(
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

    ``layer_map``: ``[(kind, rule), ...]`` (or a dict), ``kind`` a layer class or its name;
    the first entry that a layer is an instance of gives its rule. ``first``: a rule for the
    first layer (in forward order) that it fits, e.g. a box rule on ``conv1_1``. ``names``:
    ``{layer name: rule}``, applied last. Rules may be objects or names. Layers that nothing
    names pass their gradient."""

    def __init__(self, layer_map=(), first=None, names=None):
        items = layer_map.items() if isinstance(layer_map, dict) else layer_map
        self.layer_map = [(kind, get(r)) for kind, r in items]
        self.first = None if first is None else get(first)
        self.names = {n: get(r) for n, r in (names or {}).items()}

    def __repr__(self):
        return (f"Composite(layer_map={self.layer_map!r}, first={self.first!r}, "
                f"names={self.names!r})")

    def assign(self, layers):
        """``{name: rule}`` for the ordered ``layers`` (name -> layer)."""
        out = {}
        for name, layer in layers.items():
            for kind, rule in self.layer_map:
                if _is_a(layer, kind):
                    out[name] = check_fits(rule, layer, name)
                    break
        if self.first is not None:
            for name, layer in layers.items():
                if self.first.fits_layer(layer):
                    out[name] = self.first
                    break
        out.update(_named(layers, self.names))
        return out


def _named(layers, names):
    out = {}
    for name, rule in names.items():
        if name not in layers:
            raise KeyError(f"rule given for {name!r}, which is not a layer of this net: "
                           f"expected one of {', '.join(layers)}")
        out[name] = check_fits(get(rule), layers[name], name)
    return out


# the ReLU rules as presets: that rule at every ReLU, the gradient elsewhere
PRESETS = {name: Composite([("ReLU", name)]) for name in ("deconvnet", "guided", "pass")}


def assign(layers, rule):
    """``{layer name: Rule}`` for the ordered ``layers`` (name -> layer) from ``rule``: None or
    ``"backprop"`` (the gradient everywhere), a preset name (``"deconvnet"``, ``"guided"``,
    ``"pass"``: that rule at every ReLU), a dict from layer names to rules, or a
    :class:`Composite`. Layers not in the result pass their gradient."""
    if rule is None:
        return {}
    if isinstance(rule, str):
        name = ALIASES.get(rule, rule)
        if name == "backprop":
            return {}
        if name in PRESETS:
            return PRESETS[name].assign(layers)
        get(rule)            # raises: unknown, or a rule that is no preset
        raise ValueError(f"rule {rule!r} is not a preset for a whole net: expected one of "
                         f"backprop, {', '.join(PRESETS)}; give it per layer in a dict")
    if isinstance(rule, dict):
        return _named(layers, rule)
    if isinstance(rule, Composite):
        return rule.assign(layers)
    raise TypeError(f"rule must be a preset name, a dict from layer names to rules or a "
                    f"nnviz.rules.Composite, got {rule!r}")
