"""``nnviz demo --quick``: every expected PNG is written and is a real (non-constant) image, the
page links only existing files, every picture is captioned with its nnviz command, the style
loss curve is drawn, and headless Chromium (the oracle for "the page displays") loads every
image. Run once per module: about 1.5 minutes on 2 CPU cores."""
import os
import re
import shlex
import shutil
import subprocess
from html.parser import HTMLParser

import numpy
import pytest
from PIL import Image

from nnviz.cli import demo, main

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# step folder -> the PNGs its command writes (--quick): each name shows the options that differ
# from their defaults (nnviz.cli.common.output_name)
TWO = "image=astronaut_chelsea-size=112"
EXPECTED = {
    "saliency": [f"saliency-grid-{TWO}.png"],
    "deconvnet": ["deconvnet-grid-image=astronaut_chelsea-mode=channel-size=112-target=relu4_3_355.png"],
    "deconvnet-no-switches": ["deconvnet-grid-image=astronaut_chelsea-mode=channel-no_switches-size=112-"
                              "target=relu4_3_355.png"],
    "guided": [f"guided-grid-{TWO}.png"], "top-units": ["top-units-astronaut-relu5_3-n=3-size=112.png"],
    "smoothgrad": ["smoothgrad-grid-image=astronaut_chelsea-samples=4-size=112.png"],
    "smoothgrad-squared": ["smoothgrad-grid-image=astronaut_chelsea-samples=4-size=112-squared.png"],
    "gradxinput": [f"gradxinput-grid-{TWO}.png"], "ig": [f"ig-grid-{TWO}-steps=6.png"],
    "gradcam": [f"gradcam-grid-{TWO}.png"], "guided-gradcam": [f"guided-gradcam-grid-{TWO}.png"],
    "filters": ["filters-conv4_1-channels=0..3-size=48-steps=15.png"],
    "maximize": ["maximize-conv5_1_12-size=64-steps=15.png"],
    "dream": ["dream-chelsea-octaves=2-size=128-steps_per_octave=4.png"],
    "invert": ["invert-chelsea-relu3_3-size=64-steps=40.png"],
    "style": ["style_astronaut_texture-iters=10-keep_size-size=64.png"],
    "inputs": ["texture.png"],
    "sanity": ["sanity-maps-cascade.png", "sanity-curves.png"], "faithfulness": ["faithfulness.png"],
    "fast-style": ["model_loss.png", "model_preview.png"], "fast-style-apply": ["astronaut_model.png"],
    "lrp": [f"lrp-grid-epsilon-gamma-box-epsilon-plus-flat-epsilon-alpha2-beta1-{TWO}.png"],
}


class Page(HTMLParser):
    """The page's src/href targets, and for each <img> in a <figure> its caption text."""
    def __init__(self):
        super().__init__()
        self.links, self.figures, self.body = [], [], {}
        self._fig = self._a = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        for key in ("src", "href"):
            if a.get(key) and not a[key].startswith("#"):
                self.links.append(a[key])
        if tag == "figure":
            self._fig = {"img": None, "caption": ""}
            self.figures.append(self._fig)
        if tag == "a":
            self._a = a.get("href")
        if tag == "img" and self._fig is not None:
            self._fig["img"] = a.get("src")
            self._fig["shown"] = (int(a.get("width", 0)), int(a.get("height", 0)))
            self._fig["link"] = self._a

    def handle_endtag(self, tag):
        if tag == "figure":
            self._fig = None
        if tag == "a":
            self._a = None

    def handle_data(self, data):
        if self._fig is not None:
            self._fig["caption"] += data


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "gallery"
    rc = main(["demo", "--quick", "--out", str(out), "--device", "cpu"])
    page = Page()
    page.feed((out / "index.html").read_text(encoding="utf-8"))
    return out, rc, page


def test_exit_status_and_every_step_ran(gallery):
    out, rc, page = gallery
    assert rc == 0, (out / "index.html").read_text()
    assert 'class="error"' not in (out / "index.html").read_text()


@pytest.mark.parametrize("folder,name", [(f, n) for f, ns in EXPECTED.items() for n in ns])
def test_png_is_a_real_image(gallery, folder, name):
    out, _, _ = gallery
    with Image.open(out / folder / name) as im:
        im.verify()
    with Image.open(out / folder / name) as im:
        a = numpy.asarray(im.convert("RGB"), numpy.float64)
    assert min(a.shape[:2]) >= 32 and a.std() > 1.0, (a.shape, a.std())


def test_links_exist_and_captions_are_commands(gallery):
    out, _, page = gallery
    for link in page.links:
        assert os.path.isfile(out / link), link
    shown = {os.path.normpath(f["img"]) for f in page.figures if f["img"]}
    for folder, names in EXPECTED.items():
        for n in names:
            assert os.path.join(folder, n) in shown, (folder, n)
    for f in page.figures:
        if f["img"] is None or f["img"].startswith("inputs/"):
            continue
        argv = shlex.split(f["caption"])
        assert argv[0] == "nnviz" and argv[1] in set(EXPECTED) | {"train-style", "stylize"}, f
        # the caption's command writes where the picture is (train-style: --out is the model,
        # its pictures beside it)
        dest = argv[argv.index("--out") + 1]
        dest = os.path.dirname(dest) if dest.endswith(".h5") else dest
        assert os.path.normpath(dest) == os.path.normpath(out / os.path.dirname(f["img"])), f


