"""Style transfer (Gatys, Ecker & Bethge 2015/2016; design contract "Style transfer").

Oracles: a PyTorch 2 autograd implementation of the contract's formulas on the torch twin of
the net (tests/torch_twin.py: torch.nn.functional layers holding the net's weights), written
here independently of nnviz.style; central finite differences in float64; scipy's L-BFGS-B
driven by the torch loss; Pillow's YCbCr conversion for original colours.
"""
import os

import numpy
import pytest
import torch
from conftest import rel_err
from torch_twin import twin

import nnviz
from nnviz.errors import InputError
from nnviz.io import load_image, save_png
from nnviz.methods import style as S

CL, SL = S.CONTENT_LAYERS, S.STYLE_LAYERS


# ---------------------------------------------------------------------------------------
# the reference: the contract's formulas with torch autograd
# ---------------------------------------------------------------------------------------

class TorchGatys:
    """``loss, grad = ref(x)`` by torch autograd: content ½Σ(F−P)², style 1/(4N²)Σ(G−A)² with
    G = FFᵀ/M (or 1/N Σ(μ−a)² for the mean statistic), TV as squared neighbour differences."""

    def __init__(self, net, content, styles, blend=None, cl=CL, sl=SL, cw=1.0, sw=1.0, tw=1.0,
                 statistic="gram", dtype=torch.float64):
        self.t = twin(net, dtype=dtype)
        self.dtype, self.cl, self.sl, self.statistic = dtype, cl, sl, statistic
        self.cw, self.sw, self.tw = cw, sw, tw
        names = self.t.names
        self.deepest = max(cl + sl, key=names.index)
        blend = [1.0 / len(styles)] * len(styles) if blend is None else \
            [b / sum(blend) for b in blend]
        with torch.no_grad():
            acts = self.t.forward(content, until=self.deepest)
            self.P = {n: self.feat(acts[n]) for n in cl}
            self.A = {}
            for s, b in zip(styles, blend):
                acts = self.t.forward(s, until=self.deepest)
                for n in sl:
                    self.A[n] = self.A.get(n, 0) + b * self.stat(self.feat(acts[n]))

    @staticmethod
    def feat(a):
        return a.reshape(a.shape[1], -1)

    def stat(self, F):
        return F @ F.T / F.shape[1] if self.statistic == "gram" else F.mean(dim=1)

    def __call__(self, x):
        xt = torch.tensor(numpy.asarray(x), dtype=self.dtype, requires_grad=True)
        acts = self.t.forward(xt, until=self.deepest)
        content = sum(0.5 * ((self.feat(acts[n]) - self.P[n]) ** 2).sum() for n in self.cl)
        style = 0
        for n in self.sl:
            d = self.stat(self.feat(acts[n])) - self.A[n]
            N = d.shape[0]
            style = style + ((d ** 2).sum() / (4 * N * N) if self.statistic == "gram"
                             else (d ** 2).sum() / N)
        tv = ((xt[..., 1:, :] - xt[..., :-1, :]) ** 2).sum() + \
            ((xt[..., :, 1:] - xt[..., :, :-1]) ** 2).sum()
        total = self.cw * content + self.sw / len(self.sl) * style + self.tw * tv
        total.backward()
        return float(total.detach()), xt.grad.double().numpy()


# ---------------------------------------------------------------------------------------
# fixtures: the random VGG19, conv part (He-normal weights, seeded)
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vgg19_max():
    return nnviz.vgg19(seed=0, include_top=False)


@pytest.fixture(scope="module")
def vgg19_avg():
    return nnviz.vgg19(seed=0, include_top=False, pooling="avg")


def batch(rng, h, w):
    """A random preprocessed-looking batch (caffe scale), continuous: no pooling ties."""
    return rng.uniform(-110, 120, (1, 3, h, w))


# ---------------------------------------------------------------------------------------
# loss and gradient against torch
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("style_shapes,blend", [([(40, 56)], None),
                                                ([(64, 36), (36, 52)], [0.7, 0.3])])
