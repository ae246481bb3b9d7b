"""What the training loop watches as it goes: the clock, the losses, stop signals and running out of memory.

Each piece is small and stands apart from the loop in ``facegan.train``: ``loss_rows`` turns a few steps' losses
into ``losses.csv`` rows (one transfer from the device, a divergence check, the health monitor, the progress bar);
``stop_on_signals`` makes Ctrl-C and SIGTERM stop the run cleanly after saving; ``explain_out_of_memory`` turns an
allocation failure into one line naming the flags that shrink a step.
"""
from __future__ import annotations

import contextlib
import signal

import torch

from . import distributed
from .devices import is_out_of_memory
from .errors import TrainingError


class RunClock:
    """The run's time and throughput, counted from where this part of it started (a resumed run adds on)."""

    def __init__(self, clock, elapsed_before: float, seen_before: int):
        self.clock, self.start, self.before, self.seen_before = clock, clock(), elapsed_before, seen_before

    def elapsed(self) -> float:
        return self.before + self.clock() - self.start

    def images_per_second(self, seen: int) -> float:
        seconds = self.clock() - self.start
        return (seen - self.seen_before) / seconds if seconds > 0 else 0.0


def loss_rows(trainer, pending: list, clock: RunClock, result, bar) -> list[dict]:
    """Move the pending (step, losses) to the CPU in one transfer, check them, and turn them into CSV rows."""
    if not pending:
        return []
    t = trainer
    values = distributed.mean(torch.stack([v for _, v in pending]).float()).cpu()
    if not torch.isfinite(values[:, :2]).all():
        bad = pending[int((~torch.isfinite(values[:, :2])).any(1).nonzero()[0])][0]
        raise TrainingError(f"training diverged at step {bad} (a loss became NaN or infinite); the last good "
                            "checkpoint is kept: lower --lr or use --precision fp32, then --resume")
    elapsed = clock.elapsed()
    if t._health is not None:
        t._health.steps(values)
    rows = []
    for (step, _), (d, g, d_real, d_fake) in zip(pending, values.tolist()):
        result.losses.append((d, g))
        rows.append({"step": step, "epoch": t.epoch + 1, "d_loss": f"{d:.6f}", "g_loss": f"{g:.6f}",
                     "images_seen": step * t.config.batch_size * t.world.size, "elapsed_s": f"{elapsed:.3f}",
                     "d_real": _probability(d_real), "d_fake": _probability(d_fake)})
    d, g, d_real, d_fake = values[-1].tolist()
    probabilities = {"D_x": f"{d_real:.2f}", "D_G_z": f"{d_fake:.2f}"} if d_real == d_real else {}
    bar.set_postfix(d_loss=f"{d:.3f}", g_loss=f"{g:.3f}", **probabilities,
                    img_s=f"{clock.images_per_second(t.images_seen):.0f}")
    return rows


@contextlib.contextmanager
def stop_on_signals(trainer):
    """Ctrl-C or SIGTERM sets ``trainer._stop_signal``: the loop stops after the current step, saves and returns;
    a second Ctrl-C stops at once."""
    def handler(signum, frame):
        if trainer._stop_signal is not None:
            raise KeyboardInterrupt
        trainer._stop_signal = signal.Signals(signum).name
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave the handlers alone
        pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def explain_out_of_memory(trainer):
    """A batch too large for the device: one line naming the flags that shrink a step, and what was kept."""
    try:
        yield
    except (RuntimeError, MemoryError) as e:
        if not (isinstance(e, MemoryError) or is_out_of_memory(e)):
            raise
        config, saved = trainer.config, trainer.files.saved
        kept = (f"the last checkpoint (epoch {saved[0]}) is intact and --resume continues from it" if saved
                else "nothing was saved yet")
        raise TrainingError(f"out of memory on the {trainer.device.type} at batch size {config.batch_size} "
                            f"({config.image_size}px images, widths {config.d_conv_dim}/{config.g_conv_dim}): "
                            f"lower --batch-size (or --image-size, --d-conv-dim, --g-conv-dim); {kept}") from None


def evaluate_run(trainer, images: torch.Tensor) -> None:
    """FID/KID of the sampling generator against a fixed subset of the training images: a row in metrics.csv,
    and best.pt whenever FID improves."""
    import hashlib

    from .metrics import evaluate
    t, config = trainer, trainer.config
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(config.seed))
    real = images[pick[:config.eval_n].sort().values].cpu()
    key = hashlib.sha256(real.numpy().tobytes()).hexdigest()
    scores = evaluate(t.sample_model(), real, key=key, z_size=config.z_size, latent=config.latent,
                      seed=config.seed, device=t.device, progress=t.progress)
    t.files.add_metrics(t.epoch, t.step, scores)
    if scores.fid < t.best_fid:
        t.best_fid = scores.fid
        t.files.save_checkpoint(t.state())
        t.files.keep_best()


def _probability(p: float) -> str:
    return f"{p:.4f}" if p == p else ""
