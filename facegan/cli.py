"""``facegan`` / ``python -m facegan``: train, sample, evaluate, explore and export from the command line.

Train flags are generated from ``TrainConfig``'s fields, so the CLI, the notebook and checkpoints share one
definition, and each flag's value is checked at parse time by ``TrainConfig.validate``'s own rule. Usage errors
(bad flags and values) exit 2 with argparse's usage line; anything else a user can cause exits 1 with one
``error: ...`` line.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
import warnings
from pathlib import Path

from .config import RECIPES, TrainConfig


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _checked(name: str, base: type):
    """An argparse type for field ``name``: converts with ``base``, then applies TrainConfig.validate's own rule
    for that field, so a bad value is a usage error (exit 2, the usage line) with validate's one-line reason."""
    def convert(text: str):
        value = base(text)  # a ValueError here is argparse's "invalid int value: ..."
        try:
            TrainConfig(**{name: value}).validate()
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return value
    convert.__name__ = base.__name__
    return convert


def _flag(field_name: str) -> str:
    """The command-line flag of a TrainConfig field: d_conv_dim -> --d-conv-dim."""
    return "--" + field_name.replace("_", "-")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = _flag(f.name)
        kind = hints[f.name]
        extra = {"choices": f.metadata["choices"]} if "choices" in f.metadata else {}
        help_text = f"{f.metadata['help']} (default: {f.default})"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            base = next(t for t in typing.get_args(kind) or (kind,) if t is not type(None))
            parser.add_argument(flag, type=_checked(f.name, base), default=None, help=help_text, **extra)
    # the familiar short name for the run length
    parser.add_argument("--n-epochs", dest="epochs", type=_checked("epochs", int), default=None,
                        help=argparse.SUPPRESS)


# what each named recipe is for; the flags of the short ones are written out from RECIPES, so the help cannot
# drift from them (seed sets every quality option explicitly, too many to list usefully)
_RECIPE_PURPOSE = {
    "facegan": "the defaults",
    "wide": "better faces per update at 1.6x the compute per update",
    "wide-r1-cr": "the best measured within twice the default's compute per update, at 1.9x",
    "wider-r1-cr": "the best measured, at 2.1x",
    "seed": "the Udacity seed notebook's plain method: batch 32, fp32, no EMA, none of the quality options",
}


def _recipes_help() -> str:
    def as_flags(settings: dict) -> str:
        return " ".join(_flag(name) + ("" if value is True else f" {value}")
                        for name, value in settings.items())
    described = []
    for name, settings in RECIPES.items():
        flags = f": {as_flags(settings)}" if settings and name != "seed" else ""
        described.append(f"{name} ({_RECIPE_PURPOSE[name]}{flags})")
    return "; ".join(described)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facegan", description="Train a DCGAN on faces and draw new ones.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train (or --resume) a run",
                                description="Train a DCGAN. Every flag maps to a field of facegan.TrainConfig.")
    _add_config_flags(train)
    train.add_argument("--recipe", choices=tuple(RECIPES), default=None,
                       help="start from a named recipe, then apply the other flags: " + _recipes_help())
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its checkpoint.pt (up to --epochs in all)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    sample = commands.add_parser("sample", help="draw faces from a trained generator")
    sample.add_argument("--checkpoint", required=True, help="a run's checkpoint.pt or a .safetensors export")
    sample.add_argument("--n", type=_positive_int, default=64, help="how many faces (default: 64)")
    sample.add_argument("--out", required=True, help="a .png path for one grid, or a folder for N single PNGs")
    sample.add_argument("--seed", type=int, default=0, help="latent seed (default: 0)")
    sample.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")

    evaluate = commands.add_parser("evaluate", help="FID and KID of a generator against real images (offline)")
    evaluate.add_argument("--checkpoint", required=True, help="a run's checkpoint.pt or a .safetensors export")
    evaluate.add_argument("--data", required=True, help="real images: a folder, a zip, or the Udacity download")
    evaluate.add_argument("--n", type=_positive_int, default=5000,
                          help="images of each side (default: 5000, or all real images if fewer)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed for the latents and the real subset")
    evaluate.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                          help="Inception arithmetic: fp32 (the reference), bf16 (about 2x faster on CPUs with bf16 "
                               "units, FID within about 1%%), or auto: bf16 on such CPUs, fp32 elsewhere "
                               "(default: auto)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")

    nearest = commands.add_parser(
        "nearest", help="is it copying? generated faces beside their nearest training images",
        description="For each of N generated faces, its K closest training images side by side: in Inception "
                    "feature space when the FID weights are installed, in pixel space otherwise.")
    nearest.add_argument("--checkpoint", required=True, help="a run's checkpoint.pt or a .safetensors export")
    nearest.add_argument("--data", required=True, help="the training images (folder, zip or synthetic)")
    nearest.add_argument("--out", required=True, help="the .png grid to write: a row per generated face")
    nearest.add_argument("--n", type=_positive_int, default=8, help="generated faces (default: 8)")
    nearest.add_argument("--k", type=_positive_int, default=5, help="neighbours per face (default: 5)")
    nearest.add_argument("--space", choices=("auto", "inception", "pixel"), default="auto",
                         help="where distances are measured (default: auto: inception if installed, else pixel)")
    nearest.add_argument("--seed", type=int, default=0, help="latent seed (default: 0)")
    nearest.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")

    directions = commands.add_parser(
        "directions", help="faces moved along the generator's main directions of variation (GANSpace)",
        description="Find the top K directions of the generator (principal components of its first layer's "
                    "activations over many latents, mapped back to the latent space) and draw one face moved along "
                    "each: a row per direction, STEPS columns from -REACH to +REACH spreads.")
    directions.add_argument("--checkpoint", required=True, help="a run's checkpoint.pt or a .safetensors export")
    directions.add_argument("--out", required=True, help="the .png grid to write: a row per direction")
    directions.add_argument("--k", type=_positive_int, default=5, help="directions (default: 5)")
    directions.add_argument("--steps", type=_positive_int, default=7, help="faces per direction (default: 7)")
    directions.add_argument("--reach", type=float, default=3.0, help="how far each way, in spreads (default: 3)")
    directions.add_argument("--seed", type=int, default=0, help="seed of the latents and the face (default: 0)")
    directions.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")

    export = commands.add_parser("export", help="export a checkpoint's generator to safetensors (no code inside)")
    export.add_argument("--checkpoint", required=True, help="a run's checkpoint.pt")
    export.add_argument("--out", required=True, help="where to write the .safetensors file")

    exercise = commands.add_parser(
        "exercise", help="write the learner's edition of the notebook (answers replaced by stubs)",
        description="Write the student edition of the notebook, the same one nbgrader's generate_assignment "
                    "releases: every answer between nbgrader's solution markers replaced by '# YOUR CODE HERE' + "
                    "'raise NotImplementedError()' (markdown: 'YOUR ANSWER HERE'), outputs cleared, graded and "
                    "read-only cells locked.")
    exercise.add_argument("out", metavar="OUT.ipynb", help="where to write the exercise notebook")
    exercise.add_argument("--notebook", default="dlnd_face_generation.ipynb",
                          help="the solved notebook (default: dlnd_face_generation.ipynb in this folder)")
    return parser


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """``base`` (default: the --recipe's config, or TrainConfig()) with every flag the user gave laid over it."""
    if base is None:
        base = TrainConfig.recipe(args.recipe) if getattr(args, "recipe", None) else TrainConfig()
    values = base.to_dict()
    values.update({f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                   if getattr(args, f.name, None) is not None})
    return TrainConfig.from_dict(values)


