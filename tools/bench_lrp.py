#!/usr/bin/env python3
"""Benchmark LRP: nnviz against zennit 0.5.1 in the same process, same threads (issue 14).

VGG16 at 224 px (random weights with the fully connected layers and a class target by
default; ``--weights default`` takes the bundled conv backbone and a channel of conv5_3), the
composite ``epsilon_gamma_box`` (``--rule``), float32 (``--dtype float64`` to compare exactly),
batch ``--batch``. nnviz (``nnviz.methods.lrp``) and zennit (its composite on a
``torch.nn.Sequential`` with the same weights, ``zennit.attribution.Gradient`` with
``attr_output = one-hot × output``) alternate, ``--reps`` times each after a warm-up; the
table gives the medians and the ratio nnviz / zennit, and the largest difference of the
two relevance maps relative to zennit's largest entry.

    env -u OPENBLAS_CORETYPE python tools/bench_lrp.py
    env -u OPENBLAS_CORETYPE python tools/bench_lrp.py --threads 2 --reps 5 --json bench-lrp.json
    python tools/bench_lrp.py --rule epsilon_plus --weights default --batch 4

zennit imports torchvision (for its ResNet canonizers only); a stub stands in for it here, as
in the tests, since torchvision is not installed beside the CPU torch.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import types
from collections import OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rule", default="epsilon_gamma_box", help="LRP composite (default epsilon_gamma_box)")
    p.add_argument("--weights", default="random", choices=("random", "default"),
                   help="random weights with the fc layers (class target) or the default backbone")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads on both sides")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--json", default=None, help="also write the results here")
    return p.parse_args()


def stub_torchvision():
    tv, models, resnet = (types.ModuleType(n) for n in
                          ("torchvision", "torchvision.models", "torchvision.models.resnet"))
    resnet.Bottleneck = type("Bottleneck", (), {})
    resnet.BasicBlock = type("BasicBlock", (), {})
    tv.models, models.resnet = models, resnet
    sys.modules.update({"torchvision": tv, "torchvision.models": models,
                        "torchvision.models.resnet": resnet})


def torch_model(net, until, dtype):
    """The net's layers up to ``until`` as a ``torch.nn.Sequential`` (same names, weights)."""
    import numpy
    import torch
    mods = {}
    for name, layer in net.layers.items():
        kind = type(layer).__name__
        if kind in ("Conv2d", "Linear"):
            m = (torch.nn.Conv2d(layer.in_channels, layer.out_channels, (layer.kh, layer.kw),
                                 layer.stride, layer.padding, layer.dilation)
                 if kind == "Conv2d" else torch.nn.Linear(layer.in_features, layer.out_features))
            m = m.to(dtype)
            m.weight.data = torch.from_numpy(numpy.asarray(layer.weight)).to(dtype)
            m.bias.data = torch.from_numpy(numpy.asarray(layer.bias)).to(dtype)
        elif kind == "ReLU":
            m = torch.nn.ReLU()
        elif kind == "MaxPool2d":
            m = torch.nn.MaxPool2d((layer.kh, layer.kw), layer.stride, layer.padding)
        elif kind == "Flatten":
            m = torch.nn.Flatten()
        else:
            raise TypeError(kind)
        mods[name] = m
        if name == until:
            break
    return torch.nn.Sequential(OrderedDict(mods)).eval()


def main():
    args = parse()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy
    import torch
    torch.set_num_threads(args.threads)
    stub_torchvision()
    import zennit
    import zennit.composites as ZC
    from zennit.attribution import Gradient

    import nnviz
    from nnviz import methods, targets

    ndtype = numpy.dtype(args.dtype)
    tdtype = {numpy.float32: torch.float32, numpy.float64: torch.float64}[ndtype.type]
    top = args.weights == "random"
    net = nnviz.vgg16(weights=None if top else "default", seed=0, include_top=top, device="cpu")
    if args.size != 224 and top:
        raise SystemExit("class targets need --size 224")
    target = targets.parse(1 if top else ("conv5_3", 12))
    img = numpy.random.default_rng(0).uniform(0, 255, (args.batch, args.size, args.size, 3))
    x = net.preprocess(img).astype(ndtype)
    model = torch_model(net, target.layer, tdtype)
    lo, hi = (torch.from_numpy(v).to(tdtype) for v in net.pixel_bounds(ndtype))
    name = args.rule.replace("-", "_")
    composite = (ZC.EpsilonGammaBox(lo, hi) if name == "epsilon_gamma_box" else ZC.COMPOSITES[name]())

    def mask(out):
        m = torch.zeros_like(out)
        m[:, target.channel] = 1                # a class, or a channel summed over space
        return m * out

    def run_nnviz():
        return methods.lrp(net, x, target, rule=name, seed="score")

    xt = torch.from_numpy(x)

    def run_zennit():
        with Gradient(model=model, composite=composite) as attributor:
            _, r = attributor(xt.clone().requires_grad_(True), mask)
        return r.detach().numpy()

    a, b = run_nnviz(), run_zennit()                           # warm-up, and agreement
    err = float(numpy.abs(a - b).max() / numpy.abs(b).max())
    times = {"nnviz": [], "zennit": []}
    for _ in range(args.reps):
        for side, f in (("nnviz", run_nnviz), ("zennit", run_zennit)):
            t = time.perf_counter()
            f()
            times[side].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    row = {"rule": name, "weights": args.weights, "target": str(target), "size": args.size,
           "batch": args.batch, "dtype": args.dtype, "threads": args.threads,
           "nnviz_s": med["nnviz"], "zennit_s": med["zennit"],
           "ratio": med["nnviz"] / med["zennit"], "max_rel_diff": err,
           "times": times}
    print("| rule | weights | target | size | batch | dtype | threads | nnviz s | zennit s | ratio | max diff / max |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {name} | {args.weights} | {target} | {args.size} | {args.batch} | {args.dtype} | "
          f"{args.threads} | {med['nnviz']:.3f} | {med['zennit']:.3f} | {row['ratio']:.2f} | {err:.1e} |")
    if args.json:
        info = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                "python": platform.python_version(), "numpy": numpy.__version__,
                "torch": torch.__version__, "zennit": getattr(zennit, "__version__", "0.5.1"),
                "date": datetime.date.today().isoformat(), "rows": [row]}
        with open(args.json, "w") as f:
            json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
