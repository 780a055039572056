"""The stand-in's functions: every public name of the real CuPy (``cupy_api.json``) that NumPy
also has, behind CuPy's signature, computing with NumPy on the host arrays inside the device
arrays; a host NumPy array among the arguments is refused, as CuPy refuses it."""
import sys

import numpy

from ._array import _API, checked, unwrap, wrap


def module():
    return sys.modules[__name__.rsplit(".", 1)[0]]


# functions that take host data by design (conversion, dtype queries)
HOST_OK = {"array", "asarray", "asanyarray", "asnumpy", "get_array_module", "result_type",
           "can_cast", "promote_types", "min_scalar_type", "common_type", "isscalar",
           "issubdtype", "finfo", "iinfo", "ndim", "shape", "size", "binary_repr", "base_repr",
           "iterable", "fromfunction", "fromiter", "frombuffer", "fromstring", "loadtxt",
           "genfromtxt", "fromfile", "mintypecode", "typename", "isdtype"}
# functions whose result stays on the host (Python or NumPy values, not device arrays)
HOST_RESULT = {"result_type", "can_cast", "promote_types", "min_scalar_type", "common_type",
               "isscalar", "issubdtype", "finfo", "iinfo", "ndim", "shape", "size",
               "binary_repr", "base_repr", "iterable", "mintypecode", "typename", "isdtype",
               "may_share_memory", "shares_memory"}


class ufunc:
    """A stand-in for ``cupy.ufunc``: NumPy's ufunc of the same name on the host arrays."""

    def __init__(self, name, np_ufunc, sig_text):
        self.name = self.__name__ = name
        self._np = np_ufunc
        self.nin, self.nout, self.nargs = np_ufunc.nin, np_ufunc.nout, np_ufunc.nargs
        self.types = list(np_ufunc.types)
        self._call = checked(name, sig_text, self._apply)
        self.__signature__ = self._call.__signature__
        methods = _API["cupy.ufunc"]
        for m in ("reduce", "accumulate", "reduceat", "outer", "at"):
            if m in methods:
                setattr(self, m, checked(f"{name}.{m}", methods[m]["signature"],
                                         self._method(m)))

    def __repr__(self):
        return f"<ufunc 'cupy_{self.name}'>"

    def __call__(self, *args, **kwargs):
        return self._call(*args, **kwargs)

    def _apply(self, *args, **kwargs):
        out = kwargs.get("out")
        if out is not None and not isinstance(out, (module().ndarray, tuple)):
            raise TypeError("Output arguments type must be cupy.ndarray")
        return wrap(self._np(*unwrap(args), **unwrap(kwargs)))

    def _method(self, m):
        def call(*args, **kwargs):
            return wrap(getattr(self._np, m)(*unwrap(args), **unwrap(kwargs)))
        call.__name__ = m
        return call


def delegate(name, np_func, sig_text):
    host_ok, host_result = name in HOST_OK, name in HOST_RESULT

    def call(*args, **kwargs):
        out = np_func(*unwrap(args, host_ok), **unwrap(kwargs, host_ok))
        return out if host_result else wrap(out)
    call.__name__ = call.__qualname__ = name
    call.__module__ = "cupy"
    return checked(name, sig_text, call)


def populate(namespace, api, np_module):
    """Fill ``namespace`` with every name of ``api`` (CuPy's) that NumPy has and that
    ``namespace`` does not define by hand."""
    for name, info in api.items():
        if name in namespace:
            continue
        kind = info["kind"]
        value = getattr(np_module, name, None)
        if value is None:
            continue
        if kind in ("numpy type", "constant"):
            namespace[name] = value
        elif kind == "ufunc" and isinstance(value, numpy.ufunc):
            namespace[name] = ufunc(name, value, info["signature"])
        elif kind == "function" and callable(value) and not isinstance(value, type):
            namespace[name] = delegate(name, value, info["signature"])
