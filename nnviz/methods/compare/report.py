"""The report of a comparison: one :class:`Row` per layer (its forward and backward
:class:`Diff`, its verdict and why) and the verdict over all (:func:`analyze`), as a table for
people and JSON for machines.

How the verdicts are reached: a forward beyond the bound makes its layer the first
difference, and every layer above it differs. Else, for every layer whose output signal
reaches the layer below differently, :func:`nnviz.methods.compare.local.check_layer` says how
the layer maps the framework's own incoming signal (as the rule does, a tie, another rule, a
difference); a row whose signal differs takes the worst of the layers above it. Summaries
name the ties (count, first window or kink), the mismatches (grouped by the rule they act as)
and the first difference, from the top."""
import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy

from ... import backend
from ... import rules as R
from ...errors import UnknownLayer
from .diff import Diff, diff
from .local import Local, check_layer, known_rules

VERDICTS = ("equal", "tie", "rule mismatch", "differs")


@dataclass
class Row:
    """One layer: its forward and backward :class:`Diff` (None where not compared) and its
    verdict with the reason."""

    name: str
    kind: str
    forward: Diff = None
    backward: Diff = None
    verdict: str = "equal"
    reason: str = ""

    def to_dict(self):
        return dict(layer=self.name, kind=self.kind, verdict=self.verdict, reason=self.reason,
                    forward=None if self.forward is None else self.forward.to_dict(),
                    backward=None if self.backward is None else self.backward.to_dict())


def _fmt(v, spec=".2e"):
    if v is None:
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return format(v, spec)


def _where(t):
    return "(" + ",".join(str(i) for i in t) + ")" if t else "-"


@dataclass
class Report:
    """The result of :func:`compare`: ``rows`` (one per layer, ``input`` first), the overall
    ``verdict``, its ``reasons`` (lines), ``ties``, ``mismatches``, ``first_difference``,
    ``info`` (what was compared); ``ok`` and ``exit_status`` (0 for equal or tie, else 1);
    :meth:`table` for people, :meth:`to_dict` / :meth:`to_json` for machines."""

    rows: list
    verdict: str
    reasons: list
    info: dict
    ties: list = field(default_factory=list)
    mismatches: list = field(default_factory=list)
    first_difference: dict = None

    @property
    def ok(self):
        return self.verdict in ("equal", "tie")

    @property
    def exit_status(self):
        return 0 if self.ok else 1

    def row(self, name):
        for r in self.rows:
            if r.name == name:
                return r
        raise UnknownLayer(f"no layer {name!r} in the report")

    def to_dict(self):
        return dict(schema="nnviz-compare/1", verdict=self.verdict, ok=self.ok, exit_status=self.exit_status,
                    reasons=self.reasons, info=self.info, ties=self.ties, mismatches=self.mismatches,
                    first_difference=self.first_difference, layers=[r.to_dict() for r in self.rows])

    def to_json(self, indent=1):
        return json.dumps(self.to_dict(), indent=indent)

    def table(self):
        i = self.info
        lines = [f"{i['framework']} ({i['preset']}) against nnviz {i['reference']}",
                 f"rule {i['rule_text']}, {i['dtype']}, target {i['target']}, input {tuple(i['input_shape'])}; "
                 f"equal when |d| <= {i['atol']:g} + {i['rtol']:g} x the layer's largest |value|"]
        head = (f"{'layer':<10} {'forward max|d|':>14} {'relative':>9} {'where':<16} "
                f"{'backward max|d|':>15} {'relative':>9} {'where':<16} verdict")
        lines += [head, "-" * len(head)]
        for r in self.rows:
            f, b = r.forward, r.backward
            lines.append(f"{r.name:<10} {_fmt(f and f.max_abs, '.3e'):>14} {_fmt(f and f.rel):>9} "
                         f"{_where(f.where) if f else '-':<16} {_fmt(b and b.max_abs, '.3e'):>15} "
                         f"{_fmt(b and b.rel):>9} {_where(b.where) if b else '-':<16} {r.verdict}")
        lines.append(f"verdict: {self.verdict}")
        lines += [f"  {line}" for line in self.reasons]
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def analyze(net, ref, fw, names, rules_map, rtol, atol, backward, prefer=None):
    """The :class:`Report` (without ``info``) of the reference's trace ``ref`` against the
    framework's ``fw`` (both ``name -> (activation, signal)``) over the layers ``names``;
    ``rules_map``: layer -> the Rule placed there; ``prefer``: layer -> the rule the
    framework's preset stands for (tried first when a layer does not follow ``rules_map``);
    ``backward``: whether the signals are compared."""
    a = _Analysis(net, ref, fw, names, rtol, atol, backward)
    if a.forward_differs():
        verdict = "differs"
    elif not backward:
        a.reasons.append(f"every layer's forward within {rtol:g} of its largest value (forward only)")
        verdict = "equal"
    else:
        a.locate(rules_map, prefer or {})
        seed_bad = a.backward_verdicts()
        verdict = a.summaries(seed_bad)
    return Report(a.rows, verdict, a.reasons, {}, a.ties, a.mismatches, a.first)


