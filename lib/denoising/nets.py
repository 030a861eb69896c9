"""Network architectures for score models and denoisers (no torchvision needed).

* :class:`ScoreMLP` -- a noise-conditional MLP ``(y [B, *shape], sigma [B]) -> [B, *shape]``
  (or ``[B]`` with ``scalar=True``, an energy). Cheap on a CPU: the MNIST default of the
  quick profile.
* :class:`ScoreUNet` -- a small NCSN/DDPM-style U-Net (residual blocks, GroupNorm, SiLU,
  the noise level added to every block through an embedding), for GPUs and CIFAR-10.
* :class:`DnCNN` -- Zhang et al. (2017)'s residual denoiser, the MSE-trained baseline of
  Salman et al. (2020) ("denoised smoothing"): ``y -> y - noise_estimate(y)``.

The conditional networks see the noise level through ``log sigma`` (a Fourier-feature
embedding), never through an index into a fixed grid, so one network serves every
``sigma > 0`` (interpolating between the levels it was trained on). Score *scaling*
(``s = net / sigma``) and input preconditioning live in :mod:`lib.denoising.score`, not here.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from lib.utils import check_count

__all__ = ["SigmaEmbedding", "ScoreMLP", "ScoreUNet", "DnCNN", "build_net", "ARCHITECTURES"]


class SigmaEmbedding(nn.Module):
    """``sigma [B] -> [B, dim]``: fixed Fourier features of ``log sigma`` and a 2-layer MLP."""

    def __init__(self, dim: int = 64, num_freqs: int = 16, max_freq: float = 8.0):
        super().__init__()
        self.register_buffer("freqs", torch.linspace(0.5, max_freq, num_freqs) * math.pi / 4,
                             persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * num_freqs + 1, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        t = sigma.log()[:, None]
        ang = t * self.freqs[None, :]
        return self.mlp(torch.cat([t, ang.sin(), ang.cos()], dim=1))


class ScoreMLP(nn.Module):
    """Noise-conditional MLP on flattened inputs, with an optional small convolutional path.

    ``forward(y [B, *shape], sigma [B]) -> [B, *shape]`` (or ``[B]`` if ``scalar``).
    ``depth`` residual blocks ``h <- h + W2 silu(LN(W1 silu(h) + U emb(sigma)))`` of width
    ``hidden``; the last layer starts at zero, so an untrained network outputs 0.

    ``conv = k > 0`` adds a full-resolution path of three 3x3 convolutions (k channels, the
    noise embedding added after the first), summed into the output (for ``scalar``: its
    per-pixel map is summed into the energy). A plain MLP must squeeze every image through
    ``hidden`` units and cannot represent local detail, which is what denoising at small
    sigma needs; this cheap local path supplies it.
    """

    def __init__(self, shape=(1, 28, 28), hidden: int = 512, depth: int = 3, emb_dim: int = 64,
                 scalar: bool = False, conv: int = 0):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.scalar = bool(scalar)
        d = math.prod(self.shape)
        hidden = check_count("hidden", hidden)
        depth = check_count("depth", depth)
        self.embed = SigmaEmbedding(emb_dim)
        self.conv = None
        if conv:
            if len(self.shape) != 3:
                raise ValueError("conv > 0 needs image inputs [C, H, W]")
            c = self.shape[0]
            self.conv = nn.ModuleDict(dict(c1=nn.Conv2d(c, conv, 3, padding=1), emb=nn.Linear(emb_dim, conv),
                                           c2=nn.Conv2d(conv, conv, 3, padding=1), c3=nn.Conv2d(conv, c, 3, padding=1)))
            nn.init.zeros_(self.conv["c3"].weight)
            nn.init.zeros_(self.conv["c3"].bias)
        self.inp = nn.Linear(d, hidden)
        self.blocks = nn.ModuleList()
        for _ in range(depth):
            self.blocks.append(nn.ModuleDict(dict(
                lin1=nn.Linear(hidden, hidden), emb=nn.Linear(emb_dim, hidden),
                norm=nn.LayerNorm(hidden), lin2=nn.Linear(hidden, hidden))))
        self.out = nn.Linear(hidden, 1 if self.scalar else d)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.act = nn.SiLU()

    def forward(self, y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        e = self.act(self.embed(sigma))
        h = self.inp(y.flatten(1))
        for b in self.blocks:
            z = b["lin1"](self.act(h)) + b["emb"](e)
            h = h + b["lin2"](self.act(b["norm"](z)))
        out = self.out(self.act(h))
        out = out[:, 0] if self.scalar else out.view(-1, *self.shape)
        if self.conv is not None:
            c = self.conv
            g = self.act(c["c1"](y) + c["emb"](e)[:, :, None, None])
            local = c["c3"](self.act(c["c2"](g)))
            out = out + (local.flatten(1).sum(1) if self.scalar else local)
        return out


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int):
        super().__init__()
        self.n1 = nn.GroupNorm(min(groups, cin), cin)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.n2 = nn.GroupNorm(min(groups, cout), cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x, e):
        h = self.c1(self.act(self.n1(x))) + self.emb(e)[:, :, None, None]
        h = self.c2(self.act(self.n2(h)))
        return self.skip(x) + h


class ScoreUNet(nn.Module):
    """A small NCSN-style U-Net: ``forward(y [B, C, H, W], sigma [B]) -> [B, C, H, W]``
    (or ``[B]`` if ``scalar``: global-average-pooled energy head).

    ``len(mults)`` resolutions (H and W halve between them; 28 -> 14 -> 7 for MNIST,
    32 -> 16 -> 8 for CIFAR-10), one residual block per level on the way down and up, and
    the noise-level embedding added inside every block. The output conv starts at zero.
    """

    def __init__(self, shape=(1, 28, 28), base: int = 32, mults=(1, 2, 2), emb_dim: int = 128,
                 groups: int = 8, scalar: bool = False):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.scalar = bool(scalar)
        c = self.shape[0]
        base = check_count("base", base)
        widths = [base * int(m) for m in mults]
        if not widths:
            raise ValueError("mults must not be empty")
        self.embed = SigmaEmbedding(emb_dim)
        self.inp = nn.Conv2d(c, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        prev = widths[0]
        for i, w in enumerate(widths):
            self.down.append(_ResBlock(prev, w, emb_dim, groups))
            self.pool.append(nn.Conv2d(w, w, 3, stride=2, padding=1) if i < len(widths) - 1 else nn.Identity())
            prev = w
        self.mid = _ResBlock(prev, prev, emb_dim, groups)
        self.up = nn.ModuleList()
        for w in reversed(widths):
            self.up.append(_ResBlock(prev + w, w, emb_dim, groups))
            prev = w
        self.norm = nn.GroupNorm(min(groups, prev), prev)
        self.out = nn.Conv2d(prev, 1 if self.scalar else c, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.act = nn.SiLU()

    def forward(self, y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        e = self.act(self.embed(sigma))
        h = self.inp(y)
        skips = []
        for block, pool in zip(self.down, self.pool):
            h = block(h, e)
            skips.append(h)
            h = pool(h)
        h = self.mid(h, e)
        for block in self.up:
            s = skips.pop()
            if h.shape[-2:] != s.shape[-2:]:
                h = nn.functional.interpolate(h, size=s.shape[-2:], mode="nearest")
            h = block(torch.cat([h, s], dim=1), e)
        out = self.out(self.act(self.norm(h)))
        return out.mean(dim=(1, 2, 3)) * math.prod(self.shape) if self.scalar else out


class DnCNN(nn.Module):
    """DnCNN (Zhang et al., 2017): ``y [B, C, H, W] -> y - R(y)`` where the residual
    network R (``depth`` 3x3 convolutions of ``features`` channels, BatchNorm inside)
    estimates the noise. Trained with the MSE loss per noise type and level, it is the
    denoiser of Salman et al. (2020)'s denoised smoothing (one network per sigma)."""

    def __init__(self, channels: int = 1, depth: int = 6, features: int = 32):
        super().__init__()
        depth = check_count("depth", depth, minimum=2)
        features = check_count("features", features)
        layers = [nn.Conv2d(channels, features, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(features, features, 3, padding=1, bias=False),
                       nn.BatchNorm2d(features), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(features, channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y - self.body(y)


ARCHITECTURES = {"mlp": ScoreMLP, "unet": ScoreUNet}


def build_net(arch: str, shape, scalar: bool = False, **kwargs) -> nn.Module:
    """``build_net("mlp", (1, 28, 28), hidden=512)`` -> a noise-conditional network."""
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {arch!r}") from None
    return cls(shape=shape, scalar=scalar, **kwargs)
