import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))  # torch_twin

os.environ.setdefault("KERAS_BACKEND", "torch")   # Keras 3's numpy backend would import JAX

import numpy
import pytest

from nnviz import backend


def pytest_collection_modifyitems(config, items):
    reason = backend.gpu_unavailable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"GPU test: {reason}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def rel_err(a, b):
    """max |a - b| / max |b| (a scale-aware error for comparisons with a reference)."""
    a = numpy.asarray(backend.to_numpy(a), dtype=numpy.float64)
    b = numpy.asarray(backend.to_numpy(b), dtype=numpy.float64)
    return float(numpy.abs(a - b).max() / max(numpy.abs(b).max(), 1e-300))
