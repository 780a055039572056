"""Attribution methods (nnviz.methods) against independent PyTorch references.

References, all in real PyTorch 2.13 (tests/torch_twin.py, the twin of the net with the same
weights):
- saliency, gradient x input, integrated gradients, SmoothGrad, Grad-CAM: torch autograd of
  the score (Simonyan et al. 2013; Shrikumar et al.; Sundararajan et al. 2017; Smilkov et al.
  2017; Selvaraju et al. 2017 with ``F.interpolate(bilinear, align_corners=False)``);
- deconvnet: an explicit top-down pass as in Zeiler & Fergus 2014, with ``F.conv_transpose2d``,
  the rule ``dy * (dy > 0)`` and ``F.max_unpool2d`` through torch's ``return_indices``;
- guided backprop: torch autograd through a custom ``autograd.Function`` whose backward is
  ``dy * (x > 0) * (dy > 0)`` (Springenberg et al. 2015).
Properties: completeness of integrated gradients, the receptive-field support of a deconvnet
projection, guided backprop's zeros at every ReLU (via the trace), the HDF5 trace.

Inputs: a sample photograph plus noise (no pooling ties, no values at ReLU kinks) and a random
image, on the random VGG16 (``include_top=False``) in float64 at 32-64 px; one class target
with the fully connected layers at 224 px in float32.
"""
import os

import h5py
import numpy
import pytest
import torch
import torch.nn.functional as TF
from conftest import rel_err
from torch_twin import twin

import nnviz
from nnviz import cli, io, methods, models
from nnviz.errors import InputError

TOL64 = 1e-10


@pytest.fixture(scope="module")
def tw(net):
    return twin(net, torch.float64)


def batch(net, size, n=2, seed=0):
    """``n`` float64 images (N, 3, size, size): the astronaut plus noise, then random ones."""
    rng = numpy.random.default_rng(seed)
    photo = net.preprocess(io.load_image("sample:astronaut", (size, size)))[0].astype(numpy.float64)
    imgs = [photo + rng.normal(0, 2.0, photo.shape)]
    imgs += [rng.normal(0, 50.0, photo.shape) for _ in range(n - 1)]
    return numpy.stack(imgs)


def torch_score(out, target):
    """The target's score per image from torch activations (independent of nnviz.targets)."""
    layer, channel = target[0], target[1]
    a = out[layer]
    if a.ndim == 2:
        return a[:, channel]
    if len(target) == 3:
        i, j = target[2]
        return a[:, channel, i, j]
    return a[:, channel].sum(dim=(1, 2))


def torch_grad(tw, x, target, rule="backprop"):
    xt = tw.tensor(x, requires_grad=True)
    out = tw.forward(xt, until=target[0], rule=rule)
    (g,) = torch.autograd.grad(torch_score(out, target).sum(), xt)
    return g.numpy()


TARGETS = [("relu5_3", 3), ("conv4_2", 5, (2, 1)), ("pool5", 7), ("conv2_1", 11)]


# ---------------------------------------------------------------------------------------
# gradients: saliency, gradient x input, SmoothGrad
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("size", [32, 48])
def test_saliency_matches_torch_autograd(net, tw, target, size):
    """Simonyan et al. 2013: the gradient of each image's own score, vs torch autograd."""
    x = batch(net, size)
    g = methods.saliency(net, x, target)
    assert g.shape == x.shape and g.dtype == numpy.float64
    assert rel_err(g, torch_grad(tw, x, target)) < TOL64


@pytest.mark.slow
def test_saliency_class_target_with_top():
    """A class of fc8 (pre-softmax) at 224 px with the fully connected layers. In float64:
    in float32 the two frameworks' roundoff flips a ReLU mask or a pooling switch somewhere
    among the millions of units at 224 px (tools/compare_torch.py counts them), which moves
    the gradient by ~1%; float64 has no such flips."""
    net = nnviz.vgg16(seed=1, include_top=True)
    x = batch(net, 224, n=1)
    g = methods.saliency(net, x, 281)
    ref = torch_grad(twin(net, torch.float64), x, ("fc8", 281))
    assert numpy.abs(ref).max() > 0
    assert rel_err(g, ref) < TOL64


def test_saliency_float32_matches_torch(net):
    """float32 at 32 px (no mask or switch flips at this size): 1e-4 relative to torch."""
    x = batch(net, 32).astype(numpy.float32)
    target = ("relu5_1", 8)
    g = methods.saliency(net, x, target)
    assert g.dtype == numpy.float32
    assert rel_err(g, torch_grad(twin(net, torch.float32), x, target)) < 1e-4


