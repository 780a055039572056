"""Compare nnviz with PyTorch layer by layer: a thin wrapper over ``nnviz compare``.

Builds the net of ``--arch``/``--weights``/``--seed`` (``default``, ``random`` or a file), writes
its weights as a torchvision-layout state dict into a temporary folder, and runs
``nnviz compare`` on that file with the rule's PyTorch hook preset (``torch``,
``torch-guided``, ``torch-deconvnet``), the target, the image and the dtype; the verdict, the
per-layer table and the exit status are ``nnviz compare``'s (0: every layer equal or tie).
Other options (``--json PATH``, ``--rtol``, ``--atol``) are passed to ``nnviz compare`` as
they are.

    python tools/compare_torch.py --weights default --size 224 --target conv5_3:12 --rule guided
    python tools/compare_torch.py --weights random --size 64 --dtype float64 --json report.json
"""
import argparse
import os
import sys
import tempfile

import torch

import nnviz
from nnviz import cli, targets, vgg
from nnviz.methods import compare

PRESETS = {"backprop": "torch", "guided": "torch-guided", "deconvnet": "torch-deconvnet"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="vgg16", choices=("vgg16", "vgg19"))
    p.add_argument("--weights", default="default", help="'default', 'random' or a weight file")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.add_argument("--image", default="sample:astronaut")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--target", default="pool5:0", help="LAYER:CHANNEL[:I,J] or CLASS")
    p.add_argument("--rule", default="backprop", choices=tuple(PRESETS))
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu", "auto"))
    args, extra = p.parse_known_args(argv)
    top = targets.parse(args.target).layer in vgg.TOP_LAYERS
    weights = None if args.weights == "random" else args.weights
    net = getattr(nnviz, args.arch)(weights=weights, include_top=top, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{args.arch}.pth")
        torch.save(compare.torch_vgg_from_net(net).state_dict(), path)
        return cli.main(["compare", path, "--preset", PRESETS[args.rule], "--rule", args.rule,
                         "--target", args.target, "--image", args.image, "--size", str(args.size),
                         "--dtype", args.dtype, "--preprocess", net.preprocessing,
                         "--device", args.device] + extra)


if __name__ == "__main__":
    sys.exit(main())
