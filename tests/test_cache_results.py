"""lib.cache (config-hash model cache) and lib.results (tables, figures, metrics)."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from lib.models import cache
import lib.reporting as results


def _build(cfg):
    torch.manual_seed(cfg["seed"])
    return torch.nn.Linear(cfg["d"], 2)


def test_cache_trains_once_and_reloads_identically(tmp_path):
    calls = []

    def train(model, cfg):
        calls.append(1)
        with torch.no_grad():
            model.weight.add_(1.0)
        return {"loss": [1.0, 0.5]}

    cfg = {"d": 3, "seed": 0}
    m1, h1 = cache.load_or_train("toy", cfg, _build, train, root=tmp_path, verbose=False)
    m2, h2 = cache.load_or_train("toy", cfg, _build, train, root=tmp_path, verbose=False)
    assert len(calls) == 1 and h1 == h2 == {"loss": [1.0, 0.5]}
    assert torch.equal(m1.weight, m2.weight)
    path = cache.checkpoint_path("toy", cfg, tmp_path)
    assert json.loads(path.with_suffix(".json").read_text())["config"] == cfg
    # another config -> another file, trained again
    cache.load_or_train("toy", {"d": 3, "seed": 1}, _build, train, root=tmp_path, verbose=False)
    assert len(calls) == 2


def test_corrupt_checkpoint_is_named(tmp_path):
    cfg = {"d": 2, "seed": 0}
    path = cache.checkpoint_path("toy", cfg, tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(cache.CorruptCheckpointError, match="toy-"):
        cache.load_or_train("toy", cfg, _build, lambda m, c: None, root=tmp_path, verbose=False)


def test_checkpoint_with_code_is_refused(tmp_path):
    """weights_only=True: a pickle carrying arbitrary objects is rejected, not executed."""
    cfg = {"d": 2, "seed": 0}
    path = cache.checkpoint_path("toy", cfg, tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": cfg, "state_dict": {}, "history": object()}, path)
    with pytest.raises(cache.CorruptCheckpointError):
        cache.load_or_train("toy", cfg, _build, lambda m, c: None, root=tmp_path, verbose=False)


def test_tables_and_figures_are_written(tmp_path):
    df = pd.DataFrame({"idx": range(4), "label": [0] * 4, "predict": [0, 0, -1, 1],
                       "radius": [0.2, 1.2, 0.0, 3.0], "correct": [1, 1, 0, 0], "time": ["0:00:00"] * 4})
    table = results.certified_accuracy_table({"a": df, "b": df.assign(radius=df.radius * 2)}, [0.0, 0.5, 1.0])
    assert table.loc["a"].tolist() == [50.0, 25.0, 25.0] and table.loc["b"].tolist() == [50.0, 25.0, 25.0]
    with_ci = results.certified_accuracy_table({"a": df}, [0.0], interval=True)
    assert with_ci.iloc[0, 0].startswith("50.0 [")
    out = results.save_table(table, "table1", "04_x", caption="toy", folder=tmp_path)
    assert {p.name for p in out.values()} == {"04_table1.csv", "04_table1.md", "04_table1.tex"}
    assert "| a |" in (tmp_path / "04_table1.md").read_text()
    np.testing.assert_allclose(results.best_over([df, df.assign(correct=1)], [0.0]), [1.0])
    import matplotlib
    matplotlib.use("agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    out = results.save_figure(fig, "curve", "04_x", folder=tmp_path)
    assert out["png"].stat().st_size > 0 and out["pdf"].name == "04_curve.pdf"


def test_metrics_roundtrip(tmp_path, monkeypatch):
    from lib import paths

    monkeypatch.setattr(paths, "OUTPUTS", tmp_path)
    results.record_metrics("07_ablations", a=1, b=np.float64(0.5))
    results.record_metrics("07_ablations", c=torch.tensor(2.0))
    assert results.read_metrics("07") == {"a": 1, "b": 0.5, "c": 2.0}


def test_profiles():
    from lib import profiles
    assert profiles.get("04", "smoke")["profile"] == "smoke"
    with pytest.raises(ValueError, match="profile"):
        profiles.get("04", "fast")


def test_progress_bar_is_quiet_in_notebooks(capsys, monkeypatch):
    """In headless runs (COMPANION_HEADLESS=1) off a terminal (papermill, CI) the bar refreshes
    at most every 15 s, so an executed notebook does not store hundreds of progress lines;
    disabled bars print nothing."""
    from lib.utils import progress_bar

    monkeypatch.setenv("COMPANION_HEADLESS", "1")
    bar = progress_bar(total=1000, desc="t")
    assert bar.mininterval == 15.0
    for _ in range(1000):
        bar.update(1)
    bar.close()
    assert capsys.readouterr().err.count("\r") <= 3  # first draw and close, not one line per update
    quiet = progress_bar(total=10, disable=True)
    quiet.update(10)
    quiet.set_postfix(loss="1")
    quiet.close()
    assert capsys.readouterr().err == ""


def test_certified_curves_share_one_style(tmp_path):
    """Every certified-accuracy figure: fractions on the y axis, one legend for all panels, the
    same colour for a label in every panel, fonts readable on a projector."""
    import matplotlib
    matplotlib.use("agg")

    logs = {}
    for name, radius in (("a", [0.2, 0.8, 0.0]), ("b", [0.5, 0.5, 1.5])):
        logs[name] = tmp_path / f"{name}.tsv"
        pd.DataFrame({"idx": range(3), "label": 0, "predict": 0, "radius": radius, "correct": 1,
                      "time": "0:00:00.1"}).to_csv(logs[name], sep="\t", index=False)
    fig = results.certified_curves_figure({"σ = 0.25": {"A": [logs["a"]], "B": [logs["b"]]},
                                           "σ = 0.5": {"B": [logs["b"]]}}, radius_caps={"σ = 0.5": 1.0})
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2 and len(fig.legends) == 1 and all(ax.get_legend() is None for ax in axes)
    assert all(ax.get_ylim() == (0.0, 1.0) for ax in axes)
    assert max(max(line.get_ydata()) for ax in axes for line in ax.lines) <= 1.0  # fractions, not %
    color_b = [line.get_color() for ax in axes for line in ax.lines if line.get_label() == "B"]
    assert len(color_b) == 2 and color_b[0] == color_b[1]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["A", "B", "largest certifiable radius"]
    assert min(t.get_fontsize() for t in fig.legends[0].get_texts()) >= 14
    assert axes[0].xaxis.label.get_fontsize() >= 14
