"""A stand-in for CuPy, for the tests only (never installed, never imported by nnviz itself:
``tests/conftest.py`` puts this folder first on ``sys.path`` when the real CuPy sees no CUDA
device). Under it, :mod:`nnviz.backend` believes a GPU is present, and every line of nnviz's
GPU path runs:

- arrays are :class:`ndarray`, a wrapper around host memory that is not a NumPy subclass:
  NumPy-only calls on them fail as on a GPU (see ``_array.py``);
- the namespace holds only names that the real CuPy has, with CuPy's signatures
  (``tests/gpu_standin/cupy_api.json``, made by ``tools/cupy_api.py`` from the real package);
- :class:`ElementwiseKernel` compiles the kernel's own source (its ``in_params``,
  ``out_params`` and operation) as C++ with the system compiler (``_kernel.py``);
- ``cuda.runtime.getDeviceCount``, streams and the memory pool are stood in for
  (``cuda/``); ``CUPY_STANDIN_DEVICES`` (default 1) is the number of devices, of which
  ``CUDA_VISIBLE_DEVICES`` shows a subset, as with real devices.

What only a real GPU can show (speed, TF32, real memory use, races between threads) is not
shown here.
"""
import numpy as _numpy

from . import cuda  # noqa: F401
from ._array import _API, ndarray
from ._array import unwrap as _unwrap
from ._array import wrap as _wrap
from ._kernel import ElementwiseKernel  # noqa: F401
from ._ufuncs import populate as _populate
from ._ufuncs import ufunc  # noqa: F401

__version__ = _API["cupy_version"] + "+standin"


def is_available():
    return cuda.runtime.getDeviceCount() > 0


def get_array_module(*args):
    for a in args:
        if isinstance(a, ndarray):
            return _module()
    return _numpy


def _module():
    import sys
    return sys.modules[__name__]


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray):
        a = obj._a
        out = _numpy.array(a, dtype=dtype, copy=copy or None, order=order, ndmin=ndmin)
        return obj if out is a else _wrap(out)
    a = _numpy.array(_unwrap(obj, host_ok=True), dtype=dtype, copy=True, order=order, ndmin=ndmin)
    if a.dtype.kind == "O":
        raise ValueError("Unsupported dtype object")
    return _wrap(a)       # always a copy: device memory never aliases the host's


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    if isinstance(a, ndarray):
        if dtype is None or _numpy.dtype(dtype) == a.dtype:
            return a.copy() if copy else a
        return a.astype(dtype)
    return array(a, dtype=dtype, order=order or "K")


def asanyarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    return asarray(a, dtype, order, copy=copy, blocking=blocking)


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out)
    if out is not None:
        out[...] = a
        return out
    return _numpy.asarray(a, order=order)


def get_default_memory_pool():
    return cuda.memory._POOL


def get_default_pinned_memory_pool():
    return cuda.memory._PINNED_POOL


_populate(globals(), _API["cupy"], _numpy)


def _public_names():
    """The public names of this stand-in (for the tests that compare them with CuPy's)."""
    return sorted(n for n in globals() if not n.startswith("_"))
