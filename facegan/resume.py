"""A run's checkpoint, and the run continued from one.

``snapshot`` gathers what a checkpoint holds (both networks and optimisers, the averaged generator, the config, and
the run's position, ``RunState``); ``restore`` puts it back into freshly built networks so the run goes on bit for
bit where it stopped (on the CPU), after checking that the checkpoint fits the networks asked for.
"""
from __future__ import annotations

from pathlib import Path

from .checkpoint import config_of, load_checkpoint, restore_model
from .distributed import unwrap
from .errors import TrainingError

# the fields that shape the networks: a checkpoint with other values can't be continued by this run
SHAPE = ("arch", "image_size", "z_size", "d_conv_dim", "g_conv_dim", "d_norm")


def snapshot(config, D, G, d_optimizer, g_optimizer, ema, state, world_size: int) -> dict:
    return {
        "config": config.to_dict(),
        "generator": unwrap(G).state_dict(),
        "discriminator": unwrap(D).state_dict(),
        "g_optimizer": g_optimizer.state_dict(),
        "d_optimizer": d_optimizer.state_dict(),
        **({"generator_ema": ema.model.state_dict()} if ema else {}),
        **state.to_dict(world_size),
    }


def restore(path: Path, config, D, G, d_optimizer, g_optimizer, ema, state, world) -> None:
    """Load the checkpoint at ``path`` into the networks, optimisers, average and ``state`` given."""
    if not path.is_file():
        raise TrainingError(f"--resume: no checkpoint at '{path}': train without --resume first, or point "
                            "--out at the run to continue")
    saved_state = load_checkpoint(path)
    saved = config_of(saved_state)
    for name in SHAPE:
        if getattr(saved, name) != getattr(config, name):
            raise TrainingError(f"--resume: the checkpoint was trained with {name}={getattr(saved, name)} but "
                                f"this run asks for {getattr(config, name)}: drop that flag or use a new --out")
    restore_model(G, saved_state["generator"], saved, "generator", path)
    restore_model(D, saved_state["discriminator"], saved, "discriminator", path)
    g_optimizer.load_state_dict(saved_state["g_optimizer"])
    d_optimizer.load_state_dict(saved_state["d_optimizer"])
    if ema is not None:
        restore_model(ema.model, saved_state.get("generator_ema", saved_state["generator"]), saved,
                      "averaged generator", path)
    state.load(saved_state, config.seed, world.rank, world.size)
