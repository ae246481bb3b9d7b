"""Killed at any moment, a run resumes from its last complete checkpoint with nothing corrupt and no duplicated or
missing loss rows; the resumed losses equal an uninterrupted run's."""
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from PIL import Image

from conftest import wait_for_file
from facegan.checkpoint import load_checkpoint
from facegan.rundir import read_losses

ARGS = ["train", "--data", "synthetic", "--synthetic-count", "256", "--batch-size", "32", "--d-conv-dim", "8",
        "--g-conv-dim", "8", "--z-size", "16", "--n-samples", "9", "--quiet", "--epochs", "4",
        "--threads", "2"]  # a fixed count: bit-for-bit repeatable (auto may switch counts mid-run)


def facegan(*args, driver="", timeout=120):
    """Run the CLI in a fresh process; ``driver`` is Python run first (to plant a crash)."""
    code = textwrap.dedent(driver) + "\nimport sys\nfrom facegan.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    done = facegan(*ARGS, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return read_losses(out)


def assert_whole(out):
    """Every file in the run directory is complete and readable."""
    state = load_checkpoint(out / "checkpoint.pt")
    rows = read_losses(out)
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1)), "duplicated or missing loss rows"
    assert len(rows) >= state["step"]
    for grid in (out / "samples").glob("*.png"):
        with Image.open(grid) as im:
            im.load()
    return state


def finish_and_compare(out, reference):
    for stale in [*out.glob(".*.tmp"), *(out / "samples").glob(".*.tmp")]:
        assert stale.stat().st_size >= 0  # left by the kill; the resume clears them
    done = facegan(*ARGS, "--out", str(out), "--resume")
    assert done.returncode == 0, done.stderr
    assert not list(out.glob(".*.tmp")) and not list((out / "samples").glob(".*.tmp"))
    rows = read_losses(out)
    assert [(r["step"], r["d_loss"], r["g_loss"]) for r in rows] == \
        [(r["step"], r["d_loss"], r["g_loss"]) for r in reference]


KILL_DURING_WRITE = """
import os, signal
import facegan.atomic as atomic
original = atomic.atomic_write
calls = {{"n": 0}}
def dying_write(path, write):
    if str(path).endswith({suffix!r}):
        calls["n"] += 1
        if calls["n"] == {nth}:
            import io
            buffer = io.BytesIO()
            write(buffer)
            data = buffer.getvalue()
            with open(os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".x.tmp"), "wb") as f:
                f.write(data[: len(data) // 2])  # half of it is on disk when the power goes
            os.kill(os.getpid(), signal.SIGKILL)
    return original(path, write)
atomic.atomic_write = dying_write
"""


@pytest.mark.slow
@pytest.mark.parametrize("suffix, nth", [("checkpoint.pt", 2), ("losses.csv", 3), (".png", 2)])
def test_sigkill_in_the_middle_of_writing(tmp_path, reference, suffix, nth):
    out = tmp_path / "run"
    done = facegan(*ARGS, "--out", str(out), driver=KILL_DURING_WRITE.format(suffix=suffix, nth=nth))
    assert done.returncode == -signal.SIGKILL
    state = assert_whole(out)
    assert state["epoch"] >= 1
    finish_and_compare(out, reference)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [1.5, 3.0, 4.5])
def test_sigkill_at_arbitrary_moments(tmp_path, reference, delay):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "facegan", *ARGS, "--epochs", "4", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.kill()
    proc.wait()
    if not (out / "checkpoint.pt").exists():  # killed before the first epoch ended: nothing to resume yet
        return
    assert_whole(out)
    finish_and_compare(out, reference)


@pytest.mark.slow
def test_sigterm_stops_cleanly_after_saving(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "facegan", *ARGS, "--synthetic-count", "2048", "--epochs", "500",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_file(out / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "stopped by SIGTERM" in stdout
    state = assert_whole(out)
    assert len(read_losses(out)) == state["step"]


@pytest.mark.slow
def test_disk_full_keeps_the_previous_checkpoint(tmp_path):
    out = tmp_path / "run"
    assert facegan(*ARGS, "--epochs", "1", "--out", str(out)).returncode == 0
    before = (out / "checkpoint.pt").read_bytes()
    driver = """
    import errno
    import facegan.atomic as atomic
    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device")
    atomic.atomic_write = full
    """
    done = facegan(*ARGS, "--epochs", "2", "--out", str(out), "--resume", driver=driver)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "No space left on device" in done.stderr and "is full" in done.stderr
    assert "last checkpoint (epoch 1, step 8) is intact" in done.stderr and "--resume" in done.stderr
    assert (out / "checkpoint.pt").read_bytes() == before


@pytest.mark.slow
def test_unwritable_output_folder(tmp_path):
    # (the suite runs as root in CI, where chmod cannot make a folder unwritable: the refusal is planted instead)
    driver = """
    import errno
    import facegan.atomic as atomic
    def refused(path, write):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))
    atomic.atomic_write = refused
    """
    done = facegan(*ARGS, "--out", str(tmp_path / "run"), driver=driver)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "Permission denied" in done.stderr and "choose a writable --out" in done.stderr
