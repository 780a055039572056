"""``nnviz style``: neural style transfer (Gatys, Ecker & Bethge 2015/2016), content
reconstruction and texture synthesis, by L-BFGS on hand-written gradients (see
nnviz.methods.style).

The optimization runs with the longer side at --size; the PNG has the content's original size
unless --keep-size or --output-size says otherwise."""
import os
import sys

import numpy

from ..errors import BadOption
from ..io import MAX_SIDE, PHOTOGRAPHS, fit_size, load_image, resize, save_png
from ..methods import style as S
from ..progress import progress_bar
from ..tables import write_csv
from .common import (
    NONNEG,
    NONNEG_INT,
    POSITIVE_INT,
    ListOf,
    Outputs,
    add_common,
    add_parser,
    check_memory,
    integer,
    load_net,
    number,
    output_name,
    say,
    stem,
)

STYLE_SIZE = integer(16, MAX_SIDE)

EXAMPLES = """examples:
  nnviz style sample:astronaut starry_night.jpg --output astro_starry.png
  nnviz style photo.jpg a.jpg b.jpg --style-weights 0.7,0.3 --size 384 --iters 300
  nnviz style photo.jpg painting.jpg --original-colors --snapshot-every 50 --out runs/
  nnviz style sample:chelsea --mode content --iters 200        # reconstruct from relu4_2
  nnviz style none painting.jpg --mode texture --size 256      # texture synthesis
"""


def _layers(text):
    return tuple(v.strip() for v in text.split(",") if v.strip())


def add_loss_weights(p, content, style, tv):
    """--content-weight, --style-weight and --tv-weight (each ≥ 0) with these defaults: the
    Gatys loss's weights, shared by ``nnviz style`` and ``nnviz train-style``."""
    p.add_argument("--content-weight", type=NONNEG, default=content,
                   help=f"weight of the content loss (default {content:g})")
    p.add_argument("--style-weight", type=NONNEG, default=style,
                   help=f"weight of the style loss (default {style:g})")
    p.add_argument("--tv-weight", type=NONNEG, default=tv,
                   help=f"total variation weight (default {tv:g})")


def add_print_every(p, default, unit):
    """--print-every K: progress every K ``unit`` (iterations, steps); 0: never."""
    p.add_argument("--print-every", type=NONNEG_INT, default=default, metavar="K",
                   help=f"print progress every K {unit} (default {default}; 0: never)")


def register(sub):
    p = add_parser(sub, "style", "neural style transfer, content reconstruction, texture "
                   "synthesis (Gatys et al.)", EXAMPLES, description=__doc__)
    p.add_argument("content", metavar="CONTENT",
                   help=f"content image, or sample:{'|'.join(PHOTOGRAPHS)} ('none' in texture mode)")
    p.add_argument("styles", metavar="STYLE", nargs="*", help="one or more style images")
    p.add_argument("--output", "-o", default=None,
                   help="output PNG (default: OUT/style_CONTENT_STYLE.png)")
    p.add_argument("--mode", default="transfer", choices=S.MODES,
                   help="transfer (default); content: reconstruct the content from noise; "
                        "texture: synthesize the style from noise")
    p.add_argument("--style-weights", type=ListOf(NONNEG, "weights"), default=None,
                   metavar="W1,W2,...",
                   help="blend weights of the style images (normalized to sum 1; default equal)")
    add_loss_weights(p, S.CONTENT_WEIGHT, S.STYLE_WEIGHT, S.TV_WEIGHT)
    p.add_argument("--content-layers", default=",".join(S.CONTENT_LAYERS), metavar="L1,L2,...",
                   help="layers the content loss compares, comma-separated names from "
                        "'nnviz info' (default %(default)s)")
    p.add_argument("--style-layers", default=",".join(S.STYLE_LAYERS), metavar="L1,L2,...",
                   help="layers whose Gram matrices the style loss compares, comma-separated "
                        "(default %(default)s)")
    p.add_argument("--size", type=STYLE_SIZE, default=512,
                   help="longer side of the optimized image (default 512)")
    p.add_argument("--scales", type=ListOf(STYLE_SIZE, "sizes"), default=None,
                   metavar="S1,S2,...",
                   help="coarse-to-fine sizes, e.g. 256,512 (default: halving from --size while "
                        "≥ 1024)")
    p.add_argument("--style-scale", type=number(0, 8, lo_open=True), default=1.0,
                   help="style images at this fraction of --size (default 1)")
    p.add_argument("--init", default="content",
                   help="content (default), noise, or an image path")
    p.add_argument("--original-colors", action="store_true",
                   help="keep the content's colours (transfer luminance only)")
    p.add_argument("--pooling", default="avg", choices=("avg", "max"),
                   help="pooling of the net (default avg, as Gatys recommends)")
    p.add_argument("--iters", type=POSITIVE_INT, default=500,
                   help="L-BFGS iterations per scale (default 500)")
    p.add_argument("--snapshot-every", type=NONNEG_INT, default=0, metavar="K",
                   help="also write the image every K iterations (default 0: never)")
    p.add_argument("--loss-csv", default=None, metavar="PATH",
                   help="where to write the loss curve (iteration, loss, content, style, tv, "
                        "size, seconds); default: beside the image, OUTPUT_loss.csv")
    add_print_every(p, 10, "iterations")
    p.add_argument("--statistic", default="gram", choices=S.STATISTICS,
                   help="style statistic: gram (Gatys) or mean (channel means)")
    p.add_argument("--palette", type=integer(2, 256), default=None, metavar="N",
                   help="reduce the style images to N colours first")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--keep-size", action="store_true",
                      help="write the image at the optimized size, not the content's")
    size.add_argument("--output-size", type=STYLE_SIZE, default=None, metavar="N",
                      help="write the image with its longer side N")
    p.add_argument("--float64", action="store_true", help="compute the features in float64")
    add_common(p)
    p.set_defaults(func=run)


