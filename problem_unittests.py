"""Graders for dlnd_face_generation.ipynb, compatible with the Udacity originals.

Each ``test_*`` checks one step of the notebook on your implementation. It prints ``Tests Passed`` when the step
is right, and otherwise raises AssertionError saying what was expected, what was found, and what to check.

The graders accept every solution the course allows (label smoothing on or off, cross-entropy or least-squares
losses, biases zeroed or left alone, BatchNorm at PyTorch's defaults, ``train_on_gpu``-style device handling) and
look for the bugs that actually break a GAN. An exception raised by your code never escapes as a bare traceback:
it comes back as a grader message naming what was called and what to check.
"""
from __future__ import annotations

import copy
import inspect
import math

import torch
from torch import nn
from torch.nn import functional as F


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class GraderFailure(AssertionError):
    """A grader's verdict (never mistaken for an error raised by the learner's own code)."""


def _check(condition: bool, expected: str, found: str, hint: str) -> None:
    if not condition:
        raise GraderFailure(f"\n  expected: {expected}\n  found:    {found}\n  check:    {hint}")


def _passed() -> None:
    print("Tests Passed")


# ---------------------------------------------------------------- calling the learner's code
_ERROR_HINTS = (
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


def _describe(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _call(what: str, function, *args, todo: str = "", **kwargs):
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
        hint = next((h for needles, h in _ERROR_HINTS if any(n.lower() in text.lower() for n in needles)),
                    "run it yourself in a cell to see the full traceback, and fix the line it points at")
        raise GraderFailure(f"\n  expected: {what} to run\n  found:    it raised {_describe(e)}\n"
                       f"  check:    {hint}") from None


def _accepts_second_argument(function) -> bool:
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters)


def _float(value) -> float:
    return float(torch.as_tensor(value.detach() if torch.is_tensor(value) else value).float().cpu())


# ---------------------------------------------------------------- the networks
def _amplify_last_layer(model: nn.Module, factor: float = 1000.0) -> nn.Module:
    """A copy whose last parametrised layer is scaled up: raw outputs then reach far beyond [0, 1] / [-1, 1],
    unless a squashing function (sigmoid, tanh) sits after that layer."""
    model = copy.deepcopy(model)
    last = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))][-1]
    with torch.no_grad():
        for p in last.parameters(recurse=False):
            p.mul_(factor)
    return model


def _finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def _spread(t: torch.Tensor) -> float:
    return float((t.max() - t.min()).abs()) if t.numel() else 0.0


def _build(cls, args: tuple, label: str, todo: str) -> nn.Module:
    model = _call(f"{label}{args}", cls, *args, todo=todo)
    _check(isinstance(model, nn.Module), "an nn.Module", type(model).__name__, f"{label} must subclass nn.Module")
    return _call(f"{label}{args}.to({_device().type})", model.to, _device())


def test_discriminator(Discriminator):
    """``Discriminator(10)`` maps (50, 3, 32, 32) images in [-1, 1] to (50, 1) unbounded logits that depend on
    the images, on any device."""
    batch_size, conv_dim = 50, 10
    todo = "write Discriminator.__init__ (the layers) and forward (images -> one logit per image)"
    D = _build(Discriminator, (conv_dim,), "Discriminator", todo)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(batch_size, 3, 32, 32, generator=g) * 2 - 1).to(_device())
    other = (torch.rand(batch_size, 3, 32, 32, generator=g) * 2 - 1).to(_device())
    with torch.no_grad():
        out = _call("D(images)", D, x, todo=todo)
        _check(torch.is_tensor(out), "a tensor of logits", type(out).__name__, "forward must return a tensor")
        _check(tuple(out.shape) == (batch_size, 1), f"output shape {(batch_size, 1)}", f"{tuple(out.shape)}",
               "the last layer should produce ONE value per image: flatten the last conv and use "
               "nn.Linear(..., 1)")
        _check(_finite(out), "finite outputs", "NaN or inf", "check the forward pass for divisions or logs")
        _check(out.device.type == x.device.type, f"output on {x.device.type}", f"{out.device}",
               "create tensors inside forward() on the input's device")
        _check(_spread(out) > 1e-6, "one logit per image that depends on the image (in training mode)",
               f"the same output {float(out[0]):.4f} for 50 different images",
               "D ignores its input: look for a Dropout(p=1.0) or a layer that zeroes the features before fc")
        D.eval()
        out_eval = _call("D(images) in eval mode", D, x)
        out_other = _call("D(images) in eval mode", D, other)
        D.train()
        _check(_spread(out_eval) > 1e-6 and not torch.allclose(out_eval, out_other),
               "logits that depend on the images (in eval mode)",
               "the same output for different images", "D must compute its logit from the input images")
        big = _call("D(images) with its last layer scaled", _amplify_last_layer(D), x)
    _check(big.min() < -0.01 or big.max() > 1.01, "unbounded logits (no sigmoid at the end)",
           f"outputs stay in [0, 1] even with the last layer scaled x1000 (range {big.min():.3f}..{big.max():.3f})",
           "remove the final sigmoid: the template's real_loss/fake_loss expect logits (BCEWithLogitsLoss applies "
           "the sigmoid itself, in a numerically stable way)")
    _passed()


