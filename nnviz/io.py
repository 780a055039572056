"""Images in and out: Pillow loading (EXIF orientation, grayscale, RGBA and palette images,
16-bit and float images scaled by their depth, decompression bombs refused, no resize past the
pixel limit), sample images from scikit-image's bundled data, and atomic writes (a temporary
file named with the writing process's id in the destination folder, then a rename; inputs
never overwritten; temporaries that a killed run left are removed by the next write of the
same output)."""
import contextlib
import functools
import math
import os
import re
import tempfile

import numpy

from .errors import BadFile, BadOption, BadShape, InputError

MAX_PIXELS = 64_000_000   # larger images are refused (Pillow's bomb check uses this too)
MAX_SIDE = math.isqrt(MAX_PIXELS)   # the longest side a square image may have
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
# scikit-image's bundled colour photographs (no download), by name: ``sample:NAME``; the first
# three are the demo's and the attribution commands' photographs, all six the feed-forward style
# nets' default training set
SAMPLES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "hubble_deep_field")
PHOTOGRAPHS = SAMPLES[:3]     # the ones the README's tables and the gallery are made on
# the file name endings nnviz takes for images in a folder (any file given by name is tried)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm")


def load_image(path, size=None):
    """An RGB uint8 image ``(H, W, 3)`` from a file, or from ``"sample:NAME"`` (scikit-image's
    :data:`SAMPLES`). ``size`` resizes the longer side to that many pixels."""
    if isinstance(path, str) and path.startswith("sample:"):
        img = sample_image(path.split(":", 1)[1])
    else:
        from PIL import Image, ImageOps
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        path = os.fspath(path)
        if not os.path.exists(path):
            raise BadFile(f"{path}: no such file")
        if os.path.isdir(path):
            raise BadFile(f"{path}: is a folder, not an image")
        try:
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise BadFile(f"{path}: {im.width}×{im.height} image is too large "
                                  f"(more than {MAX_PIXELS} pixels)")
                im = ImageOps.exif_transpose(im)
                if im.mode in SIXTEEN_BIT + ("I", "F"):
                    img = _deep_to_rgb8(im, path)
                else:
                    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                        im = im.convert("RGBA")
                        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                        im = Image.alpha_composite(background, im)
                    img = numpy.asarray(im.convert("RGB"))
        except InputError:
            raise
        except Image.DecompressionBombError as e:
            raise BadFile(f"{path}: image too large ({e})") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise BadFile(f"{path}: not a readable image ({e})") from None
    if size is not None:
        img = resize(img, size)
    return img


def _deep_to_rgb8(im, path):
    """A one-channel image deeper than 8 bits as RGB uint8, scaled by its depth: 16-bit
    (``I;16``, and ``I`` holding 0..65535, as Pillow opens 16-bit PNGs) by 255/65535; float
    (``F``) taken as 0..1 (values outside clipped); NaN or Inf refused."""
    a = numpy.asarray(im)
    if im.mode == "F":
        a = a.astype(numpy.float64)
        if not numpy.isfinite(a).all():
            raise BadFile(f"{path}: a float image with NaN or Inf pixels")
        a = numpy.clip(a, 0.0, 1.0) * 255.0
    else:
        a = a.astype(numpy.int64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise BadFile(f"{path}: {im.mode} image with values outside 0..65535 (only 8- and "
                          "16-bit integer and 0..1 float images are read)")
        a = a * (255.0 / 65535.0)
    g = numpy.rint(a).astype(numpy.uint8)
    return numpy.ascontiguousarray(numpy.repeat(g[..., None], 3, axis=2))


def sample_image(name):
    """One of scikit-image's bundled photographs (:data:`SAMPLES`), as RGB uint8 ``(H, W,
    3)`` (a copy of the one read once)."""
    if name not in SAMPLES:
        raise BadFile(f"unknown sample image {name!r}: expected one of {', '.join(SAMPLES)}")
    return _sample(name).copy()


@functools.lru_cache(maxsize=None)
def _sample(name):
    from skimage import data
    img = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    img = numpy.ascontiguousarray(img[..., :3])
    img.flags.writeable = False
    return img


def is_image_name(name):
    """Whether a file name ends in one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return os.fspath(name).lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder):
    """The image files directly in ``folder`` (not its subfolders; by :func:`is_image_name`),
    sorted by name, as paths: the one folder listing of every command that takes a folder."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise BadFile(f"{folder}: no such folder")
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder))
            if is_image_name(f) and os.path.isfile(os.path.join(folder, f))]


