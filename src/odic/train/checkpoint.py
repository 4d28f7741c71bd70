"""Training checkpoints: everything needed to continue bit for bit, written atomically."""

from __future__ import annotations

import os
import random
from pathlib import Path

import torch


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _rng_state(sampler, cond_gen) -> dict:
    return {
        "sampler": sampler.generator.get_state(),
        "cond": cond_gen.get_state(),
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
    }


def save_training_state(path, model, optimizer, aux_optimizer, sampler, cond_gen, step, config, rank, world,
                        elapsed: float = 0.0):
    """Rank 0 writes the model and optimizers; every rank writes its own RNG streams."""
    path = Path(path)
    if rank == 0:
        atomic_save(
            {
                "step": step,
                "config": config,
                "model_config": model.config.to_dict(),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "aux_optimizer": aux_optimizer.state_dict(),
                "rng": _rng_state(sampler, cond_gen),
                "world": world,
                "elapsed": elapsed,
            },
            path,
        )
    else:
        atomic_save({"step": step, "rng": _rng_state(sampler, cond_gen)}, path.with_name(f"{path.name}.rank{rank}"))


def load_training_state(path, state: dict, model, optimizer, aux_optimizer, sampler, cond_gen,
                        rank) -> tuple[int, float]:
    """Restore the checkpoint ``state`` read from ``path`` (other ranks' RNG files lie beside it);
    returns (step, training seconds so far)."""
    path = Path(path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    aux_optimizer.load_state_dict(state["aux_optimizer"])
    rng = state["rng"]
    if rank != 0:
        rank_path = path.with_name(f"{path.name}.rank{rank}")
        if not rank_path.exists():
            # Resuming with more processes than before: this rank keeps its own fresh seeds
            # (copying rank 0's streams would make every rank draw the same crops).
            return int(state["step"]), float(state.get("elapsed", 0.0))
        rng = torch.load(rank_path, map_location="cpu", weights_only=False)["rng"]
    sampler.generator.set_state(rng["sampler"])
    cond_gen.set_state(rng["cond"])
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    return int(state["step"]), float(state.get("elapsed", 0.0))
