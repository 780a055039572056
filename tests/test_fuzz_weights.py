"""Fuzzing the weight readers (Hypothesis): random sizes, strides, offsets, dtypes and
truncations of PyTorch zip files (tests/hostile.py writes them with Python's pickler and
torch's real rebuild function), and random datasets, attributes and byte damage of HDF5 files
written by h5py. Hypothesis draws every file; all the files of a reader are then read in one
separate process (tests/fuzz_worker.py), so that a crash is caught and the file that caused it
named (its spec is kept beside it in a .json file). Properties: no reader crashes or
raises anything but nnviz's InputError, and whatever nnviz's restricted .pth reader accepts,
``torch.load(weights_only=True)`` (the oracle) accepts too, with the same arrays.

NNVIZ_FUZZ_FILES sets the number of files per reader (default 200, as in CI; the closing
note reports a run of 5000)."""
import json
import os
import subprocess
import sys

import h5py
import hostile
import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FILES = int(os.environ.get("NNVIZ_FUZZ_FILES", "200"))
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_worker.py")
SETTINGS = settings(max_examples=FILES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def make_files(folder, strategy, write, ext):
    """``FILES`` files drawn by Hypothesis (each also saved as its spec in JSON)."""
    paths = []

    @SETTINGS
    @given(spec=strategy, seed=st.integers(0, 2**32 - 1))
    def make(spec, seed):
        path = folder / f"f{len(paths)}{ext}"
        write(path, spec, numpy.random.default_rng(seed))
        (folder / f"f{len(paths)}.json").write_text(json.dumps(spec, default=repr))
        paths.append(str(path))
    make()
    return paths


def read_all(reader, paths):
    """Run the worker on ``paths``; returns its rows. Fails naming the file a crash happened on."""
    p = subprocess.run([sys.executable, WORKER, reader], input="\n".join(map(str, paths)) + "\n",
                       capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, NNVIZ_TORCH_LOADER=""))
    rows = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    if p.returncode != 0 or not rows or not rows[-1].get("done"):
        started = [r["start"] for r in rows if "start" in r]
        pytest.fail(f"the {reader} reader died (status {p.returncode}) on "
                    f"{started[-1] if started else '?'}: {p.stderr[-2000:]}")
    rows = [r for r in rows if "path" in r]
    unexpected = [r for r in rows if r.get("unexpected")]
    assert not unexpected, unexpected[:3]
    return {r["path"]: r for r in rows}


# -- PyTorch zip files -----------------------------------------------------------------------

counts = st.integers(0, 6)
tensors = st.fixed_dictionaries({
    "kind": st.sampled_from(sorted(hostile.STORAGES)),
    "numel": st.integers(0, 48),
    "offset": st.one_of(st.integers(0, 50), st.integers(0, 1 << 62)),
    "size": st.lists(st.one_of(counts, st.integers(0, 1 << 40)), min_size=0, max_size=3),
    "stride": st.lists(st.one_of(st.integers(0, 12), st.integers(0, 1 << 62)), min_size=3,
                       max_size=3),
    "short": st.integers(0, 8),                 # bytes missing from the storage's record
})
pth_files = st.fixed_dictionaries({
    "tensors": st.lists(tensors, min_size=1, max_size=4),
    "cut": st.one_of(st.none(), st.floats(0, 1)),        # truncate the whole file there
    "flip": st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=3),
})


def write_pth(path, spec, rng):
    entries = {}
    for k, t in enumerate(spec["tensors"]):
        dtype = numpy.dtype(hostile.STORAGES[t["kind"]])
        data = rng.integers(0, 256, t["numel"] * dtype.itemsize, dtype=numpy.uint8).tobytes()
        if dtype.kind == "f":                           # finite values, so digests compare
            data = rng.standard_normal(t["numel"]).astype(dtype).tobytes()
        if dtype.kind == "b":
            data = rng.integers(0, 2, t["numel"], dtype=numpy.uint8).tobytes()
        s = hostile.Storage(str(k), t["kind"], t["numel"], data[:max(0, len(data) - t["short"])])
        size = t["size"]
        entries[f"t{k}"] = hostile.Tensor(s, t["offset"], size, t["stride"][:len(size)])
    hostile.write_pth(path, entries)
    raw = bytearray(open(path, "rb").read())
    for where, value in spec["flip"]:
        raw[min(len(raw) - 1, int(where * len(raw)))] = value
    if spec["cut"] is not None:
        raw = raw[:int(spec["cut"] * len(raw))]
    open(path, "wb").write(bytes(raw))


def test_pth_readers_never_crash_and_agree(tmp_path):
    paths = make_files(tmp_path, pth_files, write_pth, ".pth")
    assert len(paths) >= FILES
    ours, oracle = read_all("restricted", paths), read_all("torch", paths)
    accepted = [p for p in paths if ours[p]["ok"]]
    for path in accepted:
        assert oracle[path]["ok"], (path, oracle[path])
        assert ours[path]["digest"] == oracle[path]["digest"], path
    assert 0 < len(accepted) < len(paths)       # the fuzz reached both outcomes


# -- HDF5 files ------------------------------------------------------------------------------

dtypes = st.sampled_from(["<f4", "<f8", "<f2", ">f4", "<i8", "|u1", "|b1", "<c8"])
datasets = st.fixed_dictionaries({
    "path": st.sampled_from(["conv1_1/weight", "conv1_1/bias", "layers/conv2d/vars/0",
                             "model_weights/block1_conv1/block1_conv1/kernel:0", "x"]),
    "shape": st.lists(st.integers(0, 5), min_size=0, max_size=4),
    "dtype": dtypes,
})
h5_files = st.fixed_dictionaries({
    "datasets": st.lists(datasets, max_size=5, unique_by=lambda d: d["path"]),
    "attrs": st.sampled_from([{}, {"arch": "vgg16", "preprocess": "caffe"},
                              {"arch": "vgg19", "preprocess": "torch"}, {"arch": "nope"},
                              {"layer_names": [b"block1_conv1"]}]),
    "cut": st.one_of(st.none(), st.floats(0, 1)),
    "flip": st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4),
})


def write_h5(path, spec, rng):
    with h5py.File(path, "w") as f:
        f.attrs.update(spec["attrs"])
        for d in spec["datasets"]:
            shape = tuple(d["shape"])
            a = rng.standard_normal(shape).astype(d["dtype"])
            try:
                f.create_dataset(d["path"], data=a)
            except (ValueError, TypeError):           # a path under an existing dataset
                pass
    raw = bytearray(open(path, "rb").read())
    for where, value in spec["flip"]:
        raw[min(len(raw) - 1, int(where * len(raw)))] = value
    if spec["cut"] is not None:
        raw = raw[:int(spec["cut"] * len(raw))]
    open(path, "wb").write(bytes(raw))


def test_hdf5_reader_never_crashes(tmp_path):
    paths = make_files(tmp_path, h5_files, write_h5, ".h5")
    rows = read_all("hdf5", paths)
    assert len(rows) == len(paths) >= FILES
