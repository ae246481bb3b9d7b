"""A run's state in a checkpoint, and the run continued from one.

``snapshot`` gathers what a checkpoint holds (both networks and optimisers, the averaged generator, the noise
generator's state, the position in the epoch); ``restore`` puts it back into a fresh ``Trainer`` so the run goes
on bit for bit where it stopped (on the CPU), after checking that the checkpoint fits the networks asked for.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .errors import TrainingError
SHAPE = ("arch", "image_size", "z_size", "d_conv_dim", "g_conv_dim", "d_norm")


def snapshot(trainer) -> dict:
    t = trainer
    return {
        "config": t.config.to_dict(),
        "generator": ckpt.unwrap(t.G).state_dict(),
        "discriminator": ckpt.unwrap(t.D).state_dict(),
        "g_optimizer": t.g_optimizer.state_dict(),
        "d_optimizer": t.d_optimizer.state_dict(),
        "noise_rng": t.noise.get_state(),
        **({"generator_ema": t.ema.model.state_dict()} if t.ema else {}),
        "best_fid": t.best_fid, "last_g_loss": t.default_step.last_g_loss.item(),
        "epoch": t.epoch, "batch": t.batch, "step": t.step, "world_size": t.world.size,
        "images_seen": t.images_seen, "elapsed_s": t.elapsed,
    }


def restore(trainer, path: Path) -> None:
    t = trainer
    if not path.is_file():
        raise TrainingError(f"--resume: no checkpoint at '{path}': train without --resume first, or point "
                            "--out at the run to continue")
    state = ckpt.load_checkpoint(path)
    saved = ckpt.config_of(state)
    for name in SHAPE:
        if getattr(saved, name) != getattr(t.config, name):
            raise TrainingError(f"--resume: the checkpoint was trained with {name}={getattr(saved, name)} but "
                                f"this run asks for {getattr(t.config, name)}: drop that flag or use a new --out")
    ckpt.restore_model(t.G, state["generator"], saved, "generator", path)
    ckpt.restore_model(t.D, state["discriminator"], saved, "discriminator", path)
    t.g_optimizer.load_state_dict(state["g_optimizer"])
    t.d_optimizer.load_state_dict(state["d_optimizer"])
    if t.world.distributed or state.get("world_size", 1) != t.world.size:
        # another world size: a fresh, rank-specific noise stream from here on
        t.noise.manual_seed(t.config.seed + 2 + 1000 * t.world.rank + state["step"])
    else:
        t.noise.set_state(state["noise_rng"].to(t.noise.get_state().device))
    if t.ema is not None:
        ckpt.restore_model(t.ema.model, state.get("generator_ema", state["generator"]), saved,
                           "averaged generator", path)
    t.best_fid = state.get("best_fid", math.inf)
    t.default_step.last_g_loss = torch.tensor(float(state.get("last_g_loss", 0.0)), device=t.device)
    t.epoch, t.step = state["epoch"], state["step"]
    # the position inside an epoch counts batches of batch_size x world_size images
    t.batch = state["batch"] * state.get("world_size", 1) // t.world.size
    t.images_seen, t.elapsed = state["images_seen"], state["elapsed_s"]
    t.files.saved = (t.epoch, t.step)
    # only the writing process touches the run directory: another rank's rewrite raced the writer's clean-up
    if t.write:
        t.files.lock()
        t.files.truncate_losses(t.step)  # rows written after the checkpoint, by a run that crashed
