"""Images in, uint8 tensors out.

``load_images`` turns whatever the user has (a folder, a zip read in place, the Udacity download, aligned CelebA,
or ``synthetic``) into one uint8 tensor of shape (N, 3, S, S). Files are decoded once, in parallel, and the result
is cached on disk, keyed by the source's fingerprint, so later runs start in a moment and a changed source is
decoded again. Training slices batches from that tensor (``facegan.batches``).
"""
from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import sys
import warnings
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import distributed
from .atomic import atomic_write
from .errors import DataError
from .synthetic import draw_faces

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
MAX_PIXELS = 50_000_000  # larger claims are refused as decompression bombs (the largest CelebA image has 39k)
CACHE_VERSION = 2  # 2: each entry's name carries the CRC-32 of its pixels
# aligned CelebA is 178x218 (or a scaled copy); the conventional DCGAN crop keeps a centred 108x108 face square
CELEBA_ASPECT, CELEBA_CROP = 178 / 218, 108 / 178
HELP_GET_DATA = ("point --data at a folder or .zip of face images (e.g. the Udacity processed-celeba-small.zip, "
                 "see the README), or use --data synthetic to try it offline")


@dataclass(frozen=True)
class ImageSource:
    """Where the images are: ``kind`` is 'folder', 'zip' or 'synthetic'; ``members`` are paths relative to
    ``path`` (files of a folder, or entries of a zip)."""
    kind: str
    path: str
    members: tuple[str, ...] = ()

    def fingerprint(self) -> str:
        """Changes whenever the source's files change (names, sizes or modification times)."""
        h = hashlib.sha256(f"{self.kind}|{os.path.abspath(self.path)}".encode())
        if self.kind == "zip":
            st = os.stat(self.path)
            h.update(f"{st.st_size}|{st.st_mtime_ns}".encode())
        elif self.kind == "folder":
            for name in self.members:
                st = os.stat(os.path.join(self.path, name))
                h.update(f"{name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return h.hexdigest()


def _is_image_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and "__MACOSX/" not in name and base.lower().endswith(IMAGE_EXTENSIONS)


def find_images(data: str | os.PathLike) -> ImageSource:
    """Locate the images of ``data`` ('synthetic', a folder searched recursively, or a zip) without decoding."""
    if str(data) == "synthetic":
        return ImageSource("synthetic", "synthetic")
    path = Path(data).expanduser()
    if not path.exists():
        raise DataError(f"data path '{data}' does not exist: {HELP_GET_DATA}")
    if path.is_file():
        try:
            with zipfile.ZipFile(path) as archive:
                members = tuple(sorted(i.filename for i in archive.infolist()
                                       if not i.is_dir() and _is_image_name(i.filename)))
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"'{data}' is a file but not a readable zip ({e}): {HELP_GET_DATA}") from None
        if not members:
            raise DataError(f"zip '{data}' holds no image files ({', '.join(IMAGE_EXTENSIONS)}): {HELP_GET_DATA}")
        return ImageSource("zip", str(path), members)
    members, seen = [], set()
    for root, dirs, files in os.walk(path, followlinks=True, onerror=None):
        st = os.stat(root)
        if (st.st_dev, st.st_ino) in seen:  # a symlink loop: each real folder is read once
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX")
        rel = os.path.relpath(root, path)
        members += [f if rel == "." else f"{rel}/{f}".replace(os.sep, "/") for f in sorted(files)
                    if _is_image_name(f) and os.path.isfile(os.path.join(root, f))]
    if not members:
        raise DataError(f"folder '{data}' holds no image files ({', '.join(IMAGE_EXTENSIONS)}): {HELP_GET_DATA}")
    return ImageSource("folder", str(path), tuple(members))


def _crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """A centred square: face-tight for aligned CelebA's portrait frames, the largest one otherwise."""
    if abs(width / height - CELEBA_ASPECT) < 0.01:
        side = round(width * CELEBA_CROP)
    else:
        side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def decode_image(fp, image_size: int) -> np.ndarray:
    """One image file (path or file object) as uint8 RGB (image_size, image_size, 3). Raises on unreadable files."""
    with Image.open(fp) as im:
        if im.width * im.height > MAX_PIXELS:
            raise ValueError(f"{im.width}x{im.height} pixels is over the {MAX_PIXELS} limit")
        # JPEGs can decode straight at a reduced scale, which is much faster and still leaves >= 2x to resize
        im.draft("RGB", (image_size * 2, image_size * 2))
        if im.mode.startswith("I;16") or im.mode == "I":  # 16-bit: keep the top 8 bits
            im = Image.fromarray((np.asarray(im, dtype=np.uint32) >> 8).astype(np.uint8))
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            background = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(background, im)
        im = im.convert("RGB")
        im = im.resize((image_size, image_size), Image.Resampling.LANCZOS, box=_crop_box(*im.size))
        return np.asarray(im, dtype=np.uint8)