def run(args):
    no_content = args.content.lower() == "none"
    content = None if no_content else load_image(args.content)
    styles = [load_image(s) for s in args.styles] if args.mode != "content" else []
    blend = args.style_weights or None
    if blend is not None and not sum(blend) > 0:
        raise BadOption(f"--style-weights {','.join(map(str, blend))}: at least one weight must "
                        "be > 0")
    init = args.init if args.init in ("content", "noise") else load_image(args.init)
    scales = args.scales

    outputs = Outputs(args, [args.content, *args.styles, args.init])
    if args.output:
        out_path = outputs.check(args.output, "--output")
    else:
        name = "_".join([stem(args.content)] + [stem(s) for s in args.styles[:3]])
        kind = "style" if args.mode == "transfer" else args.mode
        out_path = outputs.path(output_name(args, f"{kind}_{name}", named=("mode",)) + ".png")
    base = os.path.splitext(out_path)[0]
    csv_path = outputs.check(args.loss_csv or base + "_loss.csv", "--loss-csv")
    n_scales = len(scales or S.default_scales(args.size))
    snapshots = outputs.series(os.path.abspath(base).replace("{", "{{").replace("}", "}}")
                               + "_iter{step:04d}.png",
                               range(args.snapshot_every, args.iters * n_scales + 1,
                                     args.snapshot_every)) if args.snapshot_every else None

    net = load_net(args, include_top=False, pooling=args.pooling)
    _check_memory(args, net, content, styles, scales)
    say(args, f"{net.arch} ({args.pooling} pooling) on {net.device}; {args.mode} at {args.size} "
              f"px, {args.iters} iterations per scale")
    final_hw = (content if content is not None else styles[0] if styles else None)

    def finish(image):
        if args.keep_size or final_hw is None:
            return image
        if args.output_size:
            return resize(image, args.output_size)
        return resize(image, tuple(final_hw.shape[:2]))

    bar = progress_bar(args.iters * n_scales, "style", not args.quiet, "iteration")   # stderr

    def on_iteration(info):
        bar.update(1)
        if "image" in info:
            path = snapshots(info["iteration"])
            say(args, f"snapshot {save_png(finish(info['image']), path)}")

    result = S.transfer(
        net, content, styles, style_blend_weights=blend,
        content_layers=_layers(args.content_layers), style_layers=_layers(args.style_layers),
        content_weight=args.content_weight, style_weight=args.style_weight,
        tv_weight=args.tv_weight, init=init, image_size=args.size, style_scale=args.style_scale,
        original_colors=args.original_colors, max_iter=args.iters,
        snapshot_every=args.snapshot_every, seed=args.seed, callback=on_iteration,
        mode=args.mode, style_statistic=args.statistic, palette=args.palette, scales=scales,
        dtype=numpy.float64 if args.float64 else numpy.float32,
        print_every=0 if args.quiet else args.print_every)
    bar.close()
    path = save_png(finish(result.image), out_path)
    write_csv(csv_path, S.HISTORY_COLUMNS, result.history, digits=None)
    n = len(result.history)
    per_iter = (sum(h["seconds"] for h in result.history) / n) if n else 0.0
    if result.status != "done":
        print(f"nnviz style: {result.message}; wrote {path}", file=sys.stderr, flush=True)
    say(args, f"loss {result.loss:.4e} after {n} iterations, {result.seconds:.1f} s "
              f"({per_iter:.2f} s/iteration)")
    say(args, path)
    return 1 if result.status == "interrupted" else 0


def _check_memory(args, net, content, styles, scales):
    """Refuse a run whose estimate (:func:`nnviz.methods.style.memory_estimate`, at the
    largest scale) exceeds the memory limit."""
    size = max(scales or S.default_scales(args.size))
    ref = content if content is not None else styles[0] if styles else None
    shape = None if ref is None else ref.shape[:2]
    h, w = (size, size) if shape is None else fit_size(shape, size)
    need = S.memory_estimate(net, shape, [st.shape[:2] for st in styles], size, args.style_scale,
                             _layers(args.content_layers) + _layers(args.style_layers),
                             numpy.float64 if args.float64 else numpy.float32)
    check_memory(args, need, f"style at {w}×{h} pixels")
