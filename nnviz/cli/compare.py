"""The ``compare`` command: run the same image through nnviz and through the user's model (a
PyTorch state dict in torchvision's layout, a Keras ``.keras``/``.h5`` model, or an ONNX file
through ONNX Runtime) with the same weights, and print for every layer the forward and the
backward difference with a verdict (``equal``, ``tie``, ``rule mismatch``, ``differs``); exit
status 0 when every layer is ``equal`` or ``tie``, else 1 (2 for bad input). See
:mod:`nnviz.methods.compare`."""
import json
import sys

import numpy

from .. import io
from ..errors import BadOption
from ..methods import compare as C
from ..vgg import PREPROCESSING
from .common import NONNEG, POSITIVE, SIZE, Outputs, add_common, add_parser, say

EXAMPLES = """examples:
  nnviz compare vgg16.pth --target 281 --preset torch-guided
  nnviz compare vgg16.pth --target 281 --preset torch-guided-features --rule guided-features
  nnviz compare vgg16.keras --size 64 --target conv5_3:12 --dtype float32
  nnviz compare vgg16.onnx --target 281
  nnviz compare vgg16.pth --golden trace.npz --preset torch-guided --json report.json
  nnviz compare --presets
"""


def register(sub):
    p = add_parser(sub, "compare", "check a framework's forward and backward against nnviz, layer by layer, "
                   "with a verdict (exit 0: equal or tie, 1: a mismatch or a difference)", EXAMPLES)
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="the model to check: a PyTorch state dict in torchvision's VGG layout (.pth, .pt), a "
                        "Keras model (.keras, or a full-model .h5), or an ONNX file (.onnx; forward only, "
                        "float32)")
    p.add_argument("--preset", default=None,
                   help="the framework's convention (default: torch, keras or onnx by the file; "
                        "--presets lists them)")
    p.add_argument("--rule", default=None,
                   help="nnviz's rule to compare with (default: the preset's): backprop, deconvnet, guided, "
                        "guided-features, deconvnet-features, or an LRP composite")
    p.add_argument("--target", default=None, metavar="SPEC",
                   help="CLASS, LAYER:CHANNEL or LAYER:CHANNEL:I,J (default: the top class at 224 px with the "
                        "fully connected layers, else the strongest channel of pool5)")
    p.add_argument("--image", action="append", default=None, metavar="PATH",
                   help="an image file or sample:NAME; repeatable (default sample:astronaut)")
    p.add_argument("--size", type=SIZE, default=224,
                   help="every image is resized to SIZE×SIZE, squashed to a square as in the attribution "
                        "commands (default 224)")
    p.add_argument("--dtype", choices=C.DTYPES, default=None,
                   help="float64 (default) or float32 on both sides (ONNX: float32 only)")
    p.add_argument("--rtol", type=POSITIVE, default=None,
                   help="relative bound, against each layer's largest value (default 1e-10 in float64, "
                        "1e-4 in float32)")
    p.add_argument("--atol", type=NONNEG, default=0.0, help="absolute bound added to it (default 0)")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="nnviz's weights for the reference (any file 'nnviz weights import' reads; default: "
                        "the model's own weights)")
    p.add_argument("--preprocess", choices=PREPROCESSING, default=None,
                   help="the images' input convention (default: torch for .pth and .onnx, caffe for Keras)")
    p.add_argument("--golden", default=None, metavar="FILE",
                   help="compare with a trace written by 'nnviz trace' (.h5, .npz or a folder of .npy) "
                        "instead of computing the reference; its input, target and rule are used")
    p.add_argument("--json", default=None, metavar="PATH",
                   help="also write the report as JSON to PATH ('-': print the JSON instead of the table)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    p.add_argument("--presets", action="store_true", help="list the framework presets and exit")
    add_common(p, weights=False, out=False)
    p.set_defaults(func=run_compare, command_name="compare")


def presets_text():
    lines = [f"  {name:<34} rule {str(p.rule or '-'):<26} {p.help}" for name, p in C.PRESETS.items()]
    return "presets (--preset):\n" + "\n".join(lines)


def run_compare(args):
    if args.presets:
        print(presets_text())
        return 0
    if not args.model:
        raise BadOption("compare needs MODEL: a .pth/.pt state dict, a .keras/.h5 Keras model or an .onnx file")
    if args.golden is not None and args.image:
        raise BadOption("--golden brings its own input: leave out --image")
    inputs = [p for p in (args.model, args.golden, args.weights) if p]
    json_path = None
    if args.json not in (None, "-"):
        json_path = Outputs(args, inputs).check(args.json)
    subject = C.load(args.model, preset=args.preset, weights=args.weights, preprocess=args.preprocess,
                     device=args.device)
    x = None
    if args.golden is None:
        paths = args.image or ["sample:astronaut"]
        images = numpy.stack([io.load_image(p, (args.size, args.size)) for p in paths])
        x = subject.net.preprocess(images)
    report = C.compare(subject, x, args.target, rule=args.rule, golden=args.golden, dtype=args.dtype,
                       rtol=args.rtol, atol=args.atol)
    text = report.to_json()
    if json_path is not None:
        with io.atomic_path(json_path, force=True, inputs=inputs) as tmp:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
    if args.json == "-":
        sys.stdout.write(json.dumps(report.to_dict(), indent=1) + "\n")
    else:
        say(args, report.table())
        if json_path is not None:
            say(args, json_path)
    return report.exit_status
