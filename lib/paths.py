"""Absolute roots of the project, so notebooks and scripts work from any directory.

Every generated file lives under one of these folders; none of them is tracked in git
(``data/`` and ``figures/`` keep only a README).
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: raw downloads, compact data caches and trained-model caches (override: COMPANION_DATA)
DATA = Path(os.environ.get("COMPANION_DATA", ROOT / "data")).resolve()
#: figures and tables written by the notebooks (override: COMPANION_FIGURES)
FIGURES = Path(os.environ.get("COMPANION_FIGURES", ROOT / "figures")).resolve()
#: executed notebooks and per-example certification logs (override: COMPANION_OUTPUTS)
OUTPUTS = Path(os.environ.get("COMPANION_OUTPUTS", ROOT / "outputs")).resolve()
NOTEBOOKS = ROOT / "notebooks"
MODELS = DATA / "models"
LOGS = OUTPUTS / "logs"


def ensure(path: Path) -> Path:
    """Create ``path`` (a folder) if needed and return it."""
    path.mkdir(parents=True, exist_ok=True)
    return path