def test_gatys_loss_matches_torch_float64(request, pool, style_shapes, blend):
    """GatysLoss (float64) equals the torch autograd loss and gradient at 1e-8, for one and
    two style images of sizes other than the content's (48×40)."""
    net = request.getfixturevalue(f"vgg19_{pool}")
    rng = numpy.random.default_rng(1)
    content = batch(rng, 48, 40)
    styles = [batch(rng, h, w) for h, w in style_shapes]
    x = batch(rng, 48, 40)
    weights = dict(content_weight=0.5, style_weight=30.0, tv_weight=0.02)
    obj = S.GatysLoss(net, content, styles, style_blend_weights=blend, dtype=numpy.float64,
                      **weights)
    ref = TorchGatys(net, content, styles, blend, cw=0.5, sw=30.0, tw=0.02)
    loss, grad = obj(x)
    ref_loss, ref_grad = ref(x)
    assert grad.dtype == numpy.float64 and grad.shape == x.shape
    assert abs(loss - ref_loss) / abs(ref_loss) < 1e-8
    assert rel_err(grad, ref_grad) < 1e-8
    # each term is present and contributes (a test where a term vanishes could not fail)
    assert min(obj.terms["content"], obj.terms["style"], obj.terms["tv"]) > 1e-3 * loss
    assert obj.terms["total"] == pytest.approx(loss)


def test_gatys_loss_float32_matches_torch(vgg19_max):
    """The float32 objective (the default) against float64 torch, at 1e-3."""
    rng = numpy.random.default_rng(2)
    content, styles, x = batch(rng, 40, 48), [batch(rng, 56, 32)], batch(rng, 40, 48)
    obj = S.GatysLoss(vgg19_max, content, styles, content_weight=1.0, style_weight=10.0,
                      tv_weight=0.01)
    ref = TorchGatys(vgg19_max, content, styles, cw=1.0, sw=10.0, tw=0.01)
    loss, grad = obj(x)
    ref_loss, ref_grad = ref(x)
    assert grad.dtype == numpy.float64
    assert abs(loss - ref_loss) / abs(ref_loss) < 1e-4
    assert rel_err(grad, ref_grad) < 1e-3


@pytest.mark.parametrize("nstyles", [1, 2])
def test_mean_statistic_matches_torch(vgg19_max, nstyles):
    """The channel-mean statistic 1/N Σ(μ−a)² (Li et al. 2017) and its hand-written gradient
    against torch autograd (float64)."""
    rng = numpy.random.default_rng(3)
    content, x = batch(rng, 32, 48), batch(rng, 32, 48)
    styles = [batch(rng, 40 + 8 * i, 36) for i in range(nstyles)]
    blend = [0.25, 0.75][:nstyles] if nstyles == 2 else None
    obj = S.GatysLoss(vgg19_max, content, styles, content_weight=0.1, style_weight=100.0,
                      tv_weight=0.01, style_blend_weights=blend, dtype=numpy.float64,
                      statistic="mean")
    ref = TorchGatys(vgg19_max, content, styles, blend, cw=0.1, sw=100.0, tw=0.01,
                     statistic="mean")
    loss, grad = obj(x)
    ref_loss, ref_grad = ref(x)
    assert obj.terms["style"] > 1e-3 * loss
    assert abs(loss - ref_loss) / abs(ref_loss) < 1e-8
    assert rel_err(grad, ref_grad) < 1e-8


@pytest.mark.parametrize("statistic", ["gram", "mean"])
def test_objective_finite_differences(vgg19_avg, statistic):
    """Central differences (float64) of the whole objective along random directions and at
    single pixels equal the hand-written gradient, on a 24×20 image."""
    rng = numpy.random.default_rng(4)
    content, styles, x = batch(rng, 24, 20), [batch(rng, 20, 28)], batch(rng, 24, 20)
    obj = S.GatysLoss(vgg19_avg, content, styles, content_weight=1.0, style_weight=50.0,
                      tv_weight=0.05, dtype=numpy.float64, statistic=statistic)
    _, grad = obj(x)
    eps = 1e-5
    dirs = [rng.standard_normal(x.shape) for _ in range(3)]
    for k in rng.choice(x.size, 4, replace=False):
        e = numpy.zeros(x.size)
        e[k] = 1.0
        dirs.append(e.reshape(x.shape))
    for v in dirs:
        fd = (obj(x + eps * v)[0] - obj(x - eps * v)[0]) / (2 * eps)
        an = float((grad * v).sum())
        assert abs(fd - an) <= 1e-5 * max(abs(an), 1e-3 * numpy.abs(grad).max()), (fd, an)


