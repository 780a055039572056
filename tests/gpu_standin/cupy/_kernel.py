"""``ElementwiseKernel`` of the stand-in: the kernel's own source compiled as C++ on the host.

CuPy turns ``in_params``, ``out_params`` and the operation into a CUDA kernel (NVRTC) whose
body runs once per index ``i`` (``ptrdiff_t``, CuPy's ``CUPY_FOR``). Here the same text goes
into a C++ function with a serial loop over ``i``, built with the system C++ compiler (``$CXX``
or ``g++``), loaded with ctypes and cached (in the process, and on disk under
``$CUPY_CACHE_DIR`` or a per-user temporary folder). As in CuPy's generated code:

- type placeholders (``T``) are ``typedef``-ed to the C type of the arrays bound to them;
- ``raw`` arrays are indexed flat (``x[k]``, C order); here every such access is bounds-checked,
  and an access outside the array fails the call with the kernel's name and the index
  (on a GPU it would read garbage or fault);
- other arrays are references to element ``i`` (``const T &x = _raw_x[i]`` for inputs,
  ``T &y = _raw_y[i]`` for outputs), broadcast to the loop's shape;
- scalars are passed by value, cast to their parameter's type as CuPy casts them (an int
  that does not fit ``int32`` raises, as NumPy's cast does).

A kernel in which each ``i`` writes outputs that no other ``i`` writes (gathers; the unpooling
scatter with distinct switches) computes the same serially as on a GPU. Whether the writes
*are* distinct is for the caller (nnviz keeps overlapping scatters on ``cupyx.scatter_add``);
``LAUNCHES`` records each launch (``("kernel", name)``), and the stand-in's ``cupyx`` its
scatters, so a test can see which path ran.
"""
import contextlib
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading

import numpy

from ._array import _check_dtype

LAUNCHES = []                 # ("kernel", name) per launch; tests clear and read it
_ONLY = []                    # the loop indices of only_indices(), innermost last
_C_TYPES = {"bool": "bool", "int8": "signed char", "uint8": "unsigned char", "int16": "short",
            "uint16": "unsigned short", "int32": "int", "uint32": "unsigned int",
            "int64": "long long", "uint64": "unsigned long long", "float32": "float",
            "float64": "double", "complex64": None, "complex128": None, "float16": None}
_lock = threading.Lock()
_libs = {}


def compiler():
    """The C++ compiler the stand-in uses, or None."""
    return shutil.which(os.environ.get("CXX", "g++"))


