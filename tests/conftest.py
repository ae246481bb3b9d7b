import os

import numpy as np
import pytest
from PIL import Image


# pytest's documented pattern for slow tests: whole notebook executions, multi-epoch trainings, benchmark smoke
# runs, several processes, signals and kills run only with --runslow (CI runs them after the fast suite)
def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run the tests marked slow")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test of seconds to minutes; runs only with --runslow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# a run small enough for a unit test: 128 synthetic faces, narrow networks
TINY = ["--data", "synthetic", "--synthetic-count", "128", "--batch-size", "32", "--d-conv-dim", "8",
        "--g-conv-dim", "8", "--z-size", "16", "--n-samples", "9", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished one-epoch tiny run (shared by the tests of one module)."""
    from facegan.cli import main
    out = tmp_path_factory.mktemp("tiny") / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    return out


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test decodes into its own cache, so none sees another's (or the user's) cached images."""
    monkeypatch.setenv("FACEGAN_CACHE", str(tmp_path / "cache"))


def face_like(rng, size=(64, 64)):
    """A random smooth RGB image (a stand-in for a face crop)."""
    w, h = size
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR)


def write_images(folder, n, size=(64, 64), ext="jpg", seed=0, start=1):
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(start, start + n):
        face_like(rng, size).save(os.path.join(folder, f"{i:06d}.{ext}"))
    return folder


@pytest.fixture
def udacity_dir(tmp_path):
    """The layout of the Udacity download: processed_celeba_small/celeba/New Folder With Items/*.jpg."""
    top = tmp_path / "processed_celeba_small"
    inner = top / "celeba" / "New Folder With Items"
    write_images(inner, 40)
    (inner / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1 not an image")
    return top


def wait_for_file(path, proc, seconds=600):
    """Wait until ``path`` exists (a run's first checkpoint, say), however loaded the machine is. Fails plainly
    if the process ends first or the file never comes; never lets a test go on without it."""
    import time
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the process ended (exit {proc.returncode}) before {path} appeared:\n{err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail(f"{path} did not appear within {seconds} s")
        time.sleep(0.2)
