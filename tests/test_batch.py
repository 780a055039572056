"""``nnviz batch`` on a real ``dask.distributed`` LocalCluster (2 worker processes, loopback).

The oracle is nnviz itself run the ordinary way: each batch output must be pixel-identical to
``nnviz.cli.main(["saliency", "--image", IMAGE, ...])`` run image by image in this process
(with one BLAS thread, as Dask's workers run: OMP/OPENBLAS_NUM_THREADS=1). The rest checks the
batch machinery against the file system and the manifest: re-runs that do nothing, a corrupt
image failing alone, a worker process killed mid-run, sweeps, usage errors, and that nnviz
runs without Dask.
"""
import json
import os
import subprocess
import sys

import numpy
import pytest
from PIL import Image

distributed = pytest.importorskip("distributed")

from nnviz import cli, jobs  # noqa: E402
from nnviz.cli import batch  # noqa: E402
from nnviz.errors import InputError  # noqa: E402

SALIENCY = ["--weights", "random", "--size", "32"]     # the random VGG16, 32 px: fast


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as c:
        with distributed.Client(c) as client:
            yield c, client


def make_images(folder, n=4, seed=0):
    """Small noise images of several sizes and modes (RGB, grayscale, RGBA), as PNG files."""
    os.makedirs(folder, exist_ok=True)
    rng = numpy.random.default_rng(seed)
    paths = []
    for i in range(n):
        h, w = 32 + 4 * (i % 5), 48 - 3 * (i % 4)
        img = rng.integers(0, 256, (h, w, 3), dtype=numpy.uint8)
        im = Image.fromarray(img)
        im = im.convert(("RGB", "L", "RGBA")[i % 3])
        paths.append(os.path.join(folder, f"img{i}.png"))
        im.save(paths[-1])
    return paths


def pixels(path):
    with Image.open(path) as im:
        return numpy.asarray(im).copy()


def tree(folder):
    """Relative path -> mtime_ns of every file under ``folder``."""
    return {os.path.relpath(os.path.join(d, f), folder): os.stat(os.path.join(d, f)).st_mtime_ns
            for d, _, files in os.walk(folder) for f in files}


def test_folder_equals_one_by_one(tmp_path, cluster):
    """Every task's PNGs equal (pixel for pixel) the same subcommand run by nnviz.cli.main on
    that image alone; one manifest row per task; one net built per worker, not per task."""
    from threadpoolctl import threadpool_limits
    c, client = cluster
    paths = make_images(tmp_path / "images", n=6)
    client.run(jobs.net_cache_clear)
    out = tmp_path / "out"
    result = batch.run("saliency", tmp_path / "images", out, options=SALIENCY,
                       scheduler=c.scheduler_address, quiet=True)
    assert (result["done"], result["failed"], result["skipped"]) == (6, 0, 0)
    rows = jobs.read_manifest(out)
    assert sorted(r["task"] for r in rows) == [f"img{i}" for i in range(6)]
    assert all(r["status"] == "done" and r["error"] is None for r in rows)
    assert not (out / jobs.PARTIAL).exists()
    with threadpool_limits(1):
        for path in paths:
            stem = os.path.splitext(os.path.basename(path))[0]
            ref = tmp_path / "ref" / stem
            assert cli.main(["saliency", "--image", path, *SALIENCY, "--out", str(ref),
                             "--quiet"]) == 0
            row = next(r for r in rows if r["task"] == stem)
            assert row["image"] == path
            assert sorted(os.listdir(out / stem)) == sorted(os.listdir(ref) + [jobs.MARKER])
            assert row["outputs"] == [f"{stem}/{f}" for f in sorted(os.listdir(ref))]
            for f in os.listdir(ref):
                a, b = pixels(out / stem / f), pixels(ref / f)
                assert a.shape == b.shape and numpy.array_equal(a, b), f
    # the net is built once per worker process (6 tasks, 2 workers)
    info = client.run(jobs.net_cache_info)
    used = {r["worker"] for r in rows}
    for address, stats in info.items():
        assert stats["builds"] == (1 if address in used else 0), (address, stats)


