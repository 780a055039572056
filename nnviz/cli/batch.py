"""Run any nnviz subcommand over a folder of images, in parallel, on Dask (``nnviz batch``).

A *task* is one image (times one combination of the ``--sweep`` values). It parses the
method's own subcommand parser (:mod:`nnviz.cli.parsers`) with the method options, the image
(its ``--image`` option, else its first positional), ``--out <temporary folder>`` and
``--force``, and runs the subcommand (:func:`~nnviz.cli.common.run_command`) in a worker
process. The temporary
folder ``OUT/.partial/RUN@HOST.PID/...`` is renamed to ``OUT/TASK`` when the task succeeds, so a
folder ``OUT/TASK`` always holds a complete result. A task's identity is its image and its
options: a fingerprint of both is in the manifest and in ``OUT/TASK/.nnviz-task.json``; a re-run
skips the tasks whose folder holds a result of the same fingerprint and redoes (replaces) those
whose options changed. A lock (``OUT/.nnviz-batch.lock``) keeps a second run out of the same
``OUT``; ``.partial`` folders of clients that are gone (killed) are removed by the next run.
Every image maps to its own valid folder name (never ``OUT`` itself, ``.``, ``..`` or the
manifest's name).

Images travel as paths and results as files (workers need the same file system as the
client: one machine, or a shared disk). Each worker process builds a net once and keeps it in
a :class:`~nnviz.cli.common.NetCache` that the worker owns (an attribute of the Dask worker),
instead of once per task.

The client appends one JSON line per task to ``OUT/manifest.jsonl`` as tasks finish:
``{"run", "task", "image", "sweep", "options", "fingerprint", "status", "outputs",
"duration_s", "worker", "error", "finished"}`` with status ``done``, ``failed`` or ``skipped``
(its folder held the same task's result before the run started: nothing ran), and ``replaced``
(the fingerprint of a result of other options that this one replaced). Failures:

- bad user input (``InputError``: a corrupt image, a bad option value) fails its own task at
  once, with its message in the manifest; the other tasks go on;
- any other exception is retried ``retries`` times (Dask's ``retries``), then recorded failed;
- a worker process that dies is restarted by its nanny, and the scheduler gives its tasks to
  another worker (up to ``distributed.scheduler.allowed-failures`` deaths per task, 3 by
  default; then the task is recorded failed with ``KilledWorker``).

Dask is imported inside functions only: the rest of nnviz never needs it.
"""
import argparse
import collections
import contextlib
import datetime
import glob
import hashlib
import itertools
import json
import os
import re
import shutil
import socket
import sys
import time
import uuid

from .. import backend, io
from ..errors import InputError
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
    slug,
)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm")
MANIFEST = "manifest.jsonl"
PARTIAL = ".partial"
MARKER = ".nnviz-task.json"       # in each task's folder: its fingerprint, method and options
LOCK = ".nnviz-batch.lock"        # held (flock) by the run writing OUT
NEEDS_DASK = "nnviz batch needs Dask: pip install nnviz[batch]"


# ---------------------------------------------------------------------------------------
# the method: a subcommand name, or a (parser_builder, func) pair
# ---------------------------------------------------------------------------------------

def _raise_input_error(parser):
    def error(message):
        raise InputError(f"{parser.prog}: {one_line(message)}")
    return error


def method_parser(method):
    """``(parser, name)`` for a subcommand name (``"saliency"``) or a ``(parser_builder,
    func)`` pair (``parser_builder()`` returns an ``argparse.ArgumentParser``; ``func(args)``
    runs the method and returns an exit code). Parse errors raise :class:`InputError`."""
    if isinstance(method, str):
        choices = parsers.method_parsers()
        name = resolve(method, choices)       # aliases as for nnviz itself: grad-cam, ...
        if name is None:
            raise InputError(f"unknown method {method!r}{did_you_mean(method, choices)}: expected "
                             f"one of {', '.join(choices)}")
        parser = choices[name]
    else:
        builder, func = method
        parser, name = builder(), getattr(func, "__name__", "method")
        parser.set_defaults(func=func)
    parser.error = _raise_input_error(parser)
    return parser, name


def _flags(parser):
    return parser._option_string_actions


