"""Checkpoints: written atomically, read without ever running code from the file.

A checkpoint is a plain dict of tensors and numbers (``torch.save``), read back with ``weights_only=True``, so a
file crafted to execute code on unpickling is refused instead of run. Generators also export to safetensors, a
format that cannot hold code at all; ``load_generator`` reads either.
"""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch

from .atomic import atomic_write
from .config import TrainConfig
from .distributed import unwrap
from .errors import CheckpointError
from .models import Generator
from .rundir import FORMAT


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a training checkpoint (on the CPU). Raises CheckpointError with a fix for anything unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist: pass the checkpoint.pt of a training run "
                              "(e.g. runs/demo/checkpoint.pt)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"refused to load '{path}': it holds Python objects, not just weights, and loading "
                              f"it could run code ({str(e).splitlines()[0][:160]}); only use checkpoints you made "
                              "or their .safetensors export") from None
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a file that is not a checkpoint
        raise CheckpointError(f"'{path}' is not a readable checkpoint (truncated or not a checkpoint: "
                              f"{str(e).splitlines()[0][:160]}); use another checkpoint or retrain") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is not a facegan checkpoint (no '{FORMAT}' marker): pass the "
                              "checkpoint.pt that `facegan train` wrote")
    return state


def restore_model(model: torch.nn.Module, weights: dict, config: TrainConfig, what: str, source) -> None:
    """Load ``weights`` into ``model`` (plain, DDP-wrapped or compiled alike) with a clear error on mismatch."""
    weights = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in weights.items()}
    try:
        unwrap(model).load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(
            f"the {what} in '{source}' does not fit arch={config.arch}, image_size={config.image_size}, "
            f"z_size={config.z_size} ({str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else e}); "
            "the file is damaged or was made by another architecture") from None


def config_of(state: dict) -> TrainConfig:
    return TrainConfig.from_dict(state["config"])


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Generator, TrainConfig]:
    """The generator of a training checkpoint (.pt) or of a safetensors export, in eval mode."""
    path = Path(path)
    if path.suffix == ".safetensors":
        weights, config = _read_safetensors(path)
    else:
        state = load_checkpoint(path)
        config = config_of(state)
        weights = state.get("generator_ema") or state["generator"]
    G = Generator(config.z_size, config.g_conv_dim, arch=config.arch, image_size=config.image_size)
    restore_model(G, weights, config, "generator", path)
    return G.to(device).eval(), config


def export_generator(checkpoint: str | os.PathLike, out: str | os.PathLike) -> None:
    """Write the checkpoint's generator (and its config, as metadata) to a safetensors file."""
    from safetensors.torch import save
    G, config = load_generator(checkpoint)
    tensors = {k: v.contiguous() for k, v in G.state_dict().items()}
    blob = save(tensors, metadata={"format": FORMAT, "config": json.dumps(config.to_dict())})
    atomic_write(out, lambda f: f.write(blob))


def _read_safetensors(path: Path) -> tuple[dict, TrainConfig]:
    from safetensors import SafetensorError
    from safetensors.torch import load
    if not path.is_file():
        raise CheckpointError(f"generator file '{path}' does not exist: make one with `facegan export`")
    try:
        data = path.read_bytes()
        weights = load(data)
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8:8 + header_len]).get("__metadata__", {})
        config = TrainConfig.from_dict(json.loads(metadata["config"]))
    except (SafetensorError, ValueError, KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"'{path}' is not a facegan safetensors export ({e}): make one with "
                              "`facegan export --checkpoint RUN/checkpoint.pt --out G.safetensors`") from None
    return weights, config
