"""``nnviz train-style`` and ``nnviz stylize``: feed-forward style transfer (Johnson, Alahi &
Fei-Fei 2016) and texture networks (Ulyanov et al. 2016), trained once by the hand-written
backward and Adam, then applied in one forward pass (see nnviz.methods.fast_style)."""
import argparse
import os
import sys
import time

import numpy

from .. import plots
from ..errors import BadFile, BadOption
from ..io import MAX_SIDE, SAMPLES, load_image, save_png
from ..methods import fast_style as FS
from ..render import grid
from ..tables import write_csv
from .common import (
    NONNEG_INT,
    POSITIVE,
    Outputs,
    add_common,
    add_parser,
    integer,
    load_net,
    number,
    say,
    stem,
)
from .style import STYLE_SIZE, add_loss_weights, add_print_every

TRAIN_EXAMPLES = """examples:
  nnviz train-style starry_night.jpg --size 256 --steps 2000 --width 0.5 --out starry.h5
  nnviz train-style starry_night.jpg --images photos/ --size 128 --steps 300 --width 0.25 --out quick.h5
  nnviz train-style starry_night.jpg --resume starry.ckpt.h5 --steps 4000 --out starry.h5 --force
  nnviz train-style pattern.jpg --mode texture --size 128 --steps 500 --out pattern.h5
"""

STYLIZE_EXAMPLES = """examples:
  nnviz stylize starry.h5 photo.jpg more.jpg --out stylized/
  nnviz stylize starry.h5 sample:astronaut sample:chelsea --size 512 --out stylized/
  nnviz stylize pattern.h5 --size 256 --count 4 --out textures/      # a texture model: from noise
"""

PREVIEW = ("sample:chelsea", "sample:astronaut")


BATCH = integer(1, 256)

TRAIN_NUMBERS = (      # option, type, default, help of train-style's numbers
    ("--size", integer(16, 4096), 256, "crop size in pixels, a multiple of 4 (texture: of "
                                       "2^(scales-1))"),
    ("--steps", NONNEG_INT, 2000, "training steps (with --resume, the total to reach)"),
    ("--batch", BATCH, 4, "crops per step"),
    ("--width", number(0, 8, lo_open=True), 1.0, "channel width factor (1: Johnson's 32/64/128 "
                                                  "channels)"),
    ("--lr", POSITIVE, FS.LR, "Adam's learning rate"),
    ("--warmup", NONNEG_INT, 0, "steps over which the rate grows linearly to --lr (0: none; "
                                "50 keeps a small network's first steps from saturating its "
                                "output)"),
    ("--style-size", STYLE_SIZE, None, "longer side of the style image (default: --size)"),
    ("--scales", integer(1, 8), 5, "texture mode: noise scales"),
    ("--checkpoint-every", NONNEG_INT, 100, "write the checkpoint every K steps (0: only at the "
                                            "end)"),
)


def register(sub):
    p = add_parser(sub, "train-style", "train a feed-forward style network (Johnson et al. 2016) "
                   "or texture generator (Ulyanov et al. 2016)", TRAIN_EXAMPLES,
                   description=__doc__)
    p.add_argument("style", metavar="STYLE", help="the style image (or sample:NAME)")
    p.add_argument("--images", default=None, metavar="DIR",
                   help="folder of content photographs (default: scikit-image's bundled colour "
                        "photographs: " + ", ".join(SAMPLES) + ")")
    p.add_argument("--mode", default="transfer", choices=tuple(FS.MODES),
                   help="transfer: Johnson's transformer (default); texture: Ulyanov's generator "
                        "from noise, style loss only")
    for option, kind, default, text in TRAIN_NUMBERS:
        p.add_argument(option, type=kind, default=default, help=text,
                       metavar="K" if option.endswith("-every") else None)
    add_loss_weights(p, FS.CONTENT_WEIGHT, FS.STYLE_WEIGHT, FS.TV_WEIGHT)
    add_print_every(p, 50, "steps")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="checkpoint file (default: OUT with .ckpt.h5; with --resume, that file)")
    p.add_argument("--resume", default=None, metavar="CKPT",
                   help="continue the run of this checkpoint (its options win; new checkpoints "
                        "replace it)")
    p.add_argument("--float64", action="store_true", help="train in float64 (slow; for checks)")
    g = add_common(p, out=False)
    g.add_argument("--out", default="style-model.h5",
                   help="the model file to write; beside it OUT_loss.csv, OUT_loss.png and "
                        "OUT_preview.png")
    g.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=train)

    p = add_parser(sub, "stylize", "stylize photographs with a trained feed-forward network, or "
                   "make textures with a texture model", STYLIZE_EXAMPLES, description=__doc__)
    p.add_argument("model", metavar="MODEL", help="a model file made by 'nnviz train-style'")
    p.add_argument("images", metavar="IMAGE", nargs="*",
                   help="photographs (or sample:NAME); none for a texture model")
    p.add_argument("--size", type=integer(8, MAX_SIDE), default=None,
                   help="resize each image to this longer side first (default: as it is; "
                        "texture: the side, default 256)")
    p.add_argument("--batch", type=BATCH, default=4, help="images per forward pass")
    p.add_argument("--count", type=integer(1, 1000), default=1, help="texture model: how many")
    add_common(p, weights=False)
    p.set_defaults(func=stylize)


