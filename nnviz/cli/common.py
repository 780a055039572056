"""What every subcommand shares: its parser (one-line errors, typed options whose ranges
``--help`` shows), the common options, the net, the memory a run may take, and the paths it
writes (one check for all of them)."""
import argparse
import contextlib
import difflib
import hashlib
import itertools
import math
import os
import re
import signal
import sys
import threading

from .. import backend, functional, models
from ..errors import InputError
from ..io import MAX_SIDE, interrupt
from ..jobs import slug

ARCHS = ("vgg16", "vgg19")


# -- parsers: one line per error, every value checked with its range ---------------------------

# other spellings of subcommands (and of choices): what a reader of the papers or of other
# libraries types; compared after lower-casing and dropping "-", "_" and spaces
ALIASES = {
    "guidedbackprop": "guided", "guidedbackpropagation": "guided", "guidedbp": "guided",
    "gradientxinput": "gradxinput", "gradientinput": "gradxinput", "gradxinp": "gradxinput",
    "gradienttimesinput": "gradxinput", "inputxgradient": "gradxinput", "gradtimesinput": "gradxinput",
    "integratedgradients": "ig", "integratedgradient": "ig",
    "gradcam": "gradcam", "guidedgradcam": "guided-gradcam",
    "smoothgradient": "smoothgrad", "deconv": "deconvnet", "deconvolution": "deconvnet",
    "vanillagradient": "saliency", "gradient": "saliency", "saliencymap": "saliency",
    "topunit": "top-units", "deepdream": "dream", "inversion": "invert", "inverse": "invert",
    "styletransfer": "style", "neuralstyle": "style", "activationmaximization": "maximize",
    "maximise": "maximize", "maximization": "maximize", "filter": "filters",
    "classmodel": "class-model", "layerwiserelevancepropagation": "lrp", "relevance": "lrp",
    "fastneuralstyle": "stylize", "trainstyle": "train-style",
}


def _key(name):
    return re.sub(r"[-_\s]+", "", str(name).lower())


def resolve(name, choices):
    """``name`` as one of ``choices``: itself, or the choice it spells differently
    (``guided_backprop``, ``Guided-Backprop``, ``grad-cam`` -> ``guided``, ``gradcam``), or
    None."""
    if name in choices:
        return name
    by_key = {_key(c): c for c in choices}
    if _key(name) in by_key:
        return by_key[_key(name)]
    target = ALIASES.get(_key(name))
    return target if target in choices else None


def did_you_mean(value, choices):
    """`` (did you mean X?)`` for the choice (or an alias's choice) closest to ``value``, or ``""``."""
    choices = [str(c) for c in choices]
    spelled = {_key(c): c for c in choices}
    spelled.update({k: v for k, v in ALIASES.items() if v in choices})
    close = difflib.get_close_matches(_key(value), list(spelled), n=1, cutoff=0.7)
    return f" (did you mean {spelled[close[0]]}?)" if close else ""


