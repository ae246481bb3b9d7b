"""Training: the loop that runs a step over the data, with everything around it.

``Trainer`` builds (or takes) the networks and optimisers, and runs a step (``facegan.step``: the notebook's
``train_step`` or the built-in ``DefaultStep``) over batches for ``epochs`` or ``max_minutes``, with the EMA,
samples, health warnings, evaluation, signals and thread tuning around it. Its files live in a run directory
(``facegan.rundir``), written atomically at the end of every epoch and whenever the run stops early. Shuffling
depends only on the seed and the epoch, and the latent noise comes from a generator saved in the checkpoint, so a
resumed run continues bit for bit where the first one stopped (on the CPU).
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import checkpoint as ckpt
from . import distributed
from .config import TrainConfig
from .data import TensorBatches, load_images
from .devices import default_batch_size, pick_device
from .ema import EMA
from .health import HealthMonitor
from .models import build_network, sample_latent
from .precision import autocast, training_precision
from .monitor import RunClock, evaluate_run, explain_out_of_memory, loss_rows, stop_on_signals
from .resume import restore, snapshot
from .errors import TrainingError
from .rundir import LOSS_COLUMNS, RunDir, read_losses
from .step import DefaultStep, set_learning_rates
from .threads import ThreadTuner


@dataclass
class RunResult:
    """What a run leaves in memory: per-step (d_loss, g_loss), one sample batch per finished epoch (CPU,
    [-1, 1]), the trained networks, and why it stopped (``signal`` names the signal, e.g. "SIGINT", when one did)."""
    losses: list = field(default_factory=list)
    samples: list = field(default_factory=list)
    D: nn.Module | None = None
    G: nn.Module | None = None
    out: Path | None = None
    stopped: str = "finished"
    images_per_second: float = 0.0
    G_ema: nn.Module | None = None
    threads: str = ""
    signal: str | None = None


class Trainer:
    """One training run. ``D``/``G`` and their optimisers default to the config's; pass your own to train them
    (as the notebook does). ``images`` (uint8, N×3×S×S) skips loading ``config.data``.

    ``step``, when given, replaces the built-in step (``default_step``, a ``DefaultStep``): ``step(real_images,
    z) -> (d_loss, g_loss)`` (optionally followed by D(x) and D(G(z)), D's mean probabilities on the real and the
    fake batch) gets a batch of real images in [0, 1] (as a DataLoader gives them: the step scales them itself)
    and latents drawn from the run's own noise generator, and trains D and G once. Everything around it stays the
    Trainer's: the batches, the EMA, samples, checkpoints, resume, the time budget."""

    def __init__(self, config: TrainConfig, *, D=None, G=None, d_optimizer=None, g_optimizer=None,
                 images: torch.Tensor | None = None, step=None, progress: bool = True, write: bool = True):
        config.validate()
        self.world = distributed.current()
        self.device = pick_device(config.device)
        if self.world.distributed and self.device.type == "cuda":
            self.device = torch.device("cuda", self.world.local_rank)
        # resolved here, so config.json and checkpoints record the batch and the precision used
        self.config = config = dataclasses.replace(
            config, batch_size=config.batch_size or default_batch_size(self.device),
            precision=training_precision(config.precision, self.device))
        # one process writes and shows progress; the others only train
        self.progress, self.write = progress and self.world.main, write and self.world.main
        if config.thread_count():
            torch.set_num_threads(config.thread_count())
        if config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for repeatable matmuls
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        torch.manual_seed(config.seed)
        if D is None or G is None:
            D_new, G_new = build_network(config.d_conv_dim, config.g_conv_dim, config.z_size, arch=config.arch,
                                         image_size=config.image_size, d_norm=config.d_norm)
            D, G = D if D is not None else D_new, G if G is not None else G_new
        memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.D, self.G = (distributed.wrap(net.to(self.device, memory_format=memory_format), self.device, config.sync_bn)
                          for net in (D, G))
        # fused Adam (torch 2.4+ on the CPU) updates a network's weights in one kernel: with networks this small the
        # optimiser is a visible share of a step, and side by side at batch 128 it trained 10-20% more images/s
        adam = dict(betas=(config.beta1, config.beta2), fused=self.device.type in ("cpu", "cuda"))
        self.d_optimizer = d_optimizer or torch.optim.Adam(self.D.parameters(), lr=config.d_lr or config.lr, **adam)
        self.g_optimizer = g_optimizer or torch.optim.Adam(self.G.parameters(), lr=config.lr, **adam)
        self._base_lr = [[group["lr"] for group in opt.param_groups] for opt in (self.d_optimizer, self.g_optimizer)]
        # the fixed latents are drawn on the CPU so every device shows the same faces for the same seed
        self.fixed_z = sample_latent(config.n_samples, config.z_size, config.latent,
                                     generator=torch.Generator().manual_seed(config.seed + 1)).to(self.device)
        self.noise = torch.Generator(device=self.device).manual_seed(config.seed + 2 + 1000 * self.world.rank)
        self.ema = EMA(self.G, config.ema, config.ema_warmup) if config.ema > 0 else None
        calibration = torch.Generator().manual_seed(config.seed + 3)
        self.calibration_z = [sample_latent(256, config.z_size, config.latent, generator=calibration).to(self.device)
                              for _ in range(4)]
        self.best_fid = math.inf
        self.epoch, self.batch, self.step, self.images_seen, self.elapsed = 0, 0, 0, 0, 0.0
        self.out = Path(config.out)
        self.files = RunDir(self.out)
        self._images = images
        self._step = step
        self.default_step = DefaultStep(self)
        self._health: HealthMonitor | None = None  # made by run(), on the process that reports
        self._stop_signal = None
        self.clock = time.perf_counter  # the time budget's clock (tests replace it)

    # ---------------------------------------------------------------- checkpoints
    def state(self) -> dict:
        """Everything a checkpoint holds: both networks and optimisers, the noise, the position in the run."""
        return snapshot(self)

    def resume(self, path: str | os.PathLike | None = None) -> None:
        """Continue from a checkpoint (default: the run directory's). Its config wins, except for how long to
        train (epochs, max_minutes), where to run (device, threads) and where the data lives."""
        restore(self, Path(path or self.out / "checkpoint.pt"))

    # ---------------------------------------------------------------- sampling
    def sample_model(self) -> nn.Module:
        """The generator to draw with: the moving average (its BatchNorm statistics re-measured) when enabled."""
        return ckpt.unwrap(self.G) if self.ema is None else self.calibrated(self.ema)

    def calibrated(self, ema: EMA) -> nn.Module:
        """``ema``'s generator with its BatchNorm statistics re-measured on the fixed calibration latents."""
        with autocast(self.device, self.config.precision):
            ema.calibrate(self.calibration_z)
        return ema.model

    @torch.no_grad()
    def sample(self, z: torch.Tensor | None = None) -> torch.Tensor:
        """Generator output for ``z`` (default: the fixed latents) in eval mode, float on the CPU in [-1, 1]."""
        G = self.sample_model()
        was_training = G.training
        G.eval()
        with autocast(self.device, self.config.precision):
            images = G(self.fixed_z if z is None else z.to(self.device))
        G.train(was_training)
        return images.float().cpu()

    # ---------------------------------------------------------------- the loop
    def train_step(self, real: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One step (the user's ``step``, else ``default_step``: the same call) on a batch of real images, then the
        EMA update. Returns four detached scalars: d_loss, g_loss, D(x) and D(G(z)) (the last two NaN when a
        user's step returns only the losses). The batch is in [0, 1] for a user's step, [-1, 1] for the built-in
        one (``TensorBatches`` gives each what it needs)."""
        config = self.config
        z = sample_latent(real.shape[0], config.z_size, config.latent, generator=self.noise, device=self.device)
        values = list((self._step or self.default_step)(real, z))
        values += [float("nan")] * (4 - len(values))
        if self.ema is not None:
            self.ema.update(self.G, self.step)
        return tuple(torch.as_tensor(v).detach().float().reshape(()).to(self.device) for v in values)

    def run(self, on_epoch=None) -> RunResult:
        """Train until ``config.epochs`` or ``config.max_minutes``; ``on_epoch(epoch, samples)`` is called after
        each epoch. SIGINT/SIGTERM stop the run after saving it; while it runs the run directory is locked."""
        try:
            if self.write:
                self.files.prepare(self.config.to_dict())
            return self._run(on_epoch)
        finally:
            self.files.unlock()

    def _run(self, on_epoch) -> RunResult:
        config = self.config
        self._stop_signal = None  # a Ctrl-C that stopped the last run() must not stop this one at its first step
        images = self._load_images()
        batches = TensorBatches(images, config.batch_size, seed=config.seed, device=self.device,
                                channels_last=config.channels_last, shard=(self.world.rank, self.world.size),
                                unit_range=self._step is not None, mirror=config.mirror)
        result = RunResult(D=self.D, G=self.G, out=self.out if self.write else None,
                           G_ema=self.ema.model if self.ema else None)
        from tqdm.auto import tqdm
        steps_per_epoch = len(batches)
        total = (config.epochs - self.epoch) * steps_per_epoch - self.batch
        bar = tqdm(total=max(total, 0), disable=not self.progress, unit="step", dynamic_ncols=True,
                   desc="training" + (" (synthetic faces)" if config.data == "synthetic" else ""))
        budget = None if config.max_minutes is None else config.max_minutes * 60
        clock = RunClock(self.clock, self.elapsed, self.images_seen)
        threads_before, tuner = torch.get_num_threads(), ThreadTuner.for_run(config, self.device, self.world)
        self._health = HealthMonitor.for_images(images, config.seed) if self.world.main else None
        try:
            with stop_on_signals(self), explain_out_of_memory(self):
                while self.epoch < config.epochs and result.stopped == "finished":
                    pending, rows = [], []
                    for real in batches.epoch(self.epoch, start=self.batch):
                        if config.lr_decay > 0:
                            progress = self.step / (config.epochs * steps_per_epoch)
                            if budget is not None:
                                progress = max(progress, clock.elapsed() / budget)
                            set_learning_rates([self.d_optimizer, self.g_optimizer], self._base_lr, progress,
                                               config.lr_decay)
                        step_start = time.perf_counter()
                        values = self.train_step(real)
                        if tuner is not None:
                            tuner.after_step(real.shape[0], time.perf_counter() - step_start)
                        self.batch, self.step = self.batch + 1, self.step + 1
                        self.images_seen += real.shape[0] * self.world.size
                        pending.append((self.step, torch.stack(values)))
                        bar.update(1)
                        flush = self.step % 25 == 0 or self.batch == steps_per_epoch
                        if flush:
                            rows += loss_rows(self, pending, clock, result, bar)
                            pending = []
                        # several processes decide together, at the same step, so none waits for the others forever
                        if flush or not self.world.distributed:
                            over = budget is not None and clock.elapsed() >= budget
                            if distributed.any_true(over or self._stop_signal is not None, self.device):
                                result.signal = self._stop_signal
                                result.stopped = (f"stopped by {self._stop_signal}" if self._stop_signal else
                                                  f"time budget of {config.max_minutes:g} minutes reached")
                                break
                    rows += loss_rows(self, pending, clock, result, bar)
                    self.elapsed = clock.elapsed()
                    self._end_epoch(rows, steps_per_epoch, images, result, on_epoch)
        finally:
            bar.close()
            result.threads = tuner.describe() if tuner else f"threads: {torch.get_num_threads()}"
            torch.set_num_threads(threads_before)
        if not distributed.replicas_identical(ckpt.unwrap(self.G)):
            raise TrainingError("the processes' generators differ after training: a DDP synchronisation problem; "
                                "please report it with your torchrun command")
        if self.write and result.losses:
            self.files.plot_losses()
        result.images_per_second = clock.images_per_second(self.images_seen)
        return result

    def _load_images(self) -> torch.Tensor:
        if self._images is not None:
            return self._images
        if not self.world.main:
            distributed.barrier()  # rank 0 decodes and caches first; the others then read its cache
        images = load_images(self.config.data, self.config.image_size, synthetic_count=self.config.synthetic_count,
                             seed=self.config.seed, progress=self.progress)
        if self.world.main:
            distributed.barrier()
        return images

    def _end_epoch(self, rows, steps_per_epoch, images, result, on_epoch) -> None:
        """After an epoch, or a stop inside one: samples, the losses and the checkpoint, evaluation, the hook."""
        finished = self.batch >= steps_per_epoch
        if finished:
            self.epoch, self.batch = self.epoch + 1, 0
        distributed.average_buffers(ckpt.unwrap(self.D))
        distributed.average_buffers(ckpt.unwrap(self.G))
        samples = self.sample()
        if finished:
            result.samples.append(samples)
            if self._health is not None:
                self._health.samples(samples)
        if self.write:
            self.files.still_there()
            self.files.save_samples(samples, self.epoch if finished else self.epoch + 1)
            self.files.append_losses(rows)
            self.files.save_checkpoint(self.state())
            if finished and self.config.eval_every and self.epoch % self.config.eval_every == 0:
                evaluate_run(self, images)
        if finished and on_epoch is not None:
            on_epoch(self.epoch, samples)
        distributed.barrier()

def train(config: TrainConfig, *, resume: bool = False, progress: bool = True, **kwargs) -> RunResult:
    """Train (or, with ``resume``, continue) the run ``config`` describes. See ``Trainer``."""
    trainer = Trainer(config, progress=progress, **kwargs)
    if resume:
        trainer.resume()
    return trainer.run()


__all__ = ["Trainer", "train", "TrainingError", "RunResult", "pick_device", "default_batch_size", "read_losses",
           "autocast", "EMA", "LOSS_COLUMNS"]