def test_generator(Generator):
    """``Generator(25, 10)`` maps (50, 25) latents to (50, 3, 32, 32) images in [-1, 1] (a tanh output) that are a
    function of ``z``."""
    batch_size, z_size, conv_dim = 50, 25, 10
    todo = "write Generator.__init__ (fc and transposed convs) and forward (z -> images in [-1, 1])"
    G = _build(Generator, (z_size, conv_dim), "Generator", todo)
    g = torch.Generator().manual_seed(0)
    z = (torch.rand(batch_size, z_size, generator=g) * 2 - 1).to(_device())
    other = (torch.rand(batch_size, z_size, generator=g) * 2 - 1).to(_device())
    with torch.no_grad():
        out = _call("G(z)", G, z, todo=todo)
        _check(torch.is_tensor(out), "a tensor of images", type(out).__name__, "forward must return a tensor")
        _check(tuple(out.shape) == (batch_size, 3, 32, 32), f"output shape {(batch_size, 3, 32, 32)}",
               f"{tuple(out.shape)}", "reshape the fc output to (batch, channels, 4, 4) or (2, 2) and upsample x2 "
               "per transposed conv until 32x32, ending in 3 channels")
        _check(_finite(out), "finite outputs", "NaN or inf", "check the forward pass")
        _check(out.min() >= -1 and out.max() <= 1, "values in [-1, 1]", f"range {out.min():.3f}..{out.max():.3f}",
               "end the generator with torch.tanh so its images match real images scaled to [-1, 1]")
        G.eval()  # BatchNorm's running statistics and no dropout: G(z) must then be a fixed function of z
        first, again, moved = (_call("G(z) in eval mode", G, v) for v in (z, z, other))
        G.train()
        _check(torch.allclose(first, again, atol=1e-5), "the same images for the same z (in eval mode)",
               f"images that differ by up to {float((first - again).abs().max()):.3f} for the same z",
               "G must be a function of z: use the z passed to forward, don't draw noise inside it")
        _check(not torch.allclose(first, moved, atol=1e-6), "images that change with z",
               "the same images for different z", "G ignores its input: compute the images from z, starting "
                                                   "with self.fc(z)")
        big = _call("G(z) with its last layer scaled", _amplify_last_layer(G), z)
    _check(big.min() >= -1 and big.max() <= 1 and big.min() < -0.5, "a tanh output layer (range [-1, 1] "
           "whatever the last layer's scale)", f"range {big.min():.3f}..{big.max():.3f} with the last layer "
           "scaled x1000", "apply torch.tanh (not sigmoid, not nothing) to the last transposed conv's output")
    _passed()


