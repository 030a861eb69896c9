"""Tiny full: the `full` profile's choices at tiny sizes, and its CPU guard.

``COMPANION_TINY=1`` keeps every choice of `full` (architectures: U-Net score network, ResNet-110 on
CIFAR-10, DnCNN-17; sigma grids, radii, alpha, methods, L=32 levels, test points spread over the whole
test set) and replaces its sizes (the tables' ``"sizes"`` sub-dicts) by smoke's, capped further
(lib/profiles.py ``TINY_CAPS``). The notebook runs execute the notebooks that way on the CPU with the explicit opt-in
``COMPANION_ALLOW_CPU=1``, on MNIST (the real caches, linked) and on a tiny CIFAR-10 archive in the
official format (the writer of tests/test_data.py) converted into a temporary ``COMPANION_DATA``.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch

import lib.data as data
from lib import paths, profiles, utils
from lib.data import sources
from lib.utils import sha256_file

from conftest import ROOT, run_notebook_script
from test_data import write_cifar_archive

NOTEBOOKS = [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]
# every notebook, each with the data sets it supports
# (05 on CIFAR-10: ResNet-110 and the U-Net on 3x32x32, trained and certified; the MNIST path of the
# same models runs in 02, 03, 06 and 08; CIFAR-10 for every notebook would double the test's time)
RUN = {nb: ["cifar10"] if nb.startswith("05") else [None] for nb in NOTEBOOKS}


# ---------------------------------------------------------------- the CPU guard
def test_full_refuses_the_cpu_unless_allowed(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # e.g. a driver mismatch
    monkeypatch.delenv(utils.ALLOW_CPU_ENV, raising=False)
    with pytest.raises(utils.DeviceError, match=r"needs a GPU.*COMPANION_ALLOW_CPU=1.*--allow-cpu"):
        profiles.get("05", "full")
    with pytest.raises(utils.DeviceError):
        utils.check_device("full")
    assert profiles.get("05", "quick")["n"] == profiles.SETTINGS["05"]["quick"]["sizes"]["n"]  # other profiles: no guard
    monkeypatch.setenv(utils.ALLOW_CPU_ENV, "1")
    assert utils.check_device("full").type == "cpu"
    assert profiles.get("05", "full")["profile"] == "full"


def test_lecture_threads(monkeypatch):
    monkeypatch.delenv(utils.THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(utils, "usable_cores", lambda: 2)
    old = torch.get_num_threads()
    try:
        assert utils.lecture_threads("quick") == 1
        assert utils.lecture_threads("full") == 2
    finally:
        torch.set_num_threads(old)


def test_estimate_counts_units(capsys):
    calls = []
    seconds = utils.estimate_seconds("probe", lambda: calls.append(1), probe_units=10, total_units=1000,
                                     device="cpu")
    assert len(calls) == 2 and seconds >= 0  # one warm-up, one timed call
    assert "[estimate] probe" in capsys.readouterr().out
    with pytest.raises(ValueError, match="probe_units"):
        utils.estimate_seconds("x", lambda: None, 0, 10)


# ---------------------------------------------------------------- the overlay
def _walk_tiny(table, full, tiny, where):
    """Along the structure of ``table`` (a profile's table, with its sizes and sweeps): every size of
    ``tiny`` at most full's and its cap, every sweep cut to its two ends, every choice full's."""
    assert set(full) == set(tiny), where
    for k, v in table.items():
        if k == profiles.SIZES:
            for name in v:
                f, t = full[name], tiny[name]
                for fv, tv in ((f, t),) if not isinstance(f, dict) else ((f[i], t[i]) for i in f):
                    if isinstance(fv, int) and isinstance(tv, int):
                        assert tv <= fv, f"{where}.{name}"
                    if name in profiles.TINY_CAPS and isinstance(tv, int) and not isinstance(tv, bool):
                        assert tv <= profiles.TINY_CAPS[name], f"{where}.{name}: above its tiny cap"
                    if fv is None and name in profiles.TINY_CAPS:
                        assert tv is not None, f"{where}.{name}: 'all' kept under tiny"
        elif k == profiles.SWEEPS:
            for name, values in v.items():
                ends = values[:1] + values[-1:] if len(values) > 2 else values
                assert tiny[name] == ends, f"{where}.{name}: not cut to its ends"
        elif isinstance(v, dict):
            _walk_tiny(v, full[k], tiny[k], f"{where}.{k}")
        else:
            assert tiny[k] == full[k], f"{where}.{k}: a choice changed under tiny"


@pytest.mark.parametrize("nb", sorted(profiles.SETTINGS))
def test_tiny_keeps_full_choices_and_shrinks_sizes(nb, monkeypatch):
    monkeypatch.setenv(utils.ALLOW_CPU_ENV, "1")
    monkeypatch.delenv(profiles.TINY_ENV, raising=False)
    full = profiles.get(nb, "full")
    monkeypatch.setenv(profiles.TINY_ENV, "1")
    tiny = profiles.get(nb, "full")
    _walk_tiny(profiles.SETTINGS[nb]["full"], full, tiny, nb)


@pytest.mark.parametrize("family", sorted(profiles.MODELS))
def test_tiny_models_keep_full_choices_and_shrink_sizes(family, monkeypatch):
    monkeypatch.delenv(profiles.TINY_ENV, raising=False)
    full = profiles.model_settings(family, "full")
    monkeypatch.setenv(profiles.TINY_ENV, "1")
    _walk_tiny(profiles.MODELS[family]["full"], full, profiles.model_settings(family, "full"), family)


def test_a_new_size_is_shrunk_without_a_key_list(monkeypatch):
    """A size key no list names still takes smoke's value under tiny full (and stays a plain key outside it)."""
    monkeypatch.setitem(profiles.SETTINGS, "10", {"smoke": {"x": 1, profiles.SIZES: {"new_count": 3}},
                                                  "quick": {"x": 1, profiles.SIZES: {"new_count": 30}},
                                                  "full": {"x": 2, profiles.SIZES: {"new_count": 3000}}})
    monkeypatch.setenv(utils.ALLOW_CPU_ENV, "1")
    monkeypatch.delenv(profiles.TINY_ENV, raising=False)
    assert profiles.get("10", "full") == {"x": 2, "new_count": 3000, "profile": "full"}
    monkeypatch.setenv(profiles.TINY_ENV, "1")
    assert profiles.get("10", "full") == {"x": 2, "new_count": 3, "profile": "full"}


def test_tiny_models_keep_the_architectures(monkeypatch):
    monkeypatch.setenv(profiles.TINY_ENV, "1")
    assert profiles.model_settings("classifier/resnet", "full")["depth"] == 110
    assert profiles.model_settings("classifier/resnet", "full")["epochs"] == 1
    score = profiles.model_settings("score", "full")
    assert score["arch"] == "unet" and score["nets"]["unet"]["base"] == 64
    assert max(score["iters"].values()) <= profiles.TINY_CAPS["iters"]
    assert profiles.model_settings("mse", "full")["net"] == {"depth": 17, "features": 64}
    monkeypatch.setenv(profiles.TINY_ENV, "0")
    assert profiles.model_settings("score", "full")["iters"]["multi"] == 100_000


def test_run_all_lists_the_options():
    out = subprocess.run(["bash", str(ROOT / "run_all.sh"), "--help"], capture_output=True, text=True, check=True).stdout
    for flag in ("--tiny", "--allow-cpu", "--dataset"):
        assert flag in out
    bad = subprocess.run(["bash", str(ROOT / "run_all.sh"), "--profile", "quick", "--tiny"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--profile full" in bad.stderr


# ---------------------------------------------------------------- the notebooks, tiny full, on the CPU
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A COMPANION_DATA with the real MNIST / Fashion-MNIST caches (linked) and a tiny CIFAR-10 cache
    converted from an archive in the official format."""
    root = tmp_path_factory.mktemp("tiny_full_data")
    for name in ("mnist", "fashion_mnist"):
        for suffix in (".npz", ".npz.sha256"):
            src = paths.DATA / f"{name}{suffix}"
            if src.exists():
                (root / src.name).symlink_to(src)
    archive = root / "raw" / "cifar10" / data.CIFAR10_ARCHIVE
    archive.parent.mkdir(parents=True)
    write_cifar_archive(archive, per_batch=40, n_test=40)
    mp = pytest.MonkeyPatch()
    mp.setattr(sources, "CIFAR10_SHA256", sha256_file(archive))
    mp.setitem(data.VAL_SIZE, "cifar10", 50)
    try:
        data.fetch("cifar10", root=root)
    finally:
        mp.undo()
    return root


@pytest.mark.notebook
@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_notebook_runs_tiny_full(nb, tiny_data, tmp_path):
    for dataset in RUN[nb]:
        params = {"profile": "full"} | ({"dataset": dataset} if dataset else {})
        outputs = tmp_path / "outputs"
        run_notebook_script.execute(
            ROOT / "notebooks" / f"{nb}.ipynb", tmp_path / f"{nb}.ipynb", parameters=params, cwd=ROOT / "notebooks",
            env={"COMPANION_FIGURES": str(tmp_path / "figures"), "COMPANION_OUTPUTS": str(outputs),
                 "COMPANION_DATA": str(tiny_data), profiles.TINY_ENV: "1", utils.ALLOW_CPU_ENV: "1"})
        metrics = outputs / "metrics" / f"{nb.split('_')[0]}_metrics.json"
        assert metrics.exists(), f"{nb} recorded no metrics under tiny full"
        assert json.loads(metrics.read_text()), f"{nb}: empty metrics"
        if nb[:2] not in ("00", "01", "10"):  # the lecture notebooks and the tables have no long step
            assert "[estimate]" in (tmp_path / f"{nb}.ipynb").read_text(), f"{nb} printed no estimate before long work"


def test_full_classifier_ablation_fits_the_dataset(monkeypatch):
    """07's D.2 ResNet under `full`: ResNet-20 for 15 epochs on MNIST, ResNet-110 (Cohen et al.) on CIFAR-10."""
    import lib.methods
    from lib import models

    monkeypatch.setenv(utils.ALLOW_CPU_ENV, "1")
    monkeypatch.delenv(profiles.TINY_ENV, raising=False)
    cfg = profiles.get("07", "full")
    for dataset, depth, epochs in (("mnist", 20, 15), ("cifar10", 110, 90)):
        setup = lib.methods.Setup.from_profile(cfg, dataset=dataset)
        c = models.classifier_config("resnet", dataset, "full", **setup.classifier_overrides.get("resnet", {}))
        assert (c["depth"], c["epochs"]) == (depth, epochs), dataset
