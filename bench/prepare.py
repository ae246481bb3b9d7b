"""First-time preparation and restart time of a dataset the size of the Udacity set.

    python bench/prepare.py [--n 89931] [--folder DIR]

Writes N 64x64 JPEG faces in the Udacity layout (processed_celeba_small/celeba/New Folder With Items/, once, into
--folder), then times facegan's first load (parallel decode into the cache), a second load (from the cache, what a
rerun pays before training starts), and a load after one file changed (the cache is rebuilt).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from PIL import Image  # noqa: E402

from facegan.data import load_images  # noqa: E402
from facegan.synthetic import draw_faces  # noqa: E402


def make_udacity_layout(root: Path, n: int) -> Path:
    inner = root / "processed_celeba_small" / "celeba" / "New Folder With Items"
    if inner.is_dir() and len(os.listdir(inner)) >= n:
        return root / "processed_celeba_small"
    inner.mkdir(parents=True, exist_ok=True)
    for start in range(0, n, 4096):
        for i, face in enumerate(draw_faces(min(4096, n - start), 64, seed=start), start=start + 1):
            Image.fromarray(face).save(inner / f"{i:06d}.jpg", quality=90)
    (inner / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return root / "processed_celeba_small"


def timed(label: str, data: Path) -> float:
    start = time.perf_counter()
    images = load_images(data, 32, progress=False)
    seconds = time.perf_counter() - start
    print(f"{label:<34}{seconds:>8.2f} s   {tuple(images.shape)}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=89_931)
    parser.add_argument("--folder", default=os.path.join(tempfile.gettempdir(), "facegan-udacity-like"))
    args = parser.parse_args()
    data = make_udacity_layout(Path(args.folder), args.n)
    os.environ["FACEGAN_CACHE"] = tempfile.mkdtemp(prefix="facegan-cache-")  # a cold cache
    print(f"{args.n} JPEGs of 64x64 in {data}; {os.cpu_count()} cores")
    timed("first load (decode + cache)", data)
    timed("second load (cache hit)", data)
    first = next((data / "celeba" / "New Folder With Items").glob("*.jpg"))
    os.utime(first)  # a changed source invalidates the cache
    timed("after a file changed (re-decode)", data)


if __name__ == "__main__":
    main()
