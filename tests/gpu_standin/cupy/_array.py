"""The stand-in's array type: a wrapper around a host NumPy array, *not* a NumPy subclass, so
that a NumPy-only call on it fails as on a GPU array (``__array__`` raises CuPy's own
TypeError; NumPy's functions and ufuncs dispatch through ``__array_function__`` and
``__array_ufunc__`` exactly as CuPy's do: to the same-named function of this module, or
TypeError when there is none). Host arrays mixed into device operations are refused, as CuPy
refuses them. Views share memory as CuPy's do."""
import functools
import inspect
import json
import os
import re
import weakref

import numpy

_API = json.load(open(os.path.join(os.path.dirname(__file__), "..", "cupy_api.json")))

# dtypes CuPy supports (no object, strings, datetimes, long double)
_SUPPORTED_KINDS = set("biufc")
_live = {}        # id -> weakref of the host buffers that device arrays own (the pool's "used")


def _check_dtype(dtype):
    dtype = numpy.dtype(dtype)
    if dtype.kind not in _SUPPORTED_KINDS or dtype == numpy.longdouble and dtype.itemsize > 8:
        raise ValueError(f"Unsupported dtype {dtype}")
    return dtype


def _track(a):
    k = id(a)
    _live[k] = weakref.ref(a, lambda _, k=k: _live.pop(k, None))


def live_bytes():
    return sum(a.nbytes for a in (r() for r in list(_live.values())) if a is not None)


def wrap(a):
    """A device array around the host array ``a`` (no copy); host scalars from reductions
    become 0-d device arrays, as CuPy returns them."""
    if isinstance(a, numpy.generic):
        a = numpy.asarray(a)
    if isinstance(a, numpy.ndarray):
        _check_dtype(a.dtype)
        out = object.__new__(ndarray)
        object.__setattr__(out, "_a", a)
        if a.base is None:
            _track(a)
        return out
    if isinstance(a, tuple):
        return tuple(wrap(v) for v in a)
    if isinstance(a, list):
        return [wrap(v) for v in a]
    return a


def unsupported(x):
    return TypeError(f"Unsupported type {type(x)}")


def unwrap(x, host_ok=False):
    """The host array inside ``x`` (recursively in lists, tuples and dicts). A NumPy array is
    refused (CuPy never converts host arrays implicitly) unless ``host_ok``."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, numpy.ndarray) and not host_ok:
        raise unsupported(x)
    if isinstance(x, (list, tuple)):
        return type(x)(unwrap(v, host_ok) for v in x)
    if isinstance(x, dict):
        return {k: unwrap(v, host_ok) for k, v in x.items()}
    return x


def parse_signature(sig):
    """An inspect.Signature from CuPy's signature text (``(a, b=1, *, c=None)``)."""
    # Cython's typed parameters (``int device_id``, ``_ndarray_base out=None``): drop the type
    sig = re.sub(r"(?<=[(,])(\s*)(?:[A-Za-z_][\w.]*\s+)+(?=[A-Za-z_]\w*\s*(?:=|,|\)))", r"\1", sig)
    sig = "()" if sig == "(/)" else sig
    sig = re.sub(r"<class '([\w.]+)'>", r"\1", sig)      # dtype=<class 'float'>

    class Names(dict):       # defaults that name CuPy internals: a stand-in object each
        def __missing__(self, key):
            return getattr(__builtins__, key, None) if not isinstance(__builtins__, dict) \
                else __builtins__.get(key, f"<{key}>")
    ns = Names(numpy=numpy)
    try:
        exec(f"def f{sig}: pass", {"numpy": numpy}, ns)   # text from cupy_api.json only
    except SyntaxError:      # a documentation-only form (``x1, x2[, out1, out2], /``)
        return None
    return inspect.signature(ns["f"])


