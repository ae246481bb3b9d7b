"""The notebook holds the code it teaches and runs headless top to bottom (nbconvert with environment variables,
papermill with -p); what it defines is what trains; its networks are the package's seed4 networks, so checkpoints
go both ways; and its exercise edition stops at the first unwritten step and passes every grader once filled."""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from facegan.checkpoint import load_checkpoint
from facegan.exercise import fill, make_exercise, regions, solutions
from facegan.rundir import read_losses

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "dlnd_face_generation.ipynb"
UDACITY_NAMES = ["get_dataloader", "scale", "Discriminator", "Generator", "weights_init_normal", "build_network",
                 "real_loss", "fake_loss", "train", "view_samples"]
PARAMETERS = ["data_dir", "batch_size", "n_epochs", "z_size", "d_conv_dim", "g_conv_dim", "lr", "beta1", "beta2",
              "seed"]
# what the notebook must define itself, in its own cells (not import from facegan)
DEFINED_HERE = ["def get_dataloader(", "def scale(", "class Discriminator(nn.Module)", "class Generator(nn.Module)",
                "def weights_init_normal(", "def real_loss(", "def fake_loss(", "def build_optimizers(",
                "def train_step(", "def train(", "def build_network("]
SMALL = {"FACEGAN_DATA_DIR": "synthetic", "FACEGAN_N_EPOCHS": "1", "FACEGAN_BATCH_SIZE": "128"}


def read():
    return nbformat.read(NOTEBOOK, as_version=4)


def code_of(nb):
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


