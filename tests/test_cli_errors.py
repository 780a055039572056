"""Bad input to every ``nnviz`` subcommand: the exit status (2 for usage errors and bad input,
1 for a failed run), one line on stderr naming what is wrong (no traceback), nothing written
to --out. The oracle is the CLI contract in nnviz/cli.py (and argparse's for option values)."""
import shlex

import numpy
import pytest
from PIL import Image

from nnviz.cli import main

R = "--weights random --size 32"
LAYER = "unknown layer"

# (argv with {missing} {trunc} {text} {out} placeholders, exit code, words in the message,
#  argparse: True when argparse reports it, which prints its usage lines before the error line)
CASES = [
    ("saliency --image {missing} " + R, 2, ["missing.png", "no such file"], False),
    ("saliency --image {trunc} " + R, 2, ["trunc.png", "not a readable image"], False),
    ("saliency --image {text} " + R, 2, ["text.png", "not a readable image"], False),
    ("saliency --image sample:nope " + R, 2, ["unknown sample image", "nope"], False),
    ("saliency --target conv9_9:0 " + R, 2, [LAYER, "conv9_9"], False),
    ("saliency --target conv5_3:999 " + R, 2, ["channel 999", "out of range"], False),
    ("saliency --target conv5_3:0:50,50 " + R, 2, ["(50, 50)", "outside"], False),
    ("saliency --target 5 --size 224", 2, ["fully connected", "nnviz weights import"], False),
    ("saliency --size 8 --weights random", 2, ["--size 8", "32"], False),
    ("saliency --weights {missing_h5} --size 32", 2, ["missing.h5", "no such weight file"], False),
    ("saliency --weights {text} --size 32", 2, ["text.png", "HDF5"], False),
    ("gradcam --target 5 " + R, 2, ["--size 224"], False),
    ("gradcam --layer nope " + R, 2, ["unknown", "layer", "nope"], False),
    ("guided-gradcam --layer pool9 " + R, 2, ["unknown", "layer", "pool9"], False),
    ("deconvnet --mode bogus " + R, 2, ["--mode", "invalid choice", "bogus"], True),
    ("deconvnet --image {text} " + R, 2, ["text.png", "not a readable image"], False),
    ("guided --target relu5_3:0:99,99 " + R, 2, ["(99, 99)", "outside"], False),
    ("top-units --layer nope " + R, 2, [LAYER, "nope"], False),
    ("top-units -n 0 " + R, 2, ["n=0"], False),
    ("smoothgrad --method bogus " + R, 2, ["--method", "invalid choice"], True),
    ("smoothgrad --samples 0 " + R, 2, ["n >= 1", "0"], False),
    ("gradxinput --target relu4_3:600 " + R, 2, ["channel 600", "out of range"], False),
    ("ig --steps 0 " + R, 2, ["steps", "0"], False),
    ("ig --integration simpson " + R, 2, ["--integration", "invalid choice"], True),
    ("trace --image {missing} " + R, 2, ["missing.png", "no such file"], False),
    ("maximize conv9_1:0 " + R, 2, [LAYER, "conv9_1"], False),
    ("maximize conv5_1:9999 " + R, 2, ["channel 9999", "out of range"], False),
    ("maximize conv5_1:0:99,99 " + R, 2, ["(99, 99)", "outside"], False),
    ("maximize 5 --steps 1", 2, ["fully connected", "nnviz weights import"], False),
    ("maximize conv5_1:0 --image {trunc} " + R, 2, ["trunc.png", "not a readable image"], False),
    ("maximize conv5_1:0 --optimizer bogus " + R, 2, ["--optimizer", "invalid choice"], True),
    ("filters nope_layer --weights random", 2, [LAYER, "nope_layer"], False),
    ("filters conv4_1 --channels abc --weights random", 2, ["--channels", "abc"], False),
    ("filters conv4_1 --channels 600-601 --size 32 --steps 1 --weights random", 2,
     ["600", "out of range"], False),
    ("class-model 5 --steps 1", 2, ["fully connected", "nnviz weights import"], False),
    ("dream {missing} --weights random", 2, ["missing.png", "no such file"], False),
    ("dream {trunc} --weights random", 2, ["trunc.png", "not a readable image"], False),
    ("dream sample:chelsea --layers nope --weights random --size 32", 2, [LAYER, "nope"], False),
    ("invert {text} --weights random", 2, ["text.png", "not a readable image"], False),
    ("invert sample:chelsea --layer nope --weights random --size 32", 2, [LAYER, "nope"], False),
    ("style {missing} sample:coffee " + R, 2, ["missing.png", "no such file"], False),
    ("style sample:astronaut {text} " + R, 2, ["text.png", "not a readable image"], False),
    ("style sample:astronaut {trunc} " + R, 2, ["trunc.png", "not a readable image"], False),
    ("style sample:astronaut sample:coffee --style-layers nope --iters 1 " + R, 2,
     [LAYER, "nope"], False),
    ("style sample:astronaut sample:coffee --pooling bogus " + R, 2, ["--pooling", "bogus"], True),
    ("style sample:astronaut " + R, 2, ["needs at least one STYLE image"], False),
    ("info --arch vgg11", 2, ["--arch", "vgg11"], True),
    ("info --weights {missing_h5}", 2, ["missing.h5", "no such weight file"], False),
    ("weights import {missing_h5}", 2, ["missing.h5", "no such weight file"], False),
    ("weights import {text}", 2, ["text.png", "not a weight file"], False),
    ("batch saliency --images {missing_dir}", 2, ["missing_dir", "no such folder"], False),
    ("demo --device tpu", 2, ["--device", "invalid choice", "tpu"], True),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    (d / "text.png").write_text("hello, I am not a picture\n")
    rng = numpy.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=numpy.uint8)).save(d / "full.png")
    data = (d / "full.png").read_bytes()
    (d / "trunc.png").write_bytes(data[: len(data) // 2])
    return dict(missing=d / "missing.png", trunc=d / "trunc.png", text=d / "text.png",
                missing_h5=d / "missing.h5", missing_dir=d / "missing_dir")


def _run(argv, capsys):
    """main(argv) in-process: (exit status, stderr lines). An exception escaping main is
    what a user would see as a traceback: the test fails on it."""
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err
    return rc, [ln for ln in err.splitlines() if ln.strip()]


@pytest.mark.parametrize("cmd,code,words,by_argparse", CASES, ids=[c[0].split(" --weights")[0]
                                                                   for c in CASES])
def test_bad_input(cmd, code, words, by_argparse, files, tmp_path, capsys):
    out = tmp_path / "out"
    argv = shlex.split(cmd.format(**{k: str(v) for k, v in files.items()}))
    if argv[0] not in ("info", "weights") and "--out" not in argv:
        argv += ["--out", str(out)]
    if argv[:2] == ["weights", "import"]:
        argv += ["--out", str(out / "w.h5")]
    rc, lines = _run(argv, capsys)
    assert rc == code, (argv, rc, lines)
    assert not any("Traceback" in ln for ln in lines), lines
    if by_argparse:                       # argparse: usage lines, then one error line
        assert lines and lines[0].startswith("usage:"), lines
        lines = lines[-1:]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"nnviz {argv[0]}: error: "), lines
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])
    assert not out.exists() or not any(out.rglob("*")), list(out.rglob("*"))


def test_demo_refuses_a_nonempty_folder(tmp_path, capsys):
    """nnviz demo into a folder with other files, without --force: exit 2, the folder untouched."""
    (tmp_path / "keep.txt").write_text("mine")
    rc, lines = _run(["demo", "--quick", "--out", str(tmp_path)], capsys)
    assert rc == 2 and len(lines) == 1 and "--force" in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