def option_string(parser, name):
    """The option of ``parser`` that a sweep name means: ``style_weight`` -> ``--style-weight``."""
    flag = name if name.startswith("-") else "--" + name.replace("_", "-")
    if flag not in _flags(parser):
        options = sorted(f for f in _flags(parser) if f.startswith("--") and f != "--help")
        raise InputError(f"--sweep {name}: {parser.prog} has no option {flag} "
                         f"(its options: {' '.join(options)})")
    return flag


def parse_sweep(text):
    """``"style_weight=1e2,1e3"`` -> ``("style_weight", ["1e2", "1e3"])``."""
    name, eq, values = text.partition("=")
    values = [v.strip() for v in values.split(",")]
    if not eq or not name.strip() or not all(values):
        raise InputError(f"--sweep {text!r}: expected NAME=VALUE1,VALUE2,... "
                         "(e.g. style_weight=1e2,1e3)")
    return name.strip().lstrip("-").replace("-", "_"), values


def find_images(specs):
    """Absolute paths of the images named by folders, globs, files or ``sample:NAME``."""
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    found = []
    for spec in specs:
        spec, before = os.fspath(spec), len(found)
        if spec.startswith("sample:"):
            found.append(spec)
        elif os.path.isdir(spec):
            found += sorted(os.path.join(spec, f) for f in os.listdir(spec)
                            if f.lower().endswith(IMAGE_EXTENSIONS)
                            and os.path.isfile(os.path.join(spec, f)))
        elif os.path.isfile(spec):
            found.append(spec)
        else:
            matches = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
            if not matches:
                raise InputError(f"--images {spec}: no such folder or file, and no file "
                                 "matches it as a pattern")
            found += matches
        if len(found) == before:
            raise InputError(f"--images {spec}: no images there "
                             f"({', '.join(IMAGE_EXTENSIONS)})")
    paths = [p if p.startswith("sample:") else os.path.abspath(p) for p in found]
    return list(dict.fromkeys(paths))


def _hash(text, n=8):
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:n]


MAX_NAME = 100


def _stems(paths):
    """A distinct, valid folder name per image: the file's stem (letters, digits, ``_.=+-``),
    its extension added where stems collide, and a short hash of the whole path where they
    still collide (case-insensitively: ``A.png`` and ``a.png`` get two folders everywhere).
    A name is never empty, ``.``, ``..``, hidden or the manifest's; long names are cut."""
    def stem(p, ext=False):
        if p.startswith("sample:"):
            base = p.split(":", 1)[1]
        else:
            base = os.path.basename(p)
            base = base.replace(".", "-") if ext else os.path.splitext(base)[0]
        name = slug(base)
        if name.casefold() == MANIFEST.casefold():
            name += "_"
        if len(name) > MAX_NAME:
            name = name[:MAX_NAME - 9] + "_" + _hash(p)
        return name
    first = collections.Counter(stem(p).casefold() for p in paths)
    names = [stem(p, first[stem(p).casefold()] > 1) for p in paths]
    again = collections.Counter(n.casefold() for n in names)
    names = [n + "__" + _hash(p) if again[n.casefold()] > 1 else n for n, p in zip(names, paths)]
    dup = [n for n, k in collections.Counter(n.casefold() for n in names).items() if k > 1]
    if dup:     # a hash collision (or the same path twice): refuse rather than mix results
        clash = [p for p, n in zip(paths, names) if n.casefold() == dup[0]]
        raise InputError(f"images {clash[0]} and {clash[1]} would write to the same folder "
                         f"{dup[0]!r}: rename one")
    return names


def fingerprint(name, argv):
    """A task's identity: its method and its arguments (options, sweep values, the image)."""
    return _hash(json.dumps({"method": name, "argv": list(argv)}, sort_keys=True), 16)


