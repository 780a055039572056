"""Every layer against torch.nn.functional (PyTorch 2.13, CPU): forward, input gradient and
parameter gradients, in float64 (to 1e-10) and float32, over a grid of geometries; max-pool
switches against ``return_indices``; unpooling against ``max_unpool2d``; the ReLU rules
against a PyTorch autograd.Function written from their formulas."""

import numpy
import pytest
import torch
import torch.nn.functional as TF
from conftest import rel_err

from nnviz import layers as L

TOL = {numpy.float64: 1e-10, numpy.float32: 1e-5}
DTYPES = [numpy.float64, numpy.float32]
TDTYPE = {numpy.float64: torch.float64, numpy.float32: torch.float32}


def _t(a, grad=False):
    t = torch.from_numpy(numpy.array(a))
    return t.requires_grad_(grad)


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


CONV_CASES = [
    # (N, C, H, W), O, k, stride, padding, dilation
    ((2, 3, 9, 8), 4, 3, 1, 1, 1),
    ((1, 2, 10, 11), 3, 3, 2, 1, 1),
    ((2, 3, 9, 9), 2, (3, 2), (2, 1), (1, 0), 1),
    ((1, 4, 12, 10), 5, 3, 1, 2, 2),
    ((2, 2, 11, 13), 3, (2, 3), (3, 2), (1, 1), (2, 1)),
    ((1, 3, 7, 7), 2, 1, 1, 0, 1),
    ((1, 1, 5, 6), 2, 5, 1, 0, 1),
]


@pytest.fixture(params=["whole", "rows", "several rows"])
def col_blocks(request, monkeypatch):
    """Run each convolution test three times: the column buffer whole, built one output row
    at a time, and in blocks of as many rows as make 25 columns, the last block shorter (the
    memory-bounded paths taken on large images)."""
    from nnviz import functional
    if request.param != "whole":
        monkeypatch.setattr(functional.conv, "COL_BLOCK_BYTES", 1)
        monkeypatch.setattr(functional.conv, "COL_BLOCK_MIN_COLUMNS", 1 if request.param == "rows" else 25)
    return request.param


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_matches_torch(case, dtype, bias, col_blocks, transpose_path):
    shape, o, k, s, p, d = case
    rng = numpy.random.default_rng(0)
    layer = L.Conv2d(shape[1], o, k, stride=s, padding=p, dilation=d, bias=bias, dtype=dtype)
    layer.weight = _rand(rng, layer.weight.shape, dtype)
    if bias:
        layer.bias = _rand(rng, layer.bias.shape, dtype)
    x = _rand(rng, shape, dtype)
    y = layer.forward(x)
    tx, tw = _t(x, True), _t(layer.weight, True)
    tb = _t(layer.bias, True) if bias else None
    ty = TF.conv2d(tx, tw, tb, stride=s, padding=p, dilation=d)
    assert y.shape == tuple(ty.shape) and y.dtype == dtype
    assert rel_err(y, ty.detach()) < TOL[dtype]
    dy = _rand(rng, y.shape, dtype)
    dx = layer.backward(dy)
    ty.backward(_t(dy))
    assert rel_err(dx, tx.grad) < TOL[dtype]
    assert rel_err(layer.grad_weight, tw.grad) < TOL[dtype]
    if bias:
        assert rel_err(layer.grad_bias, tb.grad) < TOL[dtype]


DECONV_CASES = [
    # (N, C, H, W), O, k, stride, padding, output_padding, dilation
    ((2, 3, 5, 4), 2, 3, 1, 0, 0, 1),
    ((2, 3, 5, 4), 2, 3, 1, 1, 0, 1),
    ((1, 2, 6, 5), 3, (3, 2), 1, (2, 1), 0, (1, 2)),
    ((1, 2, 6, 5), 3, 3, 1, 3, 0, 1),
    ((1, 2, 4, 5), 3, 3, 2, 1, 1, 1),
    ((2, 4, 3, 3), 2, (2, 3), (2, 3), (0, 1), (1, 2), 1),
    ((1, 2, 5, 5), 3, 3, 2, 1, 0, 2),
    ((1, 3, 6, 4), 2, 4, 2, 1, 0, 1),
]


