"""Trained models cached by what made them (nanoGPT/recommenders style).

``load_or_train(kind, config, build, train)`` stores ``data/models/<kind>-<hash>.pt`` where
``<hash>`` is a hash of the config; the config is saved inside the checkpoint and beside it
as JSON, so a cache is reused exactly when the config is the same. Checkpoints are written
atomically and loaded with ``torch.load(weights_only=True)`` onto the CPU first, so a model
trained on a GPU loads on a laptop.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from lib import paths
from lib.utils import atomic_torch_save, atomic_write_json, config_hash, get_device

__all__ = ["CorruptCheckpointError", "checkpoint_path", "load_or_train", "load_checkpoint"]


class CorruptCheckpointError(RuntimeError):
    """A cached checkpoint exists but cannot be read or does not match its config."""


def checkpoint_path(kind: str, config: dict, root: str | Path | None = None) -> Path:
    root = Path(root) if root is not None else paths.MODELS
    return root / f"{kind}-{config_hash(config)}.pt"


def load_checkpoint(path: str | Path, config: dict | None = None) -> dict:
    """Read a checkpoint saved by :func:`load_or_train` (``weights_only=True``, onto the CPU)."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, wrong format, pickled code ...
        raise CorruptCheckpointError(f"cannot read checkpoint {path}: {exc}. Delete it to retrain.") from exc
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "config" not in ckpt:
        raise CorruptCheckpointError(f"checkpoint {path} lacks 'state_dict'/'config'. Delete it to retrain.")
    if config is not None and json.loads(json.dumps(config, default=str)) != ckpt["config"]:
        raise CorruptCheckpointError(f"checkpoint {path} was made with another config. Delete it to retrain.")
    return ckpt


def load_or_train(kind: str, config: dict, build: Callable[[dict], nn.Module],
                  train: Callable[[nn.Module, dict], dict | None], device: str | torch.device | None = None,
                  root: str | Path | None = None, verbose: bool = True) -> tuple[nn.Module, dict]:
    """Return ``(model in eval mode on device, history)``; train and cache it on a miss.

    build(config) -> an untrained nn.Module; train(model, config) -> history (a dict of
    lists of floats, e.g. the loss curve) and trains ``model`` in place.

    ``build`` runs on the CPU with torch's CPU generator seeded by ``config["seed"]`` (default
    0) and restored afterwards, so the initial weights are a function of the config, never of
    the global RNG state, and the global RNG is not moved. ``train`` should draw its
    randomness (batches, noise) from generators seeded by the config too.
    """
    device = get_device(device)
    config = json.loads(json.dumps(config, default=str))  # plain JSON types, as stored
    path = checkpoint_path(kind, config, root)
    with torch.random.fork_rng(devices=[]):  # CPU only: models are built on the CPU, then moved
        torch.manual_seed(int(config.get("seed", 0)))
        model = build(config)
    if path.exists():
        ckpt = load_checkpoint(path, config)
        try:
            model.load_state_dict(ckpt["state_dict"])
        except RuntimeError as exc:
            raise CorruptCheckpointError(f"checkpoint {path} does not fit {kind}: {exc}") from exc
        if verbose:
            print(f"[cache] loaded {kind} from {path.relative_to(path.parents[1])}")
        return model.to(device).eval(), ckpt.get("history", {})
    if verbose:
        print(f"[cache] training {kind} (config hash {path.stem.split('-')[-1]}) ...")
    model.to(device)
    history = train(model, config) or {}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({"config": config, "state_dict": state, "history": history}, path)
    atomic_write_json(path.with_suffix(".json"), {"kind": kind, "config": config, "history": history})
    return model.eval(), history
