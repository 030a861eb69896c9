"""Memory-aware chunks (checked on the CPU with a fake memory budget and fake out-of-memory errors):
a pipeline call is sized from the measured per-sample memory, and an out-of-memory error halves the
call without changing a single vote."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lib.smoothing import Gaussian, Smooth, rows_for_memory


def test_rows_for_memory_fits_the_budget():
    # the case: the full U-Net needs ~3.1 MB per image; 80 GB free, half of it usable
    rows = rows_for_memory(3.1e6, 80e9, fraction=0.5)
    assert rows == int(0.5 * 80e9 // 3.1e6) and rows * 3.1e6 <= 0.5 * 80e9 < (rows + 1) * 3.1e6
    assert rows_for_memory(1e12, 1e9) == 1  # never zero
    for bad in [(0, 1e9), (1e6, 0), (float("nan"), 1e9)]:
        with pytest.raises(ValueError, match="positive"):
            rows_for_memory(*bad)


class TinyMemoryClassifier(nn.Module):
    """A linear model that raises torch.OutOfMemoryError on calls larger than ``limit`` rows."""

    def __init__(self, limit: int):
        super().__init__()
        torch.manual_seed(0)
        self.lin, self.limit, self.calls = nn.Linear(8, 3), limit, []

    def forward(self, x):
        self.calls.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError(f"fake: {x.shape[0]} rows > {self.limit}")
        return self.lin(x)


def test_out_of_memory_halves_the_call_and_keeps_every_vote():
    xs = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    roomy = Smooth(TinyMemoryClassifier(limit=10**9), 3, Gaussian(0.5))
    tight_clf = TinyMemoryClassifier(limit=37)
    tight = Smooth(tight_clf, 3, Gaussian(0.5))
    a = roomy.sample_counts(xs, 500, batch_size=400, generator=torch.Generator().manual_seed(2))
    with pytest.warns(UserWarning, match="out of memory"):
        b = tight.sample_counts(xs, 500, batch_size=400, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)  # same draws, same votes: memory never changes a log
    assert max(c for c in tight_clf.calls[-5:]) <= 37  # later calls fit
    assert tight._max_rows <= 37


def test_out_of_memory_at_one_row_is_raised():
    s = Smooth(TinyMemoryClassifier(limit=0), 3, Gaussian(0.5))
    with pytest.raises(torch.OutOfMemoryError), pytest.warns(UserWarning):
        s._votes_fitting(torch.zeros(4, 8))


def test_memory_batch_size_on_the_cpu_is_the_default():
    s = Smooth(nn.Linear(8, 3), 3, Gaussian(0.5))
    from lib.smoothing import default_batch_size
    assert s.memory_batch_size(torch.zeros(8)) == default_batch_size(8, torch.device("cpu"))


class CallSizes(nn.Module):
    """A small CNN classifier on [B, 1, 28, 28] that records the rows of every call."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.SiLU(), nn.Conv2d(16, 16, 3, padding=1),
                                 nn.SiLU(), nn.Flatten(), nn.Linear(16 * 28 * 28, 10))
        self.calls = []

    def forward(self, x):
        self.calls.append(x.shape[0])
        return self.net(x)


def test_rows_per_call_on_the_cpu_and_on_a_gpu():
    from lib.utils import CPU_CALL_FLOATS, rows_per_call
    assert rows_per_call(784, "cpu") == CPU_CALL_FLOATS // 784 == 83
    assert rows_per_call(3072, torch.device("cpu")) == 21
    assert rows_per_call(10**9, "cpu") == 1  # never zero
    assert rows_per_call(784, torch.device("cuda")) is None  # a GPU takes the whole (memory-sized) chunk
    assert rows_per_call(784, "cpu", convolutional=False) is None  # an MLP runs faster on the whole chunk


def test_convolutions_are_found_in_classifiers_and_denoisers():
    from lib.denoising import annealed_map, identity
    from lib.denoising.nets import ScoreMLP
    from lib.denoising.score import NoiseConditionalScore
    from lib.utils import has_convolution
    assert has_convolution(CallSizes()) and not has_convolution(nn.Linear(8, 3), None, identity())
    for conv, expected in ((0, False), (4, True)):
        score = NoiseConditionalScore(ScoreMLP((1, 28, 28), hidden=8, depth=1, emb_dim=4, conv=conv))
        assert has_convolution(nn.Linear(8, 3), annealed_map(score, Gaussian(0.5), [1.0])) is expected


