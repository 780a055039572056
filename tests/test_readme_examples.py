"""The README's examples run as a newcomer would type them (issue 19): every ``nnviz ...`` line of
a code block in README.md that needs no file of the user's own (sample: images, or no image) runs
on the default weights and writes pictures that are not blank.

The commands are read from README.md at test time (a new example is tested when it is added).
Each runs in this process (``nnviz.cli``'s parser and ``execute``, one net per option set shared
through a ``NetCache``), with only a smaller ``--size`` and fewer steps, samples or iterations
added where the example's own would take minutes on 2 cores (:data:`SHRINK`). Each PNG it prints
is checked against blank: its standard deviation above a threshold, and not one uniform colour
(the uniform grey of a signed map that is zero everywhere). The oracle is the picture's pixels
themselves (PIL), not anything nnviz computes about them.
"""
import os
import re
import shlex

import numpy
import pytest

from nnviz.cli import build_parser
from nnviz.cli.common import NetCache, execute

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")

# options whose value is something the command writes, not a file the user must have
OUTPUT_OPTIONS = {"--out", "--output", "--json"}
FILE_SUFFIXES = (".jpg", ".jpeg", ".png", ".h5", ".hdf5", ".pth", ".pt", ".keras", ".onnx", ".npz",
                 ".json", ".tif", ".tiff", ".bmp")
# subcommands that always need files or folders of the user's own, or run for minutes by design
NEEDS_FILES = {"batch", "compare"}
TOO_LONG = {"demo"}

ATTRIBUTION = {"saliency", "deconvnet", "guided", "top-units", "smoothgrad", "gradxinput", "ig",
               "gradcam", "guided-gradcam", "trace", "lrp"}
# per subcommand: options set to a smaller value (added if absent, replaced if present)
# (attribution: 64 px, or the size at which a unit (i, j) that a target names exists)
SHRINK = {name: {"--size": "64"} for name in ATTRIBUTION}
SHRINK["smoothgrad"] = {"--size": "64", "--samples": "4"}
SHRINK["ig"] = {"--size": "64", "--steps": "4"}
SHRINK["top-units"] = {"--size": "32"}             # 2 projections per channel: the smallest VGG input
SHRINK["maximize"] = {"--size": "64", "--steps": "8"}
SHRINK["filters"] = {"--size": "32", "--steps": "1", "--batch": "64"}
SHRINK["invert"] = {"--size": "64", "--steps": "8"}
SHRINK["style"] = {"--size": "64", "--iters": "4"}
SHRINK["class-model"] = {"--steps": "8"}
SHRINK["dream"] = {"--size": "64"}
SHRINK["sanity"] = {"--size": "64", "--methods": "gradient,guided,gradcam", "--depth": "2"}
SHRINK["faithfulness"] = {"--size": "64", "--methods": "gradient,gradcam", "--steps": "4",
                          "--random": "1"}


def readme_commands(path=README):
    """Every ``nnviz ...`` line inside a code block (fenced, or indented by 4 spaces) of the
    README, without its trailing ``# comment``."""
    out, fenced = [], False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip().startswith("```"):
                fenced = not fenced
                continue
            if not (fenced or line.startswith("    ")):
                continue
            s = line.strip()
            if s.startswith("nnviz "):
                out.append(re.split(r"\s+#\s", s, maxsplit=1)[0].strip())
    return out


def user_files(argv):
    """The arguments of ``argv`` that name a file or folder of the user's own."""
    found, skip = [], False
    for tok in argv:
        if skip:
            skip = False
            continue
        if tok in OUTPUT_OPTIONS:
            skip = True
            continue
        if tok.startswith("-") or tok.startswith("sample:"):
            continue
        if (tok.lower().endswith(FILE_SUFFIXES) or "/" in tok or tok.startswith("~")
                or tok == "FILE"):
            found.append(tok)
    return found


