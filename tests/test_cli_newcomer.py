"""Issue 19 (a newcomer's first hour), items 4 and 7: other spellings of the subcommands reach
them, typos get a "did you mean", ``nnviz info`` cuts no column, and long runs report their
progress on stderr when it is not a terminal.

Oracles: argparse's own parse (which function a command line reaches), the net's layers
(what ``info`` must print in full), the file system (what a run wrote), and the wall clock
(progress lines with their step counts, in order)."""
import re
import sys

import pytest
from conftest import run_nnviz

from nnviz.cli import build_parser, common, parsers

R = ["--weights", "random"]


run = run_nnviz     # (exit status, stdout, stderr lines)


# ---------------------------------------------------------------------------------------------
# 7. aliases and "did you mean"
# ---------------------------------------------------------------------------------------------

ALIASES = [("guided_backprop", "guided"), ("guided-backprop", "guided"),
           ("Guided-Backpropagation", "guided"), ("gradient-x-input", "gradxinput"),
           ("gradient_x_input", "gradxinput"), ("integrated-gradients", "ig"),
           ("integrated_gradients", "ig"), ("grad-cam", "gradcam"), ("Grad-CAM", "gradcam"),
           ("guided-grad-cam", "guided-gradcam"), ("guided_gradcam", "guided-gradcam"),
           ("smooth-grad", "smoothgrad"), ("top_units", "top-units"), ("deep-dream", "dream"),
           ("class_model", "class-model"), ("style-transfer", "style")]


@pytest.mark.parametrize("spelled,command", ALIASES)
def test_other_spellings_reach_the_command(spelled, command):
    """Each spelling parses as the command itself: the same function and the canonical name in
    args.command (so messages and output names use it), from the nnviz parser and from
    nnviz.cli.parsers.parse (what the demo and the batch runner use)."""
    rest = {"dream": ["x.png"], "class-model": ["1"], "style": ["a.png", "b.png"]}.get(command, [])
    parser = build_parser()
    want = parser.parse_args([command] + rest)
    args = parser.parse_args([spelled] + rest)
    assert args.command == command and args.func is want.func
    assert parsers.parse([spelled] + rest).command == command


def test_an_alias_runs_and_names_its_output_by_the_command(tmp_path, capsys):
    """`nnviz guided_backprop` writes what `nnviz guided` writes, named guided-..."""
    rc, out, err = run(["guided_backprop", "--size", "32", "--target", "conv1_1:0", *R,
                        "--out", tmp_path], capsys)
    assert rc == 0, err
    assert [p.name for p in tmp_path.iterdir()] == \
        ["guided-astronaut-conv1_1_0-size=32-weights=random.png"]


TYPOS = [
    (["gudied"], "nnviz: error: ", "did you mean guided?"),
    (["integratd-gradient"], "nnviz: error: ", "did you mean ig?"),
    (["dreem", "x"], "nnviz: error: ", "did you mean dream?"),
    (["weights", "imprt"], "nnviz weights: error: ", "did you mean import?"),
    (["ig", "--stpes", "3"], "nnviz ig: error: ", "--stpes (did you mean --steps?)"),
    (["saliency", "--taget", "conv1_1:0"], "nnviz saliency: error: ",
     "--taget (did you mean --target?)"),
    (["deconvnet", "--mode", "untt"], "nnviz deconvnet: error: ", "did you mean unit?"),
    (["smoothgrad", "--method", "gudied"], "nnviz smoothgrad: error: ", "did you mean guided?"),
]


@pytest.mark.parametrize("argv,prog,hint", TYPOS, ids=[" ".join(t[0]) for t in TYPOS])
def test_a_typo_gets_did_you_mean_in_its_one_line(argv, prog, hint, capsys, tmp_path):
    """A misspelt subcommand, option or choice: exit 2, one line from the right parser, with
    the closest valid name; nothing written."""
    rc, out, err = run(argv + ["--out", tmp_path / "o"] if argv[0] != "weights" else argv, capsys)
    assert rc == 2 and len(err) == 1 and err[0].startswith(prog), err
    assert hint in err[0], err
    assert not (tmp_path / "o").exists()


def test_no_hint_when_nothing_is_close(capsys):
    rc, out, err = run(["saliency", "--zzzzzz"], capsys)
    assert rc == 2 and len(err) == 1 and "did you mean" not in err[0], err
    with pytest.raises(common.InputError, match="unknown method 'qqqq': expected one of"):
        parsers.parse(["qqqq"])


