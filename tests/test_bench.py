"""The pieces of bench/screen.py that decide what a screening result means: a candidate's settings, the extra moving
averages scored beside a run's own, and the summary table."""
import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from screen import extra_average, keep_extra_emas, parse_candidate, summarise  # noqa: E402

from facegan.train import Trainer  # noqa: E402

from test_train import small  # noqa: E402


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


@pytest.mark.parametrize("text", ["typo lr=fast", "typo unknown_field=1", "bad also_ema=1.5",
                                  "bad also_ema=0.999:1", "bad also_ema=0.999:x"])
def test_a_bad_candidate_fails_when_parsed(text):
    with pytest.raises((ValueError, KeyError)):
        parse_candidate(text)


def test_every_speed_lever_builds_a_trainer_that_trains(tmp_path):
    """bench/levers.py's table is only as good as its levers: each must be a valid config whose patched Trainer
    takes a step and still learns (compilation is left out here: it takes a minute and is torch's to test)."""
    from levers import LEVERS
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


def test_the_nchw_weights_lever_changes_the_layout_and_nothing_else(tmp_path):
    """Only the weights' memory layout moves: the convs' weights (and their average) become NCHW-contiguous, the
    activations stay channels-last, and a step computes what the default step computes (up to float rounding)."""
    from levers import nchw_weights
    from facegan.batches import TensorBatches
    trainers = [Trainer(small(tmp_path, threads="2", precision="fp32"), progress=False, write=False) for _ in range(2)]
    nchw_weights(trainers[1])
    convs = [m for net in (trainers[1].D, trainers[1].G, trainers[1].ema.model) for m in net.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert convs and all(m.weight.is_contiguous() and not m.weight.is_contiguous(memory_format=torch.channels_last)
                         for m in convs)
    batch = next(TensorBatches(torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8), 16,
                               channels_last=True).epoch(0))
    assert batch.is_contiguous(memory_format=torch.channels_last)
    default, lever = (trainer.train_step(batch) for trainer in trainers)
    torch.testing.assert_close(torch.stack(lever), torch.stack(default), rtol=1e-4, atol=1e-5)
    for mine, theirs in zip(trainers[1].G.parameters(), trainers[0].G.parameters()):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_the_lever_bench_prints_a_row_per_lever(capsys):
    """End to end on generated faces, a fraction of a second per round: the table comes out, default first."""
    from levers import main
    main(["--seconds", "0.2", "--rounds", "1", "--only", "default", "nchw", "no-onednn"])
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    # the rows follow the header (a note about a round with CPU company may come after them)
    header = next(i for i, line in enumerate(lines) if line.startswith("lever "))
    rows = [line.split()[0] for line in lines[header + 1:header + 4]]
    assert rows == ["default", "nchw", "no-onednn"], printed
    assert "MFLOP/image" in printed and "share = of" in printed


def test_the_matmul_forms_of_the_slow_convolutions_compute_the_same_thing():
    """bench/studies/conv_alternatives.py's comparison means something only if both sides compute the same gradient
    or output: unfold/fold + matmul against oneDNN's convolution kernels, in fp32."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench", "studies"))
    from conv_alternatives import cases
    torch.manual_seed(0)
    names = []
    for name, _, onednn, matmul in cases(torch.float32):
        reference, mine = onednn(), matmul()
        assert mine.shape == reference.shape, name
        assert torch.allclose(mine, reference, rtol=1e-4, atol=1e-4 * reference.abs().max().item()), name
        names.append(name)
    assert len(names) == 5


@pytest.mark.slow
def test_the_layer_bench_accounts_for_the_rest_of_a_step():
    """bench/layers.py splits a step into convolutions and the parts timed here; each must run the work it names."""
    from layers import adam_seconds, norm_activation_seconds, step_seconds, weight_cast_seconds
    for seconds in (norm_activation_seconds(4, torch.float32), norm_activation_seconds(4, torch.bfloat16),
                    adam_seconds(), weight_cast_seconds(), step_seconds(4, seconds=0.1)[0]):
        assert 0 < seconds < 1
    assert step_seconds(4, seconds=0.1)[1] in ("fp32", "bf16")


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
    import screen

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

    from quality import FaceganRun
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


@pytest.mark.slow
def test_a_screen_of_updates_runs_both_framings_floors_and_the_seed_method_for_the_same_time(tmp_path, capsys,
                                                                                          monkeypatch):
    """--updates: that many steps on each framing, logged with budget, framing and wall time; each table has its
    floor; the seed method trains as long as the first candidate did; a re-run retrains nothing, and a screen with
    another budget leaves these runs out of its tables. --threads holds for scoring too, and is undone after."""
    import json

    import screen
    from screen import main
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
        assert seed_method["minutes"] == tiny["minutes"] > 0 and seed_method["matched_to"] == "tiny"
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
    from common import framed_crops, framing_box
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


@pytest.mark.slow
def test_the_framings_script_draws_both_grids_from_the_files_the_benches_train_on(tmp_path, capsys):
    from PIL import Image
    from framings import main
    faces = aligned_faces(tmp_path / "faces", n=40)
    main(["--data", str(faces), "--grids", str(tmp_path / "grids"), "--eval-n", "8"])
    grids = {name: Image.open(tmp_path / "grids" / f"framing_{name}.png") for name in ("head150", "face108")}
    for grid in grids.values():
        assert grid.size[0] > 8 * 64 and grid.size[1] > 4 * 64  # 32 faces, 8 a row, 64x64 as stored
    assert grids["head150"].tobytes() != grids["face108"].tobytes()
    out = capsys.readouterr().out
    assert out.count("floor (real vs real FID): held-out halves") == 2


def test_a_framing_refuses_images_that_are_not_aligned_celeba(tmp_path):
    from common import framed_crops
    from facegan.errors import DataError
    faces = aligned_faces(tmp_path / "faces", n=2, width=64, height=64)
    with pytest.raises(DataError, match="not an aligned CelebA frame"):
        framed_crops(str(faces), "head150")


def test_the_norm_activation_lever_computes_what_the_networks_do(tmp_path):
    """The lever rewires D's and G's forward around its compiled pieces; with compilation left out (it is torch's
    to test) the rewired networks must give the same outputs and gradients as the originals, D with one pass over
    real and fake stacked as well as with one batch."""
    import copy
    from levers import compiled_norm_activation
    trainer = Trainer(small(tmp_path), progress=False, write=False)
    D, G = copy.deepcopy(trainer.D), copy.deepcopy(trainer.G)
    compiled_norm_activation(trainer, compile=lambda f: f)
    torch.manual_seed(0)
    z, x = torch.rand(8, trainer.config.z_size) * 2 - 1, torch.rand(16, 3, 32, 32) * 2 - 1
    for mine, theirs in ((trainer.G(z), G(z)), (trainer.D(x, parts=2), D(x, parts=2)), (trainer.D(x), D(x))):
        assert torch.allclose(mine, theirs, atol=1e-6)
    trainer.D(x, parts=2).sum().backward()
    D(x, parts=2).sum().backward()
    for mine, theirs in zip(trainer.D.parameters(), D.parameters()):
        assert torch.allclose(mine.grad, theirs.grad, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "bench").glob("*.py") if p.name != "common.py"))
def test_each_bench_script_starts_from_a_plain_shell(script):
    """As the docs run them, `python bench/X.py` from the checkout, with nothing on PYTHONPATH: each finds the
    package and its neighbours by itself."""
    import subprocess
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, f"bench/{script}", "--help"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
