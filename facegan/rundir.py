"""The run directory: every file a run writes, the lock that keeps a second run out, and what a failed write says.

A run directory holds ``config.json``, ``losses.csv`` (one row per step), ``samples/epoch_NNN.png``, ``losses.png``,
``checkpoint.pt`` and, with evaluation, ``metrics.csv`` and ``best.pt``. Every file is written whole to a temporary
file and moved into place, so a crash or a full disk leaves the previous version intact. While a run trains it
holds an OS lock on ``.lock``: a second run on the same directory is refused, and the lock dies with its process
(``kill -9``, a power cut), so it never outlives the run. Reading (sample, evaluate, export) takes no lock.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import shutil
import socket
import sys
import time
import warnings
from pathlib import Path

import torch

from . import atomic
from .errors import TrainingError
from .images import save_grid

try:
    import fcntl
except ImportError:  # Windows: a byte-range lock, which likewise ends with its process
    fcntl = None
    import msvcrt

# d_real and d_fake are D's mean probability that a real image is real, D(x), and that a fake one is, D(G(z)) (as
# the PyTorch DCGAN tutorial reports them); empty for a user's step that does not return them
LOSS_COLUMNS = ("step", "epoch", "d_loss", "g_loss", "images_seen", "elapsed_s", "d_real", "d_fake")
LOCK_NAME = ".lock"
FORMAT = "facegan-checkpoint-v1"  # the marker every checkpoint carries (facegan.checkpoint checks it)
_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def checkpoint_bytes(state: dict) -> bytes:
    """A checkpoint file's contents, made in memory: its size is known before anything is written."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    return buffer.getvalue()


def size_text(n: int) -> str:
    """A byte count for people: '435 bytes', '1.3 MB'."""
    if n < 1024:
        return f"{n} bytes"
    units = ("KB", "MB", "GB")
    power = min(len(units), max(1, int(math.log(n, 1024))))
    return f"{n / 1024 ** power:.1f} {units[power - 1]}"