def test_committed_without_outputs():
    for cell in read().cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def test_first_code_cell_holds_the_tagged_parameters():
    first = next(c for c in read().cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", [])
    for name in PARAMETERS:
        assert f'{name} = env("{name.upper()}", ' in first.source, name


def test_the_parameters_cell_trains_the_cli_default_recipe(monkeypatch):
    """The notebook and `python -m facegan train` train one recipe: every parameter that is a TrainConfig field
    (under its own name, or fid_n for eval_n) starts at TrainConfig's default, value by value."""
    import dataclasses

    from facegan.config import TrainConfig
    for name in list(os.environ):
        if name.startswith("FACEGAN_"):
            monkeypatch.delenv(name)
    first = next(c for c in read().cells if c.cell_type == "code")
    values: dict = {}
    exec(compile(first.source, "parameters", "exec"), values)
    defaults = TrainConfig()
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    shared = {name: name for name in values if name in fields} | {"fid_n": "eval_n"}
    assert {"batch_size", "lr", "beta1", "beta2", "z_size", "d_conv_dim", "g_conv_dim", "seed"} <= set(shared)
    for name, field in shared.items():
        assert values[name] == getattr(defaults, field), f"{name} = {values[name]!r}, TrainConfig: {field} = " \
            f"{getattr(defaults, field)!r}"


def test_every_step_is_written_in_the_notebook_and_graded():
    source = code_of(read())
    for definition in DEFINED_HERE:
        assert definition in source, definition
    for name in ("Discriminator", "Generator", "get_dataloader", "weights_init_normal", "real_loss", "fake_loss",
                 "build_network", "scale"):
        assert f"from facegan import {name}" not in source and f"import {name}\n" not in source
    for grader in ("test_get_dataloader", "test_dataloader", "test_scale", "test_discriminator", "test_generator",
                   "test_weights_init", "test_losses", "test_build_optimizers", "test_optimizers",
                   "test_train_step", "test_training_output"):
        assert f"tests.{grader}(" in source, grader
    assert ".next()" not in source and "next(iter(" in source


def test_each_graded_definition_is_checked_before_it_is_used():
    """So the exercise edition stops at the grader, not at a bare NotImplementedError further down. (The grader
    sits in the graded cell right after the answer cell, as nbgrader needs.)"""
    text = code_of(read())
    for name, grader in (("get_dataloader", "test_get_dataloader"), ("scale", "test_scale"),
                         ("build_optimizers", "test_build_optimizers")):
        assert text.index(f"tests.{grader}(") < text.index(f"{name}(", text.index(f"def {name}(") + 5)


def graded_steps(nb):
    return sum(c.source.count("tests.test_") for c in nb.cells if c.cell_type == "code")


def outputs_text(nb):
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"{out.get('ename')}: {out.get('evalue')}"
            text.append(out.get("text", "") if out.output_type == "stream" else
                        json.dumps(out.get("data", {}).get("text/plain", "")))
    return "".join(text)


def execute(nb, tmp_path, env):
    """Run ``nb`` in a fresh kernel in the project folder, with ``env`` added to the kernel's environment."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({**env, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"})
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return nb


PACKAGE_MATCH = """
# the notebook's networks are facegan's seed4 networks: same keys, shapes, printout and outputs
from facegan.models import Discriminator as PackageD, Generator as PackageG
from facegan.checkpoint import load_checkpoint
for mine, theirs, x in ((Discriminator(d_conv_dim), PackageD(d_conv_dim), torch.rand(4, 3, 32, 32) * 2 - 1),
                        (Generator(z_size, g_conv_dim), PackageG(z_size, g_conv_dim), torch.rand(4, z_size) * 2 - 1)):
    assert [(k, v.shape) for k, v in mine.state_dict().items()] == \\
        [(k, v.shape) for k, v in theirs.state_dict().items()]
    theirs.load_state_dict(mine.state_dict())
    assert torch.equal(mine.eval()(x), theirs.eval()(x))
assert str(Discriminator(32)) == str(PackageD(32)) and str(Generator(100, 32)) == str(PackageG(100, 32))
# a checkpoint written by the command line loads into the notebook's networks
state = load_checkpoint({cli_checkpoint!r})
D_cli, G_cli = Discriminator(8), Generator(16, 8)
D_cli.load_state_dict(state["discriminator"])
G_cli.load_state_dict(state["generator"])
missing = [n for n in {names!r} if n not in globals()]
assert not missing, missing
import inspect
assert list(inspect.signature(train).parameters)[:3] == ["D", "G", "n_epochs"]
assert len(losses) == 64 and all(len(p) == 2 for p in losses)
print("PACKAGE MATCH OK")
"""


@pytest.mark.slow
def test_solved_notebook_runs_and_its_checkpoint_works_with_the_cli(tmp_path, run_dir):
    nb = read()
    nb.cells.append(nbformat.v4.new_code_cell(PACKAGE_MATCH.format(cli_checkpoint=str(run_dir / "checkpoint.pt"),
                                                                   names=UDACITY_NAMES)))
    copy = tmp_path / "nb.ipynb"
    nbformat.write(nb, copy)
    env = {**os.environ, "PYTHONPATH": str(ROOT), **SMALL, "FACEGAN_FID_N": "24", "FACEGAN_OUT_DIR": str(tmp_path / "run")}
    done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                           "--ExecutePreprocessor.timeout=600", str(copy), "--output", str(tmp_path / "out.ipynb")],
                          env=env, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    text = outputs_text(nbformat.read(tmp_path / "out.ipynb", as_version=4))
    assert text.count("Tests Passed") == graded_steps(nb)
    assert "PACKAGE MATCH OK" in text and "SYNTHETIC" in text and "FID: " in text and "KID: " in text
    run = tmp_path / "run"
    assert (run / "samples" / "epoch_001.png").exists() and (run / "samples.gif").exists()

    # the notebook's checkpoint samples, evaluates and resumes from the command line
    def cli(*args):
        result = subprocess.run([sys.executable, "-m", "facegan", *args], capture_output=True, text=True, cwd=ROOT,
                                env={**os.environ, "PYTHONWARNINGS": "ignore"})
        assert result.returncode == 0, result.stderr
        return result.stdout
    cli("sample", "--checkpoint", str(run / "checkpoint.pt"), "--n", "4", "--out", str(tmp_path / "faces.png"))
    assert (tmp_path / "faces.png").exists()
    assert "FID: " in cli("evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--data", "synthetic", "--n", "24")
    cli("train", "--out", str(run), "--resume", "--epochs", "2", "--quiet")
    assert [r["step"] for r in read_losses(run)] == list(range(1, 129))
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 2


CLASSIC_LOADER = """
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

TRANSFORMED = [0]  # how many images the learner's own transform has seen


def count(image):
    TRANSFORMED[0] += 1
    return image


def get_dataloader(batch_size, image_size, data_dir="processed_celeba_small/"):
    transform = transforms.Compose([transforms.Resize(image_size), transforms.CenterCrop(image_size),
                                    transforms.RandomHorizontalFlip(), transforms.ToTensor(), count])
    return DataLoader(datasets.ImageFolder(data_dir, transform), batch_size=batch_size, shuffle=True)
"""
RECORD_TRAINING = """
TRANSFORMED[0] = 0
seen_by_the_step = []
learners_step = train_step


def train_step(D, G, d_optimizer, g_optimizer, real_images, z):
    seen_by_the_step.append(real_images.detach().cpu().clone())
    return learners_step(D, G, d_optimizer, g_optimizer, real_images, z)
"""


@pytest.mark.slow
def test_the_learners_own_loader_and_transforms_feed_every_training_epoch(tmp_path):
    """A get_dataloader written the classic way (ImageFolder, transforms.Compose with a transform of the learner's
    own and a RandomHorizontalFlip) is what training iterates: the transform sees every image of every epoch, and
    the step is shown mirrored faces. Each face is red on its left half and blue on its right, so a mirrored one
    shows which way it came."""
    from PIL import Image
    folder = tmp_path / "faces" / "celeba"
    folder.mkdir(parents=True)
    half = np.zeros((40, 40, 3), np.uint8)
    half[:, :20, 0], half[:, 20:, 2] = 255, 255
    for i in range(40):
        Image.fromarray(half).save(folder / f"{i:06d}.png")
    nb = read()
    loader_cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "get_dataloader")
    loader_cell.source = CLASSIC_LOADER
    training = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "losses = train(D, G" in c.source)
    nb.cells = nb.cells[:training] + [nbformat.v4.new_code_cell(RECORD_TRAINING), nb.cells[training],
                                      nbformat.v4.new_code_cell(
                                          "import torch\ntorch.save({'transformed': TRANSFORMED[0], 'batches': "
                                          f"seen_by_the_step}}, {str(tmp_path / 'seen.pt')!r})")]
    execute(nb, tmp_path, {"FACEGAN_DATA_DIR": str(tmp_path / "faces"), "FACEGAN_N_EPOCHS": "3",
                           "FACEGAN_BATCH_SIZE": "8", "FACEGAN_FID_N": "0", "FACEGAN_OUT_DIR": str(tmp_path / "run"),
                           "FACEGAN_CACHE": str(tmp_path / "cache")})
    seen = torch.load(tmp_path / "seen.pt")
    assert seen["transformed"] == 3 * 40  # every image of every epoch went through the learner's transform
    images = torch.cat(seen["batches"])
    assert images.shape == (3 * 40, 3, 32, 32)
    red_on_the_left = images[:, 0, :, :16].mean((1, 2)) > images[:, 0, :, 16:].mean((1, 2))
    assert 0.25 < red_on_the_left.float().mean() < 0.75  # about half mirrored, as RandomHorizontalFlip draws
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 3 * 5


EDITS = [
    # the Generator gains a learnable brightness offset
    ("self.deconv4 = deconv(conv_dim, 3, batch_norm=False)     # -> 32x32, RGB",
     "self.deconv4 = deconv(conv_dim, 3, batch_norm=False)\n        self.brightness = nn.Parameter(torch.zeros(1))"),
    ("return torch.tanh(self.deconv4(x))", "return torch.tanh(self.deconv4(x) + self.brightness)"),
    # the training step takes two discriminator updates per batch
    ("    d_optimizer.step()\n", "    d_optimizer.step()\n    d_optimizer.step()\n"),
]


@pytest.mark.slow
def test_what_the_notebook_defines_is_what_trains(tmp_path):
    nb = read()
    for old, new in EDITS:
        cell = next(c for c in nb.cells if c.cell_type == "code" and old in c.source)
        cell.source = cell.source.replace(old, new)
    execute(nb, tmp_path, {**SMALL, "FACEGAN_FID_N": "0", "FACEGAN_OUT_DIR": str(tmp_path / "run")})
    assert outputs_text(nb).count("Tests Passed") == graded_steps(nb)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert float(state["generator"]["brightness"].abs()) > 0  # the edited Generator was the one trained
    d_steps = state["d_optimizer"]["state"][0]["step"]
    g_steps = state["g_optimizer"]["state"][0]["step"]
    assert (int(d_steps), int(g_steps)) == (2 * 64, 64)  # the edited step was the one run


def test_exercise_keeps_everything_but_the_answers():
    solved = json.loads(NOTEBOOK.read_text())
    exercise = make_exercise(solved)
    answers = solutions(solved)
    assert len(answers) >= 12
    assert len(exercise["cells"]) == len(solved["cells"])
    stubs = 0
    for before, after in zip(solved["cells"], exercise["cells"]):
        # nbgrader's release adds only its locks and checksums to the metadata
        added = {"deletable", "editable"}
        assert before["cell_type"] == after["cell_type"]
        assert {k: v for k, v in after["metadata"].items() if k not in added} == \
            {**before["metadata"], **({"nbgrader": after["metadata"]["nbgrader"]} if "nbgrader" in before["metadata"]
                                      else {})}
        if "nbgrader" in before["metadata"]:
            assert {k: v for k, v in after["metadata"]["nbgrader"].items() if k not in ("checksum", "cell_type")} \
                == before["metadata"]["nbgrader"]
        assert not {line.strip() for line in after["source"].split("\n")} & {"### BEGIN SOLUTION", "### END SOLUTION"}
        stubs += after["source"].count("raise NotImplementedError()") + after["source"].count("YOUR ANSWER HERE")
        if after["cell_type"] == "code":
            assert after["outputs"] == [] and after["execution_count"] is None
        if not regions("".join(before["source"])):
            assert after["source"] == "".join(before["source"])
    assert stubs == len(answers)
    refilled = fill(exercise, answers)
    assert [c["source"] for c in refilled["cells"]] == ["".join(c["source"]) for c in solved["cells"]]


@pytest.mark.slow
def test_blank_exercise_stops_at_the_first_step_with_the_graders_message(tmp_path):
    nb = nbformat.from_dict(make_exercise(json.loads(NOTEBOOK.read_text())))
    with pytest.raises(CellExecutionError):
        execute(nb, tmp_path, {**SMALL, "FACEGAN_OUT_DIR": str(tmp_path / "run")})
    errors = [(i, o) for i, c in enumerate(nb.cells) for o in c.get("outputs", []) if o.output_type == "error"]
    assert len(errors) == 1
    index, error = errors[0]
    # the grader's cell right after the answer cell (nbgrader keeps answers and graded tests in cells of their own)
    assert nb.cells[index].source.startswith("tests.test_get_dataloader(")
    assert "def get_dataloader(" in nb.cells[index - 1].source
    assert error.ename == "GraderFailure"  # an AssertionError subclass: the grader's verdict
    assert "not implemented yet" in error.evalue and "write get_dataloader" in error.evalue
    assert "NotImplementedError" in error.evalue
    # the traceback ends at the grader's message, not in a chain of the learner's own exception
    assert "During handling of the above exception" not in "\n".join(error.traceback)


@pytest.mark.slow
def test_filled_exercise_passes_every_grader_with_papermill(tmp_path):
    papermill = pytest.importorskip("papermill")
    solved = json.loads(NOTEBOOK.read_text())
    filled = tmp_path / "filled.ipynb"
    filled.write_text(json.dumps(fill(make_exercise(solved), solutions(solved))))
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(filled), str(out), cwd=str(ROOT), progress_bar=False, kernel_name="python3",
                               parameters={"data_dir": "synthetic", "n_epochs": 2, "batch_size": 256, "fid_n": 0,
                                           "out_dir": str(tmp_path / "run"), "seed": 3})
    executed = nbformat.read(out, as_version=4)
    assert outputs_text(executed).count("Tests Passed") == graded_steps(read())
    assert sorted(os.listdir(tmp_path / "run" / "samples")) == ["epoch_001.png", "epoch_002.png"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["batch_size"], config["epochs"], config["seed"]) == (256, 2, 3)


def test_cli_writes_the_exercise(tmp_path):
    from facegan.cli import main
    out = tmp_path / "exercise.ipynb"
    assert main(["exercise", str(out), "--notebook", str(NOTEBOOK)]) == 0
    assert json.loads(out.read_text()) == make_exercise(json.loads(NOTEBOOK.read_text()))
    assert main(["exercise", str(tmp_path / "x.ipynb"), "--notebook", str(tmp_path / "missing.ipynb")]) == 1
    assert main(["exercise", str(NOTEBOOK), "--notebook", str(NOTEBOOK)]) == 1  # never overwrites the solutions


@pytest.mark.parametrize("source, message", [
    ("x = 1\n### BEGIN SOLUTION\ny = 2\n", "never closed"),
    ("### END SOLUTION\n", "without a '### BEGIN SOLUTION'"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "a second"),
    ("x = 1\n", "no '### BEGIN SOLUTION'"),
])
def test_broken_markers_are_refused_with_the_cell_named(source, message):
    from facegan.errors import ExerciseError
    notebook = {"cells": [{"cell_type": "code", "source": source, "metadata": {}, "outputs": [],
                           "execution_count": None}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    with pytest.raises(ExerciseError, match=message):
        make_exercise(notebook)


def test_stub_keeps_the_regions_indentation():
    notebook = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                           "source": "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"}]}
    source = make_exercise(notebook)["cells"][0]["source"]
    assert source == "def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    namespace = {}
    exec(source, namespace)
    with pytest.raises(NotImplementedError):
        namespace["f"]()


def test_the_solved_notebook_is_a_valid_nbgrader_source_notebook():
    """Answer cells are solution cells, each grader call sits in a locked, graded test cell with points, the
    closing reflection is a manually graded answer, the rest is read-only (the parameters stay editable), ids are
    unique, and no prose outside an answer spells out a solution marker (nbgrader would read it as one)."""
    nb = read()
    ids = []
    for cell in nb.cells:
        grading = cell.metadata.get("nbgrader")
        text = cell.source
        if "parameters" in cell.metadata.get("tags", []):
            assert grading is None, "the parameters cell stays editable"
            continue
        assert grading is not None and grading["schema_version"] == 3, text[:60]
        ids.append(grading["grade_id"])
        if "### BEGIN SOLUTION" in text:
            assert grading["solution"] and not grading["locked"], text[:60]
        if "tests.test_" in text:
            assert cell.cell_type == "code" and grading["grade"] and grading["locked"] and grading["points"] > 0
            assert not grading["solution"] and "### BEGIN SOLUTION" not in text
        if not grading["solution"] and not grading["grade"]:
            assert grading["locked"], text[:60]
    assert len(ids) == len(set(ids)), "grade ids must be unique"
    reflection = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "reflection")
    assert reflection.cell_type == "markdown" and reflection.metadata["nbgrader"]["grade"]
    graded = [c.metadata["nbgrader"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert sum(g["points"] for g in graded if not g["solution"]) == 15
    pytest.importorskip("nbgrader")
    from nbgrader.preprocessors import CheckCellMetadata
    CheckCellMetadata().preprocess(nbformat.from_dict(json.loads(json.dumps(nb))), {})


def test_a_notebook_nbgrader_refuses_is_one_line(tmp_path, capsys):
    """An answer region in a read-only cell of a marked notebook: nbgrader refuses it, and the CLI says so."""
    from facegan.cli import main
    pytest.importorskip("nbgrader")
    notebook = json.loads(NOTEBOOK.read_text())
    locked = next(c for c in notebook["cells"] if c["metadata"].get("nbgrader", {}).get("locked")
                  and c["cell_type"] == "code")
    locked["source"] = "### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n"
    (tmp_path / "bad.ipynb").write_text(json.dumps(notebook))
    assert main(["exercise", str(tmp_path / "out.ipynb"), "--notebook", str(tmp_path / "bad.ipynb")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: nbgrader refuses this notebook (") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.ipynb").exists()


def notebook_definitions(**names):
    """The functions and classes the notebook's cells define (with their imports), nothing run."""
    import ast
    namespace = dict(names)
    for cell in read().cells:
        if cell.cell_type == "code":
            keep = [node for node in ast.parse(cell.source).body
                    if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom))
                    and not (isinstance(node, ast.ImportFrom) and node.module == "helpers")]
            exec(compile(ast.Module(body=keep, type_ignores=[]), "notebook", "exec"), namespace)
    return namespace


