"""``nnviz batch``: run one method over a folder of images (× sweeps of its options) in
parallel on Dask, one task per image, with a manifest, re-runs that skip what is done, and
retries when a worker dies. See :mod:`nnviz.batch`."""
import argparse
import sys

EXAMPLES = """examples:
  nnviz batch saliency --images photos/ --out maps -- --weights random --size 64
  nnviz batch gradcam --images 'photos/*.jpg' --out cams --workers 4 -- --layer relu5_3
  nnviz batch style --images content/ --out styled --sweep style_weight=1e2,1e3,1e4 \\
      -- style.jpg --size 256
  nnviz batch saliency --images photos/ --out maps --scheduler tcp://10.0.0.5:8786

Options after '--' go to METHOD unchanged; the image goes to METHOD's --image option (or its
first positional), and --out/--force are set per task. Each task writes OUT/IMAGE[__NAME=VALUE]
when it succeeds, and OUT/manifest.jsonl gets one JSON line per task (status done, failed or
skipped). Running the same command again skips the tasks whose folder exists: delete a
folder to redo it. Exit code 0 when every task is done, 1 when one failed, 2 for a usage
error. Workers must see the same files as this machine (one machine, or a shared disk).
"""


def _add_options(p):
    p.add_argument("--images", action="append", metavar="DIR_OR_GLOB",
                   help="a folder of images, a glob pattern ('photos/**/*.png'), a file or "
                        "sample:NAME; repeatable")
    p.add_argument("--out", metavar="DIR", help="output folder: a subfolder per task, and manifest.jsonl")
    p.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="run every combination of these values of METHOD's option --NAME "
                        "(style_weight=1e2,1e3 -> --style-weight 1e2, ...); repeatable")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="join this Dask scheduler (e.g. tcp://host:8786) instead of starting a "
                        "local cluster")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of the local cluster (default: one per CPU core, or "
                        "one per GPU with --device gpu; at most one per task)")
    p.add_argument("--threads-per-worker", type=int, default=1, metavar="T",
                   help="threads per worker process (default 1; each thread has its own net)")
    p.add_argument("--retries", type=int, default=2, metavar="R",
                   help="retries of a task that raised an unexpected error (default 2; bad "
                        "input is not retried; a task whose worker died goes to another "
                        "worker regardless)")
    p.add_argument("--device", default=None, choices=("cpu", "gpu", "auto"),
                   help="with gpu and several GPUs: one worker per GPU (sets "
                        "CUDA_VISIBLE_DEVICES and NNVIZ_DEVICE per worker)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar; only errors")


def register(sub):
    p = sub.add_parser("batch", help="run a method over many images in parallel (Dask)",
                       description="Run one nnviz method over a folder of images (× sweeps of "
                       "its options) in parallel on Dask:\none task per image, a manifest, "
                       "re-runs that skip what is done, retries when a worker dies.",
                       epilog=EXAMPLES,
                       usage="nnviz batch METHOD --images DIR_OR_GLOB --out DIR [options] "
                             "[-- METHOD OPTIONS]",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_options(p)
    # METHOD and everything after it: parsed in run(), so that batch options may come after
    # METHOD and the method's own options after '--'
    p.add_argument("method", nargs=argparse.PARSER, metavar="METHOD ...",
                   help="the subcommand to run (saliency, gradcam, style, ...)")
    p.set_defaults(func=run, _batch_parser=p)


def _split(args):
    """METHOD, the batch options given after it, and the method's options (after '--')."""
    method, rest = args.method[0], args.method[1:]
    if "--" in rest:
        i = rest.index("--")
        return method, rest[:i], rest[i + 1:]
    return method, rest, []


def run(args):
    from .. import batch
    from ..io import InputError
    method, more, options = _split(args)
    if "-h" in more or "--help" in more:
        args._batch_parser.print_help()
        return 0
    tail = argparse.ArgumentParser(prog="nnviz batch", add_help=False)
    _add_options(tail)

    def error(message):
        raise InputError(message)
    tail.error = error
    tail.parse_args(more, namespace=args)   # values given before METHOD are kept
    if not args.images:
        raise InputError("--images is required (a folder, a glob or a file)")
    if not args.out:
        raise InputError("--out is required")
    for name, value in (("--workers", args.workers), ("--threads-per-worker",
                        args.threads_per_worker)):
        if value is not None and value < 1:
            raise InputError(f"{name} {value}: must be at least 1")
    if args.retries < 0:
        raise InputError(f"--retries {args.retries}: must be at least 0")
    result = batch.run(method, args.images, args.out, options=options, sweeps=args.sweep,
                       scheduler=args.scheduler, workers=args.workers,
                       threads_per_worker=args.threads_per_worker, retries=args.retries,
                       device=args.device, quiet=args.quiet)
    sys.stdout.flush()
    return 1 if result["failed"] else 0