def test_cpu_calls_are_cache_sized_and_keep_every_vote():
    from lib.utils import rows_per_call
    xs = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    small, whole = CallSizes(), CallSizes()
    a = Smooth(small, 10, Gaussian(0.5)).sample_counts(xs, 700, generator=torch.Generator().manual_seed(2))
    one_call = Smooth(whole, 10, Gaussian(0.5))
    one_call._max_rows = 10**6  # the whole drawn chunk in one call
    b = one_call.sample_counts(xs, 700, generator=torch.Generator().manual_seed(2))
    assert max(small.calls) == rows_per_call(784, "cpu") < max(whole.calls)
    mlp = CallSizes()
    mlp.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))  # no convolution: whole chunks
    Smooth(mlp, 10, Gaussian(0.5)).sample_counts(xs, 700, generator=torch.Generator().manual_seed(2))
    assert max(mlp.calls) == max(whole.calls)
    assert sum(small.calls) == sum(whole.calls) == 2 * 700
    assert torch.equal(a, b)  # the same draws and the same votes


def test_rowwise_denoisers_run_in_cache_sized_blocks_with_the_same_output():
    from lib.denoising import annealed_map, walk_jump
    from lib.denoising.nets import ScoreMLP
    from lib.denoising.score import NoiseConditionalScore
    from lib.utils import rows_per_call
    torch.manual_seed(0)
    score = NoiseConditionalScore(ScoreMLP((1, 28, 28), hidden=32, depth=1, emb_dim=8, conv=4)).eval()
    for p in score.parameters():
        nn.init.normal_(p, std=0.05)
    sizes = []
    score.register_forward_pre_hook(lambda m, args: sizes.append(args[0].shape[0]))
    y = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    den = annealed_map(score, Gaussian(0.5), [1.0, 0.5, 0.1])
    blocked = den(y)
    assert max(sizes) == rows_per_call(784, "cpu") and sum(sizes) == 3 * 200
    sizes.clear()
    whole = annealed_map(score, Gaussian(0.5), [1.0, 0.5, 0.1])
    whole._convolutional = False  # one call per level
    assert torch.equal(blocked, whole(y)) and sizes == [200] * 3  # the same numbers
    sizes.clear()
    wj = walk_jump(score, 0.5, tau=2, seed=0)
    out = wj(y)  # its draws follow the batch: the walk is not split, only its score calls
    assert max(sizes) == rows_per_call(784, "cpu") and sum(sizes) == 4 * 200
    sizes.clear()
    ref = walk_jump(score, 0.5, tau=2, seed=0)
    ref._convolutional = False  # one call per score evaluation: the same draws, the same numbers
    assert torch.equal(out, ref(y)) and sizes == [200] * 4


