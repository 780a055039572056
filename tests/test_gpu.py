"""The CuPy path: every kernel against its NumPy twin, every layer and a VGG on the GPU
against the same computation on the host. On a machine with a CUDA device they run on CuPy
(``-m gpu``); without one, on the tests' CuPy stand-in (tests/gpu_standin, chosen by
conftest.py), which compiles the kernels' own source on the host. The tests marked
``real_gpu`` (TF32, the memory pool) can only be answered by a real device and skip, with
that reason, on the stand-in."""
import numpy
import pytest
from conftest import rel_err

from nnviz import backend
from nnviz import functional as F
from nnviz import layers as L
from nnviz.models import vgg16

pytestmark = pytest.mark.gpu
DTYPES = [numpy.float64, numpy.float32]
TOL = {numpy.float64: 1e-12, numpy.float32: 1e-5}


def _gpu(a):
    return backend.to_device(a, "gpu")


GEOMS = [(3, 3, 1, 1, 1, 1, 1, 1), (3, 2, 2, 1, 1, 0, 1, 1), (3, 3, 1, 2, 2, 1, 2, 1),
         (2, 2, 2, 2, 0, 0, 1, 1), (5, 3, 3, 2, 2, 1, 1, 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geom", GEOMS)
def test_im2col_col2im_kernels_match_numpy(geom, dtype):
    kh, kw, sy, sx, ph, pw, dy, dx = geom
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((2, 3, 11, 9)).astype(dtype)
    col = F.im2col(x, kh, kw, sy, sx, ph, pw, dy, dx)
    gcol = F.im2col(_gpu(x), kh, kw, sy, sx, ph, pw, dy, dx)
    numpy.testing.assert_array_equal(backend.to_numpy(gcol), col)
    c = rng.standard_normal(col.shape).astype(dtype)
    img = F.col2im(c, 11, 9, sy, sx, ph, pw, dy, dx)
    gimg = F.col2im(_gpu(c), 11, 9, sy, sx, ph, pw, dy, dx)
    assert rel_err(gimg, img) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0)])
def test_pool_kernels_match_numpy(k, s, p, dtype):
    rng = numpy.random.default_rng(1)
    x = (rng.permutation(2 * 3 * 9 * 10).reshape(2, 3, 9, 10) / 100.0).astype(dtype)
    y, sw = F.max_pool2d(x, k, k, s, s, p, p)
    gy, gsw = F.max_pool2d(_gpu(x), k, k, s, s, p, p)
    numpy.testing.assert_array_equal(backend.to_numpy(gy), y)
    numpy.testing.assert_array_equal(backend.to_numpy(gsw), sw)
    d = rng.standard_normal(y.shape).astype(dtype)
    for accumulate in (True, False) if s >= k else (True,):
        ref = F.unpool(d, sw, 9, 10, accumulate)
        got = F.unpool(_gpu(d), gsw, 9, 10, accumulate)
        assert rel_err(got, ref) < TOL[dtype]
    numpy.testing.assert_array_equal(backend.to_numpy(F.unpool_backward(_gpu(ref), gsw)),
                                     F.unpool_backward(ref, sw))


def _layers():
    return [
        (L.Conv2d(3, 4, 3, stride=2, padding=1, dilation=1), (2, 3, 9, 8)),
        (L.Conv2d(3, 4, (3, 2), stride=1, padding=2, dilation=2), (1, 3, 9, 8)),
        (L.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1), (2, 3, 5, 4)),
        (L.MaxPool2d(3, 2, 1), (2, 3, 9, 8)),
        (L.AvgPool2d(2), (2, 3, 8, 8)),
        (L.Linear(6, 5), (3, 6)),
        (L.ReLU(), (2, 3, 4, 4)),
        (L.Flatten(), (2, 3, 2, 2)),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index", range(len(_layers())))
def test_layers_on_gpu_match_host(index, dtype):
    rng = numpy.random.default_rng(2)
    cpu_layer, shape = _layers()[index]
    gpu_layer, _ = _layers()[index]
    for p in cpu_layer.params:
        value = rng.standard_normal(getattr(cpu_layer, p).shape).astype(numpy.float32)
        setattr(cpu_layer, p, value)
        setattr(gpu_layer, p, _gpu(value))
    x = (rng.permutation(int(numpy.prod(shape))).reshape(shape) / 10.0 - 3.0).astype(dtype)
    y = cpu_layer.forward(x)
    gy = gpu_layer.forward(_gpu(x))
    assert rel_err(gy, y) < TOL[dtype]
    d = rng.standard_normal(y.shape).astype(dtype)
    for rule in ("backprop", "deconvnet", "guided"):
        assert rel_err(gpu_layer.backward(_gpu(d), rule), cpu_layer.backward(d, rule)) < TOL[dtype]
    for p in cpu_layer.params:
        if hasattr(cpu_layer, f"grad_{p}"):
            assert rel_err(getattr(gpu_layer, f"grad_{p}"), getattr(cpu_layer, f"grad_{p}")) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", [0, 1])
