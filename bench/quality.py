"""Quality per unit of compute: the seed method vs facegan's default, trained for the same wall-clock budget on the
same real images, then scored by FID/KID against held-out images neither saw.

    python bench/quality.py --minutes 15 --data ../shared/data/celeba_aligned_10k.zip [--set batch_size=256 ...]
    python bench/quality.py --curve --data ../shared/data/celeba_aligned_10k.zip --framing face108

The faces are cut from aligned CelebA in one of two framings (common.FRAMINGS): head150, the whole head with hair
and some background as in the Udacity set (the default), or face108, the conventional square from forehead to chin.
The real-vs-real FID of each framing, the floor under any generator's, is printed beside the results.

Prints a table of steps, images seen, FID and KID per method, and ``ratio: X.XX`` (facegan FID / seed FID; lower is
better), and writes a sample grid per method to --grids (default: assets/). With ``--curve`` both methods are scored
at 1, 2, 5, 10 and 15 minutes of training (up to --minutes; the time spent scoring is not counted) and the curve is
plotted to quality_curve.png beside the grids.

Every training stretch records how much CPU the rest of the machine used meanwhile; a stretch where another process
took more than 0.1 cores is flagged CONTAMINATED in the output, and the run's numbers should not be used.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
from common import FRAMINGS, CpuWatch, SeedMethod, framed_crops, jpeg_folder, run_whole, seed_loader  # noqa: E402

from facegan.config import TrainConfig  # noqa: E402
from facegan.data import find_images, load_images  # noqa: E402
from facegan.images import save_grid  # noqa: E402
from facegan.metrics import Statistics, evaluate, frechet_distance, reference_statistics  # noqa: E402
from facegan.models import sample_latent  # noqa: E402
from facegan.train import Trainer  # noqa: E402


def prepare(data: str, eval_n: int, seed_files: bool = True, framing: str = "face108") -> types.SimpleNamespace:
    """The images both methods learn from and are scored against: the source cut to ``framing`` (see
    common.FRAMINGS) and re-encoded as 64x64 JPEG crops like the Udacity set, read back at 32x32, split into
    training images and ``eval_n`` held-out ones (the same faces held out in every framing). With ``seed_files``
    the training images are also written as a folder for the seed method's ImageFolder."""
    source = find_images(data)
    crops = framed_crops(data, framing)
    train_index, held_out_index = split(torch.from_numpy(crops), eval_n)
    folder = jpeg_folder(crops)
    images = load_images(os.path.join(folder, "faces"), 32, progress=False, cache=False)
    # the face108 key is the one its reference statistics were cached under before framings had names
    key = f"{source.fingerprint()}|held-out {eval_n}|udacity-style" + ("" if framing == "face108" else f"|{framing}")
    return types.SimpleNamespace(
        train=images[train_index], held_out=images[held_out_index], folder=folder, key=key, framing=framing,
        training_folder=jpeg_folder(crops, train_index) if seed_files else None)


def real_floors(data: types.SimpleNamespace, precision: str = "auto") -> tuple[float, float]:
    """FID of real faces against real faces, the floor a generator's FID is read against: the held-out faces' two
    halves against each other, and as many training faces as there are held-out ones against the held-out set
    (the sample sizes every run is scored at). Inception features are cached like any reference's."""
    held_out = reference_statistics(data.held_out, data.key, precision=precision)
    half = len(held_out.features) // 2
    halves = frechet_distance(Statistics.of(held_out.features[:half]), Statistics.of(held_out.features[half:]))
    pick = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))[:len(data.held_out)]
    training = reference_statistics(data.train[pick.sort().values], data.key + "|training sample",
                                    precision=precision)
    return halves, frechet_distance(training, held_out)


def remove_folders(data: types.SimpleNamespace | None) -> None:
    """Delete the JPEG folders ``prepare`` wrote."""
    for folder in (data.folder, data.training_folder) if data else ():
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


def parse_overrides(items: list[str]) -> dict:
    """['batch_size=128', 'augment=translation,cutout'] -> TrainConfig field values of the right types."""
    hints = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    overrides = {}
    for item in items:
        name, value = item.split("=", 1)
        kind = {"int": int, "float": float, "bool": lambda v: v.lower() in ("1", "true", "yes")}.get(
            str(hints[name]).split(" ")[0].replace("'", ""), str)
        overrides[name] = kind(value)
    return overrides


