"""``nnviz weights``: import weight files from Keras or PyTorch into nnviz's HDF5 format, and
list the imported ones. Importing never runs code from a file."""
import os
import sys

from .. import weights
from ..vgg import PREPROCESSING
from .common import ARCHS, add_parser, check_folder, say

EXAMPLES = """examples:
  nnviz weights import vgg16_weights_tf_dim_ordering_tf_kernels.h5      # Keras applications
  nnviz weights import vgg19-dcbb9e9d.pth --arch vgg19                   # torchvision
  nnviz weights import my_model.weights.h5 --out ~/vgg16-mine.h5 --license "CC BY 4.0"
  nnviz weights list
  nnviz info --arch vgg19 --weights ~/.cache/nnviz/vgg19-torch.h5

Default output: <weights folder>/<arch>-<kind>.h5 (kind: keras, torch, hed or nnviz), where the
weights folder is $NNVIZ_WEIGHTS_DIR, the weights/ folder of a source checkout, or
~/.cache/nnviz. 'weights list' prints the folder.
"""

IMPORT_EXAMPLES = """examples:
  nnviz weights import vgg16_weights_tf_dim_ordering_tf_kernels.h5
  nnviz weights import vgg16-397923af.pth
  nnviz weights import model.weights.h5 --arch vgg19 --out vgg19-mine.h5 --force
  nnviz weights import vgg16-00b39a1b.pth --preprocess caffe   # a PyTorch port of Caffe VGG

Reads Keras legacy .h5 (model.save / Keras 2 save_weights), Keras 3 .weights.h5, PyTorch or
torchvision state dicts (.pth, .pt; with or without the fully connected layers) and nnviz's
own files. The architecture is detected from the number of convolutions (13: vgg16, 16: vgg19).
"""


LIST_EXAMPLES = """examples:
  nnviz weights list
  nnviz weights list --dir ~/my-weights
"""


def register(sub):
    p = add_parser(sub, "weights", "import and list weight files", EXAMPLES, description=__doc__)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    wsub = p.add_subparsers(dest="weights_command", metavar="ACTION")

    imp = add_parser(wsub, "import", "convert a Keras or PyTorch weight file", IMPORT_EXAMPLES,
                     description="Convert a Keras or PyTorch VGG16/VGG19 weight file to "
                                 "nnviz's HDF5 format (written atomically).")
    imp.add_argument("src", metavar="SRC", help="the weight file to convert")
    imp.add_argument("--arch", choices=ARCHS, default=None,
                     help="expected network (default: detected from the file)")
    imp.add_argument("--out", default=None,
                     help="output file or folder (default: the weights folder, "
                          "named <arch>-<kind>.h5)")
    imp.add_argument("--force", action="store_true", help="overwrite an existing output")
    imp.add_argument("--source", default=None,
                     help="where the weights come from (recorded in the file; default: the "
                          "file's kind and name)")
    imp.add_argument("--license", default=None, help="the weights' license (recorded in the file)")
    imp.add_argument("--preprocess", choices=PREPROCESSING, default=None,
                     help="the input convention of the weights (default: 'caffe' for Keras "
                          "files, 'torch' for PyTorch files; a PyTorch port of the original "
                          "Caffe weights takes 'caffe')")
    imp.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    imp.set_defaults(func=run_import)

    lst = add_parser(wsub, "list", "list the imported weight files", LIST_EXAMPLES,
                     description="List the "
                     "weight files in the weights folder: arch, source, preprocessing, license, "
                     "path, and whether they have the fully connected layers (the top).")
    lst.add_argument("--dir", default=None, help="folder to list (default: the weights folder)")
    lst.set_defaults(func=run_list)


def run_import(args):
    if args.out:
        out = os.path.abspath(args.out)
        check_folder(out if os.path.isdir(out) else os.path.dirname(out), "--out")
    meta = weights.convert(args.src, args.out, arch=args.arch, source=args.source,
                           license=args.license, preprocess=args.preprocess, force=args.force)
    for note in meta.get("notes", []):
        print(f"nnviz weights: note: {note}", file=sys.stderr)
    top = "with" if meta["include_top"] else "without"
    say(args, f"{args.src}: {meta['arch']} {top} fully connected layers, preprocessing "
              f"{meta['preprocess']!r}")
    say(args, f"wrote {meta['path']}")
    return 0


def run_list(args):
    folder = args.dir or weights.weights_dir()
    found = weights.installed(folder)
    print(f"weights folder: {folder}")
    if not found:
        print("  no imported weights (nnviz weights import FILE)")
    for info in found:
        top = "yes" if info["include_top"] else "no"
        print(f"{info['arch']}  {info['path']}")
        print(f"  source: {info['source']}")
        print(f"  preprocessing: {info['preprocess']}   license: {info['license']}   top: {top}")
    default = os.path.join(folder, weights.DEFAULT_NAME)
    if not os.path.exists(default):
        try:
            state = f"from {weights.hed_file()}, converted on first use"
        except RuntimeError as e:
            state = str(e)
        print(f"default (vgg16, --weights default): {state}")
    return 0
