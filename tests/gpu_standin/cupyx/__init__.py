"""Stand-in for ``cupyx`` (tests only): the scatter operations on stand-in arrays."""
import numpy as _numpy
from cupy._array import checked as _checked
from cupy._array import unwrap as _unwrap
from cupy._kernel import LAUNCHES as _LAUNCHES
from cupy._kernel import _log

_SIG = "(a, slices, value)"


def _scatter(name, np_ufunc):
    def op(a, slices, value):
        import cupy
        if not isinstance(a, cupy.ndarray):
            raise TypeError(f"{name}: a must be a cupy.ndarray, got {type(a)}")
        np_ufunc.at(a._a, _unwrap(slices, host_ok=True), _unwrap(value))
        _LAUNCHES.append(("cupyx", name))
        _log(f"cupyx.{name}")
    op.__name__ = name
    return _checked(name, _SIG, op)


scatter_add = _scatter("scatter_add", _numpy.add)
scatter_max = _scatter("scatter_max", _numpy.maximum)
scatter_min = _scatter("scatter_min", _numpy.minimum)
