"""The GPU path on machines without a GPU: the tests' CuPy stand-in (tests/gpu_standin) itself,
and nnviz end to end on it.

Oracles: the real CuPy's namespace and signatures (tests/gpu_standin/cupy_api.json, generated
from the real package by tools/cupy_api.py), CuPy's documented behaviour (implicit host
conversion refused, ``ElementwiseKernel`` semantics), the kernels' definitions written out in
NumPy for single elements (at sizes past 2**31), and nnviz on the host (NumPy) for the
end-to-end runs, which themselves are checked against PyTorch elsewhere. On a machine with a
real CUDA device (where conftest picks the real CuPy) the tests about the stand-in skip; the
end-to-end ones run on the device.
"""
import inspect
import os
import sys

import numpy
import pytest
from conftest import GPU_KIND, STANDIN, rel_err

from nnviz import backend
from nnviz import functional as F
from nnviz import layers as L
from nnviz import rules as R
from nnviz.models import vgg16

pytestmark = pytest.mark.gpu
standin_only = pytest.mark.skipif(GPU_KIND != "stand-in",
                                  reason="about the CuPy stand-in, which a real GPU does not use")


def _gpu(a):
    return backend.to_device(a, "gpu")


@pytest.fixture
def cupy():
    return backend.cupy


@pytest.fixture
def kernel_mod():
    return sys.modules["cupy._kernel"]


# -- the stand-in has only CuPy's names, with CuPy's signatures ---------------------------------

def _params(sig):
    """(name, kind, default) of each parameter, defaults compared by their text."""
    return [(p.name, p.kind, None if p.default is p.empty else repr(p.default).replace(
        "<class 'float'>", "float")) for p in sig.parameters.values()]


def _namespaces(cupy):
    import cupyx
    return {"cupy": cupy, "cupyx": cupyx, "cupy.cuda": cupy.cuda,
            "cupy.cuda.runtime": cupy.cuda.runtime, "cupy.cuda.Stream": cupy.cuda.Stream,
            "cupy.cuda.Device": cupy.cuda.Device, "cupy.cuda.MemoryPool": cupy.cuda.MemoryPool,
            "cupy.ufunc": cupy.add, "cupy.ElementwiseKernel": cupy.ElementwiseKernel,
            "cupy.ndarray": cupy.ndarray}


@standin_only
def test_standin_has_only_cupys_names_with_cupys_signatures(cupy):
    """Every public name of the stand-in (module, array type, ufuncs, kernels, cuda) is one of
    the real CuPy 14's (the generated list), and every function's parameters (names, kinds,
    defaults) are CuPy's: a NumPy-only name or argument fails here as on a GPU."""
    from cupy._array import _API, parse_signature
    checked = 0
    for space, obj in _namespaces(cupy).items():
        real = _API[space]
        mine = [n for n in dir(obj) if not n.startswith("_")]
        missing = [n for n in mine if n not in real]
        assert not missing, f"{space}: names CuPy lacks: {missing}"
        for n in mine:
            value = getattr(obj, n)
            text = real[n]["signature"]
            if not callable(value) or isinstance(value, type) or not text:
                continue
            want = parse_signature(text)
            if want is None:
                continue
            got = inspect.signature(value)
            if isinstance(obj, type):       # an unbound method: without self
                got = got.replace(parameters=list(got.parameters.values())[1:])
            assert _params(got) == _params(want), f"{space}.{n}{got} vs CuPy's {text}"
            checked += 1
    # the array type's special methods too (no __index__, __contains__, __round__: CuPy has none)
    dunders = {n for n in vars(cupy.ndarray) if n.startswith("__")} - {
        "__module__", "__slots__", "__weakref__", "__dict__", "__doc__", "__qualname__",
        "__firstlineno__", "__static_attributes__"}
    assert dunders <= set(_API["cupy.ndarray"]), dunders - set(_API["cupy.ndarray"])
    assert checked > 300
    assert not issubclass(cupy.ndarray, numpy.ndarray)