def test_layer_loss_gradients_by_hand():
    """The per-layer formulas alone (style dL/dF = (G−A)F/(N²M); mean; TV) against torch."""
    rng = numpy.random.default_rng(5)
    F, A = rng.standard_normal((6, 35)), rng.standard_normal((6, 6))
    A = A + A.T
    a = rng.standard_normal(6)
    Ft = torch.tensor(F, requires_grad=True)
    (1 / (4 * 36) * ((Ft @ Ft.T / 35 - torch.tensor(A)) ** 2).sum()).backward()
    loss, dF = S.style_loss(F, A)
    numpy.testing.assert_allclose(dF, Ft.grad.numpy(), rtol=1e-12, atol=1e-14)
    Ft = torch.tensor(F, requires_grad=True)
    (((Ft.mean(1) - torch.tensor(a)) ** 2).sum() / 6).backward()
    numpy.testing.assert_allclose(S.mean_loss(F, a)[1], Ft.grad.numpy(), rtol=1e-12, atol=1e-14)
    x = rng.standard_normal((1, 3, 5, 7))
    xt = torch.tensor(x, requires_grad=True)
    tv = ((xt[..., 1:, :] - xt[..., :-1, :]) ** 2).sum() + ((xt[..., 1:] - xt[..., :-1]) ** 2).sum()
    tv.backward()
    v, g = S.tv_loss(x)
    assert v == pytest.approx(float(tv), rel=1e-12)
    numpy.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------
# the optimization against the same L-BFGS driven by torch
# ---------------------------------------------------------------------------------------

def test_lbfgs_reaches_the_torch_driven_loss():
    """From the same start (the content), 50 iterations of scipy's L-BFGS-B at 128 px on the
    random VGG19 (conv part, to relu5_1, float32 features) reach a loss within 1% of the same
    optimizer driven by the torch autograd loss; both lower it at least 3-fold."""
    from scipy.optimize import minimize
    net = nnviz.vgg19(seed=0, include_top=False, pooling="avg")
    content = net.preprocess(load_image("sample:astronaut", (128, 128)))
    style = net.preprocess(load_image("sample:chelsea", 96))
    weights = dict(content_weight=1.0, style_weight=30.0, tv_weight=1e-2)
    ours = S.GatysLoss(net, content, [style], **weights)
    ref = TorchGatys(net, content, [style], cw=1.0, sw=30.0, tw=1e-2, dtype=torch.float32)
    x0 = numpy.asarray(content, dtype=numpy.float64)
    options = dict(maxiter=50, maxcor=20, ftol=0.0, gtol=0.0)
    finals = []
    for f in (ours, ref):
        res = minimize(lambda v: tuple(r if i == 0 else r.ravel()
                                       for i, r in enumerate(f(v.reshape(x0.shape)))),  # noqa: B023
                       x0.ravel(), jac=True, method="L-BFGS-B", options=options)
        assert res.nit >= 45, res.message
        finals.append(float(res.fun))
    start = ours(x0)[0]
    assert finals[1] < start / 3
    assert abs(finals[0] - finals[1]) / finals[1] < 0.01, finals


# ---------------------------------------------------------------------------------------
# transfer(): modes, colours, stopping
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vgg16_small():
    return nnviz.vgg16(seed=0, include_top=False, pooling="avg")


def _img(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=numpy.uint8)


@pytest.mark.parametrize("mode,statistic", [("transfer", "gram"), ("texture", "gram"),
                                            ("content", "gram"), ("transfer", "mean")])
def test_transfer_lowers_the_loss(vgg16_small, mode, statistic):
    """A few L-BFGS iterations lower the objective in every mode; the image has the working
    size (longer side image_size, the content's aspect)."""
    rng = numpy.random.default_rng(6)
    content, style = _img(rng, 30, 40), _img(rng, 36, 36)
    seen = []
    r = S.transfer(vgg16_small, content, [style], image_size=32, max_iter=6, mode=mode,
                   style_statistic=statistic, content_weight=1.0, style_weight=100.0,
                   tv_weight=1e-2, callback=seen.append, snapshot_every=3)
    assert r.status == "done", r.message
    assert r.image.shape == (24, 32, 3) and r.image.dtype == numpy.uint8
    assert 1 <= len(r.history) <= 6 and len(seen) == len(r.history)
    assert r.history[-1]["loss"] < r.history[0]["loss"]
    assert ("image" in seen[2]) and all("image" not in s for s in seen[:2])
    if mode == "content":
        assert r.history[-1]["style"] == 0.0 and r.history[-1]["content"] > 0
    if mode == "texture":
        assert r.history[-1]["content"] == 0.0 and r.history[-1]["style"] > 0