# ---------------------------------------------------------------- data
def test_dataloader(loader, image_size: int = 32, batch_size: int | None = None):
    """A DataLoader of (images, labels): float images in [0, 1], shape (batch, 3, image_size, image_size),
    shuffled."""
    batch = _call("next(iter(loader))", lambda: next(iter(loader)), todo="return a DataLoader from get_dataloader")
    _check(isinstance(batch, (tuple, list)) and len(batch) == 2, "(images, labels) batches",
           f"{type(batch).__name__}", "ImageFolder-style datasets yield (image, label) pairs")
    images, labels = batch
    expected_batch = batch_size or loader.batch_size
    _check(tuple(images.shape[1:]) == (3, image_size, image_size), f"images of shape (3, {image_size}, "
           f"{image_size})", f"{tuple(images.shape[1:])}", "resize to image_size and keep 3 RGB channels")
    _check(images.shape[0] == expected_batch, f"batches of {expected_batch}", f"{images.shape[0]}",
           "pass batch_size to the DataLoader")
    _check(images.dtype == torch.float32, "float32 images", f"{images.dtype}", "use transforms.ToTensor()")
    _check(images.min() >= 0 and images.max() <= 1, "values in [0, 1] (scale() maps them to [-1, 1] later)",
           f"range {images.min():.3f}..{images.max():.3f}", "don't normalise in the loader: ToTensor gives [0, 1]")
    _check(images.std() > 0.01, "varied pixel values", f"std {images.std():.4f}", "are the images blank?")
    _check(isinstance(loader.sampler, torch.utils.data.RandomSampler), "shuffle=True",
           type(loader.sampler).__name__, "pass shuffle=True to the DataLoader")
    _check(len(labels) == images.shape[0], "one label per image", f"{len(labels)} labels", "return (image, label)")
    _passed()


def test_get_dataloader(get_dataloader, data_dir, image_size: int = 32, batch_size: int = 16):
    """``get_dataloader(batch_size, image_size, data_dir)`` returns a loader that passes ``test_dataloader``."""
    loader = _call(f"get_dataloader({batch_size}, {image_size}, {str(data_dir)!r})", get_dataloader, batch_size,
                   image_size, data_dir, todo="write get_dataloader: load the images, resize them to image_size, "
                                               "and return a shuffling DataLoader of (images in [0, 1], labels)")
    test_dataloader(loader, image_size, batch_size)


def test_scale(scale):
    """``scale(x, feature_range=(-1, 1))`` maps [0, 1] linearly onto ``feature_range``, the same for every batch."""
    todo = "write scale: x * (max - min) + min, with (min, max) = feature_range"
    x = torch.linspace(0, 1, 11).view(1, 1, 1, 11).repeat(2, 3, 4, 1)
    y = _call("scale(x)", scale, x.clone(), todo=todo)
    _check(torch.is_tensor(y) and tuple(y.shape) == tuple(x.shape), f"a tensor of shape {tuple(x.shape)}",
           f"{type(y).__name__} {tuple(getattr(y, 'shape', ()))}", "scale element-wise and return the result")
    _check(math.isclose(float(y.min()), -1, abs_tol=1e-5) and math.isclose(float(y.max()), 1, abs_tol=1e-5),
           "range [-1, 1]", f"range {float(y.min()):.3f}..{float(y.max()):.3f}",
           "x * (max - min) + min with feature_range=(-1, 1)")
    _check(torch.allclose(y[0, 0, 0], torch.linspace(-1, 1, 11), atol=1e-5), "a linear map (0.5 -> 0)",
           f"{[round(v, 3) for v in y[0, 0, 0].tolist()]}", "use a linear map, no clamping or squashing")
    part = torch.tensor([0.25, 0.5, 0.75]).view(1, 1, 1, 3)
    y = _call("scale(x)", scale, part.clone())
    _check(torch.allclose(y.flatten(), torch.tensor([-0.5, 0.0, 0.5]), atol=1e-5),
           "the same map for every batch: 0.25 -> -0.5, 0.5 -> 0, 0.75 -> 0.5",
           f"{[round(v, 3) for v in y.flatten().tolist()]} for a batch that spans only [0.25, 0.75]",
           "don't use the batch's own min and max: ToTensor already gives [0, 1], so map 0 -> min and 1 -> max")
    if _accepts_second_argument(scale):
        for low, high in ((0.0, 1.0), (-2.0, 3.0)):
            y = _call(f"scale(x, ({low:g}, {high:g}))", scale, x.clone(), (low, high))
            want = torch.linspace(low, high, 11)
            _check(torch.allclose(y[0, 0, 0], want, atol=1e-5), f"feature_range=({low:g}, {high:g}) maps [0, 1] "
                   f"onto [{low:g}, {high:g}]", f"{[round(v, 3) for v in y[0, 0, 0].tolist()]}",
                   "use feature_range's min and max instead of hard-coding -1 and 1")
    _passed()


