"""Quality per unit of compute: the seed method vs facegan's default, trained for the same wall-clock budget on the
same real images, then scored by FID/KID against held-out images neither saw.

    python bench/quality.py --minutes 15 --data ../shared/data/celeba_aligned_10k.zip [--set batch_size=256 ...]

Prints a table of steps, images seen, FID and KID per method, and ``ratio: X.XX`` (facegan FID / seed FID; lower is
better), and writes a sample grid per method to --grids (default: assets/).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
from common import SeedMethod, seed_loader, udacity_style_folder  # noqa: E402

from facegan.config import TrainConfig  # noqa: E402
from facegan.data import find_images, load_images  # noqa: E402
from facegan.images import save_grid  # noqa: E402
from facegan.metrics import evaluate  # noqa: E402
from facegan.models import sample_latent  # noqa: E402
from facegan.train import Trainer  # noqa: E402


def split(images: torch.Tensor, held_out: int, seed: int = 0):
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return order[held_out:].sort().values, order[:held_out].sort().values


def train_seed(folder: str, seconds: float) -> tuple[torch.nn.Module, int]:
    seed = SeedMethod()
    loader = seed_loader(folder)
    steps, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for real, _ in loader:
            seed.step(real)
            steps += 1
            if time.perf_counter() >= deadline:
                break
    return seed.G, steps * 32


def train_facegan(images: torch.Tensor, config: TrainConfig) -> tuple[torch.nn.Module, int, Trainer]:
    trainer = Trainer(config, images=images, progress=False, write=False)
    trainer.run()
    return trainer.sample_model(), trainer.images_seen, trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="real images (folder or zip), e.g. celeba_aligned_10k.zip")
    parser.add_argument("--minutes", type=float, default=15, help="training budget per method (default: 15)")
    parser.add_argument("--eval-n", type=int, default=2000, help="held-out real images and generated images")
    parser.add_argument("--fid-precision", choices=("fp32", "bf16"), default="bf16",
                        help="Inception arithmetic for both methods alike (default: bf16, within about 1%% of fp32)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a TrainConfig field of facegan's run (repeatable)")
    parser.add_argument("--skip-seed", action="store_true", help="train facegan only")
    parser.add_argument("--grids", default="assets", help="folder for the two sample grids (default: assets)")
    args = parser.parse_args()

    # both methods learn from the same files: 64x64 JPEG face crops like the Udacity set
    source = find_images(args.data)
    train_index, held_out_index = split(load_images(args.data, 32, progress=False), args.eval_n)
    folder = udacity_style_folder(args.data)
    images = load_images(os.path.join(folder, "faces"), 32, progress=False, cache=False)
    held_out = images[held_out_index]
    key = f"{source.fingerprint()}|held-out {args.eval_n}|udacity-style"

    hints = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    overrides = {}
    for item in args.set:
        name, value = item.split("=", 1)
        kind = {"int": int, "float": float, "bool": lambda v: v.lower() in ("1", "true", "yes")}.get(
            str(hints[name]).split(" ")[0].replace("'", ""), str)
        overrides[name] = kind(value)
    config = TrainConfig(data=args.data, epochs=10_000, max_minutes=args.minutes, **overrides)
    training_folder = udacity_style_folder(args.data, train_index)

    results = []
    z = sample_latent(64, 100, generator=torch.Generator().manual_seed(0))
    Path(args.grids).mkdir(parents=True, exist_ok=True)
    if not args.skip_seed:
        G, seen = train_seed(training_folder, args.minutes * 60)
        G.eval()
        scores = evaluate(G, held_out, key=key, z_size=100, latent="uniform", precision=args.fid_precision)
        with torch.no_grad():
            save_grid(G(z), Path(args.grids) / "quality_seed.png")
        results.append(("seed method", seen, scores))
    G, seen, trainer = train_facegan(images[train_index], config)
    scores = evaluate(G, held_out, key=key, z_size=config.z_size, latent=config.latent, precision=args.fid_precision)
    save_grid(trainer.sample(z if config.latent == "uniform" else None), Path(args.grids) / "quality_facegan.png")
    results.append(("facegan default", seen, scores))

    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(training_folder, ignore_errors=True)
    print(f"data: {args.data} as 64x64 JPEG face crops ({len(train_index)} training, {args.eval_n} held out); budget {args.minutes:g} min "
          f"per method; FID/KID on {args.eval_n} images, Inception in {args.fid_precision}")
    config = trainer.config  # with the batch size resolved for this device
    print(f"facegan: {', '.join(f'{k}={v}' for k, v in overrides.items()) or 'defaults'} (batch {config.batch_size},"
          f" lr {config.lr}/{config.d_lr or config.lr} (G/D), loss {config.loss}, D norm {config.d_norm}, "
          f"precision {config.precision}, ema {config.ema}, latent {config.latent})")
    print(f"{'method':<18}{'images seen':>14}{'FID':>10}{'KID x1000':>18}")
    for name, seen, s in results:
        print(f"{name:<18}{seen:>14}{s.fid:>10.2f}{s.kid * 1000:>11.2f} ± {s.kid_std * 1000:.2f}")
    if len(results) == 2:
        print(f"ratio: {results[1][2].fid / results[0][2].fid:.2f}")


if __name__ == "__main__":
    main()
