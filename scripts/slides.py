"""Lecture slides (reveal.js) from executed notebooks, viewable offline.

nbconvert's slides load reveal.js, MathJax, require.js and jQuery from CDNs. Here they come from
local copies: the npm packages below, fetched once (``fetch``, run by scripts/setup_env.sh) into
``outputs/slides/assets/``; the slides reference them by relative paths, so the folder
``outputs/slides/`` works without network access, and can be copied as a whole to another machine.

    python scripts/slides.py fetch                          # once, online (needs npm)
    python scripts/slides.py render --profile smoke 00 01   # after ./run_all.sh --profile smoke
    ./run_all.sh --profile smoke --only 00 01 --slides      # both in one command

Slides are rendered from the executed copies in ``outputs/notebooks/<profile>/`` (so their
figures are included) to ``outputs/slides/<profile>/NN_name.slides.html``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the lecture notebooks rendered by default
LECTURES = ("00", "01")
#: npm package -> version (reveal.js and MathJax as nbconvert's template expects them)
ASSETS = {"reveal.js": "4.0.2", "mathjax": "2.7.7", "requirejs": "2.1.10", "jquery": "2.2.4"}
#: files inside each package that the slides load
ENTRY = {"reveal.js": "dist/reveal.js", "mathjax": "MathJax.js", "requirejs": "require.js",
         "jquery": "dist/jquery.min.js"}
#: MathJax parts the slides never load (source copies, tests, image and non-TeX fonts): ~70 -> ~30 MB
_MATHJAX_SKIP = ("unpacked/", "test/", "docs/", "fonts/HTML-CSS/TeX/png/")
_TEMPLATE_DIR = Path(__file__).resolve().parent / "slides_template"


def outputs_dir() -> Path:
    sys.path.insert(0, str(ROOT))
    from lib import paths

    return paths.OUTPUTS


def default_assets() -> Path:
    return outputs_dir() / "slides" / "assets"


def _stamp(assets: Path) -> Path:
    return assets / "versions.json"


def have_assets(assets: Path) -> bool:
    """True when every package of :data:`ASSETS` is in ``assets`` at the pinned version."""
    try:
        return json.loads(_stamp(assets).read_text()) == ASSETS and all(
            (assets / name / ENTRY[name]).is_file() for name in ASSETS)
    except (OSError, ValueError):
        return False


def _keep(package: str, member: str) -> bool:
    if package != "mathjax":
        return True
    if member.startswith("fonts/HTML-CSS/") and not member.startswith("fonts/HTML-CSS/TeX/"):
        return False
    return not member.startswith(_MATHJAX_SKIP)


def fetch(assets: Path | None = None, quiet: bool = False) -> Path:
    """Download the npm packages of :data:`ASSETS` with ``npm pack`` into ``assets`` (idempotent)."""
    assets = Path(assets) if assets is not None else default_assets()
    if have_assets(assets):
        if not quiet:
            print(f"[slides] assets present in {assets}")
        return assets
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed once to fetch reveal.js and MathJax for offline slides "
                           f"(packages {ASSETS}); install Node.js/npm, or see docs/environment.md, 'Slides'")
    print(f"[slides] fetching {', '.join(f'{k}@{v}' for k, v in ASSETS.items())} from npm into {assets}")
    assets.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=assets) as tmp:
        tmp = Path(tmp)
        specs = [f"{name}@{version}" for name, version in ASSETS.items()]
        done = subprocess.run([npm, "pack", "--silent", *specs], cwd=tmp, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"npm pack {' '.join(specs)} failed:\n{done.stderr.strip()}")
        for name, version in ASSETS.items():
            tgz = tmp / f"{name}-{version}.tgz"
            dest = tmp / name
            with tarfile.open(tgz) as tar:
                members = []
                for m in tar.getmembers():
                    rel = m.name.split("/", 1)[1] if "/" in m.name else ""
                    if rel and _keep(name, rel):
                        m.name = rel
                        members.append(m)
                tar.extractall(dest, members=members, filter="data")
            final = assets / name
            if final.exists():
                shutil.rmtree(final)
            os.replace(dest, final)
    _stamp(assets).write_text(json.dumps(ASSETS, indent=1) + "\n")
    return assets


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def render(notebook: str | os.PathLike, out_dir: str | os.PathLike, assets: Path | None = None) -> Path:
    """Render one executed notebook to ``out_dir/<name>.slides.html`` with local assets only."""
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    notebook, out_dir = Path(notebook), Path(out_dir)
    assets = Path(assets) if assets is not None else default_assets()
    if not have_assets(assets):
        raise RuntimeError(f"no local reveal.js/MathJax in {assets}: run `python scripts/slides.py fetch` "
                           "once while online (needs npm), see docs/environment.md, 'Slides'")
    out_dir.mkdir(parents=True, exist_ok=True)
    rel = _rel(assets, out_dir)
    c = Config()
    c.SlidesExporter.reveal_url_prefix = f"{rel}/reveal.js"
    c.SlidesExporter.reveal_theme = "white"
    c.SlidesExporter.reveal_scroll = True
    c.HTMLExporter.mathjax_url = f"{rel}/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
    c.HTMLExporter.require_js_url = f"{rel}/requirejs/{ENTRY['requirejs']}"
    c.HTMLExporter.jquery_url = f"{rel}/jquery/{ENTRY['jquery']}"
    c.HTMLExporter.embed_images = True
    exporter = SlidesExporter(config=c, template_name="companion_reveal",
                              extra_template_basedirs=[str(_TEMPLATE_DIR)])
    body, _ = exporter.from_filename(str(notebook))
    out = out_dir / f"{notebook.stem}.slides.html"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, out)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="fetch reveal.js and MathJax (npm) for offline slides")
    f.add_argument("--quiet", action="store_true")
    r = sub.add_parser("render", help="render executed notebooks to slides")
    r.add_argument("--profile", default=os.environ.get("COMPANION_PROFILE", "quick"))
    r.add_argument("notebooks", nargs="*", default=list(LECTURES), help="numbers, e.g. 00 01")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "fetch":
            fetch(quiet=args.quiet)
            return 0
        executed = outputs_dir() / "notebooks" / args.profile
        out_dir = outputs_dir() / "slides" / args.profile
        for number in args.notebooks:
            found = sorted(executed.glob(f"{number}*.ipynb"))
            if not found:
                raise RuntimeError(f"no executed notebook {number}* in {executed}: run "
                                   f"./run_all.sh --profile {args.profile} --only {number} first")
            for nb in found:
                print(f"[slides] {render(nb, out_dir)}")
    except RuntimeError as err:
        print(f"[slides] ERROR: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
