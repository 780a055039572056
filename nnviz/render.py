"""Turning arrays into pictures: each method's customary rendering, as uint8 images.

- :func:`signed`: a signed map (N, C, H, W) or (C, H, W) centred on grey (deconvnet, guided
  backprop, gradient × input): 128 + 127 · g / max|g|, channels BGR or RGB as given;
- :func:`magnitude`: Simonyan's saliency, the max over colour channels of |g|, clipped at its
  99th percentile, as a gray map (the gradient family: saliency, SmoothGrad, IG);
- :func:`normalize`: a 2-D map to -1..1 or 0..1 as the field's libraries do it: clipped at a
  percentile of its absolute values (PAIR's ``saliency``: ``VisualizeImageGrayscale``,
  ``VisualizeImageDiverging``, 99th percentile) or at the value where the sorted absolute
  values reach a share of their total (Captum's ``visualization._normalize_attr``);
- :func:`diverging_map`: a signed map summed over colours, symmetric about zero, clipped at the
  99th percentile of |x|, in blue-white-red over the image (gradient × input, IG);
- :func:`heatmap`: a (H, W) map in 0..1 through a perceptual colour map;
- :func:`overlay`: a heat map blended over an image (Grad-CAM);
- :func:`relevance`: an LRP relevance map in the diverging colours of the LRP papers (red
  positive, blue negative, white zero, symmetric about zero), over the image in gray;
- :func:`grid`: several images in one, with optional labels.
"""
import numpy

from .backend import to_numpy
from .errors import BadOption, BadShape
from .functional import resize_bilinear


def _chw_to_hwc(g):
    g = to_numpy(g)
    if g.ndim == 4:
        if g.shape[0] != 1:
            raise BadShape(f"render one image at a time, got a batch of shape {g.shape}")
        g = g[0]
    return g.transpose(1, 2, 0)


def signed(g, bgr=False, percentile=99.5):
    """A signed (C, H, W) map as RGB uint8 centred on grey; clipped at a high percentile of
    |g| so that one pixel does not wash out the rest."""
    a = _chw_to_hwc(g).astype(numpy.float64)
    if bgr:
        a = a[..., ::-1]
    scale = numpy.percentile(numpy.abs(a), percentile) if a.size else 0.0
    if not scale > 0:
        scale = numpy.abs(a).max() or 1.0
    return numpy.clip(128 + 127 * a / scale, 0, 255).astype(numpy.uint8)


SIGNS = ("absolute_value", "all", "positive", "negative")
CLIPS = ("percentile", "cumulative")


def normalize(a, sign="absolute_value", percentile=99.0, clip="percentile"):
    """A 2-D map ``a`` (H, W) scaled into -1..1 (0..1 for ``sign="absolute_value"``,
    ``"positive"`` and ``"negative"``: the negative part's magnitude, as Captum) and clipped.

    ``sign``: ``"absolute_value"`` |a|, ``"all"`` a itself (signed), ``"positive"`` max(a, 0),
    ``"negative"`` min(a, 0) (Captum's ``VisualizeSign``). The scale is a threshold t on |a| (of
    the values the sign keeps), with a / t clipped: ``clip="percentile"``: t is the
    ``percentile``-th percentile of |a| (``numpy.percentile``, linear), PAIR's ``saliency``
    library's rule (99 by default); ``clip="cumulative"``: t is the smallest value at which the
    sorted |a| reach ``percentile`` % of their sum, Captum's rule (``outlier_perc = 100 -
    percentile``; its default 2 is ``percentile=98``). A map that is zero everywhere stays
    zero."""
    a = numpy.asarray(a, dtype=numpy.float64)
    if sign not in SIGNS:
        raise BadOption(f"sign {sign!r}: expected one of {', '.join(SIGNS)}")
    if clip not in CLIPS:
        raise BadOption(f"clip {clip!r}: expected one of {', '.join(CLIPS)}")
    if sign == "absolute_value":
        a = numpy.abs(a)
    elif sign == "positive":
        a = numpy.maximum(a, 0)
    elif sign == "negative":
        a = numpy.minimum(a, 0)
    m = numpy.abs(a)
    if not m.size:
        return a
    if clip == "percentile":
        t = numpy.percentile(m, percentile)
    else:
        v = numpy.sort(m.ravel())
        c = numpy.cumsum(v)
        t = v[numpy.nonzero(c >= c[-1] * 0.01 * percentile)[0][0]]
    if not t > 0:                      # most of the map is 0: scale by its maximum instead
        t = m.max()
    if not t > 0:
        return numpy.zeros_like(a)
    return numpy.clip(a / (-t if sign == "negative" else t), -1, 1)


def magnitude(g, percentile=99.0, reduce="max"):
    """Simonyan et al.'s saliency map as the field renders it: |g| reduced over the colour
    channels (``reduce="max"``, Simonyan et al. 2013; ``"sum"``, PAIR's
    ``VisualizeImageGrayscale``), clipped at its ``percentile``-th percentile (99: PAIR's and
    SmoothGrad's) and scaled to 0..255 (gray)."""
    a = numpy.abs(_chw_to_hwc(g).astype(numpy.float64))
    a = a.max(axis=2) if reduce == "max" else a.sum(axis=2)
    return numpy.round(255 * normalize(a, "absolute_value", percentile)).astype(numpy.uint8)