def _decode_chunk(args):
    """Worker: decode a list of members; failures come back as (name, reason) instead of an image."""
    kind, root, names, image_size = args
    images, failures = [], []
    archive = zipfile.ZipFile(root) if kind == "zip" else None
    try:
        for name in names:
            try:
                if archive is not None:
                    fp = io.BytesIO(archive.read(name))
                else:
                    fp = os.path.join(root, name)
                images.append(decode_image(fp, image_size))
            except Exception as e:  # noqa: BLE001 - any unreadable file is counted and skipped, never fatal
                failures.append((name, f"{type(e).__name__}: {e}"))
    finally:
        if archive is not None:
            archive.close()
    stacked = np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8)
    return stacked, failures


def _decode_all(source: ImageSource, image_size: int, workers: int | None, progress: bool) -> np.ndarray:
    names = list(source.members)
    chunk = 512
    jobs = [(source.kind, source.path, names[i:i + chunk], image_size) for i in range(0, len(names), chunk)]
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    from tqdm.auto import tqdm
    bar = tqdm(total=len(names), desc=f"decoding {len(names)} images", unit="img", disable=not progress,
               leave=False)
    parts, failures = [], []
    if workers <= 1:
        results = map(_decode_chunk, jobs)
        pool = None
    else:
        # fork is cheapest where it is safe; elsewhere spawn (workers import only PIL and numpy work)
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
        results = pool.map(_decode_chunk, jobs)
    try:
        for images, failed in results:
            parts.append(images)
            failures += failed
            bar.update(len(images) + len(failed))
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
    if failures:
        name, reason = failures[0]
        warnings.warn(f"skipped {len(failures)} unreadable image file(s) of {len(names)} in '{source.path}' "
                      f"(first: {name}: {reason})", stacklevel=3)
    images = np.concatenate(parts)
    if len(images) == 0:
        raise DataError(f"none of the {len(names)} image files in '{source.path}' could be read "
                        f"(first: {failures[0][0]}: {failures[0][1]}): {HELP_GET_DATA}")
    return images


def cache_dir() -> Path:
    return Path(os.environ.get("FACEGAN_CACHE") or Path.home() / ".cache" / "facegan")


def load_images(data: str | os.PathLike, image_size: int = 32, *, synthetic_count: int = 8192, seed: int = 0,
                cache: bool = True, workers: int | None = None, progress: bool = True) -> torch.Tensor:
    """All images of ``data`` as a uint8 tensor (N, 3, image_size, image_size).

    Real sources are decoded once and cached under ``$FACEGAN_CACHE`` (default ``~/.cache/facegan``); the cache
    entry is keyed by the source's file names, sizes and modification times, so any change decodes again.
    ``synthetic`` draws ``synthetic_count`` faces from ``seed``.
    """
    source = find_images(data)
    if source.kind == "synthetic":
        array = draw_faces(synthetic_count, image_size, seed)
    else:
        key = hashlib.sha256(f"v{CACHE_VERSION}|{image_size}|{source.fingerprint()}".encode()).hexdigest()[:20]
        stem = f"{Path(source.path).stem}-{image_size}px-{key}"
        array = _load_cache(stem) if cache else None
        if array is None:
            array = _decode_all(source, image_size, workers, progress)
            if cache:
                _save_cache(stem, array)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))


def _checksum(array: np.ndarray) -> str:
    """CRC-32 of the pixels: about 40 ms for the 89,931-face Udacity set at 32x32 (276 MB), well under its load."""
    return f"{zlib.crc32(np.ascontiguousarray(array)):08x}"


def _load_cache(stem: str) -> np.ndarray | None:
    """The cached images under ``stem`` if their pixels still match the checksum in the entry's name. Storage
    faults and bad copies can zero or garble the data behind an intact .npy header, which would train on black
    images without a word: such an entry is removed, with a warning, and the images are decoded again."""
    for path in sorted(cache_dir().glob(f"{stem}-*.npy")):
        try:
            array = np.load(path)
        except (OSError, ValueError):
            array = None
        if array is not None and _checksum(array) == path.stem.rsplit("-", 1)[1]:
            return array
        warnings.warn(f"the decoded-image cache entry '{path}' is damaged (its pixels do not match their "
                      "checksum): decoding the images again", stacklevel=3)
        path.unlink(missing_ok=True)
    return None


def _save_cache(stem: str, array: np.ndarray) -> None:
    path = cache_dir() / f"{stem}-{_checksum(array)}.npy"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: np.save(f, array))
    except OSError as e:  # a read-only or full cache folder costs speed next time, never this run
        warnings.warn(f"could not cache decoded images in {path.parent} ({e}); set FACEGAN_CACHE to a writable "
                      "folder to start faster next time", stacklevel=3)


def load_run_images(config, world, progress: bool = True) -> torch.Tensor:
    """The images of ``config.data`` for a training run. Under torchrun rank 0 decodes and caches them first and
    the other processes then read its cache, instead of every process decoding the same files at once."""
    if not world.main:
        distributed.barrier()
    images = load_images(config.data, config.image_size, synthetic_count=config.synthetic_count, seed=config.seed,
                         progress=progress)
    if world.main:
        distributed.barrier()
    return images
