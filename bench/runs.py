"""What a quality screen (``python -m bench.screen``) trains and scores: faces cut from aligned CelebA in one of two
framings (common.FRAMINGS) with held-out ones apart, the real-vs-real floors, and the seed method and facegan's
Trainer trained in stretches to a budget of minutes or updates (each stretch under common.CpuWatch)."""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

from facegan.checkpoint import config_of, load_checkpoint, load_generator
from facegan.config import TrainConfig
from facegan.data import find_images, load_images
from facegan.metrics import Statistics, frechet_distance, reference_statistics
from facegan.train import Trainer

from .common import SeedMethod, framed_crops, jpeg_folder, run_whole, seed_loader


def prepare(data: str, eval_n: int, seed_files: bool = True, framing: str = "face108") -> types.SimpleNamespace:
    """The images both methods learn from and are scored against: the source cut to ``framing`` (see
    common.FRAMINGS) and re-encoded as 64x64 JPEG crops like the Udacity set, read back at 32x32, split into
    training images and ``eval_n`` held-out ones (the same faces held out in every framing). With ``seed_files``
    the training images are also written as a folder for the seed method's ImageFolder."""
    source = find_images(data)
    crops = framed_crops(data, framing)
    train_index, held_out_index = split(torch.from_numpy(crops), eval_n)
    folder = jpeg_folder(crops)
    images = load_images(os.path.join(folder, "faces"), 32, progress=False, cache=False)
    # the face108 key is the one its reference statistics were cached under before framings had names
    key = f"{source.fingerprint()}|held-out {eval_n}|udacity-style" + ("" if framing == "face108" else f"|{framing}")
    return types.SimpleNamespace(
        train=images[train_index], held_out=images[held_out_index], folder=folder, key=key, framing=framing,
        training_folder=jpeg_folder(crops, train_index) if seed_files else None)


def real_floors(data: types.SimpleNamespace, precision: str = "auto") -> tuple[float, float]:
    """FID of real faces against real faces, the floor a generator's FID is read against: the held-out faces' two
    halves against each other, and as many training faces as there are held-out ones against the held-out set
    (the sample sizes every run is scored at). Inception features are cached like any reference's."""
    held_out = reference_statistics(data.held_out, data.key, precision=precision)
    half = len(held_out.features) // 2
    halves = frechet_distance(Statistics.of(held_out.features[:half]), Statistics.of(held_out.features[half:]))
    pick = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))[:len(data.held_out)]
    training = reference_statistics(data.train[pick.sort().values], data.key + "|training sample",
                                    precision=precision)
    return halves, frechet_distance(training, held_out)


def remove_folders(data: types.SimpleNamespace | None) -> None:
    """Delete the JPEG folders ``prepare`` wrote."""
    for folder in (data.folder, data.training_folder) if data else ():
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


def parse_overrides(items: list[str]) -> dict:
    """['batch_size=128', 'augment=translation,cutout'] -> TrainConfig field values of the right types."""
    hints = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    overrides = {}
    for item in items:
        name, value = item.split("=", 1)
        kind = {"int": int, "float": float, "bool": lambda v: v.lower() in ("1", "true", "yes")}.get(
            str(hints[name]).split(" ")[0].replace("'", ""), str)
        overrides[name] = kind(value)
    return overrides


def split(images: torch.Tensor, held_out: int, seed: int = 0):
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return order[held_out:].sort().values, order[:held_out].sort().values


def epochs_of(updates: int, images: int, batch_size: int) -> int:
    """``updates`` generator steps as epochs of ``images`` faces (the last partial batch of each is dropped), or
    SystemExit naming the nearest budget that is a whole number of them."""
    per_epoch = images // batch_size
    if not per_epoch:
        raise SystemExit(f"only {images} training faces but the batch size is {batch_size}: give the candidate "
                         f"batch_size={images} or less, or --data more faces")
    if updates % per_epoch:
        raise SystemExit(f"--updates {updates} is not a whole number of epochs ({per_epoch} steps each: "
                         f"{images} faces at batch {batch_size}): "
                         f"use a multiple of {per_epoch}, e.g. {max(1, round(updates / per_epoch)) * per_epoch}")
    return updates // per_epoch


class SeedRun:
    """The seed method, trained in stretches: ``train_until(seconds)`` continues up to that much training time."""

    def __init__(self, folder: str, seed: int = 0):
        np.random.seed(seed)  # the seed method draws its latents with NumPy
        self.method, self.loader = SeedMethod(seed=seed), seed_loader(folder)  # after SeedMethod seeds the shuffle
        self.seen, self.trained = 0, 0.0
        self._batches = self._forever()

    def _forever(self):
        while True:
            yield from self.loader

    def train_until(self, seconds: float) -> None:
        start = time.perf_counter()
        while self.trained + time.perf_counter() - start < seconds:
            real, _ = next(self._batches)
            self.method.step(real)
            self.seen += real.shape[0]
        self.trained += time.perf_counter() - start

    @property
    def G(self) -> torch.nn.Module:
        return self.method.G


