import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))  # torch_twin

os.environ.setdefault("KERAS_BACKEND", "torch")   # Keras 3's numpy backend would import JAX

import shutil  # noqa: E402

import numpy  # noqa: E402
import pytest  # noqa: E402

# The GPU path on machines without a GPU: a stand-in for the ``cupy`` module (tests/gpu_standin,
# see its docstring), chosen only when the real CuPy is missing or sees no CUDA device, and only
# where a C++ compiler can build its kernels. It must be on sys.path before nnviz.backend imports
# CuPy. The rest of the suite keeps running on the host (NNVIZ_DEVICE=cpu unless set): only
# tests that ask for the GPU get it. Subprocesses that should see it (Dask workers) are given
# STANDIN on PYTHONPATH by their test.
STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpu_standin")


def _select_cupy():
    """``("cuda", None)``, ``("stand-in", None)`` or ``(None, why not)``."""
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() > 0:
            return "cuda", None
    except Exception:      # not installed, no driver, no device
        pass
    if os.environ.get("NNVIZ_TEST_STANDIN", "1") == "0":
        return None, "CuPy sees no CUDA device (and NNVIZ_TEST_STANDIN=0)"
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        return None, "CuPy sees no CUDA device, and no C++ compiler (g++ or $CXX) builds the stand-in's kernels"
    for name in [m for m in sys.modules if m.split(".")[0] in ("cupy", "cupyx")]:
        del sys.modules[name]
    sys.path.insert(0, STANDIN)
    os.environ.setdefault("NNVIZ_DEVICE", "cpu")
    return "stand-in", None


GPU_KIND, _NO_GPU = _select_cupy()

from nnviz import backend  # noqa: E402

REAL_GPU_ONLY = ("needs a real CUDA device (the CuPy stand-in computes on the host): "
                 "TF32 through CuPy's private API, the memory pool's real use")


def pytest_configure(config):
    config.addinivalue_line("markers", "real_gpu: answerable only on a real CUDA device (skipped "
                                       "on the tests' CuPy stand-in, with the reason)")


def pytest_collection_modifyitems(config, items):
    reason = _NO_GPU or backend.gpu_unavailable_reason()
    for item in items:
        if reason is not None and ("gpu" in item.keywords or "real_gpu" in item.keywords):
            item.add_marker(pytest.mark.skip(reason=f"GPU test: {reason}"))
        elif GPU_KIND == "stand-in" and "real_gpu" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=REAL_GPU_ONLY))


@pytest.fixture(scope="module")
def net():
    """VGG16 without its fully connected layers, random weights (seed 0): one per test module."""
    import nnviz
    return nnviz.vgg16(seed=0, include_top=False)


@pytest.fixture(scope="module")
def top():
    """VGG16 with its fully connected layers, random weights (seed 0): one per test module."""
    import nnviz
    return nnviz.vgg16(seed=0)


def rel_err(a, b):
    """max |a - b| / max |b| (a scale-aware error for comparisons with a reference)."""
    a = numpy.asarray(backend.to_numpy(a), dtype=numpy.float64)
    b = numpy.asarray(backend.to_numpy(b), dtype=numpy.float64)
    return float(numpy.abs(a - b).max() / max(numpy.abs(b).max(), 1e-300))


def run_nnviz(argv, capsys):
    """``nnviz ARGV`` in this process: (exit status, stdout, the non-blank stderr lines)."""
    from nnviz.cli import main
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, [ln for ln in err.splitlines() if ln.strip()]
