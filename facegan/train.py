"""Training: the DCGAN loop, its run directory, and exact resumption.

A run directory holds ``config.json``, ``losses.csv`` (one row per step), ``samples/epoch_NNN.png`` (the fixed
latents after each epoch) and ``checkpoint.pt`` (both networks, both optimisers, the noise generator's state and
the position in the epoch), written atomically at the end of every epoch and whenever the run stops early.
Shuffling depends only on the seed and the epoch, and the latent noise comes from a generator saved in the
checkpoint, so a resumed run continues bit for bit where the first one stopped (on the CPU).
"""
from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import inspect
import io
import json
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import checkpoint as ckpt
from . import distributed
from .augment import augment, parse_policy
from .config import TrainConfig
from .data import TensorBatches, load_images, to_signed
from .health import HealthMonitor
from .images import save_grid
from .models import Discriminator, build_network, discriminator_loss, generator_loss, sample_latent
from .precision import autocast, training_precision
from .threads import ThreadTuner, available_cores, candidate_counts

# d_real and d_fake are D's mean probability that a real image is real, D(x), and that a fake one is, D(G(z)) (as
# the PyTorch DCGAN tutorial reports them); empty for a user's step that does not return them
LOSS_COLUMNS = ("step", "epoch", "d_loss", "g_loss", "images_seen", "elapsed_s", "d_real", "d_fake")


