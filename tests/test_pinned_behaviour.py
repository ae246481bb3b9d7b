"""Pins what a short seeded CPU run computes, so a refactor of the loop can be checked to change nothing: the loss
trace, the final weights (D, G and the moving average) and the checkpoint's position, for the built-in step on its
plain path and on its optional paths (several D steps, R1, DiffAugment, mirrored faces, fresh fakes, lr decay), and
for a notebook-style user step.

The reference values live in tests/data/pinned_runs.json, recorded from the code before the refactor. Float
arithmetic of the convolutions depends on the CPU's instruction set (oneDNN picks kernels per ISA), so the weights'
hash is compared on a CPU of the kind that recorded it and the values to a tight tolerance on any other kind.
Regenerate only for a deliberate change of arithmetic:
    FACEGAN_PIN_UPDATE=1 python -m pytest tests/test_pinned_behaviour.py
"""
import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from facegan.config import TrainConfig
from facegan.models import fake_loss, real_loss
from facegan.train import Trainer

REFERENCE = Path(__file__).parent / "data" / "pinned_runs.json"
VARIANTS = {
    "default": {},
    "options": dict(d_steps=2, r1_gamma=0.5, r1_every=3, augment="color,translation", mirror=True,
                    reuse_fake=False, lr_decay=0.5, loss="hinge", one_d_pass=False),
    "user_step": {},
}


def host_kind() -> str:
    """The instruction-set features that choose oneDNN's kernels on this CPU."""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags)


def user_step(trainer):
    """The notebook's train_step, written as a learner writes it: real images in [0, 1], two optimisers."""
    D, G, d_opt, g_opt = trainer.D, trainer.G, trainer.d_optimizer, trainer.g_optimizer

    def step(real, z):
        real = real * 2 - 1
        fake = G(z)
        d_loss = real_loss(D(real), smooth=True) + fake_loss(D(fake.detach()))
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        g_loss = real_loss(D(fake))
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
        return d_loss, g_loss
    return step


def digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def pinned_run(tmp_path, variant: str) -> dict:
    config = TrainConfig(data="synthetic", synthetic_count=192, batch_size=32, epochs=2, d_conv_dim=8,
                         g_conv_dim=8, z_size=16, n_samples=8, out=str(tmp_path / variant), threads="1",
                         precision="fp32", ema=0.9, ema_warmup=3.0, **VARIANTS[variant])
    trainer = Trainer(config, progress=False)
    if variant == "user_step":
        trainer = Trainer(config, progress=False, D=trainer.D, G=trainer.G, d_optimizer=trainer.d_optimizer,
                          g_optimizer=trainer.g_optimizer, step=user_step(trainer))
    result = trainer.run()
    state = torch.load(tmp_path / variant / "checkpoint.pt", weights_only=True)
    return {
        "losses": [[round(d, 6), round(g, 6)] for d, g in result.losses],
        "weights": {"D": digest(result.D), "G": digest(result.G), "G_ema": digest(result.G_ema)},
        "sums": {name: round(float(sum(p.double().sum() for p in net.state_dict().values()
                                       if p.is_floating_point())), 6)
                 for name, net in (("D", result.D), ("G", result.G), ("G_ema", result.G_ema))},
        "position": [state["epoch"], state["batch"], state["step"], state["images_seen"]],
    }


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_seeded_run_computes_what_it_computed_before(tmp_path, variant):
    torch.set_num_threads(1)
    got = pinned_run(tmp_path, variant)
    reference = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {}
    if os.environ.get("FACEGAN_PIN_UPDATE"):
        reference[variant] = {**got, "host": host_kind()}
        REFERENCE.write_text(json.dumps(reference, indent=1) + "\n")
    want = reference[variant]
    assert got["position"] == want["position"]
    assert len(got["losses"]) == len(want["losses"])
    if want["host"] == host_kind():
        assert got["losses"] == want["losses"]
        assert got["weights"] == want["weights"]
    else:  # another instruction set rounds differently: the same run, to float precision
        assert got["losses"] == pytest.approx(want["losses"], rel=1e-3, abs=1e-4)
        assert got["sums"] == pytest.approx(want["sums"], rel=1e-3, abs=1e-3)