def split(images: torch.Tensor, held_out: int, seed: int = 0):
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return order[held_out:].sort().values, order[:held_out].sort().values


def epochs_of(updates: int, images: int, batch_size: int) -> int:
    """``updates`` generator steps as epochs of ``images`` faces (the last partial batch of each is dropped), or
    SystemExit naming the nearest budget that is a whole number of them."""
    per_epoch = images // batch_size
    if not per_epoch:
        raise SystemExit(f"only {images} training faces but the batch size is {batch_size}: give the candidate "
                         f"batch_size={images} or less, or --data more faces")
    if updates % per_epoch:
        raise SystemExit(f"--updates {updates} is not a whole number of epochs ({per_epoch} steps each: "
                         f"{images} faces at batch {batch_size}): "
                         f"use a multiple of {per_epoch}, e.g. {max(1, round(updates / per_epoch)) * per_epoch}")
    return updates // per_epoch


class SeedRun:
    """The seed method, trained in stretches: ``train_until(seconds)`` continues up to that much training time."""

    def __init__(self, folder: str, seed: int = 0):
        np.random.seed(seed)  # the seed method draws its latents with NumPy
        self.method, self.loader = SeedMethod(seed=seed), seed_loader(folder)  # after SeedMethod seeds the shuffle
        self.seen, self.trained = 0, 0.0
        self._batches = self._forever()

    def _forever(self):
        while True:
            yield from self.loader

    def train_until(self, seconds: float) -> None:
        start = time.perf_counter()
        while self.trained + time.perf_counter() - start < seconds:
            real, _ = next(self._batches)
            self.method.step(real)
            self.seen += real.shape[0]
        self.trained += time.perf_counter() - start

    @property
    def G(self) -> torch.nn.Module:
        return self.method.G


class FaceganRun:
    """facegan's Trainer, trained in stretches up to a total training time (its clock stops between them)."""

    def __init__(self, images: torch.Tensor, config: TrainConfig):
        self.trainer = Trainer(config, images=images, progress=False, write=False)
        self.images = images

    def train_until(self, seconds: float) -> None:
        self.trainer.config = dataclasses.replace(self.trainer.config, max_minutes=seconds / 60)
        run_whole(self.trainer)

    def train_updates(self, updates: int) -> None:
        """Train up to ``updates`` generator steps in all, a whole number of epochs."""
        self.train_epochs(epochs_of(updates, len(self.images), self.trainer.config.batch_size))

    def train_epochs(self, epochs: int) -> None:
        """Train up to ``epochs`` epochs whatever the time it takes (a budget of updates, not of minutes)."""
        self.trainer.config = dataclasses.replace(self.trainer.config, epochs=epochs, max_minutes=None)
        run_whole(self.trainer)

    @property
    def seen(self) -> int:
        return self.trainer.images_seen

    @property
    def G(self) -> torch.nn.Module:
        return self.trainer.sample_model()


def train_and_score(run, minutes: list[float], score) -> list[tuple[float, int, object, str]]:
    """(minutes, images seen, scores, CPU note) at each point of ``minutes``."""
    points = []
    for m in minutes:
        with CpuWatch() as watch:
            run.train_until(m * 60)
        points.append((m, run.seen, score(run.G), watch.note()))
        print(f"  {m:g} min: {run.seen} images, FID {points[-1][2].fid:.2f}; {watch.note()}", flush=True)
    return points


