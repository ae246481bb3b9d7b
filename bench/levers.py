"""Each speed lever of facegan's default step, switched off (or a candidate switched on) one at a time, measured
side by side with the default in alternating rounds on the same data and machine.

    python -m bench.levers --data ../shared/data/celeba_aligned_10k.zip [--seconds 10] [--rounds 4]
    python -m bench.levers --only default compile   # a subset, by the names in the first column
    python -m bench.levers --only default --candidate "bcr cr_weight=10"   # a recipe candidate, as bench.screen's

Prints images/s per round, the best round, the ratio to the default's best, the share of this machine's fastest
matmul rate (bf16 where the CPU has bf16 units, fp32 where bf16 is emulated; measured in the same run) that the
row's own arithmetic per image reaches at that speed, the median round with its ratio, and ``arith``: the row's
arithmetic per update over the default's (FLOPs counted over a whole cycle of the lazy penalties), the cost a
host's kernel speeds cannot blur. A lever that is the default's own setting on this machine (bf16 or fp32,
whichever ``--precision auto`` picked) is left out. Every round records the CPU other processes used; a round with
company is marked and left out of the best.
"""
from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time

import torch

from facegan.batches import TensorBatches
from facegan.config import RECIPES, TrainConfig
from facegan.data import load_images
from facegan.synthetic import draw_faces
from facegan.train import Trainer

from .candidates import parse_candidate, settings_of
from .common import CpuWatch, train_until
from .throughput import matmul_rate


def unfused_adam(trainer: Trainer) -> None:
    for name in ("d_optimizer", "g_optimizer"):
        net = trainer.D if name == "d_optimizer" else trainer.G
        old = getattr(trainer, name)
        setattr(trainer, name, torch.optim.Adam(net.parameters(), **{k: v for k, v in old.defaults.items()
                                                                     if k in ("lr", "betas")}))


def compiled(**options):
    def patch(trainer: Trainer) -> None:
        trainer.D = torch.compile(trainer.D, **options)
        trainer.G = torch.compile(trainer.G, **options)
    return patch


def update_flops(config: TrainConfig, images: torch.Tensor) -> float:
    """The arithmetic of one update, counted by torch's FLOP counter and averaged over a whole cycle of the lazy
    penalties (R1 on one D step in ``r1_every``, bCR on one in ``cr_every``), so a lazy term costs its share. It
    does not depend on the host: the ratio of two of these is what the time per update would be if every kernel
    ran equally well. A patch (fused Adam, compilation) changes no arithmetic, so it is counted on the plain step."""
    from torch.utils.flop_counter import FlopCounterMode
    cycle = math.lcm(config.r1_every if config.r1_gamma else 1, config.cr_every if config.cr_weight else 1)
    trainer = Trainer(config, images=images, progress=False, write=False)
    batches = TensorBatches(images, config.batch_size, device=trainer.device, channels_last=config.channels_last,
                            mirror=config.mirror)
    every_batch = itertools.chain.from_iterable(map(batches.epoch, itertools.count()))
    with FlopCounterMode(display=False) as counter, trainer.session(len(batches)) as run:
        for real in itertools.islice(every_batch, cycle):
            run.step_done(len(real), trainer.train_step(real))
    return counter.get_total_flops() / cycle


