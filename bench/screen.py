"""Screen recipe candidates: each trained for the same wall-clock budget with several seeds on the same images as
bench/quality.py, scored by FID against the same held-out images, and summarised as mean and spread per candidate.

    python bench/screen.py --data ../shared/data/celeba_aligned_10k.zip --minutes 5 --seeds 0 1 \\
        --candidate "default" --candidate "diffaugment augment=translation,cutout" --log screen.jsonl

A candidate is a name followed by TrainConfig overrides (FIELD=VALUE, space-separated); "default" alone is facegan's
defaults. Runs go one at a time, candidates in the inner loop (so a slow phase of the host hits every candidate
alike rather than one), and each result is appended to --log as it comes, so an interrupted screen keeps what it
measured; runs already in the log are skipped on a re-run. A run during which another process used the CPU is
marked CONTAMINATED and left out of the means.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import CpuWatch  # noqa: E402
from quality import FaceganRun, parse_overrides, prepare  # noqa: E402

from facegan.config import TrainConfig  # noqa: E402
from facegan.metrics import evaluate  # noqa: E402


def parse_candidate(text: str) -> tuple[str, dict]:
    name, *settings = text.split()
    return name, parse_overrides(settings)


def summarise(results: list[dict]) -> list[tuple[str, str, list[float], float, float]]:
    """(candidate, settings, FIDs by seed, mean, spread) per candidate, best mean first, clean runs only. The
    spread is half the range (max - min) / 2, which with two seeds is each run's distance from the mean."""
    rows = {}
    for r in results:
        if r["clean"]:
            rows.setdefault((r["candidate"], r["settings"]), []).append(r["fid"])
    table = [(name, settings, fids, statistics.mean(fids), (max(fids) - min(fids)) / 2)
             for (name, settings), fids in rows.items()]
    return sorted(table, key=lambda row: row[3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="real images (folder or zip), e.g. celeba_aligned_10k.zip")
    parser.add_argument("--minutes", type=float, default=5, help="training budget per run (default: 5)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds per candidate (default: 0 1)")
    parser.add_argument("--candidate", action="append", required=True, metavar="'NAME FIELD=VALUE ...'",
                        help="a candidate: its name, then TrainConfig overrides (repeatable)")
    parser.add_argument("--eval-n", type=int, default=2000, help="held-out real images and generated images")
    parser.add_argument("--log", default="screen.jsonl", help="results, a JSON line per run (appended)")
    args = parser.parse_args()

    candidates = [parse_candidate(text) for text in args.candidate]
    for _, overrides in candidates:
        TrainConfig(**overrides).validate()  # a typo fails now, not an hour in
    log = Path(args.log)
    done = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    data = prepare(args.data, args.eval_n, seed_files=False)
    try:
        for seed in args.seeds:
            for name, overrides in candidates:
                settings = " ".join(f"{k}={v}" for k, v in overrides.items()) or "defaults"
                if any(r["candidate"] == name and r["settings"] == settings and r["seed"] == seed
                       and r["minutes"] == args.minutes for r in done):
                    continue
                config = TrainConfig(data=args.data, epochs=10_000, max_minutes=args.minutes,
                                     **{**overrides, "seed": seed})
                run = FaceganRun(data.train, config)
                with CpuWatch() as watch:
                    run.train_until(args.minutes * 60)
                G = run.G.eval()
                scores = evaluate(G, data.held_out, key=data.key, z_size=config.z_size, latent=config.latent,
                                  precision="bf16")
                record = {"candidate": name, "settings": settings, "seed": seed, "minutes": args.minutes,
                          "images_seen": run.seen, "steps": run.trainer.step, "fid": round(scores.fid, 3),
                          "kid": round(scores.kid, 6), "cpu": watch.note(), "clean": "CONTAMINATED" not in watch.note(),
                          "config": dataclasses.asdict(run.trainer.config)}
                done.append(record)
                with open(log, "a") as f:
                    f.write(json.dumps(record) + "\n")
                print(f"{name} seed {seed}: FID {scores.fid:.2f} after {run.seen} images ({watch.note()})", flush=True)
    finally:
        shutil.rmtree(data.folder, ignore_errors=True)

    print(f"\n{args.minutes:g} min per run on {args.data}; FID against {args.eval_n} held-out images")
    print(f"{'candidate':<16}{'settings':<44}{'FID by seed':<22}{'mean':>8}{'spread':>8}")
    for name, settings, fids, mean, spread in summarise([r for r in done if r["minutes"] == args.minutes]):
        print(f"{name:<16}{settings:<44}{' '.join(f'{f:.2f}' for f in fids):<22}{mean:>8.2f}{spread:>8.2f}")
    dirty = [r for r in done if not r["clean"]]
    if dirty:
        names = ", ".join(f"{r['candidate']} seed {r['seed']}" for r in dirty)
        print(f"CONTAMINATED and left out: {names}")


if __name__ == "__main__":
    main()