# ---------------------------------------------------------------- initialisation
def test_weights_init(weights_init_normal):
    """Conv, transposed conv and linear weights ~ N(0, 0.02); biases set to 0 or left alone; BatchNorm left near
    a scale of 1."""
    torch.manual_seed(0)
    # small fan-ins, so PyTorch's default initialisation (std 1/sqrt(3 fan_in)) is far from 0.02
    net = nn.Sequential(nn.Conv2d(8, 64, 3), nn.BatchNorm2d(64), nn.ConvTranspose2d(64, 4, 4),
                        nn.Linear(32, 256))
    before = copy.deepcopy(net.state_dict())
    _call("net.apply(weights_init_normal)", net.apply, weights_init_normal,
          todo="write weights_init_normal: N(0, 0.02) weights for Conv2d, ConvTranspose2d and Linear layers")
    for index in (0, 2, 3):
        layer, name = net[index], type(net[index]).__name__
        w = layer.weight.detach()
        untouched = torch.equal(w, before[f"{index}.weight"])
        _check(not untouched, f"{name} weights drawn from N(0, 0.02)", "PyTorch's default initialisation, untouched",
               "match Conv, ConvTranspose and Linear layers (by class name or isinstance) and initialise them with "
               "nn.init.normal_(m.weight, 0.0, 0.02)")
        _check(abs(float(w.std()) - 0.02) < 0.002, f"{name} weights with std 0.02", f"std {float(w.std()):.4f}",
               "the DCGAN paper uses a standard deviation of 0.02: nn.init.normal_(m.weight, 0.0, 0.02)")
        _check(abs(float(w.mean())) < 0.003, f"{name} weights with mean 0", f"mean {float(w.mean()):.4f}",
               "initialise with nn.init.normal_(m.weight, 0.0, 0.02)")
        bias = layer.bias.detach()
        _check(bool((bias == 0).all()) or torch.equal(bias, before[f"{index}.bias"]) or
               float(bias.abs().max()) <= 0.1, f"{name} biases set to 0 or left alone",
               f"biases up to {float(bias.abs().max()):.3f} in size",
               "the bias terms may be left alone or set to 0 (nn.init.zeros_(m.bias))")
    bn_weight, bn_bias = net[1].weight.detach(), net[1].bias.detach()
    _check(abs(float(bn_weight.mean()) - 1) < 0.05 and float(bn_weight.std()) < 0.05,
           "BatchNorm weights near 1 (PyTorch's default, or N(1, 0.02))",
           f"mean {float(bn_weight.mean()):.3f}, std {float(bn_weight.std()):.3f}",
           "don't initialise BatchNorm like a conv: its weight scales the normalised features and must stay near "
           "1 (N(0, 0.02) shrinks every activation ~50x and the generator's samples come out nearly identical)")
    _check(float(bn_bias.abs().max()) < 0.1, "BatchNorm biases near 0", f"max |bias| {float(bn_bias.abs().max()):.3f}",
           "leave BatchNorm's bias at 0")
    # layers built with bias=False (as in the seed networks) have m.bias = None
    bare = nn.Sequential(nn.Conv2d(8, 16, 3, bias=False), nn.ConvTranspose2d(16, 4, 4, bias=False))
    try:
        bare.apply(weights_init_normal)
        error = None
    except Exception as e:  # noqa: BLE001
        error = _describe(e)
    _check(error is None, "weights_init_normal to handle layers built with bias=False", f"it raised {error}",
           "such layers have m.bias = None: touch the bias only `if m.bias is not None`")
    _passed()


# ---------------------------------------------------------------- losses
_LOGITS = (-3.0, -1.5, -0.5, 0.5, 1.5, 3.0)


def _loss_family(values: list[float]) -> tuple[str, float] | None:
    """Which of the allowed losses produced ``values`` at ``_LOGITS`` (a batch of identical logits each), and
    its target t: cross-entropy of the logits (softplus(x) - t x), least squares of the logits ((x - t)^2), or
    least squares of the probabilities ((sigmoid(x) - t)^2). Each family gives t from the difference of the loss
    at x and -x; the family is the one whose t reproduces every value. None when it is none of them."""
    x = torch.tensor(_LOGITS, dtype=torch.float64)
    loss = torch.tensor(values, dtype=torch.float64)
    half = len(_LOGITS) // 2  # _LOGITS holds -a, ..., +a: pair each x > 0 with -x
    a, diff = x[half:], loss[half:] - loss[:half].flip(0)
    p = torch.sigmoid(x)
    families = {
        "cross-entropy": ((1 - diff / a) / 2, lambda t: F.softplus(x) - t * x),
        "least squares": (-diff / (4 * a), lambda t: (x - t) ** 2),
        "least squares of sigmoid(D_out)": ((1 - diff / (2 * torch.sigmoid(a) - 1)) / 2, lambda t: (p - t) ** 2),
    }
    for family, (targets, model) in families.items():
        target = float(targets.median())
        if torch.allclose(model(target), loss, rtol=1e-3, atol=1e-4):
            return family, target
    return None


