"""Trained models cached by what made them (nanoGPT/recommenders style), with a checksum manifest.

``load_or_train(kind, config, build, train)`` stores ``data/models/<kind>-<hash>.pt`` where
``<hash>`` is a hash of the config; the config is saved inside the checkpoint and beside it
as JSON, so a cache is reused exactly when the config is the same. Checkpoints are written
atomically and loaded with ``torch.load(weights_only=True)`` onto the CPU first, so a model
trained on a GPU loads on a laptop.

Integrity: the JSON beside each checkpoint is its *manifest*: it records the SHA-256 and size
of the ``.pt`` file when the checkpoint is written, and every load verifies them. A modified,
truncated or replaced file (e.g. weights zeroed or set to NaN after training) is refused with
an error that names the file and says how to rebuild it; a checkpoint holding a non-finite
weight is refused even when its checksum matches. A checkpoint from before manifests existed
(JSON without ``sha256``) is checked for finite weights and its manifest is recorded then.

While training, :func:`lib.models.training.checkpointing` writes resumable partial checkpoints
``<kind>-<hash>.partial<i>.pt`` every ``CHECKPOINT_EVERY`` steps, so an interrupted run resumes.
With ``extend_key`` (the config entry that counts training steps, e.g. ``"iters"``), the runs of a
config that differ only in that entry form a *lineage*: each keeps its final training state in
``<root>/states/<kind>-<lineage hash>.state<i>.pt`` (checksummed), and a run of more steps
continues from the longest shorter one instead of from step 0, ending with the same weights as a
run from scratch (:func:`lib.models.training.train_loop`). The states only save time: deleting
``states/`` is always safe.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from lib import paths
from lib.models.training import checkpointing
from lib.utils import atomic_torch_save, atomic_write_json, config_hash, file_digest, get_device, matches_digest

__all__ = ["CorruptCheckpointError", "checkpoint_path", "lineage_prefix", "load_or_train", "load_checkpoint",
           "save_checkpoint", "verify_manifest"]


class CorruptCheckpointError(RuntimeError):
    """A cached checkpoint exists but cannot be read, fails its manifest, or does not match its config."""


def checkpoint_path(kind: str, config: dict, root: str | Path | None = None) -> Path:
    root = Path(root) if root is not None else paths.MODELS
    return root / f"{kind}-{config_hash(config)}.pt"


def lineage_prefix(kind: str, config: dict, extend_key: str, root: str | Path | None = None) -> Path:
    """``<root>/states/<kind>-<hash of config without extend_key>``: shared by the runs of ``config``
    that differ only in their number of training steps ``config[extend_key]``."""
    if extend_key not in config:
        raise KeyError(f"extend_key {extend_key!r} is not an entry of the {kind} config")
    root = Path(root) if root is not None else paths.MODELS
    rest = {k: v for k, v in config.items() if k != extend_key}
    return root / "states" / f"{kind}-{config_hash(rest)}"


def _rebuild_hint(path: Path) -> str:
    return (f"Delete {path} and {path.with_suffix('.json')} and rerun the notebook or call that trained it "
            "(the model is retrained from its config and cached again).")


def verify_manifest(path: str | Path) -> dict:
    """Check ``path`` against the SHA-256 and size in its JSON manifest; return the manifest.

    Raises :class:`CorruptCheckpointError` naming the file on a mismatch; returns ``{}`` when
    the checkpoint has no manifest yet (written before manifests existed)."""
    path = Path(path)
    side = path.with_suffix(".json")
    if not side.exists():
        return {}
    try:
        manifest = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise CorruptCheckpointError(f"the manifest {side} of checkpoint {path} is unreadable: {exc}. "
                                     + _rebuild_hint(path)) from exc
    if "sha256" not in manifest:
        return {}
    size = path.stat().st_size
    if not matches_digest(path, manifest):
        raise CorruptCheckpointError(
            f"checkpoint {path} does not match its manifest {side.name} (SHA-256 {manifest['sha256'][:12]}..., "
            f"{manifest.get('bytes')} bytes recorded; the file has {size} bytes): it was modified or damaged "
            "after it was written. " + _rebuild_hint(path))
    return manifest


def _check_finite(path: Path, state: dict) -> None:
    for name, t in state.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CorruptCheckpointError(f"checkpoint {path} holds non-finite values (NaN or inf) in '{name}'; "
                                         "refusing to use it. " + _rebuild_hint(path))


def load_checkpoint(path: str | Path, config: dict | None = None) -> dict:
    """Read a checkpoint saved by :func:`load_or_train` (``weights_only=True``, onto the CPU) after
    verifying its SHA-256 manifest; refuse non-finite weights and a config other than ``config``."""
    path = Path(path)
    manifest = verify_manifest(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, wrong format, pickled code ...
        raise CorruptCheckpointError(f"cannot read checkpoint {path}: {exc}. " + _rebuild_hint(path)) from exc
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "config" not in ckpt:
        raise CorruptCheckpointError(f"checkpoint {path} lacks 'state_dict'/'config'. " + _rebuild_hint(path))
    if config is not None and json.loads(json.dumps(config, default=str)) != ckpt["config"]:
        raise CorruptCheckpointError(f"checkpoint {path} was made with another config. " + _rebuild_hint(path))
    _check_finite(path, ckpt["state_dict"])
    if not manifest:  # a checkpoint from before manifests: record one now (its weights are finite)
        _write_manifest(path, ckpt.get("kind", path.stem.rsplit("-", 1)[0]), ckpt["config"], ckpt.get("history", {}))
    return ckpt


def _write_manifest(path: Path, kind: str, config: dict, history: dict) -> None:
    atomic_write_json(path.with_suffix(".json"), {"kind": kind, "config": config, "history": history,
                                                  **file_digest(path)})


def save_checkpoint(path: str | Path, kind: str, config: dict, model: nn.Module, history: dict) -> Path:
    """Write ``{config, state_dict, history}`` atomically to ``path`` and its manifest beside it."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _check_finite(path, state)  # never cache a diverged model
    atomic_torch_save({"config": config, "state_dict": state, "history": history}, path)
    _write_manifest(path, kind, config, history)
    return path


