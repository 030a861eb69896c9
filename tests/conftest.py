"""Shared fixtures: run a notebook under the smoke profile, the way ./run_all.sh does.

Notebooks are executed by ``scripts/run_notebook.py`` (papermill; matplotlib's inline backend in
the kernel, so figures are kept as image outputs; quiet text progress bars). Figures, tables, logs
and metrics of the test runs go to a temporary folder (through the COMPANION_FIGURES /
COMPANION_OUTPUTS variables that ``lib.paths`` reads); trained smoke models are cached under
``data/models`` as in a normal run, so reruns are fast. Each notebook runs at most once per test
session for the same parameters: a second request returns the recorded metrics again.
"""
from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

import lib.utils

ROOT = Path(__file__).resolve().parents[1]

lib.utils.configure_threads()  # torch threads: COMPANION_THREADS, else the usable cores


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"companion_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run_notebook_script = _load_script("run_notebook")


@pytest.fixture(scope="session")
def notebook_outputs(tmp_path_factory):
    return tmp_path_factory.mktemp("nb_outputs")


@pytest.fixture(scope="session")
def run_notebook(notebook_outputs):
    """run_notebook("04_empirical_bayes_linear_mnist", **params) -> metrics dict it recorded."""
    done: dict[tuple, dict] = {}

    def _run(name: str, **params):
        key = (name, json.dumps(params, sort_keys=True, default=str))
        if key not in done:
            figures = notebook_outputs / "figures"
            outputs = notebook_outputs / "outputs"
            run_notebook_script.execute(
                ROOT / "notebooks" / f"{name}.ipynb", notebook_outputs / f"{name}.ipynb",
                parameters={"profile": "smoke", **params}, cwd=ROOT / "notebooks",
                env={"COMPANION_FIGURES": str(figures), "COMPANION_OUTPUTS": str(outputs)})
            metrics = outputs / "metrics" / f"{name.split('_')[0]}_metrics.json"
            assert metrics.exists(), f"{name} recorded no metrics (expected {metrics})"
            done[key] = json.loads(metrics.read_text())
        return copy.deepcopy(done[key])

    return _run


@pytest.fixture(scope="session")
def executed_notebook(notebook_outputs, run_notebook):
    """executed_notebook("00_randomized_smoothing_lecture") -> path of its executed smoke copy."""

    def _path(name: str, **params) -> Path:
        run_notebook(name, **params)
        return notebook_outputs / f"{name}.ipynb"

    return _path
