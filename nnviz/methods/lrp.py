"""Layer-wise relevance propagation: how much each input pixel contributes to a score.

- Bach, Binder, Montavon, Klauschen, Müller, Samek 2015, "On pixel-wise explanations for
  non-linear classifier decisions by layer-wise relevance propagation" (PLoS ONE): LRP-0,
  LRP-ε and LRP-αβ;
- Montavon, Lapuschkin, Binder, Samek, Müller 2017, "Explaining nonlinear classification
  decisions with deep Taylor decomposition" (Pattern Recognition): z⁺, z^B and w²;
- Montavon, Binder, Lapuschkin, Samek, Müller 2019, "Layer-wise relevance propagation: an
  overview" (LNCS 11700): LRP-γ and the composite recipe (z^B at the input, γ below, ε in the
  middle, LRP-0 at the top).

The score's value goes down the net layer by layer; each layer shares the relevance arriving
at its output among its inputs by its rule (:mod:`nnviz.rules`: ``Epsilon``, ``Gamma``,
``ZPlus``, ``AlphaBeta``, ``ZBox``, ``Flat``, ``WSquare`` on convolutions and linear layers,
``Pass`` at ReLUs, ``Norm`` at average pooling, winner-takes-all or ``Proportional`` at max
pooling), defined exactly as zennit 0.5.1 defines them. A composite places them: zennit's
registered ones by name (``epsilon_gamma_box`` …), one rule everywhere
(:func:`nnviz.rules.uniform`), or rules by layer name, pattern or index.

Arrays: ``x: (N, C, H, W)`` is a preprocessed batch (``net.preprocess``); relevance comes back
shaped as ``x``, on the net's device. Targets as for saliency (:mod:`nnviz.targets`).
"""
from collections import OrderedDict, namedtuple

from .. import rules as R
from ..backend import to_numpy
from ..errors import BadOption
from .attribution import as_batch, target_activation

SEEDS = ("score", "one")

Step = namedtuple("Step", "relevance rule")
Step.__doc__ = ("What arrives at one layer's output going down: the relevance (shaped as the "
                "output) and the rule that layer then applies (None at the input).")


def lrp(net, x, target, rule="epsilon_gamma_box", seed="score", record=None):
    """Relevance of each input entry for ``target``'s score under the LRP ``rule``.

    ``rule``: an LRP composite by zennit's name (``"epsilon_gamma_box"`` (default),
    ``"epsilon_plus"``, ``"epsilon_alpha2_beta1"``, ``"epsilon_plus_flat"``,
    ``"epsilon_alpha2_beta1_flat"``; hyphens allowed), a :class:`nnviz.rules.Composite`
    (e.g. :func:`nnviz.rules.composite` with options and per-layer overrides, or
    :func:`nnviz.rules.uniform`), or a dict from layers (names, patterns such as
    ``"conv5_*"``, indices among the convolution and linear layers, 0 = ``conv1_1``) to
    rules, as :meth:`nnviz.models.Net.backward` takes it. z^B rules without bounds get the
    net's preprocessed pixel values 0 and 255 per channel.

    ``seed``: ``"score"`` starts from the target's value (the relevance then sums to about
    the score; exactly, with zero biases and ε = 0), ``"one"`` from 1 (zennit's
    ``attr_output`` as a one-hot).

    ``record``: a dict that receives, in backward order, for every layer passed
    ``name -> Step(relevance, rule)``: the relevance arriving at the layer's output and the
    rule that layer applies (:class:`nnviz.rules.Gradient` where none is placed), and
    ``"input" -> Step(relevance at the input, None)``; :func:`totals` sums them per image.

    ``x: (N, C, H, W)`` -> relevance shaped as ``x``.
    """
    x = as_batch(net, x)
    t, act = target_activation(net, x, target)
    dy = start_signal(t, act, seed)
    placed = net.assign_rules(rule, act.dtype)
    seen = OrderedDict() if record is not None else None
    relevance = net.backward(dy, start=t.layer, rule=placed, record=seen)
    if record is not None:
        for name, r in seen.items():
            record[name] = Step(r, placed.get(name, R.GRADIENT))
        record["input"] = Step(relevance, None)
    return relevance


def start_signal(target, act, seed="score"):
    """The signal relevance starts from at the target's layer (activation ``act``): the
    target's one-hot seed times the activation (``seed="score"``: the relevance then sums to
    about the score) or not (``"one"``: zennit's ``attr_output`` as a one-hot, the gradient's
    seed). The one seed rule of LRP, here and in :func:`nnviz.methods.compare.compare`."""
    if seed not in SEEDS:
        raise BadOption(f"seed {seed!r}: expected one of {', '.join(SEEDS)}")
    dy = target.seed(act)
    return dy * act if seed == "score" else dy


def totals(record):
    """``[(layer, rule, sums)]`` from a ``record`` of :func:`lrp`: the relevance summed over
    each image at every layer passed (``sums`` a host array (N,)), to see where relevance is
    lost or created on the way down."""
    rows = []
    for name, step in record.items():
        s = to_numpy(step.relevance.reshape(step.relevance.shape[0], -1).sum(axis=1))
        rows.append((name, step.rule, s))
    return rows
