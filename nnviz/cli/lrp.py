"""``nnviz lrp``: layer-wise relevance propagation (see :mod:`nnviz.methods.lrp` for the papers
and :mod:`nnviz.rules` for the rules), written as heat maps in the LRP papers' colours (red
positive, blue negative, symmetric about zero) over the image."""
from .. import io, methods, render, rules
from ..errors import InputError
from ..methods.lrp import SEEDS, totals
from .attribution import add_inputs, announce, setup
from .common import NONNEG, Outputs, add_parser, output_name, say, slug, stem

EXAMPLES = """examples:
  nnviz lrp --image sample:astronaut --target conv5_3:12
  nnviz lrp --rule epsilon-plus-flat --target conv5_3:12 --target conv4_3:100 --grid
  nnviz lrp --rule epsilon-gamma-box --rule epsilon-plus-flat --rule epsilon-alpha2-beta1 --grid
  nnviz lrp --rule-map conv4_*=epsilon:0.25,conv5_*=epsilon:0.25 --target conv5_3:12 --table
  nnviz lrp --rule epsilon:0 --weights random --size 64 --target conv5_3:3
  nnviz lrp --weights vgg16.h5 --target 281 --rule-map 0=zbox,1-6=gamma:0.25,7-12=epsilon:0.25,13-15=epsilon:0
"""

RULE_HELP = ("an LRP composite by zennit's name: " + ", ".join(rules.COMPOSITES) + " (hyphens "
             "allowed; default epsilon_gamma_box), or one rule for every convolution and linear "
             "layer: epsilon[:EPS] (epsilon:0 is LRP-0), gamma[:GAMMA], zplus, alphabeta[:A:B], "
             "flat, wsquare; repeatable (a map per rule, side by side with --grid)")
MAP_HELP = ("rules for some layers over --rule: LAYER=RULE,..., LAYER a name (conv1_1), a "
            "pattern (conv5_*) or an index among the convolution and linear layers (0 = conv1_1; "
            "a range 1-6); RULE as for --rule or zbox (the box of pixel values 0..255), e.g. "
            "Montavon et al. 2019's VGG16 recipe: conv4_*=epsilon:0.25,conv5_*=epsilon:0.25")


def register(sub):
    p = add_parser(sub, "lrp", "Bach et al. 2015, Montavon et al. 2017, 2019: layer-wise relevance "
                   "propagation, heat maps in red (positive) and blue (negative)", EXAMPLES)
    add_inputs(p)
    p.set_defaults(func=run_lrp, command_name="lrp")
    g = p.add_argument_group("relevance")
    g.add_argument("--rule", action="append", default=None, metavar="RULE", help=RULE_HELP)
    g.add_argument("--rule-map", default=None, metavar="MAP", help=MAP_HELP)
    g.add_argument("--epsilon", type=NONNEG, default=None,
                   help="ε of the composite's epsilon rule on linear layers (default 1e-6)")
    g.add_argument("--gamma", type=NONNEG, default=None,
                   help="γ of epsilon_gamma_box (default 0.25)")
    g.add_argument("--stabilizer", type=NONNEG, default=1e-6,
                   help="the other rules' stabilizer ε (default 1e-6)")
    g.add_argument("--seed-with", choices=SEEDS, default="score",
                   help="relevance at the target: its score (default; the map sums to about it) "
                        "or one")
    g.add_argument("--table", action="store_true",
                   help="print the rule and the summed relevance at every layer")


def build_rule(args, spec):
    """The composite that the rule ``spec`` (one --rule), ``--rule-map`` and the parameters
    describe."""
    names = rules.parse_map(args.rule_map) if args.rule_map else None
    options = {"stabilizer": args.stabilizer, "names": names}
    name = rules.composite_name(spec)
    if name is None:
        for option in ("epsilon", "gamma"):
            if getattr(args, option) is not None:
                raise InputError(f"--{option} sets a parameter of a composite; give it in "
                                 f"--rule itself, e.g. --rule {option}:0.25")
        rule = rules.get(spec)
        if not isinstance(rule, rules.LRPRule) or "convolution" not in rule.families or (
                isinstance(rule, rules.ZBox)):
            raise InputError(f"--rule {spec}: expected an LRP composite ("
                             f"{', '.join(rules.COMPOSITES)}) or a rule for every convolution and "
                             f"linear layer (epsilon, gamma, zplus, alphabeta, flat, wsquare)")
        return rules.uniform(rule, names=names, stabilizer=args.stabilizer)
    if args.epsilon is not None:
        options["epsilon"] = args.epsilon
    if args.gamma is not None:
        if name != "epsilon_gamma_box":
            raise InputError(f"--gamma is a parameter of epsilon_gamma_box, not of {name}")
        options["gamma"] = args.gamma
    return rules.composite(name, **options)


def _table(args, t, spec, record):
    say(args, f"{t}, {spec}: the relevance arriving at each layer, summed (image by image), "
              f"and the rule that layer applies")
    for name, r, sums in totals(record):
        say(args, f"  {name:10s} {' '.join(f'{v:12.5g}' for v in sums)}   "
                  f"{'-' if r is None else repr(r)}")


def run_lrp(args):
    """One PNG per image, target and rule (or one grid: a row per image, a column per target
    and rule): the relevance over the image."""
    specs_rule = args.rule or ["epsilon_gamma_box"]
    built = [build_rule(args, spec) for spec in specs_rule]       # bad rules fail before any work
    net, images, x, paths, specs = setup(args)
    outputs = Outputs(args, paths)
    suffix = "-map" if args.rule_map else ""
    labels = [slug(spec + suffix) for spec in specs_rule]
    if args.grid:
        pngs = {outputs.path(output_name(args, "lrp-grid", *labels, named=("rule",))
                             + ".png"): None}
    else:
        pngs = {outputs.path(output_name(args, "lrp", stem(p), t, label,
                                         named=("image", "target", "rule"))
                             + ".png"): (i, k, r)
                for i, p in enumerate(paths) for k, t in enumerate(specs)
                for r, label in enumerate(labels)}
    maps = {}
    with net.reusing_forward():           # one forward of the images for every target and rule
        for k, t in enumerate(specs):
            for r, (spec, rule) in enumerate(zip(specs_rule, built)):
                record = {} if args.table else None
                maps[k, r] = methods.lrp(net, x, t, rule=rule, seed=args.seed_with, record=record)
                if record is not None:
                    _table(args, t, spec, record)
    announce(args)
    if args.grid:
        tiles, names = [], []
        for i, path in enumerate(paths):
            tiles.append(images[i])
            names.append(stem(path))
            for (k, r), m in maps.items():
                tiles.append(render.relevance(m[i], images[i]))
                names.append(" ".join(([str(specs[k])] if len(specs) > 1 else [])
                                      + ([specs_rule[r]] if len(specs_rule) > 1 else []))
                             or str(specs[k]))
        out, = pngs
        say(args, io.save_png(render.grid(tiles, names, ncols=len(maps) + 1), out))
    else:
        for out, (i, k, r) in pngs.items():
            say(args, io.save_png(render.relevance(maps[k, r][i], images[i]), out))
    return 0
