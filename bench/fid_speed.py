"""FID evaluation speed and the effect of bf16 on the number, on real images.

    python bench/fid_speed.py --data ../shared/data/celeba_aligned_10k.zip [--n 1000] [--batch-size B]

Computes the FID between two disjoint sets of n real images with the Inception network in fp32 and in bf16, and
prints images/s of each, the minutes 5,000 images would take, both FIDs and their relative difference (bf16 is
only worth using where that stays under 1%).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from facegan.data import load_images  # noqa: E402
from facegan.metrics import (Statistics, features, frechet_distance, inception_batch_size,  # noqa: E402
                             resolve_precision)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=None, help="Inception batch (default: the library's)")
    args = parser.parse_args()
    images = load_images(args.data, 32, progress=False)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    a, b = images[order[:args.n]], images[order[args.n:2 * args.n]]
    results = {}
    for precision in ("fp32", "bf16"):
        features(a[:32], precision=precision, batch_size=args.batch_size)  # load and warm up
        start = time.perf_counter()
        fa = features(a, precision=precision, batch_size=args.batch_size)
        fb = features(b, precision=precision, batch_size=args.batch_size)
        rate = 2 * args.n / (time.perf_counter() - start)
        results[precision] = (frechet_distance(Statistics.of(fa), Statistics.of(fb)), rate)
    batch = args.batch_size or inception_batch_size("cpu")
    print(f"data: {args.data}; two disjoint sets of {args.n} real images at 32x32; Inception batch {batch}; "
          f"{torch.get_num_threads()} threads; precision auto = {resolve_precision('auto', 'cpu')} here")
    for precision, (fid, rate) in results.items():
        print(f"{precision}: {rate:.1f} images/s ({5000 / rate / 60:.1f} min per 5,000 images), FID {fid:.3f}")
    fp32, bf16 = results["fp32"][0], results["bf16"][0]
    print(f"bf16 vs fp32 FID: {100 * (bf16 - fp32) / fp32:+.2f}%")


if __name__ == "__main__":
    main()
