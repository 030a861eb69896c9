"""lib.smoothing.logs and certify_dataset: logs that can be trusted.

Each test reproduces a way the old log layer silently produced wrong tables: two writers on one
log, resume by line count, an unvalidated reader, a weak settings check, locuslab's float times,
a corrupt sidecar, files unreadable by collaborators. Tiny fixed models: every test is fast.
"""
import json
import os
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from lib.smoothing import Gaussian, Smooth, certify_dataset
from lib.smoothing import logs
from lib.smoothing.logs import LogError, LogLockedError


class _Toy(torch.nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(4, 3, generator=g))

    def forward(self, x):
        return x.flatten(1) @ self.w


def _data(n=10):
    xs = torch.rand(n, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    return xs, _Toy()(xs).argmax(1)


def _smooth(seed=0):
    return Smooth(_Toy(seed), 3, Gaussian(0.25))


def _run(path, smooth=None, n=10, **kw):
    xs, ys = _data(n)
    kw.setdefault("chunk", 4)
    return certify_dataset(smooth or _smooth(), xs, ys, 5, 40, 0.01, path, progress=False, **kw)


# ---------------------------------------------------------------------- one writer per log
def test_a_second_writer_is_refused_and_named(tmp_path):
    """While a run holds the log, a second run on it (here started from inside the first one's
    certify function) gets an error naming the path and the holder's pid, and writes nothing."""
    path = tmp_path / "log.tsv"
    smooth = _smooth()
    seen = []

    def certify(x, n0, n, alpha, batch_size=None, generator=None):
        if not seen:
            with pytest.raises(LogLockedError, match=rf"{path}.*pid {os.getpid()}"):
                _run(path)
            seen.append(1)
        return smooth.certify_batch(x, n0, n, alpha, batch_size=batch_size, generator=generator)

    df = _run(path, smooth, certify=certify)
    assert seen and df["idx"].tolist() == list(range(10))  # every idx once, not twice


def test_a_writer_in_another_process_is_refused(tmp_path):
    path = tmp_path / "log.tsv"
    code = textwrap.dedent(f"""
        import sys, time
        from lib.smoothing.logs import log_lock
        with log_lock({str(path)!r}):
            print("locked", flush=True)
            sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=os.getcwd())
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(LogLockedError, match=rf"pid {proc.pid}"):
            _run(path)
        assert not path.exists()
    finally:
        proc.communicate("\n", timeout=60)
    assert len(_run(path)) == 10  # the lock is released with its holder


# ---------------------------------------------------------------------- resume by idx
def test_resume_after_a_torn_line_gives_the_uninterrupted_rows(tmp_path):
    full = _run(tmp_path / "full.tsv")
    part = tmp_path / "part.tsv"
    _run(part)
    lines = part.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:6]) + lines[6][:5])  # 5 finished rows and a torn sixth
    with pytest.warns(UserWarning, match="torn"):
        resumed = _run(part)
    pd.testing.assert_frame_equal(resumed.drop(columns="time"), full.drop(columns="time"))


def test_a_complete_log_is_reused_without_drawing(tmp_path):
    """10 points in blocks of 4: the last block is partial; rerunning a complete log must not redo it."""
    path = tmp_path / "log.tsv"
    first = _run(path)
    calls = []

    def certify(x, n0, n, alpha, batch_size=None, generator=None):
        calls.append(len(x))
        raise AssertionError("a complete log was certified again")

    again = _run(path, certify=certify)
    assert calls == []
    pd.testing.assert_frame_equal(again, first)


@pytest.mark.parametrize("damage, line", [
    (lambda ls: ls[:3] + ls[4:], 4),                              # a middle row lost: idx 2 then 4
    (lambda ls: ls[:3] + ["x\t1\t1\t0.5\t1\t0:00:00\n"] + ls[3:], 4),  # a junk row with six fields
    (lambda ls: ls[:3] + ls[2:], 4),                              # a duplicated row
])
def test_resume_refuses_rows_that_are_not_the_expected_idx(tmp_path, damage, line):
    path = tmp_path / "log.tsv"
    _run(path)
    lines = path.read_text().splitlines(keepends=True)[:7]
    path.write_text("".join(damage(lines)))
    before = path.read_text()
    with pytest.raises(LogError, match=rf"line {line}"):
        _run(path)
    assert path.read_text() == before  # nothing deleted


def test_a_damaged_header_is_an_error_not_a_wipe(tmp_path):
    path = tmp_path / "log.tsv"
    _run(path)
    text = path.read_text().replace("radius", "radiu", 1)
    path.write_text(text)
    with pytest.raises(LogError, match="line 1"):
        _run(path)
    assert path.read_text() == text


# ---------------------------------------------------------------------- read_log validates
def _write(path, rows, time="0:00:00.100000"):
    df = pd.DataFrame(rows, columns=["idx", "label", "predict", "radius", "correct"]).assign(time=time)
    df.to_csv(path, sep="\t", index=False)
    return path


def test_read_log_validates_types_uniqueness_and_count(tmp_path):
    good = [[0, 1, 1, 0.5, 1], [1, 2, 2, 0.0, 1], [2, 0, -1, 0.0, 0]]
    assert len(logs.read_log(_write(tmp_path / "ok.tsv", good))) == 3
    with pytest.raises(LogError, match="line 3: idx 0 appears twice"):
        logs.read_log(_write(tmp_path / "dup.tsv", [good[0], good[0], good[2]]))
    with pytest.raises(LogError, match="line 4: column 'radius'"):
        logs.read_log(_write(tmp_path / "nan.tsv", good[:2] + [[2, 0, 0, "abc", 1]]))
    with pytest.raises(LogError, match="line 2: column 'correct'"):
        logs.read_log(_write(tmp_path / "c.tsv", [[0, 1, 1, 0.5, 7]]))
    with pytest.raises(LogError, match="column 'time'"):
        logs.read_log(_write(tmp_path / "t.tsv", good, time="soon"))
    # an interrupted run: the sidecar says 10 points, the log has 4
    path = tmp_path / "part.tsv"
    _run(path)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:5]))
    with pytest.raises(LogError, match="4 rows but its sidecar says num_points=10"):
        logs.read_log(path)
    assert len(logs.read_log(path, complete=False)) == 4


def test_cohen_float_time_log(tmp_path):
    """locuslab/smoothing's published logs have plain-seconds times; no sidecar -> unknown rate is NaN."""
    from lib.methods import log_summary

    path = tmp_path / "noise_0.25" / "test" / "sigma_0.25"
    path.parent.mkdir(parents=True)
    path.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
                    "0\t3\t3\t0.591\t1\t15.4\n20\t8\t8\t0.942\t1\t15.3\n40\t0\t-1\t0.0\t0\t15.3\n")
    assert logs.log_seconds(path) == pytest.approx(46.0)
    summary = log_summary(path, [0.5])
    assert summary["seconds"] == pytest.approx(46.0) and summary["certified"]["0.5"] == pytest.approx(2 / 3)
    assert np.isnan(summary["samples_per_second"]) and np.isnan(summary["cpu_seconds"])


# ---------------------------------------------------------------------- settings and identities
def test_sidecar_holds_the_identity_of_models_data_and_indices(tmp_path):
    path = tmp_path / "log.tsv"
    _run(path, settings={"dataset": "toy", "split": "test"}, batch_size=16)
    meta = json.loads(logs.sidecar_path(path).read_text())
    for key in ("model_fingerprint", "indices_hash", "data_hash", "batch_size", "dataset", "split", "num_points"):
        assert key in meta, key
    assert meta["batch_size"] == 16 and meta["num_points"] == 10
    # other weights (same architecture and config), other indices, other batch size: refused
    with pytest.raises(LogError, match="model_fingerprint"):
        _run(path, smooth=_smooth(seed=1), settings={"dataset": "toy", "split": "test"}, batch_size=16)
    with pytest.raises(LogError, match="indices_hash"):
        _run(path, indices=range(100, 110), settings={"dataset": "toy", "split": "test"}, batch_size=16)
    with pytest.raises(LogError, match="batch_size"):
        _run(path, settings={"dataset": "toy", "split": "test"})
    assert logs.model_fingerprint(_Toy(0)) == logs.model_fingerprint(_Toy(0)) != logs.model_fingerprint(_Toy(1))


def test_a_log_without_its_sidecar_is_refused(tmp_path):
    path = tmp_path / "log.tsv"
    _run(path)
    logs.sidecar_path(path).unlink()
    before = path.read_text()
    with pytest.raises(LogError, match="no sidecar"):
        _run(path)
    assert path.read_text() == before and not logs.sidecar_path(path).exists()


@pytest.mark.parametrize("kw, error", [({"alpha": 2.0}, ValueError), ({"n": 0}, ValueError),
                                        ({"chunk": 0}, ValueError), ({"batch_size": 1.5}, TypeError),
                                        ({"indices": [0] * 10}, ValueError)])
def test_bad_arguments_write_nothing(tmp_path, kw, error):
    path = tmp_path / "log.tsv"
    xs, ys = _data()
    args = {"n0": 5, "n": 40, "alpha": 0.01, **kw}
    with pytest.raises(error):
        certify_dataset(_smooth(), xs, ys, args.pop("n0"), args.pop("n"), args.pop("alpha"), path,
                        progress=False, **args)
    assert list(tmp_path.iterdir()) == []
    assert len(_run(path)) == 10  # the correct rerun is not blocked


def test_corrupt_sidecar_is_named(tmp_path):
    path = tmp_path / "log.tsv"
    _run(path)
    logs.sidecar_path(path).write_text("{not json")
    with pytest.raises(LogError, match="log.tsv.json"):
        _run(path)
    with pytest.raises(LogError, match="log.tsv.json"):
        logs.read_log(path)


# ---------------------------------------------------------------------- extra columns, names, files
def test_extra_columns_follow_cohens_six(tmp_path):
    smooth = _smooth()

    def certify(x, n0, n, alpha, batch_size=None, generator=None):
        pred, rad = smooth.certify_batch(x, n0, n, alpha, batch_size=batch_size, generator=generator)
        return pred, rad, {"samples": [n] * len(pred), "n_a": list(range(len(pred)))}

    df = _run(tmp_path / "log.tsv", smooth, certify=certify, columns=("samples", "n_a"))
    assert list(df.columns) == logs.LOG_COLUMNS + ["samples", "n_a"]
    assert (df["samples"] == 40).all() and df["samples"].dtype.kind == "i"
    plain = _run(tmp_path / "plain.tsv")
    pd.testing.assert_frame_equal(df[logs.LOG_COLUMNS].drop(columns="time"), plain.drop(columns="time"))
    with pytest.raises(ValueError, match="extra columns"):
        _run(tmp_path / "bad.tsv", smooth, certify=certify, columns=("samples",))


def test_log_names_and_lookup(tmp_path, monkeypatch):
    from lib import paths

    monkeypatch.setattr(paths, "LOGS", tmp_path / "logs")
    p = logs.log_path("05_x", "mnist", "one_step", Gaussian(0.5), "quick", "abc")
    assert p == tmp_path / "logs" / "05_x" / "mnist-one_step-gaussian-s0.5-quick-abc.tsv"
    q = logs.log_path("06_y", "mnist", "one_step", Gaussian(0.5), "quick", "abc")
    assert logs.find_log(q) == q  # nothing written yet
    _run(p)
    assert logs.find_log(q) == p  # the same run, written by notebook 05_x
    with pytest.raises(ValueError, match="tag"):
        logs.log_path("05_x", "mnist", "none", Gaussian(1.0), "smoke", "k", tag="a/b")


def test_files_respect_the_umask(tmp_path):
    from lib.utils import atomic_write_text

    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "table.md", "x")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o077)
        assert stat.S_IMODE(atomic_write_text(tmp_path / "private.md", "x").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_a_first_format_sidecar_is_adopted_only_when_its_settings_agree(tmp_path):
    """Logs written before fingerprints existed: resumed (with a warning) when every setting they
    recorded agrees, refused otherwise."""
    path = tmp_path / "log.tsv"
    _run(path)
    side = logs.sidecar_path(path)
    meta = json.loads(side.read_text())
    old = {k: v for k, v in meta.items() if k not in logs._NEW_KEYS}
    side.write_text(json.dumps(old))
    with pytest.warns(UserWarning, match="predates"):
        assert len(_run(path)) == 10
    assert json.loads(side.read_text()) == meta
    side.write_text(json.dumps({**old, "n": 41}))
    with pytest.raises(LogError, match="'n'"):
        _run(path)


def test_a_decision_log_counts_its_samples_column_alone(tmp_path):
    """A decision-mode log's `samples` already hold the candidate's votes: samples per second is
    their sum over the elapsed time, with no n0 added (a sequential or fixed log adds n0 per point)."""
    from lib.methods import log_summary
    from lib.smoothing import log_elapsed_seconds
    from lib.smoothing.decision import decision_procedure, decision_settings

    radii = [0.1, 0.2]
    path = tmp_path / "decision.tsv"
    _run(path, certify=decision_procedure(radii)(_smooth()), columns=["samples"], settings=decision_settings(radii))
    df, meta = logs.read_log(path), logs.read_settings(path)
    assert meta["procedure"] == "decision" and (df["samples"] >= meta["n0"]).all()
    summary = log_summary(path, radii)
    assert summary["samples_per_second"] == pytest.approx(df["samples"].sum() / log_elapsed_seconds(path))