def test_gradient_x_input_matches_torch(net, tw):
    """Gradient x input (Shrikumar et al.): x * dS/dx with torch's gradient."""
    x = batch(net, 32)
    target = ("relu4_3", 9)
    assert rel_err(methods.gradient_x_input(net, x, target), x * torch_grad(tw, x, target)) < TOL64


@pytest.mark.parametrize("method,rule", [("saliency", "backprop"), ("guided", "guided")])
def test_smoothgrad_matches_torch(net, tw, method, rule):
    """Smilkov et al. 2017, eq. (3): the mean over the documented noise draws, with sigma a
    fraction of each image's range; the reference averages torch gradients."""
    x = batch(net, 32)
    target, n, sigma = ("relu5_1", 4), 3, 0.1
    got = methods.smoothgrad(method, net, x, target, n=n, sigma=sigma, seed=7)
    rng = numpy.random.default_rng(7)
    spread = x.reshape(len(x), -1).max(1) - x.reshape(len(x), -1).min(1)
    ref = numpy.zeros_like(x)
    for _ in range(n):
        xn = x + sigma * spread[:, None, None, None] * rng.standard_normal(x.shape)
        ref += torch_grad(tw, xn, target, rule) / n
    assert rel_err(got, ref) < TOL64
    assert rel_err(got, torch_grad(tw, x, target, rule)) > 1e-3   # the noise does something


# ---------------------------------------------------------------------------------------
# deconvnet, guided backprop, top units
# ---------------------------------------------------------------------------------------

def _unit_seed(out, layer, channel, position, mode, value):
    """Seed at ``layer`` from torch's activation: the strongest unit per image (torch's
    argmax), a given unit, or the whole channel; ``value`` "activation" or "one"."""
    a = out[layer].detach()
    mask = torch.zeros_like(a)
    for n in range(a.shape[0]):
        if mode == "channel" and position is None:
            mask[n, channel] = 1
        else:
            i, j = position or divmod(int(a[n, channel].argmax()), a.shape[3])
            mask[n, channel, i, j] = 1
    return mask * a if value == "activation" else mask


DECONV_CASES = [("relu5_3", "unit", None, True), ("pool4", "channel", None, True),
                ("conv3_3", "unit", (3, 2), True), ("relu4_1", "unit", None, False),
                ("pool3", "channel", None, False)]


@pytest.mark.parametrize("layer,mode,position,switches", DECONV_CASES)
def test_deconvnet_matches_torch_unpooling(net, tw, layer, mode, position, switches):
    """Zeiler & Fergus 2014: explicit torch pass with conv_transpose2d, dy*(dy>0) and
    max_unpool2d through torch's return_indices (or the fixed top-left positions); the seed is
    the activation. For recorded switches, torch autograd with the deconvnet ReLU agrees too."""
    x = batch(net, 48)
    channel = 6
    got = methods.deconvnet(net, x, layer, channel, position, mode=mode, switches=switches)
    out = tw.forward(tw.tensor(x), until=layer)
    seed = _unit_seed(out, layer, channel, position, mode, "activation")
    ref = tw.project(x, layer, seed, "deconvnet", "recorded" if switches else "fixed").numpy()
    assert numpy.abs(ref).max() > 0
    assert rel_err(got, ref) < TOL64
    if switches:
        assert rel_err(got, tw.gradient(x, layer, seed, "deconvnet").numpy()) < TOL64
    else:  # the switches matter: the two projections differ
        with_switches = tw.project(x, layer, seed, "deconvnet", "recorded").numpy()
        assert rel_err(got, with_switches) > 1e-2


@pytest.mark.parametrize("layer,mode,position", [("relu5_3", "unit", None),
                                                 ("relu4_2", "channel", None),
                                                 ("conv5_1", "unit", (1, 2))])
def test_guided_backprop_matches_torch(net, tw, layer, mode, position):
    """Springenberg et al. 2015: torch autograd through the guided ReLU Function, seed 1."""
    x = batch(net, 48)
    channel = 17
    got = methods.guided_backprop(net, x, layer, channel, position, mode=mode)
    out = tw.forward(tw.tensor(x), until=layer)
    seed = _unit_seed(out, layer, channel, position, mode, "one")
    ref = tw.gradient(x, layer, seed, "guided").numpy()
    assert numpy.abs(ref).max() > 0
    assert rel_err(got, ref) < TOL64
    # the explicit pass (no autograd) agrees
    assert rel_err(got, tw.project(x, layer, seed, "guided").numpy()) < TOL64


