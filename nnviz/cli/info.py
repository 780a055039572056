"""``nnviz info``: the layers of a net, their output shapes and parameter counts."""
from .common import SIZE, add_common, add_parser, load_net

EXAMPLES = """examples:
  nnviz info                       # VGG16 with the default weights
  nnviz info --arch vgg19 --weights random --size 512
"""


def register(sub):
    p = add_parser(sub, "info", "print the layers, shapes and parameter counts of a net", EXAMPLES,
                   description=__doc__)
    add_common(p, out=False)
    p.add_argument("--size", type=SIZE, default=224, help="input size (default 224)")
    p.add_argument("--no-top", action="store_true", help="without the fully connected layers")
    p.set_defaults(func=run)


def run(args):
    net = load_net(args, include_top=not args.no_top)
    rows = net.summary(args.size)
    print(f"{net.arch} on {net.device}, input (1, 3, {args.size}, {args.size}), "
          f"preprocessing {net.preprocessing!r}")
    for key, value in sorted(net.weights_info.items()):
        print(f"  {key}: {value}")
    print(f"{'layer':<10} {'kind':<40} {'output':<22} {'params':>12}")
    total = 0
    for name, layer, shape, count in rows:
        total += count
        shown = "not run (needs 224×224)" if shape is None else str(shape)
        print(f"{name:<10} {str(layer):<40.40} {shown:<22} {count:>12,}")
    print(f"{'total':<10} {'':<40} {'':<22} {total:>12,}")
    return 0
