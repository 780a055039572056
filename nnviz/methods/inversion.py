"""Inversion of representations: Mahendran & Vedaldi 2015, "Understanding Deep Image
Representations by Inverting Them", eq. (1)–(5): ``argmin_x ‖Φ(x) − Φ₀‖² / ‖Φ₀‖²
+ λ_α N_α(x) + λ_TV TV_β(x)``, by the loop of :mod:`nnviz.methods.optimize`.
"""
from .. import backend
from ..errors import BadTarget
from . import optimize
from .optimize import noise, regularizer_terms, run


def memory_estimate(net, n, h, w, layer):
    """Bytes that :func:`invert` on ``n`` images of ``h × w`` holds at its peak: the loop's
    (:func:`nnviz.methods.optimize.memory_estimate` to ``layer``) and two images' worth more
    (the target representation and its difference)."""
    return optimize.memory_estimate(net, n, h, w, layer, optimize.LOOP_BUFFERS + 2)


def representation_loss(net, x, layer, phi0):
    """Mahendran & Vedaldi's ``‖Φ(x) − Φ₀‖² / ‖Φ₀‖²`` per image, and its input gradient."""
    phi = net.forward(x, until=layer)
    n = len(x)
    diff = phi - phi0
    norm = (phi0 * phi0).reshape(n, -1).sum(axis=1)
    value = (diff * diff).reshape(n, -1).sum(axis=1) / norm
    shape = (n,) + (1,) * (phi.ndim - 1)
    return value, net.backward(2 * diff / norm.reshape(shape), start=layer)


def invert(net, image, layer, steps=200, lr=2.0, alpha=6, tv_beta=2, alpha_weight=1e-3,
           tv_weight=1e-2, x0=None, optimizer="adam", jitter=0, seed=None, progress=True, **kw):
    """Mahendran & Vedaldi 2015: the image whose representation at ``layer`` matches that of
    ``image`` (preprocessed (N, 3, H, W)): minimize ``‖Φ(x) − Φ₀‖²/‖Φ₀‖² + λ_α N_α(x) +
    λ_TV TV_β(x)`` from noise (N_α, TV_β: :func:`lp_norm`, :func:`total_variation`, on images
    in units of half the pixel range). Returns a :class:`~nnviz.methods.optimize.Result`;
    ``history[i]["objective"]`` is the representation loss."""
    net.check_layer(layer)
    image = backend.to_device(image, net.device)
    phi0 = net.forward(image, until=layer).copy()
    if not float((phi0 * phi0).sum()) > 0:
        raise BadTarget(f"the representation of the image at {layer!r} is all zero: nothing "
                        f"to invert")
    if x0 is None:
        x0 = noise(net, len(image), image.shape[2:], seed, image.dtype)
    terms = [("objective", 1.0, lambda x: representation_loss(net, x, layer, phi0), True)]
    terms += regularizer_terms(net, (alpha, alpha_weight), (tv_beta, tv_weight))
    kw.setdefault("grad_norm", None)
    return run(net, x0, terms, steps=steps, lr=lr, optimizer=optimizer, jitter=jitter,
               seed=seed, progress=progress, desc=f"invert {layer}", **kw)