def test_the_notebooks_train_step_is_the_cli_default_step():
    """The notebook and `python -m facegan train` train one recipe: from the same networks, on the same batch and
    latents, the notebook's train_step and facegan's default step compute the same losses and the same updated
    weights (up to the order of float sums: the notebook runs D twice, the default once over both batches)."""
    import contextlib
    import io

    from facegan.config import TrainConfig
    from facegan.train import Trainer
    config = TrainConfig(precision="fp32", threads="1", out="unused").resolved(torch.device("cpu"))
    cli = Trainer(config, images=torch.zeros(64, 3, 32, 32, dtype=torch.uint8), progress=False, write=False)
    nb = notebook_definitions(config=config, device=torch.device("cpu"), lr=config.lr, beta1=config.beta1,
                              beta2=config.beta2)
    with contextlib.redirect_stdout(io.StringIO()):
        D, G = nb["build_network"](config.d_conv_dim, config.g_conv_dim, config.z_size)
    D.load_state_dict(cli.D.state_dict())
    G.load_state_dict(cli.G.state_dict())
    d_optimizer, g_optimizer = nb["build_optimizers"](D, G)
    before_D, before_G = ({k: v.clone() for k, v in net.state_dict().items()} for net in (D, G))
    real = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    z = torch.rand(64, config.z_size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    for tolerance in (1e-4, 2e-3):  # float differences of the first step grow a little in the second
        mine = nb["train_step"](D, G, d_optimizer, g_optimizer, real, z)
        theirs = cli.default_step(cli.D, cli.G, cli.d_optimizer, cli.g_optimizer, real * 2 - 1, z, 0)
        for a, b in zip(mine, theirs):
            assert float(a.detach()) == pytest.approx(float(b.detach()), rel=tolerance, abs=1e-5)
    # the same updates: Adam's first steps move each weight by about lr whatever its gradient's size, so a weight
    # whose gradient is near 0 may move either way on float noise; compare each tensor's update as a whole
    for net, other, start in ((D, cli.D, before_D), (G, cli.G, before_G)):
        for (name, a), b in zip(net.state_dict().items(), other.state_dict().values()):
            if a.is_floating_point() and not torch.equal(a, start[name]):
                cosine = torch.nn.functional.cosine_similarity((a - start[name]).flatten(),
                                                               (b - start[name]).flatten(), dim=0)
                assert cosine > 0.95, (name, float(cosine))
