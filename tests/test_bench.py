"""The pieces of bench/screen.py that decide what a screening result means: a candidate's settings, the extra moving
averages scored beside a run's own, and the summary table."""
import os
import sys
from pathlib import Path

import pytest
import torch
from test_train import small

from bench.candidates import extra_average, keep_extra_emas, parse_candidate, rank_agreement, summarise
from facegan.train import Trainer

ROOT = Path(__file__).resolve().parents[1]


def test_a_candidate_is_a_name_overrides_and_extra_averages():
    assert parse_candidate("default") == ("default", {}, [])
    assert parse_candidate("fast lr=4e-4 loss=hinge also_ema=0.9995 also_ema=0.99 also_ema=0.9999:3") == (
        "fast", {"lr": 4e-4, "loss": "hinge"}, [(0.9995, 5.0), (0.99, 5.0), (0.9999, 3.0)])


def test_an_extra_average_is_logged_under_the_settings_that_would_train_it():
    # the default warm-up (5) goes unnamed
    assert extra_average("default", "defaults", 0.9995, 5.0) == ("default+ema0.9995", "ema=0.9995", (0.9995, 5.0))
    assert extra_average("default", "defaults", 0.9995, 10.0) == (
        "default+ema0.9995:10", "ema=0.9995 ema_warmup=10", (0.9995, 10.0))
    assert extra_average("lr4e-4", "lr=0.0004", 0.9999, 3.0) == (
        "lr4e-4+ema0.9999:3", "lr=0.0004 ema=0.9999 ema_warmup=3", (0.9999, 3.0))


def test_an_extra_ema_at_the_runs_own_decay_is_the_runs_own_ema(tmp_path):
    """The extra average must see exactly the updates the trainer's own does; at another decay it must differ."""
    trainer = Trainer(small(tmp_path, ema=0.9, ema_warmup=3, epochs=1), progress=False, write=False)
    # 0.05: below the warm-up from step 0; warm-up 10: a smaller decay than warm-up 3 until step 16
    same, other, other_warmup = keep_extra_emas(trainer, [(0.9, 3.0), (0.05, 3.0), (0.9, 10.0)])
    trainer.run()
    assert trainer.state.step == 8
    for mine, theirs in zip(same.model.parameters(), trainer.ema.model.parameters()):
        assert torch.equal(mine, theirs)
    for differs in (other, other_warmup):
        assert any(not torch.equal(a, b) for a, b in zip(differs.model.parameters(), trainer.ema.model.parameters()))
    # scored like the run's own: BatchNorm statistics re-measured for the averaged weights, in eval mode
    own, extra = trainer.sample_model(), trainer.sampler.calibrated(same)
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


def test_rank_agreement_compares_each_runs_fid_at_two_budgets():
    def run(name, seed, updates, fid, clean=True):
        return dict(candidate=name, settings=name, seed=seed, updates=updates, fid=fid, clean=clean)
    same_order = [run("a", 0, 10, 50.0), run("a", 0, 20, 40.0), run("b", 0, 10, 55.0), run("b", 0, 20, 42.0),
                  run("c", 0, 10, 60.0), run("c", 0, 20, 45.0), run("d", 0, 10, 58.0)]  # d: one budget, left out
    assert rank_agreement(same_order, 10, 20) == (3, 1.0, 1.0, 1)
    swapped = same_order[:6] + [run("a", 1, 10, 62.0), run("a", 1, 20, 39.0), run("b", 1, 10, 40.0, clean=False)]
    n, rho, tau, rank = rank_agreement(swapped, 10, 20)
    assert n == 4 and rank == 4 and rho == pytest.approx(-0.2) and tau == pytest.approx(0.0)
    assert rank_agreement(same_order[:4], 10, 20) is None


@pytest.mark.parametrize("text", ["typo lr=fast", "typo unknown_field=1", "bad also_ema=1.5",
                                  "bad also_ema=0.999:1", "bad also_ema=0.999:x"])
def test_a_bad_candidate_fails_when_parsed(text):
    with pytest.raises((ValueError, KeyError)):
        parse_candidate(text)


