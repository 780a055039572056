"""``nnviz batch``: run any nnviz subcommand over a folder of images, in parallel, on Dask.

The runner, its manifest, markers and lock are :mod:`nnviz.jobs`; this module gives it the
method: the subcommand's parser (:mod:`nnviz.cli.parsers`), with which every task is checked
before anything runs, and a :class:`Command` that a worker process runs for each task
(:func:`~nnviz.cli.common.run_command`, with the worker's :class:`~nnviz.cli.common.NetCache`:
one net per worker process instead of one per task).
"""
import argparse
import sys

from .. import jobs
from ..errors import BadOption
from . import parsers
from .common import (
    NONNEG_INT,
    POSITIVE_INT,
    NetCache,
    Parser,
    did_you_mean,
    folder_path,
    one_line,
    resolve,
    run_command,
)


def _raise_input_error(parser):
    def error(message):
        raise BadOption(f"{parser.prog}: {one_line(message)}")
    return error


def method_parser(method):
    """``(parser, name)`` for a subcommand name (``"saliency"``) or a ``(parser_builder,
    func)`` pair (``parser_builder()`` returns an ``argparse.ArgumentParser``; ``func(args)``
    runs the method and returns an exit code). Parse errors raise :class:`InputError`."""
    if isinstance(method, str):
        choices = parsers.method_parsers()
        name = resolve(method, choices)       # aliases as for nnviz itself: grad-cam, ...
        if name is None:
            raise BadOption(f"unknown method {method!r}{did_you_mean(method, choices)}: expected "
                            f"one of {', '.join(choices)}")
        parser = choices[name]
    else:
        builder, func = method
        parser, name = builder(), getattr(func, "__name__", "method")
        parser.set_defaults(func=func)
    parser.error = _raise_input_error(parser)
    return parser, name


_PARSERS = {}      # in a worker process: the parser of each subcommand name, built once


class Command:
    """A method as a batch worker runs it: ``command(argv, folder)`` parses ``argv`` with
    ``--out folder`` and runs the subcommand with the worker's nets; its exit code.
    Picklable: the parser is built in the worker (once per process for a subcommand name)."""

    def __init__(self, method, name, prog):
        self.method, self.name, self.prog = method, name, prog

    def __call__(self, argv, folder):
        if not isinstance(self.method, str):
            parser = method_parser(self.method)[0]
        else:
            if self.method not in _PARSERS:
                _PARSERS[self.method] = method_parser(self.method)[0]
            parser = _PARSERS[self.method]
        args = parser.parse_args(argv + ["--out", folder])
        args.nets = jobs.worker_cache(NetCache)
        return run_command(args)


def run(method, images, out, **options):
    """Run ``method`` (a subcommand name or a ``(parser_builder, func)`` pair, see
    :func:`method_parser`) on every image and write ``out``: :func:`nnviz.jobs.run` with its
    ``options`` (``options=`` the method's own argv strings, ``sweeps``, ``scheduler``,
    ``workers``, ``threads_per_worker``, ``retries``, ``device``, ``quiet``, ``progress``).
    Returns ``{"done", "failed", "skipped", "rows"}``."""
    parser, name = method_parser(method)
    return jobs.run(Command(method, name, parser.prog), parser, images, out, **options)


EXAMPLES = """examples:
  nnviz batch saliency --images photos/ --out maps -- --weights random --size 64
  nnviz batch gradcam --images 'photos/*.jpg' --out cams --workers 4 -- --layer relu5_3
  nnviz batch style --images content/ --out styled --sweep style_weight=1e2,1e3,1e4 \\
      -- style.jpg --size 256
  nnviz batch saliency --images photos/ --out maps --scheduler tcp://10.0.0.5:8786

Options after '--' go to METHOD unchanged; the image goes to METHOD's --image option (or its
first positional), and --out/--force are set per task. Each task writes OUT/IMAGE[__NAME=VALUE]
when it succeeds, and OUT/manifest.jsonl gets one JSON line per task (status done, failed or
skipped). Running the same command again skips the tasks done with the same options (their
fingerprint is in OUT/TASK/.nnviz-task.json); other options redo them and replace the folder;
delete a folder to redo it. One run at a time writes OUT (a lock). Exit code 0 when every
task is done, 1 when one failed, 2 for a usage error. Workers must see the same files as this
machine (one machine, or a shared disk).
"""


def _add_options(p):
    p.add_argument("--images", action="append", metavar="DIR_OR_GLOB",
                   help="a folder of images, a glob pattern ('photos/**/*.png'), a file or "
                        "sample:NAME; repeatable")
    p.add_argument("--out", metavar="DIR", type=folder_path,
                   help="output folder: a subfolder per task, and manifest.jsonl")
    p.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="run every combination of these values of METHOD's option --NAME "
                        "(style_weight=1e2,1e3 -> --style-weight 1e2, ...); repeatable")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="join this Dask scheduler (e.g. tcp://host:8786) instead of starting a "
                        "local cluster")
    p.add_argument("--workers", type=POSITIVE_INT, default=None, metavar="N",
                   help="worker processes of the local cluster (default: one per CPU core, or "
                        "one per GPU with --device gpu; at most one per task)")
    p.add_argument("--threads-per-worker", type=POSITIVE_INT, default=1, metavar="T",
                   help="threads per worker process (default 1; each thread has its own net)")
    p.add_argument("--retries", type=NONNEG_INT, default=2, metavar="R",
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
    # METHOD and everything after it: parsed in run_command_line(), so that batch options may
    # come after METHOD and the method's own options after '--'
    p.add_argument("method", nargs=argparse.PARSER, metavar="METHOD ...",
                   help="the subcommand to run (saliency, gradcam, style, ...)")
    p.set_defaults(func=run_command_line, _batch_parser=p)


def _split(args):
    """METHOD, the batch options given after it, and the method's options (after '--')."""
    method, rest = args.method[0], args.method[1:]
    if "--" in rest:
        i = rest.index("--")
        return method, rest[:i], rest[i + 1:]
    return method, rest, []


def run_command_line(args):
    method, more, options = _split(args)
    if "-h" in more or "--help" in more:
        args._batch_parser.print_help()
        return 0
    tail = Parser(prog="nnviz batch", add_help=False)
    _add_options(tail)

    def error(message):
        raise BadOption(one_line(message))
    tail.error = error
    tail.parse_args(more, namespace=args)   # values given before METHOD are kept
    if not args.images:
        raise BadOption("--images is required (a folder, a glob or a file)")
    if not args.out:
        raise BadOption("--out is required")
    result = run(method, args.images, args.out, options=options, sweeps=args.sweep,
                 scheduler=args.scheduler, workers=args.workers,
                 threads_per_worker=args.threads_per_worker, retries=args.retries,
                 device=args.device, quiet=args.quiet)
    sys.stdout.flush()
    return 1 if result["failed"] else 0
