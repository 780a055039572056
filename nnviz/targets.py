"""Targets: what to explain or maximize (design contract, "Methods: targets").

- a class of ``fc8``: an int, or ``("fc8", index)``; its pre-softmax score
- a channel of a layer: ``(layer, channel)``; its activation summed over space
- one unit: ``(layer, channel, (i, j))``

:func:`parse` turns any of these (or the command-line spelling ``conv5_3:12``,
``conv5_3:12:3,4``, ``fc8:281``, ``281``) into a :class:`Target`, checked against a net.
:class:`PerImage` holds one target per image of a batch (all on one layer), as the default
targets are chosen (:func:`nnviz.methods.attribution.default_target`); :func:`zero_images`
finds the images on which a target is exactly zero (nothing to attribute).
"""
from dataclasses import dataclass

from .backend import get_array_module
from .errors import BadTarget, UnknownLayer
from .vgg import TOP_LAYERS, missing_top


@dataclass(frozen=True)
class Target:
    layer: str
    channel: int
    position: tuple = None      # (i, j) for one unit; None for the whole channel or a class

    @property
    def is_class(self):
        return self.layer == "fc8"

    def __str__(self):
        s = f"{self.layer}:{self.channel}"
        return s if self.position is None else f"{s}:{self.position[0]},{self.position[1]}"

    def check(self, net, shape=None):
        """Raise a clear error if the target does not exist in ``net`` (for an activation of
        ``shape`` (N, C, H, W) or (N, C) when given)."""
        if self.layer in TOP_LAYERS and self.layer not in net.layers:
            raise missing_top(f"target {self}", net.weights_info.get("source"))
        if self.layer not in net.layers:
            raise UnknownLayer(f"unknown layer {self.layer!r} for {net.arch}: expected one of "
                             f"{', '.join(net.layers)}")
        if shape is not None:
            channels = shape[1]
            if not 0 <= self.channel < channels:
                raise BadTarget(f"channel {self.channel} out of range for layer {self.layer!r}, "
                                 f"which has {channels} channels")
            if self.position is not None:
                if len(shape) != 4:
                    raise BadTarget(f"layer {self.layer!r} has no spatial positions; "
                                     f"give a channel only")
                i, j = self.position
                if not (0 <= i < shape[2] and 0 <= j < shape[3]):
                    raise BadTarget(f"position {(i, j)} lies outside layer {self.layer!r}'s "
                                     f"{shape[2]}×{shape[3]} map")
        return self

    def score(self, act):
        """The target's score per image, from the layer's activation ``act``: (N,)."""
        if act.ndim == 2:
            return act[:, self.channel]
        if self.position is None:
            return act[:, self.channel].sum(axis=(1, 2))
        i, j = self.position
        return act[:, self.channel, i, j]

    def seed(self, act):
        """The gradient of ``score(act).sum()`` with respect to ``act``: a one-hot mask."""
        xp = get_array_module(act)
        dy = xp.zeros_like(act)
        if act.ndim == 2:
            dy[:, self.channel] = 1
        elif self.position is None:
            dy[:, self.channel] = 1
        else:
            dy[:, self.channel, self.position[0], self.position[1]] = 1
        return dy


