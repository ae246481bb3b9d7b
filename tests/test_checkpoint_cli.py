"""Checkpoints round-trip (safetensors too), the CLI trains, samples, resumes and stops cleanly on SIGINT."""
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from conftest import TINY, wait_for_file
from facegan.errors import CheckpointError
from facegan.checkpoint import export_generator, load_checkpoint, load_generator
from facegan.cli import main
from facegan.config import TrainConfig
from facegan.train import train
from test_bad_cli import run_cli


def test_safetensors_export_round_trip(run_dir, tmp_path):
    export_generator(run_dir / "checkpoint.pt", tmp_path / "g.safetensors")
    G1, c1 = load_generator(run_dir / "checkpoint.pt")
    G2, c2 = load_generator(tmp_path / "g.safetensors")
    assert c1 == c2
    z = torch.rand(3, c1.z_size)
    assert torch.equal(G1(z), G2(z))
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(CheckpointError, match="not a facegan safetensors"):
        load_generator(tmp_path / "bad.safetensors")


def test_cli_sample_grid_and_folder(run_dir, tmp_path):
    assert main(["sample", "--checkpoint", str(run_dir / "checkpoint.pt"), "--n", "5",
                 "--out", str(tmp_path / "grid.png")]) == 0
    with Image.open(tmp_path / "grid.png") as im:
        assert im.size == (3 * 34 + 2, 2 * 34 + 2)
    assert main(["sample", "--checkpoint", str(run_dir / "checkpoint.pt"), "--n", "4", "--seed", "1",
                 "--out", str(tmp_path / "faces")]) == 0
    files = sorted(os.listdir(tmp_path / "faces"))
    assert files == ["00000.png", "00001.png", "00002.png", "00003.png"]
    with Image.open(tmp_path / "faces" / "00000.png") as im:
        assert im.size == (32, 32) and im.mode == "RGB"


def test_cli_resume_continues_to_more_epochs(run_dir):
    assert main(["train", *TINY, "--epochs", "2", "--out", str(run_dir), "--resume"]) == 0
    assert load_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 2


@pytest.mark.slow
def test_python_m_facegan_end_to_end(tmp_path):
    done = run_cli("train", *TINY, "--epochs", "1", "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    assert "finished: epoch 1/1" in done.stdout
    done = run_cli("sample", "--checkpoint", str(tmp_path / "r" / "checkpoint.pt"), "--n", "4",
                   "--out", str(tmp_path / "s.png"))
    assert done.returncode == 0 and (tmp_path / "s.png").exists()


def test_config_round_trips_through_the_checkpoint(run_dir):
    state = load_checkpoint(run_dir / "checkpoint.pt")
    config = TrainConfig.from_dict(state["config"])
    assert config.d_conv_dim == 8 and config.z_size == 16 and config.data == "synthetic"
    assert TrainConfig.from_dict({**config.to_dict(), "added_in_a_later_version": 1}) == config
    # a checkpoint from before --ema-warmup existed resumes with the warm-up it was trained with, not today's default
    older = {k: v for k, v in config.to_dict().items() if k != "ema_warmup"}
    assert TrainConfig.from_dict(older).ema_warmup == 10.0 != TrainConfig().ema_warmup
    assert TrainConfig.from_dict(config.to_dict()).ema_warmup == config.ema_warmup


@pytest.mark.slow
def test_sigint_stops_cleanly_with_a_checkpoint(tmp_path):
    import signal
    proc = subprocess.Popen([sys.executable, "-m", "facegan", "train", *TINY, "--synthetic-count", "2048",
                             "--epochs", "1000", "--out", str(tmp_path / "r")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_file(tmp_path / "r" / "checkpoint.pt", proc)  # the first epoch's, however busy the machine
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped by SIGINT" in out
    state = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    assert state["step"] >= 64
    train(TrainConfig.from_dict({**state["config"], "epochs": state["epoch"] + 1}), resume=True, progress=False)


@pytest.mark.slow
def test_waiting_for_a_checkpoint_that_never_comes_fails_plainly(tmp_path):
    quitter = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    with pytest.raises(pytest.fail.Exception, match="ended \\(exit 3\\) before"):
        wait_for_file(tmp_path / "never.pt", quitter)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    with pytest.raises(pytest.fail.Exception, match="did not appear within 1 s"):
        wait_for_file(tmp_path / "never.pt", sleeper, seconds=1)
    assert sleeper.poll() is not None  # killed, not left running