def _label(target: float) -> str:
    return f"{round(target, 3) + 0.0:.3f}"  # + 0.0 turns -0.0 into 0.0


def _probe_loss(loss_fn, name: str, todo: str) -> tuple[str, float]:
    device, call = _device(), name if "(" in name else f"{name}(D_out)"
    values = []
    for x in _LOGITS:
        D_out = torch.full((8, 1), x, device=device, requires_grad=True)
        loss = _call(call, loss_fn, D_out, todo=todo)
        _check(torch.is_tensor(loss) and loss.numel() == 1, f"{call} returns a one-element tensor",
               f"{type(loss).__name__} {tuple(getattr(loss, 'shape', ()))}",
               "average the loss over the batch (a mean) and return the tensor, not .item()")
        _check(loss.requires_grad, f"{name} keeps the graph, so that backward() reaches D",
               "a result without gradient", "don't call .item(), .detach() or .data on the way")
        if x == 0.5:  # every allowed loss has a slope there
            grad, = torch.autograd.grad(loss.sum(), D_out)
            _check(float(grad.abs().sum()) > 0, f"{name} that depends on D_out", "a zero gradient",
                   "compute the loss from D_out")
        values.append(_float(loss))
    double = _float(_call(call, loss_fn, torch.full((16, 1), _LOGITS[1], device=device)))
    _check(math.isclose(double, values[1], rel_tol=1e-3, abs_tol=1e-5),
           f"{name} averaged over the batch (the same value for 8 and 16 equal logits)",
           f"{values[1]:.4f} for 8 logits, {double:.4f} for 16", "use a mean, not a sum")
    found = _loss_family(values)
    _check(found is not None, f"{name} = cross-entropy or least squares of the logits, averaged over the batch",
           f"values {[round(v, 3) for v in values]} at logits {list(_LOGITS)}",
           "use nn.BCEWithLogitsLoss (D returns logits) or a least-squares loss, e.g. torch.mean((D_out - 1)**2)")
    return found


def test_losses(real_loss, fake_loss):
    """``real_loss`` and ``fake_loss``: cross-entropy on logits or least squares, averaged over the batch. The real
    target is 1, or anything in [0.8, 1] with label smoothing (on always, by default, or through a ``smooth``
    argument); the fake target is 0."""
    real_family, real_target = _probe_loss(real_loss, "real_loss", "write real_loss: the loss of D's logits "
                                                                   "against the label 'real' (1)")
    _check(0.8 - 1e-3 <= real_target <= 1 + 1e-3, "real_loss with real images labelled 1 (0.8 to 1 with label "
           "smoothing)", f"label {_label(real_target)}", "real images are labelled 1 (or 0.9 with smoothing), fake 0")
    if _accepts_second_argument(real_loss):
        smoothed = (lambda D_out: real_loss(D_out, smooth=True)) if "smooth" in _parameter_names(real_loss) \
            else (lambda D_out: real_loss(D_out, True))
        _, smooth_target = _probe_loss(smoothed, "real_loss(D_out, smooth=True)", "")
        _check(0.8 - 1e-3 <= smooth_target <= 1 + 1e-3, "real_loss(D_out, smooth=True) with real labels in "
               "[0.8, 1]", f"label {_label(smooth_target)}", "with smooth=True the real labels are 0.9 (label smoothing)")
    fake_family, fake_target = _probe_loss(fake_loss, "fake_loss", "write fake_loss: the loss of D's logits "
                                                                   "against the label 'fake' (0)")
    low = -1 - 1e-3 if fake_family.startswith("least squares") else -1e-3
    _check(low <= fake_target <= 0.2, "fake_loss with fake images labelled 0", f"label {_label(fake_target)}",
           "fake images are labelled 0 (real ones 1)")
    _check(real_family == fake_family, "the same kind of loss for real and fake images",
           f"real_loss is {real_family}, fake_loss is {fake_family}", "use one loss for both")
    _passed()


