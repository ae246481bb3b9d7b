"""Training: the loop that runs a step over the data, with everything around it.

``Trainer`` builds (or takes) the networks and optimisers, and runs a step (``facegan.step``: the notebook's
``train_step`` or the built-in ``DefaultStep``) over batches for ``epochs`` or ``max_minutes``, with the EMA,
samples, health warnings, evaluation, signals and thread tuning around it. Its files live in a run directory
(``facegan.rundir``), written atomically at the end of every epoch and whenever the run stops early. Shuffling
depends only on the seed and the epoch, and the latent noise comes from a generator saved in the checkpoint, so a
resumed run continues bit for bit where the first one stopped (on the CPU). Where the run is lives in one object,
``Trainer.state`` (a ``RunState``); the side jobs (losses and health, signals, evaluation, threads, files) are
small parts that the loop calls and that know only what they are handed.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import distributed
from .batches import TensorBatches
from .config import TrainConfig
from .data import load_run_images
from .devices import pick_device
from .distributed import unwrap
from .ema import EMA
from .errors import TrainingError
from .evaluation import Evaluator
from .health import HealthMonitor
from .models import build_network, sample_latent
from .monitor import LossLog, RunClock, StopSignals, explain_out_of_memory
from .resume import restore, snapshot
from .rundir import RunDir
from .sampling import Sampler
from .state import RunState
from .step import DefaultStep, adam_optimizers, run_progress, set_learning_rates
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
        # resolved once, here, so config.json and checkpoints record the batch and the precision used
        self.config = config = config.resolved(self.device)
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
        if d_optimizer is None or g_optimizer is None:
            d_default, g_default = adam_optimizers(self.D, self.G, config, self.device)
            d_optimizer, g_optimizer = d_optimizer or d_default, g_optimizer or g_default
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        self.base_lr = [[group["lr"] for group in opt.param_groups] for opt in (d_optimizer, g_optimizer)]
        self.sampler = Sampler(config, self.device)
        self.state = RunState.start(config.seed, self.device, self.world.rank)
        self.ema = EMA(self.G, config.ema, config.ema_warmup) if config.ema > 0 else None
        self.out = Path(config.out)
        self.files = RunDir(self.out)
        self.images, self.user_step = images, step
        self.default_step = DefaultStep(config, self.state.noise)
        self.signals = StopSignals()  # Ctrl-C and SIGTERM while run() runs; request_stop() by hand
        self.health: HealthMonitor | None = None  # made by run(), on the process that reports
        self.clock = time.perf_counter  # the time budget's clock (tests replace it)

    # ---------------------------------------------------------------- checkpoints
    def checkpoint(self) -> dict:
        """Everything a checkpoint holds: both networks and optimisers, the average, the config, ``state``."""
        return snapshot(self.config, self.D, self.G, self.d_optimizer, self.g_optimizer, self.ema, self.state,
                        self.world.size)

    def resume(self, path: str | os.PathLike | None = None) -> None:
        """Continue from a checkpoint (default: the run directory's). Its config wins, except for how long to
        train (epochs, max_minutes), where to run (device, threads) and where the data lives."""
        restore(Path(path or self.out / "checkpoint.pt"), self.config, self.D, self.G, self.d_optimizer,
                self.g_optimizer, self.ema, self.state, self.world)
        self.files.saved = (self.state.epoch, self.state.step)
        # only the writing process touches the run directory: another rank's rewrite raced the writer's clean-up
        if self.write:
            self.files.lock()
            self.files.truncate_losses(self.state.step)  # rows written after the checkpoint, by a run that crashed

    def request_stop(self, reason: str = "SIGINT") -> None:
        """Stop the run after the current step, as Ctrl-C does (it saves first)."""
        self.signals.name = reason

    # ---------------------------------------------------------------- sampling
    def sample_model(self) -> nn.Module:
        """The generator to draw with: the moving average (its BatchNorm statistics re-measured) when enabled."""
        return self.sampler.model(self.G, self.ema)

    def sample(self, z: torch.Tensor | None = None) -> torch.Tensor:
        """Generator output for ``z`` (default: the fixed latents) in eval mode, float on the CPU in [-1, 1]."""
        return self.sampler.draw(self.sample_model(), z)

    # ---------------------------------------------------------------- the loop
    def train_step(self, real: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One step (the user's ``step``, else ``default_step``) on a batch of real images, then the EMA update.
        Returns four detached scalars: d_loss, g_loss, D(x) and D(G(z)) (the last two NaN when a user's step
        returns only the losses). The batch is in [0, 1] for a user's step, [-1, 1] for the built-in one
        (``TensorBatches`` gives each what it needs)."""
        config, state = self.config, self.state
        z = sample_latent(real.shape[0], config.z_size, config.latent, generator=state.noise, device=self.device)
        if self.user_step is not None:
            values = list(self.user_step(real, z))
        else:
            values = list(self.default_step(self.D, self.G, self.d_optimizer, self.g_optimizer, real, z, state.step))
            if values[1] is None:  # D trained alone: report G's loss of its last step
                values[1] = state.last_g_loss
            state.last_g_loss = values[1]
        values += [float("nan")] * (4 - len(values))
        if self.ema is not None:
            self.ema.update(self.G, state.step)
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
        config, state, world = self.config, self.state, self.world
        self.signals.name = None  # a Ctrl-C that stopped the last run() must not stop this one at its first step
        images = self.images if self.images is not None else load_run_images(config, world, self.progress)
        batches = TensorBatches(images, config.batch_size, seed=config.seed, device=self.device,
                                channels_last=config.channels_last, shard=(world.rank, world.size),
                                unit_range=self.user_step is not None, mirror=config.mirror)
        steps_per_epoch = len(batches)
        from tqdm.auto import tqdm
        bar = tqdm(total=max((config.epochs - state.epoch) * steps_per_epoch - state.batch, 0), unit="step",
                   disable=not self.progress, dynamic_ncols=True,
                   desc="training" + (" (synthetic faces)" if config.data == "synthetic" else ""))
        clock = RunClock(self.clock, state.elapsed, state.images_seen)
        self.health = HealthMonitor.for_images(images, config.seed) if world.main else None
        log = LossLog(config.batch_size, world.size, clock, bar, self.health)
        evaluator = Evaluator(images, config, self.device, self.progress) if config.eval_every else None
        result = RunResult(losses=log.losses, D=self.D, G=self.G, out=self.out if self.write else None,
                           G_ema=self.ema.model if self.ema else None)
        threads_before, tuner = torch.get_num_threads(), ThreadTuner.for_run(config, self.device, world)
        try:
            with self.signals, explain_out_of_memory(self.device, config, self.files):
                while state.epoch < config.epochs and result.stopped == "finished":
                    rows = []
                    for real in batches.epoch(state.epoch, start=state.batch):
                        if config.lr_decay > 0:
                            progress = run_progress(state.step, config.epochs * steps_per_epoch, clock.elapsed(),
                                                    config.max_minutes)
                            set_learning_rates([self.d_optimizer, self.g_optimizer], self.base_lr, progress,
                                               config.lr_decay)
                        step_start = time.perf_counter()
                        values = self.train_step(real)
                        if tuner is not None:
                            tuner.after_step(real.shape[0], time.perf_counter() - step_start)
                        state.advance(real.shape[0] * world.size)
                        flush = log.add(state.step, values) or state.batch == steps_per_epoch
                        if flush:
                            rows += log.flush(state.epoch, state.images_seen)
                        # several processes decide together, at the same step, so none waits for the others forever
                        if (flush or not world.distributed) and self._should_stop(clock, result):
                            break
                    rows += log.flush(state.epoch, state.images_seen)
                    state.elapsed = clock.elapsed()
                    self._end_epoch(rows, steps_per_epoch, evaluator, result, on_epoch)
        finally:
            bar.close()
            result.threads = tuner.describe() if tuner else f"threads: {torch.get_num_threads()}"
            torch.set_num_threads(threads_before)
        if not distributed.replicas_identical(unwrap(self.G)):
            raise TrainingError("the processes' generators differ after training: a DDP synchronisation problem; "
                                "please report it with your torchrun command")
        if self.write and result.losses:
            self.files.plot_losses()
        result.images_per_second = clock.images_per_second(state.images_seen)
        return result

    def _should_stop(self, clock: RunClock, result: RunResult) -> bool:
        """Whether a signal, request_stop() or the time budget ends the run now (on every process alike)."""
        config, signal = self.config, self.signals.name
        over = config.max_minutes is not None and clock.elapsed() >= config.max_minutes * 60
        if not distributed.any_true(over or signal is not None, self.device):
            return False
        result.signal = signal
        result.stopped = f"stopped by {signal}" if signal else f"time budget of {config.max_minutes:g} minutes reached"
        return True

    def _end_epoch(self, rows, steps_per_epoch, evaluator, result, on_epoch) -> None:
        """After an epoch, or a stop inside one: samples, the losses and the checkpoint, evaluation, the hook."""
        state = self.state
        finished = state.batch >= steps_per_epoch
        if finished:
            state.epoch, state.batch = state.epoch + 1, 0
        distributed.average_buffers(unwrap(self.D))
        distributed.average_buffers(unwrap(self.G))
        samples = self.sample()
        if finished:
            result.samples.append(samples)
            if self.health is not None:
                self.health.samples(samples)
        if self.write:
            self.files.still_there()
            self.files.save_samples(samples, state.epoch if finished else state.epoch + 1)
            self.files.append_losses(rows)
            self.files.save_checkpoint(self.checkpoint())
            if finished and evaluator is not None:
                evaluator.after_epoch(self.sample_model, state, self.files, self.checkpoint)
        if finished and on_epoch is not None:
            on_epoch(state.epoch, samples)
        distributed.barrier()


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True, **kwargs) -> RunResult:
    """Train (or, with ``resume``, continue) the run ``config`` describes. See ``Trainer``."""
    trainer = Trainer(config, progress=progress, **kwargs)
    if resume:
        trainer.resume()
    return trainer.run()