class EMA:
    """An exponential moving average of a generator's weights.

    BatchNorm's running statistics belong to the weights they were measured with, so they are not averaged:
    ``calibrate`` re-measures them for the averaged weights (a cumulative average over a few batches of latents)
    before the average generator is used in eval mode.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: float = TrainConfig.ema_warmup):
        self.decay, self.warmup = decay, warmup
        self.model = copy.deepcopy(ckpt.unwrap(model)).eval().requires_grad_(False)
        self._mine = [p for p in self.model.parameters()]

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        # a warm-up, (1 + step) / (warmup + step), so short runs are not dominated by the random initial weights:
        # until the decay reaches its cap, the average spans about the last 1 / (warmup - 1) of the steps
        decay = min(self.decay, (1 + step) / (self.warmup + step))
        theirs = [p.detach() for p in ckpt.unwrap(model).parameters()]
        torch._foreach_lerp_(self._mine, theirs, 1 - decay)

    @torch.no_grad()
    def calibrate(self, latents: list[torch.Tensor]) -> None:
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a plain average over the calibration batches
        self.model.train()
        for z in latents:
            self.model(z)
        self.model.eval()
        for m, momentum in zip(norms, saved):
            m.momentum = momentum


class TrainingError(Exception):
    """A run that cannot go on (bad resume, divergence, unwritable output); the message says what to do."""


def pick_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then the CPU; an explicit device must exist on this machine."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device '{name}': use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' asked for, but CUDA is not available here: use --device auto or cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device '{name}' does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' asked for, but Apple MPS is not available here: use --device auto or cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device '{name}': use auto, cpu, cuda, cuda:N or mps")
    return device


def default_batch_size(device: torch.device) -> int:
    """The batch a run uses unless told otherwise.

    On the CPU a step costs about in proportion to its batch, so smaller batches buy more updates per minute, and
    for these small networks the number of updates is what the faces improve with: in 5 minutes on the 2-core
    machine batch 64 reached FID 44 where batch 256 reached 72, though 256 trains 1.5x more images per second
    (bench/quality.py --set batch_size=...). On a GPU a step of these networks at 256 costs little more than at
    64, so the larger batch is the faster one there."""
    return 64 if device.type == "cpu" else 256


@dataclass
class RunResult:
    """What a run leaves in memory: per-step (d_loss, g_loss), one sample batch per finished epoch (CPU,
    [-1, 1]), the trained networks, and why it stopped."""
    losses: list = field(default_factory=list)
    samples: list = field(default_factory=list)
    D: nn.Module | None = None
    G: nn.Module | None = None
    out: Path | None = None
    stopped: str = "finished"
    images_per_second: float = 0.0
    G_ema: nn.Module | None = None
    threads: str = ""


class Trainer:
    """One training run. ``D``/``G`` and their optimisers default to the config's; pass your own to train them
    (as the notebook does). ``images`` (uint8, N×3×S×S) skips loading ``config.data``.

    ``step``, when given, replaces the built-in training step: ``step(real_images, z) -> (d_loss, g_loss)``
    (optionally followed by D(x) and D(G(z)), D's mean probabilities on the real and the fake batch) gets
    a batch of real images in [0, 1] (as a DataLoader gives them: the step scales them itself) and latents drawn
    from the run's own noise generator, and trains D and G once. Everything around it stays the Trainer's: the
    batches, the EMA, samples, checkpoints, resume, the time budget. The notebook hands its ``train_step`` here;
    the built-in step (``default_step``) is the fast one the CLI uses."""

    def __init__(self, config: TrainConfig, *, D=None, G=None, d_optimizer=None, g_optimizer=None,
                 images: torch.Tensor | None = None, step=None, progress: bool = True, write: bool = True):
        config.validate()
        self.world = distributed.current()
        self.device = pick_device(config.device)
        if config.batch_size is None:  # resolved here, so config.json and checkpoints record the batch used
            config = dataclasses.replace(config, batch_size=default_batch_size(self.device))
        if config.precision == "auto":  # likewise: the record says bf16 or fp32
            config = dataclasses.replace(config, precision=training_precision("auto", self.device))
        self.config = config
        if self.world.distributed and self.device.type == "cuda":
            self.device = torch.device("cuda", self.world.local_rank)
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
        self.D = D.to(self.device, memory_format=memory_format)
        self.G = G.to(self.device, memory_format=memory_format)
        if self.world.distributed:
            self.D, self.G = self._wrap(self.D), self._wrap(self.G)
        # fused Adam (torch 2.4+ on the CPU) updates a network's weights in one kernel: with networks this small the
        # optimiser is a visible share of a step, and side by side at batch 128 it trained 10-20% more images/s
        adam = dict(betas=(config.beta1, config.beta2), fused=self.device.type in ("cpu", "cuda"))
        self.d_optimizer = d_optimizer or torch.optim.Adam(self.D.parameters(), lr=config.d_lr or config.lr, **adam)
        self.g_optimizer = g_optimizer or torch.optim.Adam(self.G.parameters(), lr=config.lr, **adam)
        # the fixed latents are drawn on the CPU so every device shows the same faces for the same seed
        self.fixed_z = sample_latent(config.n_samples, config.z_size, config.latent,
                                     generator=torch.Generator().manual_seed(config.seed + 1)).to(self.device)
        self.noise = torch.Generator(device=self.device).manual_seed(config.seed + 2 + 1000 * self.world.rank)
        self.ema = EMA(self.G, config.ema, config.ema_warmup) if config.ema > 0 else None
        self._augment_policy = parse_policy(config.augment)
        self._last_g_loss = torch.zeros((), device=self.device)
        self._base_lr = [[group["lr"] for group in opt.param_groups] for opt in (self.d_optimizer, self.g_optimizer)]
        calibration = torch.Generator().manual_seed(config.seed + 3)
        self.calibration_z = [sample_latent(256, config.z_size, config.latent, generator=calibration).to(self.device)
                              for _ in range(4)]
        self.best_fid = math.inf
        self.epoch, self.batch, self.step, self.images_seen, self.elapsed = 0, 0, 0, 0, 0.0
        self.out = Path(config.out)
        self._images = images
        self._step = step
        self._health: HealthMonitor | None = None  # made by run(), on the process that reports
        self._stop_signal = None
        self.clock = time.perf_counter  # the time budget's clock (tests replace it)

    def _wrap(self, model: nn.Module) -> nn.Module:
        """DistributedDataParallel; each rank keeps its own BatchNorm statistics while training (broadcasting
        them from rank 0 at every forward would also break the two forward passes of the D step)."""
        if self.config.sync_bn:
            if self.device.type != "cuda":
                raise TrainingError("--sync-bn needs CUDA (NCCL); drop it for CPU runs")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        ddp = nn.parallel.DistributedDataParallel
        # newer torch names the switch forward_sync_buffers (buffers still start equal: same seed, same init)
        no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(ddp).parameters
                   else {"broadcast_buffers": False})
        return ddp(model, device_ids=ids, **no_sync)

    # ---------------------------------------------------------------- run directory and checkpoints
    def _prepare_out(self) -> None:
        if self.out.exists() and not self.out.is_dir():
            raise TrainingError(f"output path '{self.out}' is a file: choose a folder with --out")
        with self._writing():
            (self.out / "samples").mkdir(parents=True, exist_ok=True)
            # half-written temporary files of a run that was killed mid-write: the real files are intact
            for stale in [*self.out.glob(".*.tmp"), *(self.out / "samples").glob(".*.tmp")]:
                stale.unlink(missing_ok=True)
            ckpt.atomic_write(self.out / "config.json",
                              lambda f: f.write(json.dumps(self.config.to_dict(), indent=2).encode()))

    def state(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "generator": ckpt.unwrap(self.G).state_dict(),
            "discriminator": ckpt.unwrap(self.D).state_dict(),
            "g_optimizer": self.g_optimizer.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
            "noise_rng": self.noise.get_state(),
            **({"generator_ema": self.ema.model.state_dict()} if self.ema else {}),
            "best_fid": self.best_fid, "last_g_loss": self._last_g_loss.item(),
            "epoch": self.epoch, "batch": self.batch, "step": self.step, "world_size": self.world.size,
            "images_seen": self.images_seen, "elapsed_s": self.elapsed,
        }

    def resume(self, path: str | os.PathLike | None = None) -> None:
        """Continue from a checkpoint (default: the run directory's). Its config wins, except for how long to
        train (epochs, max_minutes), where to run (device, threads) and where the data lives."""
        path = Path(path or self.out / "checkpoint.pt")
        if not path.is_file():
            raise TrainingError(f"--resume: no checkpoint at '{path}': train without --resume first, or point "
                                "--out at the run to continue")
        state = ckpt.load_checkpoint(path)
        saved = ckpt.config_of(state)
        for name in ("arch", "image_size", "z_size", "d_conv_dim", "g_conv_dim", "d_norm"):
            if getattr(saved, name) != getattr(self.config, name):
                raise TrainingError(f"--resume: the checkpoint was trained with {name}={getattr(saved, name)} but "
                                    f"this run asks for {getattr(self.config, name)}: drop that flag or use a new "
                                    "--out")
        ckpt.restore_model(self.G, state["generator"], saved, "generator", path)
        ckpt.restore_model(self.D, state["discriminator"], saved, "discriminator", path)
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        if self.world.distributed or state.get("world_size", 1) != self.world.size:
            # another world size: a fresh, rank-specific noise stream from here on
            self.noise.manual_seed(self.config.seed + 2 + 1000 * self.world.rank + state["step"])
        else:
            self.noise.set_state(state["noise_rng"].to(self.noise.get_state().device))
        if self.ema is not None:
            ckpt.restore_model(self.ema.model, state.get("generator_ema", state["generator"]), saved,
                               "averaged generator", path)
        self.best_fid = state.get("best_fid", math.inf)
        self._last_g_loss = torch.tensor(float(state.get("last_g_loss", 0.0)), device=self.device)
        self.epoch, self.batch, self.step = state["epoch"], state["batch"], state["step"]
        # the position inside an epoch counts batches of batch_size x world_size images
        self.batch = self.batch * state.get("world_size", 1) // self.world.size
        self.images_seen, self.elapsed = state["images_seen"], state["elapsed_s"]
        self._truncate_losses()

    def _truncate_losses(self) -> None:
        """Drop loss rows written after the checkpoint (a crash between the CSV and the checkpoint)."""
        path = self.out / "losses.csv"
        # only the writing process touches the run directory: another rank's rewrite raced the writer's clean-up
        # of stale temporary files, which could delete the file it was about to move into place
        if not self.write or not path.exists():
            return
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= self.step]
        with self._writing():
            self._write_rows(rows, mode="replace")

    def _write_rows(self, rows: list[dict], mode: str = "append") -> None:
        path = self.out / "losses.csv"
        if mode == "append" and path.exists():
            old = path.read_bytes()
        else:
            old = b""
        text = io.StringIO()
        writer = csv.DictWriter(text, LOSS_COLUMNS, extrasaction="ignore")
        if not old:
            writer.writeheader()
        writer.writerows(rows)
        # rewriting the whole (small) file atomically keeps it whole across a kill mid-write
        ckpt.atomic_write(path, lambda f: f.write(old + text.getvalue().encode()))

    @contextlib.contextmanager
    def _writing(self):
        """Turn a failed write (disk full, permissions) into one clear error; atomic writes leave the previous
        files whole."""
        try:
            yield
        except OSError as e:
            raise TrainingError(f"could not write to '{self.out}' ({e.strerror or e}); the previous checkpoint is "
                                "intact: free some space or choose a writable --out, then --resume") from None

    def _save(self, rows: list[dict]) -> None:
        with self._writing():
            self._write_rows(rows)
            ckpt.save_checkpoint(self.out / "checkpoint.pt", self.state())

    # ---------------------------------------------------------------- the loop
    def sample_model(self) -> nn.Module:
        """The generator to draw with: the moving average (its BatchNorm statistics re-measured) when enabled."""
        if self.ema is None:
            return ckpt.unwrap(self.G)
        return self.calibrated(self.ema)

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

    def train_step(self, real: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One training step (the user's ``step`` or ``default_step``) on a batch of real images, then the EMA
        update. Returns four detached scalars: d_loss, g_loss, D(x) and D(G(z)) (the last two NaN when a user's
        step returns only the losses). The batch is in [0, 1] for a user's step, [-1, 1] otherwise
        (``TensorBatches`` gives each what it needs)."""
        config = self.config
        z = sample_latent(real.shape[0], config.z_size, config.latent, generator=self.noise, device=self.device)
        values = list(self.default_step(real, z) if self._step is None else self._step(real, z))
        values += [float("nan")] * (4 - len(values))
        if self.ema is not None:
            self.ema.update(self.G, self.step)
        return tuple(torch.as_tensor(v).detach().float().reshape(()).to(self.device) for v in values)

    def default_step(self, real: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The built-in DCGAN step: one discriminator step on real + fake, then (every ``d_steps``-th step) one
        generator step. With ``augment`` D sees every image through DiffAugment; with ``r1_gamma`` its loss gets
        the R1 penalty every ``r1_every`` steps. Returns d_loss, g_loss (the last generator step's), D(x) and
        D(G(z)) (the latter two D's mean probabilities, from the discriminator step)."""
        config, n = self.config, real.shape[0]
        see = self._seen_by_D
        g_turn = self.step % config.d_steps == 0
        r1_turn = config.r1_gamma > 0 and self.step % config.r1_every == 0
        if r1_turn:
            real = real.detach().requires_grad_(True)
        with autocast(self.device, config.precision):
            if config.reuse_fake and g_turn:
                fake = self.G(z)
            else:  # these fakes only train D: no graph through G is needed
                with torch.no_grad():
                    fake = ckpt.unwrap(self.G)(z)
            real_logits, fake_logits = self._discriminate(see(real), see(fake.detach()))
            d_loss = discriminator_loss(real_logits, fake_logits, config.loss, config.real_label)
        if r1_turn:
            d_loss = d_loss + self._r1_penalty(real_logits, real)
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()
        with torch.no_grad():
            d_real, d_fake = (torch.sigmoid(logits.float()).mean() for logits in (real_logits, fake_logits))
        if not g_turn:
            return d_loss.detach(), self._last_g_loss, d_real, d_fake

        if not config.reuse_fake:
            z = sample_latent(n, config.z_size, config.latent, generator=self.noise, device=self.device)
        # D's weight gradients are not needed for the G step (the D step clears them anyway): skipping them saves
        # about a third of D's backward pass
        # (the plain D, not its DDP wrapper: this step has no D gradients to average)
        plain_D = ckpt.unwrap(self.D)
        plain_D.requires_grad_(False)
        try:
            with autocast(self.device, config.precision):
                if not config.reuse_fake:
                    fake = self.G(z)
                g_loss = generator_loss(plain_D(see(fake)), config.loss)
            self.g_optimizer.zero_grad(set_to_none=True)
            g_loss.backward()
        finally:
            plain_D.requires_grad_(True)
        self.g_optimizer.step()
        self._last_g_loss = g_loss.detach()
        return d_loss.detach(), self._last_g_loss, d_real, d_fake

    def _discriminate(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D's logits on the real and on the fake batch. With ``one_d_pass`` and facegan's BatchNorm discriminator
        both go through in one pass (``parts=2``: each conv runs once over both, BatchNorm still normalises each
        batch apart, so the logits are those of two passes); any other D gets two passes. (A spectrally normalised
        D would advance its power iteration once instead of twice, so it keeps two passes too.)"""
        plain = ckpt.unwrap(self.D)
        if (self.config.one_d_pass and isinstance(plain, Discriminator) and plain.norm == "batch"
                and real.shape == fake.shape):
            return self.D(torch.cat([real, fake]), parts=2).chunk(2)
        return self.D(real), self.D(fake)

    def _seen_by_D(self, images: torch.Tensor) -> torch.Tensor:
        """What D is shown of ``images``: themselves, or a DiffAugment view drawn from the run's noise."""
        return augment(images, self._augment_policy, self.noise) if self._augment_policy else images

    def _r1_penalty(self, real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """gamma/2 * E|grad_x D(x)|^2 on the real batch, times r1_every since it is applied only that often (lazy
        regularisation, as in StyleGAN2): it keeps D's surface flat around the real faces, so D cannot grow sharp
        decision boundaries there that give G useless gradients."""
        gradient, = torch.autograd.grad(real_logits.float().sum(), real, create_graph=True)
        return self.config.r1_gamma / 2 * gradient.float().pow(2).flatten(1).sum(1).mean() * self.config.r1_every

    def _set_learning_rates(self, progress: float) -> None:
        """With ``lr_decay`` f: full learning rates until 1 - f of the run, then linearly down to zero at its end.
        ``progress`` is the finished fraction of the run (of its steps, or of its time budget)."""
        factor = min(1.0, max(0.0, 1.0 - progress) / self.config.lr_decay)
        for optimizer, base in ((self.d_optimizer, self._base_lr[0]), (self.g_optimizer, self._base_lr[1])):
            for group, lr in zip(optimizer.param_groups, base):
                group["lr"] = lr * factor

    def run(self, on_epoch=None) -> RunResult:
        """Train until ``config.epochs`` or ``config.max_minutes``; ``on_epoch(epoch, samples)`` is called after
        each epoch. SIGINT/SIGTERM stop the run after saving it."""
        config = self.config
        if self.write:
            self._prepare_out()
        images = self._images
        if images is None:
            if not self.world.main:
                distributed.barrier()  # rank 0 decodes and caches first; the others then read its cache
            images = load_images(config.data, config.image_size, synthetic_count=config.synthetic_count,
                                 seed=config.seed, progress=self.progress)
            if self.world.main:
                distributed.barrier()
        batches = TensorBatches(images, config.batch_size, seed=config.seed, device=self.device,
                                channels_last=config.channels_last, shard=(self.world.rank, self.world.size),
                                unit_range=self._step is not None)
        result = RunResult(D=self.D, G=self.G, out=self.out if self.write else None,
                           G_ema=self.ema.model if self.ema else None)
        from tqdm.auto import tqdm
        steps_per_epoch = len(batches)
        total = (config.epochs - self.epoch) * steps_per_epoch - self.batch
        bar = tqdm(total=max(total, 0), disable=not self.progress, unit="step", dynamic_ncols=True,
                   desc="training" + (" (synthetic faces)" if config.data == "synthetic" else ""))
        budget = None if config.max_minutes is None else config.max_minutes * 60
        start, seen_at_start, elapsed_at_start = self.clock(), self.images_seen, self.elapsed
        previous = self._install_signal_handlers()
        threads_before, tuner = torch.get_num_threads(), self._thread_tuner()
        self._health = HealthMonitor(self._real_sample(images)) if self.world.main else None
        try:
            while self.epoch < config.epochs and result.stopped == "finished":
                pending, rows = [], []
                for real in batches.epoch(self.epoch, start=self.batch):
                    if config.lr_decay > 0:
                        progress = self.step / (config.epochs * steps_per_epoch)
                        if budget is not None:
                            progress = max(progress, (elapsed_at_start + self.clock() - start) / budget)
                        self._set_learning_rates(progress)
                    step_start = time.perf_counter()
                    values = self.train_step(real)
                    if tuner is not None:
                        tuner.after_step(real.shape[0], time.perf_counter() - step_start)
                    self.batch += 1
                    self.step += 1
                    self.images_seen += real.shape[0] * self.world.size
                    pending.append((self.step, torch.stack(values)))
                    bar.update(1)
                    flush = self.step % 25 == 0 or self.batch == steps_per_epoch
                    if flush:
                        rows += self._flush(pending, start, elapsed_at_start, result, bar, seen_at_start)
                        pending = []
                    # several processes decide together, at the same step, so none waits for the others forever
                    if flush or not self.world.distributed:
                        over = budget is not None and elapsed_at_start + self.clock() - start >= budget
                        if distributed.any_true(over or self._stop_signal is not None, self.device):
                            result.stopped = (f"stopped by {self._stop_signal}" if self._stop_signal else
                                              f"time budget of {config.max_minutes:g} minutes reached")
                            break
                rows += self._flush(pending, start, elapsed_at_start, result, bar, seen_at_start)
                self.elapsed = elapsed_at_start + self.clock() - start
                finished_epoch = self.batch >= steps_per_epoch
                if finished_epoch:
                    self.epoch, self.batch = self.epoch + 1, 0
                distributed.average_buffers(ckpt.unwrap(self.D))
                distributed.average_buffers(ckpt.unwrap(self.G))
                samples = self.sample()
                label = self.epoch if finished_epoch else self.epoch + 1
                if finished_epoch:
                    result.samples.append(samples)
                    if self._health is not None:
                        self._health.samples(samples)
                if self.write:
                    with self._writing():
                        save_grid(samples, self.out / "samples" / f"epoch_{label:03d}.png")
                    self._save(rows)
                    if finished_epoch and config.eval_every and self.epoch % config.eval_every == 0:
                        self._evaluate(images)
                if finished_epoch and on_epoch is not None:
                    on_epoch(self.epoch, samples)
                distributed.barrier()
        finally:
            bar.close()
            self._restore_signal_handlers(previous)
            result.threads = tuner.describe() if tuner else f"threads: {torch.get_num_threads()}"
            torch.set_num_threads(threads_before)
        if not distributed.replicas_identical(ckpt.unwrap(self.G)):
            raise TrainingError("the processes' generators differ after training: a DDP synchronisation problem; "
                                "please report it with your torchrun command")
        if self.write and result.losses:
            with self._writing():
                self._plot_losses()
        seconds = self.clock() - start
        result.images_per_second = (self.images_seen - seen_at_start) / seconds if seconds > 0 else 0.0
        return result

    def _thread_tuner(self) -> ThreadTuner | None:
        """``--threads auto`` on the CPU: a tuner that follows the free cores. Not with --deterministic (bit-for-bit
        runs keep one count), not under torchrun (it sets each process's share), not on one core."""
        counts = candidate_counts(available_cores())
        if (self.config.thread_count() or self.device.type != "cpu" or self.config.deterministic
                or self.world.distributed or len(counts) < 2):
            return None
        return ThreadTuner(counts)

    def _flush(self, pending, start, elapsed_at_start, result, bar, seen_at_start) -> list[dict]:
        """Move the pending losses to the CPU in one transfer, check them, and turn them into CSV rows."""
        if not pending:
            return []
        values = distributed.mean(torch.stack([v for _, v in pending]).float()).cpu()
        if not torch.isfinite(values[:, :2]).all():
            bad = pending[int((~torch.isfinite(values[:, :2])).any(1).nonzero()[0])][0]
            raise TrainingError(f"training diverged at step {bad} (a loss became NaN or infinite); the last good "
                                "checkpoint is kept: lower --lr or use --precision fp32, then --resume")
        elapsed = elapsed_at_start + self.clock() - start
        if self._health is not None:
            self._health.steps(values)
        rows = []
        for (step, _), (d, g, d_real, d_fake) in zip(pending, values.tolist()):
            result.losses.append((d, g))
            rows.append({"step": step, "epoch": self.epoch + 1, "d_loss": f"{d:.6f}", "g_loss": f"{g:.6f}",
                         "images_seen": step * self.config.batch_size * self.world.size,
                         "elapsed_s": f"{elapsed:.3f}", "d_real": _probability(d_real),
                         "d_fake": _probability(d_fake)})
        rate = (self.images_seen - seen_at_start) / max(self.clock() - start, 1e-9)
        d, g, d_real, d_fake = values[-1].tolist()
        probabilities = {"D_x": f"{d_real:.2f}", "D_G_z": f"{d_fake:.2f}"} if d_real == d_real else {}
        bar.set_postfix(d_loss=f"{d:.3f}", g_loss=f"{g:.3f}", **probabilities, img_s=f"{rate:.0f}")
        return rows

    def _real_sample(self, images: torch.Tensor) -> torch.Tensor:
        """256 training images in [-1, 1] (a fixed random choice): how diverse real faces are, for HealthMonitor."""
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.config.seed))[:256]
        return to_signed(images[pick.to(images.device)].cpu())

    def _evaluate(self, images: torch.Tensor) -> None:
        """FID/KID of the sampling generator against a fixed subset of the training images: a row in
        metrics.csv, and best.pt whenever FID improves."""
        import hashlib
        import shutil

        from .metrics import evaluate
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.config.seed))
        real = images[pick[:self.config.eval_n].sort().values].cpu()
        key = hashlib.sha256(real.numpy().tobytes()).hexdigest()
        scores = evaluate(self.sample_model(), real, key=key, z_size=self.config.z_size, latent=self.config.latent,
                          seed=self.config.seed, device=self.device, progress=self.progress)
        path = self.out / "metrics.csv"
        old = path.read_bytes() if path.exists() else b"epoch,step,fid,kid,kid_std\n"
        row = f"{self.epoch},{self.step},{scores.fid:.4f},{scores.kid:.6f},{scores.kid_std:.6f}\n".encode()
        ckpt.atomic_write(path, lambda f: f.write(old + row))
        if scores.fid < self.best_fid:
            self.best_fid = scores.fid
            ckpt.save_checkpoint(self.out / "checkpoint.pt", self.state())
            tmp = self.out / ".best.pt.tmp"
            shutil.copyfile(self.out / "checkpoint.pt", tmp)
            os.replace(tmp, self.out / "best.pt")

    def _plot_losses(self) -> None:
        """losses.png beside losses.csv, from the whole run (resumed parts included)."""
        from .plots import plot_losses
        rows = read_losses(self.out)
        figure = plot_losses([(r["d_loss"], r["g_loss"]) for r in rows])
        ckpt.atomic_write(self.out / "losses.png", lambda f: figure.savefig(f, format="png", dpi=120))
        import matplotlib.pyplot as plt
        plt.close(figure)

    def _install_signal_handlers(self):
        """Ctrl-C or SIGTERM asks the loop to stop after the current step, save, and return."""
        def handler(signum, frame):
            if self._stop_signal is not None:  # a second Ctrl-C means now
                raise KeyboardInterrupt
            self._stop_signal = signal.Signals(signum).name
        previous = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave the handlers alone
            pass
        return previous

    @staticmethod
    def _restore_signal_handlers(previous) -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True, **kwargs) -> RunResult:
    """Train (or, with ``resume``, continue) the run ``config`` describes. See ``Trainer``."""
    trainer = Trainer(config, progress=progress, **kwargs)
    if resume:
        trainer.resume()
    return trainer.run()


def _probability(p: float) -> str:
    return f"{p:.4f}" if p == p else ""


def read_losses(run_dir: str | os.PathLike) -> list[dict]:
    """The rows of a run's losses.csv, numbers parsed (an empty D(x) / D(G(z)) cell reads as NaN)."""
    with open(Path(run_dir) / "losses.csv", newline="") as f:
        return [{k: (int(v) if k in ("step", "epoch", "images_seen") else float(v or "nan"))
                 for k, v in row.items()} for row in csv.DictReader(f)]


__all__ = ["Trainer", "train", "TrainingError", "RunResult", "pick_device", "read_losses", "autocast"]