def test_every_speed_lever_builds_a_trainer_that_trains(tmp_path):
    """bench/levers.py's table is only as good as its levers: each must be a valid config whose patched Trainer
    takes a step and still learns (compilation is left out here: it takes a minute and is torch's to test)."""
    from bench.levers import LEVERS
    from facegan.batches import TensorBatches
    for name, (_, overrides, patch) in LEVERS.items():
        if name.startswith("compile"):
            continue
        config = small(tmp_path, **{"threads": "2", **overrides})
        trainer = Trainer(config, progress=False, write=False)
        if patch:
            patch(trainer)
        before = [p.clone() for p in trainer.G.parameters()]
        batches = TensorBatches(torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8), 16, device=trainer.device,
                                channels_last=trainer.config.channels_last)
        d_loss, g_loss = trainer.train_step(next(batches.epoch(0)))[:2]
        assert torch.isfinite(torch.as_tensor(d_loss)) and torch.isfinite(torch.as_tensor(g_loss)), name
        assert any(not torch.equal(a, b) for a, b in zip(before, trainer.G.parameters())), name


def test_a_lazy_penalty_costs_its_share_of_the_counted_arithmetic(tmp_path):
    """The arith column averages over a whole cycle of the lazy penalties: bCR on one D step in four adds a quarter
    of what bCR on every step adds (a count over one step, the bench's old way, saw every candidate pay in full),
    and R1 on one step in three adds a third of R1 on every step."""
    from bench.levers import update_flops
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)

    def arith(**overrides):
        return update_flops(small(tmp_path, **overrides), images)
    plain, every_step, every_fourth = arith(), arith(cr_weight=0.1), arith(cr_weight=0.1, cr_every=4)
    assert every_step > plain
    assert every_fourth == pytest.approx(plain + (every_step - plain) / 4, rel=1e-9)
    r1_every_step, r1_every_third = arith(r1_gamma=0.02, r1_every=1), arith(r1_gamma=0.02, r1_every=3)
    assert r1_every_third == pytest.approx(plain + (r1_every_step - plain) / 3, rel=1e-9)
    # per update, not per image: half the batch is half the arithmetic of an update
    assert arith(batch_size=16) == pytest.approx(plain / 2, rel=1e-9)


@pytest.mark.slow
def test_the_lever_bench_prints_a_row_per_lever(capsys):
    """End to end on generated faces, a fraction of a second per round: the table comes out, default first."""
    from bench.levers import main
    main(["--seconds", "0.2", "--rounds", "1", "--only", "default", "nchw", "unfused-adam",
          "--candidate", "bcr cr_weight=10"])
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    # the rows follow the header (a note about a round with CPU company may come after them)
    header = next(i for i, line in enumerate(lines) if line.startswith("lever "))
    rows = [line.split()[0] for line in lines[header + 1:header + 5]]
    assert rows == ["default", "nchw", "unfused-adam", "bcr"], printed
    assert "MFLOP/image" in printed and "share = of" in printed


def aligned_faces(folder, n: int = 48, width: int = 89, height: int = 109):
    """n generated faces saved as aligned CelebA's frames are: JPEG portraits of 178x218 scaled (89x109)."""
    from PIL import Image

    from facegan.synthetic import draw_faces
    folder.mkdir()
    for i, face in enumerate(draw_faces(n, 96, seed=0)):
        Image.fromarray(face).resize((width, height)).save(folder / f"{i + 1:06d}.jpg", quality=95)
    return folder


def test_a_screen_refuses_a_budget_that_is_no_whole_number_of_epochs_before_it_cuts_a_face(tmp_path, monkeypatch):
    """A batch size that does not divide the budget (8,000 faces at 128 is 62 steps an epoch, so not 15,000) used to
    fail only when its run began, after minutes of cutting faces and scoring floors: it fails now, naming a budget
    that works, and a budget every candidate divides goes on to cut the faces."""
    from bench import screen

    def prepare(*args, **kwargs):
        raise RuntimeError("prepared the faces")
    monkeypatch.setattr(screen, "prepare", prepare)
    faces = aligned_faces(tmp_path / "faces", n=8)
    argv = ["--data", str(faces), "--framing", "head150", "--seeds", "0", "--eval-n", "2", "--log",
            str(tmp_path / "log.jsonl"), "--candidate", "default", "--candidate", "b3 batch_size=3"]
    with pytest.raises(SystemExit, match="only 6 training faces but the batch size is 64: give the candidate "
                                         "batch_size=6 or less"):
        screen.main(argv + ["--updates", "2"])
    argv[-3] = "b2 batch_size=2"
    with pytest.raises(SystemExit, match=r"--updates 8 is not a whole number of epochs \(3 steps each: 6 faces at "
                                         r"batch 2\): use a multiple of 3, e.g. 9"):
        screen.main(argv + ["--updates", "6", "8"])  # every point scored, not only the budget
    with pytest.raises(SystemExit, match=r"--updates 9 is not a whole number of epochs \(2 steps each: 6 faces at "
                                         r"batch 3\): use a multiple of 2, e.g. 8"):
        screen.main(argv + ["--updates", "9"])  # every candidate, not only the first
    with pytest.raises(RuntimeError, match="prepared the faces"):
        screen.main(argv + ["--updates", "6", "12"])
    assert not (tmp_path / "log.jsonl").exists()


