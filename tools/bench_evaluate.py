"""Benchmarks of the sanity checks and faithfulness metrics (issue 15), on the default weights.

    python tools/bench_evaluate.py cascade                  # seconds of a cascading run, 5 methods, 224 px
    python tools/bench_evaluate.py faithfulness --out DIR   # deletion/insertion AUCs, bundled photos

``cascade``: ``nnviz.methods.evaluate.randomization_test`` on sample:astronaut at ``--size``
(224), the strongest relu5_3 channel, cascading from conv5_3 down to conv1_1 (13 layers),
methods gradient, guided, gradcam, guided-gradcam, gradxinput; prints the seconds (the net
already loaded) and the gradient's and guided backprop's spearman_abs after six layers.

``faithfulness``: ``nnviz batch faithfulness`` over the bundled sample photographs (astronaut,
chelsea, coffee) into ``--out``, then ``nnviz evaluate-aggregate``; prints the deletion and
insertion AUCs per method and image, and their means with 95% bootstrap intervals, as a
Markdown table.
"""
import argparse
import csv
import os
import sys
import time

import numpy

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import nnviz  # noqa: E402
from nnviz import io  # noqa: E402
from nnviz.cli import batch, main  # noqa: E402
from nnviz.methods import evaluate as E  # noqa: E402

FIVE = ["gradient", "guided", "gradcam", "guided-gradcam", "gradxinput"]


def cascade(args):
    net = nnviz.vgg16(weights="default", device="cpu")
    x = net.preprocess(io.load_image("sample:astronaut", (args.size, args.size)))
    channel = int(numpy.argmax(net.forward(x, until="relu5_3").sum(axis=(0, 2, 3))))
    start = time.perf_counter()
    res = E.randomization_test(net, x, ("relu5_3", channel), FIVE, progress=True)
    seconds = time.perf_counter() - start
    maps = len(FIVE) * (len(res["layers"]) + 1)
    print(f"cascading randomization, {len(FIVE)} methods ({', '.join(FIVE)}), "
          f"{len(res['layers'])} layers, {args.size} px, target relu5_3:{channel}, CPU: "
          f"{seconds:.1f} s ({maps} maps, {seconds / maps:.2f} s per map and its similarities)")
    six = {r["method"]: r for r in res["rows"] if r["layer"] == res["layers"][5]}
    for m in FIVE:
        print(f"  {m:15s} spearman_abs after {res['layers'][5]}: {six[m]['spearman_abs']:.3f}")


def faithfulness(args):
    images = [f"sample:{n}" for n in io.PHOTOGRAPHS]
    options = ["--size", str(args.size), "--steps", str(args.steps), "--random", str(args.random)]
    if args.methods:
        options += ["--methods", args.methods]
    start = time.perf_counter()
    result = batch.run("faithfulness", images, args.out, options=options, workers=args.workers)
    print(f"nnviz batch faithfulness {' '.join(options)}: {result['done']} done, "
          f"{result['failed']} failed, {time.perf_counter() - start:.0f} s", flush=True)
    summary = os.path.join(args.out, "summary")
    main(["evaluate-aggregate", args.out, "--out", summary, "--force", "-q"])
    per = {}
    with open(os.path.join(summary, "faithfulness-auc-all.csv")) as f:
        for r in csv.DictReader(f):
            per[(r["method"], r["mode"], r["task"])] = float(r["auc"])
    with open(os.path.join(summary, "faithfulness-summary.csv")) as f:
        rows = list(csv.DictReader(f))
    tasks = sorted({k[2] for k in per})
    print("\n| method | " + " | ".join(f"deletion {t}" for t in tasks) + " | deletion mean [95% CI] | "
          + " | ".join(f"insertion {t}" for t in tasks) + " | insertion mean [95% CI] |")
    print("|---" * (2 * len(tasks) + 3) + "|")
    stat = {(r["method"], r["mode"]): r for r in rows}
    for m in dict.fromkeys(r["method"] for r in rows):
        cells = [m]
        for mode in E.CURVES:
            cells += [f"{per[(m, mode, t)]:.3f}" for t in tasks]
            s = stat[(m, mode)]
            cells.append(f"{float(s['mean']):.3f} [{float(s['low']):.3f}, {float(s['high']):.3f}]")
        print("| " + " | ".join(cells) + " |")
    print(f"\nfigures: {os.path.join(summary, 'faithfulness-summary.png')} and, per image, "
          f"{os.path.join(args.out, tasks[0], 'faithfulness.png')}")


def run():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("cascade")
    c.add_argument("--size", type=int, default=224)
    f = sub.add_parser("faithfulness")
    f.add_argument("--out", required=True)
    f.add_argument("--size", type=int, default=224)
    f.add_argument("--steps", type=int, default=50)
    f.add_argument("--random", type=int, default=5)
    f.add_argument("--methods", default=None)
    f.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    {"cascade": cascade, "faithfulness": faithfulness}[args.what](args)


if __name__ == "__main__":
    run()