def test_original_colors_against_pillow():
    """original_colors keeps the content's chroma and the result's luminance, checked with
    Pillow's JPEG YCbCr conversion."""
    from PIL import Image
    rng = numpy.random.default_rng(7)
    gen = _img(rng, 20, 30)
    content = rng.integers(70, 186, (20, 30, 3), dtype=numpy.uint8)   # moderate chroma
    out = S.original_colors(gen, content)
    ycc = lambda a: numpy.asarray(Image.fromarray(a).convert("YCbCr")).astype(int)
    # pixels where a channel clipped cannot hold the content's chroma at that luminance
    inside = ((out > 0) & (out < 255)).all(axis=-1)
    assert inside.mean() > 0.5
    # rounding to uint8 moves the components by a couple of levels at most
    assert numpy.abs(ycc(out)[..., 0] - ycc(gen)[..., 0])[inside].max() <= 2
    assert numpy.abs(ycc(out)[..., 1:] - ycc(content)[..., 1:])[inside].max() <= 2


def test_interrupt_keeps_the_best_image(vgg16_small):
    """Ctrl-C in the callback stops the run and returns the best image so far."""
    rng = numpy.random.default_rng(8)

    def stop(info):
        if info["iteration"] == 2:
            raise KeyboardInterrupt

    r = S.transfer(vgg16_small, _img(rng, 32, 32), [_img(rng, 32, 32)], image_size=32,
                   max_iter=20, callback=stop)
    assert r.status == "interrupted" and "interrupted" in r.message
    assert len(r.history) == 2 and r.image.shape == (32, 32, 3)
    assert r.loss <= r.history[-1]["loss"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the overflow is the point
def test_non_finite_is_reported(vgg16_small):
    """A loss that overflows stops the run plainly, with the last good image kept."""
    rng = numpy.random.default_rng(9)
    r = S.transfer(vgg16_small, _img(rng, 32, 32), [_img(rng, 32, 32)], image_size=32,
                   max_iter=5, content_weight=1e306, style_weight=1e306, init="noise",
                   dtype=numpy.float64)
    assert r.status == "non-finite" and "non-finite" in r.message
    assert r.image.shape == (32, 32, 3)


def test_bad_arguments(vgg16_small):
    rng = numpy.random.default_rng(10)
    c, s = vgg16_small.preprocess(_img(rng, 32, 32)), vgg16_small.preprocess(_img(rng, 32, 32))
    with pytest.raises(ValueError, match="2 style blend weights for 1"):
        S.GatysLoss(vgg16_small, c, [s], style_blend_weights=[0.5, 0.5])
    with pytest.raises(KeyError, match="relu9_9"):
        S.GatysLoss(vgg16_small, c, [s], style_layers=("relu9_9",))
    with pytest.raises(ValueError, match="content's shape"):
        S.GatysLoss(vgg16_small, c, [s])(numpy.zeros((1, 3, 48, 32)))
    with pytest.raises(InputError, match="needs at least one style"):
        S.transfer(vgg16_small, _img(rng, 32, 32), [], image_size=32)


def test_palette_quantizes():
    rng = numpy.random.default_rng(11)
    q = S.quantize(_img(rng, 20, 20), 4)
    assert q.shape == (20, 20, 3) and len(numpy.unique(q.reshape(-1, 3), axis=0)) <= 4


# ---------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------

def test_command_writes_the_content_size(tmp_path):
    """``nnviz style`` writes a PNG of the content's original size (chelsea 300×451) and
    refuses to write over an input."""
    from PIL import Image

    from nnviz.cli import main
    rng = numpy.random.default_rng(12)
    style_path = save_png(_img(rng, 40, 30), str(tmp_path / "style.png"))
    out = tmp_path / "res" / "out.png"
    rc = main(["style", "sample:chelsea", style_path, "--weights", "random", "--size", "32",
               "--iters", "3", "--output", str(out), "--quiet", "--snapshot-every", "2"])
    assert rc == 0 and out.exists()
    assert Image.open(out).size == (451, 300)
    assert (tmp_path / "res" / "out_iter0002.png").exists()
    before = open(style_path, "rb").read()
    rc = main(["style", "sample:chelsea", style_path, "--weights", "random", "--size", "32",
               "--iters", "1", "--output", style_path, "--force", "--quiet"])
    assert rc == 2 and open(style_path, "rb").read() == before
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]   # no temporary left
