"""Grad-CAM and guided Grad-CAM: Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from
Deep Networks via Gradient-based Localization", eq. (1)-(2) and sec. 3.1.

Arrays: ``x: (N, C, H, W)`` preprocessed batches; maps on the net's device, ``(N, 1, H, W)``
for Grad-CAM and shaped as ``x`` for guided Grad-CAM. Gradients by ``Net.backward``.
"""
from ..errors import InputError
from ..functional import resize_bilinear
from .attribution import as_batch, gradient, target_activation


def gradcam(net, x, target, layer="relu5_3", upsample=True):
    """Selvaraju et al. 2017, eq. (1)-(2): weights ``alpha_c`` = spatial mean of the gradient
    of the target's score at the output of ``layer``; the map is
    ``ReLU(sum_c alpha_c A_c)``, bilinearly upsampled to the input (half-pixel centres).

    ``x: (N, C, H, W)`` -> ``(N, 1, H, W)`` (``(N, 1, h, w)`` at the layer's resolution with
    ``upsample=False``).
    """
    x = as_batch(net, x)
    t, act = target_activation(net, x, target)
    if layer not in net.layers:
        raise InputError(f"unknown Grad-CAM layer {layer!r} for {net.arch}: expected one of "
                         f"{', '.join(net.layers)}")
    names = net.layer_names
    if names.index(layer) >= names.index(t.layer):
        raise InputError(f"Grad-CAM layer {layer!r} must come before the target's layer "
                         f"{t.layer!r}")
    a = net.activations[layer]
    if a.ndim != 4:
        raise InputError(f"Grad-CAM layer {layer!r} has no spatial map; give a convolutional "
                         f"layer (e.g. relu5_3)")
    g = net.backward(t.seed(act), t.layer, stop=layer)          # dS/dA: (N, K, h, w)
    alpha = g.mean(axis=(2, 3), keepdims=True)                        # (N, K, 1, 1)
    cam = (alpha * a).sum(axis=1, keepdims=True)
    cam = cam * (cam > 0)
    if upsample:
        cam = resize_bilinear(cam, x.shape[2], x.shape[3])
    return cam


def guided_gradcam(net, x, target, layer="relu5_3"):
    """Selvaraju et al. 2017, sec. 3.1: guided backprop of the target's score (seed 1, every
    ReLU guided) times the upsampled Grad-CAM map. ``x: (N, C, H, W)`` -> shaped as ``x``."""
    cam = gradcam(net, x, target, layer)
    return gradient(net, x, target, "guided") * cam
