"""The local rule checks: how one layer maps the framework's incoming signal ``dy`` to its
outgoing one ``dx``. nnviz's rule is applied to the framework's ``dy`` on nnviz's forward state
of the layer (masks, switches, weights) and compared with the framework's ``dx``; what differs
only inside tied max-pooling windows or at ReLU kinks is a tie, what another rule reproduces
(the ReLU rules, unpooling without switches, the LRP rules, the rules the LRP composites place)
is a rule mismatch (:func:`check_layer`).

Every use of :mod:`nnviz.rules` at the level of one layer lives here (the candidate rules of
a layer's family, ``Rule.fits_layer``, ``layer.backward(dy, rule)``, the composite of Captum's
rules), so that a change of the rule API is made in one place."""
from dataclasses import dataclass

import numpy

from ... import backend
from ... import rules as R
from .diff import Diff, diff, tolerance


@dataclass
class Local:
    """How one layer maps the framework's incoming signal to its outgoing one: ``status``
    ``ok``, ``tie`` (``tie``: ``"pool"`` for max-pooling windows, ``"relu"`` for ReLU
    kinks), ``mismatch`` (``acts_as`` names the rule it follows), ``differs`` or
    ``unknown``."""

    status: str
    expected: str = ""
    acts_as: str = ""
    count: int = 0
    where: tuple = ()
    values: tuple = ()
    diff: Diff = None
    tie: str = ""


def captum_lrp_rule():
    """The rules of Captum's ``LRP`` with its defaults, as nnviz rules: ε = 1e-9 at
    convolutions and linear layers, Captum's ε at max pooling (nnviz's ``Norm``), the relevance
    passed through ReLUs."""
    return R.Composite([(R.AFFINE, R.Epsilon(1e-9)), ("maxpool", R.Norm(1e-9)),
                        ("activation", "pass")])


def rule_name(rule):
    """A rule's short name (its class name when it has none)."""
    return getattr(rule, "name", None) or type(rule).__name__


def apply(layer, rule, a_in, dy):
    """nnviz's ``rule`` at ``layer`` on the framework's ``dy``, with the layer's forward state
    from the reference's input ``a_in``."""
    keep = getattr(layer, "requires_grad", None)
    if keep is not None:
        layer.requires_grad = True           # keep the input (LRP rules read it)
    try:
        layer.forward(a_in)
        if keep is not None:
            layer.requires_grad = False      # the input's signal only
        return backend.to_numpy(layer.backward(dy, rule))
    finally:
        if keep is not None:
            layer.requires_grad = keep