def one_line(message):
    """argparse's ``argument --steps: -1: must be ...`` as ``--steps -1: must be ...``; any
    message on one line; an invalid choice with the closest valid one."""
    message = " ".join(str(message).split())
    m = re.match(r"argument ([^:]+): (.*)$", message)
    if not m:
        return message
    names, rest = m.groups()
    name = max(names.split("/"), key=len)          # the long option: --quiet, not -q
    c = re.match(r"invalid choice: (.*?) \(choose from (.*)\)$", rest)
    if c:
        value, choices = c[1].strip("'"), c[2].replace("'", "")
        hint = did_you_mean(value, [v.strip() for v in choices.split(",")])
        return f"{name} {value}: invalid choice{hint} (choose from {choices})"
    if re.match(r".*?: must be ", rest):            # a Number's message: VALUE: must be ...
        return f"{name} {rest}"
    return f"{name}: {rest}"


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, ``nnviz SUBCOMMAND: error: ...``
    (no usage lines), exit status 2, and whose help shows each typed option's valid range
    and default."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")

    def parse_known_args(self, args=None, namespace=None):
        args = self._resolve_command(list(sys.argv[1:] if args is None else args))
        ns, extra = super().parse_known_args(args, namespace)
        if ns is not None and not hasattr(ns, "option_defaults"):     # the subcommand's first
            ns.option_defaults = {a.dest: a.default for a in self._actions
                                  if a.option_strings and a.dest != "help"}
        return ns, extra

    def parse_args(self, args=None, namespace=None):
        args, extra = self.parse_known_args(args, namespace)
        if extra:      # reported by the subcommand's parser, under its name
            chosen = self._chosen(args)
            options = [o for o in chosen._option_string_actions if o.startswith("--")]
            shown = [w + (did_you_mean(w.split("=")[0], options) if w.startswith("--") else "")
                     for w in extra]
            chosen.error(f"unrecognized arguments: {' '.join(shown)}")
        return args

    def _resolve_command(self, args):
        """``args`` with its subcommand (the first word not an option) spelled as the parser
        knows it: ``guided_backprop`` -> ``guided`` (:func:`resolve`)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for k, word in enumerate(args):
                    if not str(word).startswith("-"):
                        found = resolve(word, action.choices)
                        if found is not None and found != word:
                            args[k] = found
                        break
        return args

    def _chosen(self, ns):
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                sub = action.choices.get(getattr(ns, action.dest, None) or "")
                if sub is not None:
                    return sub._chosen(ns) if isinstance(sub, Parser) else sub
        return self

    def format_help(self):
        for action in self._actions:
            _annotate(action)
        return super().format_help()


def _annotate(action):
    """Add the valid range (typed options) and the default to an option's help, once."""
    if getattr(action, "_annotated", False) or action.help in (None, argparse.SUPPRESS):
        return
    action._annotated = True
    kind = getattr(action, "valid", None) or getattr(action.type, "valid", None)
    text = action.help
    if kind and kind not in text:
        text += f" [{kind}]"
    default = action.default
    if action.nargs != 0 and default not in (None, argparse.SUPPRESS, [], ()) and \
            "default" not in text:
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        text += f" (default {shown})"
    action.help = text.replace("%", "%%").replace("%%(default)s", "%(default)s")


class Number:
    """An argparse type: a finite ``int`` or ``float`` in a range (``lo``/``hi`` inclusive
    unless ``lo_open``/``hi_open``). Its ``valid`` text goes into ``--help``."""

    def __init__(self, kind, lo=None, hi=None, lo_open=False, hi_open=False):
        self.kind, self.lo, self.hi, self.lo_open, self.hi_open = kind, lo, hi, lo_open, hi_open
        what = "an integer" if kind is int else "a number"
        show = (lambda v: f"{v:,}" if kind is int and abs(v) >= 10 ** 6 else f"{v:g}")
        if lo is not None and hi is not None and not lo_open and not hi_open:
            self.valid = f"{what} in [{show(lo)}, {show(hi)}]"
        else:
            parts = ([f"{'>' if lo_open else '≥'} {show(lo)}"] if lo is not None else []) + \
                    ([f"{'<' if hi_open else '≤'} {show(hi)}"] if hi is not None else [])
            self.valid = f"{what} {' and '.join(parts)}" if parts else f"a finite {what[2:]}"
        self.__name__ = self.valid

    def __call__(self, text):
        text = str(text).strip()
        try:
            if self.kind is int:
                value = int(text)
            else:
                value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text}: must be {self.valid}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text}: must be {self.valid} (a finite value)")
        lo, hi = self.lo, self.hi
        if (lo is not None and (value <= lo if self.lo_open else value < lo)) or \
                (hi is not None and (value >= hi if self.hi_open else value > hi)):
            raise argparse.ArgumentTypeError(f"{text}: must be {self.valid}")
        return value

    def __repr__(self):
        return f"Number({self.valid})"


