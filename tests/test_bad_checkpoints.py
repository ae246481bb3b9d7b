"""Bad checkpoints: not a checkpoint, truncated, another architecture, or a pickle crafted to run code (refused,
and never run)."""
import pytest
import torch

from facegan.errors import CheckpointError

from facegan.checkpoint import load_checkpoint, load_generator


class Exploit:
    """Unpickling this would create a file: the loader must refuse it without running it."""
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_crafted_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"format": "facegan-checkpoint-v1", "generator": Exploit(str(marker))}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


@pytest.mark.parametrize("content, message", [
    (b"hello, not a checkpoint", "not a readable checkpoint"),
    (None, "not a facegan checkpoint"),
])
def test_not_a_checkpoint(tmp_path, content, message):
    path = tmp_path / "c.pt"
    if content is None:
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_truncated_checkpoint(run_dir, tmp_path):
    data = (run_dir / "checkpoint.pt").read_bytes()
    (tmp_path / "t.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "t.pt")


def test_checkpoint_of_another_architecture_says_which(run_dir, tmp_path):
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    state["config"]["image_size"] = 64
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not fit arch=seed4, image_size=64"):
        load_generator(tmp_path / "other.pt")
