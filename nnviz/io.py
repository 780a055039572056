"""Images in and out: Pillow loading (EXIF orientation, grayscale, RGBA and palette images,
decompression bombs refused), sample images from scikit-image's bundled data, and atomic
writes (a temporary file in the destination folder, then a rename; inputs never overwritten)."""
import contextlib
import os
import tempfile

import numpy

from .errors import InputError

MAX_PIXELS = 64_000_000   # larger images are refused (Pillow's bomb check uses this too)
SAMPLES = ("astronaut", "chelsea", "coffee")


def load_image(path, size=None):
    """An RGB uint8 image ``(H, W, 3)`` from a file, or from ``"sample:NAME"`` (scikit-image's
    astronaut, chelsea, coffee). ``size`` resizes the longer side to that many pixels."""
    if isinstance(path, str) and path.startswith("sample:"):
        img = sample_image(path.split(":", 1)[1])
    else:
        from PIL import Image, ImageOps
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        path = os.fspath(path)
        if not os.path.exists(path):
            raise InputError(f"{path}: no such file")
        if os.path.isdir(path):
            raise InputError(f"{path}: is a folder, not an image")
        try:
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise InputError(f"{path}: {im.width}×{im.height} image is too large "
                                     f"(more than {MAX_PIXELS} pixels)")
                im = ImageOps.exif_transpose(im)
                if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                    im = im.convert("RGBA")
                    background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                    im = Image.alpha_composite(background, im)
                img = numpy.asarray(im.convert("RGB"))
        except InputError:
            raise
        except Image.DecompressionBombError as e:
            raise InputError(f"{path}: image too large ({e})") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise InputError(f"{path}: not a readable image ({e})") from None
    if size is not None:
        img = resize(img, size)
    return img


def sample_image(name):
    """One of scikit-image's bundled photographs, as RGB uint8."""
    if name not in SAMPLES:
        raise InputError(f"unknown sample image {name!r}: expected one of {', '.join(SAMPLES)}")
    from skimage import data
    return numpy.ascontiguousarray(getattr(data, name)()[..., :3])


def resize(img, size):
    """Resize an RGB uint8 image so that its longer side is ``size`` (or to ``(h, w)``)."""
    from PIL import Image
    h, w = img.shape[:2]
    if isinstance(size, (tuple, list)):
        new_h, new_w = size
    else:
        scale = size / max(h, w)
        new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    if (new_h, new_w) == (h, w):
        return img
    return numpy.asarray(Image.fromarray(img).resize((new_w, new_h), Image.LANCZOS))


@contextlib.contextmanager
def atomic_path(path, force=True, inputs=()):
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    Refuses to overwrite any of ``inputs``, and an existing ``path`` unless ``force``."""
    path = os.path.abspath(os.fspath(path))
    for inp in inputs:
        if inp and os.path.exists(os.fspath(inp)) and os.path.exists(path) \
                and os.path.samefile(os.fspath(inp), path):
            raise InputError(f"{path}: refusing to overwrite an input file")
    if os.path.exists(path) and not force:
        raise InputError(f"{path}: exists (use --force to overwrite)")
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{ext}", dir=folder)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)      # mkstemp makes 0600 files; outputs are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_png(img, path, force=True, inputs=()):
    """Write an RGB or grayscale uint8 image as PNG, atomically. Returns the path."""
    from PIL import Image
    img = numpy.asarray(img)
    if img.dtype != numpy.uint8:
        raise TypeError(f"save_png takes uint8 images, got {img.dtype}")
    with atomic_path(path, force, inputs) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")
    return os.fspath(path)
