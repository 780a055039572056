"""Rendering as the field does (issue 19, item 3): gradient maps as |g| clipped at the 99th
percentile, signed maps symmetric about zero clipped at the 99th percentile of |x|, and
Captum's cumulative-mass clipping; SmoothGrad-Squared.

Oracles: ``numpy.percentile`` computed here directly (PAIR's ``saliency`` library's rule),
Captum's own ``captum.attr._utils.visualization._normalize_attr``, and the PyTorch twin's
autograd gradients for SmoothGrad-Squared.
"""
import numpy
import pytest
import torch
from torch_twin import twin

from nnviz import cli, io, methods, render

SHAPES = [(3, 17, 23), (3, 64, 48)]


def sample(shape, seed, heavy=True):
    """A signed map with heavy tails (a few pixels dominate, as gradients do) and some exact
    zeros (dead ReLUs)."""
    rng = numpy.random.default_rng(seed)
    a = rng.standard_normal(shape)
    if heavy:
        a *= rng.standard_exponential(shape) ** 3
    a[..., :2, :] = 0
    return a


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("percentile", [99.0, 95.0])
def test_magnitude_is_max_abs_clipped_at_percentile(shape, percentile):
    """render.magnitude: max over colours of |g|, divided by numpy's percentile of it, clipped
    to 0..1, times 255 (the oracle: numpy.percentile on the map, here)."""
    g = sample(shape, 0)
    m = numpy.abs(g).max(axis=0)
    p = numpy.percentile(m, percentile)
    want = numpy.round(255 * numpy.clip(m / p, 0, 1))
    got = render.magnitude(g, percentile=percentile)
    assert got.dtype == numpy.uint8 and got.shape == shape[1:]
    assert numpy.array_equal(got, want.astype(numpy.uint8))
    assert (got == 255).mean() == pytest.approx(1 - percentile / 100, abs=2 / m.size + 0.005)


@pytest.mark.parametrize("shape", SHAPES)
def test_diverging_map_symmetric_at_percentile_of_abs(shape):
    """render.diverging_map: the sum over colours, divided by the 99th percentile of its
    absolute value, clipped to -1..1: +1 pure red, -1 pure blue, 0 white (colours written out
    here)."""
    g = sample(shape, 1)
    s = g.sum(axis=0)
    v = numpy.clip(s / numpy.percentile(numpy.abs(s), 99), -1, 1)[..., None]
    white, red, blue = numpy.array([255.0] * 3), numpy.array([255.0, 0, 0]), numpy.array([0, 0, 255.0])
    want = numpy.where(v >= 0, white + v * (red - white), white + (-v) * (blue - white)).round()
    got = render.diverging_map(g)
    assert numpy.array_equal(got, want.astype(numpy.uint8))
    assert (got == [255, 0, 0]).all(axis=2).any() and (got == [0, 0, 255]).all(axis=2).any()


@pytest.mark.parametrize("sign", render.SIGNS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normalize_percentile_matches_numpy(sign, seed):
    """normalize(clip="percentile"): a / percentile(|a|) clipped, after the sign's transform."""
    a = sample((40, 31), seed)
    t = {"absolute_value": numpy.abs(a), "all": a, "positive": numpy.maximum(a, 0),
         "negative": numpy.minimum(a, 0)}[sign]
    p = numpy.percentile(numpy.abs(t), 99)
    if not p > 0:
        p = numpy.abs(t).max()
    if sign == "negative":           # Captum's convention: the negative part's magnitude
        p = -p
    assert numpy.allclose(render.normalize(a, sign, 99), numpy.clip(t / p, -1, 1), rtol=0, atol=1e-15)


def captum_normalize():
    try:
        from captum.attr._utils.visualization import _normalize_attr
    except Exception as e:  # noqa: BLE001 - any import failure (torchvision, matplotlib) skips
        pytest.skip(f"captum's visualization is not importable: {e}")
    return _normalize_attr


@pytest.mark.parametrize("sign", render.SIGNS)
@pytest.mark.parametrize("outlier_perc", [2, 1, 0.5])
@pytest.mark.parametrize("seed", [3, 4])
def test_normalize_cumulative_matches_captum(sign, outlier_perc, seed):
    """normalize(clip="cumulative", percentile=100 - outlier_perc) is Captum's _normalize_attr
    (its cumulative-sum threshold)."""
    _normalize_attr = captum_normalize()
    a = sample((33, 29), seed, heavy=seed == 3)
    want = _normalize_attr(a.copy(), sign, outlier_perc)
    got = render.normalize(a, sign, 100 - outlier_perc, clip="cumulative")
    assert numpy.allclose(got, want, rtol=1e-12, atol=1e-15)


def test_zero_map_stays_zero():
    """A map that is zero everywhere renders as zero (black magnitude, white diverging), no NaN."""
    z = numpy.zeros((3, 8, 8))
    assert (render.magnitude(z) == 0).all()
    assert (render.diverging_map(z) == 255).all()
    assert (render.normalize(z[0], "all") == 0).all()


def test_smoothgrad_squared_matches_torch(net):
    """SmoothGrad-Squared (Hooker et al. 2019): the mean of the squared gradients over the
    documented noise draws; the reference squares torch autograd gradients."""
    rng0 = numpy.random.default_rng(5)
    x = net.preprocess(io.load_image("sample:chelsea", (32, 32)))[0].astype(numpy.float64)
    x = numpy.stack([x, x + rng0.normal(0, 5.0, x.shape)])
    target, n, sigma = ("relu4_1", 6), 2, 0.15
    got = methods.smoothgrad("saliency", net, x, target, n=n, sigma=sigma, seed=3, squared=True)
    tw = twin(net, torch.float64)
    rng = numpy.random.default_rng(3)
    spread = x.reshape(len(x), -1).max(1) - x.reshape(len(x), -1).min(1)
    ref = numpy.zeros_like(x)
    for _ in range(n):
        xt = tw.tensor(x + sigma * spread[:, None, None, None] * rng.standard_normal(x.shape),
                       requires_grad=True)
        (g,) = torch.autograd.grad(tw.forward(xt, until="relu4_1")["relu4_1"][:, 6].sum(), xt)
        ref += g.numpy() ** 2 / n
    assert numpy.abs(ref).max() > 0
    assert numpy.abs(got - ref).max() <= 1e-10 * numpy.abs(ref).max()


def test_smoothgrad_squared_command(tmp_path, capsys):
    """nnviz smoothgrad --squared writes a gray map that is not blank."""
    from PIL import Image
    rc = cli.main(["smoothgrad", "--squared", "--samples", "2", "--weights", "random", "--size", "32",
                   "--target", "relu4_3:3", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    (path,) = out.split()
    img = numpy.asarray(Image.open(path))
    assert img.std() > 5 and (img[..., 0] == img[..., 1]).all()