def test_top_units_match_torch(net, tw):
    """top_units: the n channels of largest summed activation (per image, from torch), and
    for each the guided projection of its strongest unit and of the whole channel."""
    x = batch(net, 32)
    layer, n = "relu4_3", 2
    res = methods.top_units(net, x, layer, n=n)
    out = tw.forward(tw.tensor(x), until=layer)
    a = out[layer].detach()
    expected = torch.argsort(a.sum(dim=(2, 3)), dim=1, descending=True)[:, :n].numpy()
    numpy.testing.assert_array_equal(res["channels"], expected)
    assert res["unit"].shape == (2, n) + x.shape[1:]
    for k in range(n):
        for mode, key in (("unit", "unit"), ("channel", "channel")):
            seed = torch.zeros_like(a)
            for i in range(len(x)):
                one = _unit_seed(out, layer, int(expected[i, k]), None, mode, "one")
                seed[i] = one[i]
            ref = tw.gradient(x, layer, seed, "guided").numpy()
            assert rel_err(res[key][:, k], ref) < TOL64


def test_deconvnet_bad_targets(net):
    x = batch(net, 32, n=1)
    with pytest.raises(InputError, match="channel 512 out of range"):
        methods.deconvnet(net, x, "relu5_3", 512)
    with pytest.raises(InputError, match="outside layer 'relu5_3'"):
        methods.guided_backprop(net, x, "relu5_3", 0, (2, 0))
    with pytest.raises(InputError, match="unknown layer 'conv6_1'"):
        methods.deconvnet(net, x, "conv6_1", 0)
    with pytest.raises(InputError, match="nnviz weights import"):
        methods.saliency(net, x, 281)


# ---------------------------------------------------------------------------------------
# integrated gradients
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("integration", ["midpoint", "trapezoid"])
def test_integrated_gradients_matches_torch(net, tw, integration):
    """Sundararajan et al. 2017, eq. (1), as a quadrature of torch gradients on the path from
    a random baseline."""
    x = batch(net, 32)
    base = numpy.random.default_rng(3).normal(0, 10, x.shape)
    target, steps = ("relu5_2", 8), 5
    got = methods.integrated_gradients(net, x, target, baseline=base, steps=steps,
                                       integration=integration, batch=3)
    if integration == "midpoint":
        alphas, weights = (numpy.arange(steps) + 0.5) / steps, numpy.full(steps, 1 / steps)
    else:
        alphas = numpy.arange(steps + 1) / steps
        weights = numpy.array([0.5] + [1] * (steps - 1) + [0.5]) / steps
    avg = sum(w * torch_grad(tw, base + a * (x - base), target) for a, w in zip(alphas, weights))
    assert rel_err(got, (x - base) * avg) < TOL64


@pytest.mark.parametrize("target", [("relu5_3", 3), ("conv4_3", 7, (1, 2))])
def test_integrated_gradients_completeness(net, tw, target):
    """Completeness (Sundararajan et al. 2017, prop. 1): the attributions sum to
    S(x) - S(baseline) within 1% at 64 steps; the scores come from torch."""
    x = batch(net, 32, n=1)
    attr = methods.integrated_gradients(net, x, target, steps=64)
    with torch.no_grad():
        s1 = torch_score(tw.forward(tw.tensor(x), until=target[0]), target).numpy()
        s0 = torch_score(tw.forward(tw.tensor(numpy.zeros_like(x)), until=target[0]),
                         target).numpy()
    assert numpy.all(numpy.abs(s1 - s0) > 1)
    numpy.testing.assert_allclose(attr.reshape(len(x), -1).sum(1), s1 - s0, rtol=0.01)


# ---------------------------------------------------------------------------------------
# Grad-CAM
# ---------------------------------------------------------------------------------------

def torch_gradcam(tw, x, target, layer):
    xt = tw.tensor(x, requires_grad=True)
    out = tw.forward(xt, until=target[0])
    a = out[layer]
    (g,) = torch.autograd.grad(torch_score(out, target).sum(), a)
    cam = TF.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1, keepdim=True))
    return TF.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False).detach()


@pytest.mark.parametrize("layer,target", [("relu5_3", ("pool5", 5)),
                                          ("relu4_3", ("relu5_2", 30))])
def test_gradcam_matches_torch(net, tw, layer, target):
    """Selvaraju et al. 2017, eq. (1)-(2): spatial mean of torch's gradient at the layer,
    ReLU of the weighted sum, F.interpolate(bilinear, align_corners=False)."""
    x = batch(net, 64)
    got = methods.gradcam(net, x, target, layer=layer)
    ref = torch_gradcam(tw, x, target, layer).numpy()
    assert got.shape == (len(x), 1) + x.shape[2:]
    assert numpy.abs(ref).max() > 0
    assert rel_err(got, ref) < TOL64


