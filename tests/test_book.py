"""The browsable book: `./run_all.sh --profile smoke ... --book` runs notebooks, records their
times and builds outputs/book/smoke/ from the executed notebooks; `./run_all.sh --book` alone
rebuilds it. The book has one page per executed notebook in notebook order, RESULTS.md and the run
times as pages, every image and internal link resolves, and no page loads anything from a host
(scripts, stylesheets, images, MathJax are local files), so it opens offline.

The lecture notebooks 00 and 01 come from the suite's smoke runs (the `executed_notebook`
fixture: no extra run when the notebook tests ran); notebook 10 runs through ./run_all.sh itself.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from lib import paths

pytestmark = pytest.mark.notebook
ROOT = Path(__file__).resolve().parents[1]
LECTURES = ("00_randomized_smoothing_lecture", "01_empirical_bayes_theory")


class _Page(HTMLParser):
    """Collects ids, links (a href), and resources (script/img/iframe/source src, link href)."""

    def __init__(self):
        super().__init__()
        self.ids, self.links, self.resources, self.nav = set(), [], [], []
        self._in_toc = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
            if "reference internal" in (a.get("class") or "") and a["href"].endswith(".html"):
                self.nav.append(a["href"])
        if tag in ("script", "img", "iframe", "source", "embed") and a.get("src"):
            self.resources.append((tag, a["src"]))
        if tag == "link" and a.get("href"):
            self.resources.append((tag, a["href"]))


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text())
    return page


def _local_data():
    """A data folder with the real MNIST / Fashion-MNIST caches linked (a run's lock lands here, not in data/)."""
    return [p for p in paths.DATA.glob("*.npz*")]


@pytest.fixture(scope="module")
def book_run(executed_notebook, tmp_path_factory):
    """`./run_all.sh --profile smoke --only 10 --book` on outputs holding the smoke copies of 00 and 01."""
    root = tmp_path_factory.mktemp("book")
    outputs, figures, data = root / "outputs", root / "figures", root / "data"
    executed = outputs / "notebooks" / "smoke"
    executed.mkdir(parents=True)
    data.mkdir()
    for cache in _local_data():
        (data / cache.name).symlink_to(cache)
    for name in LECTURES:
        shutil.copy2(executed_notebook(name), executed / f"{name}.ipynb")
    env = {**os.environ, "COMPANION_OUTPUTS": str(outputs), "COMPANION_FIGURES": str(figures),
           "COMPANION_DATA": str(data), "COMPANION_NO_APT": "1", "COMPANION_NO_SLIDES": "1",
           "COMPANION_THREADS": os.environ.get("COMPANION_THREADS", "1")}
    env.pop("COMPANION_PROFILE", None)
    run = subprocess.run([str(ROOT / "run_all.sh"), "--profile", "smoke", "--only", "10", "--book"],
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return {"root": root, "outputs": outputs, "figures": figures, "env": env, "stdout": run.stdout,
            "book": outputs / "book" / "smoke"}


def _pages(book: Path) -> list[Path]:
    return sorted(book.glob("*.html"))


def test_run_all_records_times_and_prints_an_estimate(book_run):
    times = json.loads((book_run["outputs"] / "run_times.json").read_text())
    assert times["last_run"]["profile"] == "smoke" and times["last_run"]["notebooks"] == ["10_tables"]
    assert times["last_run"]["finished"] is not None
    rec = times["notebooks"]["smoke"]["10_tables"]
    assert rec["seconds"] > 0 and rec["profile"] == "smoke" and rec["commit"]
    assert rec["machine"]["cores"] >= 1 and rec["machine"]["cpu"] and rec["machine"]["memory_gib"] > 0
    # the run printed its estimate line (or said that it has none) before the first notebook
    out = book_run["stdout"]
    first = out.index("(1/1) 10_tables")
    assert re.search(r"\[run_all\] (ESTIMATE \(not a measurement\)|estimate: none)", out[:first]), out[:first]


def test_book_has_a_page_per_notebook_in_order_and_results(book_run):
    book = book_run["book"]
    notebooks = sorted(p.stem for p in (book_run["outputs"] / "notebooks" / "smoke").glob("*.ipynb"))
    assert notebooks == [*LECTURES, "10_tables"]
    for name in notebooks + ["RESULTS", "run_times", "index", "search"]:
        assert (book / f"{name}.html").is_file(), f"no page for {name}"
    index = _parse(book / "index.html")
    order = [h.removesuffix(".html") for h in dict.fromkeys(index.nav) if h.removesuffix(".html") in notebooks]
    assert order == notebooks, f"navigation not in notebook order: {order}"
    results, source = (book / "RESULTS.html").read_text(), (book_run["figures"] / "RESULTS.md").read_text()
    sections = re.findall(r"^## (.+)$", source, re.M)                # notebook 10's RESULTS.md, rendered
    assert sections and results.count("<h2") >= len(sections), (sections, results.count("<h2"))
    assert "10_tables" in (book / "run_times.html").read_text()    # the recorded time is shown
    lecture = (book / f"{LECTURES[0]}.html").read_text()
    assert lecture.count("<img") >= 3, "the lecture's figures are missing"
    assert 'class="math' in lecture, "no math in the lecture page"
    assert "searchbox" in lecture


def test_every_image_and_internal_link_resolves_and_nothing_is_remote(book_run):
    book = book_run["book"]
    parsed = {p: _parse(p) for p in _pages(book)}
    problems = []
    for page, html in parsed.items():
        for tag, ref in html.resources:
            url = urlsplit(ref)
            if not url.path and not url.scheme and not url.netloc:
                continue  # "#": the page itself
            if url.scheme or ref.startswith("//"):
                problems.append(f"{page.name}: <{tag}> loads {ref} from a host")
                continue
            target = (page.parent / unquote(url.path)).resolve()
            if not target.is_file():
                problems.append(f"{page.name}: <{tag}> {ref} does not exist")
            elif tag == "img" and target.stat().st_size == 0:
                problems.append(f"{page.name}: empty image {ref}")
        for ref in html.links:
            url = urlsplit(ref)
            if url.scheme in ("http", "https", "mailto"):
                continue  # a hyperlink the reader may follow; nothing the page needs to display
            assert not url.scheme, f"{page.name}: unexpected link {ref}"
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            if not target.exists():
                problems.append(f"{page.name}: link {ref} leads nowhere")
            elif url.fragment and target.suffix == ".html" and target in parsed \
                    and url.fragment not in parsed[target].ids:
                problems.append(f"{page.name}: anchor {ref} does not exist")
    # stylesheets and scripts of the book load nothing from a host either
    for asset in [*book.glob("_static/*.css"), *book.glob("_static/*.js")]:
        text = asset.read_text(errors="replace")
        if re.search(r"""(url\(\s*['"]?|@import\s+['"]|(src|href)\s*=\s*['"])(https?:)?//""", text):
            problems.append(f"{asset.name} references a host")
    assert not problems, "\n".join(problems[:20])
    mathjax = [ref for tag, ref in parsed[book / f"{LECTURES[0]}.html"].resources if "MathJax.js" in ref]
    assert mathjax and (book / urlsplit(mathjax[0]).path).is_file(), "MathJax is not a local file"


def test_book_alone_rebuilds_from_the_last_run(book_run):
    book = book_run["book"]
    shutil.rmtree(book)
    run = subprocess.run([str(ROOT / "run_all.sh"), "--book"], env=book_run["env"], capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "profile smoke" in run.stdout and "[run_all] (1/" not in run.stdout   # nothing was executed
    assert {p.name for p in _pages(book)} >= {f"{n}.html" for n in (*LECTURES, "10_tables", "RESULTS")}


def test_book_without_a_run_says_what_to_run(tmp_path):
    env = {**os.environ, "COMPANION_OUTPUTS": str(tmp_path / "outputs")}
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "book.py"), "build", "--profile", "quick"],
                         env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "./run_all.sh --profile quick" in out.stderr