def _train(args) -> int:
    from . import distributed
    from .checkpoint import config_of, load_checkpoint
    config = config_from_args(args)
    if args.resume:
        # a resumed run keeps its stored recipe; the flags given now override it (Trainer.resume checks shapes)
        path = Path(config.out) / "checkpoint.pt"
        if path.is_file():
            config = config_from_args(args, config_of(load_checkpoint(path)))
    world = distributed.setup(config.device)  # several processes when started by torchrun
    try:
        # the Trainer (and with it DDP's hold on the process group) is garbage once _run_training returns, so
        # that teardown can end gloo's threads while the interpreter is alive (see distributed.teardown)
        report = _run_training(config, args, world)
        # rank 0 still draws the loss plot after the last step: the others wait for it, so that no process starts
        # tearing down gloo while a peer still uses the connection
        distributed.barrier()
    finally:
        distributed.teardown()
    if report:
        print(report)
    return 0


def _run_training(config, args, world) -> str:
    """Train; what rank 0 prints at the end (nothing on the other ranks)."""
    from .train import Trainer
    trainer = Trainer(config, progress=not args.quiet)
    if args.resume:
        trainer.resume()
    result = trainer.run()
    if not world.main:
        return ""
    d, g = result.losses[-1] if result.losses else (float("nan"), float("nan"))
    processes = f" on {world.size} processes" if world.distributed else ""
    state = trainer.state
    report = (f"{result.stopped}: epoch {state.epoch}/{config.epochs}, step {state.step}, d_loss {d:.3f}, "
              f"g_loss {g:.3f}, {result.images_per_second:.0f} images/s{processes}; run in {config.out}/")
    return report + (f"\n{result.threads}" if trainer.device.type == "cpu" else "")


def main(argv: list[str] | None = None) -> int:
    from .errors import CheckpointError, DataError, MetricsUnavailable, TrainingError
    from .rundir import write_failure
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train" and args.resume and args.recipe:
        parser.error("--recipe starts a new run; a resumed run keeps the recipe stored in its checkpoint: drop "
                     "--recipe, or use a new --out")
    warnings.formatwarning = lambda message, category, *rest: f"warning: {message}\n"
    try:
        from . import commands
        handlers = {"train": _train, "sample": commands.sample, "evaluate": commands.evaluate,
                    "nearest": commands.nearest, "directions": commands.directions, "export": commands.export,
                    "exercise": commands.exercise}
        return handlers[args.command](args)
    except (DataError, CheckpointError, TrainingError, MetricsUnavailable, ValueError, OSError) as e:
        failure = write_failure(e, getattr(args, "out", None) or e.filename or ".") if isinstance(e, OSError) else None
        if failure:  # every write is atomic: what was there before is as it was
            message = f"{failure}: nothing that was there before was changed; free some space and run it again"
        elif isinstance(e, OSError) and e.strerror and e.filename:
            message = f"{e.strerror}: '{e.filename}'"
        else:
            message = str(e)
        print(f"error: {message}", file=sys.stderr)
        return 1
    except (RuntimeError, MemoryError) as e:  # out of memory outside the training loop (building the networks)
        from .devices import is_out_of_memory
        if not (isinstance(e, MemoryError) or is_out_of_memory(e)):
            raise
        print("error: out of memory: lower --batch-size, --image-size or the network widths (--d-conv-dim, "
              "--g-conv-dim), or --n for sample and evaluate", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