def integer(lo=None, hi=None):
    return Number(int, lo, hi)


def number(lo=None, hi=None, lo_open=False, hi_open=False):
    return Number(float, lo, hi, lo_open, hi_open)


POSITIVE_INT = integer(1)
NONNEG_INT = integer(0)
FINITE = number()
POSITIVE = number(0, lo_open=True)
NONNEG = number(0)
PERCENT = number(0, 100)
SIZE = integer(32, MAX_SIDE)      # VGG needs 32 px; the image-pixel limit bounds the side
SEED = integer(0)


class Pair(argparse.Action):
    """``nargs=2`` with a type per value: ``--lp P WEIGHT``."""

    def __init__(self, option_strings, dest, types=(FINITE, FINITE), **kw):
        kw.setdefault("nargs", 2)
        super().__init__(option_strings, dest, **kw)
        self.types = types
        names = kw.get("metavar") or ("first", "second")
        self.valid = ", ".join(f"{n}: {t.valid}" for n, t in zip(names, types))

    def __call__(self, parser, namespace, values, option_string=None):
        out = []
        for name, t, v in zip(self.metavar, self.types, values):
            try:
                out.append(t(v))
            except argparse.ArgumentTypeError as e:
                raise argparse.ArgumentError(self, f"{name} {e}") from None
        setattr(namespace, self.dest, tuple(out))


class ListOf:
    """An argparse type: comma-separated values of ``item`` (a :class:`Number`), at least one."""

    def __init__(self, item, what):
        self.item = item
        self.valid = f"comma-separated {what}, each {item.valid}"
        self.__name__ = self.valid

    def __call__(self, text):
        parts = [p.strip() for p in str(text).split(",")]
        if not text.strip() or not all(parts):
            raise argparse.ArgumentTypeError(f"{text}: must be {self.valid}")
        try:
            return [self.item(p) for p in parts]
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"{text}: must be {self.valid}") from None


class Channels:
    """An argparse type: channels ``0-15`` or ``3,7,9`` or both (``0-3,8``); ranges ascending,
    channels ≥ 0, at most :data:`MAX` of them (whether the layer has them is checked later)."""

    MAX = 4096
    valid = f"channels ≥ 0 as A-B (A ≤ B) or A,B,C; at most {MAX}"
    __name__ = valid

    def __call__(self, text):
        out = []
        for part in str(text).split(","):
            m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
            if not m:
                raise argparse.ArgumentTypeError(f"{text}: must be {self.valid}, e.g. 0-15 or "
                                                 "3,7,9")
            a, b = int(m[1]), int(m[2]) if m[2] is not None else int(m[1])
            if b < a:
                raise argparse.ArgumentTypeError(f"{text}: must be {self.valid} ({a}-{b} runs "
                                                 "backwards)")
            if len(out) + b - a + 1 > self.MAX:
                raise argparse.ArgumentTypeError(f"{text}: must be {self.valid}")
            out += range(a, b + 1)
        if len(set(out)) != len(out):
            raise argparse.ArgumentTypeError(f"{text}: must be {self.valid} (a channel is "
                                             "named twice)")
        return out


CHANNELS = Channels()

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
          "g": 1 << 30, "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40}


