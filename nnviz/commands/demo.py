"""``nnviz demo``: a static HTML gallery of every method on the sample photographs, each
picture captioned with the ``nnviz`` command that makes it (see :mod:`nnviz.demo`)."""
import argparse

from .. import backend

EXAMPLES = """examples:
  nnviz demo --quick                 # about a minute on a laptop: small sizes, few iterations
  nnviz demo --out gallery --force   # the full demo (under 15 minutes on 2 CPU cores)
then open nnviz-demo/index.html in a browser.
"""


def register(sub):
    p = sub.add_parser("demo", help="an HTML gallery of every method on the sample images",
                       description=__doc__, epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="small images and few iterations (under 3 minutes on 2 CPU cores)")
    p.add_argument("--out", default="nnviz-demo", help="output folder (default nnviz-demo)")
    p.add_argument("--device", default=None, choices=backend.DEVICES,
                   help="cpu, gpu or auto (default: $NNVIZ_DEVICE or auto)")
    p.add_argument("--seed", type=int, default=0, help="seed for every random choice (default 0)")
    p.add_argument("--arch", default="vgg16", choices=("vgg16", "vgg19"),
                   help="network (default vgg16)")
    p.add_argument("--weights", default="default",
                   help="'default' (the bundled VGG16 backbone), 'random', or a weight file")
    p.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    p.add_argument("--force", action="store_true", help="overwrite an existing gallery")
    p.set_defaults(func=run)


def run(args):
    from ..demo import run as demo
    return demo(out=args.out, quick=args.quick, device=args.device, seed=args.seed,
                weights=args.weights, arch=args.arch, quiet=args.quiet, force=args.force)
