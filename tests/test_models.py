"""lib.models: one interface for every classifier, training beats chance, the cache round-trips."""
from __future__ import annotations

import pytest
import torch

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
