"""Compare nnviz with its PyTorch twin layer by layer: forward activations and the gradients
arriving at every layer's output, for one target and one ReLU rule.

The twin (``tools/torch_twin.py``) is built from the same weights (the same file, or the same
random seed); torch's autograd with the rule's custom ReLU functions gives its gradients, and
``nnviz.methods.trace`` gives nnviz's. Prints, per layer, the largest absolute difference and
the difference relative to the largest reference value.

    python tools/compare_torch.py --weights default --size 224 --target conv5_3:12 --rule guided
    python tools/compare_torch.py --weights random --size 64 --dtype float64
"""
import argparse
import os
import sys

import numpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from torch_twin import twin  # noqa: E402

import nnviz  # noqa: E402
from nnviz import backend, io, methods, targets, vgg  # noqa: E402


def compare(net, x, target, rule="backprop"):
    """Rows ``(name, act_abs, act_rel, grad_abs, grad_rel, switches_differing)`` for every
    layer reached (and ``input``, whose gradient is the input gradient). The last column
    counts, at max pooling layers, the windows whose switch (argmax) differs from torch's
    ``return_indices``: in float32 near-ties flip with the summation order, and the gradient
    then goes to a neighbouring pixel."""
    t = targets.parse(target)
    rec = methods.trace(net, x, t, rule)
    dtype = torch.float64 if x.dtype == numpy.float64 else torch.float32
    tw = twin(net, dtype)
    xt = tw.tensor(x, requires_grad=True)
    outs = tw.forward(xt, until=t.layer, rule=rule)
    for o in outs.values():
        o.retain_grad()
    seed = tw.tensor(t.seed(rec[t.layer][0]))
    (outs[t.layer] * seed).sum().backward()
    ref = {"input": (xt.detach(), xt.grad)}
    ref.update({n: (o.detach(), o.grad) for n, o in outs.items()})
    switches = {n: getattr(net.layers[n], "switches", None) for n in tw.indices}
    rows = []
    for name, (a, g) in rec.items():
        ra, rg = (r.numpy().astype(numpy.float64) for r in ref[name])
        a, g = backend.to_numpy(a).astype(numpy.float64), backend.to_numpy(g).astype(numpy.float64)
        da, dg = numpy.abs(a - ra).max(), numpy.abs(g - rg).max()
        flips = ""
        if name in tw.indices and switches[name] is not None:
            flips = int((backend.to_numpy(switches[name]) != tw.indices[name].numpy()).sum())
        rows.append((name, da, da / max(numpy.abs(ra).max(), 1e-300),
                     dg, dg / max(numpy.abs(rg).max(), 1e-300), flips))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="vgg16", choices=("vgg16", "vgg19"))
    p.add_argument("--weights", default="default", help="'default', 'random' or a weight file")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.add_argument("--image", default="sample:astronaut")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--target", default="pool5:0", help="LAYER:CHANNEL[:I,J] or CLASS")
    p.add_argument("--rule", default="backprop", choices=("backprop", "deconvnet", "guided"))
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu", "auto"))
    args = p.parse_args(argv)
    t = targets.parse(args.target)
    top = t.layer in vgg.TOP_LAYERS
    weights = None if args.weights == "random" else args.weights
    net = getattr(nnviz, args.arch)(weights=weights, include_top=top, seed=args.seed,
                                    device=args.device)
    x = net.preprocess(io.load_image(args.image, (args.size, args.size))).astype(args.dtype)
    rows = compare(net, x, t, args.rule)
    print(f"{args.arch} ({args.weights}) on {net.device}, {args.dtype}, input {tuple(x.shape)}, "
          f"target {t}, rule {args.rule}; PyTorch {torch.__version__}")
    print(f"{'layer':<10} {'activation max|d|':>18} {'relative':>10} {'gradient max|d|':>18} "
          f"{'relative':>10} {'switches differing':>18}")
    for name, da, ra, dg, rg, flips in rows:
        print(f"{name:<10} {da:>18.3e} {ra:>10.2e} {dg:>18.3e} {rg:>10.2e} {flips:>18}")
    worst = max(max(r[2], r[4]) for r in rows)
    print(f"largest relative difference: {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
