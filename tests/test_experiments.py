"""lib.experiments: method registry wiring, log naming, certification logs, findings, RESULTS.md.

The models here are tiny fixed networks (no training), so every test takes well under a second.
"""
import json

import numpy as np
import pandas as pd
import pytest
import torch

import lib.methods
import lib.reporting
import lib.smoothing
from lib.methods import registry as methods
from lib import paths
import lib.reporting as results
from lib.smoothing.logs import log_key
from lib.smoothing import Gaussian, Laplace, make_noise


class _Toy(torch.nn.Module):
    """A fixed linear classifier on [B, 1, 4, 4] inputs with 3 classes."""

    def __init__(self, shift=0.0):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(16, 3, generator=g))
        self.shift = shift

    def forward(self, x):
        return (x.flatten(1) + self.shift) @ self.w


class _ToySetup(lib.methods.Setup):
    """A Setup whose classifiers are toy networks: 'trained with noise' only changes a shift."""

    def classifier(self, noise=None, sigma=None, arch=None):
        cfg = {"arch": "toy", "noise": noise, "sigma": sigma}
        return _Toy(shift=0.0 if noise is None else 0.1), cfg, {"test_accuracy": 1.0}


@pytest.fixture()
def tmp_roots(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "OUTPUTS", tmp_path / "outputs")
    monkeypatch.setattr(paths, "LOGS", tmp_path / "outputs" / "logs")
    monkeypatch.setattr(paths, "FIGURES", tmp_path / "figures")
    monkeypatch.setattr(methods, "_num_classes", lambda dataset: 3)
    return tmp_path


@pytest.fixture()
def identity_method():
    def build(setup, noise):
        pipe = methods._build_none(setup, noise)
        return lib.methods.Pipeline(pipe.classifier, lambda y: y.clone(), pipe.num_classes,
                           {**pipe.config, "denoiser": "identity"})

    m = lib.methods.register_method(lib.methods.Method("identity_test", "identity denoiser", build), replace=True)
    yield m
    lib.methods.METHODS.pop("identity_test")


def _subset(n=12):
    g = torch.Generator().manual_seed(1)
    xs = torch.rand(n, 1, 4, 4, generator=g)
    clf = _Toy()
    ys = clf(xs).argmax(1)
    return lib.methods.TestSubset(xs, ys, list(range(100, 100 + n)), "toy")


