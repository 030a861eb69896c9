"""Notebook 10 (every table in one place) under the smoke profile: it renders every registered
table (here a toy one, plus whatever 04-07 registered earlier in the session), writes
figures/RESULTS.md with each title, settings line, finding and published rows, and says which
notebooks have not run."""
import json

import pandas as pd
import pytest

from lib import paths
import lib.reporting as results

pytestmark = pytest.mark.notebook


def test_10_tables(run_notebook, executed_notebook, notebook_outputs, monkeypatch):
    outputs, figures = notebook_outputs / "outputs", notebook_outputs / "figures"
    monkeypatch.setattr(paths, "OUTPUTS", outputs)
    monkeypatch.setattr(paths, "FIGURES", figures)
    log = outputs / "logs" / "99_toy" / "toy.tsv"
    log.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"idx": range(4), "label": 0, "predict": [0, 0, 0, -1], "radius": [0.1, 0.6, 1.2, 0.0],
                  "correct": [1, 1, 1, 0], "time": "0:00:00.010000"}).to_csv(log, sep="\t", index=False)
    results.register_table("99_toy", "toy", {"ours": [log]}, [0.5, 1.0], "A toy table for notebook 10",
                           {"data": "toy", "n": 10, "profile": "smoke"},
                           reference={"Paper T9: ours": [50, 25]}, reference_source="a toy paper")
    specs = results.load_table_specs()
    m = run_notebook("10_tables")
    assert m["tables"] == len(specs) == m["rebuilt"] and not m["failed"]
    text = (figures / "RESULTS.md").read_text()
    for s in specs:
        assert s["title"] in text
        assert "(published)" in text or not s.get("reference")
        # every table of 04-07 names its published counterpart, or says that none exists in numbers
        assert s.get("reference_source"), s["stem"]
        assert f"**Published reference:** {s['reference_source']}" in text
    assert "| ours | 75.0 [" in text and "Paper T9: ours (published)" in text
    assert "**Settings:** data=toy, n=10, profile=smoke." in text
    assert "**Finding (computed from the numbers above):** Ours: best ours at r=0.5–1" in text
    expected_missing = {k for k in ("04", "05", "06", "07") if not any(s["notebook"].startswith(k) for s in specs)}
    assert set(m["missing"]) == expected_missing
    for name in ("99_toy.csv", "99_toy.md", "99_toy.tex"):
        assert (figures / name).exists()
    # every published reference with its own setting, in RESULTS.md and in the executed copy's output
    from lib.reporting import PUBLISHED
    nb = json.loads(executed_notebook("10_tables").read_text())
    out = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    for t in PUBLISHED.values():
        assert t["source"] in text and t["source"] in out
    assert "CIFAR-10 / ImageNet, large networks" not in text + out
