"""Bad command-line values: usage errors exit 2, everything else exits 1 with one 'error:' line, no traceback."""
import os
import subprocess
import sys

import pytest

from facegan.cli import main


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "facegan", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


@pytest.mark.parametrize("args, code, message", [
    (["train", "--data", "/no/such/folder", "--out", "{tmp}/r"], 1, "does not exist: point --data"),
    (["train", "--epochs", "0", "--out", "{tmp}/r"], 1, "epochs must be at least 1"),
    (["train", "--batch-size", "-4", "--out", "{tmp}/r"], 1, "batch size must be at least 1"),
    (["train", "--lr", "-1", "--out", "{tmp}/r"], 1, "learning rate must be positive"),
    (["train", "--image-size", "48"], 2, "invalid choice"),
    (["train", "--device", "tpu", "--out", "{tmp}/r"], 1, "unknown device"),
    (["train", "--resume", "--out", "{tmp}/nothing"], 1, "no checkpoint"),
    (["train", "--out", "{tmp}/afile"], 1, "is a file"),
    (["train", "--epochs", "many"], 2, "invalid int value"),
    (["sample", "--checkpoint", "{tmp}/missing.pt", "--out", "{tmp}/x.png"], 1, "does not exist"),
    (["sample", "--checkpoint", "{tmp}/afile", "--out", "{tmp}/x.png"], 1, "not a readable checkpoint"),
    (["sample", "--checkpoint", "{tmp}/afile", "--n", "0", "--out", "x.png"], 2, "must be at least 1"),
    (["frobnicate"], 2, "invalid choice"),
])
def test_cli_errors_are_one_line_without_traceback(tmp_path, capsys, args, code, message):
    (tmp_path / "afile").write_text("just text")
    try:
        returned = main([a.replace("{tmp}", str(tmp_path)) for a in args])
    except SystemExit as e:  # argparse's usage errors
        returned = e.code
    err = capsys.readouterr().err
    assert returned == code, err
    assert message in err
    if code == 1:
        assert [line for line in err.splitlines() if line.strip()] == [line for line in err.splitlines()
                                                                        if line.startswith("error:")]


def test_a_real_process_prints_no_traceback(tmp_path):
    done = run_cli("train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r"))
    assert done.returncode == 1
    assert done.stderr.startswith("error: data path") and "Traceback" not in done.stderr
