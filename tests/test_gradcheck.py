"""Finite-difference gradient checks in float64 (central differences) for every layer and for
a small whole net: the hand-written backward equals the numerical derivative of the forward."""
import numpy
import pytest

from nnviz import layers as L
from nnviz.models import Net


def numerical_grad(f, x, eps=1e-6):
    """Central differences of the scalar f at x (float64)."""
    g = numpy.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return g


def check_layer(layer, x, params=()):
    rng = numpy.random.default_rng(0)
    y = layer.forward(x)
    w = rng.standard_normal(y.shape)          # loss = sum(w * y)
    loss = lambda: float((w * layer.forward(x)).sum())
    layer.forward(x)
    dx = layer.backward(w)
    numpy.testing.assert_allclose(dx, numerical_grad(loss, x), rtol=1e-6, atol=1e-8)
    for p in params:
        numpy.testing.assert_allclose(getattr(layer, f"grad_{p}"),
                                      numerical_grad(loss, getattr(layer, p)), rtol=1e-6, atol=1e-8)


def _f64(layer, rng):
    for p in layer.params:
        if getattr(layer, p) is not None:
            setattr(layer, p, rng.standard_normal(getattr(layer, p).shape))
    return layer


@pytest.mark.parametrize("geom", [dict(stride=1, padding=1), dict(stride=2, padding=0),
                                  dict(stride=(2, 1), padding=(1, 2), dilation=(2, 1))])
def test_conv2d_gradcheck(geom):
    rng = numpy.random.default_rng(1)
    layer = _f64(L.Conv2d(2, 3, 3, **geom), rng)
    check_layer(layer, rng.standard_normal((2, 2, 6, 7)), ("weight", "bias"))


@pytest.mark.parametrize("geom", [dict(stride=1), dict(stride=2, padding=1, output_padding=1),
                                  dict(stride=(2, 1), dilation=(1, 2))])
def test_conv_transpose2d_gradcheck(geom):
    rng = numpy.random.default_rng(2)
    layer = _f64(L.ConvTranspose2d(2, 3, 3, **geom), rng)
    check_layer(layer, rng.standard_normal((2, 2, 4, 5)), ("weight", "bias"))


def test_linear_gradcheck():
    rng = numpy.random.default_rng(3)
    check_layer(_f64(L.Linear(5, 4), rng), rng.standard_normal((3, 5)), ("weight", "bias"))


def test_relu_gradcheck():
    rng = numpy.random.default_rng(4)
    x = rng.standard_normal((2, 3, 4, 4))
    x[numpy.abs(x) < 0.01] = 0.5             # eps never crosses the kink
    check_layer(L.ReLU(), x)


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_max_pool_gradcheck(k, s, p):
    rng = numpy.random.default_rng(5)
    x = rng.permutation(2 * 2 * 7 * 7).reshape(2, 2, 7, 7) / 10.0   # gaps of 0.1: no ties
    check_layer(L.MaxPool2d(k, s, p), x)


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1)])
def test_avg_pool_gradcheck(k, s, p):
    rng = numpy.random.default_rng(6)
    check_layer(L.AvgPool2d(k, s, p), rng.standard_normal((2, 2, 7, 7)))


def test_max_unpool_gradcheck():
    rng = numpy.random.default_rng(7)
    x = rng.permutation(2 * 8 * 8).reshape(1, 2, 8, 8) / 10.0
    pool = L.MaxPool2d(2)
    y = pool.forward(x)
    unpool = L.MaxUnpool2d(2)
    z = unpool.forward(y, pool.switches)
    w = rng.standard_normal(z.shape)
    loss = lambda: float((w * unpool.forward(y, pool.switches)).sum())
    numpy.testing.assert_allclose(unpool.backward(w), numerical_grad(loss, y), rtol=1e-6, atol=1e-8)


def test_flatten_gradcheck():
    rng = numpy.random.default_rng(8)
    check_layer(L.Flatten(), rng.standard_normal((2, 3, 2, 2)))


@pytest.mark.parametrize("pool", [L.MaxPool2d, L.AvgPool2d])
def test_small_net_gradcheck(pool):
    """A conv-relu-pool-conv-relu-pool-flatten-linear net: input and parameter gradients."""
    rng = numpy.random.default_rng(9)
    net = Net([("conv1", L.Conv2d(2, 3, 3, padding=1)), ("relu1", L.ReLU()), ("pool1", pool(2)),
               ("conv2", L.Conv2d(3, 4, 3, padding=1)), ("relu2", L.ReLU()), ("pool2", pool(2)),
               ("flatten", L.Flatten()), ("fc", L.Linear(4 * 2 * 2, 3))], device="cpu")
    for layer in net.layers.values():
        _f64(layer, rng)
    net.requires_grad_(True)
    x = rng.standard_normal((2, 2, 8, 8))
    y = net.forward(x)
    w = rng.standard_normal(y.shape)
    loss = lambda: float((w * net.forward(x)).sum())
    net.forward(x)
    dx = net.backward(w, start="fc")
    numpy.testing.assert_allclose(dx, numerical_grad(loss, x), rtol=1e-5, atol=1e-8)
    for name in ("conv1", "conv2", "fc"):
        layer = net.layers[name]
        numpy.testing.assert_allclose(layer.grad_weight, numerical_grad(loss, layer.weight),
                                      rtol=1e-5, atol=1e-8)
