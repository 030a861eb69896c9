"""Shared fixtures: run a notebook under the smoke profile with papermill.

Figures, tables, logs and metrics of the test runs go to a temporary folder (through the
COMPANION_FIGURES / COMPANION_OUTPUTS variables that ``lib.paths`` reads); trained smoke
models are cached under ``data/models`` as in a normal run, so reruns are fast.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def notebook_outputs(tmp_path_factory):
    return tmp_path_factory.mktemp("nb_outputs")


@pytest.fixture(scope="session")
def run_notebook(notebook_outputs):
    """run_notebook("04_empirical_bayes_linear_mnist", **params) -> metrics dict it recorded."""
    import papermill as pm

    def _run(name: str, **params):
        figures = notebook_outputs / "figures"
        outputs = notebook_outputs / "outputs"
        old = {k: os.environ.get(k) for k in ("COMPANION_FIGURES", "COMPANION_OUTPUTS", "MPLBACKEND")}
        os.environ.update(COMPANION_FIGURES=str(figures), COMPANION_OUTPUTS=str(outputs), MPLBACKEND="agg")
        try:
            pm.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"),
                                str(notebook_outputs / f"{name}.ipynb"),
                                parameters={"profile": "smoke", **params},
                                cwd=str(ROOT / "notebooks"), progress_bar=False, kernel_name="python3")
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        metrics = outputs / "metrics" / f"{name.split('_')[0]}_metrics.json"
        assert metrics.exists(), f"{name} recorded no metrics (expected {metrics})"
        return json.loads(metrics.read_text())

    return _run