# name: (what it is, TrainConfig overrides, a patch applied to the built Trainer)
LEVERS = {
    "default": ("facegan's default step", {}, None),
    "two-passes": ("D once per batch (--no-one-d-pass)", dict(one_d_pass=False), None),
    "fresh-fakes": ("new fakes for the G step (--no-reuse-fake; more arithmetic)", dict(reuse_fake=False), None),
    "nchw": ("NCHW layout (--no-channels-last)", dict(channels_last=False), None),
    "fp32": ("fp32 arithmetic (--precision fp32)", dict(precision="fp32"), None),
    "bf16": ("bf16 autocast (--precision bf16)", dict(precision="bf16"), None),
    "unfused-adam": ("Adam's for-each kernels instead of the fused one", {}, unfused_adam),
    "1-thread": ("one thread (--threads 1)", dict(threads="1"), None),
    "wide": ("the wide recipe (--recipe wide: mirrored faces, 48-channel D; more arithmetic)",
             RECIPES["wide"], None),
    "compile": ("torch.compile of D and G (inductor defaults)", {}, compiled()),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="images (folder or zip); default: 4,096 generated faces")
    parser.add_argument("--seconds", type=float, default=10, help="seconds per lever per round (default: 10)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds (default: 4)")
    parser.add_argument("--only", nargs="+", choices=list(LEVERS), help="measure these (default is always in)")
    parser.add_argument("--candidate", action="append", default=[], metavar="'NAME FIELD=VALUE ...'",
                        help="also measure a candidate of bench.screen: its name, then TrainConfig overrides")
    args = parser.parse_args(argv)
    candidates = {name: (settings_of(overrides), overrides, None)
                  for name, overrides, _ in map(parse_candidate, args.candidate)}
    levers = {**LEVERS, **candidates}
    names = ["default"] + [n for n in (args.only or LEVERS) if n != "default"] + list(candidates)

    if args.data:
        images = load_images(args.data, 32, progress=False)
    else:
        images = torch.from_numpy(draw_faces(4096, 32, seed=0)).permute(0, 3, 1, 2).contiguous()
    runs = {}
    for name in list(names):
        _, overrides, patch = levers[name]
        # a fixed thread count: auto would re-measure thread counts inside the rounds
        config = TrainConfig(data="synthetic", **{"threads": "2", **overrides})
        trainer = Trainer(config, images=images, progress=False, write=False)
        if name != "default" and patch is None and trainer.config == runs["default"][0].config:
            print(f"{name}: the default's own setting on this machine, left out")
            names.remove(name)
            continue
        if patch:
            patch(trainer)
        batches = TensorBatches(images, trainer.config.batch_size, device=trainer.device,
                                channels_last=trainer.config.channels_last, mirror=trainer.config.mirror)
        runs[name] = trainer, batches

    def images_per_second(name: str, seconds: float) -> float:
        trainer, batches = runs[name]
        torch.set_num_threads(trainer.config.thread_count())
        start = time.perf_counter()
        seen = train_until(trainer, batches.epoch, lambda real: (len(real), trainer.train_step(real)),
                           start + seconds, len(batches))
        return seen / (time.perf_counter() - start)

    for name in names:  # warm-up: oneDNN's kernel choice, the allocator, and compilation
        for _ in range(2):
            images_per_second(name, 3)
    rates = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            with CpuWatch() as watch:
                rate = images_per_second(name, args.seconds)
            rates[name].append((rate, watch.others is None or watch.others <= 0.1))
            print(f"round {len(rates[name])}: {name} {rate:.0f} images/s ({watch.note()})", flush=True)

    torch.set_num_threads(2)
    flops = {name: update_flops(runs[name][0].config, images) for name in names}
    batch = {name: runs[name][0].config.batch_size for name in names}
    matmul = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}
    fastest = max(matmul, key=matmul.get)
    peak = matmul[fastest]
    config = runs["default"][0].config
    print(f"{args.data or 'generated faces'}; torch {torch.__version__}; batch {config.batch_size}, "
          f"precision {config.precision}; default step {flops['default'] / batch['default'] / 1e6:.1f} "
          f"MFLOP/image; matmul at 2 threads: fp32 {matmul['fp32'] / 1e9:.0f}, bf16 {matmul['bf16'] / 1e9:.1f} "
          f"GFLOP/s; share = of {fastest}'s; arith = FLOP per update over the default's (for a row with another "
          f"batch size the images/s ratio is not the ratio of time per update)")
    best_default = max((r for r, clean in rates["default"] if clean), default=float("nan"))
    median_default = statistics.median([r for r, clean in rates["default"] if clean] or [float("nan")])
    # the best round is what the machine allows; the median says whether a lever's best was one lucky round
    print(f"{'lever':<18}{'what':<62}{'rounds (images/s)':>30}{'best':>7}{'ratio':>7}{'share':>7}"
          f"{'median':>8}{'ratio':>7}{'arith':>7}")
    for name in names:
        clean = [r for r, ok in rates[name] if ok]
        best = max(clean, default=float("nan"))
        median = statistics.median(clean or [float("nan")])
        rounds = " ".join(f"{r:.0f}" + ("" if ok else "*") for r, ok in rates[name])
        print(f"{name:<18}{levers[name][0]:<62}{rounds:>30}{best:>7.0f}{best / best_default:>7.2f}"
              f"{best / batch[name] * flops[name] / peak:>7.0%}{median:>8.0f}{median / median_default:>7.2f}"
              f"{flops[name] / flops['default']:>7.2f}")
    if any(not ok for r in rates.values() for _, ok in r):
        print("* another process used the CPU during this round: left out of the best")


if __name__ == "__main__":
    main()