def _cache_dir():
    d = os.environ.get("CUPY_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), f"nnviz-cupy-standin-{os.getuid()}")
    os.makedirs(d, exist_ok=True)
    return d


class _Param:
    def __init__(self, text, is_output):
        words = text.split()
        self.raw = words[0] == "raw"
        if self.raw:
            words = words[1:]
        if len(words) != 2:
            raise ValueError(f"Invalid parameter: {text!r}")
        self.type, self.name = words
        self.is_output = is_output
        if not re.match(r"^[A-Za-z_]\w*$", self.name):
            raise ValueError(f"Invalid parameter name: {self.name!r}")

    @property
    def placeholder(self):
        return self.type not in _C_TYPES


def _parse(params, is_output):
    return [_Param(p.strip(), is_output) for p in params.split(",") if p.strip()]


class ElementwiseKernel:
    """``cupy.ElementwiseKernel(in_params, out_params, operation, name='kernel', ...)``."""

    def __init__(self, in_params, out_params, operation, name="kernel", reduce_dims=True,
                 preamble="", no_return=False, return_tuple=False, **kwargs):
        self.in_params, self.out_params = in_params, out_params
        self.operation, self.name, self.preamble = operation, name, preamble
        self.reduce_dims, self.no_return, self.return_tuple = reduce_dims, no_return, return_tuple
        self.kwargs = kwargs
        self.params = tuple(_parse(in_params, False) + _parse(out_params, True))
        self.nin = len(_parse(in_params, False))
        self.nout = len(self.params) - self.nin
        self.nargs = len(self.params)

    # -- code ------------------------------------------------------------------------------
    def _source(self, types, arrays):
        """C++ source for the placeholder binding ``types`` ({"T": "float32", ...}), with the
        non-raw parameters named in ``arrays`` bound to arrays (the others to scalars)."""
        lines = ["#include <cmath>", "#include <cstddef>", "#include <cstdint>",
                 "#include <algorithm>",
                 "using std::isnan; using std::isinf; using std::isfinite; using std::min; "
                 "using std::max; using std::abs;",
                 "template <typename V> struct StandinRaw {",
                 "  V* p; ptrdiff_t n; ptrdiff_t* bad;",
                 "  V& operator[](ptrdiff_t k) const {",
                 "    if (k < 0 || k >= n) { if (bad[0] == 0) { bad[0] = 1; bad[1] = k; }",
                 "      static V dummy; return dummy; }",
                 "    return p[k]; }",
                 "};",
                 "struct StandinIndexer { ptrdiff_t n; ptrdiff_t size() const { return n; } };"]
        for ph, t in sorted(types.items()):
            lines.append(f"typedef {_C_TYPES[t]} {ph};")
        lines.append(self.preamble)
        lines.append('extern "C" void standin_kernel(ptrdiff_t _n, const ptrdiff_t* _only, '
                     "ptrdiff_t _n_only, void** _args, const ptrdiff_t* _sizes, ptrdiff_t* _bad) {")
        body = []
        for k, p in enumerate(self.params):
            ctype = self._ctype(p, types)
            if p.raw:
                lines.append(f"  StandinRaw<{ctype}> {p.name}{{({ctype}*)_args[{k}], _sizes[{k}], _bad}};")
            elif p.name in arrays:
                lines.append(f"  {ctype}* _raw_{p.name} = ({ctype}*)_args[{k}];")
                const = "" if p.is_output else "const "
                body.append(f"    {const}{ctype} &{p.name} = _raw_{p.name}[i];")
            else:
                lines.append(f"  {ctype} {p.name} = *({ctype}*)_args[{k}];")
        lines.append("  StandinIndexer _ind{_n}; (void)_ind;")
        lines.append("  for (ptrdiff_t _k = 0; _k < (_only ? _n_only : _n); ++_k) {")
        lines.append("    ptrdiff_t i = _only ? _only[_k] : _k;")
        lines.extend(body)
        lines.append("    {\n" + self.operation + "\n    }")
        lines.append("  }")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _ctype(self, p, types):
        t = types.get(p.type, p.type)
        c = _C_TYPES.get(t)
        if c is None:
            raise TypeError(f"{self.name}: the stand-in does not compile dtype {t}")
        return c

    def _library(self, types, arrays):
        # by content, not by the kernel object: equal kernels share a library
        key = (self.in_params, self.out_params, self.operation, self.preamble,
               tuple(sorted(types.items())), arrays)
        with _lock:
            lib = _libs.get(key)
            if lib is not None:
                return lib
            source = self._source(types, arrays)
            cxx = compiler()
            if cxx is None:
                raise RuntimeError("the CuPy stand-in needs a C++ compiler (g++ or $CXX)")
            digest = hashlib.sha256((cxx + "\0" + source).encode()).hexdigest()[:24]
            path = os.path.join(_cache_dir(), f"{self.name}-{digest}.so")
            if not os.path.exists(path):
                src = path[:-3] + f".{os.getpid()}.cpp"
                tmp = path + f".{os.getpid()}.tmp"
                with open(src, "w") as f:
                    f.write(source)
                proc = subprocess.run([cxx, "-O2", "-std=c++17", "-shared", "-fPIC", "-w",
                                       "-o", tmp, src], capture_output=True, text=True)
                os.unlink(src)
                if proc.returncode:
                    raise RuntimeError(f"kernel {self.name!r} does not compile:\n{proc.stderr}\n"
                                       f"--- source ---\n{source}")
                os.replace(tmp, path)
            fn = ctypes.CDLL(path).standin_kernel
            fn.restype = None
            fn.argtypes = [ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_void_p,
                           ctypes.c_void_p, ctypes.c_void_p]
            _libs[key] = fn
            return fn

    # -- call --------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        return self._launch(args, kwargs, only=_ONLY[-1] if _ONLY else None)

    def _launch(self, args, kwargs, only):
        import cupy
        size = kwargs.pop("size", None)
        kwargs.pop("block_size", None)
        kwargs.pop("stream", None)
        if kwargs:
            raise TypeError(f"Wrong arguments {kwargs}")
        if len(args) not in (self.nin, self.nargs):
            raise TypeError(f"Wrong number of arguments for {self.name!r}")
        args = list(args) + [None] * (self.nargs - len(args))
        types = {}
        for p, a in zip(self.params, args):
            if isinstance(a, numpy.ndarray):
                raise TypeError(f"Unsupported type {type(a)}")
            if isinstance(a, cupy.ndarray) and p.placeholder:
                if types.setdefault(p.type, a.dtype.name) != a.dtype.name:
                    raise TypeError(f"Type is mismatched. {p.name} {a.dtype} {types[p.type]}")
        for p, a in zip(self.params, args):     # placeholders bound only by scalars
            if p.placeholder and p.type not in types and a is not None:
                types[p.type] = numpy.asarray(a).dtype.name
        # the loop's shape: the broadcast of the non-raw arrays
        shapes = [a.shape for p, a in zip(self.params, args)
                  if not p.raw and isinstance(a, cupy.ndarray)]
        if shapes:
            shape = numpy.broadcast_shapes(*shapes)
        elif size is not None:
            shape = (int(size),)
        else:
            raise ValueError("Loop size is undecided")
        if shapes and size is not None:
            raise ValueError("Specified 'size' can be used only if all of the ndarray are 'raw'.")
        n = int(numpy.prod(shape))
        ptrs, sizes, keep, back, outs = [], [], [], [], []
        for k, (p, a) in enumerate(zip(self.params, args)):
            dtype = _check_dtype(types.get(p.type, p.type))
            if p.is_output and a is None:
                if p.raw:
                    raise ValueError(f"Output array size is Undecided ({p.name})")
                a = args[k] = cupy.ndarray(shape, dtype)
            if p.is_output:
                outs.append(a)
            if isinstance(a, cupy.ndarray):
                h = a._a
                if p.raw:
                    if h.dtype != dtype:
                        raise TypeError(f"{self.name}: raw {p.name} is {h.dtype}, expected {dtype}")
                    buf = h if h.flags.c_contiguous else numpy.ascontiguousarray(h)
                elif p.is_output:
                    if h.shape != shape:
                        raise ValueError("Out shape is mismatched")
                    if h.dtype != dtype:
                        raise TypeError(f"{self.name}: output {p.name} is {h.dtype}, expected {dtype}")
                    buf = h if h.flags.c_contiguous else numpy.empty(shape, dtype)
                else:
                    if not numpy.can_cast(h.dtype, dtype, "same_kind"):
                        raise TypeError(f"{self.name}: cannot cast {p.name} from {h.dtype} to {dtype}")
                    buf = numpy.ascontiguousarray(numpy.broadcast_to(h.astype(dtype, copy=False),
                                                                     shape))
                if buf is not h and (p.raw or p.is_output):     # written through: copy back
                    back.append((h, buf))
                keep.append(buf)
                ptrs.append(buf.ctypes.data)
                sizes.append(buf.size)
            else:
                if not p.is_output and a is None:
                    raise TypeError(f"{self.name}: missing argument {p.name}")
                if isinstance(a, (numpy.generic, int, float, bool)):
                    v = numpy.array(dtype.type(a) if not isinstance(a, numpy.generic)
                                    else a.astype(dtype), dtype=dtype)
                else:
                    raise TypeError(f"Unsupported type {type(a)}")
                keep.append(v)
                ptrs.append(v.ctypes.data)
                sizes.append(1)
        arrays = frozenset(p.name for p, a in zip(self.params, args)
                           if not p.raw and isinstance(a, cupy.ndarray))
        fn = self._library(types, arrays)
        arg_arr = (ctypes.c_void_p * len(ptrs))(*ptrs)
        size_arr = numpy.array(sizes, dtype=numpy.intp)
        bad = numpy.zeros(2, dtype=numpy.intp)
        if only is not None:
            only = numpy.ascontiguousarray(only, dtype=numpy.intp)
            fn(n, only.ctypes.data, only.size, ctypes.cast(arg_arr, ctypes.c_void_p),
               size_arr.ctypes.data, bad.ctypes.data)
        else:
            fn(n, None, 0, ctypes.cast(arg_arr, ctypes.c_void_p), size_arr.ctypes.data,
               bad.ctypes.data)
        LAUNCHES.append(("kernel", self.name))
        _log(self.name)
        if bad[0]:
            raise IndexError(f"kernel {self.name!r}: a raw array was indexed out of bounds "
                             f"at {int(bad[1])} (an illegal memory access on a GPU)")
        for h, buf in back:
            if h.flags.writeable:
                h[...] = buf.reshape(h.shape)
        if self.no_return:
            return None
        if len(outs) == 1 and not self.return_tuple:
            return outs[0]
        return tuple(outs)


_logged = set()


def _log(name):
    """With ``CUPY_STANDIN_LAUNCH_LOG`` set (tools/coverage_gpu.py sets it), append each kernel's
    name to that file the first time this process launches it."""
    path = os.environ.get("CUPY_STANDIN_LAUNCH_LOG")
    if path and name not in _logged:
        _logged.add(name)
        with open(path, "a") as f:
            f.write(name + "\n")


@contextlib.contextmanager
def only_indices(indices):
    """Within the block, every kernel launch runs its body only for the loop indices
    ``indices`` (a test hook: index arithmetic at sizes past 2**31, on arrays whose untouched
    pages cost no memory, without computing every element)."""
    _ONLY.append(numpy.asarray(indices, dtype=numpy.intp))
    try:
        yield
    finally:
        _ONLY.pop()
