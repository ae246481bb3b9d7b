"""Screen recipe candidates: each trained to the same budget with several seeds, on both framings of the faces
(bench/common.py FRAMINGS: head150, framed like the Udacity set, and face108, the conventional square), scored by
FID against held-out faces no run sees, and summarised as mean and spread per candidate and framing, with each
framing's real-vs-real floor beside its table.

    python -m bench.screen --data ../shared/data/celeba_aligned_10k.zip --updates 15000 --seeds 0 1 \\
        --candidate "default" --candidate "lr2e-4 lr=2e-4" --log screen.jsonl

``--updates N`` is the budget to compare recipes by: N generator updates, the same on any host, with the wall time
and host logged beside the result. The clock does not enter such a result, so runs may share the CPU (``--threads
1``, one process per seed). ``--seed-method`` with ``--updates`` trains the seed method (the Udacity loop) for as long
as the first candidate's run of the same seed and framing trained: a comparison of wall time, so both runs must have
had the CPU to themselves, which the bench checks. ``--minutes M`` gives every run M minutes instead (``--epochs``
is the older budget of updates, kept for the logs made with it).

A candidate is a name followed by TrainConfig overrides (FIELD=VALUE, space-separated); "default" alone is facegan's
defaults. ``also_ema=D[:W]`` (repeatable) also scores the run through a moving average of decay D (warm-up W) kept
beside its own: the average changes only what is sampled, so one run measures both. ``--curve`` scores runs of
minutes on the way as well and plots them. Runs go framing by framing, candidates in the inner loop (a slow phase
of the host hits every candidate alike), each result appended to --log as it comes; runs already logged are
skipped on a re-run. A timed run during which another process used the CPU is marked CONTAMINATED and left out.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import types
from pathlib import Path

import torch

from facegan.config import TrainConfig
from facegan.data import find_images
from facegan.devices import pick_device
from facegan.metrics import evaluate

from .candidates import (extra_average, keep_extra_emas, parse_candidate, rank_agreement, settings_of, summarise,
                         worst)
from .common import FRAMINGS, CpuWatch, host
from .runs import FaceganRun, NotebookRun, SeedRun, epochs_of, plot_curve, prepare, real_floors, remove_folders


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="aligned CelebA (folder or zip), e.g. celeba_aligned_10k.zip")
    parser.add_argument("--framing", nargs="+", choices=sorted(FRAMINGS), default=["head150", "face108"],
                        help="how the faces are cut (default: both, head150 first; see bench/common.py)")
    parser.add_argument("--minutes", type=float, default=5, help="training budget per run (default: 5)")
    parser.add_argument("--updates", type=int, nargs="+", default=None,
                        help="a budget of generator updates instead of --minutes (a whole number of epochs); with "
                             "several, each run is scored at each of them and the largest is its budget")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds per candidate (default: 0 1)")
    parser.add_argument("--candidate", action="append", default=[], metavar="'NAME FIELD=VALUE ...'",
                        help="a candidate: its name, then TrainConfig overrides (repeatable)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per run (default: facegan's choice); not part of a candidate's settings")
    parser.add_argument("--eval-n", type=int, default=2000, help="held-out real images and generated images")
    parser.add_argument("--log", nargs="+", default=["screen.jsonl"],
                        help="results, a JSON line per run, appended to the first file; all are read")
    parser.add_argument("--seed-method", action="store_true",
                        help="also train the seed method with each seed: for --minutes, or with --updates for as "
                             "long as the first candidate's run of that seed and framing trained")
    parser.add_argument("--notebook", action="store_true",
                        help="with --updates: also run dlnd_face_generation.ipynb as shipped (papermill), each seed")
    parser.add_argument("--curve", nargs="+", default=[], metavar="NAME",
                        help="candidates (or 'seed method') also scored at 1, 2, 5 and 10 minutes, plotted to --plot")
    parser.add_argument("--curve-seed", type=int, nargs="+", default=[0],
                        help="seeds whose --curve runs are scored on the way; the first is plotted (default: 0)")
    parser.add_argument("--plot", default="assets/quality_curve.png", help="where --curve draws the curve")
    parser.add_argument("--epochs", type=int, default=None,
                        help="a budget of updates as epochs of the training faces (older logs; prefer --updates)")
    parser.add_argument("--report", action="store_true", help="train nothing: print the tables (and plot) from --log")
    args = parser.parse_args(argv)
    if args.epochs is not None and args.updates is not None:
        parser.error("--epochs and --updates are two ways to say one budget: give one")
    by_updates = args.epochs is not None or args.updates is not None
    if by_updates and args.curve:
        parser.error("--curve scores runs at minutes of training: leave it out with --epochs or --updates")
    if args.epochs is not None and args.seed_method:
        parser.error("--seed-method needs --minutes or --updates")
    if not args.candidate and not args.notebook:
        parser.error("give at least one --candidate (or --notebook)")
    if args.seed_method and not args.candidate:
        parser.error("--seed-method trains as long as the first --candidate: give one")
    if args.notebook and args.updates is None:
        parser.error("--notebook needs --updates: the notebook trains whole epochs, a budget of updates")
    for flag, value in (("--epochs", args.epochs), ("--updates", min(args.updates or [1]))):
        if value is not None and value < 1:
            parser.error(f"{flag} must be at least 1 (got {value})")
    scored_updates = sorted(set(args.updates or []))
    args.updates = scored_updates[-1] if scored_updates else None

    candidates = [parse_candidate(text) for text in args.candidate]
    training_faces = len(find_images(args.data).members) - args.eval_n  # each framing cuts one crop per image
    for _, overrides, _ in candidates:
        config = TrainConfig(**overrides).validate()  # a typo fails now, not an hour in
        for point in [] if args.report else scored_updates:  # and so does a budget that is no whole number of epochs
            epochs_of(point, training_faces, config.resolved(pick_device(config.device)).batch_size)
    log = Path(args.log[0])
    done = [json.loads(line) for path in map(Path, args.log) if path.exists()
            for line in path.read_text().splitlines()]
    runs = (candidates + ([("notebook", "as shipped", [])] if args.notebook else [])
            + ([("seed method", None, [])] if args.seed_method else []))
    unknown = set(args.curve) - {name for name, _, _ in runs}
    if unknown:
        parser.error(f"--curve names no candidate: {', '.join(sorted(unknown))}")

    def same_budget(r, updates=None):
        """A logged run trained to this screen's budget (or to ``updates`` of it): the same updates or epochs,
        else the same minutes (a seed method run matched to a run of updates counts with that budget)."""
        return (r.get("epochs") == args.epochs and r.get("updates") == (updates or args.updates)
                and (by_updates or r["minutes"] == args.minutes))

    def logged(framing, name, settings, seed):
        return any(r["candidate"] == name and r["settings"] == settings and r["seed"] == seed and same_budget(r)
                   and framing_of(r) == framing for r in done)

    def curve_points(name, seed):
        """Where a run is scored: at each of --updates, at the end of --epochs, or at the budget in minutes and for
        --curve runs at 1, 2, 5 and 10 minutes on the way."""
        if args.updates is not None:
            return scored_updates
        if args.epochs is not None:
            return [None]
        if seed in args.curve_seed and name in args.curve:
            return [m for m in (1, 2, 5, 10) if m < args.minutes] + [args.minutes]
        return [args.minutes]

    def record(data, name, settings, seed, G, run, note, config=None, minutes=None, updates=None, **extra):
        scores = evaluate(G, data.held_out, key=data.key, z_size=config.z_size if config else 100,
                          latent=config.latent if config else "uniform", precision="auto")
        result = {"candidate": name, "settings": settings, "seed": seed, "framing": data.framing,
                  "minutes": args.minutes if minutes is None else minutes, "images_seen": run.seen,
                  "steps": run.trainer.state.step if isinstance(run, FaceganRun) else getattr(run, "steps", None),
                  "fid": round(scores.fid, 3), "kid": round(scores.kid, 6),
                  "cpu": note, "clean": (by_updates and config is not None) or "CONTAMINATED" not in note,
                  "config": dataclasses.asdict(config) if config else None, **host(), **extra}
        if args.epochs is not None:
            result["epochs"] = args.epochs
        if args.updates is not None:
            result["updates"] = updates or args.updates
        done.append(result)
        with open(log, "a") as f:
            f.write(json.dumps(result) + "\n")
        print(f"{data.framing} {name} seed {seed}: FID {scores.fid:.2f} after {result['minutes']:g} min, "
              f"{result['steps'] or '-'} steps, {run.seen} images ({note})", flush=True)

    def matched_minutes(framing, seed):
        """The training minutes of the first candidate's logged run of this seed and framing, and its CPU note."""
        name = candidates[0][0]
        for r in done:
            if r["candidate"] == name and r["seed"] == seed and framing_of(r) == framing and same_budget(r):
                return r["minutes"], r["cpu"]
        raise SystemExit(f"the seed method trains as long as {name} seed {seed} did, which is not in {log}")

    floors, data, threads_before = {}, None, torch.get_num_threads()
    try:
        if args.threads is not None:  # cutting and scoring the faces too, not only training: one process per core
            torch.set_num_threads(args.threads)
        for framing in args.framing:
            data = prepare(args.data, args.eval_n, seed_files=(args.seed_method or args.notebook) and not args.report,
                           framing=framing)
            floors[framing] = real_floors(data)
            for seed in [] if args.report else args.seeds:
                for name, overrides, also_ema in runs:
                    if overrides == "as shipped":  # the notebook, papermill, its own loader, step and loop
                        if not logged(framing, name, overrides, seed):
                            run = NotebookRun(data.training_folder, seed, args.threads)
                            with CpuWatch() as watch:
                                run.train_updates(args.updates)
                            record(data, name, overrides, seed, run.G, run, watch.note(), run.config, run.minutes)
                        continue
                    if overrides is None:  # the seed method
                        if logged(framing, name, "Udacity loop", seed):
                            continue
                        matched = {}
                        if args.updates is not None:
                            minutes, donor = matched_minutes(framing, seed)
                            points = [minutes]
                            matched = {"matched_to": candidates[0][0], "matched_cpu": donor}
                        else:
                            points = curve_points(name, seed)
                        run, notes = SeedRun(data.training_folder, seed), []
                        for m in points:
                            with CpuWatch() as watch:
                                run.train_until(m * 60)
                            notes.append(watch.note())
                            note = worst(notes + ([matched["matched_cpu"]] if matched else []))
                            record(data, name, "Udacity loop", seed, run.G.eval(), run, note, minutes=m, **matched)
                        continue
                    settings = settings_of(overrides)
                    extra = [extra_average(name, settings, decay, warmup) for decay, warmup in also_ema]
                    if logged(framing, name, settings, seed) and all(logged(framing, n, s, seed) for n, s, _ in extra):
                        continue
                    threads = {} if args.threads is None else {"threads": args.threads}
                    config = TrainConfig(data=args.data, epochs=10_000, max_minutes=args.minutes,
                                         **{**overrides, **threads, "seed": seed})
                    run = FaceganRun(data.train, config)
                    emas, notes = keep_extra_emas(run.trainer, [average for _, _, average in extra]), []
                    for point in curve_points(name, seed):
                        with CpuWatch() as watch:
                            if args.updates is not None:
                                run.train_updates(point, whole=scored_updates[-1])
                            elif args.epochs is not None:
                                run.train_epochs(args.epochs)
                            else:
                                run.train_until(point * 60, whole=args.minutes * 60)
                        notes.append(watch.note())
                        # the real training time, unrounded: the seed method is then given exactly as long
                        m = run.trainer.state.elapsed / 60 if by_updates else point
                        updates = point if args.updates is not None else None
                        record(data, name, settings, seed, run.G.eval(), run, worst(notes), run.trainer.config, m,
                               updates)
                        for (extra_name, extra_settings, (decay, warmup)), ema in zip(extra, emas):
                            averaged = run.trainer.sampler.calibrated(ema).eval()
                            record(data, extra_name, extra_settings, seed, averaged, run, worst(notes),
                                   dataclasses.replace(run.trainer.config, ema=decay, ema_warmup=warmup), m, updates)
            remove_folders(data)
    finally:
        remove_folders(data)
        torch.set_num_threads(threads_before)

    for framing, point in itertools.product(args.framing, scored_updates or [None]):
        budget = (f"{point} updates" if point is not None else
                  f"{args.epochs} epochs" if args.epochs is not None else f"{args.minutes:g} min")
        halves, training = floors[framing]
        print(f"\n{framing}: {budget} per run on {args.data}; FID against {args.eval_n} held-out faces; "
              f"floor (real vs real): held-out halves {halves:.2f}, {args.eval_n} training faces {training:.2f}")
        print(f"{'candidate':<28}{'settings':<44}{'FID by seed':<22}{'mean':>8}{'spread':>8}")
        rows = [r for r in done if same_budget(r, point) and framing_of(r) == framing]
        for name, settings, fids, mean, spread in summarise(rows):
            print(f"{name:<28}{settings:<44}{' '.join(f'{f:.2f}' for f in fids):<22}{mean:>8.2f}{spread:>8.2f}")
    for framing in args.framing if len(scored_updates) > 1 else []:
        early, late = scored_updates[0], scored_updates[-1]
        agreement = rank_agreement([r for r in done if framing_of(r) == framing], early, late)
        if agreement:
            n, rho, tau, rank = agreement
            print(f"\n{framing}: FID at {early} updates against FID at {late}, {n} runs scored at both: Spearman "
                  f"{rho:.2f}, Kendall {tau:.2f}; the best run at {late} ranked {rank} of {n} at {early}")

    def label(name):
        if name == "seed method":
            return "the seed method (Udacity loop)"
        settings = next(r["settings"] for r in done if r["candidate"] == name)
        return "facegan's default" if settings == "defaults" else f"facegan, {settings}"

    if args.curve:
        curves = {}
        for name in args.curve:
            points = {r["minutes"]: r for r in done if r["candidate"] == name and r["seed"] == args.curve_seed[0]
                      and framing_of(r) == args.framing[0]}
            curves[label(name)] = [(m, r["images_seen"], types.SimpleNamespace(fid=r["fid"]), r["cpu"])
                                   for m, r in sorted(points.items())]
        plot_curve(curves, Path(args.plot))
        print(f"\ncurve ({args.framing[0]}, seed {args.curve_seed[0]}), FID by training minutes: {args.plot}")
        for name, points in curves.items():
            print(f"{name:<32}" + "  ".join(f"{m:g} min {s.fid:.2f}" for m, _, s, _ in points))
    dirty = [r for r in done if not r["clean"] and same_budget(r)]
    if dirty:
        names = ", ".join(f"{framing_of(r)} {r['candidate']} seed {r['seed']}" for r in dirty)
        print(f"CONTAMINATED and left out: {names}")


def framing_of(result: dict) -> str:
    """A logged run's framing; runs logged before framings had names were all cut face108."""
    return result.get("framing", "face108")


if __name__ == "__main__":
    main()