def test_guided_gradcam_matches_torch(net, tw):
    """Guided Grad-CAM (Selvaraju et al. 2017, sec. 3.1): torch guided gradient x cam."""
    x = batch(net, 64)
    target, layer = ("pool5", 5), "relu5_3"
    got = methods.guided_gradcam(net, x, target, layer)
    ref = torch_grad(tw, x, target, "guided") * torch_gradcam(tw, x, target, layer).numpy()
    assert rel_err(got, ref) < TOL64


def test_gradcam_layer_after_target_is_an_error(net):
    with pytest.raises(InputError, match="must come before"):
        methods.gradcam(net, batch(net, 32, n=1), ("relu4_3", 0), layer="relu5_3")


# ---------------------------------------------------------------------------------------
# properties: receptive field, guided zeros, trace
# ---------------------------------------------------------------------------------------

def rf_from_geometry(tw, layer, position, size):
    """The receptive field of a unit from the twin's conv/pool geometry (independent of
    nnviz's receptive_field): back through each layer, [lo, hi] -> [lo*s - p, hi*s - p + k - 1]."""
    lo, hi = list(position), list(position)
    for name in reversed(tw.names[:tw.names.index(layer) + 1]):
        kind, p = tw.ops[name]
        if kind == "conv":
            k, s, pad = p["weight"].shape[2:], p["stride"], p["padding"]
        elif kind in ("maxpool", "avgpool"):
            k, s, pad = p["kernel_size"], p["stride"], p["padding"]
        else:
            continue
        for a in range(2):
            lo[a] = lo[a] * s[a] - pad[a]
            hi[a] = hi[a] * s[a] - pad[a] + k[a] - 1
    return max(lo[0], 0), max(lo[1], 0), min(hi[0], size - 1), min(hi[1], size - 1)


@pytest.mark.parametrize("layer,position", [("relu3_3", (7, 9)), ("relu3_3", (0, 15)),
                                            ("pool2", (4, 4)), ("conv4_1", None)])
@pytest.mark.parametrize("switches", [True, False])
def test_deconvnet_projection_lies_in_receptive_field(net, tw, layer, position, switches):
    """A deconvnet projection of one unit is zero outside the unit's receptive field
    (Zeiler & Fergus 2014: each projection shows the input patch the unit sees). The channel
    is the one most active at the position (torch's forward), so that the seed is not 0."""
    size = 64
    x = batch(net, size, n=1)
    with torch.no_grad():
        a = tw.forward(tw.tensor(x), until=layer)[layer][0]
    if position is None:
        channel = 10
    else:
        channel = int(a[:, position[0], position[1]].argmax())
    g = methods.deconvnet(net, x, layer, channel, position, switches=switches)
    if position is None:
        position = divmod(int(a[channel].argmax()), a.shape[2])
    top, left, bottom, right = rf_from_geometry(tw, layer, position, size)
    assert models.receptive_field(net, layer, position, (size, size)) == (top, left, bottom, right)
    inside = numpy.zeros(g.shape, bool)
    inside[..., top:bottom + 1, left:right + 1] = True
    assert numpy.all(g[~inside] == 0)
    assert numpy.abs(g[inside]).max() > 0
    assert (bottom - top, right - left) != (size - 1, size - 1)   # the check is not vacuous


def test_guided_backprop_zero_where_forward_or_backward_negative(net):
    """Springenberg et al. 2015: at every ReLU, the signal that goes down is zero wherever
    the ReLU's input or the incoming signal is <= 0, and passes unchanged elsewhere."""
    x = batch(net, 32)
    rec = methods.trace(net, x, ("relu5_3", 2), "guided")
    names = list(rec)
    relus = [n for n in names if n.startswith("relu")]
    assert len(relus) == 13
    for r in relus:
        below = names[names.index(r) - 1]
        x_in, dy = rec[below][0], rec[r][1]
        dx = rec[below][1]                          # the gradient that left the ReLU
        blocked = (x_in <= 0) | (dy <= 0)
        assert numpy.all(dx[blocked] == 0), r
        numpy.testing.assert_array_equal(dx[~blocked], dy[~blocked])
        assert blocked.any() and (~blocked).any()