def load_or_train(kind: str, config: dict, build: Callable[[dict], nn.Module],
                  train: Callable[[nn.Module, dict], dict | None], device: str | torch.device | None = None,
                  root: str | Path | None = None, verbose: bool = True,
                  extend_key: str | None = None) -> tuple[nn.Module, dict]:
    """Return ``(model in eval mode on device, history)``; train and cache it on a miss.

    build(config) -> an untrained nn.Module; train(model, config) -> history (a dict of
    lists of floats, e.g. the loss curve) and trains ``model`` in place. Training runs inside
    :func:`lib.models.training.checkpointing`, so the ``train_loop`` calls in ``train`` write
    resumable checkpoints and a rerun after an interruption resumes.

    ``build`` runs on the CPU with torch's CPU generator seeded by ``config["seed"]`` (default
    0) and restored afterwards, so the initial weights are a function of the config, never of
    the global RNG state, and the global RNG is not moved. ``train`` should draw its
    randomness (batches, noise) from generators seeded by the config too.

    ``extend_key``: the config entry counting training steps; its ``train_loop`` calls made with
    ``extendable=True`` then continue the longest shorter run of the same lineage (module docstring).
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
            raise CorruptCheckpointError(f"checkpoint {path} does not fit {kind}: {exc}. "
                                         + _rebuild_hint(path)) from exc
        if verbose:
            print(f"[cache] loaded {kind} from {path.relative_to(path.parents[1])}")
        return model.to(device).eval(), ckpt.get("history", {})
    if verbose:
        print(f"[cache] training {kind} (config hash {path.stem.split('-')[-1]}) ...")
    model.to(device)
    lineage = None
    if extend_key is not None:
        lineage = lineage_prefix(kind, config, extend_key, root)
        lineage.parent.mkdir(parents=True, exist_ok=True)
    with checkpointing(path.with_suffix(""), lineage=lineage):
        history = train(model, config) or {}
    save_checkpoint(path, kind, config, model, history)
    return model.eval(), history
