"""Bad command-line values: usage errors exit 2, everything else exits 1 with one 'error:' line, no traceback."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from facegan.cli import main


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "facegan", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


@pytest.mark.parametrize("args, code, message", [
    (["train", "--data", "/no/such/folder", "--out", "{tmp}/r"], 1, "does not exist: point --data"),
    (["train", "--epochs", "0", "--out", "{tmp}/r"], 2, "argument --epochs: epochs must be at least 1 (got 0)"),
    (["train", "--epochs", "-1"], 2, "argument --epochs: epochs must be at least 1 (got -1)"),
    (["train", "--n-epochs", "-1"], 2, "epochs must be at least 1 (got -1)"),
    (["train", "--batch-size", "0"], 2, "argument --batch-size: batch size must be at least 1 (got 0)"),
    (["train", "--batch-size", "-4", "--out", "{tmp}/r"], 2, "batch size must be at least 1"),
    (["train", "--lr", "-0.1"], 2, "argument --lr: learning rate must be positive (got -0.1)"),
    (["train", "--d-lr", "0"], 2, "discriminator learning rate must be positive"),
    (["train", "--beta1", "1.5"], 2, "Adam betas must lie in [0, 1)"),
    (["train", "--real-label", "0"], 2, "real label must lie in (0, 1]"),
    (["train", "--max-minutes", "-5"], 2, "max minutes must be positive"),
    (["train", "--z-size", "0"], 2, "z size must be at least 1"),
    (["train", "--ema", "1"], 2, "ema decay must lie in [0, 1)"),
    (["train", "--ema-warmup", "1"], 2, "ema warmup must be above 1"),
    (["train", "--eval-every", "-1"], 2, "eval every must be 0"),
    (["train", "--eval-n", "1"], 2, "eval n must be at least 2"),
    (["train", "--threads", "-2"], 2, "threads must be"),
    (["train", "--lr", "fast"], 2, "invalid float value"),
    (["train", "--image-size", "48"], 2, "image size 48 is not supported"),
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
    if code == 2:
        assert err.startswith("usage: facegan"), err
    if code == 1:
        assert [line for line in err.splitlines() if line.strip()] == [line for line in err.splitlines()
                                                                        if line.startswith("error:")]


@pytest.mark.slow
def test_a_real_process_prints_no_traceback(tmp_path):
    done = run_cli("train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r"))
    assert done.returncode == 1
    assert done.stderr.startswith("error: data path") and "Traceback" not in done.stderr


def test_every_numeric_flag_is_checked_at_parse_time_by_validates_rule(capsys):
    """One source for each rule: for every numeric TrainConfig field, the first of a few values that validate()
    refuses is refused by the parser too (exit 2), with validate's own message."""
    import dataclasses
    import typing

    from facegan.config import TrainConfig
    hints = typing.get_type_hints(TrainConfig)
    checked = []
    for f in dataclasses.fields(TrainConfig):
        kinds = typing.get_args(hints[f.name]) or (hints[f.name],)
        if int not in kinds and float not in kinds:
            continue
        base = float if float in kinds else int
        for bad in map(base, (-1, 0, 1, 2, 48)):
            try:
                TrainConfig(**{f.name: bad}).validate()
            except ValueError as e:
                with pytest.raises(SystemExit) as info:
                    main(["train", "--" + f.name.replace("_", "-"), str(bad)])
                assert info.value.code == 2 and str(e) in capsys.readouterr().err
                checked.append(f.name)
                break
    assert len(checked) >= 14, checked


def test_python_m_facegan_runs_the_cli():
    """facegan/__main__.py: `python -m facegan` is the CLI (a fast check; the end-to-end runs are slow tests)."""
    done = subprocess.run([sys.executable, "-m", "facegan", "--help"], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and "usage: facegan" in done.stdout and "exercise" in done.stdout