def make_tasks(parser, images, out, options=(), sweeps=()):
    """One task dict per image × sweep combination; each is parsed once here, so that a bad
    option value is a usage error before anything runs."""
    flags = _flags(parser)
    if "--out" not in flags:
        raise InputError(f"{parser.prog} writes no files (it has no --out option)")
    options = list(options)
    for bad in ("--out", "--image", "--force"):
        if any(o == bad or o.startswith(bad + "=") for o in options):
            raise InputError(f"method option {bad}: nnviz batch sets it for each task")
    sweeps = [parse_sweep(s) if isinstance(s, str) else tuple(s) for s in sweeps]
    sweep_flags = [option_string(parser, name) for name, _ in sweeps]
    tasks = []
    for path, stem in zip(images, _stems(images)):
        for combo in itertools.product(*[values for _, values in sweeps]):
            sweep = {name: value for (name, _), value in zip(sweeps, combo)}
            argv = list(options)
            for flag, value in zip(sweep_flags, combo):
                argv += [flag, value]
            argv = argv + ["--image", path] if "--image" in flags else [path] + argv
            argv += ["--force"] if "--force" in flags else []
            argv += ["--quiet"] if "--quiet" in flags else []
            name = stem + "".join(f"__{k}={slug(v)}" for k, v in sweep.items())
            parser.parse_args(argv + ["--out", os.path.join(out, name)])   # usage errors now
            tasks.append({"task": name, "image": path, "sweep": sweep, "options": options,
                          "argv": argv, "final": os.path.join(out, name),
                          "fingerprint": fingerprint(parser.prog, argv)})
    return tasks


# ---------------------------------------------------------------------------------------
# in the worker: one net per worker process, one task
# ---------------------------------------------------------------------------------------

_PARSERS = {}
# what the nnviz command calls a usage error: the same input fails again, so it is not retried
FINAL_ERRORS = (InputError, KeyError, ValueError, TypeError)
NETS = "nnviz_nets"      # the attribute of a Dask worker that holds its NetCache


def _worker_nets():
    """The :class:`NetCache` of the Dask worker running this task (made on its first task;
    the worker owns it), or None outside a worker."""
    try:
        from distributed import get_worker
        worker = get_worker()
    except Exception:   # not in a Dask worker (a direct call)
        return None
    if getattr(worker, NETS, None) is None:
        setattr(worker, NETS, NetCache())
    return getattr(worker, NETS)


def net_cache_info(dask_worker=None):
    """``{"builds": nets built by this worker, "cached": nets kept, "pid"}`` (for tests and
    benches: ``client.run(net_cache_info)``)."""
    nets = getattr(dask_worker, NETS, None)
    return {"builds": nets.builds if nets else 0, "cached": len(nets.nets) if nets else 0,
            "pid": os.getpid()}


def net_cache_clear(dask_worker=None):
    """Drop the worker's nets (``client.run(net_cache_clear)``)."""
    if dask_worker is not None:
        setattr(dask_worker, NETS, None)


def _worker_address():
    try:
        from distributed import get_worker
        return get_worker().address
    except Exception:   # not in a Dask worker (a direct call)
        return f"pid:{os.getpid()}"


def _outputs(folder, out):
    return sorted(os.path.relpath(os.path.join(d, f), out)
                  for d, _, files in os.walk(folder) for f in files if f != MARKER)


def read_marker(folder):
    """The task marker of a result folder (a dict), or None when it has none (not a result of
    nnviz batch) or it is unreadable."""
    try:
        with open(os.path.join(folder, MARKER)) as f:
            marker = json.load(f)
        return marker if isinstance(marker, dict) else None
    except (OSError, ValueError):
        return None


def _write_marker(folder, task):
    marker = {"fingerprint": task["fingerprint"], "task": task["task"], "image": task["image"],
              "sweep": task["sweep"], "options": task["options"]}
    with open(os.path.join(folder, MARKER), "w") as f:
        json.dump(marker, f, sort_keys=True)


def _install(tmp, final, task, partial):
    """Rename the finished ``tmp`` folder to ``final``. Returns the fingerprint of a result of
    other options that it replaced, or None."""
    try:
        os.rename(tmp, final)
        return None
    except OSError:
        if not os.path.isdir(final):
            raise
    old = read_marker(final)
    if old is None:
        raise InputError(f"{final} exists and is not a result of nnviz batch (it has no "
                         f"{MARKER}): move it away")
    if old.get("fingerprint") == task["fingerprint"]:
        # an earlier attempt of this task finished it (its worker died before reporting):
        # the first complete result stays
        return None
    # a result of other options: set it aside, put the new one in, then delete the old
    aside = os.path.join(partial, f"replaced-{os.path.basename(final)}.{uuid.uuid4().hex[:8]}")
    os.rename(final, aside)
    os.rename(tmp, final)
    shutil.rmtree(aside, ignore_errors=True)
    return old.get("fingerprint")


