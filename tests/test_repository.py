"""Repository-level promises: every notebook is tested, source notebooks carry no outputs,
the scripts reject bad arguments, the README's commands exist, no generated files in git; the
environment: declared dependencies agree with the lock, the set-up script checks the interpreter
and is safe to source, `import lib` resolves as documented, every environment variable is in
docs/environment.md's table; the README stays a short front door that links every docs page; no
development history in the tracked files."""
import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 1


def test_every_notebook_has_a_smoke_test():
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_notebook_*.py"))
    missing = [nb.stem for nb in NOTEBOOKS if nb.stem not in tests]
    assert not missing, f"notebooks without a smoke test: {missing}"


def test_source_notebooks_are_clean_and_parameterised():
    for nb in NOTEBOOKS:
        doc = json.loads(nb.read_text())
        code = [c for c in doc["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), f"{nb.name} has outputs"
        params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(params) == 1, f"{nb.name} needs exactly one cell tagged 'parameters'"
        src = "".join(params[0]["source"])
        assert 'profile = "quick"' in src, f"{nb.name}: the parameters cell must default to profile = \"quick\""
        assert "/root/" not in "".join("".join(c["source"]) for c in doc["cells"]), f"{nb.name} has an absolute path"
        assert "pip install" not in "".join("".join(c["source"]) for c in code), f"{nb.name} installs packages"


def test_run_all_rejects_a_bad_profile():
    out = subprocess.run([str(ROOT / "run_all.sh"), "--profile", "fast"], capture_output=True, text=True)
    assert out.returncode == 2 and "profile" in out.stderr


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "./run_all.sh" in readme and "./run_tests.sh" in readme
    assert "./run_tests.sh" in (ROOT / ".ci" / "run").read_text()


def test_no_generated_files_tracked():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    bad = [f for f in files if f.startswith(("figures/", "data/", "outputs/")) and not f.endswith("README.md")]
    bad += [f for f in files if f.endswith((".pt", ".npz"))]
    assert not bad, f"generated files are tracked: {bad[:5]}"


# ------------------------------------------------------------------ environment and packaging
def _lock() -> dict:
    lines = (ROOT / "requirements-lock.txt").read_text().splitlines()
    pins = [l.split("==") for l in lines if l and not l.startswith("#")]
    return {_norm(name): version for name, version in pins}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_pyproject_declares_ranges_that_the_lock_satisfies():
    from packaging.requirements import Requirement

    lock = _lock()
    deps = [Requirement(d) for d in _pyproject()["dependencies"] + _pyproject()["optional-dependencies"]["test"]]
    assert len(deps) >= 10
    for req in deps:
        assert str(req.specifier), f"{req.name}: give a version range"
        assert _norm(req.name) in lock, f"{req.name} is declared but not in requirements-lock.txt"
        assert req.specifier.contains(lock[_norm(req.name)]), f"the lock's {req.name}=={lock[_norm(req.name)]} is outside {req.specifier}"
    # requirements.txt pins exactly the declared direct dependencies, at the lock's versions
    direct = [l.split("==") for l in (ROOT / "requirements.txt").read_text().splitlines() if l and not l.startswith("#")]
    assert {_norm(n) for n, _ in direct} == {_norm(r.name) for r in deps}
    assert all(lock[_norm(n)] == v for n, v in direct)
    # the test-only pins (Ray) satisfy the optional `ray` extra that users install
    pins = dict(l.split("==") for l in (ROOT / "requirements-test.txt").read_text().splitlines()
                if l and not l.startswith("#"))
    for req in map(Requirement, _pyproject()["optional-dependencies"]["ray"]):
        assert req.specifier.contains(pins[_norm(req.name)]), f"requirements-test.txt's {req.name} is outside {req}"


def test_setup_checks_the_python_that_requires_python_names(tmp_path):
    from packaging.specifiers import SpecifierSet

    setup = (ROOT / "scripts" / "setup_env.sh").read_text()
    version = re.search(r'_companion_pyver="([\d.]+)"', setup).group(1)
    spec = SpecifierSet(_pyproject()["requires-python"])
    assert f"{version}.0" in spec and f"{version}.99" in spec
    assert f"(python {version})" in (ROOT / "requirements-lock.txt").read_text().splitlines()[0]
    # a wrong interpreter is refused up front, with a message, before anything is installed
    fake = tmp_path / "python3.12"
    fake.write_text('#!/bin/sh\n[ "$1" = "-V" ] && { echo "Python 3.12.1"; exit 0; }\nexit 1\n')
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    env = {**os.environ, "PYTHON": str(fake), "COMPANION_VENV": str(venv), "COMPANION_NO_APT": "1",
           "COMPANION_NO_SLIDES": "1"}
    out = subprocess.run(["bash", "-c", f"source {ROOT}/scripts/setup_env.sh"], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and f"Python {version} is required" in out.stderr and "3.12.1" in out.stderr
    assert not venv.exists()


def _current_venv_is_built() -> bool:
    stamp = Path(sys.prefix) / ".companion-stamp"
    lock = hashlib.sha256((ROOT / "requirements-lock.txt").read_bytes()).hexdigest()
    return stamp.exists() and stamp.read_text().strip() == lock


@pytest.mark.skipif(not _current_venv_is_built(), reason="the tests do not run in a .venv built by setup_env.sh")
def test_setup_env_is_safe_to_source_in_an_interactive_shell():
    script = f"""set +euo pipefail
source {ROOT}/scripts/setup_env.sh >/dev/null || echo SOURCE-FAILED
echo "flags=$-"; set -o | grep -E '^(pipefail|nounset|errexit)\\b' | tr -s ' \\t' ' '
false; echo "after a failing command"; echo "python=$(command -v python)"
compgen -v | grep -i '^_companion' || true"""
    env = {**os.environ, "COMPANION_VENV": sys.prefix, "COMPANION_NO_APT": "1", "COMPANION_NO_SLIDES": "1"}
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    lines = out.stdout.splitlines()
    assert "SOURCE-FAILED" not in lines, out.stderr
    assert not {"e", "u"} & set(lines[0].removeprefix("flags=")), lines[0]
    assert {"pipefail off", "nounset off", "errexit off"} <= set(lines[1:4]), lines
    assert "after a failing command" in lines
    assert f"python={sys.prefix}/bin/python" in lines
    assert not [l for l in lines if l.lower().startswith("_companion")], "setup_env.sh leaks its variables"


def test_import_lib_works_from_any_folder_without_its_own_lib(tmp_path):
    code = "import lib, os; print(os.path.realpath(lib.__file__))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == str((ROOT / "lib" / "__init__.py").resolve()), out.stderr
    # ... and, as the README says, a folder with its own lib/ shadows it (the working directory comes first)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "__init__.py").write_text("")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.stdout.strip() == str((tmp_path / "lib" / "__init__.py").resolve())


def test_environment_yml_agrees_with_the_code_on_torchvision():
    entries = [l.split("#")[0] for l in (ROOT / "environment.yml").read_text().splitlines()]
    assert not any("torchvision" in e for e in entries), "environment.yml installs torchvision, which lib never imports"
    assert "-r requirements-lock.txt" in "\n".join(entries)
    imports = [p for p in (ROOT / "lib").rglob("*.py") if re.search(r"^\s*(import|from) torchvision", p.read_text(), re.M)]
    assert not imports, f"lib imports torchvision in {imports}: then environment.yml must install it"


def test_every_environment_variable_is_in_the_docs_table():
    sources = [*(ROOT / "lib").rglob("*.py"), *(ROOT / "scripts").glob("*"), *(ROOT / "tests").glob("*.py"),
               ROOT / "run_all.sh", ROOT / "run_tests.sh"]
    names = set()
    for p in sources:
        if p.is_file():
            text = p.read_text()
            names |= set(re.findall(r"\b(COMPANION_[A-Z_]+)\b", text))
            names |= set(re.findall(r"environ(?:\.get)?[\(\[]\s*['\"]([A-Z_][A-Z0-9_]*)['\"]", text))
    doc = (ROOT / "docs" / "environment.md").read_text()
    table = doc.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `([A-Z_][A-Z0-9_]*)`", table, re.M))
    assert "COMPANION_NO_APT" in names and len(names) >= 8, names
    assert not names - rows, f"environment variables missing from docs/environment.md's table: {sorted(names - rows)}"


def test_run_all_rejects_an_only_that_matches_no_notebook():
    out = subprocess.run([str(ROOT / "run_all.sh"), "--only", "99"], capture_output=True, text=True)
    assert out.returncode == 2 and "no notebook matches --only 99" in out.stderr


# ------------------------------------------------------------------ no development history in the product
#: what a reader of the product should never meet: the history of its development and paths outside it
HISTORY = {
    "a session number": re.compile(r"\bsessions? [0-9]", re.I),
    "an issue number": re.compile(r"\bissues? #?[0-9]+", re.I),
    "a remark on a former version or name": re.compile(r"\bearlier (version|name)s?\b", re.I),
    "a path outside the repository": re.compile(r"shared/(?:seeds)|\.\./shared/"),
    # 7-12 hex digits with at least one letter and one digit, standing alone (not part of a path or word)
    "a commit hash": re.compile(r"(?<![\w/.#-])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,12}(?![\w/-])"),
}


def _prose(path: Path) -> str:
    """The text a reader sees: a notebook's cell sources (not its cell ids), else the file itself."""
    if path.suffix == ".ipynb":
        return "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
    return path.read_text()


def history_hits(files: list[str]) -> list[str]:
    hits = []
    for name in files:
        path = ROOT / name
        if name.startswith(".ci/") or not path.is_file():
            continue
        try:
            text = _prose(path)
        except (UnicodeDecodeError, ValueError):
            continue  # binary files
        for number, line in enumerate(text.splitlines(), 1):
            for what, pattern in HISTORY.items():
                if m := pattern.search(line):
                    hits.append(f"{name}:{number}: {what} ({m.group(0)!r})")
    return hits


def test_history_patterns_catch_what_they_should_and_nothing_else(tmp_path):
    # (written in pieces, so that this file does not trip its own scan)
    s, i, e, d = "session", "issue", "earlier", "shared"
    bad = [f"as measured in {s} 4", f"see {i} 14", f"kept for callers of the {e} name",
           f"Lee (`../{d}/seeds/001_x.txt`)", "the run at commit " + "c930" + "d73 took", f"{i.title()} #12 fixed this"]
    good = ["scope='session'", "sha256 of the file: " + "ab12" * 16, "notebooks/05_x.ipynb", "σ = 0.25",
            "1e-3 and 0x7f", "the earlier section", "an issue with the shapes", "seed 20240101"]
    for text in bad:
        assert any(p.search(text) for p in HISTORY.values()), text
    for text in good:
        assert not any(p.search(text) for p in HISTORY.values()), text


def test_no_development_history_in_tracked_files():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert len(files) > 50
    hits = history_hits(files)
    assert not hits, f"{len(hits)} traces of development history (say what the code does, cite papers as papers):\n" \
        + "\n".join(hits[:40])


def test_readme_is_a_short_front_door_that_links_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme) <= 10_500, f"README.md has {len(readme)} characters: move detail to docs/"
    linked = set(re.findall(r"\]\((docs/[\w./-]+\.md)\)", readme))
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert pages - {"docs/README.md"} <= linked, f"docs pages the README does not link: {sorted(pages - linked)}"
    for link in linked | set(re.findall(r"\]\(([\w./-]+\.md)\)", (ROOT / "docs" / "README.md").read_text())):
        target = ROOT / link if link.startswith("docs/") else ROOT / "docs" / link
        assert target.is_file(), f"the docs link {link} leads nowhere"


def test_readme_example_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"## Certify your own classifier\s+```python\n(.*?)```", readme, re.S).group(1)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "COMPANION_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.fullmatch(r"(abstain|class \d, certified l2 radius \d+\.\d{3})\n", out.stdout), out.stdout
