"""The batch runner: one command over many images, in parallel, on Dask (what ``nnviz batch``
calls).

A *task* is one image (times one combination of the ``--sweep`` values). The caller gives the
method twice: its argparse parser, with which every task's arguments are checked before
anything runs (the method's options, the image as its ``--image`` option, else its first
positional, ``--force``), and a *command*, a picklable callable that a worker process runs
for each task, ``command(argv, folder) -> exit code``, with ``name`` (the manifest's method)
and ``prog`` (its name in messages). This module knows no subcommand: the command line passes
them in (:mod:`nnviz.cli.batch`).

A task runs into a temporary folder ``OUT/.partial/RUN@HOST.PID/...``, renamed to ``OUT/TASK``
when it succeeds, so a folder ``OUT/TASK`` always holds a complete result. A task's identity
is its image and its options: a fingerprint of both is in the manifest and in
``OUT/TASK/.nnviz-task.json``; a re-run skips the tasks whose folder holds a result of the same
fingerprint and redoes (replaces) those whose options changed. A lock
(``OUT/.nnviz-batch.lock``) keeps a second run out of the same ``OUT``; ``.partial`` folders of
clients that are gone (killed) are removed by the next run. Every image maps to its own valid
folder name (never ``OUT`` itself, ``.``, ``..`` or the manifest's name).

Images travel as paths and results as files (workers need the same file system as the
client: one machine, or a shared disk). Each worker process keeps what its commands cache
between tasks (the command line's nets: :func:`worker_cache`), an attribute of the Dask
worker, instead of building it once per task.

The client appends one JSON line per task to ``OUT/manifest.jsonl`` as tasks finish:
``{"run", "task", "image", "sweep", "options", "fingerprint", "status", "outputs",
"duration_s", "worker", "error", "finished"}`` with status ``done``, ``failed`` or ``skipped``
(its folder held the same task's result before the run started: nothing ran), and ``replaced``
(the fingerprint of a result of other options that this one replaced). Failures:

- bad user input (:class:`~nnviz.errors.InputError`: a corrupt image, a bad option value)
  fails its own task at once, with ``InputError: message`` in the manifest; the other tasks
  go on;
- any other exception is retried ``retries`` times (Dask's ``retries``), then recorded failed;
- a worker process that dies is restarted by its nanny, and the scheduler gives its tasks to
  another worker (up to ``distributed.scheduler.allowed-failures`` deaths per task, 3 by
  default; then the task is recorded failed with ``KilledWorker``).

Dask is imported inside functions only: the rest of nnviz never needs it.
"""
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

from . import backend, io
from .errors import BadFile, BadOption, InputError
from .progress import Progress

MANIFEST = "manifest.jsonl"
PARTIAL = ".partial"
MARKER = ".nnviz-task.json"       # in each task's folder: its fingerprint, method and options
LOCK = ".nnviz-batch.lock"        # held (flock) by the run writing OUT
NEEDS_DASK = "nnviz batch needs Dask: pip install nnviz[batch]"
MAX_NAME = 100                    # longer folder names are cut (a hash of the path added)
CACHE = "nnviz_nets"              # the attribute of a Dask worker that holds its cache


def slug(text):
    """``text`` reduced to a safe file-name part (letters, digits, ``_.=+-``; never ``.`` or
    ``..``, never starting with a dot)."""
    s = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", str(text)).strip("_").lstrip(".")
    return s or "_"


# ---------------------------------------------------------------------------------------
# the tasks: images × sweeps, each a folder name, an argv and a fingerprint
# ---------------------------------------------------------------------------------------

def _flags(parser):
    return parser._option_string_actions


def option_string(parser, name):
    """The option of ``parser`` that a sweep name means: ``style_weight`` -> ``--style-weight``."""
    flag = name if name.startswith("-") else "--" + name.replace("_", "-")
    if flag not in _flags(parser):
        options = sorted(f for f in _flags(parser) if f.startswith("--") and f != "--help")
        raise BadOption(f"--sweep {name}: {parser.prog} has no option {flag} "
                        f"(its options: {' '.join(options)})")
    return flag


