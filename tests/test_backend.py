"""Device selection and array movement on the host (the GPU half is in test_gpu.py)."""
import numpy
import pytest

from nnviz import backend


def test_cpu_device_is_numpy():
    assert backend.get_xp("cpu") is numpy
    a = backend.to_device([1.0, 2.0], "cpu")
    assert isinstance(a, numpy.ndarray)
    assert backend.get_array_module(a) is numpy
    assert backend.to_numpy(a) is a


def test_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        backend.resolve_device("tpu")


def test_environment_sets_default(monkeypatch):
    monkeypatch.setenv("NNVIZ_DEVICE", "cpu")
    assert backend.default_device() == "cpu"
    assert backend.resolve_device(None) == "cpu"
    monkeypatch.setenv("NNVIZ_DEVICE", "auto")
    assert backend.default_device() == ("gpu" if backend.gpu_available() else "cpu")


def test_gpu_without_cuda_says_why(monkeypatch):
    """Without CuPy (made so here, also where a GPU or the tests' CuPy stand-in is present),
    asking for the GPU is an error that says why, and ``auto`` is the host."""
    monkeypatch.setattr(backend, "cupy", None)
    backend.gpu_available.cache_clear()
    try:
        assert backend.gpu_unavailable_reason().startswith("CuPy is not installed")
        assert backend.resolve_device("auto") == "cpu"
        with pytest.raises(RuntimeError, match="device 'gpu' asked for, but CuPy is not installed"):
            backend.resolve_device("gpu")
    finally:
        monkeypatch.undo()
        backend.gpu_available.cache_clear()
