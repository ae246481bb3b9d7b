"""What every grader shares: the verdict (GraderFailure), calling the learner's code so that any exception it
raises comes back as a message naming its likely cause, and small checks of tensors and modules."""
from __future__ import annotations

import copy
import inspect

import torch
from torch import nn


def grading_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class GraderFailure(AssertionError):
    """A grader's verdict (never mistaken for an error raised by the learner's own code)."""


def check(condition: bool, expected: str, found: str, hint: str) -> None:
    if not condition:
        raise GraderFailure(f"\n  expected: {expected}\n  found:    {found}\n  check:    {hint}")


def passed() -> None:
    print("Tests Passed")


# ---------------------------------------------------------------- calling the learner's code
ERROR_HINTS = (
    # (text in the error message, what to check)
    (("Torch not compiled with CUDA", "no NVIDIA driver", "no CUDA GPUs", "CUDA driver", "cuda runtime error",
      "CUDA-capable device"),
     ".cuda() (or device='cuda') was used on a machine without a GPU: move tensors with .to(device), or guard the "
     "call with `if train_on_gpu:` where train_on_gpu = torch.cuda.is_available()"),
    (("should be between 0 and 1",),
     "nn.BCELoss / F.binary_cross_entropy was given logits: the Discriminator returns logits (no sigmoid), so use "
     "nn.BCEWithLogitsLoss, which applies the sigmoid itself"),
    (("same device", "Expected all tensors to be on"),
     "tensors on different devices: create labels on the input's device (torch.ones(n, device=D_out.device)) or "
     "move them with .to(device)"),
    (("Target size", "must be the same size", "doesn't match the broadcast shape"),
     "the output and the labels have different shapes: D returns (batch, 1), so squeeze it to (batch,) or make "
     "the labels (batch, 1)"),
    (("cannot be multiplied", "is invalid for input of size", "size mismatch"),
     "a layer's size does not match its input: check the flattened size (channels x height x width) against "
     "nn.Linear's in_features, and the shape given to view()/reshape()"),
    (("view size is not compatible",),
     "view() needs a contiguous tensor: use x.flatten(1) or x.reshape(...) instead"),
    (("Expected 4D", "Expected 3D (unbatched) or 4D", "expected 4D input"),
     "convolutions take (batch, channels, height, width): reshape the fc output before the first transposed conv"),
)


def describe_error(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def call_learner(what: str, function, *args, todo: str = "", **kwargs):
    """``function(*args, **kwargs)``; an exception from the learner's code becomes a grader message."""
    try:
        return function(*args, **kwargs)
    except GraderFailure:
        raise
    except NotImplementedError:
        raise GraderFailure(f"\n  expected: {what} to run\n  found:    not implemented yet (NotImplementedError)\n"
                            f"  check:    {todo or 'replace `raise NotImplementedError()` with your code'}") from None
    except Exception as e:  # noqa: BLE001 - any error in the learner's code is reported, never re-raised
        text = str(e)
        hint = next((h for needles, h in ERROR_HINTS if any(n.lower() in text.lower() for n in needles)),
                    "run it yourself in a cell to see the full traceback, and fix the line it points at")
        raise GraderFailure(f"\n  expected: {what} to run\n  found:    it raised {describe_error(e)}\n"
                            f"  check:    {hint}") from None


def accepts_second_argument(function) -> bool:
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters)


def as_float(value) -> float:
    return float(torch.as_tensor(value.detach() if torch.is_tensor(value) else value).float().cpu())


# ---------------------------------------------------------------- the networks
def amplify_last_layer(model: nn.Module, factor: float = 1000.0) -> nn.Module:
    """A copy whose last parametrised layer is scaled up: raw outputs then reach far beyond [0, 1] / [-1, 1],
    unless a squashing function (sigmoid, tanh) sits after that layer."""
    model = copy.deepcopy(model)
    last = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))][-1]
    with torch.no_grad():
        for p in last.parameters(recurse=False):
            p.mul_(factor)
    return model


def all_finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def spread(t: torch.Tensor) -> float:
    return float((t.max() - t.min()).abs()) if t.numel() else 0.0


def build_model(cls, args: tuple, label: str, todo: str) -> nn.Module:
    model = call_learner(f"{label}{args}", cls, *args, todo=todo)
    check(isinstance(model, nn.Module), "an nn.Module", type(model).__name__, f"{label} must subclass nn.Module")
    return call_learner(f"{label}{args}.to({grading_device().type})", model.to, grading_device())