def parse_sweep(text):
    """``"style_weight=1e2,1e3"`` -> ``("style_weight", ["1e2", "1e3"])``."""
    name, eq, values = text.partition("=")
    values = [v.strip() for v in values.split(",")]
    if not eq or not name.strip() or not all(values):
        raise BadOption(f"--sweep {text!r}: expected NAME=VALUE1,VALUE2,... "
                        "(e.g. style_weight=1e2,1e3)")
    return name.strip().lstrip("-").replace("-", "_"), values


def find_images(specs):
    """Absolute paths of the images named by folders (their files of
    :data:`nnviz.io.IMAGE_EXTENSIONS`), globs, files or ``sample:NAME``."""
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    found = []
    for spec in specs:
        spec, before = os.fspath(spec), len(found)
        if spec.startswith("sample:"):
            found.append(spec)
        elif os.path.isdir(spec):
            found += io.list_images(spec)
        elif os.path.isfile(spec):
            found.append(spec)
        else:
            matches = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
            if not matches:
                raise BadFile(f"--images {spec}: no such folder or file, and no file "
                              "matches it as a pattern")
            found += matches
        if len(found) == before:
            raise BadFile(f"--images {spec}: no images there ({', '.join(io.IMAGE_EXTENSIONS)})")
    paths = [p if p.startswith("sample:") else os.path.abspath(p) for p in found]
    return list(dict.fromkeys(paths))


def _hash(text, n=8):
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:n]


def folder_names(paths):
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
        raise BadFile(f"images {clash[0]} and {clash[1]} would write to the same folder "
                      f"{dup[0]!r}: rename one")
    return names


def fingerprint(name, argv):
    """A task's identity: its method and its arguments (options, sweep values, the image)."""
    return _hash(json.dumps({"method": name, "argv": list(argv)}, sort_keys=True), 16)


def make_tasks(parser, images, out, options=(), sweeps=()):
    """One task dict per image × sweep combination; each is parsed once here with the
    method's ``parser`` (whose errors raise :class:`InputError`), so that a bad option value
    is a usage error before anything runs."""
    flags = _flags(parser)
    if "--out" not in flags:
        raise BadOption(f"{parser.prog} writes no files (it has no --out option)")
    options = list(options)
    for bad in ("--out", "--image", "--force"):
        if any(o == bad or o.startswith(bad + "=") for o in options):
            raise BadOption(f"method option {bad}: nnviz batch sets it for each task")
    sweeps = [parse_sweep(s) if isinstance(s, str) else tuple(s) for s in sweeps]
    sweep_flags = [option_string(parser, name) for name, _ in sweeps]
    tasks = []
    for path, stem in zip(images, folder_names(images)):
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
# in the worker: one cache per worker process, one task
# ---------------------------------------------------------------------------------------

def worker_cache(make):
    """What the Dask worker running this task keeps between its tasks (``make()`` on its
    first task, e.g. a :class:`~nnviz.cli.common.NetCache`; the worker owns it), or None
    outside a worker."""
    try:
        from distributed import get_worker
        worker = get_worker()
    except Exception:   # not in a Dask worker (a direct call)
        return None
    if getattr(worker, CACHE, None) is None:
        setattr(worker, CACHE, make())
    return getattr(worker, CACHE)


def net_cache_info(dask_worker=None):
    """``{"builds": nets built by this worker, "cached": nets kept, "pid"}`` of the worker's
    cache (for tests and benches: ``client.run(net_cache_info)``)."""
    nets = getattr(dask_worker, CACHE, None)
    return {"builds": nets.builds if nets else 0, "cached": len(nets.nets) if nets else 0,
            "pid": os.getpid()}