def diverging_map(g, image=None, percentile=99.0, fade=0.35):
    """A signed map ``g`` (C, H, W) summed over the colour channels, symmetric about zero and
    clipped at the ``percentile``-th percentile of its absolute values (PAIR's
    ``VisualizeImageDiverging``, Captum's ``sign="all"``), in :func:`diverging` colours (red
    positive, blue negative) over the image in faded gray when ``image`` is given (as
    :func:`relevance`)."""
    return relevance(g, image, percentile=percentile, fade=fade)


def heatmap(m):
    """A (H, W) map (any range; normalized to 0..1) as RGB uint8 through matplotlib-free
    'inferno'-like colours (a fixed piecewise-linear map)."""
    m = to_numpy(m).astype(numpy.float64)
    lo, hi = m.min(), m.max()
    m = (m - lo) / (hi - lo) if hi > lo else numpy.zeros_like(m)
    stops = numpy.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]],
                        dtype=numpy.float64)
    pos = m * (len(stops) - 1)
    i = numpy.clip(pos.astype(int), 0, len(stops) - 2)
    f = (pos - i)[..., None]
    return (stops[i] * (1 - f) + stops[i + 1] * f).round().astype(numpy.uint8)


def overlay(image, m, alpha=0.5):
    """Blend the heat map of ``m`` (any size; bilinearly resized) over an RGB uint8 ``image``."""
    h, w = image.shape[:2]
    m = to_numpy(m).astype(numpy.float64)
    if m.shape != (h, w):
        m = resize_bilinear(m, h, w)
    heat = heatmap(m).astype(numpy.float64)
    return numpy.clip((1 - alpha) * image + alpha * heat, 0, 255).astype(numpy.uint8)


def diverging(v):
    """Values ``v`` in -1..1 as RGB uint8: blue (-1) through white (0) to red (+1), the
    ``bwr`` map of the LRP papers and zennit's ``imgify(..., cmap="bwr")``."""
    v = numpy.clip(numpy.asarray(v, dtype=numpy.float64), -1, 1)[..., None]
    white, red, blue = numpy.array([255.0, 255, 255]), numpy.array([255.0, 0, 0]), numpy.array([0.0, 0, 255])
    out = numpy.where(v >= 0, white + v * (red - white), white - v * (blue - white))
    return out.round().astype(numpy.uint8)


def relevance(r, image=None, percentile=99.5, fade=0.35):
    """An LRP relevance map ``r`` (C, H, W) or (1, C, H, W), summed over the colour channels,
    as RGB uint8 in :func:`diverging` colours, symmetric about zero: ±1 at the ``percentile``
    of |relevance| (clipped beyond, so that one pixel does not wash out the rest). With
    ``image`` (H, W, 3) uint8, the white of zero relevance shows the image in gray, faded
    toward white (``fade``: 0 white, 1 the gray image), and each pixel's colour covers it in
    proportion to its strength."""
    a = _chw_to_hwc(r).astype(numpy.float64).sum(axis=2)
    v = normalize(a, "all", percentile)
    heat = diverging(v).astype(numpy.float64)
    if image is None:
        return heat.astype(numpy.uint8)
    img = numpy.asarray(image, dtype=numpy.float64)
    if img.shape[:2] != v.shape:
        raise BadShape(f"relevance of size {v.shape} over an image of size {img.shape[:2]}")
    gray = (img[..., :3] @ numpy.array([0.299, 0.587, 0.114]))[..., None]
    ghost = 255 - fade * (255 - gray)          # the image, faded toward white (zero relevance)
    w = numpy.abs(v)[..., None]
    return numpy.clip((1 - w) * ghost + w * heat, 0, 255).round().astype(numpy.uint8)


def gray_to_rgb(img):
    img = numpy.asarray(img)
    return numpy.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def grid(images, labels=None, ncols=None, pad=4, background=255):
    """Tile RGB or gray uint8 images (resized to the first one's size) in one image, with an
    optional text label under each."""
    from PIL import Image, ImageDraw
    images = [gray_to_rgb(i) for i in images]
    if not images:
        raise BadOption("grid of no images")
    h, w = images[0].shape[:2]
    n = len(images)
    ncols = ncols or int(numpy.ceil(numpy.sqrt(n)))
    nrows = int(numpy.ceil(n / ncols))
    label_h = 14 if labels else 0
    out = numpy.full((nrows * (h + pad + label_h) + pad, ncols * (w + pad) + pad, 3), background,
                     numpy.uint8)
    canvas = Image.fromarray(out)
    draw = ImageDraw.Draw(canvas)
    for k, img in enumerate(images):
        if img.shape[:2] != (h, w):
            img = numpy.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))
        r, c = divmod(k, ncols)
        y, x = pad + r * (h + pad + label_h), pad + c * (w + pad)
        canvas.paste(Image.fromarray(img), (x, y))
        if labels:
            draw.text((x + 2, y + h + 1), str(labels[k])[: max(1, w // 6)], fill=(0, 0, 0))
    return numpy.asarray(canvas)
