"""Training: the loop that runs a step over the data, with everything around it.

``Trainer`` builds (or takes) the networks, optimisers and the run's state (``Trainer.state``); ``Trainer.run`` is
the loop, and the notebook's ``train()`` writes the same loop in sight over the learner's own DataLoader and step:

    with trainer.session(len(batches)) as run:
        while run.next_epoch():
            for real in batches:
                values = step(real, trainer.latents(len(real)))  # (d_loss, g_loss[, D(x), D(G(z))])
                if run.step_done(len(real), values):
                    break  # Ctrl-C, SIGTERM or the time budget
            run.end_epoch()  # samples, losses.csv, the checkpoint, evaluation

A ``Session`` holds the plumbing those calls do. Shuffling depends only on the seed and the epoch and the latents
come from a generator saved in the checkpoint, so a resumed run goes on bit for bit where it stopped (on the CPU).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

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
from .state import RunResult, RunState
from .step import DefaultStep, adam_optimizers, decay_learning_rates
from .threads import ThreadTuner


class Trainer:
    """One training run. ``D``/``G`` and their optimisers default to the config's; pass your own to train them.
    ``images`` (uint8, N×3×S×S) skips loading ``config.data``. ``step(real_images, z) -> (d_loss, g_loss[, D(x),
    D(G(z))])``, when given, replaces the built-in step (``default_step``) in ``run``: it gets real images in
    [0, 1], as a DataLoader gives them (it scales them itself), and latents from the run's noise generator."""

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
                                         image_size=config.image_size, d_norm=config.d_norm,
                                         d_mbstd=config.d_mbstd)
            D, G = D if D is not None else D_new, G if G is not None else G_new
        layout = torch.channels_last if config.channels_last else torch.contiguous_format
        self.D, self.G = (distributed.wrap(net.to(self.device, memory_format=layout), self.device, config.sync_bn)
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
        self.signals = StopSignals()  # Ctrl-C and SIGTERM while a session runs; request_stop() by hand
        self.clock = time.perf_counter  # the time budget's clock (tests replace it)

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

    def sample_model(self) -> nn.Module:
        """The generator to draw with: the moving average (its BatchNorm statistics re-measured) when enabled."""
        return self.sampler.model(self.G, self.ema)

    def sample(self, z: torch.Tensor | None = None) -> torch.Tensor:
        """Generator output for ``z`` (default: the fixed latents) in eval mode, float on the CPU in [-1, 1]."""
        return self.sampler.draw(self.sample_model(), z)

    def latents(self, n: int) -> torch.Tensor:
        """``n`` latent vectors for the next update, from the run's own noise generator (saved in checkpoints)."""
        config = self.config
        return sample_latent(n, config.z_size, config.latent, generator=self.state.noise, device=self.device)

    def train_step(self, real: torch.Tensor) -> tuple:
        """One update (the user's ``step``, else ``default_step``) on a batch of real images and fresh latents:
        in [0, 1] for a user's step, [-1, 1] for the built-in one (``TensorBatches`` gives each what it needs).
        Returns what the step returns (d_loss, g_loss[, D(x), D(G(z))])."""
        z = self.latents(real.shape[0])
        if self.user_step is not None:
            return self.user_step(real, z)
        return self.default_step(self.D, self.G, self.d_optimizer, self.g_optimizer, real, z, self.state.step)

    def session(self, steps_per_epoch: int, reference_images=None, on_epoch=None) -> "Session":
        """The plumbing of one training loop over batches of ``steps_per_epoch``; ``reference_images`` (uint8, or
        float in [0, 1]) are the real faces the health signals and evaluation compare the generator's with."""
        return Session(self, steps_per_epoch, reference_images, on_epoch)

    def run(self, on_epoch=None) -> RunResult:
        """Train until ``config.epochs`` or ``config.max_minutes``; ``on_epoch(epoch, samples)`` is called after
        each epoch. SIGINT/SIGTERM stop the run after saving it; while it runs the run directory is locked."""
        config, world, state = self.config, self.world, self.state
        images = self.images if self.images is not None else load_run_images(config, world, self.progress)
        batches = TensorBatches(images, config.batch_size, seed=config.seed, device=self.device,
                                channels_last=config.channels_last, shard=(world.rank, world.size),
                                unit_range=self.user_step is not None, mirror=config.mirror)
        with self.session(len(batches), images, on_epoch) as run:
            while run.next_epoch():
                for real in batches.epoch(state.epoch, start=state.batch):
                    values = self.train_step(real)
                    if run.step_done(len(real), values):
                        break
                run.end_epoch()
        return run.result


class Session:
    """One training loop's plumbing (``Trainer.session``): ``with`` it the run directory is locked and prepared,
    Ctrl-C and SIGTERM stop cleanly and a progress bar runs; ``step_done`` and ``end_epoch`` do the rest."""

    def __init__(self, trainer: Trainer, steps_per_epoch: int, reference_images=None, on_epoch=None):
        self.trainer, self.steps_per_epoch, self.on_epoch = trainer, steps_per_epoch, on_epoch
        t, config, state = trainer, trainer.config, trainer.state
        self.result = RunResult(D=t.D, G=t.G, out=t.out if t.write else None, G_ema=t.ema.model if t.ema else None)
        real = reference_images
        self.health = HealthMonitor.for_images(real, config.seed) if real is not None and t.world.main else None
        uint8 = real is not None and real.dtype == torch.uint8
        self.evaluator = Evaluator(real, config, t.device, t.progress) if config.eval_every and uint8 else None
        self.rows: list[dict] = []
        self.clock = RunClock(t.clock, state.elapsed, state.images_seen)
        self.tuner = ThreadTuner.for_run(config, t.device, t.world)
        self.threads_before, self.step_start = torch.get_num_threads(), None

    def __enter__(self) -> "Session":
        t = self.trainer
        t.signals.name = None  # a Ctrl-C that stopped the last run must not stop this one at its first step
        try:
            if t.write:
                t.files.prepare(t.config.to_dict())
        except BaseException:
            t.files.unlock()
            raise
        config, state = t.config, t.state
        self.bar = tqdm(total=max((config.epochs - state.epoch) * self.steps_per_epoch - state.batch, 0),
                        unit="step", disable=not t.progress, dynamic_ncols=True,
                        desc="training" + (" (synthetic faces)" if config.data == "synthetic" else ""))
        self.log = LossLog(config.batch_size, t.world.size, self.clock, self.bar, self.health)
        self.result.losses = self.log.losses
        t.signals.__enter__()
        self.memory = explain_out_of_memory(t.device, t.config, t.files)
        self.memory.__enter__()
        self.schedule()
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        t, result = self.trainer, self.result
        try:
            suppressed = self.memory.__exit__(kind, error, traceback)  # raises the one-line message instead
        finally:
            self.bar.close()
            t.signals.__exit__()
            result.threads = self.tuner.describe() if self.tuner else f"threads: {torch.get_num_threads()}"
            torch.set_num_threads(self.threads_before)
            t.files.unlock()
        if kind is None:
            if not distributed.replicas_identical(unwrap(t.G)):
                raise TrainingError("the processes' generators differ after training: a DDP synchronisation "
                                    "problem; please report it with your torchrun command")
            if t.write and result.losses:
                t.files.plot_losses()
            result.images_per_second = self.clock.images_per_second(t.state.images_seen)
        return bool(suppressed)

    def next_epoch(self) -> bool:
        """Whether to train another epoch: the run has epochs to go and nothing stopped it."""
        self.rows = []
        return self.trainer.state.epoch < self.trainer.config.epochs and self.result.stopped == "finished"

    def step_done(self, images: int, values) -> bool:
        """After an update on ``images`` images that returned ``values``, (d_loss, g_loss[, D(x), D(G(z))]): the
        moving average, the position, the losses, the learning rates of the next update. True when the run must
        stop now (Ctrl-C, SIGTERM, request_stop or the time budget), decided on every process alike."""
        t, state = self.trainer, self.trainer.state
        values = list(values) + [float("nan")] * (4 - len(values))
        if values[1] is None:  # the built-in step trained D alone: report G's loss of its last step
            values[1] = state.last_g_loss
        elif t.user_step is None:  # kept without its graph: a learner's step may return the loss undetached
            state.last_g_loss = torch.as_tensor(values[1]).detach()
        if t.ema is not None:
            t.ema.update(t.G, state.step)
        if self.tuner is not None and self.step_start is not None:
            self.tuner.after_step(images, time.perf_counter() - self.step_start)
        state.advance(images * t.world.size)
        values = tuple(torch.as_tensor(v).detach().float().reshape(()).to(t.device) for v in values)
        flush = self.log.add(state.step, values) or state.batch == self.steps_per_epoch
        if flush:
            self.rows += self.log.flush(state.epoch, state.images_seen)
        # several processes decide together, at the same step, so none waits for the others forever
        stop = (flush or not t.world.distributed) and self.should_stop()
        if not stop and state.batch < self.steps_per_epoch:  # else end_epoch saves first, then schedules
            self.schedule()
        return stop

    def schedule(self) -> None:
        """With --lr-decay, the learning rates of the next update for how far the run is; then its clock starts."""
        t = self.trainer
        decay_learning_rates([t.d_optimizer, t.g_optimizer], t.base_lr, t.config, t.state.step,
                             t.config.epochs * self.steps_per_epoch, self.clock.elapsed())
        self.step_start = time.perf_counter()

    def should_stop(self) -> bool:
        """Whether a signal, request_stop() or the time budget ends the run now (on every process alike)."""
        config, signal = self.trainer.config, self.trainer.signals.name
        over = config.max_minutes is not None and self.clock.elapsed() >= config.max_minutes * 60
        if not distributed.any_true(over or signal is not None, self.trainer.device):
            return False
        self.result.signal = signal
        self.result.stopped = (f"stopped by {signal}" if signal else
                               f"time budget of {config.max_minutes:g} minutes reached")
        return True

    def end_epoch(self) -> torch.Tensor:
        """After an epoch, or a stop inside one: the fixed latents' samples (returned), the losses and the
        checkpoint, evaluation, ``on_epoch``."""
        t, state = self.trainer, self.trainer.state
        self.rows += self.log.flush(state.epoch, state.images_seen)
        state.elapsed = self.clock.elapsed()
        finished = state.batch >= self.steps_per_epoch
        if finished:
            state.epoch, state.batch = state.epoch + 1, 0
        distributed.average_buffers(unwrap(t.D))
        distributed.average_buffers(unwrap(t.G))
        samples = t.sample()
        if finished:
            self.result.samples.append(samples)
            if self.health is not None:
                self.health.samples(samples)
        if t.write:
            t.files.still_there()
            t.files.save_samples(samples, state.epoch if finished else state.epoch + 1)
            t.files.append_losses(self.rows)
            t.files.save_checkpoint(t.checkpoint())
            if finished and self.evaluator is not None:
                self.evaluator.after_epoch(t.sample_model, state, t.files, t.checkpoint)
        if finished and self.on_epoch is not None:
            self.on_epoch(state.epoch, samples)
        distributed.barrier()
        self.schedule()
        return samples


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True, **kwargs) -> RunResult:
    """Train (or, with ``resume``, continue) the run ``config`` describes. See ``Trainer``."""
    trainer = Trainer(config, progress=progress, **kwargs)
    if resume:
        trainer.resume()
    return trainer.run()
