"""Tests of nnviz.optimize: every hand-written objective and regularizer against a PyTorch
autograd twin of its formula (float64, 1e-6 relative), the NaN guard, and tiling.

Formulas checked: Mahendran & Vedaldi 2015 (α-norm eq. 3, TV_β eq. 5, the representation loss
eq. 1), keras-vis/Keras' "How CNNs see the world" (channel mean), Simonyan et al. 2013 eq. (1)
(class score, L2), TensorFlow's DeepDream tutorial (sum of layer means)."""
import numpy
import pytest
import torch
from conftest import rel_err
from torch_twin import twin

import nnviz
from nnviz.functional import resize_bilinear
from nnviz.layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU
from nnviz.methods import deepdream as D
from nnviz.methods import inversion as I
from nnviz.methods import maximization as M
from nnviz.methods import optimize as O

TOL = 1e-6


@pytest.fixture(scope="module")
def tnet(net):
    return twin(net, torch.float64)


def _x(shape, seed=0, scale=1.0):
    return numpy.random.default_rng(seed).standard_normal(shape) * scale


def _autograd(f, x):
    """Torch autograd of the summed per-image values of ``f`` at ``x``: (values, gradient)."""
    xt = torch.from_numpy(x).requires_grad_(True)
    v = f(xt)
    (g,) = torch.autograd.grad(v.sum(), xt)
    return v.detach().numpy(), g.numpy()


# -- regularizers ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 3, 8, 9), (2, 3, 5, 7)])
@pytest.mark.parametrize("p", [6, 2, 1.5])
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_lp_norm_matches_torch(shape, p, scale):
    """Σ|x/s|^p / (C·H·W) (Mahendran & Vedaldi's N_α, normalized) vs torch autograd."""
    x = _x(shape, 1)
    x = x + 0.1 * numpy.sign(x)                      # away from 0, where |x|^p has a kink
    v, g = O.lp_norm(x, p, scale)
    tv, tg = _autograd(lambda t: (t / scale).abs().pow(p).flatten(1).sum(1) / t[0].numel(), x)
    assert rel_err(v, tv) < TOL and rel_err(g, tg) < TOL


def _torch_tv(t, beta, scale):
    z = t / scale
    a = z[:, :, 1:, :-1] - z[:, :, :-1, :-1]
    b = z[:, :, :-1, 1:] - z[:, :, :-1, :-1]
    return (a * a + b * b).pow(beta / 2).flatten(1).sum(1) / t[0].numel()


@pytest.mark.parametrize("shape", [(1, 3, 6, 6), (2, 3, 7, 5)])
@pytest.mark.parametrize("beta", [1.5, 2.0, 3.0])
@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_total_variation_matches_torch(shape, beta, scale):
    """TV_β = Σ ((x[i+1,j]−x[i,j])² + (x[i,j+1]−x[i,j])²)^(β/2) / (C·H·W) (Mahendran & Vedaldi
    eq. 5, keras-vis) vs torch autograd; random inputs keep differences away from 0."""
    x = _x(shape, 2)
    v, g = O.total_variation(x, beta, scale)
    tv, tg = _autograd(lambda t: _torch_tv(t, beta, scale), x)
    assert rel_err(v, tv) < TOL and rel_err(g, tg) < TOL


def test_l2_decay_matches_torch():
    """Simonyan et al.'s ‖x/s‖²₂ vs torch autograd."""
    x = _x((2, 3, 4, 5), 3)
    v, g = O.l2_decay(x, 2.0)
    tv, tg = _autograd(lambda t: (t / 2.0).pow(2).flatten(1).sum(1), x)
    assert rel_err(v, tv) < TOL and rel_err(g, tg) < TOL


# -- objectives through the net -----------------------------------------------------------

@pytest.mark.parametrize("target", [("conv3_1", 5), ("relu2_2", 7), ("relu4_1", 2, (1, 2)),
                                    [("conv2_1", 0), ("conv2_1", 9)]])
