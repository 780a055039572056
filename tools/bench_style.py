"""Benchmark of style transfer (Gatys et al. 2015): seconds per L-BFGS iteration of nnviz's
hand-written objective and of a PyTorch autograd objective with the same formulas (design
contract, "Style transfer"), both driven by the same scipy L-BFGS-B from the same start.

    python tools/bench_style.py                      # 512 px, 100 iterations, VGG19, CPU
    python tools/bench_style.py --iters 10 --json bench_style.json
    python tools/bench_style.py --device gpu         # nnviz on CuPy, torch on CUDA if present

Prints a Markdown table and writes JSON. The weights are random (seeded) unless --weights is
given: speed does not depend on them.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402

import nnviz  # noqa: E402
from nnviz import backend  # noqa: E402
from nnviz.io import load_image  # noqa: E402
from nnviz.methods import style as S  # noqa: E402


class TorchObjective:
    """The contract's loss with torch autograd: the net's conv layers as torch.nn.functional
    calls holding the same weights."""

    def __init__(self, net, content, style, cl, sl, cw, sw, tw, dtype, device):
        self.dtype, self.device, self.cl, self.sl = dtype, device, cl, sl
        self.cw, self.sw, self.tw = cw, sw, tw
        names = net.layer_names
        self.deepest = max(cl + sl, key=names.index)
        self.ops = []
        for name in names[:names.index(self.deepest) + 1]:
            layer = net.layers[name]
            kind = type(layer).__name__
            params = {}
            if kind == "Conv2d":
                params = dict(w=self.t(layer.weight), b=self.t(layer.bias), p=layer.padding)
            self.ops.append((name, kind, params))
        with torch.no_grad():
            acts = self.forward(self.t(content))
            self.P = {n: self.feat(acts[n]) for n in cl}
            acts = self.forward(self.t(style))
            self.A = {n: self.gram(self.feat(acts[n])) for n in sl}

    def t(self, a):
        return torch.as_tensor(backend.to_numpy(a), dtype=self.dtype, device=self.device)

    def forward(self, x):
        out = {}
        for name, kind, p in self.ops:
            if kind == "Conv2d":
                x = TF.conv2d(x, p["w"], p["b"], padding=p["p"])
            elif kind == "ReLU":
                x = TF.relu(x)
            elif kind == "MaxPool2d":
                x = TF.max_pool2d(x, 2, 2)
            elif kind == "AvgPool2d":
                x = TF.avg_pool2d(x, 2, 2)
            out[name] = x
        return out

    @staticmethod
    def feat(a):
        return a.reshape(a.shape[1], -1)

    @staticmethod
    def gram(F):
        return F @ F.T / F.shape[1]

    def __call__(self, x):
        xt = torch.tensor(x, dtype=torch.float64, device=self.device, requires_grad=True)
        xs = xt.to(self.dtype)
        acts = self.forward(xs)
        content = sum(0.5 * ((self.feat(acts[n]) - self.P[n]) ** 2).sum() for n in self.cl)
        style = sum(((self.gram(self.feat(acts[n])) - self.A[n]) ** 2).sum()
                    / (4 * acts[n].shape[1] ** 2) for n in self.sl)
        tv = ((xt[..., 1:, :] - xt[..., :-1, :]) ** 2).sum() + \
            ((xt[..., :, 1:] - xt[..., :, :-1]) ** 2).sum()
        total = self.cw * content.double() + self.sw / len(self.sl) * style.double() + self.tw * tv
        total.backward()
        return float(total.detach()), xt.grad.cpu().numpy()


def run_lbfgs(objective, x0, iters):
    from scipy.optimize import minimize
    evals = [0]

    def fun(v):
        evals[0] += 1
        loss, grad = objective(v.reshape(x0.shape))
        return loss, numpy.asarray(grad, dtype=numpy.float64).ravel()

    objective(x0)                                   # warm-up (kernels, allocations)
    t0 = time.perf_counter()
    res = minimize(fun, x0.ravel(), jac=True, method="L-BFGS-B",
                   options=dict(maxiter=iters, maxcor=20, ftol=0.0, gtol=0.0))
    seconds = time.perf_counter() - t0
    return dict(iterations=int(res.nit), evaluations=evals[0], seconds=seconds,
                seconds_per_iteration=seconds / max(res.nit, 1), final_loss=float(res.fun),
                message=str(res.message))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--arch", default="vgg19", choices=("vgg16", "vgg19"))
    ap.add_argument("--weights", default=None, help="a weight file or 'default' (random if absent)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    ap.add_argument("--pooling", default="avg", choices=("avg", "max"))
    ap.add_argument("--float64", action="store_true", help="features in float64 on both sides")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--json", default="bench_style.json", help="output JSON (default %(default)s)")
    args = ap.parse_args(argv)

    net = getattr(nnviz, args.arch)(weights=args.weights, include_top=False,
                                    pooling=args.pooling, seed=0, device=args.device)
    content = net.preprocess(load_image("sample:astronaut", args.size))
    style = net.preprocess(load_image("sample:chelsea", args.size))
    weights = dict(content_weight=S.CONTENT_WEIGHT, style_weight=S.STYLE_WEIGHT,
                   tv_weight=S.TV_WEIGHT)
    dtype = numpy.float64 if args.float64 else numpy.float32
    x0 = backend.to_numpy(content).astype(numpy.float64)

    rows = []
    ours = S.GatysLoss(net, content, [style], dtype=dtype, **weights)

    r = run_lbfgs(ours, x0, args.iters)      # grad comes back to the host: synchronized
    rows.append(dict(impl="nnviz (hand-written)", device=net.device, **r))
    if not args.skip_torch:
        tdev = "cuda" if args.device == "gpu" and torch.cuda.is_available() else "cpu"
        ref = TorchObjective(net, content, style, S.CONTENT_LAYERS, S.STYLE_LAYERS,
                             weights["content_weight"], weights["style_weight"],
                             weights["tv_weight"],
                             torch.float64 if args.float64 else torch.float32, tdev)
        r = run_lbfgs(ref, x0, args.iters)
        rows.append(dict(impl=f"PyTorch {torch.__version__} autograd", device=tdev, **r))

    h, w = x0.shape[2:]
    print(f"\nstyle transfer, {args.arch} ({args.pooling} pooling), {h}×{w}, "
          f"{args.iters} L-BFGS iterations, {'float64' if args.float64 else 'float32'} features, "
          f"torch threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}\n")
    print("| implementation | device | iterations | evaluations | s / iteration | final loss |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['impl']} | {r['device']} | {r['iterations']} | {r['evaluations']} | "
              f"{r['seconds_per_iteration']:.3f} | {r['final_loss']:.6e} |")
    meta = dict(arch=args.arch, size=[h, w], iters=args.iters, pooling=args.pooling,
                dtype="float64" if args.float64 else "float32", weights=args.weights or "random",
                torch_threads=torch.get_num_threads(), machine=platform.machine())
    with open(args.json + ".tmp", "w") as f:
        json.dump(dict(meta=meta, results=rows), f, indent=2)
    os.replace(args.json + ".tmp", args.json)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
