"""What a reader opens: executed notebooks carry their figures inline, the headless runner keeps
the console clean, and the lecture slides render with their figures from local reveal.js/MathJax.

The smoke run of notebook 00 is shared with tests/test_notebook_00_01.py (the ``run_notebook``
fixture runs a notebook once per session), so these checks cost no extra notebook run.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT, _load_script

slides = _load_script("slides")
LECTURE = "00_randomized_smoothing_lecture"
#: hosts nbconvert's templates load scripts and styles from by default
CDN_HOSTS = ("unpkg.com", "cdnjs.cloudflare.com", "cdn.jsdelivr.net", "code.jquery.com", "mathjax.org")


def _images(cell) -> int:
    return sum(1 for out in cell.get("outputs", []) if "image/png" in out.get("data", {}))


def _shows_a_figure(cell) -> bool:
    """A code cell that calls plt.show() at top level (not inside a loop, branch or function)."""
    return cell.cell_type == "code" and re.search(r"^plt\.show\(\)", cell.source, re.M) is not None


@pytest.mark.notebook
def test_executed_smoke_notebook_has_inline_figures(executed_notebook):
    nb = nbformat.read(executed_notebook(LECTURE), as_version=4)
    showing = [i for i, c in enumerate(nb.cells) if _shows_a_figure(c)]
    assert showing, "notebook 00 draws no figure any more: pick another notebook for this test"
    blank = [i for i in showing if _images(nb.cells[i]) == 0]
    assert not blank, f"cells {blank} call plt.show() but their executed outputs hold no image"


def test_runner_keeps_figures_and_a_quiet_console(tmp_path):
    """scripts/run_notebook.py under the test environment (MPLBACKEND=agg, as run_tests.sh sets):
    the kernel still gets the inline backend and the headless flag, and ipykernel prints no
    'running over TCP without encryption' warning."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import os\nimport matplotlib.pyplot as plt\n"
        "print(os.environ['MPLBACKEND'], os.environ['COMPANION_HEADLESS'])\n"
        "plt.plot([0, 1], [1, 0])\nplt.show()")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src, dst = tmp_path / "tiny.ipynb", tmp_path / "tiny.out.ipynb"
    nbformat.write(nb, src)
    env = {**os.environ, "MPLBACKEND": "agg"}
    env.pop("COMPANION_HEADLESS", None)
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebook.py"), str(src), str(dst)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "without encryption" not in done.stderr + done.stdout
    cell = nbformat.read(dst, as_version=4).cells[0]
    assert _images(cell) == 1
    printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    assert printed.split() == ["module://matplotlib_inline.backend_inline", "1"]


def test_runner_reports_a_failing_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("raise ValueError('sigma must be > 0')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "bad.ipynb"
    nbformat.write(nb, src)
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebook.py"), str(src),
                           str(tmp_path / "bad.out.ipynb")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "sigma must be > 0" in done.stderr
    assert (tmp_path / "bad.out.ipynb").exists()


def _local_assets():
    assets = slides.default_assets()
    if not slides.have_assets(assets):
        try:
            slides.fetch(assets, quiet=True)
        except RuntimeError as err:
            if os.environ.get("CI"):  # the set-up script fetches them on CI: they must be there
                raise
            pytest.skip(f"no local reveal.js/MathJax and they cannot be fetched here: {err}")
    return assets


@pytest.mark.notebook
def test_slides_of_00_show_figures_without_network(executed_notebook, tmp_path):
    executed = executed_notebook(LECTURE)
    html_path = slides.render(executed, tmp_path / "slides", _local_assets())
    html = html_path.read_text()
    images = sum(_images(c) for c in nbformat.read(executed, as_version=4).cells)
    assert images > 0 and html.count('src="data:image/png;base64,') >= images
    # nothing is loaded from the network: no CDN host anywhere, every script/style is a local file
    assert not [h for h in CDN_HOSTS if h in html]
    loaded = re.findall(r'<script[^>]*\bsrc="([^"]+)"', html) + re.findall(r'<link[^>]*\bhref="([^"]+)"', html)
    loaded += re.findall(r'"([^"]+\.js)"', html.split("require(", 1)[1].split("function", 1)[0])
    assert len(loaded) >= 6, loaded  # jquery, require.js, MathJax, reveal css/theme, reveal + notes
    for url in loaded:
        assert not re.match(r"^(https?:)?//", url), f"slides load {url} from the network"
        assert (html_path.parent / url.split("?")[0]).is_file(), f"slides load a missing local file {url}"
    # the reveal.js and MathJax the slides load are the pinned versions
    assert json.loads((Path(_local_assets()) / "versions.json").read_text()) == slides.ASSETS


def test_progress_bars_are_widgets_live_and_quiet_text_headless(monkeypatch):
    import tqdm.auto
    import tqdm.std

    from lib.utils import progress_bar

    monkeypatch.setenv("COMPANION_HEADLESS", "1")
    bar = progress_bar(total=3, desc="headless")
    assert type(bar) is tqdm.std.tqdm and not bar.leave
    assert bar.mininterval == (0.5 if sys.stderr.isatty() else 15.0)
    bar.close()
    monkeypatch.delenv("COMPANION_HEADLESS")
    bar = progress_bar(total=3, desc="live")
    assert isinstance(bar, tqdm.auto.tqdm)  # tqdm.notebook's widget bar inside a Jupyter kernel
    bar.close()
