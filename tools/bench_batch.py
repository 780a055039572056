"""Images per second of ``nnviz batch`` with 1, 2, ... worker processes on this machine.

    python tools/bench_batch.py                      # 24 images of 48 px, saliency, 1 and 2 workers
    python tools/bench_batch.py --images 64 --size 64 --workers 1,2,4

For each worker count it starts a LocalCluster (processes, one thread each), runs a warm-up
batch (one image per worker: starts the processes' imports and builds their nets), then times
the real batch; it also times the whole command (cluster start included) and, as a baseline,
``nnviz.cli.main`` run image by image in this process (a net built per image).
"""
import argparse
import os
import sys
import tempfile
import time

import numpy
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from nnviz import cli, jobs  # noqa: E402
from nnviz.cli import batch  # noqa: E402


def make_images(folder, n, size, seed=0):
    os.makedirs(folder, exist_ok=True)
    rng = numpy.random.default_rng(seed)
    for i in range(n):
        img = rng.integers(0, 256, (size, size, 3), dtype=numpy.uint8)
        Image.fromarray(img).save(os.path.join(folder, f"img{i:04d}.png"))
    return folder


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--method", default="saliency")
    args = ap.parse_args()
    import distributed
    options = ["--weights", "random", "--size", str(args.size)]
    workers = [int(w) for w in args.workers.split(",")]
    print(f"{args.method} {' '.join(options)}, {args.images} images, "
          f"{jobs.cpu_count()} CPU cores", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        images = make_images(os.path.join(tmp, "images"), args.images, args.size)

        start = time.perf_counter()
        for i, name in enumerate(sorted(os.listdir(images))):
            cli.main([args.method, "--image", os.path.join(images, name), *options,
                      "--out", os.path.join(tmp, "seq", str(i)), "--quiet"])
        seq = time.perf_counter() - start
        print(f"in-process loop, a net per image: {args.images / seq:7.2f} images/s "
              f"({seq:.1f} s)", flush=True)

        for n in workers:
            start = time.perf_counter()
            batch.run(args.method, images, os.path.join(tmp, f"cold{n}"), options=options,
                      workers=n, quiet=True)
            cold = time.perf_counter() - start
            with distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                          dashboard_address=":0") as cluster:
                warm = make_images(os.path.join(tmp, f"warm{n}"), n, args.size, seed=1)
                batch.run(args.method, warm, os.path.join(tmp, f"warmout{n}"), options=options,
                          scheduler=cluster.scheduler_address, quiet=True)
                start = time.perf_counter()
                result = batch.run(args.method, images, os.path.join(tmp, f"hot{n}"),
                                   options=options, scheduler=cluster.scheduler_address,
                                   quiet=True)
                hot = time.perf_counter() - start
            assert result["done"] == args.images, result
            print(f"{n} worker{'s' if n > 1 else ' '}: {args.images / hot:7.2f} images/s "
                  f"({hot:.1f} s; {args.images / cold:.2f} images/s, {cold:.1f} s with the "
                  f"cluster start)", flush=True)


if __name__ == "__main__":
    main()
