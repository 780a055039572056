"""Feed-forward style and texture networks (Johnson et al. 2016, Ulyanov et al. 2016) against
PyTorch 2.13 (CPU):

- every new layer (reflection padding, instance norm, nearest upsampling, channel
  concatenation, leaky ReLU, scaled tanh, channel slice, the residual block, the join of
  branches) against the ``torch.nn`` module with the same parameters: output, input gradient
  and parameter gradients over a grid of shapes, 1e-10 in float64 and 1e-5 in float32; and
  against central finite differences in float64;
- the whole transformer and texture generator against their ``torch.nn`` twins
  (tools/torch_fast_style.py): output, input gradient and every parameter gradient, 1e-8;
- the perceptual loss's gradient through VGG16 and two training steps of ``train`` against
  the same losses written in torch (autograd) and ``torch.optim.Adam`` (float64);
- training lowers the loss; a saved model reloads to identical outputs; a resumed run
  continues the very same loss curve; the commands end to end and their bad inputs;
- the CuPy path (marked ``gpu``: a real device, or the tests' CuPy stand-in) against the host.
"""
import os

import numpy
import pytest
import torch
import torch_fast_style as T
from conftest import rel_err
from torch import nn
from torch_twin import twin as vgg_twin

from nnviz import backend, io
from nnviz import layers as L
from nnviz.cli import main
from nnviz.errors import InputError
from nnviz.methods import fast_style as FS
from nnviz.methods.optimize import Adam
from nnviz.models import vgg16

TOL = {numpy.float64: 1e-10, numpy.float32: 1e-5}
DTYPES = [numpy.float64, numpy.float32]
TDTYPE = {numpy.float64: torch.float64, numpy.float32: torch.float32}


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _set_params(rng, layer, dtype, tmod=None):
    """Random parameters for ``layer`` (and the same in its torch module ``tmod``)."""
    for p in layer.params:
        if getattr(layer, p) is not None:
            a = _rand(rng, getattr(layer, p).shape, dtype)
            setattr(layer, p, a)
            if tmod is not None:
                getattr(tmod, p).data = torch.from_numpy(a.copy())


def _compare(layer, tmod, x, dtype, rng, params=()):
    """Forward, input gradient and the gradients of ``params`` (pairs of nnviz key and torch
    parameter) of ``layer`` against ``tmod`` for ``L = Σ y · R``."""
    if hasattr(layer, "requires_grad"):
        layer.requires_grad = True
    xs = x if isinstance(x, list) else [x]
    txs = [torch.from_numpy(a.copy()).requires_grad_(True) for a in xs]
    y = layer.forward(x)
    ty = tmod(*txs)
    assert y.shape == tuple(ty.shape) and y.dtype == dtype
    assert rel_err(y, ty.detach()) < TOL[dtype]
    r = _rand(rng, y.shape, dtype)
    dx = layer.backward(r)
    ty.backward(torch.from_numpy(r))
    for d, t in zip(dx if isinstance(x, list) else [dx], txs):
        assert d.dtype == dtype and rel_err(d, t.grad) < TOL[dtype]
    for key, tp in params:
        g = getattr(layer, key.replace("weight", "grad_weight").replace("bias", "grad_bias"))
        assert rel_err(g, tp.grad) < TOL[dtype], key


# ---------------------------------------------------------------------------------------
# each layer against torch.nn
# ---------------------------------------------------------------------------------------