def runnable(commands):
    keep = []
    for cmd in commands:
        argv = shlex.split(cmd)[1:]
        if not argv or argv[0] in NEEDS_FILES | TOO_LONG or user_files(argv):
            continue
        if argv[0] == "weights" and argv[1:2] != ["list"]:
            continue
        keep.append(cmd)
    return keep


def unit_size(spec):
    """The smallest multiple of 32 pixels at which the unit ``LAYER:C:I,J`` exists (VGG's
    block b has stride 2^(b-1) before its pooling, 2^b from ``poolb`` on); 0 for a channel."""
    parts = spec.split(":")
    if len(parts) != 3:
        return 0
    layer, (i, j) = parts[0], (int(v) for v in parts[2].split(","))
    block = int(re.search(r"(\d)", layer).group(1))
    stride = 2 ** (block if layer.startswith("pool") else block - 1)
    return -(-(max(i, j) + 1) * stride // 32) * 32


def shrink(argv):
    """``argv`` with :data:`SHRINK`'s smaller values for its subcommand."""
    argv = list(argv)
    need = max([0] + [unit_size(a) for a, prev in zip(argv, [""] + argv) if prev == "--target"])
    for opt, value in SHRINK.get(argv[0], {}).items():
        if opt == "--size" and argv[0] in ATTRIBUTION:
            value = str(max(int(value), need))
        if opt in argv:
            argv[argv.index(opt) + 1] = value
        else:
            argv += [opt, value]
    return argv


COMMANDS = runnable(readme_commands())
NETS = NetCache()


def test_readme_has_the_examples():
    """The extraction finds the README's examples (the attribution table, LRP, optimization,
    style), and skips exactly the ones that need the user's files."""
    assert len(COMMANDS) >= 15, COMMANDS
    names = {shlex.split(c)[1] for c in COMMANDS}
    assert {"saliency", "guided", "gradcam", "guided-gradcam", "lrp", "maximize"} <= names
    assert all(not user_files(shlex.split(c)) for c in COMMANDS)
    assert user_files(["style", "sample:astronaut", "starry_night.jpg", "--output", "a.png"]) == [
        "starry_night.jpg"]


def not_blank(path):
    """A PNG that shows something: std over pixels > 4 and no single colour covering more than
    97% of it."""
    from PIL import Image
    with Image.open(path) as im:
        img = numpy.asarray(im.convert("RGB")).reshape(-1, 3)
    _, counts = numpy.unique(img, axis=0, return_counts=True)
    return img.std() > 4 and counts.max() / len(img) < 0.97, (img.std(), counts.max() / len(img))


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_example_runs_and_draws(command, tmp_path, capsys):
    """The example, with only a smaller size and fewer steps, exits 0 and every PNG it
    writes is not blank (HDF5 traces: non-zero gradients or relevance)."""
    argv = shrink(shlex.split(command)[1:])
    writes = argv[0] not in ("weights", "info")
    if writes:
        argv += ["--out", str(tmp_path)]
        if "--output" in argv:                       # a name inside --out
            argv[argv.index("--output") + 1] = os.path.basename(argv[argv.index("--output") + 1])
    args = build_parser().parse_args(argv)
    args.nets = NETS
    rc = execute(args)
    out, err = capsys.readouterr()
    assert rc == 0, f"{' '.join(argv)}: {err}"
    if not writes:
        return
    written = [os.path.join(root, f) for root, _, files in os.walk(tmp_path) for f in files]
    assert written, f"{' '.join(argv)} wrote nothing"
    for path in written:
        if path.endswith(".png"):
            ok, stats = not_blank(path)
            assert ok, f"{' '.join(argv)}: {os.path.basename(path)} is blank (std, top colour share {stats})"
        elif path.endswith(".h5"):
            import h5py
            with h5py.File(path, "r") as f:
                signal = "gradient" if "gradient" in f["input"] else "relevance"
                assert numpy.abs(f["input"][signal][()]).max() > 0