def byte_size(text):
    """``512M``, ``8G``, ``1.5GB``, ``1000000`` (bytes; K, M, G, T are powers of 1024) ->
    bytes, > 0."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m[2].lower() not in _UNITS or not float(m[1]) > 0 or \
            not math.isfinite(float(m[1])):
        raise argparse.ArgumentTypeError(f"{text}: must be {byte_size.valid}")
    return int(float(m[1]) * _UNITS[m[2].lower()])


byte_size.valid = "a size > 0 in bytes, or with K, M, G or T (e.g. 512M, 8G)"


def folder_path(text):
    """An argparse type for output folders: refused when it, or a folder above it, is a file."""
    path = os.fspath(text)
    if not path.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: must be a folder path, not empty")
    check_folder(path, None)
    return path


def check_folder(folder, option, shown=None):
    """InputError (or ArgumentTypeError when ``option`` is None) when ``folder`` cannot be an
    output folder: it or a folder above it is a file, or it is not writable. The message
    names ``option`` and ``shown`` (default: the folder)."""
    shown = folder if shown is None else shown

    def fail(msg):
        if option is None:
            raise argparse.ArgumentTypeError(f"{shown}: must be a folder that can be written "
                                             f"({msg})")
        raise InputError(f"{option} {shown}: {msg}" if option else f"{shown}: {msg}")
    probe = os.path.abspath(folder)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if os.path.exists(probe) and not os.path.isdir(probe):
        fail(f"{probe} is a file, not a folder")
    if os.path.isdir(probe) and not os.access(probe, os.W_OK | os.X_OK):
        fail(f"cannot write in {probe} (permission denied)")


def add_parser(sub, name, help, examples="", description=None):
    """A subcommand's parser (a :class:`Parser`: one-line errors), its examples shown as
    written (one line each)."""
    if not (isinstance(sub._parser_class, type) and issubclass(sub._parser_class, Parser)):
        sub._parser_class = Parser
    return sub.add_parser(name, help=plain(help), description=plain(description or help),
                          epilog=plain(examples),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def plain(text):
    """Docstring markup as a terminal shows it: ````x```` and ``:mod:`x```` as ``x``,
    ``:func:`~a.b``` as ``b``; ``None`` stays ``None``."""
    if text is None:
        return None
    text = re.sub(r":[a-z]+:`~?([^`]*)`", lambda m: m[1].rsplit(".", 1)[-1]
                  if m[0].startswith(":") and "~" in m[0] else m[1], str(text))
    return re.sub(r"``([^`]*)``", r"\1", text).replace("```", "")


def add_common(parser, weights=True, out=True):
    """The options every subcommand takes: --device, --seed, --quiet, and where fitting
    --arch/--weights/--conv/--max-memory and --out/--force."""
    g = parser.add_argument_group("common options")
    g.add_argument("--device", default=None, choices=backend.DEVICES,
                   help="cpu, gpu or auto (default: $NNVIZ_DEVICE or auto)")
    g.add_argument("--seed", type=SEED, default=0, help="seed for every random choice (default 0)")
    g.add_argument("--quiet", "-q", action="store_true",
                   help="print only errors (no progress on stderr either)")
    if weights:
        g.add_argument("--arch", default="vgg16", choices=ARCHS,
                       help="the network, VGG16 or VGG19 (default vgg16)")
        g.add_argument("--weights", default="default",
                       help="'default' (the bundled VGG16 backbone), 'random', or a weight file "
                            "made by 'nnviz weights import'")
        g.add_argument("--conv", default=None, choices=functional.CONV_ALGORITHMS,
                       help="how 3×3 convolutions are computed: im2col + GEMM (direct), or "
                            "Winograd F(2×2,3×3) (default: $NNVIZ_CONV or direct)")
        g.add_argument("--max-memory", type=byte_size, default=None, metavar="BYTES",
                       help="refuse a run whose estimated memory exceeds this (default: the "
                            "memory available on this machine, MemAvailable)")
    if out:
        g.add_argument("--out", type=folder_path, default="nnviz-out",
                       help="output folder (default nnviz-out)")
        g.add_argument("--force", action="store_true",
                       help="overwrite existing outputs (needed only to run the same command "
                            "again: output names show the options that differ from their "
                            "defaults)")
    return g


def run_command(args):
    """Run a parsed subcommand with its scoped settings (the convolution algorithm of
    ``--conv``); what ``nnviz``, the demo and the batch runner all call."""
    with functional.conv_algorithm(getattr(args, "conv", None)):
        return args.func(args)


def sentence(message):
    """An OS error's text as a sentence: ``[Errno 20] Not a directory: 'a/b'`` -> ``a/b: not a
    directory``."""
    def fix(m):
        what = m[1][0].lower() + m[1][1:]
        return f"{m[3]}: {what}" if m[3] else what
    return re.sub(r"\[Errno -?\d+\] ([^:'\]]+?)(: '([^']*)')?(?=$|[);,]| \(|: )", fix, str(message))


def _os_message(e):
    if isinstance(e, OSError) and e.strerror:
        what = e.strerror[0].lower() + e.strerror[1:]
        names = [os.fspath(f) for f in (e.filename, e.filename2) if f is not None]
        return f"{' -> '.join(map(str, names))}: {what}" if names else what
    return sentence(e)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM and Ctrl-C's SIGINT raise KeyboardInterrupt, deferred while a
    file is being written (:func:`nnviz.io.interrupt`; main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGINT)
           if signal.getsignal(s) is not signal.SIG_IGN}     # an ignored signal stays ignored
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def execute(args):
    """:func:`run_command` as a command line does it: the exit status, with bad input (an
    :class:`InputError`, of whatever kind) as one line on stderr, status 2, and a run that
    failed otherwise as one line too, status 1. SIGTERM is taken as Ctrl-C."""
    try:
        with sigterm_as_interrupt():
            return run_command(args) or 0
    except KeyboardInterrupt:
        print("nnviz: interrupted", file=sys.stderr)
        return 1
    except (InputError, KeyError, ValueError, TypeError, RuntimeError, OSError,
            MemoryError) as e:
        if isinstance(e, KeyError) and not isinstance(e, InputError) and e.args:
            msg = e.args[0]
        elif isinstance(e, MemoryError):
            msg = f"out of memory{': ' + str(e) if str(e) else ''} (see --max-memory)"
        elif isinstance(e, OSError):
            msg = _os_message(e)
        else:
            msg = sentence(e)
        print(f"nnviz {args.command}: error: {' '.join(str(msg).split())}", file=sys.stderr)
        return 2 if isinstance(e, (InputError, KeyError)) else 1


