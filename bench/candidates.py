"""A screen's candidates: parsed from the command line, the extra moving averages scored beside a run's own, the
summary table (mean and spread by seed, clean runs only) and how well a shorter budget ranks them."""
from __future__ import annotations

import statistics

from scipy.stats import kendalltau, spearmanr

from facegan.config import TrainConfig
from facegan.ema import EMA

from .runs import parse_overrides


def parse_candidate(text: str) -> tuple[str, dict, list[tuple[float, float]]]:
    """'lr4e-4 lr=4e-4 also_ema=0.9995 also_ema=0.9999:3' -> ('lr4e-4', {'lr': 0.0004}, [(0.9995, 5.0),
    (0.9999, 3.0)]): an extra average is a decay, optionally with its warm-up W after a colon (default: the
    run's default warm-up, TrainConfig.ema_warmup)."""
    name, *settings = text.split()
    also_ema = []
    for item in settings:
        if item.startswith("also_ema="):
            decay, _, warmup = item.split("=", 1)[1].partition(":")
            also_ema.append((float(decay), float(warmup or TrainConfig.ema_warmup)))
            TrainConfig(ema=also_ema[-1][0], ema_warmup=also_ema[-1][1]).validate()
    return name, parse_overrides([item for item in settings if not item.startswith("also_ema=")]), also_ema


def settings_of(overrides: dict) -> str:
    """How a candidate's overrides are logged and shown: 'lr=0.0002 mirror=True', or 'defaults' for none."""
    return " ".join(f"{k}={v}" for k, v in overrides.items()) or "defaults"


def keep_extra_emas(trainer, averages: list[tuple[float, float]]) -> list[EMA]:
    """Moving averages of the trainer's generator at other (decay, warm-up)s, updated after every step like its own."""
    emas = [EMA(trainer.G, decay, warmup) for decay, warmup in averages]
    train_step = trainer.train_step

    def step_and_average(real):
        values = train_step(real)
        for ema in emas:
            ema.update(trainer.G, trainer.state.step)
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


def rank_agreement(results: list[dict], early: int, late: int) -> tuple[int, float, float, int] | None:
    """How well FID after ``early`` updates orders runs as FID after ``late`` does, over the clean runs (candidate,
    seed) scored at both: (runs, Spearman's rho, Kendall's tau, the early rank of the run best at ``late``, 1 =
    best), or None with fewer than three runs."""
    runs = {}
    for r in results:
        if r["clean"] and r.get("updates") in (early, late):
            runs.setdefault((r["candidate"], r["settings"], r["seed"]), {})[r["updates"]] = r["fid"]
    both = [(fids[early], fids[late]) for fids in runs.values() if len(fids) == 2]
    if len(both) < 3:
        return None
    early_fids, late_fids = zip(*both)
    best = min(both, key=lambda pair: pair[1])
    return (len(both), float(spearmanr(early_fids, late_fids).statistic),
            float(kendalltau(early_fids, late_fids).statistic), sorted(early_fids).index(best[0]) + 1)
