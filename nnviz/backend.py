"""One code path for NumPy and CuPy.

CuPy is imported here and nowhere else. Everything in nnviz takes its array module from
the array itself (``xp = get_array_module(x)``), so the same code runs on the host and on
the GPU. Without CuPy, or without a CUDA device, everything runs on NumPy.

Devices are ``"cpu"``, ``"gpu"`` and ``"auto"`` (the GPU when CuPy sees one); the
environment variable ``NNVIZ_DEVICE`` sets the default.
"""
import contextlib
import functools
import os
import threading

import numpy

try:  # CuPy is optional
    import cupy
    import cupyx
except Exception:  # ImportError, or a CuPy build that fails to load its CUDA libraries
    cupy = None
    cupyx = None

DEVICES = ("cpu", "gpu", "auto")


def _set_compute_type(enabled):
    """Tell CuPy whether float32 GEMMs may use TF32 (a private API of CuPy's). Returns False,
    changing nothing, where this ``cupy`` has no such knob (an older CuPy, or the tests' stand-in
    for CuPy, which computes on the host)."""
    try:
        from cupy._core import _routines_linalg as linalg
    except ImportError:
        return False
    linalg.set_compute_type(numpy.float32, linalg.COMPUTE_TYPE_TF32 if enabled
                            else linalg.COMPUTE_TYPE_DEFAULT)
    return True


_tf32 = os.environ.get("NNVIZ_TF32", "0") not in ("", "0")
if cupy is not None:
    try:
        _set_compute_type(_tf32)
    except Exception:   # a CuPy without this knob: its own default (TF32 off unless CUPY_TF32)
        pass


def tf32_enabled():
    """Whether CuPy's float32 GEMMs may use TF32 here (default: ``$NNVIZ_TF32``, off)."""
    return _tf32


@contextlib.contextmanager
def tf32(enabled=True):
    """Within the block, let CuPy's float32 GEMMs use TF32 tensor cores (10-bit mantissa
    inputs; faster on GPUs of compute capability 8.0 and up), or forbid it; restored after.
    Off by default (``NNVIZ_TF32=1`` turns it on), so that float32 results match the host's to
    1e-4. No effect on the host."""
    global _tf32
    before = _tf32
    _tf32 = bool(enabled)
    if cupy is not None:
        _set_compute_type(_tf32)
    try:
        yield _tf32
    finally:
        _tf32 = before
        if cupy is not None:
            _set_compute_type(before)


@functools.lru_cache(maxsize=1)
def gpu_available():
    """True when CuPy is installed and sees at least one CUDA device."""
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def gpu_unavailable_reason():
    """Why the GPU cannot be used, or None when it can (for test skips and errors)."""
    if cupy is None:
        return "CuPy is not installed (pip install nnviz[gpu])"
    if not gpu_available():
        return "CuPy sees no CUDA device"
    return None


def default_device():
    """The device named by NNVIZ_DEVICE (default ``"auto"``), resolved to cpu or gpu."""
    return resolve_device(os.environ.get("NNVIZ_DEVICE", "auto"))


def resolve_device(device=None):
    """Map ``None``/``"auto"``/``"cpu"``/``"gpu"`` to ``"cpu"`` or ``"gpu"``."""
    if device is None:
        return default_device()
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected one of {', '.join(DEVICES)}")
    if device == "auto":
        return "gpu" if gpu_available() else "cpu"
    if device == "gpu" and not gpu_available():
        raise RuntimeError(f"device 'gpu' asked for, but {gpu_unavailable_reason()}")
    return device


def get_xp(device=None):
    """The array module of a device: ``numpy`` or ``cupy``."""
    return cupy if resolve_device(device) == "gpu" else numpy


def get_array_module(*arrays):
    """``cupy`` if any argument is a CuPy array, else ``numpy``."""
    if cupy is not None:
        return cupy.get_array_module(*arrays)
    return numpy


def is_gpu_array(a):
    return cupy is not None and isinstance(a, cupy.ndarray)


def to_device(a, device=None):
    """Move an array to ``device`` (a no-op when it is there already)."""
    if resolve_device(device) == "gpu":
        return cupy.asarray(a)
    return to_numpy(a)


def to_numpy(a):
    """A NumPy array from a NumPy or CuPy array (or anything ``numpy.asarray`` takes)."""
    if is_gpu_array(a):
        return cupy.asnumpy(a)
    return numpy.asarray(a)


def synchronize(a=None):
    """Wait for the GPU's queued work (for timing); a no-op on the host."""
    if cupy is not None and (a is None or is_gpu_array(a)) and gpu_available():
        cupy.cuda.get_current_stream().synchronize()


@functools.lru_cache(maxsize=None)
def elementwise_kernel(in_params, out_params, operation, name, preamble=""):
    """A named CuPy ElementwiseKernel, built once and cached."""
    return cupy.ElementwiseKernel(in_params, out_params, operation, name, preamble=preamble)


# ---------------------------------------------------------------------------------------
# scratch space
# ---------------------------------------------------------------------------------------

_local = threading.local()


def workspace(xp, dtype, name, shape):
    """A scratch array of ``shape`` kept between calls (per thread, per name and dtype), so
    that hot loops do not touch fresh pages on every call; its contents are undefined."""
    cache = _local.__dict__.setdefault("buffers", {})
    size = 1
    for d in shape:
        size *= int(d)
    key = (xp.__name__, numpy.dtype(dtype).str, name)
    buf = cache.get(key)
    if buf is None or buf.size < size:
        cache[key] = None
        buf = cache[key] = xp.empty(max(size, 1), dtype)
    return buf[:size].reshape(shape)