@standin_only
def test_standin_hand_written_functions_have_cupys_signatures(cupy):
    """The functions written by hand (conversion, memory pools, kernels) against the list."""
    from cupy._array import _API, parse_signature
    for space, name, func in [("cupy", "asarray", cupy.asarray), ("cupy", "array", cupy.array),
                              ("cupy", "asnumpy", cupy.asnumpy),
                              ("cupy", "asanyarray", cupy.asanyarray),
                              ("cupy", "get_array_module", cupy.get_array_module),
                              ("cupy", "ElementwiseKernel", cupy.ElementwiseKernel),
                              ("cupy.ndarray", "get", cupy.ndarray.get),
                              ("cupy.ndarray", "astype", cupy.ndarray.astype),
                              ("cupy.ndarray", "view", cupy.ndarray.view),
                              ("cupy.cuda", "get_current_stream", cupy.cuda.get_current_stream),
                              ("cupy.cuda", "Stream", cupy.cuda.Stream)]:
        got = inspect.signature(func)
        if space == "cupy.ndarray":
            got = got.replace(parameters=list(got.parameters.values())[1:])
        assert _params(got) == _params(parse_signature(_API[space][name]["signature"])), name


@standin_only
def test_backend_on_the_standin(monkeypatch):
    """nnviz.backend with the stand-in: the device count decides gpu_available (0 devices, or
    a runtime that fails, is no GPU, with the reason); the TF32 switch is scoped and changes
    nothing where CuPy has no compute-type knob (the stand-in computes on the host);
    synchronize waits on the current stream; without CuPy, arrays are NumPy's."""
    from nnviz import jobs
    try:
        monkeypatch.setenv("CUPY_STANDIN_DEVICES", "0")
        backend.gpu_available.cache_clear()
        assert not backend.gpu_available() and jobs.gpu_count() == 0
        assert backend.gpu_unavailable_reason() == "CuPy sees no CUDA device"
        monkeypatch.setenv("CUPY_STANDIN_DEVICES", "2")
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
        backend.gpu_available.cache_clear()
        assert backend.gpu_available() and jobs.gpu_count() == 1
        monkeypatch.setattr(backend.cupy.cuda.runtime, "getDeviceCount", lambda: 1 / 0)
        backend.gpu_available.cache_clear()
        assert not backend.gpu_available()
    finally:
        monkeypatch.undo()
        backend.gpu_available.cache_clear()
    assert backend.gpu_available()
    assert backend._set_compute_type(True) is False          # no knob: nothing changed
    assert not backend.tf32_enabled()
    with backend.tf32(True) as on:
        assert on and backend.tf32_enabled()
    assert not backend.tf32_enabled()
    g = _gpu(numpy.ones(3))
    backend.synchronize(g)
    backend.synchronize()
    backend.synchronize(numpy.ones(2))          # a host array: nothing to wait for
    monkeypatch.setattr(backend, "cupy", None)
    assert backend.get_array_module(numpy.ones(2)) is numpy and not backend.is_gpu_array(g)
    with backend.tf32(True):                     # without CuPy: only the flag
        assert backend.tf32_enabled()
    assert not backend.tf32_enabled()
    backend.synchronize()


# -- NumPy-only calls fail on device arrays, as on a GPU ----------------------------------------

NUMPY_ONLY = {
    "numpy.asarray of a device array": lambda g, h, cp: numpy.asarray(g),
    "as_strided (no __array_function__)": lambda g, h, cp: numpy.lib.stride_tricks.as_strided(g),
    "device + host array": lambda g, h, cp: g + h,
    "host + device array": lambda g, h, cp: h + g,
    "ufunc with a host array": lambda g, h, cp: cp.maximum(g, h),
    "host array into a device slice": lambda g, h, cp: g.__setitem__(slice(None), h),
    "ascontiguousarray of a host array": lambda g, h, cp: cp.ascontiguousarray(h),
    "NumPy's like= argument": lambda g, h, cp: cp.zeros(3, like=g),
    "a name CuPy lacks": lambda g, h, cp: cp.nanpercentile(g, 50),
    "numpy.nanpercentile (no CuPy twin)": lambda g, h, cp: numpy.nanpercentile(g, 50),
    "a device 0-d array as an index": lambda g, h, cp: list(range(10))[g.sum().astype(cp.int64)],
    "numpy.ascontiguousarray (dispatches only on like=)":
        lambda g, h, cp: numpy.ascontiguousarray(g),
}


@standin_only
@pytest.mark.parametrize("what", list(NUMPY_ONLY))
def test_numpy_only_calls_fail_on_device_arrays(what, cupy):
    """What CuPy refuses (implicit device-to-host conversion, host arrays mixed in, names and
    arguments it lacks) raises here too."""
    g = cupy.arange(6.0)
    h = numpy.arange(6.0)
    with pytest.raises((TypeError, ValueError, AttributeError)):
        NUMPY_ONLY[what](g, h, cupy)