def plot_curve(curves: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in curves.items():
        ax.plot([p[0] for p in points], [p[2].fid for p in points], marker="o", label=name)
    ax.set(xlabel="training time on the 2-core CPU (minutes)", ylabel="FID (lower is better)",
           title="Quality against training time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="real images (folder or zip), e.g. celeba_aligned_10k.zip")
    parser.add_argument("--minutes", type=float, default=15, help="training budget per method (default: 15)")
    parser.add_argument("--eval-n", type=int, default=2000, help="held-out real images and generated images")
    parser.add_argument("--fid-precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="Inception arithmetic for both methods alike (default: auto, bf16 on CPUs with bf16 "
                             "units, within about 1%% of fp32, and fp32 elsewhere)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a TrainConfig field of facegan's run (repeatable)")
    parser.add_argument("--framing", choices=sorted(FRAMINGS), default="head150",
                        help="how the faces are cut from aligned CelebA (default: head150, framed like the Udacity "
                             "set; face108 is the conventional 108x108 square)")
    parser.add_argument("--skip-seed", action="store_true", help="train facegan only")
    parser.add_argument("--grids", default="assets", help="folder for the two sample grids (default: assets)")
    parser.add_argument("--curve", action="store_true",
                        help="score both methods at 1, 2, 5, 10 and 15 minutes (up to --minutes) and plot the curve")
    args = parser.parse_args()

    data = prepare(args.data, args.eval_n, seed_files=not args.skip_seed, framing=args.framing)
    overrides = parse_overrides(args.set)
    config = TrainConfig(data=args.data, epochs=10_000, max_minutes=args.minutes, **overrides)

    minutes = [m for m in (1, 2, 5, 10, 15) if m < args.minutes] + [args.minutes] if args.curve else [args.minutes]
    z = sample_latent(64, 100, generator=torch.Generator().manual_seed(0))
    Path(args.grids).mkdir(parents=True, exist_ok=True)

    def score(G):
        G.eval()
        return evaluate(G, data.held_out, key=data.key, z_size=config.z_size, latent=config.latent,
                        precision=args.fid_precision)
    curves = {}
    if not args.skip_seed:
        print("seed method", flush=True)
        seed_run = SeedRun(data.training_folder)
        curves["seed method"] = train_and_score(seed_run, minutes, score)
        with torch.no_grad():
            save_grid(seed_run.G.eval()(z), Path(args.grids) / "quality_seed.png")
    print("facegan default", flush=True)
    facegan_run = FaceganRun(data.train, config)
    curves["facegan default"] = train_and_score(facegan_run, minutes, score)
    trainer = facegan_run.trainer
    save_grid(trainer.sample(z if config.latent == "uniform" else None), Path(args.grids) / "quality_facegan.png")
    results = [(name, points[-1][1], points[-1][2]) for name, points in curves.items()]
    if args.curve:
        plot_curve(curves, Path(args.grids) / "quality_curve.png")

    remove_folders(data)
    halves, training = real_floors(data, args.fid_precision)
    print(f"data: {args.data} as 64x64 JPEG crops framed {args.framing} ({len(data.train)} training, {args.eval_n} "
          f"held out); budget {args.minutes:g} min per method; FID/KID on {args.eval_n} images, Inception in "
          f"{args.fid_precision}")
    print(f"floor (real vs real FID): held-out halves {halves:.2f}, {args.eval_n} training vs held-out {training:.2f}")
    config = trainer.config  # with the batch size resolved for this device
    print(f"facegan: {', '.join(f'{k}={v}' for k, v in overrides.items()) or 'defaults'} (batch {config.batch_size},"
          f" lr {config.lr}/{config.d_lr or config.lr} (G/D), loss {config.loss}, D norm {config.d_norm}, "
          f"precision {config.precision}, ema {config.ema}, latent {config.latent})")
    if args.curve:
        print(f"{'minutes':>8}" + "".join(f"{name + ' FID':>22}" for name in curves))
        for i, m in enumerate(minutes):
            print(f"{m:>8g}" + "".join(f"{points[i][2].fid:>22.2f}" for points in curves.values()))
        print(f"curve: {Path(args.grids) / 'quality_curve.png'}")
    print(f"{'method':<18}{'images seen':>14}{'FID':>10}{'KID x1000':>18}")
    for name, seen, s in results:
        print(f"{name:<18}{seen:>14}{s.fid:>10.2f}{s.kid * 1000:>11.2f} ± {s.kid_std * 1000:.2f}")
    if len(results) == 2:
        print(f"ratio: {results[1][2].fid / results[0][2].fid:.2f}")
    notes = [p[3] for points in curves.values() for p in points]
    print("CONTAMINATED: another process used the CPU during training; do not use these numbers"
          if any("CONTAMINATED" in n for n in notes) else "clean: no other process used the CPU while training")


if __name__ == "__main__":
    main()