def fit_size(shape, size):
    """``(h, w)`` of an image of ``shape`` (its first two numbers: H, W) with its longer side
    at ``size`` (each at least 1): the size :func:`resize` makes."""
    h, w = shape[:2]
    scale = size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize(img, size):
    """Resize an RGB uint8 image so that its longer side is ``size`` (or to ``(h, w)``)."""
    from PIL import Image
    h, w = img.shape[:2]
    new_h, new_w = size if isinstance(size, (tuple, list)) else fit_size((h, w), size)
    if (new_h, new_w) == (h, w):
        return img
    if new_h * new_w > MAX_PIXELS or min(new_h, new_w) < 1:
        raise BadShape(f"resizing to {new_w}×{new_h} pixels refused: images are limited to "
                       f"{MAX_PIXELS:,} pixels (and at least 1×1)")
    return numpy.asarray(Image.fromarray(img).resize((new_w, new_h), Image.LANCZOS))


def process_alive(pid):
    """Whether process ``pid`` exists on this machine (another user's counts)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:       # another user's process
        return True
    return True


def _temp_pattern(base, ext):
    return re.compile(rf"\.{re.escape(base)}\.(\d+)-[A-Za-z0-9_]+\.tmp{re.escape(ext)}")


def clean_stale_temporaries(path):
    """Remove the temporary files of output ``path`` (``.NAME.PID-XXXX.tmpEXT`` beside it)
    whose writing process is gone (a killed run); returns the removed paths."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    base, ext = os.path.splitext(os.path.basename(path))
    pattern, removed = _temp_pattern(base, ext), []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = pattern.fullmatch(name)
        if m and not process_alive(int(m[1])):
            try:
                os.unlink(os.path.join(folder, name))
                removed.append(os.path.join(folder, name))
            except OSError:
                pass
    return removed


@contextlib.contextmanager
def atomic_path(path, force=True, inputs=()):
    """Yield a temporary path beside ``path`` (``.NAME.PID-XXXX.tmpEXT``, PID this process's
    id); rename it to ``path`` if the block succeeds. Temporaries of the same output left by
    processes that are gone are removed first.

    Refuses to overwrite any of ``inputs``, and an existing ``path`` unless ``force``."""
    path = os.path.abspath(os.fspath(path))
    for inp in inputs:
        if inp and os.path.exists(os.fspath(inp)) and os.path.exists(path) \
                and os.path.samefile(os.fspath(inp), path):
            raise BadOption(f"{path}: refusing to overwrite an input file")
    if os.path.exists(path) and not force:
        raise BadOption(f"{path}: exists (use --force to overwrite)")
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    clean_stale_temporaries(path)
    base, ext = os.path.splitext(os.path.basename(path))
    tmp = None
    with interrupts_deferred():     # a write, once begun, ends renamed or removed
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{base}.{os.getpid()}-", suffix=f".tmp{ext}",
                                       dir=folder)
            os.close(fd)
            yield tmp
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)      # mkstemp makes 0600 files; outputs are ordinary files
            os.replace(tmp, path)
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)


# Interrupts (Ctrl-C, and SIGTERM under the nnviz command) are taken by :func:`interrupt`,
# which raises KeyboardInterrupt at once, or, while a file is being written, when the write
# is over: a signal never lands between creating a temporary and renaming or removing it.
_deferral = {"depth": 0, "pending": False}


def interrupt(signum, frame):
    """A SIGINT/SIGTERM handler: KeyboardInterrupt, deferred to the end of a write."""
    if _deferral["depth"]:
        _deferral["pending"] = True
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts_deferred():
    """Within the block, :func:`interrupt` only notes a signal; it is raised as
    KeyboardInterrupt when the outermost such block ends."""
    _deferral["depth"] += 1
    try:
        yield
    finally:
        _deferral["depth"] -= 1
        if not _deferral["depth"] and _deferral["pending"]:
            _deferral["pending"] = False
            raise KeyboardInterrupt


def save_png(img, path, force=True, inputs=()):
    """Write an RGB or grayscale uint8 image as PNG, atomically. Returns the path."""
    from PIL import Image
    img = numpy.asarray(img)
    if img.dtype != numpy.uint8:
        raise TypeError(f"save_png takes uint8 images, got {img.dtype}")
    with atomic_path(path, force, inputs) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")
    return os.fspath(path)