@pytest.fixture(params=["col2im", "flipped"])
def transpose_path(request, monkeypatch):
    """The stride-1 transposed convolution (the conv's input gradient) has two routes, picked
    by cost: GEMM + col2im, or a convolution with the flipped filters. Force each."""
    from nnviz import functional
    monkeypatch.setattr(functional.conv, "_col2im_cheaper", lambda *a: request.param == "col2im")
    return request.param


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", DECONV_CASES)
def test_conv_transpose2d_matches_torch(case, dtype, col_blocks, transpose_path):
    shape, o, k, s, p, op, d = case
    rng = numpy.random.default_rng(1)
    layer = L.ConvTranspose2d(shape[1], o, k, stride=s, padding=p, output_padding=op,
                              dilation=d, dtype=dtype)
    layer.weight = _rand(rng, layer.weight.shape, dtype)
    layer.bias = _rand(rng, layer.bias.shape, dtype)
    x = _rand(rng, shape, dtype)
    y = layer.forward(x)
    tx, tw, tb = _t(x, True), _t(layer.weight, True), _t(layer.bias, True)
    ty = TF.conv_transpose2d(tx, tw, tb, stride=s, padding=p, output_padding=op, dilation=d)
    assert y.shape == tuple(ty.shape)
    assert rel_err(y, ty.detach()) < TOL[dtype]
    dy = _rand(rng, y.shape, dtype)
    dx = layer.backward(dy)
    ty.backward(_t(dy))
    assert rel_err(dx, tx.grad) < TOL[dtype]
    assert rel_err(layer.grad_weight, tw.grad) < TOL[dtype]
    assert rel_err(layer.grad_bias, tb.grad) < TOL[dtype]


