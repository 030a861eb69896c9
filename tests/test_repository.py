"""Repository-level promises: every notebook is tested, source notebooks carry no outputs,
the scripts reject bad arguments, the README's commands exist, no generated files in git."""
import json
import subprocess
from pathlib import Path

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
