"""Bad input to every ``nnviz`` subcommand: the exit status (2 for usage errors and bad input,
1 for a failed run), one line on stderr naming what is wrong (no traceback, no usage lines:
argparse's errors too are one line naming the option and the value), nothing written to --out.
The oracle is the CLI contract in the README (exit codes, one line) and each option's range as
its ``--help`` states it."""
import hashlib
import shlex

import numpy
import pytest
from PIL import Image

from nnviz.cli import main

R = "--weights random --size 32"
LAYER = "unknown layer"

# (argv with {missing} {trunc} {text} {strpth} placeholders, exit code, words in the message,
#  parsing: True when the parser refuses it, before anything runs)
CASES = [
    ("saliency --image {missing} " + R, 2, ["missing.png", "no such file"], False),
    ("saliency --image {trunc} " + R, 2, ["trunc.png", "not a readable image"], False),
    ("saliency --image {text} " + R, 2, ["text.png", "not a readable image"], False),
    ("saliency --image sample:nope " + R, 2, ["unknown sample image", "nope"], False),
    ("saliency --target conv9_9:0 " + R, 2, [LAYER, "conv9_9"], False),
    ("saliency --target conv5_3:999 " + R, 2, ["channel 999", "out of range"], False),
    ("saliency --target conv5_3:0:50,50 " + R, 2, ["(50, 50)", "outside"], False),
    ("saliency --target 5 --size 224", 2, ["fully connected", "nnviz weights import"], False),
    ("saliency --size 8 --weights random", 2, ["--size 8", "32"], True),
    ("saliency --weights {missing_h5} --size 32", 2, ["missing.h5", "no such weight file"], False),
    ("saliency --weights {text} --size 32", 2, ["text.png", "HDF5"], False),
    ("gradcam --target 5 " + R, 2, ["--size 224"], False),
    ("gradcam --layer nope " + R, 2, ["unknown", "layer", "nope"], False),
    ("guided-gradcam --layer pool9 " + R, 2, ["unknown", "layer", "pool9"], False),
    ("deconvnet --mode bogus " + R, 2, ["--mode", "invalid choice", "bogus"], True),
    ("deconvnet --image {text} " + R, 2, ["text.png", "not a readable image"], False),
    ("guided --target relu5_3:0:99,99 " + R, 2, ["(99, 99)", "outside"], False),
    ("top-units --layer nope " + R, 2, [LAYER, "nope"], False),
    ("top-units -n 0 " + R, 2, ["-n 0", "integer in [1, 4096]"], True),
    ("smoothgrad --method bogus " + R, 2, ["--method", "invalid choice"], True),
    ("smoothgrad --samples 0 " + R, 2, ["--samples 0", "≥ 1"], True),
    ("gradxinput --target relu4_3:600 " + R, 2, ["channel 600", "out of range"], False),
    ("ig --steps 0 " + R, 2, ["--steps 0", "≥ 1"], True),
    ("ig --integration simpson " + R, 2, ["--integration", "invalid choice"], True),
    ("trace --image {missing} " + R, 2, ["missing.png", "no such file"], False),
    ("maximize conv9_1:0 " + R, 2, [LAYER, "conv9_1"], False),
    ("maximize conv5_1:9999 " + R, 2, ["channel 9999", "out of range"], False),
    ("maximize conv5_1:0:99,99 " + R, 2, ["(99, 99)", "outside"], False),
    ("maximize 5 --steps 1", 2, ["fully connected", "nnviz weights import"], False),
    ("maximize conv5_1:0 --image {trunc} " + R, 2, ["trunc.png", "not a readable image"], False),
    ("maximize conv5_1:0 --optimizer bogus " + R, 2, ["--optimizer", "invalid choice"], True),
    ("filters nope_layer --weights random", 2, [LAYER, "nope_layer"], False),
    ("filters conv4_1 --channels abc --weights random", 2, ["--channels abc", "e.g. 0-15"], True),
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
    # issue 18: every option checked at parsing with its range, one line naming option and value
    ("maximize conv5_1:0 --steps -1 " + R, 2, ["--steps -1", "≥ 1"], True),
    ("maximize conv5_1:0 --steps 2.5 " + R, 2, ["--steps 2.5", "integer"], True),
    ("maximize conv5_1:0 --lr -1 " + R, 2, ["--lr -1", "> 0"], True),
    ("maximize conv5_1:0 --lr 0 " + R, 2, ["--lr 0", "> 0"], True),
    ("maximize conv5_1:0 --lr nan " + R, 2, ["--lr nan", "finite"], True),
    ("maximize conv5_1:0 --jitter -3 " + R, 2, ["--jitter -3", "≥ 0"], True),
    ("maximize conv5_1:0 --blur-sigma nan " + R, 2, ["--blur-sigma nan", "finite"], True),
    ("maximize conv5_1:0 --blur-every 0 " + R, 2, ["--blur-every 0", "≥ 1"], True),
    ("maximize conv5_1:0 --clip-small 101 " + R, 2, ["--clip-small 101", "[0, 100]"], True),
    ("maximize conv5_1:0 --lp 0 1 " + R, 2, ["--lp", "P 0", "≥ 1"], True),
    ("maximize conv5_1:0 --tv 2 inf " + R, 2, ["--tv", "WEIGHT inf", "finite"], True),
    ("maximize conv5_1:0 --snapshot-every 0 " + R, 2, ["--snapshot-every 0", "≥ 1"], True),
    ("maximize conv5_1:0 --size 100000 --weights random", 2, ["--size 100000", "8000"], True),
    ("maximize conv5_1:0 --seed -1 " + R, 2, ["--seed -1", "0"], True),
    ("maximize conv5_1:0 --max-memory 0 " + R, 2, ["--max-memory 0", "size > 0"], True),
    ("maximize conv5_1:0 --max-memory lots " + R, 2, ["--max-memory lots"], True),
    ("filters conv4_1 --batch 0 --weights random", 2, ["--batch 0", "[1, 1024]"], True),
    ("filters conv4_1 --channels 5-2 --weights random", 2, ["--channels 5-2", "backwards"], True),
    ("filters conv4_1 --channels 1,1 --weights random", 2, ["--channels 1,1", "twice"], True),
    ("class-model -5 --weights random", 2, ["-5"], True),
    ("class-model 5 --l2 -1 --weights random", 2, ["--l2 -1", "≥ 0"], True),
    ("dream sample:chelsea --octaves 0 " + R, 2, ["--octaves 0", "[1, 32]"], True),
    ("dream sample:chelsea --octave-scale 0 " + R, 2, ["--octave-scale 0", "[1, 16]"], True),
    ("dream sample:chelsea --step-size nan " + R, 2, ["--step-size nan", "finite"], True),
    ("dream sample:chelsea --tile-size 0 " + R, 2, ["--tile-size 0", "32"], True),
    ("dream sample:chelsea --steps-per-octave -2 " + R, 2, ["--steps-per-octave -2"], True),
    ("dream sample:chelsea --octaves 8 --octave-scale 2 --steps-per-octave 1 " + R, 2,
     ["smallest octave", "fewer octaves"], False),
    ("invert sample:chelsea --alpha 0 " + R, 2, ["--alpha 0", "≥ 1"], True),
    ("invert sample:chelsea --tv-weight -1 " + R, 2, ["--tv-weight -1", "≥ 0"], True),
    ("smoothgrad --sigma inf " + R, 2, ["--sigma inf", "finite"], True),
    ("smoothgrad --sigma -0.1 " + R, 2, ["--sigma -0.1", "≥ 0"], True),
    ("saliency --size 100000 --weights random", 2, ["--size 100000", "8000"], True),
    ("saliency --out {text}/sub " + R, 2, ["--out", "text.png is a file"], True),
    ("saliency --unknown-option 3 " + R, 2, ["unrecognized arguments", "--unknown-option"], True),
    ("style sample:astronaut sample:coffee --output-size 0 " + R, 2, ["--output-size 0"], True),
    ("style sample:astronaut sample:coffee --palette 0 " + R, 2, ["--palette 0", "[2, 256]"],
     True),
    ("style sample:astronaut sample:coffee --iters -1 " + R, 2, ["--iters -1"], True),
    ("style sample:astronaut sample:coffee --style-scale 0 " + R, 2, ["--style-scale 0"], True),
    ("style sample:astronaut sample:coffee --content-weight nan " + R, 2,
     ["--content-weight nan"], True),
    ("style sample:astronaut sample:coffee --scales 8,64 " + R, 2, ["--scales 8,64"], True),
    ("style sample:astronaut sample:coffee --style-weights 1,x " + R, 2,
     ["--style-weights 1,x"], True),
    ("style sample:astronaut sample:coffee sample:chelsea --style-weights 0,0 " + R, 2,
     ["--style-weights", "> 0"], False),
    ("style sample:astronaut sample:coffee --output {text}/x.png " + R, 2,
     ["--output", "text.png is a file"], False),
    ("style {full} sample:coffee --loss-csv {full} --force " + R, 2,
     ["--loss-csv", "full.png", "input file"], False),
    ("style sample:astronaut {full} --output {full} --force " + R, 2,
     ["--output", "full.png", "input file"], False),
    ("style sample:astronaut sample:coffee --loss-csv {text} " + R, 2,
     ["--loss-csv", "text.png", "exists", "--force"], False),
    ("info --size 0", 2, ["--size 0", "[32, 8000]"], True),
    ("weights import {strpth}", 2, ["str.pth", "holds a str"], False),
    ("weights import {text} --out {text}/w.h5", 2, ["--out", "text.png is a file"], False),
    ("batch saliency --images {text} --out {text}/sub", 2, ["--out", "text.png is a file"], False),
    ("nosuchcommand", 2, ["COMMAND nosuchcommand", "invalid choice"], True),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    (d / "text.png").write_text("hello, I am not a picture\n")
    rng = numpy.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=numpy.uint8)).save(d / "full.png")
    data = (d / "full.png").read_bytes()
    (d / "trunc.png").write_bytes(data[: len(data) // 2])
    torch = pytest.importorskip("torch")
    torch.save("a string, not a state dict", d / "str.pth")
    return dict(missing=d / "missing.png", trunc=d / "trunc.png", text=d / "text.png",
                missing_h5=d / "missing.h5", missing_dir=d / "missing_dir", strpth=d / "str.pth",
                full=d / "full.png")


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


def _hashes(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("cmd,code,words,parsing", CASES, ids=[c[0].split(" --weights")[0]
                                                               for c in CASES])
def test_bad_input(cmd, code, words, parsing, files, tmp_path, capsys, monkeypatch):
    """Exit status, ONE line ``nnviz COMMAND: error: ...`` with the words (the option and the
    value), no traceback, nothing written to --out, the input files unchanged (hashes); a
    refusal at parsing happens before any command runs."""
    out = tmp_path / "out"
    argv = shlex.split(cmd.format(**{k: str(v) for k, v in files.items()}))
    if argv[0] not in ("info", "weights", "nosuchcommand") and "--out" not in argv:
        argv += ["--out", str(out)]
    if argv[:2] == ["weights", "import"] and "--out" not in argv:
        argv += ["--out", str(out / "w.h5")]
    before = _hashes(files["text"].parent)
    if parsing:                           # nothing may run: every command function fails
        from nnviz.cli import common
        monkeypatch.setattr(common, "run_command", lambda args: pytest.fail("ran"))
    rc, lines = _run(argv, capsys)
    assert rc == code, (argv, rc, lines)
    assert not any("Traceback" in ln or ln.startswith("usage:") for ln in lines), lines
    assert len(lines) == 1, lines
    prog = "nnviz" if argv[0] == "nosuchcommand" else f"nnviz {argv[0]}"
    assert lines[0].startswith(f"{prog}: error: ") or \
        lines[0].startswith(f"nnviz {' '.join(argv[:2])}: error: "), lines
    assert "[Errno" not in lines[0], lines
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])
    assert not out.exists() or not any(out.rglob("*")), list(out.rglob("*"))
    assert _hashes(files["text"].parent) == before


def test_demo_refuses_a_nonempty_folder(tmp_path, capsys):
    """nnviz demo into a folder with other files, without --force: exit 2, the folder untouched."""
    (tmp_path / "keep.txt").write_text("mine")
    rc, lines = _run(["demo", "--quick", "--out", str(tmp_path)], capsys)
    assert rc == 2 and len(lines) == 1 and "--force" in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
