"""Shared by the benchmarks: the seed method (the Udacity notebook's loop as written) and data fixtures."""
from __future__ import annotations

import ast
import itertools
import json
import math
import os
import tempfile
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facegan.data import CELEBA_ASPECT, find_images, load_images
from facegan.errors import DataError
from facegan.models import build_network, fake_loss, real_loss

# Two ways to frame aligned CelebA, as boxes in its 178x218 frame (a scaled copy is scaled alike): side, centre x,
# centre y. Alignment puts the eyes near y = 111 and the mouth near y = 152 in every image, so one box frames every
# face alike.
FRAMINGS = {
    "face108": (108, 89, 109),  # the conventional DCGAN square, facegan's own crop: forehead to chin
    "head150": (150, 89, 106),  # the whole head, hair and some background, as the Udacity crops frame a face
}


def framing_box(framing: str, width: int, height: int) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) pixel box of ``framing`` in an aligned CelebA image of this size."""
    side, centre_x, centre_y = FRAMINGS[framing]
    scale = width / 178
    side = round(side * scale)
    left, top = math.floor(centre_x * scale - side / 2), math.floor(centre_y * scale - side / 2)
    return left, top, left + side, top + side


def framed_crops(data: str, framing: str, size: int = 64) -> np.ndarray:
    """Every image of aligned CelebA ``data`` (folder or zip) cut to ``framing`` and resized to ``size``, as uint8
    (N, size, size, 3) in file-name order, decoded the way facegan's loader decodes."""
    source = find_images(data)
    if source.kind == "synthetic":
        raise DataError("a framing cuts aligned CelebA images: point --data at img_align_celeba or its zip")
    archive = zipfile.ZipFile(source.path) if source.kind == "zip" else None
    crops = np.empty((len(source.members), size, size, 3), np.uint8)
    try:
        for i, name in enumerate(source.members):
            with Image.open(archive.open(name) if archive else Path(source.path, name)) as im:
                if abs(im.width / im.height - CELEBA_ASPECT) >= 0.01:
                    raise DataError(f"{name} is {im.width}x{im.height}, not an aligned CelebA frame (178x218 or a "
                                    "scaled copy): a framing cuts aligned CelebA images")
                im.draft("RGB", (size * 2, size * 2))
                box = framing_box(framing, *im.size)
                crops[i] = np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS, box=box))
    finally:
        if archive:
            archive.close()
    return crops


def jpeg_folder(crops: np.ndarray, index=None) -> str:
    """A folder laid out for torchvision's ImageFolder (one class subfolder) holding ``crops`` (``index`` selects
    some) as JPEG files, like the Udacity processed_celeba_small set."""
    root = Path(tempfile.mkdtemp(prefix="facegan-bench-"))
    target = root / "faces"
    target.mkdir()
    for i in range(len(crops)) if index is None else index.tolist():
        Image.fromarray(crops[i]).save(target / f"{i:06d}.jpg", quality=95)
    return str(root)


def udacity_style_folder(data: str | None, index=None, n: int = 4096) -> str:
    """A jpeg_folder of 64x64 face crops, like the Udacity processed_celeba_small set: the source's images
    (``index`` selects some) cropped and resized the way facegan does, or ``n`` generated faces when ``data`` is
    None. Both methods then read the very same files."""
    if data is None:
        from facegan.synthetic import draw_faces
        crops = draw_faces(n, 64, seed=0)
    else:
        crops = load_images(data, 64, progress=False).permute(0, 2, 3, 1).numpy()
    return jpeg_folder(crops, index)


def run_whole(trainer):
    """``trainer.run()``, and its result, unless Ctrl-C or a kill stopped it: the Trainer then stops cleanly and
    returns early, and a bench must stop too, or it would report the part-trained run as if it had its budget."""
    result = trainer.run()
    if result.signal is not None:
        raise SystemExit(f"{result.stopped} at step {trainer.state.step}: this run is not scored or logged")
    return result


def train_until(trainer, epochs, update, deadline: float, steps_per_epoch: int) -> int:
    """Images trained on until ``deadline`` (a time.perf_counter() value), the way a run trains them: ``epochs(i)``
    gives epoch i's batches, ``update(batch)`` does one update and returns (images, the step's values), and each
    update goes through a training session's ``step_done`` (moving average, losses, schedule), so every path timed
    pays what a real run pays."""
    seen = 0
    with trainer.session(steps_per_epoch) as run:
        for epoch in itertools.count():
            for batch in epochs(epoch):
                images, values = update(batch)
                run.step_done(images, values)
                seen += images
                if time.perf_counter() > deadline:
                    return seen
    return seen