def _parameter_names(function) -> list[str]:
    try:
        return list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return []


# ---------------------------------------------------------------- optimizers and the training step
def test_optimizers(d_optimizer, g_optimizer, D, G):
    """Each optimizer updates exactly its own network's parameters, with a sensible learning rate."""
    for name, optimizer, net, other in (("d_optimizer", d_optimizer, D, G), ("g_optimizer", g_optimizer, G, D)):
        net_name, other_name = ("D", "G") if net is D else ("G", "D")
        _check(isinstance(optimizer, torch.optim.Optimizer), f"{name} a torch.optim optimizer",
               type(optimizer).__name__, f"{name} = optim.Adam({net_name}.parameters(), lr, betas=(beta1, beta2))")
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        mine, theirs = {id(p) for p in net.parameters()}, {id(p) for p in other.parameters()}
        _check(not owned & theirs, f"{name} over {net_name}'s parameters only",
               f"{len(owned & theirs)} of {other_name}'s parameters", f"build {name} from {net_name}.parameters()")
        _check(owned == mine, f"{name} over all {len(mine)} of {net_name}'s parameters",
               f"{len(owned & mine)} of them", f"pass {net_name}.parameters() (all of them) to {name}")
        for group in optimizer.param_groups:
            _check(0 < group["lr"] <= 0.01, "a learning rate in (0, 0.01] (DCGAN uses 0.0002)",
                   f"{group['lr']}", "GANs diverge with large learning rates")
    _passed()


def test_build_optimizers(build_optimizers, D, G):
    """``build_optimizers(D, G)`` returns ``(d_optimizer, g_optimizer)`` that pass ``test_optimizers``."""
    built = _call("build_optimizers(D, G)", build_optimizers, D, G,
                  todo="write build_optimizers: one optim.Adam over D.parameters(), one over G.parameters()")
    _check(isinstance(built, (tuple, list)) and len(built) == 2, "(d_optimizer, g_optimizer)",
           f"{type(built).__name__}", "return d_optimizer, g_optimizer")
    test_optimizers(built[0], built[1], D, G)


def test_train_step(train_step, D, G, d_optimizer, g_optimizer, z_size: int, batch_size: int = 16):
    """``train_step(D, G, d_optimizer, g_optimizer, real_images, z)`` (real images in [0, 1]) runs one
    discriminator step and one generator step, moves both networks and returns two finite scalar losses.
    It runs on copies: your networks and optimizers are left as they were."""
    D, G, d_optimizer, g_optimizer = copy.deepcopy((D, G, d_optimizer, g_optimizer))
    device = next(D.parameters()).device
    g = torch.Generator().manual_seed(0)
    size = 32
    real = torch.rand(batch_size, 3, size, size, generator=g).to(device)
    z = (torch.rand(batch_size, z_size, generator=g) * 2 - 1).to(device)
    d_before = [p.detach().clone() for p in D.parameters()]
    g_before = [p.detach().clone() for p in G.parameters()]
    out = _call("train_step(D, G, d_optimizer, g_optimizer, real_images, z)", train_step, D, G, d_optimizer,
                g_optimizer, real, z, todo="write train_step: a discriminator step on real and fake images, then "
                                           "a generator step, returning (d_loss, g_loss)")
    _check(isinstance(out, (tuple, list)) and len(out) == 2, "(d_loss, g_loss)", f"{type(out).__name__}",
           "return d_loss, g_loss")
    for name, value in zip(("d_loss", "g_loss"), out):
        _check((torch.is_tensor(value) and value.numel() == 1) or isinstance(value, (int, float)),
               f"{name} a single number", f"{type(value).__name__} {tuple(getattr(value, 'shape', ()))}",
               "return the scalar losses")
        _check(math.isfinite(_float(value)), f"a finite {name}", f"{_float(value)}",
               "check the losses' targets and that D has no sigmoid")
    d_moved = any(not torch.equal(a, b.detach()) for a, b in zip(d_before, D.parameters()))
    g_moved = any(not torch.equal(a, b.detach()) for a, b in zip(g_before, G.parameters()))
    _check(d_moved, "the discriminator step to change D", "D's weights unchanged",
           "call d_loss.backward() and then d_optimizer.step()")
    _check(g_moved, "the generator step to change G", "G's weights unchanged",
           "call g_loss.backward() and then g_optimizer.step(), with g_loss computed from D(G(z))")
    _passed()