def test_info_prints_every_layer_in_full(capsys):
    """Every layer's description appears whole (its closing parenthesis in the row), and the
    columns line up: the output shapes start at the same place in every row. Oracle: the
    net's own layers."""
    import nnviz
    from nnviz.cli import info
    rc, out, err = run(["info", "--no-top", *R], capsys)
    assert rc == 0, err
    net = nnviz.vgg16(weights=None, include_top=False)
    rows = {ln.split()[0]: ln for ln in out.splitlines()[1:] if ln.split()}
    starts = set()
    for name, layer in net.layers.items():
        text = info.kind(layer)
        assert text.endswith(")") and f"  {text}  " in rows[name], (name, rows.get(name))
        shape = re.search(r"\(1, \d+", rows[name][len(name):])
        starts.add(rows[name].index(shape.group(0), len(name) + len(text)))
    assert len(starts) == 1, starts


# ---------------------------------------------------------------------------------------------
# 4. progress on stderr
# ---------------------------------------------------------------------------------------------

def test_progress_lines_and_the_estimate_by_the_clock(monkeypatch):
    """Progress on a stream that is not a terminal, under a stand-in clock: the first step
    (which carries the setup, 10 s) is left out of the rate; after three more steps of 0.25 s
    the estimate, once; then a line every 10 s (the default interval), with the time left at
    the measured rate. Oracle: the arithmetic of the stand-in clock."""
    import io

    from nnviz import progress
    monkeypatch.delenv(progress.PROGRESS_EVERY, raising=False)
    clock = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    stream = io.StringIO()
    bar = progress.Progress(500, "test", True, stream=stream)
    for n in range(1, 101):
        clock[0] = 10 + 0.25 * (n - 1)
        bar.update()
    bar.close()
    assert stream.getvalue().splitlines() == [
        "nnviz test: 500 steps, about 2 min 15 s in all (0.25 s per step)",
        "nnviz test: step 44/500, 8%, ~1 min 54 s left",
        "nnviz test: step 84/500, 16%, ~1 min 44 s left"]
    assert progress.duration(3725) == "1 h 2 min" and progress.duration(59.6) == "1 min"


LONG_RUNS = [
    ("filters", ["filters", "conv1_1", "--channels", "0-3", "--batch", "2", "--size", "32",
                 "--steps", "8"], 16, "step"),
    ("dream", ["dream", "sample:chelsea", "--size", "48", "--layers", "relu1_2", "--octaves", "2",
               "--steps-per-octave", "5"], 10, "step"),
    ("style", ["style", "sample:chelsea", "sample:coffee", "--size", "32", "--iters", "6",
               "--print-every", "0"], 6, "iteration"),
]


@pytest.mark.parametrize("name,argv,total,unit", LONG_RUNS, ids=[r[0] for r in LONG_RUNS])
def test_a_run_reports_progress_on_stderr_when_it_is_not_a_terminal(name, argv, total, unit,
                                                                   tmp_path, capsys, monkeypatch):
    """filters (all batches in one count), dream (all octaves) and style (the L-BFGS
    iterations), with stderr captured (not a terminal) and a progress line at every step: each
    line names the command, counts up to the total with its percentage and the time left; with
    -q (filters), stderr stays empty. Oracle: the steps each command was asked for."""
    monkeypatch.setenv("NNVIZ_PROGRESS_EVERY", "1e-9")     # a line at every step, however fast
    rc, out, err = run(argv + R + ["--out", tmp_path / "a"], capsys)
    assert rc == 0, err
    pat = re.compile(rf"nnviz {name}\b[^:]*: {unit} (\d+)/{total}, (\d+)%, ~(\d+ min )?\d+ s left$")
    counts = []
    for line in err:
        m = pat.match(line)
        if m:
            counts.append(int(m[1]))
            assert int(m[2]) == 100 * int(m[1]) // total, line
        else:
            assert re.match(rf"nnviz {name}\b[^:]*: {total} {unit}s, about .* in all", line), line
    assert len(counts) >= 2 and counts == sorted(set(counts)) and counts[-1] < total, err
    if name == "filters":           # -q: nothing on stderr (the cheapest run shows it)
        rc, out, err = run(argv + R + ["--out", tmp_path / "b", "-q"], capsys)
        assert rc == 0 and err == [], err


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))


def test_batch_takes_the_aliases_and_hints_at_typos():
    """`nnviz batch METHOD` resolves METHOD as `nnviz` does: an alias reaches its command, a
    typo gets the closest name in its one-line error."""
    from nnviz.cli import batch
    assert batch.method_parser("grad-cam")[1] == "gradcam"
    assert batch.method_parser("guided_backprop")[1] == "guided"
    with pytest.raises(common.InputError, match=r"unknown method 'salincy' \(did you mean saliency\?\)"):
        batch.method_parser("salincy")
