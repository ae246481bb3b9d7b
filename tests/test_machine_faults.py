"""Faults of the machine, produced for real: a disk that fills up, a read-only or vanished run directory, two runs
on one directory, a run killed while holding it, and a batch too large for memory. Each must end in one clear line
and exit 1, leave every file that was there intact, and let a later --resume finish the run."""
import os
import re
import resource
import signal
import subprocess
import sys
import uuid

import pytest

from facegan.checkpoint import load_checkpoint
from facegan.errors import TrainingError
from facegan.rundir import RunDir, size_text
from facegan.rundir import read_losses
from facegan.train import Trainer
from test_crash_resume import ARGS, facegan
from conftest import wait_for_file

def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}


@pytest.fixture
def small_disk(tmp_path):
    """A 8 MB tmpfs of its own (as root); skipped, saying why, where this machine can't mount one."""
    where = tmp_path / "disk"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", f"facegan-{uuid.uuid4().hex[:8]}", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill up for real ({done.stderr.strip() or 'not root'})")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(disk, leave):
    """Fill ``disk`` until ``leave`` bytes are free; returns the filler file."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(filler, "ab") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


@pytest.mark.slow
@pytest.mark.parametrize("leave, failing", [(0, "losses.csv"), (40_000, "checkpoint.pt")])
def test_a_full_disk_is_one_line_keeps_every_file_and_resume_finishes(small_disk, leave, failing):
    out = small_disk / "run"
    assert facegan(*ARGS, "--epochs", "1", "--out", str(out)).returncode == 0
    checkpoint_size = (out / "checkpoint.pt").stat().st_size
    assert checkpoint_size > 40_000, "the second case must leave less room than a checkpoint needs"
    before = snapshot(out)
    filler = fill(small_disk, leave)
    done = facegan(*ARGS, "--epochs", "3", "--out", str(out), "--resume")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    line, = done.stderr.strip().splitlines()
    assert line.startswith(f"error: the disk holding '{out}' is full (No space left on device")
    assert f"while saving {failing}" in line
    assert "the last checkpoint (epoch 1, step 8) is intact" in line and "--resume" in line
    if failing == "checkpoint.pt":
        assert f"writing it needs {size_text(checkpoint_size)}" in line
    after = snapshot(out)
    # the resumed run rewrote config.json (its epochs) and appended its losses before the checkpoint failed, as
    # designed: rows after the checkpoint are dropped on resume. Every other file is byte for byte as it was.
    grown = {"config.json", "losses.csv"}
    assert {k: after[k] for k in before if k.name not in grown} == {k: v for k, v in before.items()
                                                                      if k.name not in grown}
    losses = before[next(k for k in before if k.name == "losses.csv")]
    assert after[next(k for k in after if k.name == "losses.csv")].startswith(losses)
    assert not [p for p in out.rglob("*.tmp")], "a half-written temporary file was left behind"
    filler.unlink()
    assert facegan(*ARGS, "--epochs", "3", "--out", str(out), "--resume").returncode == 0
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["epoch"] == 3 and [r["step"] for r in read_losses(out)] == list(range(1, 25))


@pytest.mark.slow
def test_export_sample_and_the_decode_cache_on_a_full_disk(small_disk, tmp_path, monkeypatch, run_dir, udacity_dir):
    (small_disk / "G.safetensors").write_bytes(b"an older export")
    (small_disk / "faces").mkdir()
    (small_disk / "faces" / "00000.png").write_bytes(b"an older face")
    before = snapshot(small_disk)
    filler = fill(small_disk, 0)
    done = facegan("export", "--checkpoint", str(run_dir / "checkpoint.pt"), "--out", str(small_disk / "G.safetensors"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: the disk holding '{small_disk / 'G.safetensors'}' is full")
    assert "nothing that was there before was changed" in done.stderr
    done = facegan("sample", "--checkpoint", str(run_dir / "checkpoint.pt"), "--n", "4",
                   "--out", str(small_disk / "faces"))
    assert done.returncode == 1 and "Traceback" not in done.stderr and "is full" in done.stderr
    assert {k: v for k, v in snapshot(small_disk).items() if k.name != "filler"} == before
    # a full cache folder costs speed next time, never this run: a warning, and the images all the same
    monkeypatch.setenv("FACEGAN_CACHE", str(small_disk / "cache"))
    from facegan.data import load_images
    with pytest.warns(UserWarning, match="could not cache decoded images"):
        assert len(load_images(udacity_dir, 32, progress=False)) == 40
    filler.unlink()


@pytest.mark.slow
def test_a_read_only_run_directory_is_one_line_and_resume_finishes_once_writable(small_disk):
    out = small_disk / "run"
    assert facegan(*ARGS, "--epochs", "1", "--out", str(out)).returncode == 0
    before = snapshot(out)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        done = facegan(*ARGS, "--epochs", "2", "--out", str(out), "--resume")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    line, = done.stderr.strip().splitlines()
    assert f"'{out}' is not writable (Read-only file system)" in line and "epoch 1, step 8) is intact" in line
    assert snapshot(out) == before
    assert facegan(*ARGS, "--epochs", "2", "--out", str(out), "--resume").returncode == 0


def test_a_run_directory_deleted_mid_run_is_made_again_and_the_run_finishes(tmp_path):
    import shutil
    from facegan.config import TrainConfig
    out = tmp_path / "run"
    config = TrainConfig(data="synthetic", synthetic_count=64, batch_size=32, d_conv_dim=8, g_conv_dim=8, z_size=16,
                         n_samples=4, epochs=3, out=str(out), threads="1")
    trainer = Trainer(config, progress=False)
    with pytest.warns(UserWarning, match="was deleted during the run: made it again"):
        trainer.run(on_epoch=lambda epoch, samples: shutil.rmtree(out) if epoch == 1 else None)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 3
    assert (out / "samples" / "epoch_003.png").is_file()


@pytest.mark.slow
def test_a_second_run_on_a_live_run_directory_is_refused_and_a_killed_one_leaves_no_lock(tmp_path):
    out = tmp_path / "run"
    code = "import sys\nfrom facegan.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    live = subprocess.Popen([sys.executable, "-c", code, *ARGS, "--epochs", "500", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_file(out / "checkpoint.pt", live)
        before = snapshot(out)
        # the same command in a second terminal, and a resume of it: both refused, nothing touched
        for extra in ([], ["--resume"]):
            done = facegan(*ARGS, "--epochs", "500", "--out", str(out), *extra)
            assert done.returncode == 1 and "Traceback" not in done.stderr
            line, = done.stderr.strip().splitlines()
            assert f"run directory '{out}' is in use by another run (process {live.pid} on " in line
            assert "since " in line and "choose another --out" in line
        # reading while it trains stays allowed
        sampled = facegan("sample", "--checkpoint", str(out / "checkpoint.pt"), "--n", "4",
                          "--out", str(tmp_path / "s.png"))
        assert sampled.returncode == 0, sampled.stderr
        assert {k: v for k, v in snapshot(out).items() if k in before and k.suffix == ".json"} == \
            {k: v for k, v in before.items() if k.suffix == ".json"}
    finally:
        live.send_signal(signal.SIGKILL)
        live.communicate()
    # killed outright: its lock died with it, and the next run resumes
    done = facegan(*ARGS, "--epochs", str(load_checkpoint(out / "checkpoint.pt")["epoch"] + 1), "--out", str(out),
                   "--resume")
    assert done.returncode == 0, done.stderr


def test_the_lock_is_an_os_lock_held_by_the_process_not_a_marker_file(tmp_path):
    first, second = RunDir(tmp_path / "run"), RunDir(tmp_path / "run")
    first.lock()
    with pytest.raises(TrainingError, match=f"process {os.getpid()}"):
        second.lock()
    first.unlock()
    assert (tmp_path / "run" / ".lock").exists(), "the file stays; only the lock on it ends"
    second.lock()
    second.unlock()


@pytest.mark.slow
def test_out_of_memory_names_the_flag_to_lower(tmp_path):
    """A real allocation failure: the process may map at most 4 GiB, and a batch of 2048 64px images needs more."""
    limit = 4 * 2**30
    if resource.getrlimit(resource.RLIMIT_AS)[0] not in (resource.RLIM_INFINITY,) and \
            resource.getrlimit(resource.RLIMIT_AS)[0] < limit:
        pytest.skip("this process already has a lower address-space limit")
    driver = f"""
    import resource
    resource.setrlimit(resource.RLIMIT_AS, ({limit}, resource.RLIM_INFINITY))
    """
    done = facegan("train", "--data", "synthetic", "--synthetic-count", "2048", "--batch-size", "2048",
                   "--d-conv-dim", "64", "--g-conv-dim", "64", "--image-size", "64", "--epochs", "1", "--quiet",
                   "--threads", "1", "--n-samples", "4", "--out", str(tmp_path / "run"), driver=driver, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    line, = done.stderr.strip().splitlines()
    assert line.startswith("error: out of memory on the cpu at batch size 2048") and "lower --batch-size" in line


def test_each_failed_write_is_told_in_words(tmp_path):
    """The messages themselves, without a full disk (fast): what failed, where, how much, what is intact."""
    import errno
    from facegan.rundir import write_failure
    full = write_failure(OSError(errno.ENOSPC, "No space left on device"), tmp_path / "run", 1_371_000)
    assert full.startswith(f"the disk holding '{tmp_path / 'run'}' is full (No space left on device, ")
    assert full.endswith("free, writing it needs 1.3 MB)")
    assert "is not writable (Read-only file system)" in write_failure(OSError(errno.EROFS, "Read-only file system"),
                                                                      tmp_path)
    assert write_failure(OSError(errno.EIO, "Input/output error"), tmp_path) is None
    assert [size_text(n) for n in (435, 40_000, 1_371_000)] == ["435 bytes", "39.1 KB", "1.3 MB"]
    files = RunDir(tmp_path / "run")
    for saved, says in ((None, "no checkpoint was written yet"), ((3, 24), "the last checkpoint (epoch 3, step 24)")):
        files.saved = saved
        with pytest.raises(TrainingError, match=r"while saving losses\.csv: " + re.escape(says)):
            with files.writing("losses.csv"):
                raise OSError(errno.ENOSPC, "No space left on device")