# -- nets ------------------------------------------------------------------------------------

class NetCache:
    """Nets kept between commands by their caller (the demo, a batch worker): one per set of
    options and per thread, since a net holds its activations."""

    def __init__(self):
        self.nets = {}
        self.builds = 0

    def get(self, key, build):
        key = key + (threading.get_ident(),)
        if key not in self.nets:
            self.nets[key] = build()
            self.builds += 1
        return self.nets[key]


def load_net(args, include_top=True, pooling="max"):
    """The net named by --arch/--weights/--device/--seed, from ``args.nets`` (a
    :class:`NetCache`) when the caller set one."""
    weights = None if args.weights == "random" else args.weights
    if weights not in (None, "default") and not os.path.exists(weights):
        raise InputError(f"{weights}: no such weight file (import one with 'nnviz weights import')")

    def build():
        return getattr(models, args.arch)(weights=weights, include_top=include_top,
                                          pooling=pooling, seed=args.seed, device=args.device)
    nets = getattr(args, "nets", None)
    if nets is None:
        return build()
    key = (args.arch, args.weights,
           os.path.getmtime(weights) if weights not in (None, "default") else None,
           include_top, pooling, args.device, args.seed)
    return nets.get(key, build)


def say(args, *msg):
    if not getattr(args, "quiet", False):
        print(*msg, flush=True)


def finite_or_explain(net, result, rerun, what):
    """``result`` if every value is finite; else :meth:`nnviz.models.Net.locate_nonfinite` of
    ``rerun`` names the first layer, forward or going back, whose output is not finite, in an
    :class:`InputError`."""
    xp = backend.get_array_module(result)
    if bool(xp.isfinite(result).all()):
        return result
    where = net.locate_nonfinite(rerun)
    if where is not None:
        raise InputError(f"{what}: {where}")
    raise InputError(f"{what}: the result is not finite (NaN or Inf), though every layer's "
                     "output was finite when run again")