PAD_CASES = [((2, 3, 5, 6), 2), ((1, 2, 4, 7), (1, 3, 2, 0)), ((2, 1, 6, 4), (0, 3, 1, 3)),
             ((1, 2, 3, 3), (2, 2, 2, 2))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", PAD_CASES)
def test_reflection_pad_matches_torch(case, dtype):
    """torch.nn.ReflectionPad2d: output and input gradient."""
    shape, pad = case
    rng = numpy.random.default_rng(0)
    _compare(L.ReflectionPad2d(pad), nn.ReflectionPad2d(pad), _rand(rng, shape, dtype), dtype, rng)


IN_CASES = [((2, 3, 5, 6), 1e-5, True, True), ((1, 4, 7, 3), 1e-3, True, True),
            ((3, 2, 1, 9), 1e-5, True, True), ((2, 3, 4, 4), 1e-5, False, True),
            ((2, 3, 6, 5), 1e-5, True, False)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", IN_CASES)
@pytest.mark.parametrize("kept", [True, False])
def test_instance_norm_matches_torch(case, dtype, kept, monkeypatch):
    """torch.nn.InstanceNorm2d(C, eps, affine): output, input gradient, weight and bias
    gradients (``bias=False``: torch's module with its bias frozen at 0); with the squares in
    the kept scratch buffer and, as for inputs past its size, in a fresh array."""
    from nnviz import functional
    if not kept:
        monkeypatch.setattr(functional.image, "KEPT_SCRATCH_BYTES", 0)
    shape, eps, affine, bias = case
    rng = numpy.random.default_rng(1)
    layer = L.InstanceNorm2d(shape[1], eps=eps, affine=affine, bias=bias, dtype=dtype)
    tmod = nn.InstanceNorm2d(shape[1], eps=eps, affine=affine).to(TDTYPE[dtype])
    _set_params(rng, layer, dtype, tmod)
    params = []
    if affine:
        params.append(("weight", tmod.weight))
        if bias:
            params.append(("bias", tmod.bias))
        else:
            tmod.bias.data.zero_()
    x = (_rand(rng, shape, dtype) * 3 + 1).astype(dtype)
    _compare(layer, tmod, x, dtype, rng, params)


UP_CASES = [((2, 3, 4, 5), 2), ((1, 2, 3, 3), 3), ((1, 2, 3, 4), (2, 3)), ((2, 1, 2, 2), 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", UP_CASES)
def test_upsample_nearest_matches_torch(case, dtype):
    """torch.nn.Upsample(scale_factor, mode="nearest")."""
    shape, s = case
    rng = numpy.random.default_rng(2)
    sf = tuple(float(v) for v in s) if isinstance(s, tuple) else float(s)
    _compare(L.Upsample(s), nn.Upsample(scale_factor=sf, mode="nearest"), _rand(rng, shape, dtype),
             dtype, rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", [[(2, 3, 4, 5), (2, 1, 4, 5)],
                                    [(1, 2, 3, 3), (1, 4, 3, 3), (1, 1, 3, 3)], [(2, 2, 1, 4)]])
def test_concat_matches_torch_cat(shapes, dtype):
    """torch.cat(xs, dim=1): output and each input's gradient."""
    rng = numpy.random.default_rng(3)
    xs = [_rand(rng, s, dtype) for s in shapes]
    _compare(L.Concat(), lambda *t: torch.cat(t, dim=1), xs, dtype, rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer,tmod", [
    (L.LeakyReLU(), nn.LeakyReLU()), (L.LeakyReLU(0.2), nn.LeakyReLU(0.2)),
    (L.ScaledTanh(127.5, 127.5), T.ScaledTanh(127.5, 127.5)), (L.ScaledTanh(), nn.Tanh()),
    (L.ChannelSlice(2, 5), lambda t: t[:, 2:5]), (L.ChannelSlice(0, 1), lambda t: t[:, 0:1])],
    ids=["leaky0.01", "leaky0.2", "tanh255", "tanh", "slice2:5", "slice0:1"])
def test_pointwise_layers_match_torch(layer, tmod, dtype):
    """torch.nn.LeakyReLU, torch.tanh (scaled and shifted), channel slicing."""
    rng = numpy.random.default_rng(4)
    x = _rand(rng, (2, 6, 5, 4), dtype)
    x[numpy.abs(x) < 1e-3] = 0.5          # away from the leaky ReLU's kink
    _compare(layer, tmod, x, dtype, rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [((2, 4, 6, 5), 3, True), ((1, 3, 5, 5), 3, False),
                                  ((1, 2, 7, 6), 5, True)])
def test_residual_block_matches_torch(case, dtype):
    """Johnson's residual block against x + Sequential(ReflectionPad2d, Conv2d(bias=False),
    InstanceNorm2d(affine), ReLU, ReflectionPad2d, Conv2d, InstanceNorm2d): every parameter's
    gradient."""
    shape, k, shift = case
    rng = numpy.random.default_rng(5)
    block = L.ResidualBlock(shape[1], k, shift=shift, dtype=dtype)
    for sub in block.layers.values():
        _set_params(rng, sub, dtype)
    tmod = T.module(block, TDTYPE[dtype])
    named = T.named_parameters(tmod)
    assert set(named) == {p for p in block.params if getattr(block, p) is not None}
    _compare(block, tmod, _rand(rng, shape, dtype), dtype, rng, list(named.items()))


@pytest.mark.parametrize("dtype", DTYPES)
def test_join_matches_torch(dtype):
    """Branches on one input joined along the channels: torch.cat of the branches' outputs;
    the input gradient sums the branches'."""
    rng = numpy.random.default_rng(6)
    join = L.Join([("a", L.Sequential([("conv", L.Conv2d(3, 2, 3, padding=1, dtype=dtype)),
                                       ("act", L.LeakyReLU(0.1)),
                                       ("norm", L.InstanceNorm2d(2, affine=True, dtype=dtype))])),
                   ("b", L.Sequential([("pool", L.AvgPool2d(2)), ("up", L.Upsample(2))]))])
    for branch in join.layers.values():
        for sub in branch.layers.values():
            _set_params(rng, sub, dtype)
    tmod = T.module(join, TDTYPE[dtype])
    _compare(join, tmod, _rand(rng, (2, 3, 6, 8), dtype), dtype, rng,
             list(T.named_parameters(tmod).items()))
    assert join.params == ("a/conv/weight", "a/conv/bias", "a/norm/weight", "a/norm/bias")


OFFSET_CASES = [
    # (N, C, H, W), O, k, stride, padding, dilation
    ((2, 12, 11, 9), 2, 5, 2, 2, 2),
    ((1, 32, 20, 18), 3, 9, 1, 0, 1),         # the transformer's last layer: offsets chosen
    ((2, 8, 7, 8), 2, (3, 2), (1, 2), (1, 0), (1, 2)),
    ((2, 4, 9, 10), 6, 3, 1, 1, 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", OFFSET_CASES)
@pytest.mark.parametrize("route", ["offsets", "im2col", "chosen"])
def test_conv_by_kernel_offsets_matches_torch(case, dtype, route, monkeypatch):
    """Convolutions by kernel offsets (forced for every convolution, strided and dilated
    ones too), by im2col (the offsets' buffer budget at 0), and by the route
    ``functional.use_offsets`` picks: torch.nn.functional.conv2d's output, input and filter
    gradients. (The input gradient of a stride-1 convolution is a convolution too, so it
    takes the forced route as well.)"""
    from nnviz import functional
    if route == "offsets":
        monkeypatch.setattr(functional.conv, "use_offsets", lambda *a, **k: True)
    elif route == "im2col":
        monkeypatch.setattr(functional.conv, "OFFSETS_MAX_BYTES", 0)
    shape, o, k, s, p, d = case
    rng = numpy.random.default_rng(15)
    layer = L.Conv2d(shape[1], o, k, stride=s, padding=p, dilation=d, dtype=dtype)
    tmod = nn.Conv2d(shape[1], o, k, stride=s, padding=p, dilation=d).to(TDTYPE[dtype])
    _set_params(rng, layer, dtype, tmod)
    _compare(layer, tmod, _rand(rng, shape, dtype), dtype, rng,
             [("weight", tmod.weight), ("bias", tmod.bias)])


def _fd_check(layer, x, rng, h=1e-6):
    """Central differences of ``L = Σ y · R`` along random directions of the input and of
    every parameter, against the hand-written gradients (float64)."""
    if hasattr(layer, "requires_grad"):
        layer.requires_grad = True
    y = layer.forward(x)
    r = rng.standard_normal(y.shape)
    dx = layer.backward(r)

    def along(a, v):
        """(L(a + h v) − L(a − h v)) / 2h, ``a`` (the input or a parameter) changed in place."""
        a0 = a.copy()
        a[...] = a0 + h * v
        up = float((layer.forward(x) * r).sum())
        a[...] = a0 - h * v
        down = float((layer.forward(x) * r).sum())
        a[...] = a0
        return (up - down) / (2 * h)
    grads = {p: getattr(layer, p.rsplit("/", 1)[0] + "/grad_" + p.rsplit("/", 1)[1]) if "/" in p
             else getattr(layer, f"grad_{p}") for p in layer.params if getattr(layer, p) is not None}
    for name, a, g in [("input", x, dx)] + [(p, getattr(layer, p), g) for p, g in grads.items()]:
        v = rng.standard_normal(a.shape)
        fd = along(a, v)
        assert abs(fd - float((g * v).sum())) < 1e-6 * max(1.0, abs(fd)), name


@pytest.mark.parametrize("make,shape", [
    (lambda: L.ReflectionPad2d((1, 2, 2, 0)), (2, 2, 4, 5)),
    (lambda: L.InstanceNorm2d(3, affine=True, dtype=numpy.float64), (2, 3, 4, 5)),
    (lambda: L.Upsample((2, 3)), (1, 2, 3, 3)),
    (lambda: L.LeakyReLU(0.1), (2, 2, 3, 3)),
    (lambda: L.ScaledTanh(2.0, 1.0), (2, 2, 3, 3)),
    (lambda: L.ResidualBlock(3, dtype=numpy.float64), (1, 3, 5, 6)),
    (lambda: L.Join([("a", L.Sequential([("c", L.Conv2d(2, 3, 3, padding=1, dtype=numpy.float64))])),
                     ("b", L.Sequential([("s", L.ChannelSlice(1, 2))]))]), (2, 2, 4, 4)),
], ids=["pad", "instancenorm", "upsample", "leaky", "tanh", "residual", "join"])
def test_layers_match_finite_differences(make, shape):
    """Directional central differences (float64) of input and parameters."""
    rng = numpy.random.default_rng(7)
    layer = make()
    for sub in (layer.layers.values() if isinstance(layer, L.Sequential) else [layer]):
        for s in (sub.layers.values() if isinstance(sub, L.Sequential) else [sub]):
            _set_params(rng, s, numpy.float64)
    _fd_check(layer, rng.standard_normal(shape), rng)


# ---------------------------------------------------------------------------------------
# the whole networks against their torch twins
# ---------------------------------------------------------------------------------------

def _net_vs_twin(net, x):
    rng = numpy.random.default_rng(8)
    tw = T.twin(net, torch.float64)
    net.requires_grad_(True)
    y = net.forward(x)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = tw(tx)
    assert rel_err(y, ty.detach()) < 1e-8
    r = rng.standard_normal(y.shape)
    dx = net.backward(r, start=net.layer_names[-1])
    (ty * torch.from_numpy(r)).sum().backward()
    assert rel_err(dx, tx.grad) < 1e-8
    grads, tp = FS.gradients(net), T.named_parameters(tw)
    assert set(grads) == set(tp) and len(grads) > 0
    for k, g in grads.items():
        assert numpy.abs(g).max() > 0, f"{k}: a parameter without gradient"
        assert rel_err(g, tp[k].grad) < 1e-8, k
    return y


def test_transformer_matches_torch_twin():
    """Johnson's transformer (width 0.25) against its torch.nn twin, float64: output, input
    gradient and each of its 42 parameter gradients, for L = Σ y · R."""
    net = FS.transformer(0.25, seed=1, dtype=numpy.float64)
    assert len(dict(net.parameters())) == 42
    x = numpy.random.default_rng(0).uniform(0, 255, (2, 3, 24, 20))
    y = _net_vs_twin(net, x)
    assert y.shape == x.shape and 0 < y.min() and y.max() < 255


def test_texture_generator_matches_torch_twin():
    """Ulyanov's multi-scale generator (3 scales) against its torch.nn twin, float64."""
    net = FS.texture_generator(3, 0.5, seed=2, dtype=numpy.float64)
    y = _net_vs_twin(net, numpy.random.default_rng(1).random((2, 9, 16, 12)))
    assert y.shape == (2, 3, 16, 12)


# ---------------------------------------------------------------------------------------
# losses and training against torch
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_vgg():
    """VGG16 (random weights, seeded) without its top."""
    return vgg16(seed=0, include_top=False)


def _photos():
    rng = numpy.random.default_rng(9)
    return [(f"p{i}", rng.integers(0, 256, (40 + 7 * i, 48, 3), dtype=numpy.uint8))
            for i in range(3)]


OPTS = dict(content_weight=1.0, style_weight=3e4, tv_weight=1e-2)


def _torch_loss(tvgg, A, y, content):
    return T.perceptual_loss(tvgg, y, content, A, FS.CONTENT_LAYERS, FS.STYLE_LAYERS,
                             OPTS["content_weight"], OPTS["style_weight"], OPTS["tv_weight"])


def test_training_steps_match_torch(small_vgg):
    """Johnson's perceptual loss, its gradient for every parameter (through VGG16's and the
    transformer's hand-written backward) and two steps of ``train`` with hand-written Adam
    against the same losses in torch (autograd) and torch.optim.Adam, float64: the loss terms
    and gradients to 1e-8, the parameters' change after two steps to 1e-6 relative; the
    warm-up of the rate against torch's LambdaLR."""
    size, batch, seed, lr, warmup = 16, 2, 3, 1e-3, 3
    style = numpy.random.default_rng(10).integers(0, 256, (36, 30, 3), dtype=numpy.uint8)
    photos = _photos()
    tvgg = vgg_twin(small_vgg, torch.float64)
    A = T.style_targets(tvgg, io.resize(style, size), FS.STYLE_LAYERS)
    net = FS.transformer(0.25, seed=seed, dtype=numpy.float64)
    before = {k: a.copy() for k, a in net.parameters()}
    tw = T.twin(net, torch.float64)
    tparams = T.named_parameters(tw)
    adam = torch.optim.Adam(list(tparams.values()), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(adam, lambda e: min(1.0, (e + 1) / warmup))
    crops = FS.Crops(photos, size, batch, numpy.random.default_rng(seed))   # train's batches
    batches = [crops.sample().astype(numpy.float64) for _ in range(2)]

    # the loss and every gradient for the first batch
    loss = FS.PerceptualLoss(small_vgg, io.resize(style, size), dtype=numpy.float64, **OPTS)
    net.requires_grad_(True)
    y = net.forward(batches[0])
    terms, g = loss(y, batches[0])
    net.backward(g, start="out")
    tloss, tterms = _torch_loss(tvgg, A, tw(torch.from_numpy(batches[0])), torch.from_numpy(batches[0]))
    for k in ("content", "style", "tv"):
        t = float(tterms[k].detach())
        assert abs(terms[k] - t) < 1e-8 * abs(t), k
    tloss.backward()
    for k, gr in FS.gradients(net).items():
        assert rel_err(gr, tparams[k].grad) < 1e-8, k

    # two steps: train() against torch.optim.Adam on the same batches
    result = FS.train(style, photos, width=0.25, size=size, batch=batch, steps=2, lr=lr,
                      vgg=small_vgg, seed=seed, dtype=numpy.float64, progress=False,
                      warmup=warmup, **OPTS)
    history = []
    for b in batches:
        adam.zero_grad()
        tl, _ = _torch_loss(tvgg, A, tw(torch.from_numpy(b)), torch.from_numpy(b))
        tl.backward()
        adam.step()
        schedule.step()
        history.append(float(tl.detach()))
    assert [h["step"] for h in result.history] == [1, 2]
    for h, t in zip(result.history, history):
        assert abs(h["loss"] - t) < 1e-8 * abs(t)
    after = dict(result.extra["model"].net.parameters())
    for k, p in after.items():
        change = tparams[k].detach().numpy() - before[k]
        assert numpy.abs(change).max() > 0
        assert rel_err(p - before[k], change) < 1e-6, k
        assert rel_err(p, tparams[k].detach()) < 1e-6, k


def test_texture_loss_matches_torch(small_vgg):
    """Texture mode: Ulyanov's generator on style and TV terms only, its gradients against
    torch autograd (float64)."""
    style = numpy.random.default_rng(11).integers(0, 256, (24, 24, 3), dtype=numpy.uint8)
    net = FS.texture_generator(3, 0.5, seed=4, dtype=numpy.float64)
    tw = T.twin(net, torch.float64)
    tvgg = vgg_twin(small_vgg, torch.float64)
    A = T.style_targets(tvgg, style, FS.STYLE_LAYERS)
    loss = FS.PerceptualLoss(small_vgg, style, dtype=numpy.float64, content_weight=0.0,
                             style_weight=3e4, tv_weight=1e-2)
    z = numpy.random.default_rng(12).random((2, 9, 24, 24))
    net.requires_grad_(True)
    terms, g = loss(net.forward(z))
    net.backward(g, start="out")
    tl, _ = T.perceptual_loss(tvgg, tw(torch.from_numpy(z)), None, A, (), FS.STYLE_LAYERS, 0.0,
                              3e4, 1e-2)
    assert abs(terms["total"] - float(tl.detach())) < 1e-8 * float(tl.detach())
    tl.backward()
    tp = T.named_parameters(tw)
    for k, gr in FS.gradients(net).items():
        assert rel_err(gr, tp[k].grad) < 1e-8, k


def test_twenty_steps_lower_the_loss():
    """20 steps at 64 px, width 0.25, on the default VGG16 weights (scikit-image's
    photographs, the default weights and learning rate): the loss of a fixed batch of crops
    that training never saw is below half of what the untrained network scores."""
    vgg = vgg16(weights="default", include_top=False)
    style = io.load_image("sample:coffee", 64)
    held_out = FS.Crops(FS.default_images(), 64, 2, numpy.random.default_rng(123)).sample()
    loss = FS.PerceptualLoss(vgg, style)

    def score(net):
        return loss(net.forward(held_out), held_out)[0]["total"]
    before = score(FS.transformer(0.25, seed=0))
    result = FS.train(style, None, width=0.25, size=64, batch=1, steps=20, vgg=vgg, seed=0,
                      progress=False)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 20 and all(numpy.isfinite(losses))
    after = score(result.extra["model"].net)
    assert after < 0.5 * before, (before, after, losses)


def test_save_reload_gives_identical_outputs(tmp_path, small_vgg):
    """A saved transformer and a saved texture generator reload (architecture, width,
    options, style hash, history, every parameter) to bit-identical outputs."""
    style = numpy.random.default_rng(13).integers(0, 256, (32, 32, 3), dtype=numpy.uint8)
    photos = _photos()
    r = FS.train(style, photos, width=0.25, size=16, batch=1, steps=2, vgg=small_vgg,
                 progress=False)
    model = r.extra["model"]
    path = FS.save(model, tmp_path / "m.h5")
    again = FS.load(path)
    assert (again.arch, again.width, again.options, again.style_sha256) == \
        (model.arch, model.width, model.options, FS.style_hash(style))
    assert [h["loss"] for h in again.history] == [h["loss"] for h in model.history]
    imgs = [p for _, p in photos] + [photos[0][1][:37, :45]]      # sides not divisible by 4
    out = FS.stylize(model, imgs, batch=2)
    assert [o.shape for o in out] == [i.shape for i in imgs]
    for a, b in zip(out, FS.stylize(again, imgs, batch=3)):
        numpy.testing.assert_array_equal(a, b)
    tex = FS.StyleModel(FS.texture_generator(3, 0.5, seed=5), "ulyanov", 0.5, {"mode": "texture"},
                        "0" * 64, "s", 3)
    FS.save(tex, tmp_path / "t.h5")
    tex2 = FS.load(tmp_path / "t.h5")
    for a, b in zip(FS.generate(tex, 2, 20, seed=1), FS.generate(tex2, 2, 20, seed=1)):
        assert a.shape == (20, 20, 3)
        numpy.testing.assert_array_equal(a, b)


def test_resume_continues_the_loss_curve(tmp_path, small_vgg):
    """Six steps in one run, and three steps + a resumed run to six from its checkpoint, give
    the same loss curve and the same parameters (Adam's moments, the step and the random
    generator's state are in the checkpoint)."""
    style = numpy.random.default_rng(14).integers(0, 256, (32, 32, 3), dtype=numpy.uint8)
    kw = dict(width=0.25, size=16, batch=1, vgg=small_vgg, progress=False, seed=7)
    full = FS.train(style, _photos(), steps=6, **kw)
    ckpt = tmp_path / "run.ckpt.h5"
    first = FS.train(style, _photos(), steps=3, checkpoint=ckpt, checkpoint_every=2, **kw)
    assert len(first.history) == 3 and FS.load(ckpt).step == 3
    resumed = FS.train(style, _photos(), steps=6, resume=ckpt, checkpoint=ckpt, **kw)
    assert [h["step"] for h in resumed.history] == [1, 2, 3, 4, 5, 6]
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    p, q = dict(full.extra["model"].net.parameters()), dict(resumed.extra["model"].net.parameters())
    for k in p:
        numpy.testing.assert_array_equal(p[k], q[k])
    with pytest.raises(InputError, match="another style image"):
        FS.train(style[::-1], _photos(), steps=7, resume=ckpt, **kw)


# ---------------------------------------------------------------------------------------
# the model file and the commands
# ---------------------------------------------------------------------------------------

def test_model_files_are_checked(tmp_path):
    """A file that is not a model, a wrong shape, an unknown architecture, a parameter too
    many: each an InputError naming the file and what is wrong."""
    import h5py
    model = FS.StyleModel(FS.transformer(0.25), "johnson", 0.25, {}, "", "")
    good = FS.save(model, tmp_path / "good.h5")
    bad = tmp_path / "bad.h5"
    cases = [
        (lambda f: f.attrs.__setitem__("format", "other"), "not an nnviz style model"),
        (lambda f: f.attrs.__setitem__("arch", "__import__('os')"), "unknown architecture"),
        (lambda f: f.attrs.__setitem__("width", 0.5), "conv1/weight has shape"),
        (lambda f: f.create_dataset("params/extra/weight", data=[1.0]), "does not have: extra"),
        (lambda f: f.attrs.__setitem__("options", "{nope"), "not valid JSON"),
    ]
    for edit, message in cases:
        with open(good, "rb") as src, open(bad, "wb") as dst:
            dst.write(src.read())
        with h5py.File(bad, "r+") as f:
            edit(f)
        with pytest.raises(InputError, match=message):
            FS.load(bad)
    bad.write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="not a readable HDF5"):
        FS.load(bad)


def test_commands_end_to_end(tmp_path, capsys):
    """train-style (a few steps on a folder of photographs, random VGG) writes the model,
    checkpoint, loss CSV and PNG and a preview; stylize writes one PNG per photograph and
    prints images per second; bad inputs exit 2 with one line."""
    from PIL import Image
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, img in _photos():
        Image.fromarray(img).save(photos / f"{name}.png")
    style = tmp_path / "style.png"
    Image.fromarray(numpy.random.default_rng(15).integers(0, 256, (40, 40, 3), dtype=numpy.uint8)).save(style)
    model = tmp_path / "m.h5"
    args = ["train-style", str(style), "--images", str(photos), "--size", "32", "--steps", "3",
            "--batch", "1", "--width", "0.25", "--weights", "random", "--checkpoint-every", "2",
            "--out", str(model)]
    assert main(args) == 0
    out = capsys.readouterr().out
    for suffix in (".h5", ".ckpt.h5", "_loss.csv", "_loss.png", "_preview.png"):
        path = str(model)[:-3] + suffix
        assert os.path.getsize(path) > 0 and path in out, suffix
    assert len(open(str(model)[:-3] + "_loss.csv").read().splitlines()) == 4
    assert main(args) == 2                                     # exists, no --force
    assert "exists" in capsys.readouterr().err
    assert main(args[:-2] + ["--out", str(model), "--force", "--resume", str(model)[:-3] + ".ckpt.h5",
                             "--steps", "4"]) == 0
    assert FS.load(model).step == 4
    capsys.readouterr()
    outdir = tmp_path / "out"
    assert main(["stylize", str(model), str(photos / "p0.png"), str(photos / "p1.png"), "--out",
                 str(outdir)]) == 0
    out = capsys.readouterr().out
    assert "images/s" in out
    for name in ("p0", "p1"):
        img = io.load_image(str(outdir / f"{name}_m.png"))
        assert img.shape == _photos()[int(name[1])][1].shape
    for argv, message in [
        (["stylize", str(style), str(style), "--out", str(outdir)], "not a readable HDF5"),
        (["stylize", str(tmp_path / "none.h5"), str(style), "--out", str(outdir)], "no such model file"),
        (["stylize", str(model), "--out", str(outdir)], "give one or more photographs"),
        (["train-style", str(style), "--images", str(tmp_path / "nowhere"), "--weights", "random",
          "--out", str(tmp_path / "x.h5")], "no such folder"),
        (["train-style", str(style), "--size", "30", "--weights", "random", "--out",
          str(tmp_path / "y.h5")], "multiple of 4"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


# ---------------------------------------------------------------------------------------
# the CuPy path
# ---------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_networks_on_gpu_match_host(dtype):
    """The transformer and the texture generator on CuPy (a device, or the tests' stand-in)
    against the host: output, input gradient, every parameter gradient, one Adam step."""
    tol = 1e-10 if dtype == numpy.float64 else 1e-4
    for make, x in ((lambda d: FS.transformer(0.25, seed=1, dtype=dtype, device=d),
                     numpy.random.default_rng(0).uniform(0, 255, (2, 3, 12, 16))),
                    (lambda d: FS.texture_generator(2, 0.5, seed=1, dtype=dtype, device=d),
                     numpy.random.default_rng(1).random((1, 6, 8, 8)))):
        cpu, gpu = make("cpu"), make("gpu")
        x = x.astype(dtype)
        for net in (cpu, gpu):
            net.requires_grad_(True)
        y, gy = cpu.forward(x), gpu.forward(backend.to_device(x, "gpu"))
        assert backend.is_gpu_array(gy) and rel_err(gy, y) < tol
        r = numpy.random.default_rng(2).standard_normal(y.shape).astype(dtype)
        dx = cpu.backward(r, start="out")
        gdx = gpu.backward(backend.to_device(r, "gpu"), start="out")
        assert rel_err(gdx, dx) < tol
        gc, gg = FS.gradients(cpu), FS.gradients(gpu)
        for k in gc:
            assert rel_err(gg[k], gc[k]) < tol, k
        Adam(dict(cpu.parameters())).step(gc)
        Adam(dict(gpu.parameters())).step(gg)
        pc, pg = dict(cpu.parameters()), dict(gpu.parameters())
        for k in pc:
            assert rel_err(pg[k], pc[k]) < tol, k