def pool_ties(layer, a_in, bad, tol):
    """Whether the elements ``bad`` (N, C, H, W) all lie in max-pooling windows whose top two
    values differ by at most ``tol``; with the count of such windows holding a bad element,
    the first one's (n, c, i, j) and its two values."""
    n, c, h, w = a_in.shape
    kh, kw, (sy, sx), (ph, pw) = layer.kh, layer.kw, layer.stride, layer.padding
    a = numpy.pad(a_in, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-numpy.inf)
    b = numpy.pad(bad, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out_h, out_w = (h + 2 * ph - kh) // sy + 1, (w + 2 * pw - kw) // sx + 1
    win = numpy.lib.stride_tricks.sliding_window_view(a, (kh, kw), axis=(2, 3))[:, :, ::sy, ::sx]
    win = win[:, :, :out_h, :out_w].reshape(n, c, out_h, out_w, kh * kw)
    top = numpy.partition(win, kh * kw - 2, axis=-1)[..., -2:]          # (…, 2): second, first
    tied = (top[..., 1] - top[..., 0]) <= tol
    cover = numpy.zeros(a.shape, bool)
    hit = numpy.zeros((n, c, out_h, out_w), bool)
    for i in range(kh):
        for j in range(kw):
            sl = (slice(None), slice(None), slice(i, i + sy * out_h, sy), slice(j, j + sx * out_w, sx))
            cover[sl] |= tied
            hit |= b[sl]
    covered = not (bad & ~cover[:, :, ph:ph + h, pw:pw + w]).any()
    windows = hit & tied
    count = int(windows.sum())
    if not count:
        return covered, 0, (), ()
    first = tuple(int(v) for v in numpy.argwhere(windows)[0])
    return covered, count, first, (float(top[first][1]), float(top[first][0]))


def kink_ties(a_in, bad, tol):
    """Whether the elements ``bad`` all sit at ReLU inputs within ``tol`` of zero."""
    near = numpy.abs(a_in) <= tol
    covered = not (bad & ~near).any()
    hits = bad & near
    count = int(hits.sum())
    first = tuple(int(v) for v in numpy.argwhere(hits)[0]) if count else ()
    return covered, count, first, ((float(a_in[first]),) if count else ())


def tie_kind(layer, a_in):
    """``"pool"`` (max-pooling windows), ``"relu"`` (ReLU kinks) or ``""``: where ``layer``
    may legitimately route a signal differently."""
    kind = R.family(layer)
    if kind == "maxpool" and a_in.ndim == 4:
        return "pool"
    return "relu" if kind == "activation" else ""


def ties(layer, a_in, bad, tol):
    """:func:`pool_ties` or :func:`kink_ties` by the layer (``(False, 0, (), ())`` elsewhere)."""
    kind = tie_kind(layer, a_in)
    if kind == "pool":
        return pool_ties(layer, a_in, bad, tol)
    if kind == "relu":
        return kink_ties(a_in, bad, tol)
    return False, 0, (), ()


def candidates(layer, known=()):
    """Rules a framework may follow at ``layer`` instead of the one asked for: ``known`` first
    (the rule of the framework's preset, then those the known composites place at this
    layer), the ReLU rules, unpooling with or without switches, the LRP rules with zennit's
    defaults."""
    kind = R.family(layer)
    out = [R.GRADIENT]
    if kind == "activation":
        out = [R.get(n) for n in ("backprop", "guided", "deconvnet", "pass")]
    elif kind == "maxpool":
        out.append(R.get("no_switches"))
    elif kind in R.AFFINE:
        out += [R.Epsilon(), R.ZPlus(), R.Gamma(), R.AlphaBeta(), R.Flat(), R.WSquare()]
    return [r for r in known if r.fits_layer(layer)] + out


def known_rules(net, dtype):
    """``{layer: [rules]}`` that the LRP composites of :mod:`nnviz.rules` place in ``net``
    (zB with the net's pixel bounds, first-layer rules): candidates for a rule mismatch."""
    out = {}
    for name in R.COMPOSITES:
        try:
            placed = net.assign_rules(name, numpy.dtype(dtype))
        except (KeyError, ValueError, TypeError):
            continue
        for layer, rule in placed.items():
            out.setdefault(layer, []).append(rule)
    return out


def check_layer(layer, rule, a_in, dy, dx, rtol, atol, known=()):
    """:class:`Local`: does ``layer`` under ``rule`` map the framework's ``dy`` to its ``dx``?
    If not: a tie, another rule (a mismatch; ``known``: more candidates), or a difference."""
    dtype = numpy.dtype(dy.dtype)
    dev = lambda a: backend.to_device(numpy.ascontiguousarray(a, dtype), "gpu" if _on_gpu(layer) else "cpu")
    a_dev, dy_dev = dev(a_in), dev(dy)
    expected = rule_name(rule)

    def bad_of(r):
        if numpy.shape(r) != numpy.shape(dx):
            return numpy.ones(numpy.shape(dx), bool)
        return numpy.abs(r.astype(numpy.float64) - dx) > tolerance(rtol, atol, dx)

    try:
        r = apply(layer, rule, a_dev, dy_dev)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        return Local("differs", expected, diff=None, values=(str(e),))
    bad = bad_of(r)
    if not bad.any():
        return Local("ok", expected)
    tie_tol = tolerance(rtol, atol, a_in)
    covered, count, where, values = ties(layer, a_in, bad, tie_tol)
    if covered and count:
        return Local("tie", expected, count=count, where=where, values=values, tie=tie_kind(layer, a_in))
    for cand in candidates(layer, known):
        if cand is rule or repr(cand) == repr(rule):
            continue
        try:
            rc = apply(layer, cand, a_dev, dy_dev)
        except (ValueError, KeyError, TypeError, RuntimeError):
            continue
        bc = bad_of(rc)
        if not bc.any() or ties(layer, a_in, bc, tie_tol)[0]:
            same = rule_name(cand) == expected            # the same rule with other parameters
            return Local("mismatch", repr(rule) if same else expected,
                         acts_as=repr(cand) if same else rule_name(cand))
    return Local("differs", expected, diff=diff(r, dx))


def _on_gpu(layer):
    w = getattr(layer, "weight", None)
    return w is not None and not isinstance(w, numpy.ndarray)