def net_cache_clear(dask_worker=None):
    """Drop the worker's cache (``client.run(net_cache_clear)``)."""
    if dask_worker is not None:
        setattr(dask_worker, CACHE, None)


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
        raise BadFile(f"{final} exists and is not a result of nnviz batch (it has no "
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


def run_task(command, task, partial):
    """Run one task in this process: ``command`` into a temporary folder under ``partial``,
    renamed to ``task["final"]``. Returns the manifest row's result fields. Bad input (an
    :class:`InputError`: the same input fails again) is returned as a failure, not retried;
    other exceptions propagate (Dask retries them)."""
    start = time.perf_counter()
    os.makedirs(partial, exist_ok=True)
    tmp = os.path.join(partial, f"{task['task']}.{uuid.uuid4().hex[:8]}")
    result = {"status": "done", "outputs": [], "error": None, "worker": _worker_address()}
    try:
        os.makedirs(tmp)
        code = command(task["argv"], tmp)
        if code not in (0, None):
            raise InputError(f"{command.prog} exited with code {code}")
        final = task["final"]
        _write_marker(tmp, task)
        replaced = _install(tmp, final, task, partial)
        if replaced:
            result["replaced"] = replaced
        result["outputs"] = _outputs(final, os.path.dirname(final))
    except InputError as e:
        result.update(status="failed", error=f"InputError: {e}")
    except SystemExit as e:
        result.update(status="failed", error=f"{command.prog} exited with code {e.code}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["duration_s"] = round(time.perf_counter() - start, 4)
    return result


# ---------------------------------------------------------------------------------------
# the client: manifest, lock, cluster, submission
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
    """Record each task as it finishes (a failure printed even with --quiet); the progress
    in tasks (``progress=None``: on a terminal, unless ``quiet``)."""
    bar = Progress(len(futures), "batch", False if quiet and progress is None else progress,
                   unit="task")
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
            if bar.on:
                bar.write(msg)
            else:
                _say(False, msg)
        bar.update(1)
        bar.set_postfix(failed=failed, refresh=False)
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


def run(command, parser, images, out, *, options=(), sweeps=(), scheduler=None, workers=None,
        threads_per_worker=1, retries=2, device=None, quiet=False, progress=None):
    """Run ``command`` on every image (× every sweep combination) and write ``out``.

    ``command``: what a worker runs per task (see the module's docstring); ``parser``: the
    method's argparse parser, whose ``error`` raises :class:`InputError`; ``images``:
    folders, globs, files (see :func:`find_images`); ``options``: the method's own options
    (argv strings); ``sweeps``: ``"name=v1,v2"`` strings; ``scheduler``: an address (or a
    ``distributed.Client``) to use instead of a new local cluster.

    Returns ``{"done": n, "failed": n, "skipped": n, "rows": [manifest rows of this run]}``."""
    out = os.path.abspath(os.fspath(out))
    tasks = make_tasks(parser, find_images(images), out, options, sweeps)
    try:
        import distributed
    except ImportError:
        raise RuntimeError(NEEDS_DASK) from None
    os.makedirs(out, exist_ok=True)
    with out_lock(out):
        return _run_locked(command, tasks, out, distributed, scheduler, workers,
                           threads_per_worker, retries, device, quiet, progress)


def _todo(tasks, out, record):
    """The tasks to run: new ones, and those whose folder holds a result of other options.
    A task whose folder holds its result is recorded skipped; one whose folder is not a
    result of nnviz batch, failed."""
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
                continue
        elif os.path.lexists(final):
            record(task, status="failed", error=f"InputError: {final} exists and is not a "
                   "folder: move it away")
            continue
        todo.append(task)
    return todo


def _run_locked(command, tasks, out, distributed, scheduler, workers, threads_per_worker,
                retries, device, quiet, progress):
    clean_stale_partials(out)
    manifest = os.path.join(out, MANIFEST)
    run_id = datetime.datetime.now().strftime("%Y%m%dT%H%M%S") + f"-{uuid.uuid4().hex[:6]}"
    partial = os.path.join(out, PARTIAL, partial_name(run_id))
    counts = {"done": 0, "failed": 0, "skipped": 0}
    rows = []

    def record(task, **result):
        row = {"run": run_id, "method": command.name, "task": task["task"],
               "image": task["image"], "sweep": task["sweep"], "options": task["options"],
               "fingerprint": task["fingerprint"], "outputs": [],
               "duration_s": None, "worker": None, "error": None,
               "finished": datetime.datetime.now().isoformat(timespec="seconds")}
        row.update(result)
        append_row(manifest, row)
        counts[row["status"]] += 1
        rows.append(row)

    def record_before(task, **result):     # before the run: a failure is printed at once
        record(task, **result)
        if result["status"] == "failed":
            _say(False, f"nnviz batch: {task['task']} failed: {result['error']}")

    todo = _todo(tasks, out, record_before)
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
        futures = {client.submit(run_task, command, task, partial, pure=False, retries=retries,
                                 key=f"nnviz-batch-{command.name}-{task['task']}-{run_id}"): task
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
