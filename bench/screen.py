"""Screen recipe candidates: each trained for the same wall-clock budget with several seeds on the same images as
bench/quality.py, scored by FID against the same held-out images, and summarised as mean and spread per candidate.

    python bench/screen.py --data ../shared/data/celeba_aligned_10k.zip --minutes 5 --seeds 0 1 \\
        --candidate "default" --candidate "diffaugment augment=translation,cutout" --log screen.jsonl

A candidate is a name followed by TrainConfig overrides (FIELD=VALUE, space-separated); "default" alone is facegan's
defaults. ``also_ema=D`` or ``also_ema=D:W`` (repeatable) scores the same run a second time, at every point it is
scored, through a moving average of decay D (and warm-up W, TrainConfig.ema_warmup) kept beside the run's own: the
average changes only what is sampled, never the training, so one run measures both and the comparison is free of
seed noise. ``--seed-method`` adds the seed method (the Udacity loop) to each seed's runs.
Runs go one at a time, candidates in the inner loop (so a slow phase of the host hits every candidate alike rather
than one), and each result is appended to --log as it comes, so an interrupted screen keeps what it
measured; runs already in the log are skipped on a re-run. A run during which another process used the CPU is
marked CONTAMINATED and left out of the means.

``--epochs N`` gives every run a budget of updates instead of minutes (N epochs of the training faces), the same
number on any host: 119 epochs of the 8,000 training faces at batch 64 are 14,875 steps, what a 2-core CPU with bf16
units trains in 15 minutes, so a slower host can repeat that comparison step for step. The clock does not enter such
a result, so another process on the CPU only slows it down, and it is not left out.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import types
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import CpuWatch  # noqa: E402
from quality import FaceganRun, SeedRun, parse_overrides, plot_curve, prepare  # noqa: E402

from facegan.config import TrainConfig  # noqa: E402
from facegan.metrics import evaluate  # noqa: E402
from facegan.train import EMA  # noqa: E402


def parse_candidate(text: str) -> tuple[str, dict, list[tuple[float, float]]]:
    """'lr4e-4 lr=4e-4 also_ema=0.9995 also_ema=0.9999:3' -> ('lr4e-4', {'lr': 0.0004}, [(0.9995, 10.0),
    (0.9999, 3.0)]): an extra average is a decay, optionally with its warm-up W after a colon (default 10)."""
    name, *settings = text.split()
    also_ema = []
    for item in settings:
        if item.startswith("also_ema="):
            decay, _, warmup = item.split("=", 1)[1].partition(":")
            also_ema.append((float(decay), float(warmup or TrainConfig.ema_warmup)))
            TrainConfig(ema=also_ema[-1][0], ema_warmup=also_ema[-1][1]).validate()
    return name, parse_overrides([item for item in settings if not item.startswith("also_ema=")]), also_ema


def keep_extra_emas(trainer, averages: list[tuple[float, float]]) -> list[EMA]:
    """Moving averages of the trainer's generator at other (decay, warm-up)s, updated after every step like its own."""
    emas = [EMA(trainer.G, decay, warmup) for decay, warmup in averages]
    train_step = trainer.train_step

    def step_and_average(real):
        values = train_step(real)
        for ema in emas:
            ema.update(trainer.G, trainer.step)
        return values
    trainer.train_step = step_and_average
    return emas


def extra_average(name: str, settings: str, decay: float, warmup: float) -> tuple[str, str, tuple[float, float]]:
    """The name and settings an extra average's results are logged under, e.g. 'lr4e-4+ema0.9999:3'."""
    suffix = f"{decay:g}" + ("" if warmup == TrainConfig.ema_warmup else f":{warmup:g}")
    overrides = f"ema={decay:g}" + ("" if warmup == TrainConfig.ema_warmup else f" ema_warmup={warmup:g}")
    return f"{name}+ema{suffix}", f"{settings} {overrides}".replace("defaults ", ""), (decay, warmup)


