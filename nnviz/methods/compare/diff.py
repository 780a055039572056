"""Differences between the reference's arrays and the framework's: :func:`diff` (the largest
absolute difference, relative to the reference's largest magnitude, where it is and both
values there) and the bound they are held to (:func:`tolerance`, :data:`DEFAULT_RTOL`)."""
import math
from dataclasses import dataclass

import numpy

from ... import backend

DEFAULT_RTOL = {"float64": 1e-10, "float32": 1e-4}
DTYPES = ("float64", "float32")


@dataclass
class Diff:
    """One comparison of two arrays: the largest absolute difference, that over the largest
    reference magnitude, where it is (an index into the array) and both values there."""

    max_abs: float
    rel: float
    where: tuple
    reference: float
    framework: float
    scale: float
    shape_ref: tuple = None
    shape_fw: tuple = None

    def ok(self, rtol, atol):
        if self.shape_ref != self.shape_fw:
            return False
        return bool(self.max_abs <= atol + rtol * self.scale)

    def to_dict(self):
        d = dict(max_abs=self.max_abs, relative=self.rel, where=list(self.where), reference=self.reference,
                 framework=self.framework)
        if self.shape_ref != self.shape_fw:
            d.update(shape_reference=list(self.shape_ref), shape_framework=list(self.shape_fw))
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def diff(ref, other):
    """:class:`Diff` of ``other`` against ``ref`` (float64 on the host)."""
    a = numpy.asarray(backend.to_numpy(ref), numpy.float64)
    b = numpy.asarray(backend.to_numpy(other), numpy.float64)
    if a.shape != b.shape:
        return Diff(math.inf, math.inf, (), math.nan, math.nan, 0.0, a.shape, b.shape)
    if a.size == 0:
        return Diff(0.0, 0.0, (), 0.0, 0.0, 0.0, a.shape, b.shape)
    d = numpy.abs(a - b)
    bad = ~numpy.isfinite(d)
    k = int(numpy.argmax(bad)) if bad.any() else int(numpy.argmax(d))
    where = tuple(int(i) for i in numpy.unravel_index(k, a.shape))
    scale = float(numpy.abs(a).max())
    m = math.inf if bad.any() else float(d.flat[k])
    rel = m / scale if scale > 0 else (0.0 if m == 0 else math.inf)
    return Diff(m, rel, where, float(a.flat[k]), float(b.flat[k]), scale, a.shape, b.shape)


def tolerance(rtol, atol, a):
    """The bound on a difference from ``a``: ``atol + rtol · max|a|``."""
    return atol + rtol * (float(numpy.abs(a).max()) if a.size else 0.0)
