"""Stand-in for ``cupyx`` (tests only): the scatter operations on stand-in arrays."""
import numpy
from cupy._array import checked, unwrap
from cupy._kernel import LAUNCHES

_SIG = "(a, slices, value)"


def _scatter(name, np_ufunc):
    def op(a, slices, value):
        import cupy
        if not isinstance(a, cupy.ndarray):
            raise TypeError(f"{name}: a must be a cupy.ndarray, got {type(a)}")
        np_ufunc.at(a._a, unwrap(slices, host_ok=True), unwrap(value))
        LAUNCHES.append(("cupyx", name))
    op.__name__ = name
    return checked(name, _SIG, op)


scatter_add = _scatter("scatter_add", numpy.add)
scatter_max = _scatter("scatter_max", numpy.maximum)
scatter_min = _scatter("scatter_min", numpy.minimum)