class PerImage(tuple):
    """One :class:`Target` per image of a batch, all on one layer: image ``i`` gets the
    gradient of ``self[i]``'s score. A batch of ``k·n`` rows (integrated gradients' path points
    of ``n`` images) takes the target of image ``r % n`` at row ``r``. ``reason`` says how they
    were chosen."""

    def __new__(cls, items, reason=""):
        items = tuple(parse(t) for t in items)
        if not items:
            raise BadTarget("PerImage needs at least one target")
        if len({t.layer for t in items}) != 1:
            raise BadTarget(f"per-image targets must share one layer, got "
                             f"{', '.join(str(t) for t in items)}")
        self = super().__new__(cls, items)
        self.reason = reason
        return self

    @property
    def layer(self):
        return self[0].layer

    @property
    def is_class(self):
        return self[0].is_class

    @property
    def channel(self):
        """The channels, one per image: an int array (N,)."""
        import numpy
        return numpy.array([t.channel for t in self], dtype=numpy.int64)

    @property
    def position(self):
        """The positions (N, 2) (an int array) when every target is one unit, else None."""
        import numpy
        if any(t.position is None for t in self):
            if any(t.position is not None for t in self):
                raise BadTarget("per-image targets: give every image a unit or none")
            return None
        return numpy.array([t.position for t in self], dtype=numpy.int64)

    def __str__(self):
        return str(self[0]) if len(set(self)) == 1 else "+".join(str(t) for t in self)

    def check(self, net, shape=None):
        for t in self:
            t.check(net, shape)
        return self

    def _rows(self, act):
        if act.shape[0] % len(self):
            raise BadTarget(f"{len(self)} per-image targets for a batch of {act.shape[0]}")
        return [self[r % len(self)] for r in range(act.shape[0])]

    def score(self, act):
        xp = get_array_module(act)
        return xp.stack([t.score(act[r:r + 1])[0] for r, t in enumerate(self._rows(act))])

    def seed(self, act):
        xp = get_array_module(act)
        dy = xp.zeros_like(act)
        for r, t in enumerate(self._rows(act)):
            dy[r:r + 1] = t.seed(act[r:r + 1])
        return dy


def zero_images(target, act):
    """The indices of the images (rows of the layer's activation ``act``) on which
    ``target``'s score is exactly 0 and, for a channel or a unit of a rectified layer
    (every value >= 0), so is every value it sums: nothing there to attribute."""
    xp = get_array_module(act)
    rows = target._rows(act) if isinstance(target, PerImage) else [target] * act.shape[0]
    out = []
    for r, t in enumerate(rows):
        a = act[r, t.channel] if act.ndim == 4 and t.position is None else None
        if a is not None:
            zero = not bool(xp.any(a != 0))
        else:
            zero = float(t.score(act[r:r + 1])[0]) == 0
        if zero:
            out.append(r)
    return out


def strongest_channels(act, n=5):
    """The ``n`` channels with the largest summed activation of one image's ``act`` (C, H, W)
    or (C,): a list of ints, strongest first."""
    import numpy

    from .backend import to_numpy
    a = to_numpy(act)
    s = a.reshape(a.shape[0], -1).sum(axis=1)
    return [int(c) for c in numpy.argsort(-s, kind="stable")[:n]]


def parse(spec, net=None):
    """A :class:`Target` from an int (a class of fc8), a tuple or a string spelling."""
    if isinstance(spec, (Target, PerImage)):
        t = spec
    elif isinstance(spec, (int,)) and not isinstance(spec, bool):
        t = Target("fc8", int(spec))
    elif isinstance(spec, (tuple, list)):
        if len(spec) == 2:
            t = Target(str(spec[0]), int(spec[1]))
        elif len(spec) == 3:
            pos = None if spec[2] is None else (int(spec[2][0]), int(spec[2][1]))
            t = Target(str(spec[0]), int(spec[1]), pos)
        else:
            raise BadTarget(f"target {spec!r}: expected (layer, channel) or (layer, channel, (i, j))")
    elif isinstance(spec, str):
        parts = spec.strip().split(":")
        try:
            if len(parts) == 1:
                t = Target("fc8", int(parts[0]))
            elif len(parts) == 2:
                t = Target(parts[0], int(parts[1]))
            elif len(parts) == 3:
                i, j = (int(v) for v in parts[2].split(","))
                t = Target(parts[0], int(parts[1]), (i, j))
            else:
                raise ValueError
        except ValueError:
            raise BadTarget(f"target {spec!r}: expected CLASS, LAYER:CHANNEL or "
                             f"LAYER:CHANNEL:I,J (e.g. 281, conv5_3:12, conv5_3:12:3,4)") from None
    else:
        raise BadTarget(f"target {spec!r}: expected an int, a tuple or a string")
    if net is not None:
        t.check(net)
    return t