class _Analysis:
    """The state of :func:`analyze`: the rows, the local checks, and what the summaries say."""

    def __init__(self, net, ref, fw, names, rtol, atol, backward):
        self.net, self.ref, self.fw, self.names = net, ref, fw, names
        self.order = ["input"] + names
        self.rtol, self.atol = rtol, atol
        self.rows = []
        for name in self.order:
            kind = "input" if name == "input" else type(net.layers[name]).__name__
            a_ref, g_ref = ref[name]
            a_fw, g_fw = fw.get(name, (None, None))
            row = Row(name, kind, forward=diff(a_ref, a_fw) if a_fw is not None else None)
            if backward and g_ref is not None and g_fw is not None:     # None: the framework shows none
                row.backward = diff(g_ref, g_fw)
            self.rows.append(row)
        self.by = {r.name: r for r in self.rows}
        self.local = {}
        self.reasons, self.ties, self.mismatches, self.first = [], [], [], None

    def bad(self, d):
        """Whether the :class:`Diff` ``d`` was compared and is beyond the bound."""
        return d is not None and not d.ok(self.rtol, self.atol)

    def forward_differs(self):
        """The first layer whose forward is beyond the bound differs, and so does every layer
        above it and every backward below it beyond the bound; False if there is none."""
        bad = [r for r in self.rows if self.bad(r.forward)]
        if not bad:
            return False
        r0, f = bad[0], bad[0].forward
        self.first = dict(layer=r0.name, direction="forward", **f.to_dict())
        if f.shape_ref != f.shape_fw:
            what = f"shapes differ: nnviz {tuple(f.shape_ref)}, framework {tuple(f.shape_fw)}"
        else:
            what = (f"max|d| {f.max_abs:.3e} (relative {f.rel:.2e}) at {_where(f.where)}: nnviz {f.reference:.9g}, "
                    f"framework {f.framework:.9g}")
        self.reasons.append(f"first difference: {r0.name} (forward): {what}")
        start = self.order.index(r0.name)
        for k, r in enumerate(self.rows):
            if k >= start:
                r.verdict, r.reason = "differs", (f"forward {what}" if k == start else
                                                  f"follows the forward difference at {r0.name}")
            elif self.bad(r.backward):
                r.verdict, r.reason = "differs", f"the backward follows the forward difference at {r0.name}"
        return True

    def locate(self, rules_map, prefer):
        """The local check of every layer whose output signal reaches the layer below
        differently (:func:`check_layer` on the framework's own signals)."""
        known = None
        fw, ref = self.fw, self.ref
        for k in range(len(self.names) - 1, -1, -1):
            name, below = self.names[k], self.order[k]      # the row below holds this layer's dx
            if not self.bad(self.by[below].backward):
                continue
            dy, dx = fw[name][1], fw[below][1]
            if dy is None or dx is None:
                self.local[name] = Local("unknown", values=("the framework shows no signal above it to locate the "
                                                            "difference",))
                continue
            if numpy.shape(dy) != numpy.shape(ref[name][1]) or numpy.shape(dx) != numpy.shape(ref[below][0]):
                self.local[name] = Local("differs", values=("the framework's signal has another shape",))
                continue
            a_in = numpy.asarray(backend.to_numpy(ref[below][0]), dtype=numpy.asarray(dy).dtype)
            if known is None:
                known = known_rules(self.net, a_in.dtype)
            self.local[name] = check_layer(self.net.layers[name], rules_map.get(name, R.GRADIENT), a_in,
                                           numpy.asarray(dy), numpy.asarray(dx, numpy.float64), self.rtol,
                                           self.atol, [prefer.get(name, R.GRADIENT)] + known.get(name, []))

    def backward_verdicts(self):
        """Every row whose signal differs takes the worst of the layers above it (the seed's
        row: whether the framework starts from another signal). Returns whether the seed
        differs."""
        seed_row = self.by[self.names[-1]]
        seed_bad = self.bad(seed_row.backward)
        if [r.name for r in self.rows if r.backward is not None] == ["input"]:
            self.reasons.append("the framework shows its signal at the input only: the backward is compared there")
        if seed_bad:
            seed_row.verdict = "differs"
            seed_row.reason = "the framework starts from another signal at the target (its seed differs)"
        for k in range(len(self.order) - 2, -1, -1):
            if self.bad(self.rows[k].backward):
                self._row_verdict(k, seed_bad)
        return seed_bad

    def _row_verdict(self, k, seed_bad):
        r, names, local = self.rows[k], self.names, self.local
        culprits = [n for n in names[k:] if n in local and local[n].status != "ok"]
        statuses = {local[n].status for n in culprits}
        if seed_bad or "differs" in statuses:
            r.verdict = "differs"
            top = [n for n in reversed(names[k:]) if n in local and local[n].status == "differs"]
            r.reason = (f"follows the difference at {top[0]}" if top else "follows the seed's difference")
        elif "unknown" in statuses:
            r.verdict = "differs"
            r.reason = "differs; " + next(local[n].values[0] for n in culprits if local[n].status == "unknown")
        elif "mismatch" in statuses:
            r.verdict = "rule mismatch"
            r.reason = "; ".join(f"{n} acts as {local[n].acts_as!r}" for n in reversed(culprits)
                                 if local[n].status == "mismatch")
        elif "tie" in statuses:
            r.verdict = "tie"
            r.reason = "follows the tie at " + ", ".join(n for n in reversed(culprits) if local[n].status == "tie")
        else:
            r.verdict = "differs"
            r.reason = "the signal differs, yet every layer above maps it as the rule does"

    def summaries(self, seed_bad):
        """The ties, the mismatches and the first difference, from the top; the verdict."""
        for name in reversed(self.names):
            lc = self.local.get(name)
            if lc is None or lc.status == "ok":
                continue
            if lc.status == "tie":
                self._tie(name, lc)
            elif lc.status == "mismatch":
                self.mismatches.append(dict(layer=name, acts_as=lc.acts_as, expected=lc.expected))
            elif lc.status == "differs" and self.first is None:
                self._first_backward(name, lc)
        groups = OrderedDict()
        for m in self.mismatches:
            groups.setdefault((m["acts_as"], m["expected"]), []).append(m["layer"])
        for (acts, exp), layers in groups.items():
            self.reasons.insert(0, f"rule mismatch at {', '.join(layers)}: "
                                   f"{'it acts' if len(layers) == 1 else 'they act'} as {acts!r} where the rule "
                                   f"asks for {exp!r}")
        if seed_bad and self.first is None:
            d, target = self.by[self.names[-1]].backward, self.names[-1]
            self.first = dict(layer=target, direction="seed", **d.to_dict())
            self.reasons.insert(0, f"first difference: the seed at {target}: max|d| {d.max_abs:.3e} at "
                                   f"{_where(d.where)}: nnviz {d.reference:.9g}, framework {d.framework:.9g}")
        verdict = max((r.verdict for r in self.rows), key=VERDICTS.index)
        if verdict == "differs" and self.first is None:
            r0 = next(r for r in reversed(self.rows) if r.verdict == "differs")
            self.first = dict(layer=r0.name, direction="backward", **r0.backward.to_dict())
            where = "the signal at the input" if r0.name == "input" else f"the signal at {r0.name}'s output"
            self.reasons.append(f"first difference: {where}: {r0.reason}")
        if verdict == "equal":
            self.reasons.append(f"every layer within {self.rtol:g} of its largest value, forward and backward")
        return verdict

    def _tie(self, name, lc):
        if lc.tie == "pool":
            v1, v2 = lc.values
            text = (f"tie at {name}: {lc.count} pooling window(s) whose top two values differ by less than the "
                    f"tolerance (first: image {lc.where[0]}, channel {lc.where[1]}, window "
                    f"({lc.where[2]}, {lc.where[3]}): {v1:.9g} and {v2:.9g}); the switches may "
                    f"legitimately differ there")
        else:
            text = (f"tie at {name}: {lc.count} ReLU input(s) within the tolerance of zero (first at "
                    f"{_where(lc.where)}: {lc.values[0]:.3g}); the mask may legitimately differ there")
        self.ties.append(dict(layer=name, count=lc.count, first=list(lc.where), values=list(lc.values)))
        self.reasons.append(text)

    def _first_backward(self, name, lc):
        below = self.order[self.names.index(name)]
        d = lc.diff or self.by[below].backward
        self.first = dict(layer=name, direction="backward", **(d.to_dict() if d else {}))
        if d is not None and d.shape_ref == d.shape_fw:
            self.reasons.append(f"first difference: {name} (backward, the signal it passes down to {below}): "
                                f"max|d| {d.max_abs:.3e} (relative {d.rel:.2e}) at {_where(d.where)}: nnviz's "
                                f"{lc.expected!r} gives {d.reference:.9g}, the framework {d.framework:.9g}")
        else:
            self.reasons.append(f"first difference: {name} (backward): {' '.join(lc.values) or 'no signal'}")