def seed_loader(folder: str, batch_size: int = 32, image_size: int = 32):
    """The Udacity get_dataloader: ImageFolder, Resize + CenterCrop + ToTensor decoded by PIL every epoch."""
    from torchvision import datasets, transforms
    transform = transforms.Compose([transforms.Resize(image_size), transforms.CenterCrop(image_size),
                                    transforms.ToTensor()])
    return torch.utils.data.DataLoader(datasets.ImageFolder(folder, transform), batch_size=batch_size,
                                       shuffle=True, num_workers=0)


class SeedMethod:
    """The Udacity training loop as written: fp32, scale() per batch, BCE-with-logits with real labels 0.9,
    uniform z regenerated for the G step, Adam(2e-4, 0.5, 0.999), the seed-000 networks."""

    def __init__(self, z_size: int = 100, conv_dim: int = 32, image_size: int = 32, seed: int = 0):
        torch.manual_seed(seed)
        self.D, self.G = build_network(conv_dim, conv_dim, z_size, image_size=image_size)
        self.d_optimizer = torch.optim.Adam(self.D.parameters(), 2e-4, betas=(0.5, 0.999))
        self.g_optimizer = torch.optim.Adam(self.G.parameters(), 2e-4, betas=(0.5, 0.999))
        self.z_size = z_size

    def step(self, real_images: torch.Tensor) -> tuple[float, float]:
        real_images = real_images * 2 - 1  # scale() to [-1, 1]
        n = real_images.size(0)
        self.d_optimizer.zero_grad()
        d_real_loss = real_loss(self.D(real_images), smooth=True)
        z = torch.from_numpy(np.random.uniform(-1, 1, size=(n, self.z_size))).float()
        fake_images = self.G(z)
        d_fake_loss = fake_loss(self.D(fake_images))
        d_loss = d_real_loss + d_fake_loss
        d_loss.backward()
        self.d_optimizer.step()

        self.g_optimizer.zero_grad()
        z = torch.from_numpy(np.random.uniform(-1, 1, size=(n, self.z_size))).float()
        g_loss = real_loss(self.D(self.G(z)))
        g_loss.backward()
        self.g_optimizer.step()
        return d_loss.item(), g_loss.item()


def notebook_definitions(path: str | Path, **names) -> types.SimpleNamespace:
    """The functions and classes the notebook defines (its imports too), executed without running anything else:
    no grader, no data loading, no training. ``names`` are the notebook globals they read (config, device, lr,
    beta1, beta2)."""
    namespace = dict(names)
    for cell in json.loads(Path(path).read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        keep = [node for node in ast.parse(source).body
                if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom))
                and not (isinstance(node, ast.ImportFrom) and node.module == "helpers")]
        exec(compile(ast.Module(body=keep, type_ignores=[]), str(path), "exec"), namespace)
    return types.SimpleNamespace(**namespace)


def host() -> dict:
    """This machine as every result names it: the CPU model, the bf16 and AMX units that decide the arithmetic,
    the cores and torch."""
    import platform
    cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("model name")),
                 platform.processor())
    flags = set(next((line.split(":", 1)[1].split() for line in cpu.splitlines() if line.startswith("flags")), []))
    return {"host": model, "avx512_bf16": "avx512_bf16" in flags, "amx": "amx_bf16" in flags,
            "cores": os.cpu_count(), "torch": torch.__version__}


class CpuWatch:
    """How much CPU the rest of the machine used while a measurement ran: the machine's busy time from /proc/stat
    minus this process's own. A benchmark prints it beside its numbers and flags a run that had company.
    (Elsewhere than Linux it reports nothing.)"""

    def __enter__(self):
        self._start = self._busy(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        busy, mine, wall = self._busy(), time.process_time(), time.perf_counter()
        self.wall = wall - self._start[2]
        self.others = None if busy is None else max(0.0, (busy - self._start[0]) - (mine - self._start[1])) / self.wall
        return False

    @staticmethod
    def _busy() -> float | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except OSError:
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    def note(self, limit: float = 0.1) -> str:
        """'others 0.02 cores' or, over ``limit`` cores, a warning that the number is contaminated."""
        if self.others is None:
            return "others: unknown"
        flag = "  << CONTAMINATED: another process was busy" if self.others > limit else ""
        return f"others {self.others:.2f} cores{flag}"