def test_target_objective_matches_torch(net, tnet, target):
    """Channel mean over positions / one unit / a batch with one channel per image, through the
    random VGG16, vs torch autograd through the PyTorch twin (torch_twin)."""
    x = _x((2, 3, 36, 40), 4, 50.0)
    v, g = M.target_objective(net, x, target)
    ts = target if isinstance(target, list) else [target, target]

    def f(t):
        out = tnet.forward(t, until=ts[0][0])[ts[0][0]]
        vals = []
        for n, tg in enumerate(ts):
            a = out[n, tg[1]]
            vals.append(a[tg[2]] if len(tg) == 3 else a.mean())
        return torch.stack(vals)
    tv, tg = _autograd(f, x)
    assert rel_err(v, tv) < TOL and rel_err(g, tg) < TOL


@pytest.fixture(scope="module")
def top_net():
    """A tiny net with a classifier named fc8 (so that class targets apply) at 12×12 input."""
    rng = numpy.random.default_rng(5)
    layers = [("conv1_1", Conv2d(3, 4, 3, padding=1)), ("relu1_1", ReLU()),
              ("pool1", MaxPool2d(2, 2)), ("flatten", Flatten()), ("fc8", Linear(4 * 6 * 6, 5))]
    for _, layer in layers:
        if hasattr(layer, "weight"):
            layer.weight = rng.standard_normal(layer.weight.shape) * 0.3
            layer.bias = rng.standard_normal(layer.bias.shape) * 0.1
            layer.requires_grad = False
    return nnviz.Net(layers, arch="custom")


@pytest.mark.parametrize("cls", [0, 3])
def test_class_objective_matches_torch(top_net, cls):
    """A class's pre-softmax score (Simonyan et al. 2013) vs torch autograd of the twin."""
    x = _x((2, 3, 12, 12), 6)
    v, g = M.target_objective(top_net, x, ("fc8", cls))
    t = twin(top_net, torch.float64)
    tv, tg = _autograd(lambda z: t.forward(z)["fc8"][:, cls], x)
    assert rel_err(v, tv) < TOL and rel_err(g, tg) < TOL


def test_class_model_runs_and_rises(top_net):
    """class_model raises S_c − λ‖I‖² (sgd from the zero image, Simonyan et al.)."""
    r = M.class_model(top_net, 2, size=12, steps=20, lr=2.0, l2=1e-4, progress=False)
    assert r.message is None
    assert r.history[-1]["objective"] > r.history[0]["objective"] + 1.0


def test_class_target_without_top_is_a_clear_error(net):
    with pytest.raises(nnviz.errors.InputError, match="fully connected"):
        M.class_model(net, 3, steps=1, progress=False)


@pytest.mark.parametrize("layers,reduce", [(["relu2_2"], "mean"), (["relu3_1", "conv2_2"], "mean"),
                                           (["pool2"], "sum")])
def test_dream_objective_matches_torch(net, tnet, layers, reduce):
    """DeepDream's Σ_l mean(act_l) (TF tutorial) or Σ_l Σ act_l, vs torch autograd."""
    x = _x((1, 3, 32, 28), 7, 50.0)
    v, g = D.dream_objective(net, x, layers, reduce)
    deepest = max(layers, key=net.layer_names.index)

    def f(t):
        out = tnet.forward(t, until=deepest)
        return sum(out[n].mean() if reduce == "mean" else out[n].sum() for n in layers).reshape(1)
    tv, tg = _autograd(f, x)
    assert rel_err(v, tv) < TOL and rel_err(g, tg) < TOL


@pytest.mark.parametrize("layers,tile,reduce", [(["relu2_2"], 24, "sum"), (["relu2_2"], 24, "mean"),
                                                (["relu3_1", "pool1"], 44, "sum")])
def test_tiled_dream_gradient_equals_untiled(net, layers, tile, reduce):
    """Tiles smaller than the image (with the receptive-field halo) give the whole image's value
    and gradient: the oracle is the untiled objective, itself checked against torch above."""
    x = _x((1, 3, 52, 61), 8, 50.0)
    plan, _ = D.tile_plan(net, layers, x.shape, tile)
    assert len(plan) > 1
    v, g = D.dream_objective(net, x, layers, reduce)
    vt, gt = D.tiled_dream_gradient(net, x, layers, tile, reduce)
    assert abs(vt - v) <= 1e-9 * abs(v) and rel_err(gt, g) < 1e-9