# -- memory ----------------------------------------------------------------------------------

def human_bytes(n):
    for unit, size in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def check_memory(args, need, what):
    """Refuse (InputError) a run whose estimate ``need`` (bytes) exceeds ``--max-memory`` or,
    by default, the memory available on the machine; the message gives both numbers."""
    limit = getattr(args, "max_memory", None)
    source = "--max-memory"
    if limit is None:
        limit, source = backend.available_memory(), "the memory available on this machine"
    if limit is not None and need > limit:
        raise InputError(f"{what} needs about {human_bytes(need)} of memory, more than "
                         f"{source} ({human_bytes(limit)}); use a smaller --size or fewer "
                         "images, or set --max-memory")
    return need


def check_net_memory(args, net, n, h, w, until=None, extra=0.0, what=None):
    """:func:`check_memory` of a forward and backward of ``n`` images ``h × w`` to ``until``
    (:func:`nnviz.models.memory_estimate`), plus ``extra`` images' worth of float32 buffers
    of the method (optimizer state, sums, noise)."""
    need = models.memory_estimate(net, n, h, w, until) + int(extra * n * 3 * h * w * 4)
    return check_memory(args, need, what or f"{getattr(args, 'command', 'this run')} on {n} "
                                            f"image{'s' if n != 1 else ''} of {h}×{w}")


# -- names and paths -------------------------------------------------------------------------

def stem(path):
    """A short name for an input: ``sample:astronaut`` -> ``astronaut``, ``a/b.jpg`` -> ``b``."""
    path = os.fspath(path)
    if path.startswith("sample:"):
        return path.split(":", 1)[1]
    return os.path.splitext(os.path.basename(path))[0] or "image"


# options that do not change what a command draws: where it goes, how it is computed or shown,
# what is printed; every other option that differs from its default is part of the output's name
NOT_IN_NAMES = frozenset({"out", "force", "quiet", "device", "conv", "max_memory", "output",
                          "snapshot_every", "print_every", "loss_csv", "json", "grid", "batch",
                          "progress_every", "table"})
PATH_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                 ".h5", ".hdf5", ".pth", ".pt", ".keras", ".npz", ".npy", ".onnx")
MAX_VARIANT = 80          # longer option parts are cut, and a hash of the whole added
MAX_NAME = 160            # so are longer names (file names have at most 255 bytes)


