"""Training throughput: the seed method vs facegan's default path, side by side on the same data and machine.

    python -m bench.throughput [--data ../shared/data/celeba_aligned_10k.zip] [--seconds 40]

Prints images/s of both, their ratio (``ratio: X.XX``), the FLOPs of one training step per image, this machine's
fp32 and bf16 matmul rates, and the share of those rates each path's own arithmetic reaches. A third row trains the
notebook's own code (its DataLoader, networks, optimizers and ``train_step``, read from dlnd_face_generation.ipynb)
in the loop its ``train()`` writes, at the same settings, and ``notebook/cli: X.XX`` compares it with facegan's
built-in path. The paths alternate in rounds so that a noisy neighbour slows all alike.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import time

import torch

from facegan.batches import TensorBatches
from facegan.config import TrainConfig
from facegan.data import load_images
from facegan.train import Trainer

from .common import (
    SeedMethod,
    notebook_definitions,
    seed_loader,
    train_until,
    udacity_style_folder,
)


def matmul_rate(dtype: torch.dtype, sizes=(512, 1024, 2048, 4096), seconds: float = 1.0) -> float:
    """This machine's matmul rate at the current thread count: the best over square sizes, after a warm-up (on
    the 2-core Zen 4 machine bf16 peaks at 512-1024, about 430 GFLOP/s, near the cores' 64 bf16 FLOP per cycle).
    Where one product already takes longer than ``seconds`` (bf16 emulated on a CPU without bf16 units: about 1
    GFLOP/s on an AVX2 EPYC) the larger sizes are skipped: they would take minutes and run no faster."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        start = time.perf_counter()
        a @ b
        if time.perf_counter() - start > seconds:
            return max(best, 2 * n ** 3 / (time.perf_counter() - start))
        for _ in range(2):
            a @ b
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            count += 1
        best = max(best, 2 * n ** 3 * count / (time.perf_counter() - start))
    return best


def step_flops_per_image(step, batch) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        step(batch)
    return counter.get_total_flops() / batch.shape[0]