def worst(notes: list[str]) -> str:
    """The CPU note of a run trained in stretches: contaminated if any stretch was."""
    return next((n for n in notes if "CONTAMINATED" in n), notes[-1])



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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="real images (folder or zip), e.g. celeba_aligned_10k.zip")
    parser.add_argument("--minutes", type=float, default=5, help="training budget per run (default: 5)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds per candidate (default: 0 1)")
    parser.add_argument("--candidate", action="append", required=True, metavar="'NAME FIELD=VALUE ...'",
                        help="a candidate: its name, then TrainConfig overrides (repeatable)")
    parser.add_argument("--eval-n", type=int, default=2000, help="held-out real images and generated images")
    parser.add_argument("--log", default="screen.jsonl", help="results, a JSON line per run (appended)")
    parser.add_argument("--seed-method", action="store_true", help="also train the seed method with each seed")
    parser.add_argument("--curve", nargs="+", default=[], metavar="NAME",
                        help="candidates (or 'seed method') also scored at 1, 2, 5 and 10 minutes, plotted to --plot")
    parser.add_argument("--curve-seed", type=int, nargs="+", default=[0],
                        help="seeds whose --curve runs are scored on the way; the first is plotted (default: 0)")
    parser.add_argument("--plot", default="assets/quality_curve.png", help="where --curve draws the curve")
    parser.add_argument("--epochs", type=int, default=None,
                        help="a budget of updates instead of --minutes: train each run for this many epochs")
    parser.add_argument("--report", action="store_true", help="train nothing: print the table (and plot) from --log")
    args = parser.parse_args(argv)
    if args.epochs is not None and (args.curve or args.seed_method):
        parser.error("--curve and --seed-method train for minutes: leave them out with --epochs")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be at least 1 (got {args.epochs})")

    candidates = [parse_candidate(text) for text in args.candidate]
    for _, overrides, _ in candidates:
        TrainConfig(**overrides).validate()  # a typo fails now, not an hour in
    log = Path(args.log)
    done = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    data = None if args.report else prepare(args.data, args.eval_n, seed_files=args.seed_method)
    runs = candidates + ([("seed method", None, [])] if args.seed_method else [])
    unknown = set(args.curve) - {name for name, _, _ in runs}
    if unknown:
        parser.error(f"--curve names no candidate: {', '.join(sorted(unknown))}")

    def same_budget(r):
        """A logged run trained to this screen's budget: the same epochs, or the same minutes without epochs."""
        return r.get("epochs") == args.epochs and (args.epochs is not None or r["minutes"] == args.minutes)

    def logged(name, settings, seed):
        return any(r["candidate"] == name and r["settings"] == settings and r["seed"] == seed and same_budget(r)
                   for r in done)

    def curve_points(name, seed):
        """Training minutes at which a run is scored: the budget, and for --curve runs 1, 2, 5 and 10 on the way."""
        if args.epochs is not None:
            return [None]
        if seed in args.curve_seed and name in args.curve:
            return [m for m in (1, 2, 5, 10) if m < args.minutes] + [args.minutes]
        return [args.minutes]

    def record(name, settings, seed, G, run, note, config=None, minutes=None):
        scores = evaluate(G, data.held_out, key=data.key, z_size=config.z_size if config else 100,
                          latent=config.latent if config else "uniform", precision="auto")
        result = {"candidate": name, "settings": settings, "seed": seed, "minutes": minutes or args.minutes,
                  "images_seen": run.seen, "steps": getattr(getattr(run, "trainer", None), "step", None),
                  "fid": round(scores.fid, 3), "kid": round(scores.kid, 6),
                  "cpu": note, "clean": args.epochs is not None or "CONTAMINATED" not in note,
                  "config": dataclasses.asdict(config) if config else None}
        if args.epochs is not None:
            result["epochs"] = args.epochs
        done.append(result)
        with open(log, "a") as f:
            f.write(json.dumps(result) + "\n")
        print(f"{name} seed {seed}: FID {scores.fid:.2f} after {result['minutes']:g} min, {run.seen} images "
              f"({note})", flush=True)

    try:
        for seed in [] if args.report else args.seeds:
            for name, overrides, also_ema in runs:
                if overrides is None:  # the seed method
                    if logged(name, "Udacity loop", seed):
                        continue
                    run, notes = SeedRun(data.training_folder, seed), []
                    for m in curve_points(name, seed):
                        with CpuWatch() as watch:
                            run.train_until(m * 60)
                        notes.append(watch.note())
                        record(name, "Udacity loop", seed, run.G.eval(), run, worst(notes), minutes=m)
                    continue
                settings = " ".join(f"{k}={v}" for k, v in overrides.items()) or "defaults"
                extra = [extra_average(name, settings, decay, warmup) for decay, warmup in also_ema]
                if logged(name, settings, seed) and all(logged(n, s, seed) for n, s, _ in extra):
                    continue
                config = TrainConfig(data=args.data, epochs=10_000, max_minutes=args.minutes,
                                     **{**overrides, "seed": seed})
                run = FaceganRun(data.train, config)
                emas, notes = keep_extra_emas(run.trainer, [average for _, _, average in extra]), []
                for m in curve_points(name, seed):
                    with CpuWatch() as watch:
                        if m is None:
                            run.train_epochs(args.epochs)
                        else:
                            run.train_until(m * 60)
                    notes.append(watch.note())
                    m = m if m is not None else round(run.trainer.elapsed / 60, 2)
                    record(name, settings, seed, run.G.eval(), run, worst(notes), run.trainer.config, m)
                    for (extra_name, extra_settings, (decay, warmup)), ema in zip(extra, emas):
                        record(extra_name, extra_settings, seed, run.trainer.calibrated(ema).eval(), run,
                               worst(notes), dataclasses.replace(run.trainer.config, ema=decay, ema_warmup=warmup), m)
    finally:
        for folder in (data.folder, data.training_folder) if data else ():
            if folder:
                shutil.rmtree(folder, ignore_errors=True)

    budget = f"{args.epochs} epochs" if args.epochs is not None else f"{args.minutes:g} min"
    print(f"\n{budget} per run on {args.data}; FID against {args.eval_n} held-out images")
    print(f"{'candidate':<28}{'settings':<44}{'FID by seed':<22}{'mean':>8}{'spread':>8}")
    for name, settings, fids, mean, spread in summarise([r for r in done if same_budget(r)]):
        print(f"{name:<28}{settings:<44}{' '.join(f'{f:.2f}' for f in fids):<22}{mean:>8.2f}{spread:>8.2f}")

    def label(name):
        if name == "seed method":
            return "the seed method (Udacity loop)"
        settings = next(r["settings"] for r in done if r["candidate"] == name)
        return "facegan's default" if settings == "defaults" else f"facegan, {settings}"

    if args.curve:
        curves = {}
        for name in args.curve:
            points = {r["minutes"]: r for r in done if r["candidate"] == name and r["seed"] == args.curve_seed[0]}
            curves[label(name)] = [(m, r["images_seen"], types.SimpleNamespace(fid=r["fid"]), r["cpu"])
                                   for m, r in sorted(points.items())]
        plot_curve(curves, Path(args.plot))
        print(f"\ncurve (seed {args.curve_seed[0]}), FID by training minutes: {args.plot}")
        for name, points in curves.items():
            print(f"{name:<32}" + "  ".join(f"{m:g} min {s.fid:.2f}" for m, _, s, _ in points))
    dirty = [r for r in done if not r["clean"]]
    if dirty:
        names = ", ".join(f"{r['candidate']} seed {r['seed']}" for r in dirty)
        print(f"CONTAMINATED and left out: {names}")


if __name__ == "__main__":
    main()