@pytest.mark.parametrize("rule", ["backprop", "deconvnet", "guided"])
def test_trace_matches_torch_and_writes_hdf5(net, tw, rule, tmp_path):
    """trace: every layer's activation and the gradient at its output equal torch's
    (retain_grad on every output of the twin, the rule's custom ReLU Function); the HDF5 file
    holds the same arrays and is written atomically (no temporary file left)."""
    x = batch(net, 32)
    target = ("conv5_1", 4, (1, 0))
    path = tmp_path / "trace.h5"
    rec = methods.trace(net, x, target, rule, str(path))
    xt = tw.tensor(x, requires_grad=True)
    outs = tw.forward(xt, until=target[0], rule=rule)
    for o in outs.values():
        o.retain_grad()
    torch_score(outs, target).sum().backward()
    assert list(rec) == ["input"] + list(outs)
    assert rel_err(rec["input"][1], xt.grad.numpy()) < TOL64
    for name, o in outs.items():
        assert rel_err(rec[name][0], o.detach().numpy()) < TOL64, name
        assert rel_err(rec[name][1], o.grad.numpy()) < TOL64, name
    assert os.listdir(tmp_path) == ["trace.h5"]
    with h5py.File(path, "r") as f:
        assert list(f.attrs["layers"]) == list(rec)
        assert f.attrs["rule"] == rule
        for name, (a, g) in rec.items():
            numpy.testing.assert_array_equal(f[name]["activation"][()], a)
            numpy.testing.assert_array_equal(f[name]["gradient"][()], g)


# ---------------------------------------------------------------------------------------
# the commands
# ---------------------------------------------------------------------------------------

COMMANDS = [("saliency", []), ("deconvnet", ["--target", "relu4_3:3"]),
            ("deconvnet", ["--target", "pool4:3", "--mode", "channel", "--no-switches"]),
            ("guided", ["--target", "conv5_1:3:1,2"]), ("top-units", ["-n", "2"]),
            ("smoothgrad", ["--samples", "2", "--method", "guided"]), ("gradxinput", []),
            ("ig", ["--steps", "3"]), ("gradcam", ["--target", "pool5:4"]),
            ("guided-gradcam", ["--target", "pool5:4", "--layer", "relu4_3"]),
            ("saliency", ["--target", "relu4_3:3", "--target", "relu5_3:1", "--grid",
                          "--image", "sample:chelsea", "--image", "sample:coffee"])]


def _run(argv, capsys):
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("command,extra", COMMANDS)
def test_command_writes_non_constant_png(command, extra, tmp_path, capsys):
    from PIL import Image
    rc, out, err = _run([command, "--weights", "random", "--size", "64", "--out",
                         str(tmp_path)] + extra, capsys)
    assert rc == 0, err
    paths = out.split()
    assert paths and all(p.endswith(".png") and os.path.exists(p) for p in paths)
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths)
    for p in paths:
        with Image.open(p) as im:
            im.verify()
        img = numpy.asarray(Image.open(p))
        assert img.dtype == numpy.uint8 and img.std() > 1
    if "--grid" in extra:
        assert len(paths) == 1


def test_trace_command_writes_hdf5(tmp_path, capsys):
    rc, out, err = _run(["trace", "--weights", "random", "--size", "32", "--out", str(tmp_path),
                         "--target", "relu3_1:2", "--rule", "guided"], capsys)
    assert rc == 0, err
    (path,) = out.split()
    with h5py.File(path, "r") as f:
        assert f["relu3_1"]["activation"].shape == (1, 256, 8, 8)
        assert f["input"]["gradient"].shape == (1, 3, 32, 32)
        assert numpy.abs(f["input"]["gradient"][()]).max() > 0
    rc, out, err = _run(["trace", "--weights", "random", "--size", "32", "--out", str(tmp_path),
                         "--target", "relu3_1:2"], capsys)
    assert rc == 0
    rc, out, err = _run(["trace", "--weights", "random", "--size", "32", "--out", str(tmp_path),
                         "--target", "relu3_1:2"], capsys)
    assert rc == 2 and "--force" in err


BAD = [(["saliency", "--target", "conv9_1:3"], "unknown layer 'conv9_1'"),
       (["deconvnet", "--target", "relu5_3:512"], "channel 512 out of range"),
       (["guided", "--target", "relu5_3:1:4,0"], "position (4, 0) lies outside"),
       (["saliency", "--target", "conv5_3:x"], "expected CLASS, LAYER:CHANNEL"),
       (["saliency", "--target", "281"], "needs --size 224"),
       (["gradcam", "--target", "relu4_3:2"], "must come before"),
       (["top-units", "--layer", "fc9"], "unknown layer 'fc9'")]


@pytest.mark.parametrize("argv,message", BAD)
def test_bad_target_exits_2_with_one_line(argv, message, tmp_path, capsys):
    rc, out, err = _run(argv + ["--weights", "random", "--size", "64", "--out", str(tmp_path)],
                        capsys)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and message in err
    assert os.listdir(tmp_path) == []