# ---------------------------------------------------------------- results
def _batchnorm_weights(G) -> torch.Tensor | None:
    weights = [m.weight.detach().flatten().float().cpu() for m in G.modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None]
    return torch.cat(weights) if weights else None


def test_training_output(losses, samples, G=None):
    """``train`` returned finite (d_loss, g_loss) pairs and ``samples`` holds one batch of images in [-1, 1] per
    epoch that are not all the same. Pass the trained ``G`` too and a failure can name its cause."""
    _check(len(losses) > 0, "recorded losses", "none", "append (d_loss.item(), g_loss.item()) while training")
    pairs = [tuple(pair) for pair in losses]
    _check(all(len(p) == 2 for p in pairs), "(d_loss, g_loss) pairs", f"{pairs[0]!r}", "record both losses")
    flat = torch.tensor([[_float(v) for v in p] for p in pairs], dtype=torch.float64)
    _check(bool(torch.isfinite(flat).all()), "finite losses", "NaN or inf", "training diverged: lower the "
           "learning rate, check the losses' targets and that D has no sigmoid")
    _check(len(samples) > 0, "one sample batch per epoch", "no samples", "generate from fixed_z after each epoch")
    blamed_on_G = False
    for i, batch in enumerate(samples):
        batch = batch.detach().float().cpu() if torch.is_tensor(batch) else torch.as_tensor(batch).float()
        _check(batch.dim() == 4 and batch.shape[1] == 3, f"samples[{i}] of shape (n, 3, H, W)",
               f"{tuple(batch.shape)}", "store G(fixed_z) for each epoch")
        in_range = bool(batch.min() >= -1 and batch.max() <= 1)
        if not in_range and not blamed_on_G:
            # the generator itself draws outside [-1, 1] (no tanh): test_generator grades that, not this step
            blamed_on_G = G is not None and _lacks_tanh(G)
            if blamed_on_G:
                print(f"note: samples[{i}] lie outside [-1, 1] because the generator's own output does (no tanh at "
                      "its end): test_generator's finding, fix it there")
        _check(in_range or blamed_on_G, f"samples[{i}] in [-1, 1]",
               f"range {batch.min():.3f}..{batch.max():.3f}", "store the generator's tanh output as it is")
        if batch.std(0).mean() > 1e-2:  # below 0.5% of the range, the faces look the same
            continue
        bn = _batchnorm_weights(G) if G is not None else None
        if bn is not None and float(bn.abs().mean()) < 0.2:
            hint = (f"G's BatchNorm weights average {float(bn.abs().mean()):.3f} in size, not about 1: "
                    "weights_init_normal must not draw BatchNorm weights from N(0, 0.02) (it squashes every "
                    "activation); initialise only Conv, ConvTranspose and Linear layers")
        elif len(pairs) < UPDATES_TO_JUDGE_COLLAPSE:
            print(f"note: after {len(pairs)} updates the samples are still alike; train longer before judging "
                  f"(collapse can be told apart from a slow start after about {UPDATES_TO_JUDGE_COLLAPSE} updates)")
            continue
        else:
            hint = ("use different latent vectors per sample; if they differ, G has collapsed: a BatchNorm "
                    "weight initialised near 0 (see weights_init_normal), a learning rate too high, or D winning "
                    "outright")
        _check(False, f"samples[{i}] that differ from one another", "all samples (nearly) identical", hint)
    _passed()


# a fresh generator's samples may still look alike after a handful of updates; before this many a run is too short
# to call it collapse (the BatchNorm diagnosis, a measured cause, holds at any length)
UPDATES_TO_JUDGE_COLLAPSE = 200


def _lacks_tanh(G) -> bool:
    """Whether G's output layer is unsquashed, by test_generator's own check: with its last layer scaled x1000 (a
    copy, in eval mode, so G itself is untouched) its images leave [-1, 1]. False when that can't be told."""
    try:
        linear = next(m for m in G.modules() if isinstance(m, nn.Linear))
        z = torch.rand(8, linear.in_features, device=next(G.parameters()).device) * 2 - 1
        with torch.no_grad():
            out = _amplify_last_layer(G).eval()(z).float()
        return bool(out.min() < -1 or out.max() > 1)
    except Exception:  # noqa: BLE001 - a learner's G may fail in any way here; then no excuse is made
        return False
