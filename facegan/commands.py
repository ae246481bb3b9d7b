"""The commands that read a trained generator (sample, evaluate, nearest, directions, export) and the one that
writes the learner's notebook (exercise): each takes the parsed arguments of ``python -m facegan`` (facegan.cli)."""
from __future__ import annotations

import sys
from pathlib import Path


def sample(args) -> int:
    import torch

    from .checkpoint import load_generator
    from .devices import pick_device
    from .images import save_grid, save_png, to_uint8
    from .models import sample_latent
    from .precision import autocast
    device = pick_device(args.device)
    G, config = load_generator(args.checkpoint, device)
    z = sample_latent(args.n, config.z_size, config.latent, generator=torch.Generator().manual_seed(args.seed))
    with torch.no_grad(), autocast(device, config.precision):
        images = torch.cat([G(chunk.to(device)).float().cpu() for chunk in z.split(256)])
    out = Path(args.out)
    if out.suffix.lower() == ".png":
        out.parent.mkdir(parents=True, exist_ok=True)
        save_grid(images, out)
        print(f"wrote a grid of {args.n} faces to {out}")
    else:
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"--out '{out}' is a file: give a .png name for a grid, or a folder")
        out.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(to_uint8(images)):
            save_png(image, out / f"{i:05d}.png")
        print(f"wrote {args.n} faces to {out}/")
    return 0


def evaluate(args) -> int:
    from .checkpoint import load_generator
    from .data import find_images, load_images
    from .devices import pick_device
    from .metrics import evaluate as score
    if args.n < 2:  # checked before any loading: FID needs two images to have a covariance
        raise ValueError("--n must be at least 2 for FID")
    device = pick_device(args.device)
    G, config = load_generator(args.checkpoint, device)
    real = load_images(args.data, config.image_size, progress=sys.stderr.isatty())
    key = f"{find_images(args.data).fingerprint()}|seed={args.seed}"
    scores = score(G, real, key=key, z_size=config.z_size, latent=config.latent, n=args.n, seed=args.seed,
                      device=device, precision=args.precision, progress=sys.stderr.isatty())
    print(scores)
    return 0


def nearest(args) -> int:
    import torch

    from .checkpoint import load_generator
    from .data import find_images, load_images
    from .devices import pick_device
    from .images import quantize, save_grid
    from .models import sample_latent
    from .nearest import nearest_neighbours, neighbour_grid
    from .precision import autocast
    if not args.out.lower().endswith(".png"):
        raise ValueError(f"--out '{args.out}' must be a .png file: the grid of faces and their neighbours")
    device = pick_device(args.device)
    G, config = load_generator(args.checkpoint, device)
    training = load_images(args.data, config.image_size, progress=sys.stderr.isatty())
    z = sample_latent(args.n, config.z_size, config.latent, generator=torch.Generator().manual_seed(args.seed))
    with torch.no_grad(), autocast(device, config.precision):
        generated = quantize(G(z.to(device)))
    key = f"{find_images(args.data).fingerprint()}|{config.image_size}"
    found = nearest_neighbours(generated, training, k=args.k, space=args.space, device=device, cache_key=key,
                               progress=sys.stderr.isatty())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_grid(neighbour_grid(generated, training, found), args.out, nrow=found.index.shape[1] + 1)
    print(f"wrote {args.out}: {args.n} generated faces (left) and their {found.index.shape[1]} nearest of "
          f"{len(training)} training images; {found.summary()}")
    return 0


def directions(args) -> int:
    import torch

    from .checkpoint import load_generator
    from .devices import pick_device
    from .directions import direction_grid, find_directions, strength
    from .images import save_grid
    from .models import sample_latent
    if not args.out.lower().endswith(".png"):
        raise ValueError(f"--out '{args.out}' must be a .png file: the grid of faces moved along each direction")
    G, config = load_generator(args.checkpoint, pick_device(args.device))
    found = find_directions(G, config.z_size, k=args.k, latent=config.latent, seed=args.seed)
    z = sample_latent(1, config.z_size, config.latent, generator=torch.Generator().manual_seed(args.seed))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_grid(direction_grid(G, found, z[0], steps=args.steps, reach=args.reach), args.out, nrow=args.steps)
    print(f"wrote {args.out}: a row per direction, the first moving the generator's first layer most; columns "
          f"from -{args.reach:g} to +{args.reach:g} spreads of the latents along it")
    per_direction, random = strength(G, found, config.z_size, latent=config.latent, seed=args.seed)
    print("how much each changes 256 faces (mean |pixel difference| between -2 and +2 spreads), against random "
          f"directions of the same length ({random:.4f}): " + ", ".join(
              f"{i + 1}: {value:.4f} ({value / random:.1f}x)" for i, value in enumerate(per_direction.tolist())))
    return 0


def export(args) -> int:
    from .checkpoint import export_generator
    export_generator(args.checkpoint, args.out)
    print(f"wrote the generator to {args.out}")
    return 0


def exercise(args) -> int:
    from .exercise import write_exercise
    stubs = write_exercise(args.notebook, args.out)
    print(f"wrote {args.out}: {stubs} answers replaced by stubs; run it top to bottom and each grader says what "
          "to write next")
    return 0