class FaceganRun:
    """facegan's Trainer, trained in stretches up to a total training time (its clock stops between them)."""

    def __init__(self, images: torch.Tensor, config: TrainConfig):
        self.trainer = Trainer(config, images=images, progress=False, write=False)
        self.images, self.lr_decay = images, config.lr_decay

    def train_until(self, seconds: float, whole: float | None = None) -> None:
        """Train up to ``seconds`` of training in all: a stretch of a run of ``whole`` seconds (default: this)."""
        self.trainer.config = dataclasses.replace(self.trainer.config, max_minutes=seconds / 60,
                                                  lr_decay=self.stretch_decay(seconds, whole or seconds))
        run_whole(self.trainer)

    def train_updates(self, updates: int, whole: int | None = None) -> None:
        """Train up to ``updates`` generator steps in all, a whole number of epochs: a stretch of a run of ``whole``
        updates (default: this)."""
        faces, batch = len(self.images), self.trainer.config.batch_size
        self.train_epochs(epochs_of(updates, faces, batch), epochs_of(whole or updates, faces, batch))

    def train_epochs(self, epochs: int, whole: int | None = None) -> None:
        """Train up to ``epochs`` epochs whatever the time it takes (a budget of updates, not of minutes): a stretch
        of a run of ``whole`` epochs (default: this)."""
        self.trainer.config = dataclasses.replace(self.trainer.config, epochs=epochs, max_minutes=None,
                                                  lr_decay=self.stretch_decay(epochs, whole or epochs))
        run_whole(self.trainer)

    def stretch_decay(self, end: float, whole: float) -> float:
        """The --lr-decay a stretch ending at ``end`` of a ``whole`` budget trains with. The trainer spreads the
        schedule over the budget it is given, so a stretch scored on the way would decay to zero at its own end and
        the next would start again at full rates. A stretch that ends before the decay begins trains at full rates
        (no decay), as the whole run does there, and the last one carries the schedule; one that would end inside
        the decay cannot be, and is refused."""
        if end >= whole or not self.lr_decay:
            return self.lr_decay
        if end > (1 - self.lr_decay) * whole:
            raise SystemExit(f"a score at {end:g} of {whole:g} falls inside --lr-decay's last {self.lr_decay:g} of "
                             "the run: score before the decay begins or only at the end")
        return 0.0

    @property
    def seen(self) -> int:
        return self.trainer.state.images_seen

    @property
    def G(self) -> torch.nn.Module:
        return self.trainer.sample_model()


def plot_curve(curves: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in curves.items():
        ax.plot([p[0] for p in points], [p[2].fid for p in points], marker="o", label=name)
    ax.set(xlabel="training time on the 2-core CPU (minutes)", ylabel="FID (lower is better)",
           title="Quality against training time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


class NotebookRun:
    """dlnd_face_generation.ipynb as shipped, run headless by papermill on the training faces (its own DataLoader,
    networks, train_step and loop, at its own parameters but for the seed, the threads and the epochs that make
    the budget); what is scored is its checkpoint's generator, the moving average, as for facegan's own runs."""

    NOTEBOOK = Path(__file__).resolve().parents[1] / "dlnd_face_generation.ipynb"

    def __init__(self, folder: str, seed: int = 0, threads: int | None = None):
        self.folder, self.seed, self.threads = folder, seed, threads
        self.seen = self.steps = self.minutes = 0
        self.config = self.G = None

    def train_updates(self, updates: int) -> None:
        import papermill
        faces = len(find_images(self.folder).members)
        out = Path(tempfile.mkdtemp(prefix="facegan-notebook-"))  # not inside the faces the notebook reads
        parameters = dict(data_dir=self.folder, n_epochs=epochs_of(updates, faces, TrainConfig.batch_size),
                          seed=self.seed, out_dir=str(out), fid_n=0, threads=str(self.threads or "auto"))
        try:
            papermill.execute_notebook(str(self.NOTEBOOK), str(out / "executed.ipynb"), parameters=parameters,
                                       cwd=str(self.NOTEBOOK.parent), progress_bar=False, kernel_name="python3")
            state = load_checkpoint(out / "checkpoint.pt")
            self.G = load_generator(out / "checkpoint.pt")[0]
        finally:
            shutil.rmtree(out, ignore_errors=True)
        self.seen, self.steps, self.minutes = state["images_seen"], state["step"], state["elapsed_s"] / 60
        self.config = config_of(state)