def checked(name, sig_text, func):
    """``func`` behind CuPy's signature of ``name``: a call that CuPy would refuse (an argument
    CuPy lacks, e.g. NumPy's ``like=``) raises TypeError here too."""
    sig = parse_signature(sig_text) if sig_text else None

    @functools.wraps(func)
    def call(*args, **kwargs):
        if sig is not None:
            try:
                sig.bind(*args, **kwargs)
            except TypeError as e:
                raise TypeError(f"{name}(): {e} (CuPy's signature: {name}{sig_text})") from None
        return func(*args, **kwargs)
    call.__signature__ = sig
    call.__wrapped__ = None
    del call.__wrapped__
    return call


def _binop(name, reflected=False, inplace=False):
    def op(self, other):
        from . import _ufuncs
        f = getattr(_ufuncs.module(), name)
        if isinstance(other, numpy.ndarray) and not (other.ndim == 0 and name in _COMPARISONS):
            raise unsupported(other)
        if isinstance(other, numpy.ndarray):
            other = other.item()
        if inplace:
            return f(self, other, out=self)
        return f(other, self) if reflected else f(self, other)
    return op


_COMPARISONS = {"greater", "greater_equal", "less", "less_equal", "equal", "not_equal"}


class ndarray:
    """A stand-in for ``cupy.ndarray``: the data live in a host NumPy array, but nothing
    converts it to NumPy implicitly."""

    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        object.__setattr__(self, "_a", numpy.empty(shape, _check_dtype(dtype), order=order))
        _track(self._a)

    # -- attributes --------------------------------------------------------------------------
    @property
    def shape(self):
        return self._a.shape

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    @property
    def strides(self):
        return self._a.strides

    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: wrap(self._a.T))
    mT = property(lambda self: wrap(numpy.swapaxes(self._a, -1, -2)))
    base = property(lambda self: None if self._a.base is None else wrap(self._a.base))

    @property
    def real(self):
        return wrap(self._a.real)

    @property
    def imag(self):
        return wrap(self._a.imag)

    @property
    def device(self):
        from .cuda import Device
        return Device(0)

    # -- host transfer: only explicit ----------------------------------------------------------
    def __array__(self, dtype=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def get(self, stream=None, order="C", out=None, blocking=True):
        if out is not None:
            if not isinstance(out, numpy.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            out[...] = self._a
            return out
        return numpy.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        if not isinstance(arr, numpy.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray: {type(arr)}")
        if arr.shape != self._a.shape or arr.dtype != self._a.dtype:
            raise ValueError("Shape and dtype mismatch")
        self._a[...] = arr

    def tolist(self):
        return self._a.tolist()

    def item(self):
        return self._a.item()

    def __int__(self):
        return int(self._a)

    def __float__(self):
        return float(self._a)

    def __complex__(self):
        return complex(self._a)

    def __bool__(self):
        return bool(self._a)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    def __repr__(self):
        return repr(self._a).replace("array(", "array(", 1)

    def __str__(self):
        return str(self._a)

    def __format__(self, spec):
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    def __copy__(self):
        return wrap(self._a.copy())

    def __deepcopy__(self, memo):
        return wrap(self._a.copy())

    def __reduce__(self):
        from . import array
        return array, (self.get(),)

    # -- indexing --------------------------------------------------------------------------------
    def __getitem__(self, key):
        return wrap(self._a[unwrap(key, host_ok=True)])

    def __setitem__(self, key, value):
        if isinstance(value, numpy.ndarray) and value.ndim:
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        if isinstance(value, (list, tuple)):
            raise unsupported(value)
        self._a[unwrap(key, host_ok=True)] = unwrap(value, host_ok=True)

    # -- NumPy interoperability, as CuPy's ndarray -------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from . import _ufuncs
        mod = _ufuncs.module()
        if "out" in kwargs:
            out = kwargs["out"]
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            kwargs["out"] = out[0]
        if method not in ("__call__", "outer", "at", "reduce", "accumulate", "reduceat"):
            return NotImplemented
        func = getattr(mod, ufunc.__name__, None)
        if func is None:
            return NotImplemented
        if method != "__call__":
            func = getattr(func, method, None)
            if func is None:
                return NotImplemented
        if ufunc.__name__ in _COMPARISONS:
            inputs = tuple(x.item() if isinstance(x, numpy.ndarray) and x.ndim == 0 else x
                           for x in inputs)
        return func(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from . import _ufuncs
        try:
            module = functools.reduce(getattr, func.__module__.split(".")[1:], _ufuncs.module())
            cupy_func = getattr(module, func.__name__)
        except AttributeError:
            return NotImplemented
        if cupy_func is func:
            return NotImplemented
        for t in types:
            if not issubclass(t, (ndarray, numpy.ndarray)):
                return NotImplemented
        return cupy_func(*args, **kwargs)

    # -- methods with CuPy's names and signatures, a few by hand -----------------------------------
    def scatter_add(self, slices, value):
        numpy.add.at(self._a, unwrap(slices, host_ok=True), unwrap(value))

    def scatter_max(self, slices, value):
        numpy.maximum.at(self._a, unwrap(slices, host_ok=True), unwrap(value))

    def scatter_min(self, slices, value):
        numpy.minimum.at(self._a, unwrap(slices, host_ok=True), unwrap(value))

    def fill(self, value):
        if isinstance(value, numpy.ndarray) and value.ndim:
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        self._a.fill(unwrap(value, host_ok=True))

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        dtype = _check_dtype(dtype)
        if not copy and dtype == self._a.dtype:
            return self
        return wrap(self._a.astype(dtype, order=order, casting=casting or "unsafe", copy=True))

    def view(self, dtype=None, type=None):
        if type is not None:
            raise NotImplementedError("cupy.ndarray.view: type is not supported")
        return wrap(self._a.view() if dtype is None else self._a.view(dtype))


_HAND = set(vars(ndarray))
_METHOD_SIGS = {n: v["signature"] for n, v in _API["cupy.ndarray"].items()}


def _method(name, sig_text):
    sig = parse_signature(sig_text) if sig_text else None

    def method(self, *args, **kwargs):
        if sig is not None:
            try:
                sig.bind(*args, **kwargs)
            except TypeError as e:
                raise TypeError(f"ndarray.{name}(): {e} (CuPy's signature: "
                                f"ndarray.{name}{sig_text})") from None
        return wrap(getattr(self._a, name)(*unwrap(args), **unwrap(kwargs)))
    method.__name__ = method.__qualname__ = name
    if sig is not None:
        method.__signature__ = sig.replace(parameters=[inspect.Parameter(
            "self", inspect.Parameter.POSITIONAL_ONLY)] + list(sig.parameters.values()))
    return method


for _name, _info in _API["cupy.ndarray"].items():
    if _name.startswith("_") or _name in _HAND or _info["kind"] != "function":
        continue
    if callable(getattr(numpy.ndarray, _name, None)):
        setattr(ndarray, _name, _method(_name, _info["signature"]))

_OPS = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "true_divide",
        "floordiv": "floor_divide", "mod": "remainder", "pow": "power", "matmul": "matmul",
        "and": "bitwise_and", "or": "bitwise_or", "xor": "bitwise_xor",
        "lshift": "left_shift", "rshift": "right_shift"}
for _op, _uf in _OPS.items():
    setattr(ndarray, f"__{_op}__", _binop(_uf))
    setattr(ndarray, f"__r{_op}__", _binop(_uf, reflected=True))
    if _op != "matmul":          # CuPy's ndarray has no __imatmul__
        setattr(ndarray, f"__i{_op}__", _binop(_uf, inplace=True))
for _op, _uf in {"lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal",
                 "eq": "equal", "ne": "not_equal"}.items():
    setattr(ndarray, f"__{_op}__", _binop(_uf))
ndarray.__divmod__ = lambda self, other: (self // other, self % other)
ndarray.__rdivmod__ = lambda self, other: (other // self, other % self)


def _unary(uf):
    def op(self):
        from . import _ufuncs
        return getattr(_ufuncs.module(), uf)(self)
    return op


ndarray.__neg__ = _unary("negative")
ndarray.__pos__ = _unary("positive")
ndarray.__abs__ = _unary("absolute")
ndarray.__invert__ = _unary("invert")