def _shown(value):
    """An option's value as a name part: paths and samples by their stem, runs of integers
    as ``A..B``, numbers with ``%g``, lists comma-joined."""
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            runs, start = [], 0
            for k in range(1, len(value) + 1):
                if k == len(value) or value[k] != value[k - 1] + 1:
                    a, b = value[start], value[k - 1]
                    runs.append(f"{a}" if a == b else f"{a}..{b}")
                    start = k
            return ",".join(runs)
        return ",".join(_shown(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)
    if text.startswith("sample:") or "/" in text or os.sep in text or \
            os.path.splitext(text)[1].lower() in PATH_SUFFIXES:
        return stem(text)
    return text


def variant(args, named=()):
    """The part of an output's name that tells runs with different options apart: every option
    of the subcommand that differs from its default and may change the picture (not those of
    :data:`NOT_IN_NAMES`, nor ``named``, the ones the name shows already), sorted, as
    ``dest=value`` joined by ``-`` (a flag as its ``dest``): ``size=32-weights=random``.
    Empty for the defaults, so that a plain run keeps its plain name. Longer than
    :data:`MAX_VARIANT`: cut, with a hash of the whole."""
    defaults = getattr(args, "option_defaults", None) or {}
    parts = []
    for dest in sorted(defaults):
        if dest in NOT_IN_NAMES or dest in named or not hasattr(args, dest):
            continue
        value = getattr(args, dest)
        if value == defaults[dest] or value is None or value is False:
            continue
        parts.append(dest if value is True else f"{dest}={_shown(value)}")
    text = slug("-".join(parts)) if parts else ""
    if len(text) > MAX_VARIANT:
        text = text[:MAX_VARIANT - 9].rstrip("-_.") + "-" + \
            hashlib.sha1(text.encode()).hexdigest()[:8]
    return text


def output_name(args, *parts, named=(), sep="-"):
    """An output's file name (without extension): ``parts`` (the command, the input's stem, the
    target, ...) and the :func:`variant` of the options that differ from their defaults, e.g.
    ``saliency-astronaut-pool5_12-size=32``; the one naming rule of every command, so that a
    run with other options never meets the files of an earlier one (``--force`` is for the
    same command run twice)."""
    extra = variant(args, named)
    name = sep.join([slug(p) for p in parts if str(p)] + ([extra] if extra else []))
    if len(name) > MAX_NAME:      # room for suffixes (-step00001, _loss.csv, a temporary's)
        name = name[:MAX_NAME - 9].rstrip("-_.") + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name


def input_files(paths):
    """The real files among input names (not ``sample:NAME`` or ``none``)."""
    return [os.fspath(p) for p in paths
            if p and not str(p).startswith("sample:") and str(p).lower() != "none"]


class Outputs:
    """The one check for every path a command writes: never one of its inputs, never an
    existing file without ``--force``, never the same path twice in one run, never in a
    folder that a file stands in the way of. Writing is atomic (:func:`nnviz.io.atomic_path`).
    A command checks all its paths (snapshots included, :meth:`series`) before it computes,
    so a refusal writes nothing."""

    def __init__(self, args, inputs=()):
        self.folder = getattr(args, "out", None) or "."
        self.force = bool(getattr(args, "force", False))
        self.inputs = input_files(inputs)
        self.taken = set()
        check_folder(self.folder, "--out")

    def path(self, name):
        """The checked path of file ``name`` in --out."""
        return self.check(os.path.join(self.folder, name))

    def check(self, path, option=None):
        """``path`` (as given), checked; ``option`` names where it came from (``--loss-csv``)."""
        path = os.fspath(path)
        where = f"{option} {path}" if option else path
        real = os.path.realpath(path)
        if real in self.taken:
            raise InputError(f"{where}: two outputs of this run would have the same path")
        for inp in self.inputs:
            same = os.path.realpath(inp) == real or (
                os.path.exists(inp) and os.path.exists(path) and os.path.samefile(inp, path))
            if same:
                raise InputError(f"{where}: refusing to overwrite an input file")
        if os.path.isdir(path):
            raise InputError(f"{where}: is a folder, not a file")
        if os.path.lexists(path) and not self.force:
            raise InputError(f"{where}: exists (use --force to overwrite)")
        check_folder(os.path.dirname(os.path.abspath(path)), option or "", path)
        self.taken.add(real)
        return path

    def series(self, template, steps, **fields):
        """Snapshot paths, all checked now: ``template`` (a format string in --out, e.g.
        ``name-step{step:05d}.png``) for every step of ``steps`` and every combination of the
        ``fields`` (``batch=range(3)``). Returns ``path(step, **fields)``."""
        names = list(fields)
        made = {}
        for step in steps:
            for combo in itertools.product(*fields.values()):
                kw = dict(zip(names, combo))
                key = (step,) + tuple(combo)
                made[key] = self.check(os.path.join(self.folder, template.format(step=step, **kw)))

        def path(step, **kw):
            key = (step,) + tuple(kw[k] for k in names)
            if key not in made:
                made[key] = self.check(os.path.join(self.folder,
                                                    template.format(step=step, **kw)))
            return made[key]
        return path

    def pattern(self, template):
        """Snapshot paths: a function ``(step, **fields) -> path`` of ``template`` (a format
        string in --out, e.g. ``name-step{step:05d}.png``), each path checked when made
        (:meth:`series` checks them all first)."""
        def path(step, **fields):
            return self.check(os.path.join(self.folder, template.format(step=step, **fields)))
        return path
