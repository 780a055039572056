"""One code path for NumPy and CuPy.

CuPy is imported here and nowhere else. Everything in nnviz takes its array module from
the array itself (``xp = get_array_module(x)``), so the same code runs on the host and on
the GPU. Without CuPy, or without a CUDA device, everything runs on NumPy.

Devices are ``"cpu"``, ``"gpu"`` and ``"auto"`` (the GPU when CuPy sees one); the
environment variable ``NNVIZ_DEVICE`` sets the default.
"""
import contextlib
import contextvars
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


# TF32 for CuPy's float32 GEMMs: a context variable (scoped to the thread or task that sets
# it); outside any ``tf32`` block, ``$NNVIZ_TF32`` read at each call (default off)
_tf32 = contextvars.ContextVar("nnviz_tf32", default=None)
_tf32_applied = [None]          # what CuPy's process-wide knob was last set to


def tf32_enabled():
    """Whether CuPy's float32 GEMMs may use TF32 here: inside a :func:`tf32` block its
    setting, else ``$NNVIZ_TF32`` (off unless set to something other than 0)."""
    value = _tf32.get()
    if value is None:
        return os.environ.get("NNVIZ_TF32", "0") not in ("", "0")
    return value


def apply_tf32():
    """Set CuPy's compute type (a process-wide knob) to what :func:`tf32_enabled` says in the
    calling context, when it differs from the last setting: the GPU convolutions call it before
    their GEMMs, so that each thread's or task's scoped setting holds for its own work."""
    want = tf32_enabled()
    if cupy is not None and _tf32_applied[0] != want:
        try:
            if _set_compute_type(want):
                _tf32_applied[0] = want
        except Exception:   # a CuPy without this knob: its own default
            pass


@contextlib.contextmanager
def tf32(enabled=True):
    """Within the block, let CuPy's float32 GEMMs use TF32 tensor cores (10-bit mantissa
    inputs; faster on GPUs of compute capability 8.0 and up), or forbid it; restored after.
    Off by default (``NNVIZ_TF32=1`` turns it on), so that float32 results match the host's to
    1e-4. Scoped (a context variable); CuPy's knob is set on entry and on exit, and before each
    of nnviz's GPU convolutions (:func:`apply_tf32`). No effect on the host."""
    token = _tf32.set(bool(enabled))
    try:
        apply_tf32()
        yield bool(enabled)
    finally:
        _tf32.reset(token)
        apply_tf32()


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


# ---------------------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------------------

def available_memory():
    """Bytes this process may still allocate on the host: ``MemAvailable`` of /proc/meminfo,
    or the cgroup's limit minus its use when lower; None when neither is known."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if limit != "max":
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return min(found) if found else None