def test_rerun_does_nothing(tmp_path, cluster):
    """The same command again runs no task: every task 'skipped', no file rewritten, and no
    scheduler contacted (the second run points at an address where nothing listens)."""
    c, _ = cluster
    make_images(tmp_path / "images", n=3)
    argv = ["batch", "saliency", "--images", str(tmp_path / "images"), "--out",
            str(tmp_path / "out"), "--quiet", "--", *SALIENCY]
    assert cli.main(argv[:4] + ["--scheduler", c.scheduler_address] + argv[4:]) == 0
    before = tree(tmp_path / "out")
    rows_before = jobs.read_manifest(tmp_path / "out")
    assert [r["status"] for r in rows_before] == ["done"] * 3
    assert cli.main(argv[:4] + ["--scheduler", "tcp://127.0.0.1:9"] + argv[4:]) == 0
    after = tree(tmp_path / "out")
    assert {k: v for k, v in after.items() if k != jobs.MANIFEST} == \
        {k: v for k, v in before.items() if k != jobs.MANIFEST}
    rows = jobs.read_manifest(tmp_path / "out")[3:]
    assert sorted((r["task"], r["status"]) for r in rows) == \
        [(f"img{i}", "skipped") for i in range(3)]


def test_corrupt_image_fails_alone(tmp_path, cluster, capsys):
    """A corrupt and a truncated image fail their own tasks with the reader's message in the
    manifest (exit code 1); the other images finish; no folder is left for the failures."""
    c, _ = cluster
    make_images(tmp_path / "images", n=2)
    (tmp_path / "images" / "corrupt.png").write_bytes(b"this is not a PNG file")
    good = (tmp_path / "images" / "img0.png").read_bytes()
    (tmp_path / "images" / "truncated.png").write_bytes(good[:len(good) // 2])
    out = tmp_path / "out"
    rc = cli.main(["batch", "saliency", "--images", str(tmp_path / "images"), "--out",
                   str(out), "--scheduler", c.scheduler_address, "--quiet", "--", *SALIENCY])
    assert rc == 1
    rows = {r["task"]: r for r in jobs.read_manifest(out)}
    assert sorted(rows) == ["corrupt", "img0", "img1", "truncated"]
    for bad in ("corrupt", "truncated"):
        assert rows[bad]["status"] == "failed"
        assert "InputError" in rows[bad]["error"] and f"{bad}.png" in rows[bad]["error"]
        assert not (out / bad).exists()
    assert rows["img0"]["status"] == rows["img1"]["status"] == "done"
    assert "corrupt failed" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["img0", "img1", jobs.MANIFEST]


# --- a method that kills its own worker process on its first attempt at one image ---------

def saliency_parser():
    return batch.method_parser("saliency")[0]


def saliency_or_die(args):
    """The saliency command, except that the first attempt at img1 kills its worker process
    (a marker file beside the image remembers the attempt)."""
    from nnviz.cli.attribution import run_saliency
    marker = args.image[0] + ".attempted"
    if os.path.basename(args.image[0]) == "img1.png" and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return run_saliency(args)


def test_worker_killed_mid_run(tmp_path, cluster):
    """A worker process dies holding a task: its nanny restarts it, the scheduler reruns the
    task, and every task is in the manifest exactly once, done, with its outputs."""
    c, client = cluster
    make_images(tmp_path / "images", n=4)
    pids = set(client.run(os.getpid).values())
    out = tmp_path / "out"
    result = batch.run((saliency_parser, saliency_or_die), tmp_path / "images", out,
                       options=SALIENCY, scheduler=c.scheduler_address, quiet=True)
    assert (tmp_path / "images" / "img1.png.attempted").exists()       # it did die
    client.wait_for_workers(2, timeout=60)
    assert set(client.run(os.getpid).values()) != pids                 # a new process
    assert (result["done"], result["failed"]) == (4, 0)
    rows = jobs.read_manifest(out)
    assert sorted(r["task"] for r in rows) == [f"img{i}" for i in range(4)]
    assert all(r["status"] == "done" for r in rows)
    for r in rows:
        assert [f"{r['task']}/{f}" for f in sorted(os.listdir(out / r["task"]))
                if f != jobs.MARKER] == r["outputs"]
    assert not (out / jobs.PARTIAL).exists()


def test_sweep(tmp_path, cluster):
    """--sweep size=32,48 runs one task per value, each with --size VALUE (the PNGs have
    that size) in its own folder IMAGE__size=VALUE."""
    c, _ = cluster
    make_images(tmp_path / "images", n=1)
    out = tmp_path / "out"
    rc = cli.main(["batch", "saliency", "--images", str(tmp_path / "images" / "*.png"),
                   "--out", str(out), "--scheduler", c.scheduler_address, "--quiet",
                   "--sweep", "size=32,48", "--", "--weights", "random"])
    assert rc == 0
    rows = {r["task"]: r for r in jobs.read_manifest(out)}
    assert sorted(rows) == ["img0__size=32", "img0__size=48"]
    for size in (32, 48):
        row = rows[f"img0__size={size}"]
        assert row["sweep"] == {"size": str(size)}
        (png,) = row["outputs"]
        assert pixels(out / png).shape[:2] == (size, size)


@pytest.mark.parametrize("argv, message", [
    (["nosuch", "--images", "IMAGES", "--out", "OUT"], "unknown method"),
    (["saliency", "--images", "IMAGES", "--out", "OUT", "--sweep", "sigma=1"], "no option --sigma"),
    (["saliency", "--images", "IMAGES", "--out", "OUT", "--sweep", "size"], "NAME=VALUE1"),
    (["saliency", "--images", "IMAGES", "--out", "OUT", "--", "--size", "abc"], "--size abc"),
    (["saliency", "--images", "IMAGES", "--out", "OUT", "--", "--out", "x"], "--out"),
    (["saliency", "--images", "NOWHERE", "--out", "OUT"], "no such folder"),
    (["saliency", "--out", "OUT"], "--images is required"),
    (["saliency", "--images", "IMAGES", "--out", "OUT", "--workers", "0"], "--workers 0"),
    (["saliency", "--images", "IMAGES", "--out", "OUT", "--retries", "-1"], "--retries -1"),
])
def test_usage_errors(tmp_path, capsys, argv, message):
    """Usage errors exit with code 2 and one line naming the problem, before any cluster
    starts (no --scheduler is given, and no worker could be reached in the time)."""
    make_images(tmp_path / "images", n=1)
    subst = {"IMAGES": str(tmp_path / "images"), "OUT": str(tmp_path / "out"),
             "NOWHERE": str(tmp_path / "nowhere")}
    assert cli.main(["batch"] + [subst.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("nnviz batch: error:")
    assert not (tmp_path / "out").exists()


def test_same_stems_get_distinct_folders(tmp_path):
    """a.png and a.jpg go to folders a-png and a-jpg; the same name in two folders gets a
    short hash of its path (issue 18: every image has its own folder)."""
    assert jobs.folder_names(["/x/a.png", "/x/a.jpg", "/x/b.png"]) == ["a-png", "a-jpg", "b"]
    names = jobs.folder_names(["/x/a.png", "/y/a.png"])
    assert len(set(names)) == 2 and all(n.startswith("a-png__") for n in names)
    with pytest.raises(InputError, match="same folder"):
        jobs.folder_names(["/x/a.png", "/x/a.png"])


def test_without_dask(tmp_path):
    """nnviz works without Dask (only batch needs it), and batch then says how to get it."""
    make_images(tmp_path / "images", n=1)
    code = ("import sys; sys.modules['dask'] = None; sys.modules['distributed'] = None\n"
            "from nnviz import cli\n"
            "assert cli.build_parser() is not None\n"
            f"sys.exit(cli.main(['batch', 'saliency', '--images', {str(tmp_path / 'images')!r},"
            f" '--out', {str(tmp_path / 'out')!r}]))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1, p.stderr
    assert "pip install nnviz[batch]" in p.stderr
    p = subprocess.run([sys.executable, "-c", "import sys; from nnviz import cli; from nnviz.cli import batch; "
                        "cli.build_parser(); print('dask' in sys.modules)"],
                       capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "False", p.stderr


def test_gpu_worker_spec():
    """One worker process per GPU, each seeing only its own device (checked in the worker
    processes themselves, on CPU: only the environment is at stake)."""
    spec = jobs.gpu_worker_spec(2)
    with distributed.SpecCluster(workers=spec, scheduler={
            "cls": distributed.Scheduler, "options": {"dashboard_address": ":0"}}) as c, \
            distributed.Client(c) as client:
        client.wait_for_workers(2, timeout=60)
        seen = client.run(lambda: (os.environ["CUDA_VISIBLE_DEVICES"],
                                   os.environ["NNVIZ_DEVICE"]))
    assert sorted(seen.values()) == [("0", "gpu"), ("1", "gpu")]


def test_manifest_rows_are_single_lines(tmp_path):
    """append_row writes whole JSON lines that read back as written."""
    path = tmp_path / "m.jsonl"
    rows = [{"task": "a", "error": "line\nbreak"}, {"task": "b", "outputs": ["x/ü.png"]}]
    for r in rows:
        jobs.append_row(path, r)
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and [json.loads(line) for line in lines] == rows
