"""Two CPU processes with gloo through torchrun: they train, stay identical, checkpoint, and resume across world
sizes; the checkpoints load in a single process."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from facegan.checkpoint import load_checkpoint
from facegan.cli import main
from facegan.rundir import read_losses

REPO = str(Path(__file__).resolve().parents[1])
TINY = ["--data", "synthetic", "--synthetic-count", "256", "--batch-size", "16", "--d-conv-dim", "8",
        "--g-conv-dim", "8", "--z-size", "16", "--n-samples", "9", "--device", "cpu", "--quiet"]


def torchrun(n, *args, timeout=300, program=("-m", "facegan", "train")):
    """The README's command: torchrun --standalone --nproc_per_node=N -m facegan train ..."""
    launcher = shutil.which("torchrun") or f"{sys.executable} -m torch.distributed.run"
    done = subprocess.run([*launcher.split(" "), "--standalone", f"--nproc_per_node={n}", *program, *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1",
                               "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))})
    # the first failing rank's own message comes before the launcher's long report: show both ends; a rank killed
    # by a signal (SIGABRT from C++) prints where its Python threads were through faulthandler
    assert done.returncode == 0, (done.stdout[-1500:] + "\n--- stderr ---\n" + done.stderr[:4000] + "\n...\n"
                                  + done.stderr[-1500:])
    return done.stdout


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "run"
    stdout = torchrun(2, *TINY, "--epochs", "2", "--out", str(out))
    return out, stdout


@pytest.mark.slow
def test_two_processes_train_shard_and_stay_identical(two_process_run):
    out, stdout = two_process_run
    # one line, from rank 0; printing 'finished' means the replicas' checksums matched
    assert stdout.count("finished: epoch 2/2") == 1 and "on 2 processes" in stdout
    state = load_checkpoint(out / "checkpoint.pt")
    # each process takes 16 of the 256 images per step: 8 steps per epoch
    assert (state["epoch"], state["step"], state["world_size"]) == (2, 16, 2)
    rows = read_losses(out)
    assert [r["step"] for r in rows] == list(range(1, 17)) and rows[-1]["images_seen"] == 16 * 32
    assert not any(k.startswith("module.") for k in state["generator"])
    assert (out / "samples" / "epoch_002.png").exists()


@pytest.mark.slow
def test_distributed_checkpoint_samples_and_resumes_in_one_process(two_process_run, tmp_path):
    out, _ = two_process_run
    assert main(["sample", "--checkpoint", str(out / "checkpoint.pt"), "--n", "4", "--out",
                 str(tmp_path / "g.png")]) == 0
    assert main(["train", *TINY, "--epochs", "3", "--out", str(out), "--resume"]) == 0
    state = load_checkpoint(out / "checkpoint.pt")
    assert (state["epoch"], state["step"], state["world_size"]) == (3, 16 + 16, 1)


@pytest.mark.slow
def test_single_process_checkpoint_resumes_on_two(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    torchrun(2, *TINY, "--epochs", "2", "--out", str(out), "--resume")
    state = load_checkpoint(out / "checkpoint.pt")
    assert (state["epoch"], state["step"], state["world_size"]) == (2, 16 + 8, 2)
    assert [r["step"] for r in read_losses(out)] == list(range(1, 25))


@pytest.mark.slow
def test_all_ranks_stop_together_on_a_time_budget(tmp_path):
    stdout = torchrun(2, *TINY, "--epochs", "1000", "--max-minutes", "0.001", "--out", str(tmp_path / "run"))
    assert "time budget of 0.001 minutes reached" in stdout
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["epoch"] < 1000 and len(read_losses(tmp_path / "run")) == state["step"] >= 1


@pytest.mark.slow
def test_r1_penalty_trains_on_two_processes(tmp_path):
    """The R1 penalty takes a gradient with create_graph through D's DistributedDataParallel wrapper and then
    backpropagates through it: both ranks must finish with identical replicas (checked before 'finished')."""
    stdout = torchrun(2, *TINY, "--epochs", "1", "--r1-gamma", "1", "--r1-every", "2", "--out", str(tmp_path / "r1"))
    assert stdout.count("finished: epoch 1/1") == 1
    state = load_checkpoint(tmp_path / "r1" / "checkpoint.pt")
    assert state["config"]["r1_gamma"] == 1.0 and state["step"] == 8


@pytest.mark.slow
def test_a_finished_run_leaves_no_distributed_wrapper_behind(tmp_path):
    """destroy_process_group only forgets a group that DDP's reducers still hold. A finished Trainer used to linger
    as uncollected garbage (it refers to itself), so the group died in the interpreter's exit, where gloo's unjoined
    threads aborted a rank now and then after all its work was done. Once `train` returns, no wrapper is left."""
    script = tmp_path / "train_then_count.py"
    script.write_text(textwrap.dedent("""
        import gc, os, sys
        import torch
        from facegan.cli import main
        assert main(sys.argv[1:]) == 0
        left = sum(isinstance(o, torch.nn.parallel.DistributedDataParallel) for o in gc.get_objects())
        print(f"rank {os.environ['RANK']}: {left} wrappers left")
    """))
    stdout = torchrun(2, "train", *TINY, "--epochs", "1", "--out", str(tmp_path / "run"), program=(str(script),))
    assert "rank 0: 0 wrappers left" in stdout and "rank 1: 0 wrappers left" in stdout, stdout