def _base(path):
    base, ext = os.path.splitext(path)
    return base if ext.lower() in (".h5", ".hdf5") else path


def train(args):
    resume = args.resume
    load_image(args.style)           # a bad style image fails before the VGG loads
    base = _base(args.out)
    # --out is the model file here: the folder that Outputs checks is its folder
    where = argparse.Namespace(out=os.path.dirname(os.path.abspath(args.out)), force=args.force)
    outputs = Outputs(where, [args.style, resume])
    out_path = outputs.check(args.out)
    csv_path = outputs.check(base + "_loss.csv")
    png_path = outputs.check(base + "_loss.png")
    preview_path = outputs.check(base + "_preview.png")
    ckpt = args.checkpoint or resume or base + ".ckpt.h5"
    if resume is None or os.path.realpath(ckpt) != os.path.realpath(resume):
        outputs.check(ckpt)
    if resume is None:        # bad options fail before the VGG loads (a resumed run takes its own)
        FS.check_options(args.mode, args.size, args.batch, args.steps, args.scales)
    if args.images is not None and not os.path.isdir(args.images):
        raise BadFile(f"--images {args.images}: no such folder of content images")
    vgg = load_net(args, include_top=False)
    dtype = numpy.float64 if args.float64 else numpy.float32

    def report(step, terms):
        if args.print_every and (step % args.print_every == 0 or step == 1):
            say(args, f"step {step:5d}  loss {terms['total']:.4e}  content {terms['content']:.3e}  "
                      f"style {terms['style']:.3e}  tv {terms['tv']:.3e}")

    say(args, f"training a {args.mode} network on {stem(args.style)}: {args.size} px crops, batch "
              f"{args.batch}, width {args.width:g}, {args.steps} steps; {vgg.arch} on {vgg.device}")
    result = FS.train(
        args.style, args.images, mode=args.mode, width=args.width,
        size=args.size, batch=args.batch, steps=args.steps, lr=args.lr,
        content_weight=args.content_weight, style_weight=args.style_weight,
        tv_weight=args.tv_weight, style_size=args.style_size, scales=args.scales, vgg=vgg,
        seed=args.seed, dtype=dtype, checkpoint=ckpt, checkpoint_every=args.checkpoint_every,
        resume=resume, progress=not args.quiet, callback=report, warmup=args.warmup)
    model = result.extra["model"]
    FS.save(model, out_path)
    written = [out_path, ckpt]
    if model.history:
        written += [write_csv(csv_path, FS.HISTORY_COLUMNS, model.history, digits=None), plots.loss_curve(
            model.history, png_path, f"{model.arch}, width {model.width:g}: {stem(args.style)}")]
    if model.arch == "johnson":
        preview = FS.stylize(model, [load_image(p, 256) for p in PREVIEW])
    else:
        preview = FS.generate(model, 2, 256, seed=args.seed)
    written.append(save_png(grid(preview), preview_path))
    steps = len(model.history)
    secs = sum(h["seconds"] for h in model.history[-steps:]) if steps else 0.0
    if result.status != "done":
        print(f"nnviz train-style: {result.message}; the model so far is saved", file=sys.stderr,
              flush=True)
    if steps:
        say(args, f"step {model.step}: loss {model.history[-1]['loss']:.4e} (first step "
                  f"{model.history[0]['loss']:.4e}); {result.seconds:.1f} s, "
                  f"{steps / max(secs, 1e-9):.2f} steps/s over the run")
    for path in written:
        say(args, path)
    return 1 if result.status == "interrupted" else 0


def stylize(args):
    model = FS.load(args.model, device=args.device)
    outputs = Outputs(args, [args.model, *args.images])
    name = stem(args.model)
    if model.arch == "ulyanov":
        if args.images:
            raise BadOption(f"{args.model}: a texture model makes images from noise; give no "
                            f"photographs (use --size and --count)")
        paths = [outputs.path(f"{name}_texture{i + 1}.png") for i in range(args.count)]
        start = time.perf_counter()
        images = FS.generate(model, args.count, args.size or 256, seed=args.seed)
    else:
        if not args.images:
            raise BadOption(f"{args.model}: give one or more photographs to stylize")
        photos = [load_image(p) for p in args.images]
        paths = [outputs.path(f"{stem(p)}_{name}.png") for p in args.images]
        start = time.perf_counter()
        images = FS.stylize(model, photos, batch=args.batch, size=args.size)
    seconds = time.perf_counter() - start
    for img, path in zip(images, paths):
        say(args, save_png(img, path))
    n = len(images)
    say(args, f"{n} image{'s' if n != 1 else ''} in {seconds:.2f} s: {n / max(seconds, 1e-9):.2f} "
              f"images/s ({model.arch}, width {model.width:g}, on {model.net.device})")
    return 0
