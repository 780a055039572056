"""``nnviz info``: the layers of a net, their output shapes and parameter counts."""
import re

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


def kind(layer):
    """A layer's repr, shorter: ``(3, 3)`` as ``3``, PyTorch's defaults (dilation 1) left out."""
    text = re.sub(r"\((\d+), \1\)", r"\1", str(layer))
    return re.sub(r", dilation=1\b", "", text)


def run(args):
    net = load_net(args, include_top=not args.no_top)
    rows = net.summary(args.size)
    print(f"{net.arch} on {net.device}, input (1, 3, {args.size}, {args.size}), "
          f"preprocessing {net.preprocessing!r}")
    for key, value in sorted(net.weights_info.items()):
        print(f"  {key}: {value}")
    # every column as wide as its longest entry: nothing is cut
    shown = ["not run (needs 224×224)" if shape is None else str(shape) for _, _, shape, _ in rows]
    wn = max([len("layer")] + [len(name) for name, *_ in rows])
    wk = max([len("kind")] + [len(kind(layer)) for _, layer, _, _ in rows])
    wo = max([len("output")] + [len(s) for s in shown])
    total = sum(count for *_, count in rows)
    wp = max(len("params"), len(f"{total:,}"))
    print(f"{'layer':<{wn}}  {'kind':<{wk}}  {'output':<{wo}}  {'params':>{wp}}")
    for (name, layer, _, count), out in zip(rows, shown):
        print(f"{name:<{wn}}  {kind(layer):<{wk}}  {out:<{wo}}  {count:>{wp},}")
    print(f"{'total':<{wn}}  {'':<{wk}}  {'':<{wo}}  {total:>{wp},}")
    return 0
