"""What the training loop watches as it goes: the clock, the losses, stop signals and running out of memory.

Each piece is small and knows only what it is handed: ``RunClock`` the time and throughput; ``LossLog`` turns a few
steps' losses into ``losses.csv`` rows (one transfer from the device, a divergence check, the health monitor, the
progress bar); ``StopSignals`` makes Ctrl-C and SIGTERM stop the run cleanly after saving; ``explain_out_of_memory``
turns an allocation failure into one line naming the flags that shrink a step.
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


class LossLog:
    """Collects each step's (d_loss, g_loss, D(x), D(G(z))) on the device and, every ``every`` steps, moves them to
    the CPU in one transfer: checked for divergence, fed to the health monitor, shown on the progress bar, kept in
    ``losses`` and returned as ``losses.csv`` rows."""

    def __init__(self, batch_size: int, world_size: int, clock: RunClock, bar, health=None, every: int = 25):
        self.batch_size, self.world_size, self.clock, self.bar = batch_size, world_size, clock, bar
        self.health, self.every = health, every
        self.pending: list[tuple[int, torch.Tensor]] = []
        self.losses: list[tuple[float, float]] = []

    def add(self, step: int, values: tuple[torch.Tensor, ...]) -> bool:
        """Keep one step's values; True when it is time to ``flush``."""
        self.pending.append((step, torch.stack(values)))
        self.bar.update(1)
        return step % self.every == 0

    def flush(self, epoch: int, images_seen: int) -> list[dict]:
        """The pending steps as CSV rows of ``epoch`` (0-based: the epoch they belong to)."""
        pending, self.pending = self.pending, []
        if not pending:
            return []
        values = distributed.mean(torch.stack([v for _, v in pending]).float()).cpu()
        if not torch.isfinite(values[:, :2]).all():
            bad = pending[int((~torch.isfinite(values[:, :2])).any(1).nonzero()[0])][0]
            raise TrainingError(f"training diverged at step {bad} (a loss became NaN or infinite); the last good "
                                "checkpoint is kept: lower --lr or use --precision fp32, then --resume")
        elapsed = self.clock.elapsed()
        if self.health is not None:
            self.health.steps(values)
        rows = []
        for (step, _), (d, g, d_real, d_fake) in zip(pending, values.tolist()):
            self.losses.append((d, g))
            rows.append({"step": step, "epoch": epoch + 1, "d_loss": f"{d:.6f}", "g_loss": f"{g:.6f}",
                         "images_seen": step * self.batch_size * self.world_size, "elapsed_s": f"{elapsed:.3f}",
                         "d_real": _probability(d_real), "d_fake": _probability(d_fake)})
        d, g, d_real, d_fake = values[-1].tolist()
        probabilities = {"D_x": f"{d_real:.2f}", "D_G_z": f"{d_fake:.2f}"} if d_real == d_real else {}
        self.bar.set_postfix(d_loss=f"{d:.3f}", g_loss=f"{g:.3f}", **probabilities,
                             img_s=f"{self.clock.images_per_second(images_seen):.0f}")
        return rows


class StopSignals:
    """While active (``with``), Ctrl-C or SIGTERM sets ``name`` ("SIGINT", "SIGTERM"): the loop stops after the
    current step, saves and returns; a second Ctrl-C stops at once. ``name`` may also be set by hand to stop."""

    def __init__(self):
        self.name: str | None = None
        self._previous: dict = {}

    def _handler(self, signum, frame):
        if self.name is not None:
            raise KeyboardInterrupt
        self.name = signal.Signals(signum).name

    def __enter__(self) -> "StopSignals":
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        except ValueError:  # not the main thread: leave the handlers alone
            pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous = {}


@contextlib.contextmanager
def explain_out_of_memory(device: torch.device, config, files):
    """A batch too large for the device: one line naming the flags that shrink a step, and what was kept (the
    checkpoint that the run directory ``files`` last saved, if any)."""
    try:
        yield
    except (RuntimeError, MemoryError) as e:
        if not (isinstance(e, MemoryError) or is_out_of_memory(e)):
            raise
        saved = files.saved
        kept = (f"the last checkpoint (epoch {saved[0]}) is intact and --resume continues from it" if saved
                else "nothing was saved yet")
        raise TrainingError(f"out of memory on the {device.type} at batch size {config.batch_size} "
                            f"({config.image_size}px images, widths {config.d_conv_dim}/{config.g_conv_dim}): "
                            f"lower --batch-size (or --image-size, --d-conv-dim, --g-conv-dim); {kept}") from None


def _probability(p: float) -> str:
    return f"{p:.4f}" if p == p else ""
