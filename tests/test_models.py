"""lib.models: one interface for every classifier, training beats chance, the cache round-trips."""
from __future__ import annotations

import pytest
import torch

import lib
import lib.paths
from lib import models


@pytest.fixture(scope="module")
def mnist_small():
    from lib.data import datasets as data
    x, y = data.load("mnist", "train", limit=2000)
    xt, yt = data.load("mnist", "test", limit=500)
    return x, y, xt, yt


@pytest.mark.parametrize("arch,extra", [("linear", {}), ("mlp", {"hidden": [32]}), ("cnn", {"width": 4, "hidden": 16}),
                                        ("resnet", {"depth": 8, "width": 4})])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_every_arch_maps_images_to_logits(arch, extra, shape):
    model = models.build_classifier({"arch": arch, "in_shape": list(shape), "num_classes": 7, **extra})
    out = model(torch.rand(5, *shape))
    assert out.shape == (5, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("shape", [(5, 32, 28, 28), (3, 2, 7, 9), (4, 64, 14, 14), (2, 3, 3, 2)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_max_pool_2x2_equals_max_pool2d_bit_for_bit(shape, layout):
    pool = models.MaxPool2x2()
    x = torch.randn(shape).relu()  # ReLU: many tied zeros
    special = torch.tensor([float("inf"), -float("inf"), float("nan")])
    x.view(-1)[::7] = special.repeat(x.numel())[: x.view(-1)[::7].numel()]
    x = x.contiguous(memory_format=layout)
    with torch.no_grad():
        fast = pool(x)
    ref = torch.nn.functional.max_pool2d(x, 2)
    assert fast.shape == ref.shape
    assert torch.equal(fast.isnan(), ref.isnan())
    assert torch.equal(fast.nan_to_num(0.0), ref.nan_to_num(0.0))


def test_max_pool_2x2_keeps_max_pool2d_gradients_when_training():
    x = torch.randn(3, 4, 8, 8).relu().requires_grad_()
    models.MaxPool2x2()(x).sum().backward()
    y = x.detach().clone().requires_grad_()
    torch.nn.functional.max_pool2d(y, 2).sum().backward()
    assert torch.equal(x.grad, y.grad)  # ties: the gradient goes to one input, as max_pool2d's
    assert (x.grad.view(3, 4, 4, 2, 4, 2).sum((3, 5)) == 1).all()


def test_linear_classifier_is_one_affine_map():
    model = models.build_classifier({"arch": "linear", "in_shape": [1, 28, 28], "num_classes": 10})
    assert sum(p.numel() for p in model.parameters()) == 784 * 10 + 10
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(model(x), x.flatten(1) @ model.linear.weight.T + model.linear.bias)


def test_resnet_depth_is_6k_plus_2():
    net = models.ResNet((3, 32, 32), 10, depth=14, width=4)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) + 1 == 14  # 3x3 convolutions + the final dense layer
    with pytest.raises(ValueError, match="depth"):
        models.ResNet((3, 32, 32), 10, depth=12)


def test_initial_weights_depend_only_on_seed():
    cfg = {"arch": "mlp", "in_shape": [1, 28, 28], "num_classes": 10, "hidden": [16], "seed": 3}
    state = torch.get_rng_state()
    a, b = models.build_classifier(cfg), models.build_classifier(cfg)
    assert torch.equal(state, torch.get_rng_state()), "building a model must not move the global RNG"
    c = models.build_classifier({**cfg, "seed": 4})
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="arch"):
        models.build_classifier({"arch": "vgg", "in_shape": [1, 28, 28], "num_classes": 10})
    with pytest.raises(TypeError, match="config"):
        models.build_classifier(["linear"])
    with pytest.raises(ValueError, match="in_shape"):
        models.LinearClassifier((784,), 10)
    with pytest.raises(ValueError, match="sigma"):
        models.classifier_config("linear", "mnist", "smoke", noise=None, sigma=0.5)
    with pytest.raises(ValueError, match="sigma"):
        models.classifier_config("linear", "mnist", "smoke", noise="gaussian", sigma=None)
    with pytest.raises(ValueError, match="profile"):
        models.classifier_config("linear", "mnist", "huge")
    with pytest.raises(ValueError, match="optimizer"):
        model = models.build_classifier({"arch": "linear", "in_shape": [1, 4, 4], "num_classes": 2})
        models.train_classifier(model, {"optimizer": "lbfgs"}, data=(torch.rand(8, 1, 4, 4), torch.zeros(8).long()),
                                test_data=(torch.rand(8, 1, 4, 4), torch.zeros(8).long()), progress=False)


def test_config_overrides_win():
    cfg = models.classifier_config("resnet", "cifar10", "full", epochs=3, depth=20)
    assert cfg["epochs"] == 3 and cfg["depth"] == 20 and cfg["in_shape"] == [3, 32, 32]
    assert models.classifier_config("resnet", "cifar10", "full")["depth"] == 110


@pytest.mark.parametrize("arch", ["linear", "mlp"])
def test_training_beats_chance_on_mnist(arch, mnist_small):
    x, y, xt, yt = mnist_small
    cfg = models.classifier_config(arch, "mnist", "smoke", epochs=3, hidden=[64])
    model = models.build_classifier(cfg)
    hist = models.train_classifier(model, cfg, data=(x, y), test_data=(xt, yt), progress=False)
    assert len(hist["loss"]) == 3 and hist["loss"][-1] < hist["loss"][0]
    assert hist["test_accuracy"] > 0.7  # chance is 0.1
    assert hist["test_accuracy"] == pytest.approx(models.accuracy(model, xt, yt))


def test_noise_augmented_training_reports_noisy_accuracy(mnist_small):
    x, y, xt, yt = mnist_small
    cfg = models.classifier_config("linear", "mnist", "smoke", noise="gaussian", sigma=0.5, epochs=2)
    model = models.build_classifier(cfg)
    hist = models.train_classifier(model, cfg, data=(x, y), test_data=(xt, yt), progress=False)
    assert 0.3 < hist["test_accuracy_noisy"] <= 1.0
    assert hist["test_accuracy"] > 0.5


def test_accuracy_checks_lengths():
    model = models.LinearClassifier((1, 4, 4), 3)
    with pytest.raises(ValueError, match="same positive length"):
        models.accuracy(model, torch.rand(4, 1, 4, 4), torch.zeros(3).long())


def test_get_classifier_caches_by_config(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(lib.paths, "MODELS", tmp_path)
    kw = dict(epochs=1, train_limit=300, test_limit=100)
    first, hist1 = models.get_classifier("linear", "mnist", "smoke", seed=1, **kw)
    assert (tmp_path / f"classifier-{first.config_hash}.pt").exists()
    assert (tmp_path / f"classifier-{first.config_hash}.json").exists()
    second, hist2 = models.get_classifier("linear", "mnist", "smoke", seed=1, **kw)
    assert "[cache] loaded" in capsys.readouterr().out
    assert hist1 == hist2 and not second.training
    for (k, v), (k2, v2) in zip(first.state_dict().items(), second.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    other, _ = models.get_classifier("linear", "mnist", "smoke", seed=2, **kw)
    assert other.config_hash != first.config_hash


def test_linear_margin_is_the_distance_to_the_decision_boundary():
    torch.manual_seed(0)
    model = models.LinearClassifier((1, 2, 2), 3).double()
    x = torch.randn(50, 1, 2, 2, dtype=torch.float64)
    y = model(x).argmax(1)
    y[:5] = (y[:5] + 1) % 3  # five misclassified points: margin 0
    m = models.linear_margin(model, x, y)
    assert torch.all(m[:5] == 0) and torch.all(m[5:] > 0)
    w = model.linear.weight.detach()
    for i in range(5, 50):
        # every perturbation shorter than the margin keeps the label ...
        d = torch.randn(500, 4, dtype=torch.float64)
        d = 0.999 * m[i] * d / d.norm(dim=1, keepdim=True)
        assert torch.all(model((x[i].flatten() + d).view(-1, 1, 2, 2)).argmax(1) == y[i])
        # ... and the step to the nearest boundary, slightly extended, changes it
        z = model(x[i:i + 1])[0]
        j = min((k for k in range(3) if k != y[i]), key=lambda k: (z[y[i]] - z[k]) / (w[y[i]] - w[k]).norm())
        step = -(w[y[i]] - w[j]) / (w[y[i]] - w[j]).norm() * m[i] * 1.001
        assert model((x[i].flatten() + step).view(1, 1, 2, 2)).argmax(1).item() != y[i]
    with pytest.raises(TypeError, match="LinearClassifier"):
        models.linear_margin(models.MLPClassifier((1, 2, 2), 3, hidden=[4]), x, y)


# ---------------------------------------------------------------------- the one training loop
def _toy_run(seed=0):
    """A tiny regression model and its seeded StepLoss (batches from one generator)."""
    from lib.models import StepLoss

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(seed + 2))

    def loss_fn(step):
        i = torch.randint(64, (16,), generator=gen)
        return (model(x[i]).squeeze(1) - x[i].sum(1)).square().mean()

    return model, StepLoss(loss_fn, {"batches": gen})


def _run_kwargs():
    return dict(ema=0.9, log_every=7, progress=False,
                schedule=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5))


class _Stop(Exception):
    pass


def test_train_loop_resumes_from_its_checkpoint_to_identical_weights(tmp_path):
    model, loss_fn = _toy_run()
    hist = models.train_loop(model, loss_fn, 50, **_run_kwargs())
    assert hist["iters"] == 50 and hist["step"][-1] == 50 and not model.training
    ckpt = tmp_path / "run.pt"
    interrupted, loss2 = _toy_run()
    inner = loss2.fn

    def crash_at_33(step):
        if step == 33:
            raise _Stop
        return inner(step)

    loss2.fn = crash_at_33
    with pytest.raises(_Stop):
        models.train_loop(interrupted, loss2, 50, checkpoint=ckpt, checkpoint_every=10, **_run_kwargs())
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)  # plain tensors: weights_only loads it
    assert saved["step"] == 30 and saved["steps"] == 50
    resumed, loss3 = _toy_run()
    hist3 = models.train_loop(resumed, loss3, 50, checkpoint=ckpt, checkpoint_every=10, **_run_kwargs())
    for a, b in zip(model.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert hist3["loss"] == hist["loss"] and hist3["step"] == hist["step"]
    assert not ckpt.exists()  # removed once the run is complete


def test_train_loop_refuses_a_checkpoint_of_another_run_and_bad_arguments(tmp_path):
    model, loss_fn = _toy_run()
    ckpt = tmp_path / "run.pt"
    torch.save({"steps": 999, "step": 5, "model": {}}, ckpt)
    with pytest.raises(RuntimeError, match="another run"):
        models.train_loop(model, loss_fn, 20, checkpoint=ckpt, progress=False)
    with pytest.raises(TypeError, match="optimizer"):
        models.train_loop(model, loss_fn, 20, optimizer="adam", progress=False)
    with pytest.raises(ValueError, match="steps"):
        models.train_loop(model, loss_fn, 0, progress=False)
    with pytest.raises(TypeError, match="scalar"):
        models.train_loop(model, lambda step: torch.zeros(3, requires_grad=True), 2, progress=False)


def test_load_or_train_resumes_an_interrupted_training(tmp_path, monkeypatch):
    """The cache trains inside `checkpointing`: a crash leaves a partial checkpoint; the rerun
    resumes from it and caches the same weights as an uninterrupted run."""
    from lib.models import cache, training

    monkeypatch.setattr(training, "CHECKPOINT_EVERY", 10)

    def build(cfg):
        return _toy_run(cfg["seed"])[0]

    def train(model, cfg, crash=None):
        gen = torch.Generator().manual_seed(cfg["seed"] + 1)
        x = torch.randn(64, 4, generator=torch.Generator().manual_seed(cfg["seed"] + 2))

        def fn(step):
            if crash is not None and step == crash:
                raise _Stop
            i = torch.randint(64, (16,), generator=gen)
            return (model(x[i]).squeeze(1) - x[i].sum(1)).square().mean()

        return training.train_loop(model, models.StepLoss(fn, {"batches": gen}), 35, ema=0.9, progress=False,
                                   checkpoint_every=10)

    cfg = {"seed": 0}
    ref, _ = cache.load_or_train("toy", cfg, build, train, root=tmp_path / "a", verbose=False)
    with pytest.raises(_Stop):
        cache.load_or_train("toy", cfg, build, lambda m, c: train(m, c, crash=27), root=tmp_path / "b", verbose=False)
    partial = list((tmp_path / "b").glob("toy-*.partial0.pt"))
    assert len(partial) == 1 and not cache.checkpoint_path("toy", cfg, tmp_path / "b").exists()
    again, _ = cache.load_or_train("toy", cfg, build, train, root=tmp_path / "b", verbose=False)
    for a, b in zip(ref.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert not partial[0].exists()


def _lineage_run(root, steps, seed=0):
    """The toy run of the cache through a lineage (``extend_key="steps"``): Adam, EMA, draws by step."""
    from lib.models import cache, training

    def build(cfg):
        return _toy_run(cfg["seed"])[0]

    def train(model, cfg):
        gen = torch.Generator().manual_seed(cfg["seed"] + 1)
        x = torch.randn(64, 4, generator=torch.Generator().manual_seed(cfg["seed"] + 2))

        def fn(step):
            i = torch.randint(64, (16,), generator=gen)
            return (model(x[i]).squeeze(1) - x[i].sum(1)).square().mean()

        return training.train_loop(model, models.StepLoss(fn, {"batches": gen}), cfg["steps"], ema=0.9,
                                   progress=False, extendable=True)

    return cache.load_or_train("toy", {"seed": seed, "steps": steps}, build, train, root=root, verbose=False,
                               extend_key="steps")


def test_a_longer_run_continues_a_shorter_one_bit_for_bit(tmp_path):
    """A run of 45 steps after one of 20 in the same lineage starts at step 20 and ends with the
    weights of 45 steps from scratch (Adam's moments, the EMA and the generator all carried over)."""
    short, h_short = _lineage_run(tmp_path / "a", 20)
    assert "continued_from" not in h_short and len(list((tmp_path / "a" / "states").glob("toy-*.state0.pt"))) == 1
    longer, h_long = _lineage_run(tmp_path / "a", 45)
    scratch, h_scratch = _lineage_run(tmp_path / "b", 45)
    assert h_long["continued_from"] == 20 and "continued_from" not in h_scratch and h_long["iters"] == 45
    assert any(not torch.equal(a, b) for a, b in zip(short.state_dict().values(), longer.state_dict().values()))
    for a, b in zip(longer.state_dict().values(), scratch.state_dict().values()):
        assert torch.equal(a, b)
    # a shorter run than the kept state cannot start from it: trained from step 0, same as from scratch
    shorter, h = _lineage_run(tmp_path / "a", 10)
    alone, _ = _lineage_run(tmp_path / "c", 10)
    assert "continued_from" not in h
    for a, b in zip(shorter.state_dict().values(), alone.state_dict().values()):
        assert torch.equal(a, b)
    # ... and does not replace the longer run's state: a run of 60 continues from 45
    assert _lineage_run(tmp_path / "a", 60)[1]["continued_from"] == 45


def test_a_damaged_training_state_is_refused_by_name(tmp_path):
    from lib.models import training
    _lineage_run(tmp_path, 20)
    state = next((tmp_path / "states").glob("toy-*.state0.pt"))
    blob = bytearray(state.read_bytes())
    blob[-100] ^= 0xFF
    state.write_bytes(bytes(blob))
    with pytest.raises(RuntimeError, match="does not match its manifest"):
        _lineage_run(tmp_path, 30)
    model, loss_fn = _toy_run()
    with pytest.raises(ValueError, match="schedule cannot be extended"):
        training.train_loop(model, loss_fn, 5, schedule=lambda o: torch.optim.lr_scheduler.StepLR(o, 2),
                            extend_state=tmp_path / "x.pt", progress=False)


def test_the_score_cache_continues_a_shorter_budget(tmp_path, monkeypatch):
    """get_score_model(budget=2) after budget=1 continues the x1 run and equals a x2 run from scratch."""
    from lib.denoising import score as sc
    from lib.models import cache
    monkeypatch.setattr(cache.paths, "MODELS", tmp_path / "a")
    one, _ = sc.get_score_model("mnist", "geometric", "smoke", progress=False, verbose=False)
    two, hist = sc.get_score_model("mnist", "geometric", "smoke", progress=False, verbose=False, budget=2)
    assert hist["continued_from"] == sc.score_config("mnist", "geometric", "smoke")["iters"]
    monkeypatch.setattr(cache.paths, "MODELS", tmp_path / "b")
    fresh, h_fresh = sc.get_score_model("mnist", "geometric", "smoke", progress=False, verbose=False, budget=2)
    assert "continued_from" not in h_fresh
    for a, b in zip(two.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)


def test_classifier_training_resumes_mid_epoch(tmp_path):
    """StepLoss carries the epoch's permutation and the noise generator: a resumed classifier
    run (interrupted inside an epoch) ends with the weights of an uninterrupted one."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(40, 1, 8, 8, generator=g), torch.randint(3, (40,), generator=g)
    cfg = {"arch": "mlp", "hidden": [8], "in_shape": [1, 8, 8], "num_classes": 3, "batch_size": 16, "seed": 0}

    def run(crash=None, checkpoint=None):
        model = models.build_classifier(cfg)
        loss_fn = models.classifier_loss(model, x, y, 16, noise=lib.Gaussian(0.3), seed=0)
        if crash is not None:
            inner = loss_fn.fn

            def fn(step):
                if step == crash:
                    raise _Stop
                return inner(step)

            loss_fn.fn = fn
        models.train_loop(model, loss_fn, 12, torch.optim.Adam(model.parameters(), 1e-2), progress=False,
                          checkpoint=checkpoint, checkpoint_every=4)
        return model

    ref = run()
    with pytest.raises(_Stop):
        run(crash=10, checkpoint=tmp_path / "c.pt")  # checkpoint at step 8, inside the 3rd epoch of 3 steps
    again = run(checkpoint=tmp_path / "c.pt")
    for a, b in zip(ref.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------- cache manifest
def _cached_linear(root):
    from lib.models import cache

    def train(model, cfg):
        with torch.no_grad():
            model.weight.add_(1.0)
        return {"loss": [1.0]}

    build = lambda cfg: torch.nn.Linear(cfg["d"], 2)  # noqa: E731
    cfg = {"d": 3, "seed": 0}
    model, _ = cache.load_or_train("toy", cfg, build, train, root=root, verbose=False)
    return cache, cfg, build, cache.checkpoint_path("toy", cfg, root), model


def test_cache_records_a_sha256_manifest(tmp_path):
    import json

    from lib.utils import sha256_file

    _, _, _, path, _ = _cached_linear(tmp_path)
    manifest = json.loads(path.with_suffix(".json").read_text())
    assert manifest["sha256"] == sha256_file(path) and manifest["bytes"] == path.stat().st_size


@pytest.mark.parametrize("damage", ["zeroed", "nan", "flipped_byte"])
def test_cache_refuses_a_checkpoint_modified_after_it_was_written(tmp_path, damage):
    cache, cfg, build, path, _ = _cached_linear(tmp_path)
    if damage == "flipped_byte":
        raw = bytearray(path.read_bytes())
        raw[-40] ^= 0xFF
        path.write_bytes(bytes(raw))
    else:
        ckpt = torch.load(path, weights_only=True)
        ckpt["state_dict"]["weight"].fill_(0.0 if damage == "zeroed" else float("nan"))
        torch.save(ckpt, path)
    with pytest.raises(cache.CorruptCheckpointError, match=f"{path.name}.*(manifest|Delete)") as err:
        cache.load_or_train("toy", cfg, build, lambda m, c: pytest.fail("retrained"), root=tmp_path, verbose=False)
    assert "Delete" in str(err.value) and str(path) in str(err.value)


def test_cache_refuses_nan_weights_even_with_a_matching_manifest(tmp_path):
    """A checkpoint whose manifest was rewritten to match (or one from before manifests) is
    still refused when a weight is NaN."""
    import json

    cache, cfg, build, path, _ = _cached_linear(tmp_path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"]["bias"][0] = float("nan")
    torch.save(ckpt, path)
    side = path.with_suffix(".json")
    manifest = json.loads(side.read_text())
    manifest.pop("sha256")  # as written before manifests existed
    side.write_text(json.dumps(manifest))
    with pytest.raises(cache.CorruptCheckpointError, match="non-finite.*'bias'"):
        cache.load_or_train("toy", cfg, build, lambda m, c: pytest.fail("retrained"), root=tmp_path, verbose=False)


def test_cache_records_the_manifest_of_an_older_checkpoint_on_first_load(tmp_path):
    import json

    cache, cfg, build, path, model = _cached_linear(tmp_path)
    side = path.with_suffix(".json")
    side.write_text(json.dumps({k: v for k, v in json.loads(side.read_text()).items() if k not in ("sha256", "bytes")}))
    again, _ = cache.load_or_train("toy", cfg, build, lambda m, c: pytest.fail("retrained"), root=tmp_path,
                                   verbose=False)
    assert torch.equal(again.weight, model.weight) and "sha256" in json.loads(side.read_text())


def test_train_loop_stops_on_a_diverged_loss():
    model, _ = _toy_run()
    with pytest.raises(FloatingPointError, match="steps 1..5"):
        models.train_loop(model, lambda step: model[0].weight.sum() * float("nan"), 10, log_every=5, progress=False)
