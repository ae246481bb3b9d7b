"""The pieces of bench/screen.py that decide what a screening result means: a candidate's settings, the extra moving
averages scored beside a run's own, and the summary table."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
from screen import keep_extra_emas, parse_candidate, summarise  # noqa: E402

from facegan.train import Trainer  # noqa: E402

from test_train import small  # noqa: E402


def test_a_candidate_is_a_name_overrides_and_extra_ema_decays():
    assert parse_candidate("default") == ("default", {}, [])
    assert parse_candidate("fast lr=4e-4 loss=hinge also_ema=0.9995 also_ema=0.99") == (
        "fast", {"lr": 4e-4, "loss": "hinge"}, [0.9995, 0.99])


def test_an_extra_ema_at_the_runs_own_decay_is_the_runs_own_ema(tmp_path):
    """The extra average must see exactly the updates the trainer's own does; at another decay it must differ."""
    trainer = Trainer(small(tmp_path, ema=0.9, epochs=1), progress=False, write=False)
    same, other = keep_extra_emas(trainer, [0.9, 0.05])  # 0.05: below the warm-up from step 0
    trainer.run()
    assert trainer.step == 8
    for mine, theirs in zip(same.model.parameters(), trainer.ema.model.parameters()):
        assert torch.equal(mine, theirs)
    assert any(not torch.equal(a, b) for a, b in zip(other.model.parameters(), trainer.ema.model.parameters()))
    # scored like the run's own: BatchNorm statistics re-measured for the averaged weights, in eval mode
    own, extra = trainer.sample_model(), trainer.calibrated(same)
    assert not extra.training
    for a, b in zip(own.buffers(), extra.buffers()):
        assert torch.equal(a, b)


def test_the_summary_ranks_clean_runs_by_mean_and_leaves_contaminated_ones_out():
    runs = [dict(candidate="a", settings="lr=1", fid=40.0, clean=True),
            dict(candidate="a", settings="lr=1", fid=44.0, clean=True),
            dict(candidate="b", settings="lr=2", fid=30.0, clean=True),
            dict(candidate="b", settings="lr=2", fid=10.0, clean=False),
            dict(candidate="b", settings="lr=2", fid=34.0, clean=True)]
    table = summarise(runs)
    assert [row[0] for row in table] == ["b", "a"]
    assert table[0][2:] == ([30.0, 34.0], 32.0, 2.0)
    assert table[1][2:] == ([40.0, 44.0], 42.0, 2.0)


@pytest.mark.parametrize("text", ["typo lr=fast", "typo unknown_field=1"])
def test_a_bad_candidate_fails_when_parsed(text):
    with pytest.raises((ValueError, KeyError)):
        parse_candidate(text)
