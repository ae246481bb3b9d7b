"""Determinism: the same seed gives bit-identical losses on the CPU; another seed does not."""
import csv

import pytest

from test_crash_resume import ARGS, facegan


@pytest.mark.slow
def test_same_seed_same_losses_and_a_different_seed_differs(tmp_path):
    runs = []
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        done = facegan(*ARGS, "--epochs", "1", "--seed", seed, "--deterministic", "--out", str(tmp_path / name))
        assert done.returncode == 0, done.stderr
        with open(tmp_path / name / "losses.csv") as f:
            runs.append([(r["d_loss"], r["g_loss"]) for r in csv.DictReader(f)])
    assert runs[0] == runs[1] and runs[0] != runs[2]