@standin_only
def test_numpy_functions_dispatch_as_cupys(cupy):
    """Like CuPy's ndarray, NumPy's functions and ufuncs on device arrays run the same-named
    CuPy function and return device arrays; moves between host and device copy."""
    g = cupy.arange(6.0).reshape(2, 3)
    for r in (numpy.maximum(g, 2.0), numpy.sum(g, axis=0), numpy.transpose(g), g.sum()):
        assert isinstance(r, cupy.ndarray)
    numpy.copyto(g, cupy.ones((2, 3)))
    assert float(g.sum()) == 6.0
    h = numpy.zeros(3)
    d = cupy.asarray(h)
    d += 1
    assert h.sum() == 0 and cupy.asnumpy(d).sum() == 3     # no aliasing across the "bus"
    assert cupy.get_array_module(d) is cupy and cupy.get_array_module(h) is numpy


# -- the kernel compiler -------------------------------------------------------------------------

@standin_only
def test_elementwise_kernel_semantics(cupy, kernel_mod):
    """CuPy's ElementwiseKernel rules: non-raw arguments are element i of the broadcast loop
    (inputs const), raw ones flat in C order (a non-contiguous raw array read logically), T
    bound by the arrays, scalars cast to their parameter type, outputs allocated when
    omitted, ``size=`` only with raw arrays; an out-of-bounds raw index fails."""
    k = cupy.ElementwiseKernel("T x, T y, int32 s", "T z", "z = x * s + y;", "standin_t1")
    x = cupy.arange(6.0).reshape(2, 3)
    y = cupy.asarray(numpy.array([10.0, 20.0, 30.0]))
    numpy.testing.assert_array_equal(cupy.asnumpy(k(x, y, 2)),
                                     numpy.arange(6.0).reshape(2, 3) * 2 + [10, 20, 30])
    with pytest.raises(TypeError, match="Type is mismatched"):
        k(x, y.astype(cupy.float32), 2)
    with pytest.raises(OverflowError):
        k(x, y, 2 ** 31)                      # an int32 parameter
    with pytest.raises(TypeError, match="Unsupported type"):
        k(x, numpy.ones(3), 2)
    raw = cupy.ElementwiseKernel("raw T a, int32 n", "T b", "b = a[n - 1 - i];", "standin_t2")
    a = cupy.arange(12.0).reshape(3, 4)
    col = a[:, 1]                             # not contiguous: read in logical order
    numpy.testing.assert_array_equal(cupy.asnumpy(raw(col, 3, cupy.empty(3))), [9.0, 5.0, 1.0])
    with pytest.raises(IndexError, match="out of bounds at -1"):
        raw(col, 2, cupy.empty(3))
    fill = cupy.ElementwiseKernel("int64 v", "raw int64 out", "out[i] = v + i;", "standin_t3")
    out = cupy.zeros(4, dtype=cupy.int64)
    fill(7, out, size=4)
    numpy.testing.assert_array_equal(cupy.asnumpy(out), [7, 8, 9, 10])
    n_libs = len(kernel_mod._libs)
    k(x, y, 3)
    assert len(kernel_mod._libs) == n_libs     # compiled once per type binding


@standin_only
@pytest.mark.parametrize("overlapping", [False, True])
def test_unpool_paths(overlapping, cupy, kernel_mod):
    """Which path each unpooling takes on the GPU: with non-overlapping windows the switches of a
    plane are distinct, so the ``nnviz_unpool`` kernel (each i writes its own element) runs
    serially as on a GPU; overlapping windows sum through ``cupyx.scatter_add``. Both equal the
    host's. MaxUnpool2d always takes the kernel (PyTorch's last-write-wins)."""
    k, s = (3, 2) if overlapping else (2, 2)
    rng = numpy.random.default_rng(4)
    x = (rng.permutation(2 * 3 * 9 * 10).reshape(2, 3, 9, 10) / 100.0)
    cpu, gpu = L.MaxPool2d(k, s), L.MaxPool2d(k, s)
    y = cpu.forward(x)
    gpu.forward(_gpu(x))
    d = rng.standard_normal(y.shape)
    for rule in ("backprop", "no_switches"):
        kernel_mod.LAUNCHES.clear()
        got = gpu.backward(_gpu(d), rule)
        ran = [name for _, name in kernel_mod.LAUNCHES]
        assert ran == (["scatter_add"] if overlapping else ["nnviz_unpool"]), (rule, ran)
        assert rel_err(got, cpu.backward(d, rule)) < 1e-14
    sw = cupy.asnumpy(gpu.switches).reshape(6, -1)
    distinct = all(len(set(row)) == len(row) for row in sw)
    assert distinct != overlapping
    kernel_mod.LAUNCHES.clear()
    un = L.MaxUnpool2d(k, s)
    un.forward(_gpu(y), gpu.switches, output_size=x.shape)
    assert [n for _, n in kernel_mod.LAUNCHES] == ["nnviz_unpool"]


