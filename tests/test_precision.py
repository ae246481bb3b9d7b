"""bf16 only where the hardware has it: on a CPU without bf16 units torch emulates bf16, many times slower."""
import pytest
import torch

from facegan import precision
from facegan.config import TrainConfig
from facegan.train import Trainer

from test_train import small


@pytest.fixture
def bf16_units(monkeypatch):
    def set_to(value: bool):
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: value)
    return set_to


def test_auto_is_bf16_only_on_cpus_with_bf16_units(bf16_units):
    bf16_units(True)
    assert precision.resolve_precision("auto", "cpu") == "bf16"
    bf16_units(False)
    assert precision.resolve_precision("auto", "cpu") == "fp32"
    for forced in ("bf16", "fp32"):  # an explicit choice is kept either way
        assert precision.resolve_precision(forced, "cpu") == forced
    assert precision.resolve_precision("auto", "mps") == "fp32"
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        precision.resolve_precision("fp16", "cpu")


def test_auto_on_cuda_asks_whether_the_gpu_has_bf16_units(monkeypatch):
    asked = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: asked.append(including_emulation) or False)
    assert precision.resolve_precision("auto", "cuda") == "fp32"
    assert asked == [False]  # emulated bf16 does not count


def test_autocast_follows_the_resolved_precision(bf16_units):
    x, w = torch.randn(4, 8), torch.randn(8, 8)
    bf16_units(True)
    with precision.autocast(torch.device("cpu"), "auto"):
        assert (x @ w).dtype == torch.bfloat16
    bf16_units(False)
    with precision.autocast(torch.device("cpu"), "auto"):
        assert (x @ w).dtype == torch.float32
    with precision.autocast(torch.device("cpu"), "bf16"):
        assert (x @ w).dtype == torch.bfloat16


def test_a_run_records_the_precision_it_used(tmp_path, bf16_units):
    assert TrainConfig().precision == "auto"
    bf16_units(False)
    assert Trainer(small(tmp_path, "a"), progress=False, write=False).config.precision == "fp32"
    bf16_units(True)
    assert Trainer(small(tmp_path, "b"), progress=False, write=False).config.precision == "bf16"
    assert Trainer(small(tmp_path, "c", precision="fp32"), progress=False, write=False).config.precision == "fp32"
