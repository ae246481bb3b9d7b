"""The two framings the quality benches cut from aligned CelebA, side by side: a grid of the same faces in each,
and each framing's real-vs-real FID, the floor under any generator's score there.

    python bench/framings.py --data ../shared/data/celeba_aligned_10k.zip --grids assets

Writes framing_<name>.png to --grids (the first 32 faces, 64x64, as the benches store them) and prints, per
framing, its box in aligned CelebA's 178x218 frame and its floors: the held-out faces' two halves against each
other, and as many training faces as held-out ones against the held-out set.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
from common import FRAMINGS, framing_box  # noqa: E402
from quality import prepare, real_floors, remove_folders  # noqa: E402

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.transforms.functional import pil_to_tensor  # noqa: E402

from facegan.images import save_grid  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="aligned CelebA (folder or zip), e.g. celeba_aligned_10k.zip")
    parser.add_argument("--grids", default="assets", help="folder for the grids (default: assets)")
    parser.add_argument("--eval-n", type=int, default=2000, help="held-out faces (default: 2000, as the benches)")
    args = parser.parse_args(argv)
    Path(args.grids).mkdir(parents=True, exist_ok=True)
    for framing in FRAMINGS:
        data = prepare(args.data, args.eval_n, seed_files=False, framing=framing)
        first = sorted(Path(data.folder, "faces").iterdir())[:32]
        crops = torch.stack([pil_to_tensor(Image.open(file).convert("RGB")) for file in first])
        path = Path(args.grids) / f"framing_{framing}.png"
        save_grid(crops.float() / 127.5 - 1, path, nrow=8)
        halves, training = real_floors(data)
        remove_folders(data)
        print(f"{framing}: box {framing_box(framing, 178, 218)} of 178x218; floor (real vs real FID): held-out "
              f"halves {halves:.2f}, {args.eval_n} training faces {training:.2f}; grid {path}")


if __name__ == "__main__":
    main()