@pytest.mark.parametrize("geom", [(3, 2, 2, 1, 1, 0), (2, 3, 1, 3, 0, 1), (3, 3, 3, 2, 1, 1)])
def test_max_pool_kernel_non_square_geometry(geom):
    """The pooling kernel with different kernel sides, strides and paddings along the two axes
    (so that a swapped row/column term shows), values and switches against PyTorch's
    ``max_pool2d(return_indices=True)``; its gradient (unpooling, by the kernel or by
    scatter_add) against torch autograd."""
    import torch
    kh, kw, sy, sx, ph, pw = geom
    rng = numpy.random.default_rng(13)
    x = rng.permutation(2 * 3 * 11 * 10).reshape(2, 3, 11, 10) / 7.0       # no ties
    y, sw = F.max_pool2d(_gpu(x), kh, kw, sy, sx, ph, pw)
    xt = torch.tensor(x, requires_grad=True)
    ty, tsw = torch.nn.functional.max_pool2d(xt, (kh, kw), (sy, sx), (ph, pw), return_indices=True)
    numpy.testing.assert_array_equal(backend.to_numpy(y), ty.detach().numpy())
    numpy.testing.assert_array_equal(backend.to_numpy(sw), tsw.numpy())
    d = rng.standard_normal(y.shape)
    (g,) = torch.autograd.grad(ty, xt, torch.tensor(d))
    got = F.max_pool2d_backward(_gpu(d), sw, 11, 10, overlapping=sy < kh or sx < kw)
    assert rel_err(got, g.numpy()) < 1e-14


# -- index arithmetic past 2**31 ---------------------------------------------------------------

BIG = 2048          # VGG's conv1_2 input side at 2048 px