def free_space(path: str | os.PathLike) -> int | None:
    """Bytes free on the file system holding ``path`` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def write_failure(error: OSError, target: str | os.PathLike, needed: int | None = None) -> str | None:
    """One line for a write that failed because of the machine (a full disk, a read-only or vanished folder), or
    None for other errors. Says where, and how much was needed when that is known."""
    where = Path(target)
    if error.errno in _FULL:
        free = free_space(where)
        parts = [error.strerror or "", f"{size_text(free)} free" if free is not None else "",
                 f"writing it needs {size_text(needed)}" if needed else ""]
        return f"the disk holding '{where}' is full ({', '.join(p for p in parts if p)})"
    if error.errno in _UNWRITABLE:
        return f"'{where}' is not writable ({error.strerror})"
    if error.errno == errno.ENOENT:
        return f"'{where.parent}' no longer exists (deleted while writing?)"
    return None


class RunDir:
    """The files of one run. ``saved`` is (epoch, step) of the last checkpoint known to be on disk."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.saved: tuple[int, int] | None = None
        self._lock = None

    # ------------------------------------------------------------ the lock
    def lock(self) -> None:
        """Take the directory for this process, or raise TrainingError naming the process that holds it."""
        if self._lock is not None:
            return
        with self.writing("the run directory"):
            self.path.mkdir(parents=True, exist_ok=True)
            handle = open(self.path / LOCK_NAME, "a+")
        try:
            if fcntl:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            try:
                handle.seek(0)
                holder = _holder_text(handle.read())
            except OSError:  # Windows keeps a locked byte from other readers
                holder = _holder_text("")
            handle.close()
            raise TrainingError(f"run directory '{self.path}' is in use by another run ({holder}): wait for it to "
                                "finish or stop it, or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
                                 "command": " ".join(sys.argv)[:300]}))
        handle.flush()
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the lock
            self._lock = None

    def still_there(self) -> None:
        """Make the directory again if it was deleted during the run (with a warning), so the rest of the run,
        and its next checkpoint, are not lost; the lock is taken again on the new directory."""
        if (self.path / "samples").is_dir():
            return
        warnings.warn(f"the run directory '{self.path}' was deleted during the run: made it again; the losses and "
                      "samples written before are gone, the networks are not")
        self.unlock()
        self.lock()
        with self.writing("the run directory"):
            (self.path / "samples").mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ failed writes
    @contextlib.contextmanager
    def writing(self, what: str, needed: int | None = None):
        """Turn a failed write into one TrainingError that says what happened, where, and that the previous files
        are intact (the writes are atomic), with what to do next."""
        try:
            yield
        except OSError as e:
            cause = write_failure(e, self.path, needed) or f"could not write to '{self.path}' ({e.strerror or e})"
            if self.saved:
                kept = (f"the last checkpoint (epoch {self.saved[0]}, step {self.saved[1]}) is intact; free some "
                        "space or make the folder writable, then run the same command with --resume to continue "
                        "from it")
            else:
                kept = "no checkpoint was written yet; free some space or choose a writable --out and start again"
            raise TrainingError(f"{cause} while saving {what}: {kept}") from None

    # ------------------------------------------------------------ the files
    def prepare(self, config: dict) -> None:
        """Make the folders, clear half-written temporary files of a killed run, write config.json."""
        if self.path.exists() and not self.path.is_dir():
            raise TrainingError(f"output path '{self.path}' is a file: choose a folder with --out")
        self.lock()
        with self.writing("config.json"):
            (self.path / "samples").mkdir(parents=True, exist_ok=True)
            # half-written temporary files of a run that was killed mid-write: the real files are intact
            for stale in [*self.path.glob(".*.tmp"), *(self.path / "samples").glob(".*.tmp")]:
                stale.unlink(missing_ok=True)
            atomic.atomic_write(self.path / "config.json", lambda f: f.write(json.dumps(config, indent=2).encode()))

    def append_losses(self, rows: list[dict], mode: str = "append") -> None:
        path = self.path / "losses.csv"
        old = path.read_bytes() if mode == "append" and path.exists() else b""
        text = io.StringIO()
        writer = csv.DictWriter(text, LOSS_COLUMNS, extrasaction="ignore")
        if not old:
            writer.writeheader()
        writer.writerows(rows)
        blob = old + text.getvalue().encode()
        # rewriting the whole (small) file atomically keeps it whole across a kill mid-write
        with self.writing("losses.csv", len(blob)):
            atomic.atomic_write(path, lambda f: f.write(blob))

    def truncate_losses(self, step: int) -> None:
        """Drop loss rows written after the checkpoint at ``step`` (a crash between the CSV and the checkpoint)."""
        path = self.path / "losses.csv"
        if not path.exists():
            return
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= step]
        self.append_losses(rows, mode="replace")

    def save_checkpoint(self, state: dict, name: str = "checkpoint.pt") -> None:
        blob = checkpoint_bytes(state)
        with self.writing(name, len(blob)):
            atomic.atomic_write(self.path / name, lambda f: f.write(blob))
        if name == "checkpoint.pt":
            self.saved = (state["epoch"], state["step"])

    def save_samples(self, images: torch.Tensor, label: int) -> None:
        with self.writing(f"samples/epoch_{label:03d}.png"):
            save_grid(images, self.path / "samples" / f"epoch_{label:03d}.png")

    def plot_losses(self) -> None:
        """losses.png beside losses.csv, from the whole run (resumed parts included)."""
        import matplotlib.pyplot as plt

        from .plots import plot_losses
        rows = read_losses(self.path)
        figure = plot_losses([(r["d_loss"], r["g_loss"]) for r in rows])
        try:
            with self.writing("losses.png"):
                atomic.atomic_write(self.path / "losses.png", lambda f: figure.savefig(f, format="png", dpi=120))
        finally:
            plt.close(figure)

    def add_metrics(self, epoch: int, step: int, scores) -> None:
        path = self.path / "metrics.csv"
        old = path.read_bytes() if path.exists() else b"epoch,step,fid,kid,kid_std\n"
        row = f"{epoch},{step},{scores.fid:.4f},{scores.kid:.6f},{scores.kid_std:.6f}\n".encode()
        with self.writing("metrics.csv"):
            atomic.atomic_write(path, lambda f: f.write(old + row))

    def keep_best(self) -> None:
        """best.pt: a copy of the checkpoint just written."""
        blob = (self.path / "checkpoint.pt").read_bytes()
        with self.writing("best.pt", len(blob)):
            atomic.atomic_write(self.path / "best.pt", lambda f: f.write(blob))


def read_losses(run_dir: str | os.PathLike) -> list[dict]:
    """The rows of a run's losses.csv, numbers parsed (an empty D(x) / D(G(z)) cell reads as NaN)."""
    with open(Path(run_dir) / "losses.csv", newline="") as f:
        return [{k: (int(v) if k in ("step", "epoch", "images_seen") else float(v or "nan"))
                 for k, v in row.items()} for row in csv.DictReader(f)]


def _holder_text(text: str) -> str:
    try:
        holder = json.loads(text)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"]))
        return f"process {holder['pid']} on {holder['host']}, since {since}"
    except (ValueError, KeyError, TypeError):
        return "a process that has not said which"
