"""Images/s of `facegan train` on 1 and on N processes (torchrun + DDP), side by side on the same data.

    python bench/scaling.py [--data synthetic] [--procs 1 2] [--seconds 60] [--device cpu|cuda]

On the CPU the cores are shared: N processes get cores/N threads each, so this measures DDP's overhead more than
a speed-up; on N GPUs it measures the speed-up. Prints one line per process count and the ratio to 1 process.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile


def run(procs: int, args) -> float:
    out = tempfile.mkdtemp(prefix=f"facegan-scaling-{procs}-")
    threads = max(1, (os.cpu_count() or 1) // procs) if args.device == "cpu" else 1
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
               "-m", "facegan", "train", "--data", args.data, "--epochs", "100000", "--max-minutes",
               str(args.seconds / 60), "--out", out, "--quiet", "--device", args.device,
               "--threads", str(threads), "--batch-size", str(args.batch_size)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ,
                                                                         "OMP_NUM_THREADS": str(threads)})
    if done.returncode != 0:
        sys.exit(f"{procs} process(es) failed:\n{done.stderr[-2000:]}")
    return float(re.search(r"(\d+) images/s", done.stdout).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=128, help="per process")
    args = parser.parse_args()
    rates = {n: run(n, args) for n in args.procs}
    base = rates[args.procs[0]]
    print(f"data: {args.data}; device: {args.device}; batch {args.batch_size} per process; {args.seconds:g} s each "
          "(the first seconds include start-up)")
    for n, rate in rates.items():
        print(f"{n} process(es): {rate:.0f} images/s  ratio: {rate / base:.2f}")


if __name__ == "__main__":
    main()