def _pick(total, rng, k=24):
    """Loop indices to check: the last ones and a spread past 2**31 (or over the upper half,
    where the loop is shorter and the arrays it reads or writes are past 2**31)."""
    return numpy.unique(numpy.concatenate([numpy.arange(total - 4, total),
                                           rng.integers(min(2 ** 31, total // 2), total, k)]))


@standin_only
@pytest.mark.parametrize("kind", ["im2col3x3", "im2col1x1", "im2col_tall", "col2im3x3", "col2im1x1",
                                  "max_pool", "unpool"])
def test_kernels_index_past_2_31(kind, cupy, kernel_mod):
    """Each kernel at sizes whose flat indices pass 2**31 (an im2col buffer of 57 channels at
    2048 px has 2.15e9 elements; 513 channels put the image itself past 2**31; 2**20 planes
    of 2048×1 put a plane's row offset past it), run for a few
    dozen loop indices only (untouched memory is never paged in), each against its definition
    computed for that element in Python integers."""
    rng = numpy.random.default_rng(5)
    c = 57 if kind.endswith("3x3") else 513
    kk = 3 if kind.endswith("3x3") else 1
    p = kk // 2
    if kind.startswith("im2col"):
        # "tall": 2**20 + 4 planes of 2048×1, so that even the plane's first row passes 2**31
        c, hh, ww = (2 ** 20 + 4, BIG, 1) if kind == "im2col_tall" else (c, BIG, BIG)
        x = cupy.zeros((1, c, hh, ww), cupy.float32)
        total = c * kk * kk * hh * ww
        idx = _pick(total, rng)
        want = []
        for i in idx:
            ch, ii, j, oy, ox = numpy.unravel_index(i, (c, kk, kk, hh, ww))
            yy, xx = oy - p + ii, ox - p + j
            v = 0.0
            if 0 <= yy < hh and 0 <= xx < ww:
                v = float(1 + (ch * 31 + yy * 7 + xx) % 1000)
                x[0, ch, yy, xx] = v
            want.append(v)
        with kernel_mod.only_indices(idx):
            col = F.im2col(x, kk, kk, 1, 1, p, p)
        got = cupy.asnumpy(col.reshape(-1)[cupy.asarray(idx)])
    elif kind.startswith("col2im"):
        col = cupy.zeros((1, c, kk, kk, BIG, BIG), cupy.float32)
        total = c * BIG * BIG
        idx = _pick(total, rng)
        want = []
        for i in idx:
            ch, yy, xx = numpy.unravel_index(i, (c, BIG, BIG))
            acc = 0.0
            for ii in range(kk):
                for j in range(kk):
                    oy, ox = yy + p - ii, xx + p - j
                    if 0 <= oy < BIG and 0 <= ox < BIG:
                        v = float(1 + (ch + ii * 5 + j * 3 + oy + ox) % 97)
                        col[0, ch, ii, j, oy, ox] = v
                        acc += v
            want.append(acc)
        with kernel_mod.only_indices(idx):
            img = F.col2im(col, BIG, BIG, 1, 1, p, p)
        got = cupy.asnumpy(img.reshape(-1)[cupy.asarray(idx)])
    elif kind == "max_pool":
        x = cupy.zeros((1, c, BIG, BIG), cupy.float32)
        half = BIG // 2
        idx = _pick(c * half * half, rng)
        want, want_sw = [], []
        for i in idx:
            ch, oy, ox = numpy.unravel_index(i, (c, half, half))
            a, b = int(i % 2), int(i // 2 % 2)             # which pixel of the window wins
            v = float(1 + i % 1000)
            x[0, ch, 2 * oy + a, 2 * ox + b] = v
            want.append(v)
            want_sw.append((2 * oy + a) * BIG + 2 * ox + b)
        with kernel_mod.only_indices(idx):
            y, sw = F.max_pool2d(x, 2, 2, 2, 2, 0, 0)
        got = cupy.asnumpy(y.reshape(-1)[cupy.asarray(idx)])
        numpy.testing.assert_array_equal(cupy.asnumpy(sw.reshape(-1)[cupy.asarray(idx)]), want_sw)
    else:
        half = BIG // 2
        x = cupy.zeros((1, c, half, half), cupy.float32)
        sw = cupy.zeros((1, c, half, half), cupy.int64)
        idx = _pick(c * half * half, rng)
        where, want = [], []
        for i in idx:
            ch, oy, ox = numpy.unravel_index(i, (c, half, half))
            s = (2 * oy + int(i % 2)) * BIG + 2 * ox
            v = float(1 + i % 1000)
            x[0, ch, oy, ox] = v
            sw[0, ch, oy, ox] = s
            where.append(ch * BIG * BIG + s)
            want.append(v)
        with kernel_mod.only_indices(idx):
            out = F.unpool(x, sw, BIG, BIG, accumulate=False)
        assert out.size > 2 ** 31
        got = cupy.asnumpy(out.reshape(-1)[cupy.asarray(numpy.array(where))])
    numpy.testing.assert_array_equal(got, numpy.array(want, numpy.float32))


# -- end to end: nnviz on the GPU equals nnviz on the host ---------------------------------------

@pytest.fixture(scope="module")
def nets():
    return vgg16(seed=0, include_top=False, device="cpu"), vgg16(seed=0, include_top=False,
                                                                 device="gpu")


def _all_rules():
    rules = {"backprop": "backprop"}
    rules.update((name, name) for name in R.PRESETS)
    rules["deconvnet without switches"] = R.Composite([("activation", "deconvnet"),
                                                       ("maxpool", "no_switches")])
    return rules


@pytest.fixture(scope="module")
def forwarded():
    """VGG16 on the host and on the GPU, run forward once to conv4_3 (float64, a 24×20 image:
    pooled to 12×10, 6×5, 3×2), for the backward passes below (which only read it)."""
    cpu, gpu = vgg16(seed=1, include_top=False, device="cpu"), vgg16(seed=1, include_top=False,
                                                                     device="gpu")
    x = numpy.random.default_rng(9).standard_normal((1, 3, 24, 20)) * 40
    y = cpu.forward(x, until="conv4_3")
    gy = gpu.forward(_gpu(x), until="conv4_3")
    assert backend.is_gpu_array(gy) and rel_err(gy, y) < 1e-12
    d = numpy.zeros_like(y)
    d[0, :, 1, 1] = numpy.maximum(y[0, :, 1, 1], 0)
    return cpu, gpu, d


@pytest.mark.parametrize("rule", list(_all_rules()))
def test_vgg16_every_rule_on_gpu_equals_host(rule, forwarded):
    """VGG16 back from conv4_3 under each rule (the ReLU rules, the deconvnet without
    switches, and every LRP composite in nnviz.rules.PRESETS), float64: the GPU path (the four
    kernels, scatter_add, CuPy's calls) against the host path, to 1e-10."""
    cpu, gpu, d = forwarded
    r = _all_rules()[rule]
    got = gpu.backward(_gpu(d), "conv4_3", r)
    assert backend.is_gpu_array(got)
    assert rel_err(got, cpu.backward(d, "conv4_3", r)) < 1e-10


def test_gatys_step_on_gpu_equals_host(nets):
    """One loss-and-gradient evaluation of Gatys et al.'s objective (content, two styles of
    another size, TV) with the features on the GPU, float64, equals the host's."""
    from nnviz.methods.style import GatysLoss
    cpu, gpu = nets
    rng = numpy.random.default_rng(10)
    content = rng.standard_normal((1, 3, 24, 24)) * 50
    styles = [rng.standard_normal((1, 3, 28, 20)) * 50, rng.standard_normal((1, 3, 24, 24)) * 50]
    x = content + rng.standard_normal(content.shape) * 10
    out = []
    for net in (cpu, gpu):
        obj = GatysLoss(net, backend.to_device(content, net.device),
                        [backend.to_device(s, net.device) for s in styles],
                        content_layers=("relu4_2",), style_layers=("relu1_1", "relu2_1", "relu3_1"),
                        content_weight=1.0, style_weight=100.0, tv_weight=1e-3,
                        style_blend_weights=[0.7, 0.3], dtype=numpy.float64)
        out.append(obj(x))
    (l0, g0), (l1, g1) = out
    assert isinstance(g1, numpy.ndarray) and g1.dtype == numpy.float64
    assert abs(l1 - l0) <= 1e-10 * abs(l0) and rel_err(g1, g0) < 1e-10


def test_deepdream_tiles_on_gpu_equal_host(nets):
    """DeepDream's tiled objective and gradient (4 tiles with halos) on the GPU equal the host's."""
    from nnviz.methods.deepdream import tile_plan, tiled_dream_gradient
    cpu, gpu = nets
    x = numpy.random.default_rng(11).standard_normal((1, 3, 52, 44)) * 30
    plan, _ = tile_plan(cpu, ["relu2_2", "pool1"], x.shape, 40)
    assert len(plan) == 4
    v0, g0 = tiled_dream_gradient(cpu, x, ["relu2_2", "pool1"], tile_size=40)
    v1, g1 = tiled_dream_gradient(gpu, _gpu(x), ["relu2_2", "pool1"], tile_size=40)
    assert backend.is_gpu_array(g1)
    assert abs(v1 - v0) <= 1e-10 * abs(v0) and rel_err(g1, g0) < 1e-10


@standin_only
def test_batch_gpu_workers_on_standin(tmp_path, monkeypatch):
    """``nnviz batch --device gpu`` with two (stand-in) GPUs: one Dask worker process per GPU,
    each seeing only its own (CUDA_VISIBLE_DEVICES) and running nnviz there on the GPU (the
    tasks ask ``--device gpu``, which fails on a worker without one); the PNGs equal the same
    command run on the host image by image (to one grey level: float32 on another path)."""
    pytest.importorskip("distributed")
    from PIL import Image

    from nnviz import cli, jobs
    from nnviz.cli import batch
    monkeypatch.setenv("CUPY_STANDIN_DEVICES", "2")
    monkeypatch.setenv("PYTHONPATH", STANDIN + os.pathsep + os.environ.get("PYTHONPATH", ""))
    backend.gpu_available.cache_clear()
    assert jobs.gpu_count() == 2
    rng = numpy.random.default_rng(12)
    os.makedirs(tmp_path / "images")
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (32, 36, 3), dtype=numpy.uint8)).save(
            tmp_path / "images" / f"im{i}.png")
    opts = ["--weights", "random", "--size", "32", "--device", "gpu"]
    result = batch.run("saliency", tmp_path / "images", tmp_path / "out", options=opts,
                       device="gpu", quiet=True)
    assert (result["done"], result["failed"]) == (2, 0), result["rows"]
    for i in range(2):
        ref = tmp_path / "ref" / f"im{i}"
        assert cli.main(["saliency", "--image", str(tmp_path / "images" / f"im{i}.png"),
                         "--weights", "random", "--size", "32", "--device", "cpu",
                         "--out", str(ref), "--quiet"]) == 0
        for f in os.listdir(ref):
            with Image.open(ref / f) as a, Image.open(tmp_path / "out" / f"im{i}" / f) as b:
                a, b = numpy.asarray(a, numpy.int16), numpy.asarray(b, numpy.int16)
            assert a.shape == b.shape and numpy.abs(a - b).max() <= 1, f