def test_tile_too_small_is_a_clear_error(net):
    with pytest.raises(ValueError, match="tile_size 16 is too small"):
        D.tiled_dream_gradient(net, _x((1, 3, 64, 64)), ["relu4_1"], 16)


def test_dream_runs_with_tiles(net):
    img = nnviz.io.load_image("sample:astronaut", 96)
    x = net.preprocess(img)
    r = D.dream(net, x, layers=["relu3_1"], octaves=2, steps_per_octave=2,
                tile_size=48, seed=0, progress=False)
    assert r.x.shape == x.shape and numpy.isfinite(r.x).all() and r.message is None
    assert len(r.history) == 4 and not numpy.allclose(r.x, x)


def test_representation_loss_matches_torch(net, tnet):
    """‖Φ(x) − Φ₀‖² / ‖Φ₀‖² per image (Mahendran & Vedaldi eq. 1) vs torch autograd."""
    x0, x = _x((2, 3, 24, 24), 9, 50.0), _x((2, 3, 24, 24), 10, 50.0)
    phi0 = net.forward(x0, until="relu2_1").copy()
    v, g = I.representation_loss(net, x, "relu2_1", phi0)
    p0 = torch.from_numpy(phi0)

    def f(t):
        d = tnet.forward(t, until="relu2_1")["relu2_1"] - p0
        return d.pow(2).flatten(1).sum(1) / p0.pow(2).flatten(1).sum(1)
    tv, tg = _autograd(f, x)
    assert rel_err(v, tv) < TOL and rel_err(g, tg) < TOL


# -- the loop ---------------------------------------------------------------------------------

def _dead_channel_net():
    net = nnviz.vgg16(seed=0, include_top=False)
    conv = net.layers["conv1_1"]
    conv.weight[3] = 0
    conv.bias[3] = -1.0          # relu1_1 channel 3 is 0 everywhere: its gradient is 0
    return net


def test_nan_guard_names_normalization():
    """RMS-normalizing the zero gradient of a dead channel would give NaN: the run stops
    cleanly, keeps the last finite image and names the normalization."""
    net = _dead_channel_net()
    x0 = O.noise(net, 1, 24, seed=0)
    r = M.maximize(net, "relu1_1:3", x0=x0, steps=5, lp=None, tv=None, progress=False)
    assert r.message is not None and "normalization" in r.message
    assert r.stopped == [0] and numpy.array_equal(r.x, x0)


def test_nan_guard_in_a_batch_stops_only_the_dead_image():
    net = _dead_channel_net()
    r = M.maximize(net, [("relu1_1", 3), ("relu1_1", 4)], size=24, steps=5, lp=None,
                   tv=None, seed=0, progress=False)
    assert r.stopped == [0, None] and "image 0" in r.message
    assert numpy.isfinite(r.x).all()


def test_nan_guard_names_tv():
    """TV with β < 2 has an infinite gradient where the image is flat: 0·∞ = NaN in the tv term."""
    net = nnviz.vgg16(seed=0, include_top=False)
    x0 = net.xp.zeros((1, 3, 20, 20), numpy.float32)
    with numpy.errstate(all="ignore"):
        r = M.maximize(net, "conv2_1:1", x0=x0, steps=3, lp=None, tv=(1.5, 1.0),
                       progress=False)
    assert "tv term" in r.message and numpy.array_equal(r.x, x0)


