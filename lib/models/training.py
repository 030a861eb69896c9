"""The one training loop of the project (classifiers, DEEN, score networks, MSE denoisers, toys).

A trainer is a *loss factory* plus :func:`train_loop`, as in score_sde_pytorch's
``get_step_fn``: the factory returns ``loss_fn(step) -> scalar loss`` (it draws its own batch
and noise from seeded generators); the loop owns everything else:

* the optimiser (an instance, a factory ``params -> optimizer``, or Adam with ``lr``) and an
  optional learning-rate schedule (a factory ``optimizer -> LR scheduler``, stepped once per
  optimiser step), gradient clipping;
* an optional EMA of the weights (:class:`EMA`), copied into the model at the end;
* seeding: with ``seed``, torch's global CPU generator is seeded for the run (for modules that
  draw from it, e.g. dropout) and restored afterwards;
* checkpoints: with ``checkpoint=path``, every ``checkpoint_every`` steps the model, optimiser,
  schedule, EMA, history and the random state of ``loss_fn`` are written atomically; a later
  call with the same path resumes from the last one (``torch.load(weights_only=True)``) and
  ends with the same weights as an uninterrupted run. The file is removed when the run ends;
* extension: with ``extend_state=path`` (or ``extendable=True`` inside :func:`checkpointing` with
  a ``lineage``), the run keeps its final state (weights before the EMA copy, optimiser, EMA,
  random state of ``loss_fn``) at ``path`` with a SHA-256 manifest, and a later run of *more*
  steps of the same training starts from it instead of from step 0. Valid only where a run of
  ``k`` steps repeats the first ``k`` steps of any longer run (fixed learning rate, draws
  indexed by step): then the longer run ends with the same weights, bit for bit, as one trained
  from scratch on the same machine. A run with a learning-rate schedule refuses it.

``loss_fn`` may return a tensor or a dict of tensors with key ``"loss"`` (the other entries,
e.g. ``"correct"``, are summed per logging window into the history). To make a resumed run
draw the same batches, wrap the function in :class:`StepLoss` with the generators (and any
other state, e.g. an epoch's permutation) it uses. :func:`lib.models.cache.load_or_train`
checkpoints every run it trains (see :func:`checkpointing`).

Returned history: ``step``, ``loss`` (mean over each window of ``log_every`` steps), the sums
of the other returned keys per window, ``iters`` (steps done), ``seconds`` (wall) and
``cpu_seconds`` (process CPU): the times are reported, never used to decide anything. A
non-finite mean loss over a window raises ``FloatingPointError`` (a diverged run is never cached).
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import math
import time
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from lib.utils import (atomic_torch_save, atomic_write_json, check_count, check_positive, file_digest, human_seconds,
                       matches_digest, progress_bar, synchronize)

__all__ = ["EMA", "StepLoss", "EpochSampler", "train_loop", "checkpointing", "CHECKPOINT_EVERY"]

#: default number of optimiser steps between checkpoints of a run trained by the model cache
CHECKPOINT_EVERY = 500


class EMA:
    """Exponential moving average of a model's floating-point state (parameters and buffers).

    ``decay`` is warmed up as ``min(decay, (1 + t) / (10 + t))`` (TensorFlow's rule), so
    short runs are not dominated by the initial weights. :meth:`copy_to` writes the
    averages into the model (what we cache and evaluate).
    """

    def __init__(self, model: nn.Module, decay: float):
        if not (0.0 <= float(decay) < 1.0):
            raise ValueError(f"ema must lie in [0, 1), got {decay}")
        self.decay = float(decay)
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.steps = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v.detach(), 1.0 - d)
            else:
                self.shadow[k].copy_(v)

    def copy_to(self, model: nn.Module) -> None:
        model.load_state_dict(self.shadow)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "steps": self.steps, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.steps = float(state["decay"]), int(state["steps"])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)


class StepLoss:
    """``loss_fn(step)`` together with the random state it draws from, so checkpoints can save it.

    ``generators``: named ``torch.Generator`` objects the function samples from; ``state``: a
    dict the function reads and writes (e.g. ``{"perm": tensor}``, the current epoch's order),
    restored in place on resume. Calling the object calls ``fn(step)``.
    """

    def __init__(self, fn: Callable[[int], object], generators: dict | None = None, state: dict | None = None):
        if not callable(fn):
            raise TypeError("fn must be callable as fn(step)")
        self.fn = fn
        self.generators = dict(generators or {})
        self.state = state if state is not None else {}

    def __call__(self, step: int):
        return self.fn(step)

    def state_dict(self) -> dict:
        return {"generators": {k: g.get_state() for k, g in self.generators.items()}, "state": dict(self.state)}

    def load_state_dict(self, sd: dict) -> None:
        for k, g in self.generators.items():
            g.set_state(sd["generators"][k])
        self.state.clear()
        self.state.update(sd["state"])


class EpochSampler:
    """Shuffled minibatches, epoch by epoch: ``sampler(step) -> idx`` (at most ``batch_size``
    indices into ``range(n)``, on ``device``). A new permutation is drawn from a CPU generator
    seeded by ``seed`` at the first step of every epoch of ``per_epoch = ceil(n / batch_size)``
    steps. Pass ``sampler.generator`` and ``sampler.state`` to :class:`StepLoss` so that a
    resumed run continues the same epoch."""

    def __init__(self, n: int, batch_size: int, seed: int = 0, device=None):
        self.n, self.batch_size = check_count("n", n), check_count("batch_size", batch_size)
        self.per_epoch = -(-self.n // self.batch_size)
        self.device = device
        self.generator = torch.Generator().manual_seed(int(seed))
        self.state: dict = {}

    def __call__(self, step: int) -> torch.Tensor:
        i = step % self.per_epoch
        if i == 0 or "perm" not in self.state:
            self.state["perm"] = torch.randperm(self.n, generator=self.generator).to(self.device)
        return self.state["perm"][i * self.batch_size:(i + 1) * self.batch_size]


# ---------------------------------------------------------------------- checkpoints by the cache
_CHECKPOINTS: contextvars.ContextVar = contextvars.ContextVar("training_checkpoints", default=None)


@contextlib.contextmanager
def checkpointing(prefix: str | Path, every: int = CHECKPOINT_EVERY,
                  lineage: str | Path | None = None) -> Iterator[None]:
    """Inside this block, every :func:`train_loop` call without its own ``checkpoint`` writes
    ``<prefix>.partial<i>.pt`` (``i`` = 0, 1, ... in call order) every ``every`` steps and
    resumes from it. With ``lineage`` (a path prefix shared by runs that differ only in their
    number of steps), a call with ``extendable=True`` keeps its final state at
    ``<lineage>.state<i>.pt`` for a longer run to continue. :func:`lib.models.cache.load_or_train`
    wraps its training in this."""
    token = _CHECKPOINTS.set({"prefix": Path(prefix), "every": check_count("every", every), "calls": 0,
                              "lineage": Path(lineage) if lineage is not None else None})
    try:
        yield
    finally:
        _CHECKPOINTS.reset(token)


def _default_checkpoint() -> tuple[Path | None, int, Path | None]:
    """(partial checkpoint, its interval, extension state) of the next train_loop call in the context."""
    ctx = _CHECKPOINTS.get()
    if ctx is None:
        return None, 0, None
    i = ctx["calls"]
    path = ctx["prefix"].with_name(f"{ctx['prefix'].name}.partial{i}.pt")
    lineage = ctx["lineage"]
    state = lineage.with_name(f"{lineage.name}.state{i}.pt") if lineage is not None else None
    ctx["calls"] += 1
    return path, ctx["every"], state


def _make_optimizer(model: nn.Module, optimizer, lr: float):
    if optimizer is None:
        return torch.optim.Adam(model.parameters(), lr=check_positive("lr", lr))
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if callable(optimizer):
        opt = optimizer(model.parameters())
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"optimizer factory must return a torch.optim.Optimizer, got {type(opt).__name__}")
        return opt
    raise TypeError(f"optimizer must be None, a torch.optim.Optimizer or a factory params -> optimizer, "
                    f"got {type(optimizer).__name__}")


def _split(out) -> tuple[torch.Tensor, dict]:
    if isinstance(out, dict):
        if "loss" not in out:
            raise ValueError("a loss_fn returning a dict must have the key 'loss'")
        return out["loss"], {k: v for k, v in out.items() if k != "loss"}
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        raise TypeError("loss_fn(step) must return a scalar tensor or a dict with a scalar 'loss'")
    return out, {}


def _load_resume(path: Path, steps: int) -> dict | None:
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RuntimeError(f"cannot read the training checkpoint {path}: {exc}. Delete it to restart "
                           "the run from step 0.") from exc
    if not isinstance(ckpt, dict) or ckpt.get("steps") != steps or "model" not in ckpt:
        raise RuntimeError(f"training checkpoint {path} belongs to another run (steps "
                           f"{ckpt.get('steps') if isinstance(ckpt, dict) else '?'} != {steps}). Delete it to restart.")
    return ckpt


def train_loop(model: nn.Module, loss_fn: Callable[[int], object], steps: int, optimizer=None, *,
               lr: float = 1e-3, schedule: Callable | None = None, ema: float | None = None,
               grad_clip: float | None = None, seed: int | None = None,
               checkpoint: str | Path | None = None, checkpoint_every: int | None = None,
               extend_state: str | Path | None = None, extendable: bool = False,
               log_every: int | None = None, progress: bool = True, desc: str = "train") -> dict:
    """Minimise ``loss_fn(step)`` over ``steps`` optimiser steps; train ``model`` in place.

    model: the module whose parameters are optimised (left in eval mode, with the EMA weights
    if ``ema``). loss_fn(step) -> scalar tensor, or dict with ``"loss"`` (see module docstring).
    optimizer: None (Adam with ``lr``), an optimizer, or a factory ``params -> optimizer``.
    schedule: None or a factory ``optimizer -> torch LR scheduler`` stepped after every step.
    ema: None (no averaging) or a decay in [0, 1). grad_clip: max gradient norm or None.
    seed: seeds torch's global CPU generator for the run (restored afterwards).
    checkpoint / checkpoint_every: resumable checkpoints (default: those of :func:`checkpointing`).
    extend_state: where this run keeps its final state and finds that of a shorter run of the same
    training to continue (module docstring); extendable: take it from :func:`checkpointing`'s
    ``lineage`` (no effect outside one). The history then records ``continued_from`` (the steps
    taken over) and ``seconds`` of both runs.
    log_every: steps per history window (default ``steps // 100``).
    Returns the history dict described in the module docstring.
    """
    steps = check_count("steps", steps)
    log_every = check_count("log_every", log_every) if log_every is not None else max(1, steps // 100)
    if grad_clip is not None and not grad_clip:
        grad_clip = None
    if checkpoint is None:
        checkpoint, default_every, lineage_state = _default_checkpoint()
        checkpoint_every = checkpoint_every or default_every
        if extendable and extend_state is None:
            extend_state = lineage_state
    if extend_state is not None and schedule is not None:
        raise ValueError("a run with a learning-rate schedule cannot be extended: its first steps depend on "
                         "its length (give no extend_state / extendable)")
    extend_state = Path(extend_state) if extend_state is not None else None
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None:
        checkpoint_every = check_count("checkpoint_every", checkpoint_every or CHECKPOINT_EVERY)
    opt = _make_optimizer(model, optimizer, lr)
    sched = schedule(opt) if schedule is not None else None
    avg = EMA(model, ema) if ema is not None else None
    hist: dict = {"step": [], "loss": []}
    start = 0
    resume = _load_resume(checkpoint, steps) if checkpoint is not None else None
    if resume is not None:
        _restore(resume, model, opt, sched, avg, loss_fn)
        hist, start = resume["history"], int(resume["step"])
        window, count = resume["window"], int(resume["count"])
    extension = _load_extension(extend_state, steps) if resume is None and extend_state is not None else None
    if extension is not None:
        _restore(extension, model, opt, sched, avg, loss_fn)
        hist, start, window, count = extension["history"], int(extension["step"]), {}, 0
        hist["continued_from"] = start
        if progress:
            print(f"[train] {desc}: continuing from the state after {start:,} of {steps:,} steps (a shorter run of "
                  f"the same training, {extend_state.name})")
    rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
    with rng:
        if seed is not None:
            torch.manual_seed(int(seed))
        taken_over = resume if resume is not None else extension
        if seed is not None and taken_over is not None and "torch_rng" in taken_over:
            torch.set_rng_state(taken_over["torch_rng"])  # the global generator is ours only inside fork_rng
        if taken_over is None:
            window, count = {}, 0
        t0, c0 = time.perf_counter(), time.process_time()
        bar = progress_bar(total=steps, desc=desc, disable=not progress, initial=start)
        # the estimate of the whole run, printed early: steps probe[0]+1..probe[1] timed between two
        # synchronisations (the first step, with its warm-up, is not counted)
        probe = ((start + 1, start + 1 + max(1, min(10, (steps - start - 1) // 10)))
                 if progress and steps - start >= 3 else None)
        device = next(iter(model.parameters()), torch.empty(0)).device
        model.train()
        for step in range(start, steps):
            loss, extras = _split(loss_fn(step))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            if sched is not None:
                sched.step()
            if avg is not None:
                avg.update(model)
            for k, v in {"loss": loss, **extras}.items():  # summed on the device: no host sync per step
                v = v.detach() if isinstance(v, torch.Tensor) else v
                window[k] = v if k not in window else window[k] + v
            count += 1
            bar.update(1)
            done = step + 1
            if probe is not None and done in probe:
                synchronize(device)
                if done == probe[0]:
                    t_probe = time.perf_counter()
                else:
                    per_step = (time.perf_counter() - t_probe) / (probe[1] - probe[0])
                    print(f"[estimate] {desc}: ~{human_seconds(per_step * (steps - start))} for {steps - start:,} "
                          f"steps on {device} ({1e3 * per_step:.1f} ms/step, timed over {probe[1] - probe[0]})")
            if count == log_every or done == steps:
                hist["step"].append(done)
                for k, v in window.items():
                    hist.setdefault(k, []).append(float(v) / count if k == "loss" else float(v))
                bar.set_postfix(loss=f"{hist['loss'][-1]:.4f}")
                if not math.isfinite(hist["loss"][-1]):
                    raise FloatingPointError(f"{desc}: the training loss is {hist['loss'][-1]} over steps "
                                             f"{done - count + 1}..{done} (diverged: lower the learning rate?)")
                window, count = {}, 0
            if checkpoint is not None and done % checkpoint_every == 0 and done < steps:
                _save_resume(checkpoint, model, opt, sched, avg, loss_fn, hist, done, steps, window, count)
        bar.close()
        hist["iters"] = steps
        hist["seconds"] = hist.get("seconds", 0.0) + time.perf_counter() - t0
        hist["cpu_seconds"] = hist.get("cpu_seconds", 0.0) + time.process_time() - c0
        if extend_state is not None and _kept_step(extend_state) < steps:  # never replace a longer run's state
            _save_resume(extend_state, model, opt, sched, avg, loss_fn, hist, steps, steps, {}, 0)
            atomic_write_json(extend_state.with_suffix(".json"), {"step": steps, **file_digest(extend_state)})
    if avg is not None:
        avg.copy_to(model)
    model.eval()
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)  # another process training the same run may have removed it
    return hist


def _restore(state: dict, model, opt, sched, avg, loss_fn) -> None:
    """Load a saved training state (a partial checkpoint or an extension state) into the run's objects."""
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    if sched is not None:
        sched.load_state_dict(state["schedule"])
    if avg is not None:
        avg.load_state_dict(state["ema"])
    if hasattr(loss_fn, "load_state_dict"):
        loss_fn.load_state_dict(state["loss_fn"])


def _kept_step(path: Path) -> int:
    """The steps of the state kept at ``path`` by its manifest (0: none, or an unreadable manifest)."""
    try:
        return int(json.loads(path.with_suffix(".json").read_text()).get("step", 0)) if path.exists() else 0
    except (OSError, ValueError):
        return 0


def _load_extension(path: Path, steps: int) -> dict | None:
    """The final state of a shorter (or equal) run of the same training kept at ``path``, after
    checking its manifest; None when there is none or it ran more than ``steps`` steps."""
    side = path.with_suffix(".json")
    if not path.exists() or not side.exists():
        return None
    hint = f"Delete {path} and {side.name} (the run then trains from step 0)."
    try:
        manifest = json.loads(side.read_text())
        ok = matches_digest(path, manifest)
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"the manifest {side} of the training state {path} is unreadable: {exc}. {hint}") from exc
    if not ok:
        raise RuntimeError(f"the training state {path} does not match its manifest {side.name} (modified or "
                           f"damaged after it was written). {hint}")
    if int(manifest.get("step", steps + 1)) > steps:
        return None  # a longer run's end state: a shorter run cannot start from it
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RuntimeError(f"cannot read the training state {path}: {exc}. {hint}") from exc
    if not isinstance(state, dict) or "model" not in state:
        raise RuntimeError(f"the training state {path} is not a state saved by train_loop. {hint}")
    if int(state.get("step", -1)) != int(manifest["step"]):  # two runs of the lineage wrote it at once
        raise RuntimeError(f"the training state {path} holds step {state.get('step')} but its manifest says "
                           f"{manifest['step']} (two runs of the same training wrote it at once?). {hint}")
    return state


def _save_resume(path, model, opt, sched, avg, loss_fn, hist, done, steps, window, count) -> None:
    state = {"steps": steps, "step": done, "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "optimizer": opt.state_dict(), "history": hist, "torch_rng": torch.get_rng_state(),
             "window": window, "count": count}
    if sched is not None:
        state["schedule"] = sched.state_dict()
    if avg is not None:
        state["ema"] = avg.state_dict()
    if hasattr(loss_fn, "state_dict"):
        state["loss_fn"] = loss_fn.state_dict()
    atomic_torch_save(state, path)