def run_task(method, task, partial):
    """Run one task in this process: parse, run into a temporary folder under ``partial``,
    rename it to ``task["final"]``. Returns the manifest row's result fields. Bad input
    (:data:`FINAL_ERRORS`) is returned as a failure, not retried; other exceptions propagate
    (Dask retries them)."""
    if not isinstance(method, str):
        parser = method_parser(method)[0]
    else:
        if method not in _PARSERS:
            _PARSERS[method] = method_parser(method)[0]
        parser = _PARSERS[method]
    start = time.perf_counter()
    os.makedirs(partial, exist_ok=True)
    tmp = os.path.join(partial, f"{task['task']}.{uuid.uuid4().hex[:8]}")
    result = {"status": "done", "outputs": [], "error": None, "worker": _worker_address()}
    try:
        args = parser.parse_args(task["argv"] + ["--out", tmp])
        args.nets = _worker_nets()
        os.makedirs(tmp)
        code = run_command(args)
        if code not in (0, None):
            raise InputError(f"{parser.prog} exited with code {code}")
        final = task["final"]
        _write_marker(tmp, task)
        replaced = _install(tmp, final, task, partial)
        if replaced:
            result["replaced"] = replaced
        result["outputs"] = _outputs(final, os.path.dirname(final))
    except FINAL_ERRORS as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        result.update(status="failed", error=f"{type(e).__name__}: {msg}")
    except SystemExit as e:
        result.update(status="failed", error=f"{parser.prog} exited with code {e.code}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["duration_s"] = round(time.perf_counter() - start, 4)
    return result


# ---------------------------------------------------------------------------------------
# the client: cluster, submission, manifest
# ---------------------------------------------------------------------------------------

def append_row(path, row):
    """Append one JSON line to the manifest: one write, flushed and fsynced."""
    line = (json.dumps(row, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(out):
    """The manifest's rows, oldest first."""
    path = os.path.join(out, MANIFEST)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def gpu_count():
    if not backend.gpu_available():
        return 0
    return backend.cupy.cuda.runtime.getDeviceCount()


def cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def gpu_worker_spec(n_gpus, threads_per_worker=1):
    """One Nanny per GPU, each seeing only its own (``CUDA_VISIBLE_DEVICES``, set before the
    worker process starts, as dask-cuda does) and running nnviz there (``NNVIZ_DEVICE=gpu``)."""
    from distributed import Nanny
    return {f"gpu-{i}": {"cls": Nanny, "options": {
        "nthreads": threads_per_worker,
        "env": {"CUDA_VISIBLE_DEVICES": str(i), "NNVIZ_DEVICE": "gpu"}}}
        for i in range(n_gpus)}


def start_cluster(n_workers=None, threads_per_worker=1, device=None, n_tasks=None, quiet=False):
    """A cluster on this machine: one worker process per GPU when ``device == "gpu"`` and
    several GPUs are visible, else a ``LocalCluster`` of worker processes (default: one per
    CPU core, at most one per task), ``threads_per_worker`` threads each."""
    import logging

    from distributed import LocalCluster, Scheduler, SpecCluster
    logs = logging.ERROR if quiet else logging.WARNING
    dashboard = ":0"   # a free port: several runs may share the machine
    n_gpus = gpu_count() if device == "gpu" else 0
    if n_gpus > 1 and n_workers in (None, n_gpus):
        return SpecCluster(workers=gpu_worker_spec(n_gpus, threads_per_worker),
                           scheduler={"cls": Scheduler, "options": {
                               "dashboard_address": dashboard}},
                           silence_logs=logs)
    if n_workers is None:
        n_workers = cpu_count() // threads_per_worker
        n_workers = max(1, min(n_workers, n_tasks or n_workers))
    return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                        processes=True, dashboard_address=dashboard, silence_logs=logs)


def _has_bokeh():
    import importlib.util
    return importlib.util.find_spec("bokeh") is not None


def _say(quiet, *msg):
    if not quiet:
        print(*msg, file=sys.stderr, flush=True)


def _progress(total, quiet, progress):
    if progress is None:
        progress = not quiet and sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="task", file=sys.stderr, dynamic_ncols=True)


def _client(distributed, scheduler, workers, threads_per_worker, device, n_tasks, quiet):
    """``(client, cluster or None, own_client)`` for ``scheduler``: an address, a Client, or
    None for a new local cluster."""
    if isinstance(scheduler, distributed.Client):
        return scheduler, None, False
    if scheduler is not None:
        return distributed.Client(scheduler), None, True
    cluster = start_cluster(workers, threads_per_worker, device, n_tasks, quiet)
    return distributed.Client(cluster), cluster, True


def _announce(client, cluster, todo, skipped, quiet):
    link = None   # a local dashboard needs bokeh (the HTTP server runs anyway)
    if "dashboard" in client.scheduler_info().get("services", {}) and \
            (cluster is None or _has_bokeh()):
        link = client.dashboard_link
    n = len(client.scheduler_info()["workers"])
    _say(quiet, f"nnviz batch: {len(todo)} tasks ({skipped} done before) on {n} workers at "
                f"{client.scheduler.address}" + (f", dashboard {link}" if link else ""))


def _collect(distributed, futures, record, quiet, progress):
    """Record each task as it finishes (a failure printed even with --quiet)."""
    bar = _progress(len(futures), quiet, progress)
    failed = 0
    for future in distributed.as_completed(futures):
        task = futures.pop(future)
        try:
            result = future.result()
        except Exception as e:   # retries spent, or the task killed too many workers
            result = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
        record(task, **result)
        if result["status"] == "failed":
            failed += 1
            msg = f"nnviz batch: {task['task']} failed: {result['error']}"
            if bar is not None:
                bar.write(msg, file=sys.stderr)
            else:
                _say(False, msg)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(failed=failed, refresh=False)
    if bar is not None:
        bar.close()


def _host():
    return slug(socket.gethostname()) or "host"


def partial_name(run_id):
    """The name of a run's folder in ``OUT/.partial``: ``RUN@HOST.PID`` (this client's)."""
    return f"{run_id}@{_host()}.{os.getpid()}"


def clean_stale_partials(out):
    """Remove the ``OUT/.partial`` folders of clients on this machine that are gone (killed);
    returns their names. Folders of live clients, and of other machines, stay."""
    root = os.path.join(out, PARTIAL)
    removed = []
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    for name in names:
        m = re.fullmatch(r".+@(.+)\.(\d+)", name)
        if m and m[1] == _host() and not io.process_alive(int(m[2])):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            removed.append(name)
    try:
        os.rmdir(root)
    except OSError:
        pass
    return removed


@contextlib.contextmanager
def out_lock(out):
    """Hold ``OUT/.nnviz-batch.lock`` (an advisory ``flock``, released by the system if this
    process dies) for the block; InputError when another run holds it."""
    try:
        import fcntl
    except ImportError:       # not on POSIX: no lock
        yield
        return
    path = os.path.join(out, LOCK)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise InputError(f"--out {out} is being written by another nnviz batch ({holder}): "
                             "wait for it to finish, or use another --out") from None
        try:      # the holder before us may have unlinked the file between our open and flock
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since "
                     f"{datetime.datetime.now().isoformat(timespec='seconds')}".encode())
        yield
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)