def test_bench_cpu_checks_the_votes_for_every_rows_per_call_and_process(tmp_path, monkeypatch):
    import importlib.util
    import json
    import sys
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_cpu.py"
    spec = importlib.util.spec_from_file_location("bench_cpu", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(sys, "argv", ["bench_cpu.py", "--threads", "2", "--points", "1", "--num", "200",
                                      "--repeats", "1", "--blocks", "2", "--proc-num", "100", "--pipelines", "cnn,deen",
                                      "--out", str(tmp_path)])
    threads = torch.get_num_threads()
    try:
        bench.main()
    finally:
        torch.set_num_threads(threads)  # the benchmark sets its own
    report = json.loads((tmp_path / "cpu.json").read_text())
    rows = report["rows"]
    monkeypatch.setattr(sys, "argv", ["bench_cpu.py", "--pipelines", "cnn,dncnn+cnn", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"unknown pipelines \['dncnn\+cnn'\]"):
        bench.main()  # a name it does not know is refused, not measured as the CNN alone
    assert [p["pipeline"] for p in report["processes"]] == ["cnn", "deen"]
    assert all(p["logs identical"] for p in report["processes"])
    assert {r["pipeline"] for r in rows} == {"cnn", "deen"} and all(r["votes identical"] for r in rows)
    default = {r["pipeline"]: r["rows per call"] for r in rows if r["default"]}
    assert default == {"cnn": 83, "deen": 334}  # convolutions: cache-sized calls; an MLP: the whole chunk
    layouts = {r["pipeline"]: r for r in report["layouts"]}
    assert set(layouts) == {"cnn", "deen"} and all(r["votes identical"] for r in layouts.values())
    assert all(r["channels-last: samples/s"] > 0 and r["default layout: samples/s"] > 0 for r in layouts.values())


def _random_pipelines():
    """The convolutional pipelines of the notebooks, small and with random weights: (name, classifier,
    denoiser): the CNN alone, DnCNN, one- and multi-step denoisers of a score network with a
    convolutional path, the same through an energy (autograd inside the pipeline), a U-Net score."""
    from lib.denoising import annealed_map, tweedie
    from lib.denoising.denoise import NetworkDenoiser
    from lib.denoising.nets import DnCNN, ScoreMLP, ScoreUNet
    from lib.denoising.score import EnergyScore, NoiseConditionalScore
    from lib.models.classifiers import SmallCNN
    torch.manual_seed(0)

    def scrambled(module):
        for p in module.parameters():  # the output layers start at zero: give them something to do
            nn.init.normal_(p, std=0.05)
        return module.eval()

    cnn = scrambled(SmallCNN((1, 28, 28), 10, width=8, hidden=32))
    mlp = scrambled(NoiseConditionalScore(ScoreMLP((1, 28, 28), hidden=32, depth=1, emb_dim=8, conv=4)))
    energy = scrambled(EnergyScore(ScoreMLP((1, 28, 28), hidden=32, depth=1, emb_dim=8, conv=4, scalar=True)))
    unet = scrambled(NoiseConditionalScore(ScoreUNet((1, 28, 28), base=4, mults=(1, 2), emb_dim=8, groups=2)))
    levels = [1.0, 0.5, 0.1]
    return [("cnn", cnn, None), ("dncnn", cnn, NetworkDenoiser(scrambled(DnCNN(depth=3, features=8)))),
            ("one-step", cnn, tweedie(mlp, 0.5)), ("multi-step", cnn, annealed_map(mlp, Gaussian(0.5), levels)),
            ("energy multi-step", cnn, annealed_map(energy, Gaussian(0.5), levels)),
            ("u-net one-step", cnn, tweedie(unet, 0.5))]


def test_channels_last_weights_inside_pipeline_calls_keep_every_vote(monkeypatch):
    import lib.utils
    from lib.utils import conv_layers
    xs = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    for name, clf, den in _random_pipelines():
        convs = conv_layers(clf, den)
        before = [m.weight for m in convs]
        layouts = []  # per call: (channels-last layout, different from the default one)
        hooks = [m.register_forward_pre_hook(
            lambda m, args: layouts.append((m.weight.is_contiguous(memory_format=torch.channels_last),
                                            not m.weight.is_contiguous()))) for m in convs]
        smooth = Smooth(clf, 10, Gaussian(0.5), denoiser=den)
        fast = smooth.sample_counts(xs, 200, generator=torch.Generator().manual_seed(5))
        # every convolution ran with channels-last weights (the same memory as the default layout when
        # a layer has one input channel; the others were moved)
        assert all(cl for cl, _ in layouts) and any(moved for _, moved in layouts), name
        assert all(m.weight is w and m.weight.data.stride() == w.contiguous().stride()
                   for m, w in zip(convs, before)), name  # given back
        layouts.clear()
        monkeypatch.setattr(lib.utils, "CPU_CHANNELS_LAST", False)
        plain = smooth.sample_counts(xs, 200, generator=torch.Generator().manual_seed(5))
        monkeypatch.setattr(lib.utils, "CPU_CHANNELS_LAST", True)
        assert layouts and not any(moved for _, moved in layouts), name
        assert torch.equal(fast, plain), name  # the same draws and the same votes
        for h in hooks:
            h.remove()


def test_channels_last_gives_the_weights_back_after_an_error():
    from lib.models.classifiers import SmallCNN
    from lib.utils import channels_last
    cnn = SmallCNN((1, 28, 28), 10, width=4, hidden=8)
    weight = cnn.features[3].weight
    with pytest.raises(RuntimeError, match="stop"):
        with channels_last(cnn):
            assert not cnn.features[3].weight.is_contiguous()  # [8, 4, 3, 3] in channels-last layout
            raise RuntimeError("stop")
    assert cnn.features[3].weight is weight and weight.is_contiguous()
    with channels_last(cnn, device="cuda"):  # only on the CPU: a GPU keeps its layout (not measured there)
        assert cnn.features[3].weight.is_contiguous()


def test_bench_cpu_score_variants_report_changed_votes_and_restore_the_network(monkeypatch):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_cpu.py"
    spec = importlib.util.spec_from_file_location("bench_cpu", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    smooth = bench.build("one_step")
    eager = smooth.denoiser.score.net

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler\nsecond line")

    monkeypatch.setattr(torch, "compile", no_compiler)
    rows = bench.score_variants(smooth, "one_step", torch.rand(1, 1, 28, 28), 40, 83, 1)
    assert smooth.denoiser.score.net is eager  # the eager network is put back
    by_variant = {r["variant"]: r for r in rows}
    assert by_variant["torch.compile"] == {"pipeline": "one_step", "variant": "torch.compile",
                                           "unavailable": "RuntimeError: no C++ compiler"}
    bf16 = by_variant["bfloat16 autocast"]
    assert bf16["votes"] == 40 and 0 <= bf16["votes changed"] <= 40 and bf16["ratio"] > 0
    x = torch.rand(3, 1, 28, 28)
    with torch.inference_mode():
        out = bench._Autocast(eager)(x, torch.full((3,), 0.5))
    assert out.dtype == torch.float32 and out.shape == (3, 1, 28, 28)