@pytest.mark.parametrize("kind", ["adam", "rmsprop", "sgd"])
def test_optimizer_steps_match_torch(kind):
    """The image loop's update rules against torch.optim on the same gradients, float64, six
    steps: Adam (the one Adam, :class:`O.Adam`, as torch.optim.Adam), RMSprop (Keras' ρ = 0.9,
    ε = 1e-7: torch's alpha and eps) and SGD; an unknown kind is a BadOption."""
    rng = numpy.random.default_rng(5)
    x = rng.standard_normal((2, 3, 5, 4))
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    ref = {"adam": lambda p: torch.optim.Adam(p, lr=0.1),
           "rmsprop": lambda p: torch.optim.RMSprop(p, lr=0.1, alpha=0.9, eps=1e-7),
           "sgd": lambda p: torch.optim.SGD(p, lr=0.1)}[kind]([t])
    opt = O.Optimizer(kind, 0.1)
    for _ in range(6):
        g = rng.standard_normal(x.shape)
        x = opt.step(x, g)
        t.grad = torch.from_numpy(g.copy())
        ref.step()
    assert rel_err(x, t.detach()) < 1e-12
    with pytest.raises(nnviz.errors.BadOption, match="unknown optimizer 'adagrad'"):
        O.Optimizer("adagrad", 0.1)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd"])
def test_maximize_raises_the_target(net, optimizer):
    r = M.maximize(net, "relu3_1:4", size=32, steps=15, lr=2.0, jitter=2, blur_every=4,
                   clip_small=5, optimizer=optimizer, seed=0, progress=False)
    assert r.message is None and r.history[-1]["objective"] > 2 * max(r.history[0]["objective"], 1e-3)
    assert set(r.history[0]) == {"step", "objective", "lp", "tv", "loss"}


def test_filters_batch(net):
    r = M.filters(net, "conv2_1", [0, 5, 9], size=24, batch=2, steps=3, seed=0, progress=False)
    images, labels = r.images, r.labels
    assert images.shape == (3, 24, 24, 3) and images.dtype == numpy.uint8
    assert labels == ["0", "5", "9"]


def test_invert_lowers_the_loss(net):
    img = net.preprocess(nnviz.io.load_image("sample:chelsea", 32))
    r = I.invert(net, img, "relu2_1", steps=30, seed=0, progress=False)
    assert r.history[-1]["objective"] < 0.5 * r.history[0]["objective"]


def test_blur_and_resize_keep_constants():
    x = numpy.full((1, 3, 9, 7), 2.5)
    assert numpy.allclose(O.periodic_blur(x, 1.0), 2.5)
    assert resize_bilinear(x, 5, 11).shape == (1, 3, 5, 11)
    assert numpy.allclose(resize_bilinear(x, 5, 11), 2.5)


def test_snapshots_and_commands(tmp_path):
    """The commands write their PNGs (random weights, a few steps), snapshots included."""
    from nnviz.cli import main
    out = str(tmp_path)
    assert main(["maximize", "conv2_1:3", "--weights", "random", "--steps", "4", "--size", "32",
                 "--snapshot-every", "2", "--out", out, "-q"]) == 0
    assert main(["filters", "conv2_1", "--channels", "0-3", "--weights", "random", "--steps", "2",
                 "--size", "24", "--out", out, "-q"]) == 0
    assert main(["dream", "sample:coffee", "--size", "64", "--layers", "relu2_2", "--octaves", "2",
                 "--steps-per-octave", "1", "--tile-size", "40", "--weights", "random",
                 "--out", out, "-q"]) == 0
    assert main(["invert", "sample:chelsea", "--size", "32", "--layer", "relu2_1", "--steps", "3",
                 "--weights", "random", "--out", out, "-q"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    # each name shows the options that differ from their defaults
    r = "weights=random"
    mx = f"maximize-conv2_1_3-size=32-steps=4-{r}"
    assert names == [f"dream-coffee-layers=relu2_2-octaves=2-size=64-steps_per_octave=1-tile_size=40-{r}.png",
                     f"filters-conv2_1-channels=0..3-size=24-steps=2-{r}.png",
                     f"invert-chelsea-relu2_1-size=32-steps=3-{r}.png",
                     f"{mx}-step00002.png", f"{mx}-step00004.png", f"{mx}.png"]
    assert main(["maximize", "conv2_1:3", "--weights", "random", "--steps", "4", "--size", "32",
                 "--out", out, "-q"]) == 2     # the same command again: exists without --force


def test_dead_target_with_regularizers_is_reported():
    """With regularizers the total gradient is not 0, but the run says the target was dead."""
    net = _dead_channel_net()
    r = M.maximize(net, "relu1_1:3", size=24, steps=3, seed=0, progress=False)
    assert "stayed 0" in r.message