WINOGRAD_CASES = [
    # (N, C, H, W), O, padding: at least 16 channels each way, odd and even sizes
    ((2, 16, 9, 8), 17, 1),
    ((1, 16, 7, 7), 20, 1),
    ((3, 18, 10, 11), 16, 0),
    ((1, 16, 5, 6), 16, 2),
    ((1, 24, 3, 3), 16, 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", WINOGRAD_CASES)
def test_winograd_conv_matches_torch(case, dtype, col_blocks):
    """Winograd F(2×2, 3×3) (Lavin & Gray 2016): forward and input gradient (its transposed
    convolution, with the filters flipped inside the transform) against torch's conv2d; with
    one tile row per block under ``col_blocks="rows"``."""
    shape, o, p = case
    rng = numpy.random.default_rng(4)
    layer = L.Conv2d(shape[1], o, 3, padding=p, dtype=dtype)
    layer.weight = _rand(rng, layer.weight.shape, dtype)
    layer.bias = _rand(rng, layer.bias.shape, dtype)
    x = _rand(rng, shape, dtype)
    from nnviz import functional
    with functional.conv_algorithm("winograd"):
        y = layer.forward(x)
        dy = _rand(rng, y.shape, dtype)
        dx = layer.backward(dy)
    assert functional.get_conv_algorithm() == "direct"     # scoped: restored after the block
    tx, tw, tb = _t(x, True), _t(layer.weight, True), _t(layer.bias, True)
    ty = TF.conv2d(tx, tw, tb, padding=p)
    ty.backward(_t(dy))
    assert y.shape == tuple(ty.shape) and y.dtype == dtype and dx.dtype == dtype
    assert rel_err(y, ty.detach()) < TOL[dtype]
    assert rel_err(dx, tx.grad) < TOL[dtype]
    assert rel_err(layer.grad_weight, tw.grad) < TOL[dtype]


def test_winograd_transform_of_flipped_filters():
    """``winograd_filters(w, flip=True)`` is the transform of the filters rotated by 180°."""
    from nnviz import functional
    w = numpy.random.default_rng(5).standard_normal((4, 3, 3, 3))
    assert rel_err(functional.winograd_filters(w, flip=True),
                   functional.winograd_filters(numpy.ascontiguousarray(w[:, :, ::-1, ::-1]))) < 1e-15


def test_conv_algorithm_is_checked():
    from nnviz import functional
    with pytest.raises(ValueError, match="unknown convolution algorithm 'fft'.*direct, winograd"):
        with functional.conv_algorithm("fft"):
            pass
    with pytest.raises(ValueError, match="unknown convolution algorithm"):
        functional.conv2d(numpy.zeros((1, 16, 4, 4)), numpy.zeros((16, 16, 3, 3)), algorithm="fast")


def _tie_free(rng, shape, dtype):
    """Distinct values (a permutation), so no pooling window has a tie."""
    n = int(numpy.prod(shape))
    return (rng.permutation(n).reshape(shape) / n - 0.5).astype(dtype)


POOL_CASES = [
    # (N, C, H, W), k, stride, padding
    ((2, 3, 8, 8), 2, None, 0),
    ((1, 2, 9, 7), 2, 2, 0),
    ((2, 2, 9, 10), 3, 2, 1),
    ((1, 3, 10, 9), (3, 2), (2, 1), (1, 0)),
    ((1, 2, 7, 7), 3, 1, 1),
    ((1, 2, 9, 9), 3, 3, 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool_switches_and_gradient_match_torch(case, dtype):
    shape, k, s, p = case
    rng = numpy.random.default_rng(2)
    x = _tie_free(rng, shape, dtype)
    layer = L.MaxPool2d(k, s, p)
    y = layer.forward(x)
    tx = _t(x, True)
    ty, tidx = TF.max_pool2d(tx, k, s, p, return_indices=True)
    assert rel_err(y, ty.detach()) == 0
    numpy.testing.assert_array_equal(layer.switches, tidx.numpy())
    dy = _rand(rng, y.shape, dtype)
    ty.backward(_t(dy))
    # the gradient is the same under every rule: pooling routes through its switches
    for rule in ("backprop", "deconvnet", "guided"):
        assert rel_err(layer.backward(dy, rule), tx.grad) < TOL[dtype]


POOL_TIE_CASES = [((2, 3, 8, 8), 2, 2, 0), ((1, 2, 9, 7), 2, 2, 0), ((2, 2, 9, 10), 3, 2, 1),
                  ((1, 2, 7, 7), 3, 1, 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_TIE_CASES)
@pytest.mark.parametrize("nan", [False, True])
def test_max_pool_ties_and_nans_match_torch(case, dtype, nan):
    """Ties (values drawn from {-1, 0, 1}) keep PyTorch's first maximum, and a NaN wins its
    window as in PyTorch, both on the 2×2 fast path (first two cases) and the general one."""
    shape, k, s, p = case
    rng = numpy.random.default_rng(3)
    x = rng.integers(-1, 2, shape).astype(dtype)
    if nan:
        x.reshape(-1)[rng.choice(x.size, 4, replace=False)] = numpy.nan
    layer = L.MaxPool2d(k, s, p)
    y = layer.forward(x)
    ty, tidx = TF.max_pool2d(_t(x), k, s, p, return_indices=True)
    numpy.testing.assert_array_equal(y, ty.numpy())
    numpy.testing.assert_array_equal(layer.switches, tidx.numpy())


def _unpool_cases():
    """Non-overlapping windows (max_unpool2d is undefined where switches repeat); the default
    output size only where it is the pooled input's (else the switches index another plane)."""
    for shape, k, s, p in POOL_CASES:
        kk, ss = (k, k) if s is None else (k, s)
        if ss != kk:
            continue
        yield (shape, k, s, p), "input"
        out = (shape[2] + 2 * p - k) // ss + 1
        if (out - 1) * ss - 2 * p + k == shape[2] and shape[2] == shape[3]:
            yield (shape, k, s, p), None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case,output_size", list(_unpool_cases()))
def test_max_unpool_matches_torch(case, dtype, output_size):
    shape, k, s, p = case
    rng = numpy.random.default_rng(3)
    x = _tie_free(rng, shape, dtype)
    pool = L.MaxPool2d(k, s, p)
    y = pool.forward(x)
    size = shape[2:] if output_size == "input" else None
    unpool = L.MaxUnpool2d(k, s, p)
    z = unpool.forward(y, pool.switches, output_size=size)
    ty = _t(y, True)
    tz = TF.max_unpool2d(ty, torch.from_numpy(pool.switches), k, s, p, output_size=size)
    assert z.shape == tuple(tz.shape)
    assert rel_err(z, tz.detach()) == 0
    dz = _rand(rng, z.shape, dtype)
    tz.backward(_t(dz))
    assert rel_err(unpool.backward(dz), ty.grad) == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_avg_pool_matches_torch(case, dtype):
    shape, k, s, p = case
    rng = numpy.random.default_rng(4)
    x = _rand(rng, shape, dtype)
    layer = L.AvgPool2d(k, s, p)
    y = layer.forward(x)
    tx = _t(x, True)
    ty = TF.avg_pool2d(tx, k, s, p)
    assert rel_err(y, ty.detach()) < TOL[dtype]
    dy = _rand(rng, y.shape, dtype)
    ty.backward(_t(dy))
    assert rel_err(layer.backward(dy), tx.grad) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,out", [((3, 7), 5), ((1, 12), 1), ((4, 2), 6)])
def test_linear_matches_torch(shape, out, dtype):
    rng = numpy.random.default_rng(5)
    layer = L.Linear(shape[1], out, dtype=dtype)
    layer.weight = _rand(rng, layer.weight.shape, dtype)
    layer.bias = _rand(rng, layer.bias.shape, dtype)
    x = _rand(rng, shape, dtype)
    y = layer.forward(x)
    tx, tw, tb = _t(x, True), _t(layer.weight, True), _t(layer.bias, True)
    ty = TF.linear(tx, tw, tb)
    assert rel_err(y, ty.detach()) < TOL[dtype]
    dy = _rand(rng, y.shape, dtype)
    ty.backward(_t(dy))
    assert rel_err(layer.backward(dy), tx.grad) < TOL[dtype]
    assert rel_err(layer.grad_weight, tw.grad) < TOL[dtype]
    assert rel_err(layer.grad_bias, tb.grad) < TOL[dtype]


def test_flatten_matches_torch_order():
    x = numpy.arange(2 * 3 * 4 * 5, dtype=numpy.float64).reshape(2, 3, 4, 5)
    layer = L.Flatten()
    y = layer.forward(x)
    numpy.testing.assert_array_equal(y, torch.flatten(torch.from_numpy(x), 1).numpy())
    numpy.testing.assert_array_equal(layer.backward(y), x)


class _RuleReLU(torch.autograd.Function):
    """The three ReLU backward rules written from their formulas (design contract)."""

    @staticmethod
    def forward(ctx, x, rule):
        ctx.save_for_backward(x)
        ctx.rule = rule
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        if ctx.rule == "backprop":
            return dy * (x > 0), None
        if ctx.rule == "deconvnet":
            return dy * (dy > 0), None
        return dy * (x > 0) * (dy > 0), None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rule", ["backprop", "deconvnet", "guided"])
@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (3, 7)])
def test_relu_rules_match_torch_function(rule, dtype, shape):
    rng = numpy.random.default_rng(6)
    x = _rand(rng, shape, dtype)
    x[numpy.abs(x) < 0.05] += 0.1        # away from the kink
    dy = _rand(rng, shape, dtype)
    layer = L.ReLU()
    y = layer.forward(x)
    tx = _t(x, True)
    ty = _RuleReLU.apply(tx, rule)
    ty.backward(_t(dy))
    numpy.testing.assert_array_equal(y, ty.detach().numpy())
    numpy.testing.assert_array_equal(layer.backward(dy, rule), tx.grad.numpy())
    if rule == "backprop":   # and the plain rule is autograd's own gradient of relu
        tx2 = _t(x, True)
        TF.relu(tx2).backward(_t(dy))
        numpy.testing.assert_array_equal(layer.backward(dy, rule), tx2.grad.numpy())


def test_parameter_gradients_skipped_when_not_required():
    rng = numpy.random.default_rng(7)
    for layer, x in [(L.Conv2d(2, 3, 3), _rand(rng, (1, 2, 5, 5), numpy.float64)),
                     (L.Linear(4, 2), _rand(rng, (2, 4), numpy.float64)),
                     (L.ConvTranspose2d(2, 3, 3), _rand(rng, (1, 2, 5, 5), numpy.float64))]:
        layer.requires_grad = False
        layer.weight = _rand(rng, layer.weight.shape, numpy.float32)
        y = layer.forward(x)
        layer.backward(numpy.ones_like(y))
        assert not hasattr(layer, "grad_weight")
        assert layer.input is None   # the input is not kept when no weight gradient is asked