def test_a_bench_run_stopped_by_a_signal_stops_the_bench_instead_of_logging_a_part_trained_run(tmp_path):
    """A kill during a screen of 15,000 updates made the Trainer stop cleanly at step 10,185, and the screen scored
    that run and logged it as 15,000 updates. A real SIGTERM in the middle of training now stops the bench."""
    import signal

    from bench.runs import FaceganRun
    images = (torch.rand(64, 3, 32, 32) * 255).to(torch.uint8)
    run = FaceganRun(images, small(tmp_path, batch_size=16, epochs=1, ema=0.0))
    train_step, steps = run.trainer.train_step, []

    def killed_after_two_steps(real):
        steps.append(1)
        if len(steps) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return train_step(real)
    run.trainer.train_step = killed_after_two_steps
    with pytest.raises(SystemExit, match=r"stopped by SIGTERM at step \d: this run is not scored or logged"):
        run.train_updates(8)
    assert run.trainer.state.step < 8
    run.trainer.train_step = train_step
    run.train_updates(8)  # without a signal the same run trains on to its budget
    assert run.trainer.state.step == 8


def test_a_run_scored_on_the_way_keeps_its_learning_rate_schedule_over_the_whole_budget(tmp_path):
    """A screen scored at 7,500 and 15,000 updates trained --lr-decay 0.25 as two schedules, decaying to zero at
    7,500 and starting again at full rates. In stretches the run must end where the one unbroken run ends."""
    from bench.runs import FaceganRun
    images = (torch.rand(64, 3, 32, 32) * 255).to(torch.uint8)
    config = small(tmp_path, batch_size=16, epochs=1, ema=0.0, lr_decay=0.5)
    whole, in_stretches = FaceganRun(images, config), FaceganRun(images, config)
    whole.train_updates(16)
    in_stretches.train_updates(8, whole=16)
    assert in_stretches.trainer.g_optimizer.param_groups[0]["lr"] == config.lr  # no decay yet at the halfway score
    in_stretches.train_updates(16, whole=16)
    assert in_stretches.trainer.state.step == whole.trainer.state.step == 16
    for a, b in zip(whole.trainer.G.state_dict().values(), in_stretches.trainer.G.state_dict().values()):
        assert torch.equal(a, b)
    assert whole.trainer.g_optimizer.param_groups[0]["lr"] < config.lr / 4  # it did decay, near its end
    with pytest.raises(SystemExit, match="falls inside --lr-decay's last 0.5 of the run"):
        FaceganRun(images, config).train_updates(12, whole=16)