def run(method, images, out, *, options=(), sweeps=(), scheduler=None, workers=None,
        threads_per_worker=1, retries=2, device=None, quiet=False, progress=None):
    """Run ``method`` on every image (× every sweep combination) and write ``out``.

    ``method``: a subcommand name or a ``(parser_builder, func)`` pair; ``images``: folders,
    globs, files (see :func:`find_images`); ``options``: the method's own options (argv
    strings); ``sweeps``: ``"name=v1,v2"`` strings; ``scheduler``: an address (or a
    ``distributed.Client``) to use instead of a new local cluster.

    Returns ``{"done": n, "failed": n, "skipped": n, "rows": [manifest rows of this run]}``."""
    parser, name = method_parser(method)
    out = os.path.abspath(os.fspath(out))
    tasks = make_tasks(parser, find_images(images), out, options, sweeps)
    try:
        import distributed
    except ImportError:
        raise RuntimeError(NEEDS_DASK) from None
    os.makedirs(out, exist_ok=True)
    with out_lock(out):
        return _run_locked(method, name, tasks, out, distributed, scheduler, workers,
                           threads_per_worker, retries, device, quiet, progress)


def _run_locked(method, name, tasks, out, distributed, scheduler, workers, threads_per_worker,
                retries, device, quiet, progress):
    clean_stale_partials(out)
    manifest = os.path.join(out, MANIFEST)
    run_id = datetime.datetime.now().strftime("%Y%m%dT%H%M%S") + f"-{uuid.uuid4().hex[:6]}"
    partial = os.path.join(out, PARTIAL, partial_name(run_id))
    counts = {"done": 0, "failed": 0, "skipped": 0}
    rows = []

    def record(task, **result):
        row = {"run": run_id, "method": name, "task": task["task"], "image": task["image"],
               "sweep": task["sweep"], "options": task["options"],
               "fingerprint": task["fingerprint"], "outputs": [],
               "duration_s": None, "worker": None, "error": None,
               "finished": datetime.datetime.now().isoformat(timespec="seconds")}
        row.update(result)
        append_row(manifest, row)
        counts[row["status"]] += 1
        rows.append(row)

    todo = []
    for task in tasks:
        final = task["final"]
        if os.path.isdir(final):
            marker = read_marker(final)
            if marker is not None and marker.get("fingerprint") == task["fingerprint"]:
                record(task, status="skipped", outputs=_outputs(final, out))
                continue
            if marker is None:
                record(task, status="failed", error=f"InputError: {final} exists and is not a "
                       f"result of nnviz batch (it has no {MARKER}): move it away")
                _say(False, f"nnviz batch: {task['task']} failed: {rows[-1]['error']}")
                continue
        elif os.path.lexists(final):
            record(task, status="failed", error=f"InputError: {final} exists and is not a "
                   "folder: move it away")
            _say(False, f"nnviz batch: {task['task']} failed: {rows[-1]['error']}")
            continue
        todo.append(task)     # new, or its folder holds a result of other options: (re)do it
    if not todo:
        if counts["failed"]:
            _say(quiet, f"nnviz batch: {counts['failed']} failed, {counts['skipped']} skipped; "
                        f"manifest {manifest}")
        else:
            _say(quiet, f"nnviz batch: nothing to do, all {len(tasks)} tasks are in {out}")
        return dict(counts, rows=rows)

    client = cluster = None
    own_client = True
    try:
        client, cluster, own_client = _client(distributed, scheduler, workers,
                                              threads_per_worker, device, len(todo), quiet)
        _announce(client, cluster, todo, counts["skipped"], quiet)
        futures = {client.submit(run_task, method, task, partial, pure=False, retries=retries,
                                 key=f"nnviz-batch-{name}-{task['task']}-{run_id}"): task
                   for task in todo}
        _collect(distributed, futures, record, quiet, progress)
    finally:
        if client is not None and own_client:
            client.close()
        if cluster is not None:
            cluster.close()
        shutil.rmtree(partial, ignore_errors=True)
        try:
            os.rmdir(os.path.join(out, PARTIAL))   # only when nothing else is left in it
        except OSError:
            pass
    _say(quiet, f"nnviz batch: {counts['done']} done, {counts['failed']} failed, "
                f"{counts['skipped']} skipped; manifest {manifest}")
    return dict(counts, rows=rows)


# ---------------------------------------------------------------------------------------
# the subcommand
# ---------------------------------------------------------------------------------------

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
    # METHOD and everything after it: parsed in run(), so that batch options may come after
    # METHOD and the method's own options after '--'
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
        raise InputError(one_line(message))
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
    result = run(method, args.images, args.out, options=options, sweeps=args.sweep,
                       scheduler=args.scheduler, workers=args.workers,
                       threads_per_worker=args.threads_per_worker, retries=args.retries,
                       device=args.device, quiet=args.quiet)
    sys.stdout.flush()
    return 1 if result["failed"] else 0