def test_identity_denoiser_gives_the_counts_of_no_denoiser(tmp_roots, identity_method):
    setup = _ToySetup(dataset="toy", profile="smoke")
    xs = _subset().xs
    counts = []
    for name in ("none", "identity_test"):
        smooth, _ = lib.methods.build_smooth(name, Gaussian(0.5), setup)
        counts.append(smooth.sample_counts(xs, 200, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(counts[0], counts[1])
    # ... and the same certification rows, written to different logs
    sub = _subset()
    p1 = lib.methods.certify_method("none", Gaussian(0.5), setup, sub, 20, 100, 0.01, "05_x", progress=False)
    p2 = lib.methods.certify_method("identity_test", Gaussian(0.5), setup, sub, 20, 100, 0.01, "05_x", progress=False)
    assert p1 != p2
    a, b = results.read_log(p1), results.read_log(p2)
    pd.testing.assert_frame_equal(a.drop(columns="time"), b.drop(columns="time"))
    assert a["idx"].tolist() == sub.indices


def test_white_box_uses_the_noise_trained_classifier(tmp_roots):
    setup = _ToySetup(dataset="toy", profile="smoke")
    pipe = lib.methods.build_pipeline("white_box", Laplace(0.25), setup)
    assert pipe.config["classifier"] == {"arch": "toy", "noise": "laplace", "sigma": 0.25}
    assert pipe.denoiser is None and pipe.classifier.shift == 0.1
    none = lib.methods.build_pipeline("none", Laplace(0.25), setup)
    assert none.config["classifier"]["noise"] is None


def test_bad_method_and_noise_raise():
    setup = lib.methods.Setup(dataset="mnist", profile="smoke")
    with pytest.raises(ValueError, match="method must be one of"):
        lib.methods.build_pipeline("no-such-method", Gaussian(0.5), setup)
    with pytest.raises(TypeError, match="method"):
        lib.methods.build_pipeline(3, Gaussian(0.5), setup)
    with pytest.raises(ValueError, match="supports noise"):
        lib.methods.build_pipeline("one_step", Laplace(0.5), setup)  # Tweedie is for Gaussian noise only
    # one form of noise: a distribution object; a name (with or without a sigma) is refused, naming that form
    for build in (lib.methods.build_pipeline, lib.methods.build_smooth):
        expected = r"noise must be a noise distribution.*make_noise\('gaussian', 0.5\).*the name 'gaussian'"
        with pytest.raises(TypeError, match=expected):
            build("none", "gaussian", setup)
    with pytest.raises(TypeError, match="noise must be a noise distribution"):
        lib.methods.certify_method("none", 0.5, setup, _subset(), 10, 50, 0.01, "05_x")
    with pytest.raises(ValueError, match="noise must be one of"):
        lib.methods.build_pipeline("none", make_noise("cauchy", 0.5), setup)
    with pytest.raises(ValueError, match="already registered"):
        lib.methods.register_method(lib.methods.METHODS["none"])


def test_log_names_are_stable_and_keyed_by_settings(tmp_roots):
    p = lib.methods.log_path("05_denoised_smoothing_l2", "mnist", "one_step", Gaussian(0.5), "quick", "abc123")
    assert p == paths.LOGS / "05_denoised_smoothing_l2" / "mnist-one_step-gaussian-s0.5-quick-abc123.tsv"
    assert lib.methods.log_path("07_x", "mnist", "multi_step", Laplace(1.0), "smoke", "k", tag="L8").name == \
        "mnist-multi_step-L8-laplace-s1-smoke-k.tsv"
    with pytest.raises(ValueError, match="tag"):
        lib.methods.log_path("07_x", "mnist", "none", Gaussian(1.0), "smoke", "k", tag="a/b")
    key = log_key("none", Gaussian(0.5), {"m": 1}, "s", 10, 100, 0.001, 0)
    assert key == log_key("none", Gaussian(0.5), {"m": 1}, "s", 10, 100, 0.001, 0)
    for other in (log_key("none", Gaussian(0.25), {"m": 1}, "s", 10, 100, 0.001, 0),
                  log_key("none", Gaussian(0.5), {"m": 2}, "s", 10, 100, 0.001, 0),
                  log_key("none", Gaussian(0.5), {"m": 1}, "t", 10, 100, 0.001, 0),
                  log_key("none", Gaussian(0.5), {"m": 1}, "s", 10, 200, 0.001, 0)):
        assert other != key


def test_certify_method_reuses_a_finished_log(tmp_roots):
    setup = _ToySetup(dataset="toy", profile="smoke")
    sub = _subset(6)
    p = lib.methods.certify_method("none", Gaussian(0.25), setup, sub, 10, 50, 0.01, "05_x", progress=False)
    before = p.read_text()
    side = json.loads((p.parent / (p.name + ".json")).read_text())
    assert side["method"] == "none" and side["n"] == 50 and side["profile"] == "smoke" and side["num_points"] == 6
    cpu = json.loads((p.parent / (p.name + ".cpu.json")).read_text())
    assert cpu["rows"] == 6 and "cpu_seconds" in cpu  # a measured figure: reported, never compared
    p2 = lib.methods.certify_method("none", Gaussian(0.25), setup, sub, 10, 50, 0.01, "05_x", progress=False)
    assert p2 == p and p.read_text() == before
    assert json.loads((p.parent / (p.name + ".cpu.json")).read_text()) == cpu  # nothing recomputed
    assert isinstance(lib.smoothing.log_seconds(p), float)  # parsed from the log (its value is a measurement)
    summary = lib.methods.log_summary(p, [0.1, 0.2])
    assert summary["points"] == 6 and 0 <= summary["certified"]["0.2"] <= summary["certified"]["0.1"] <= summary["clean"]
    with pytest.raises(ValueError, match="subset is from"):
        lib.methods.certify_method("none", Gaussian(0.25), lib.methods.Setup(dataset="mnist"), sub, 10, 50, 0.01, "05_x")


def test_test_subset_takes_every_skip_th_point():
    sub = lib.methods.test_subset("mnist", 20)
    assert len(sub) == 20 and sub.indices[:3] == [0, 500, 1000] and sub.xs.shape == (20, 1, 28, 28)
    assert sub.key == lib.methods.test_subset("mnist", 20).key != lib.methods.test_subset("mnist", 10).key
    with pytest.raises(ValueError, match="num"):
        lib.methods.test_subset("mnist", 10 ** 6)


def test_time_column_parsing():
    from lib.smoothing.logs import parse_time

    np.testing.assert_allclose(parse_time(["0:00:01.500000", "1:02:03", "1 day, 0:00:02", "15.4"]),
                               [1.5, 3723, 86402, 15.4])


def _write_log(path, correct, radius):
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame({"idx": range(len(correct)), "label": 0, "predict": 0, "radius": radius,
                       "correct": correct, "time": "0:00:00.100000"})
    df.to_csv(path, sep="\t", index=False)
    return path


def test_finding_and_results_markdown(tmp_roots):
    logs = tmp_roots / "outputs" / "logs" / "05_x"
    n = 200
    a = _write_log(logs / "a.tsv", [1] * 180 + [0] * 20, [1.0] * 180 + [0.0] * 20)   # 90% up to r = 1
    b = _write_log(logs / "b.tsv", [1] * 100 + [0] * 100, [2.0] * 100 + [0.0] * 100)  # 50% up to r = 2
    b2 = _write_log(logs / "b2.tsv", [1] * 20 + [0] * 180, [0.1] * 20 + [0.0] * 180)  # a worse sigma for b
    ref = {"Paper T1 (CIFAR-10): B": [90, 60], "Paper T1 (CIFAR-10): A": [95, 10],
           "Paper T1 (CIFAR-10): C (not ours)": [99, 99]}
    results.register_table("05_x", "t", {"B": [b, b2], "A": [a]}, [0.5, 1.5], "toy table",
                           {"data": "toy", "n": n}, reference=ref, reference_source="a toy paper")
    spec = results.load_table_specs()[0]
    # the registration order survives the JSON spec (written with sorted keys), in every rebuild
    assert list(results.render_table(spec).index[:2]) == ["B", "A"]
    ours, lo, hi, refs = lib.reporting.table_numbers(spec)
    assert list(ours.index) == ["B", "A"] and list(refs.index) == list(ref)
    assert ours.loc["A"].tolist() == [90.0, 90.0, 0.0] and ours.loc["B"].tolist() == [50.0, 50.0, 50.0]
    assert (lo.values <= ours.values).all() and (ours.values <= hi.values).all()
    assert np.isnan(refs.loc["Paper T1 (CIFAR-10): A", "clean"]) and refs.loc["Paper T1 (CIFAR-10): B", "1.5"] == 60
    finding = lib.reporting.table_finding(spec)
    assert "Ours: best A at r=0.5; B at r=1.5" in finding
    assert "Paper T1 (CIFAR-10): best C (not ours) at r=0.5–1.5" in finding
    # A > B at 0.5, B > A at 1.5 in both; both resolved (90% vs 50% on 200 shared points)
    assert ("against Paper T1 (CIFAR-10), over 2 (rows, radius) comparisons where the published rows differ: "
            "the same order in 2 (2 resolved by McNemar's exact test, p < 0.05 each") in finding and "the opposite order in 0 (0 resolved)" in finding
    # ties and radii that nobody certifies are named as such
    spec3 = dict(spec, rows={"A": [str(a)], "A2": [str(a)], "B": [str(b)]}, radii=[0.5, 1.5, 3.0], reference={})
    assert lib.reporting.table_finding(spec3).startswith("Ours: best A = A2 at r=0.5; B at r=1.5; none (0%) at r=3")
    # a contradiction is reported as such
    spec2 = dict(spec, reference={"P: A": [10, 10], "P: B": [90, 5]})
    f2 = lib.reporting.table_finding(spec2)
    assert "the same order in 0 (0 resolved by McNemar's exact test, p < 0.05 each, not adjusted for their number), the opposite order in 2 (2 resolved), a tie in ours in 0" in f2
    # a tie in ours is neither order; one beyond a row's largest certifiable radius is named as such
    spec4 = dict(spec, rows={"A": [str(a)], "A2": [str(a)]}, radii=[0.5, 1.5],
                 reference={"P: A": [10, 10], "P: A2": [90, 5]})
    f4 = lib.reporting.table_finding(spec4)
    assert "the same order in 0 (0 resolved by McNemar's exact test, p < 0.05 each, not adjusted for their number), the opposite order in 0 (0 resolved), a tie in ours in 2" in f4
    # a published row named otherwise is matched to ours through PUBLISHED_AS_OURS
    assert (lib.reporting.published.PUBLISHED_AS_OURS["denoised smoothing, query access (Salman et al.)"]
            == "MSE+Stab denoiser (query access)")
    path, failed = lib.reporting.write_results()
    text = path.read_text()
    assert path == paths.FIGURES / "RESULTS.md" and not failed
    assert "05_t: toy table" in text and "| A |" in text and "(published)" in text and "data=toy" in text
    assert "**Published reference:** a toy paper (the rows marked *(published)*)." in text
    assert "Not yet run" in text and "04 (" in text  # the other notebooks have not registered tables
    # a spec whose logs vanished is reported, not fatal
    b.unlink()
    _, failed = lib.reporting.write_results()
    assert failed == ["05_t"] and "Could not be rebuilt" in (paths.FIGURES / "RESULTS.md").read_text()


def test_paired_difference(tmp_path):
    a = _write_log(tmp_path / "a.tsv", [1] * 50, [1.0] * 50)
    b = _write_log(tmp_path / "b.tsv", [1] * 25 + [0] * 25, [1.0] * 25 + [0.0] * 25)
    d = lib.reporting.paired_difference(a, b)
    assert d["diff"] == pytest.approx(0.5) and d["lo"] > 0 and d["verdict"] == "A better" and d["points"] == 50
    assert lib.reporting.paired_difference(b, a)["verdict"] == "B better"
    assert lib.reporting.paired_difference(a, a)["verdict"] == "not resolved"
    assert lib.reporting.paired_difference(a, b, radius=2.0)["diff"] == 0.0
    # the interval is scipy's paired t interval, the radius test McNemar's exact test
    from scipy.stats import ttest_rel
    from statsmodels.stats.contingency_tables import mcnemar

    c = _write_log(tmp_path / "c.tsv", [1] * 30 + [0] * 20, [0.5] * 10 + [1.5] * 20 + [0.0] * 20)
    d = lib.reporting.paired_difference(a, c)
    ci = ttest_rel([1.0] * 50, [0.5] * 10 + [1.5] * 20 + [0.0] * 20).confidence_interval(0.95)
    assert (d["lo"], d["hi"]) == pytest.approx((ci.low, ci.high))
    d1 = lib.reporting.paired_difference(a, c, radius=1.0)  # A certifies 50 points at r=1, C 20 of them: 30 discordant
    assert d1["diff"] == pytest.approx(0.6) and d1["verdict"] == "A better" and np.isnan(d1["lo"])
    assert d1["p"] == pytest.approx(mcnemar([[20, 30], [0, 0]], exact=True).pvalue)
    few = _write_log(tmp_path / "few.tsv", [1] * 47 + [0] * 3, [1.0] * 47 + [0.0] * 3)
    assert lib.reporting.paired_difference(a, few, radius=1.0)["verdict"] == "not resolved"  # 3 discordant: p = 0.25


@pytest.mark.parametrize("nb", ["05", "06", "07"])
def test_full_profile_cifar10_wiring(nb, monkeypatch):
    """`full` with dataset='cifar10' selects the papers' models (config only, nothing is trained):
    a ResNet-110 classifier (Cohen et al.), a U-Net score network, L=32 levels, n=10,000, n0=100."""
    from lib import profiles
    from lib import models
    from lib.denoising import score

    monkeypatch.setenv("COMPANION_ALLOW_CPU", "1")  # `full` on this CPU: explicitly allowed
    monkeypatch.delenv("COMPANION_TINY", raising=False)
    cfg = profiles.get(nb, "full")
    setup = lib.methods.Setup.from_profile(cfg, dataset="cifar10")
    assert setup.classifier_arch == "resnet" and setup.multi_step["num_levels"] == 32
    clf = models.classifier_config(setup.classifier_arch, "cifar10", "full",
                                   **setup.classifier_overrides.get("resnet", {}))
    assert clf["depth"] == 110 and clf["in_shape"] == [3, 32, 32] and clf["num_classes"] == 10
    sc = score.score_config("cifar10", profile="full", **setup.score)
    assert sc["arch"] == "unet" and len(sc["sigmas"]) == 32
    sizes = cfg["d1"] if nb == "07" else cfg
    assert sizes["n"] == 10_000 and sizes["n0"] == 100 and sizes["alpha"] == 0.001
    # and the same notebooks under MNIST keep the small CNN
    assert lib.methods.Setup.from_profile(cfg, dataset="mnist").classifier_arch == "cnn"


def test_another_notebook_reuses_the_same_run(tmp_roots):
    """06 certifies the Gaussian runs of 05 under its own name; the log module finds 05's log
    (same name = same settings) instead of a hard-coded folder, and nothing is recomputed."""
    setup = _ToySetup(dataset="toy", profile="smoke")
    sub = _subset(6)
    p5 = lib.methods.certify_method("none", Gaussian(0.25), setup, sub, 10, 50, 0.01, "05_x", progress=False)
    p6 = lib.methods.certify_method("none", Gaussian(0.25), setup, sub, 10, 50, 0.01, "06_y", progress=False)
    assert p6 == p5 and not (paths.LOGS / "06_y").exists()
    other = lib.methods.certify_method("none", Gaussian(0.25), setup, sub, 10, 60, 0.01, "06_y", progress=False)
    assert other.parent == paths.LOGS / "06_y"  # other settings: a run of its own


def test_notebook_04_methods_are_registered():
    """Notebook 04's g[h] is "none" with the linear classifier, g[π] the registered "empirical_bayes"."""
    from lib import profiles

    cfg = profiles.get("04", "smoke")
    setup = lib.methods.Setup.from_profile(cfg)
    assert setup.classifier_arch == "linear" and setup.deen == cfg["deen"]
    assert setup.classifier_overrides["linear"]["optimizer"] == cfg["classifier"]["optimizer"]
    assert lib.methods.METHODS["empirical_bayes"].noises == ("gaussian",)
    with pytest.raises(ValueError, match="supports noise"):
        lib.methods.build_pipeline("empirical_bayes", Laplace(0.5), setup)


def test_setup_keeps_model_configuration_apart_from_its_cache():
    from lib import profiles

    setup = lib.methods.Setup.from_profile(profiles.get("05", "smoke"))
    loads = []
    first = setup.cache.get(("toy", 1), lambda: loads.append(1) or ("model",))
    other = setup.replace(classifier_arch="mlp", seed=3)
    assert other.models.classifier_arch == other.classifier_arch == "mlp" and other.seed == 3
    assert setup.classifier_arch == "cnn"  # the original keeps its configuration
    assert other.cache is setup.cache and other.cache.get(("toy", 1), lambda: loads.append(2)) is first
    assert loads == [1]  # loaded once, shared by the copy
    assert lib.methods.Setup(dataset="mnist").cache is not lib.methods.Setup(dataset="mnist").cache  # no cache shared by accident
    with pytest.raises(AttributeError, match="no_such_field"):
        setup.no_such_field


def test_plateau_table_separates_a_flat_run_from_a_falling_one():
    """A run whose loss is flat over its last fifth meets the plateau criterion; one that still falls
    by 5% per tenth does not and counts as still improving; a run with too few windows is undetermined."""
    import numpy as np
    from lib.experiments import denoisers as study
    rng = np.random.default_rng(0)
    steps = np.arange(1, 101) * 10
    flat = {"step": steps.tolist(), "loss": (0.1 * (1 + 0.002 * rng.standard_normal(100))).tolist()}
    falling = {"step": steps.tolist(), "loss": (0.1 * 0.95 ** (steps / 100) * (1 + 0.002 * rng.standard_normal(100))).tolist()}
    tiny = {"step": [1, 2, 3], "loss": [0.3, 0.2, 0.1]}
    table, line = study.plateau_table({"flat": flat, "falling": falling, "tiny": tiny})
    assert table.loc["flat", "at a plateau"] is True or table.loc["flat", "at a plateau"] == True  # noqa: E712
    assert table.loc["falling", "at a plateau"] == False  # noqa: E712
    assert table.loc["falling", "fall low"] > 0.03 and abs(table.loc["flat", "fall"]) < 0.005
    assert table.loc["tiny", "at a plateau"] is None
    assert "1 of 3 runs meet it" in line and "1 of 3 were still improving" in line and "1 logged too few" in line
    with pytest.raises(ValueError, match="tail"):
        study.plateau_table({"flat": flat}, tail=0.6)


def test_table_rows_by_noise_and_by_sigma():
    logs = {("none", 0.5): "a", ("white_box", 0.5): "b", ("none", 0.25): "c", ("white_box", 0.25): "d"}
    by_sigma = lib.methods.rows_by_sigma(logs, {"none": "h"})  # white_box: its registry label
    assert list(by_sigma.items()) == [("h, σ=0.25", ["c"]), ("white-box, σ=0.25", ["d"]),
                                      ("h, σ=0.5", ["a"]), ("white-box, σ=0.5", ["b"])]
    by_noise = lib.methods.rows_by_noise({"laplace": logs, "uniform": {("none", 1.0): "e"}},
                                         {"laplace": "Laplace", "uniform": "uniform"})
    assert list(by_noise.items()) == [("no denoiser, Laplace", ["a", "c"]), ("white-box, Laplace", ["b", "d"]),
                                      ("no denoiser, uniform", ["e"])]
    # the curve panels: one per sigma, every method that ran there in the logs' order, or the methods asked for
    assert lib.methods.panels_by_sigma(logs, [0.5, 0.25]) == {
        "σ = 0.5": {"no denoiser": ["a"], "white-box": ["b"]}, "σ = 0.25": {"no denoiser": ["c"], "white-box": ["d"]}}
    assert lib.methods.panels_by_sigma(logs, [0.25], ["white_box", "none"], {"none": "h"}) == {
        "σ = 0.25": {"white-box": ["d"], "h": ["c"]}}
    with pytest.raises(KeyError):
        lib.methods.panels_by_sigma(logs, [1.0], ["none"])  # a run asked for that is not there


def test_d2_paired_tests_every_pair_and_adjusts_for_all_of_them(tmp_path):
    from statsmodels.stats.contingency_tables import mcnemar
    from statsmodels.stats.multitest import multipletests

    from lib.experiments.ablations import d2_paired, d2_verdict

    n = 60
    weak = _write_log(tmp_path / "weak.tsv", [1] * 10 + [0] * 50, [1.0] * 10 + [0.0] * 50)
    mid = _write_log(tmp_path / "mid.tsv", [1] * 40 + [0] * 20, [1.0] * 40 + [0.0] * 20)
    strong = _write_log(tmp_path / "strong.tsv", [1] * 42 + [0] * 18, [1.0] * 12 + [0.3] * 30 + [0.0] * 18)
    logs = {"weak": {("one_step", 0.5): weak}, "mid": {("one_step", 0.5): mid},
            "strong": {("one_step", 0.5): strong, ("one_step", 1.0): strong}}
    out = d2_paired(["weak", "mid", "strong"], logs, [0.25, 0.5])
    # three pairs, the one shared sigma, two radii
    assert len(out) == 6 and set(out["sigma"]) == {0.5} and (out["points"] == n).all()
    row = out[(out["more accurate"] == "mid") & (out["less accurate"] == "weak") & (out["radius"] == 0.5)].iloc[0]
    assert row["difference (pts)"] == pytest.approx(50.0)
    assert row["McNemar p"] == pytest.approx(mcnemar([[10, 30], [0, 20]], exact=True).pvalue)
    assert list(out["Holm p"]) == pytest.approx(list(multipletests(out["McNemar p"], method="holm")[1]))
    # at r = 0.5 the strongest certifies 12 points against the middle one's 40: a resolved inversion
    inv = out[(out["more accurate"] == "strong") & (out["less accurate"] == "mid") & (out["radius"] == 0.5)].iloc[0]
    assert inv["verdict"] == "more accurate certifies less"
    sentence = d2_verdict(out)
    counts = out["verdict"].value_counts()
    assert f"({len(out)} tests, Holm-adjusted" in sentence and "is contradicted here in" in sentence
    assert f"more in {counts['more accurate certifies more']}, less in {counts['more accurate certifies less']}" in sentence
    assert "strong < mid at r=0.5, sigma=0.5" in sentence
    # no resolved difference: neither the claim nor its contrary is said to hold
    tie = d2_paired(["weak", "mid"], {"weak": {("one_step", 0.5): weak}, "mid": {("one_step", 0.5): weak}}, [0.5])
    assert tie["verdict"].tolist() == ["not resolved"] and "neither Lee D.2 nor its contrary" in d2_verdict(tie)
    support = d2_paired(["weak", "mid"], {"weak": {("one_step", 0.5): weak}, "mid": {("one_step", 0.5): mid}}, [0.5])
    assert "no test contradicts Lee D.2" in d2_verdict(support) and "and 1 support it" in d2_verdict(support)


def test_budget_verdict_reads_the_metric_the_claim_is_about(tmp_path):
    """A claim made at one radius is checked on the certified accuracy there, not on the ACR: here A
    certifies every point at r = 0 with a small radius and B half of them with a large one, so A - B is
    +50 points at r = 0 and -0.4 in ACR."""
    from lib.reporting import BUDGET_VERDICTS, budget_comparison
    runs = []
    for k in (1, 2):
        a = _write_log(tmp_path / f"a{k}.tsv", [1] * 100, [0.1] * 100)
        b = _write_log(tmp_path / f"b{k}.tsv", [1] * 50 + [0] * 50, [1.0] * 50 + [0.0] * 50)
        runs.append({"sigma": 0.5, "budget": float(k), "a": str(a), "b": str(b)})
    by_acr = budget_comparison(runs, 0.0, claim="better")[0]
    at_zero = budget_comparison(runs, 0.0, claim="better", metric="radius")[0]
    assert by_acr["verdict"] == BUDGET_VERDICTS[0]  # the ACR interval lies below 0 at both budgets
    assert at_zero["verdict"] == BUDGET_VERDICTS[3]  # at r = 0, A - B = +0.5 with an interval above 0
    assert at_zero["budgets"][0]["at_radius"]["diff"] == pytest.approx(0.5) and at_zero["budgets"][0]["at_radius"]["lo"] > 0
    with pytest.raises(ValueError, match="metric"):
        budget_comparison(runs, 0.0, metric="median")


def test_paired_table_adjusts_its_rows_for_their_number(tmp_path):
    """Each row keeps its own test; ``Holm p`` is statsmodels' Holm adjustment over the table's rows."""
    from statsmodels.stats.multitest import multipletests
    from lib.methods import paired_table
    logs = {}
    for s, k in ((0.25, 30), (0.5, 45)):
        logs[("one_step", s)] = _write_log(tmp_path / f"a{s}.tsv", [1] * 60, [1.0] * 60)
        logs[("none", s)] = _write_log(tmp_path / f"b{s}.tsv", [1] * k + [0] * (60 - k), [0.5] * k + [0.0] * (60 - k))
    t = paired_table(logs, [("one_step", "none")])
    assert list(t["sigma"]) == [0.25, 0.5] and {"p", "Holm p", "95% CI", "verdict"} <= set(t.columns)
    assert list(t["Holm p"]) == pytest.approx(list(multipletests(t["p"], method="holm")[1]), abs=1e-4)
    assert (t["Holm p"] >= t["p"]).all()
    at_r = paired_table(logs, [("one_step", "none")], radius=0.75)  # McNemar's p in the same column
    assert "95% CI" not in at_r and (at_r["A - B"] > 0).all() and (at_r["Holm p"] >= at_r["p"]).all()