@pytest.mark.slow
def test_a_screen_of_updates_runs_both_framings_floors_and_the_seed_method_for_the_same_time(tmp_path, capsys,
                                                                                          monkeypatch):
    """--updates: that many steps on each framing, logged with budget, framing and wall time; each table has its
    floor; the seed method trains as long as the first candidate did; a re-run retrains nothing, and a screen with
    another budget leaves these runs out of its tables. --threads holds for scoring too, and is undone after."""
    import json

    from bench import screen
    from bench.screen import main
    scored_with, evaluate = [], screen.evaluate
    monkeypatch.setattr(screen, "evaluate", lambda *a, **k: scored_with.append(torch.get_num_threads())
                        or evaluate(*a, **k))
    threads_before = torch.get_num_threads()
    faces = aligned_faces(tmp_path / "faces")
    log = tmp_path / "screen.jsonl"
    argv = ["--data", str(faces), "--updates", "2", "4", "--seeds", "0", "--eval-n", "16", "--log", str(log),
            "--threads", "1", "--candidate", "tiny batch_size=16 also_ema=0.99:3"]
    main(argv + ["--seed-method"])
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["framing"], r["candidate"], r["updates"], r["steps"], r["images_seen"]) for r in runs] == [
        ("head150", "tiny", 2, 2, 32), ("head150", "tiny+ema0.99:3", 2, 2, 32),
        ("head150", "tiny", 4, 4, 64), ("head150", "tiny+ema0.99:3", 4, 4, 64),
        ("head150", "seed method", 4, None, runs[4]["images_seen"]),
        ("face108", "tiny", 2, 2, 32), ("face108", "tiny+ema0.99:3", 2, 2, 32),
        ("face108", "tiny", 4, 4, 64), ("face108", "tiny+ema0.99:3", 4, 4, 64),
        ("face108", "seed method", 4, None, runs[9]["images_seen"])]
    assert runs[0]["config"]["threads"] == 1 and runs[0]["settings"] == "batch_size=16"
    assert scored_with == [1] * 10 and torch.get_num_threads() == threads_before
    for tiny, seed_method in ((runs[2], runs[4]), (runs[7], runs[9])):
        # the real training time of 4 tiny updates (seconds), not the --minutes default a rounded 0.0 fell back to
        assert 0 < tiny["minutes"] < 1 and tiny["minutes"] != round(tiny["minutes"], 2)
        assert seed_method["minutes"] == tiny["minutes"] and seed_method["matched_to"] == "tiny"
        assert seed_method["images_seen"] > 0
    out = capsys.readouterr().out
    assert out.count("floor (real vs real): held-out halves") == 4  # a table per framing and point scored
    for table in ("head150: 2 updates", "head150: 4 updates", "face108: 2 updates", "face108: 4 updates"):
        assert f"{table} per run" in out
    main(argv + ["--seed-method"])  # everything is logged: nothing trains again
    assert len(log.read_text().splitlines()) == 10
    capsys.readouterr()
    main(argv[:2] + ["--minutes", "1", "--report"] + argv[5:])  # a screen of minutes leaves them out of its tables
    tables = capsys.readouterr().out.split("FID by seed")[1:]
    assert len(tables) == 2 and not any("tiny" in table for table in tables)
    seed1 = ["--data", str(faces), "--framing", "face108", "--seeds", "1", "--eval-n", "16", "--log", str(log)]
    with pytest.raises(SystemExit, match="not a whole number of epochs"):  # 48 - 16 held out: 2 steps an epoch
        main(seed1 + ["--updates", "3", "--candidate", "tiny batch_size=16"])


def test_the_face108_framing_is_facegans_own_crop_and_head150_holds_more_of_the_head(tmp_path):
    from bench.common import framed_crops, framing_box
    from facegan.data import _crop_box, load_images
    for width, height in ((178, 218), (89, 109), (356, 436), (134, 164)):
        assert framing_box("face108", width, height) == _crop_box(width, height)
        left, top, right, bottom = framing_box("head150", width, height)
        face = framing_box("face108", width, height)
        assert left < face[0] and top < face[1] and right > face[2] and bottom > face[3]  # contains the face square
        assert 0 <= left and 0 <= top and right <= width and bottom <= height
    faces = aligned_faces(tmp_path / "faces", n=6)
    face108 = framed_crops(str(faces), "face108")
    assert torch.equal(torch.from_numpy(face108).permute(0, 3, 1, 2), load_images(str(faces), 64, progress=False))
    assert not (framed_crops(str(faces), "head150") == face108).all()


def test_a_framing_refuses_images_that_are_not_aligned_celeba(tmp_path):
    from bench.common import framed_crops
    from facegan.errors import DataError
    faces = aligned_faces(tmp_path / "faces", n=2, width=64, height=64)
    with pytest.raises(DataError, match="not an aligned CelebA frame"):
        framed_crops(str(faces), "head150")


@pytest.mark.slow
@pytest.mark.parametrize("tool", sorted(p.stem for p in (ROOT / "bench").glob("*.py")
                                         if p.stem not in ("common", "__init__")))
def test_each_bench_tool_starts_from_a_plain_shell(tool):
    """As the docs run them, `python -m bench.X` from the checkout, with nothing on PYTHONPATH: each finds the
    package and the shared code by plain imports."""
    import subprocess
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-m", f"bench.{tool}", "--help"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