def test_winograd_on_gpu_matches_host(padding, dtype):
    """Winograd F(2×2, 3×3) on CuPy against the host's, forward and input gradient."""
    rng = numpy.random.default_rng(6)
    x = rng.standard_normal((2, 16, 11, 10)).astype(dtype)
    w = rng.standard_normal((20, 16, 3, 3)).astype(dtype)
    b = rng.standard_normal(20).astype(dtype)
    y = F.conv2d(x, w, b, 1, padding, algorithm="winograd")
    gy = F.conv2d(_gpu(x), _gpu(w), _gpu(b), 1, padding, algorithm="winograd")
    assert rel_err(gy, y) < TOL[dtype]
    dx = F.conv_transpose2d(y, w, None, 1, padding, output_size=x.shape[2:], algorithm="winograd")
    gdx = F.conv_transpose2d(_gpu(y), _gpu(w), None, 1, padding, output_size=x.shape[2:],
                             algorithm="winograd")
    assert rel_err(gdx, dx) < TOL[dtype]


@pytest.mark.real_gpu
def test_tf32_is_off_by_default_and_switchable():
    """float32 GEMMs in full precision unless asked (backend.tf32); TF32 changes results
    only on GPUs with tensor cores, so only the switch itself is checked here."""
    assert not backend.tf32_enabled()
    a = _gpu(numpy.random.default_rng(7).standard_normal((256, 256)).astype(numpy.float32))
    exact = backend.to_numpy(a.astype(numpy.float64) @ a.astype(numpy.float64))
    assert rel_err(a @ a, exact) < 1e-5
    with backend.tf32(True):
        assert backend.tf32_enabled()
        assert rel_err(a @ a, exact) < 1e-2
    assert not backend.tf32_enabled()


@pytest.mark.parametrize("dtype", DTYPES)
def test_vgg16_on_gpu_matches_host(dtype):
    cpu = vgg16(seed=0, include_top=False, device="cpu")
    gpu = vgg16(seed=0, include_top=False, device="gpu")
    x = numpy.random.default_rng(3).standard_normal((2, 3, 64, 64)).astype(dtype)
    y = cpu.forward(x, until="conv5_3")
    gy = gpu.forward(_gpu(x), until="conv5_3")
    assert backend.is_gpu_array(gy)
    assert rel_err(gy, y) < 1e-4
    d = numpy.zeros_like(y)
    d[:, 7, 2, 3] = 1
    for rule in ("backprop", "deconvnet", "guided"):
        assert rel_err(gpu.backward(_gpu(d), "conv5_3", rule), cpu.backward(d, "conv5_3", rule)) < 1e-4


def test_backend_moves_arrays():
    a = numpy.arange(6.0)
    g = backend.to_device(a, "gpu")
    assert backend.is_gpu_array(g) and backend.get_xp("gpu") is backend.cupy
    numpy.testing.assert_array_equal(backend.to_numpy(g), a)
    assert backend.resolve_device("auto") == "gpu"


@pytest.mark.real_gpu
def test_gpu_memory_stays_flat_over_many_iterations():
    """No leak: after a warm-up, forward + backward repeated leaves the memory pool's use
    where it was (the activations of one pass, the scratch workspace)."""
    net = vgg16(seed=0, include_top=False, device="gpu")
    x = _gpu(numpy.random.default_rng(8).standard_normal((1, 3, 64, 64)).astype(numpy.float32))
    pool = backend.cupy.get_default_memory_pool()
    for algorithm in ("direct", "winograd"):
        with F.conv_algorithm(algorithm):
            for i in range(300):
                y = net.forward(x, until="conv5_3")
                net.backward(backend.cupy.ones_like(y), "conv5_3")
                if i == 20:
                    backend.synchronize()
                    used = pool.used_bytes()
            backend.synchronize()
            assert pool.used_bytes() <= used, algorithm