def timed(run_for, seconds: float) -> float:
    """Images per second of ``run_for(deadline)``, which trains until the deadline and returns images seen."""
    start = time.perf_counter()
    images = run_for(start + seconds)
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None,
                        help="images to train on, as 64x64 JPEG face crops like the Udacity set (default: 4,096 "
                             "generated faces)")
    parser.add_argument("--seconds", type=float, default=40, help="seconds per path per round (default: 40)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default: 2)")
    parser.add_argument("--batch-size", type=int, default=None, help="facegan's batch size (default: its default)")
    args = parser.parse_args()

    folder = udacity_style_folder(args.data)
    try:
        seed = SeedMethod()
        loader = seed_loader(folder)

        # every core, fixed: --threads auto would re-measure thread counts inside the timed rounds
        config = TrainConfig(data=os.path.join(folder, "faces"), threads=str(torch.get_num_threads()))
        if args.batch_size:
            config.batch_size = args.batch_size
        start = time.perf_counter()
        images = load_images(config.data, config.image_size, progress=False)
        prepare = time.perf_counter() - start
        trainer = Trainer(config, images=images, progress=False, write=False)
        config = trainer.config  # with the batch size resolved for this device
        batches = TensorBatches(images, config.batch_size, device=trainer.device, channels_last=config.channels_last)

        notebook_trainer, notebook_loader, notebook_update = notebook_path(config, folder, trainer.device)

        def run_seed(deadline):
            seen = 0
            while True:
                for real, _ in loader:
                    seed.step(real)
                    seen += real.shape[0]
                    if time.perf_counter() > deadline:
                        return seen

        def run_facegan(deadline):
            return train_until(trainer, batches.epoch, lambda real: (len(real), trainer.train_step(real)), deadline,
                               len(batches))

        def run_notebook(deadline):  # its own DataLoader and train_step, in the loop its train() writes
            return train_until(notebook_trainer, lambda epoch: notebook_loader, notebook_update, deadline,
                               len(notebook_loader))

        # warm-up all (allocators, oneDNN kernel choice), then alternate
        for run in (run_seed, run_facegan, run_notebook):
            timed(run, 3)
        seed_rates, facegan_rates, notebook_rates = [], [], []
        for _ in range(args.rounds):
            seed_rates.append(timed(run_seed, args.seconds))
            facegan_rates.append(timed(run_facegan, args.seconds))
            notebook_rates.append(timed(run_notebook, args.seconds))
        seed_rate, facegan_rate, notebook_rate = max(seed_rates), max(facegan_rates), max(notebook_rates)

        real = next(iter(loader))[0]
        # each path's own arithmetic: facegan's step does less than the seed's (it reuses the fakes and skips D's
        # weight gradients in the generator step), so it is credited with what it computes, not the seed's work
        flops = {"seed method": step_flops_per_image(seed.step, real),
                 "facegan default": step_flops_per_image(trainer.train_step, next(batches.epoch(0)))}
        flops["notebook's step"] = step_flops_per_image(lambda batch: notebook_update((batch, None)),
                                                        next(iter(notebook_loader))[0])
        fp32, bf16 = matmul_rate(torch.float32), matmul_rate(torch.bfloat16)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print(f"data: {args.data or 'generated faces'} as 64x64 JPEG crops; device: {trainer.device}, "
          f"{torch.get_num_threads()} threads; torch {torch.__version__}")
    print(f"facegan default: batch {config.batch_size}, precision {config.precision}, channels_last "
          f"{config.channels_last}, reuse_fake {config.reuse_fake}; decode-once preparation {prepare:.1f} s")
    print(f"machine: fp32 matmul {fp32 / 1e9:.0f} GFLOP/s, bf16 matmul {bf16 / 1e9:.0f} GFLOP/s (best over sizes)")
    print(f"{'path':<18}{'images/s':>10}{'rounds':>22}{'MFLOP/image':>13}{'of fp32 rate':>14}{'of bf16 rate':>14}")
    for name, rate, rates in (("seed method", seed_rate, seed_rates), ("facegan default", facegan_rate,
                                                                        facegan_rates),
                              ("notebook's step", notebook_rate, notebook_rates)):
        rounds = ", ".join(f"{r:.0f}" for r in rates)
        work = flops[name]
        # where bf16 is emulated (slower than fp32) its rate is no limit worth a column
        bf16_share = f"{rate * work / bf16:>14.0%}" if bf16 > fp32 else f"{'(emulated)':>14}"
        print(f"{name:<18}{rate:>10.0f}{rounds:>22}{work / 1e6:>13.1f}{rate * work / fp32:>14.0%}{bf16_share}")
    print(f"ratio: {facegan_rate / seed_rate:.2f}")
    print(f"notebook/cli: {notebook_rate / facegan_rate:.2f}")


def notebook_path(config: TrainConfig, folder: str, device: torch.device):
    """The notebook's own training path at ``config``'s settings: its DataLoader (get_dataloader) over the same
    faces, its networks and optimizers, and an update that calls its train_step as its train() loop does."""
    from functools import partial
    notebook = notebook_definitions(os.path.join(os.path.dirname(__file__), "..", "dlnd_face_generation.ipynb"),
                                    config=config, device=device, lr=config.lr, beta1=config.beta1,
                                    beta2=config.beta2)
    torch.manual_seed(config.seed)
    with contextlib.redirect_stdout(io.StringIO()):  # build_network prints the networks
        D, G = notebook.build_network(config.d_conv_dim, config.g_conv_dim, config.z_size)
    D = D.to(device, memory_format=torch.channels_last)
    G = G.to(device, memory_format=torch.channels_last)
    d_optimizer, g_optimizer = notebook.build_optimizers(D, G)
    trainer = Trainer(config, D=D, G=G, d_optimizer=d_optimizer, g_optimizer=g_optimizer, progress=False,
                      write=False)
    loader = notebook.get_dataloader(config.batch_size, config.image_size, os.path.join(folder, "faces"))
    step = partial(notebook.train_step, D, G, d_optimizer, g_optimizer)

    def update(batch):
        real = batch[0].to(device, memory_format=torch.channels_last)
        return len(real), step(real, trainer.latents(len(real)))
    return trainer, loader, update


if __name__ == "__main__":
    main()