def test_class_model_note_and_loss_curve(gallery):
    out, _, _ = gallery
    text = (out / "index.html").read_text()
    assert "fully connected" in text and "nnviz weights import" in text
    m = re.search(r'<polyline[^>]*points="([^"]+)"', text)
    pts = numpy.array([p.split(",") for p in m.group(1).split()], numpy.float64)
    rows = (out / "style" / "loss.csv").read_text().splitlines()[1:]
    assert len(pts) == len(rows) >= 2
    loss = numpy.array([float(r.split(",")[1]) for r in rows])
    assert loss[-1] < loss[0]        # L-BFGS lowered the loss; the curve goes down the page
    assert pts[-1, 1] > pts[0, 1]


def test_steps_are_reproducible_commands():
    """Every step is an nnviz command line that the CLI's own parser accepts."""
    from nnviz.cli import build_parser
    parser = build_parser()
    for step in demo.steps("g", quick=True):
        if step.argv is not None:
            assert parser.parse_args(step.argv).func, step.argv


def test_a_failing_step_is_shown_and_exits_1(tmp_path, monkeypatch, capsys):
    """One broken step: the page is still written, shows the error, and the status is 1."""
    real = demo.steps

    def two(out, quick=False, common=()):
        s = [x for x in real(out, quick, common) if x.name in ("gradcam", "class-model")]
        s[0].argv = s[0].argv + ["--target", "conv5_3:99999"]
        return s
    monkeypatch.setattr(demo, "steps", two)
    rc = main(["demo", "--quick", "--weights", "random", "--out", str(tmp_path / "g"), "-q"])
    assert rc == 1
    text = (tmp_path / "g" / "index.html").read_text()
    assert "channel 99999 out of range" in text and 'class="error"' in text
    assert "gradcam" in capsys.readouterr().err


def _chromium(*args, tmp):
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: apt-get update && apt-get install -y chromium")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_pictures_are_shown_large_and_link_to_full_size(gallery):
    """Every picture is shown at least 360 px wide (small ones enlarged by a whole factor, so
    pixels stay square and crisp), in its own proportions, and links to its file. Oracle: the
    PNG's size as Pillow reads it."""
    out, _, page = gallery
    pictures = [f for f in page.figures if f["img"]]
    assert pictures
    for f in pictures:
        with Image.open(out / f["img"]) as im:
            w, h = im.size
        sw, sh = f["shown"]
        assert sw >= 360 and sw % w == 0 and sw * h == sh * w, (f["img"], (w, h), f["shown"])
        assert sw < 360 + w, (f["img"], w, sw)      # the smallest whole factor
        assert f["link"] == f["img"], f


def test_chromium_loads_every_image(gallery, tmp_path):
    out, _, page = gallery
    url = (out / "index.html").resolve().as_uri()
    r = _chromium("--virtual-time-budget=5000", "--dump-dom", url, tmp=tmp_path / "profile")
    m = re.search(r'<body[^>]*data-loaded="(\d+)/(\d+)"', r.stdout)
    assert m, r.stdout[:500] + r.stderr[-2000:]
    n_img = sum(1 for f in page.figures if f["img"])
    assert m.group(1) == m.group(2) == str(n_img), m.group(0)

    folder = os.environ.get("NNVIZ_TEST_ARTIFACTS") or str(tmp_path)
    os.makedirs(folder, exist_ok=True)
    shot = os.path.join(folder, "demo-screenshot.png")
    _chromium(f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars", url,
              tmp=tmp_path / "profile2")
    with Image.open(shot) as im:
        assert im.format == "PNG" and im.size == (1280, 2000)
        assert numpy.asarray(im.convert("L"), numpy.float64).std() > 5


def test_a_long_step_shows_its_progress_and_logs_it(tmp_path, monkeypatch):
    """The demo keeps a step's output for its log.txt, and lets its progress lines (estimate,
    time left) through to the terminal, so the filters step is not silent; nothing else."""
    import io as _io
    monkeypatch.setenv("NNVIZ_PROGRESS_EVERY", "1e-9")    # a line at every step
    step = demo.Step("filters", "t", "c", ["filters", "conv1_2", "--channels", "0-1", "--size", "24",
                                           "--steps", "40", "--weights", "random",
                                           "--out", str(tmp_path / "filters")])
    echo = _io.StringIO()
    demo._run_step(step, str(tmp_path), demo.NetCache(), echo)
    shown = echo.getvalue().splitlines()
    assert step.status == "ok" and shown, (step.error, shown)
    assert all(re.fullmatch(r"nnviz filters conv1_2: .*(left|per step\))", ln) for ln in shown), shown
    logged = (tmp_path / "filters" / "log.txt").read_text()
    assert all(ln in logged for ln in shown)
