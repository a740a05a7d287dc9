"""Paired significance tests over topics: randomization test, bootstrap CI, Holm correction.

All functions take per-topic scores of two systems on the same topics (paired samples) and
are deterministic for a given seed. The statistic is the mean per-topic difference a - b.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from avsbench.errors import ConfigError

DEFAULT_PERMUTATIONS = 10_000
DEFAULT_BOOTSTRAP_SAMPLES = 10_000
DEFAULT_SEED = 42
# Rows of random signs / resample indices generated at once (bounds memory to ~chunk * n).
_CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class RandomizationResult:
    """Two-sided paired randomization test of the mean difference."""

    mean_difference: float
    p_value: float
    permutations: int  # number of sign patterns evaluated (2**n when exact)
    exact: bool
    n_topics: int


@dataclass(frozen=True)
class BootstrapInterval:
    """Bootstrap confidence interval of the mean difference."""

    mean_difference: float
    low: float
    high: float
    confidence: float
    method: str
    resamples: int


def _paired_differences(scores_a: Sequence[float] | np.ndarray, scores_b: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(scores_a, dtype=np.float64)
    b = np.asarray(scores_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ConfigError(
            f"paired scores must be two 1-d arrays of the same length, got shapes {a.shape} and {b.shape}",
            expected="one score per topic for each system, same topics in the same order",
        )
    if a.size == 0:
        raise ConfigError("no topics to compare", expected="at least one topic scored by both systems")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ConfigError("paired scores contain NaN or infinite values", expected="finite per-topic scores")
    return a - b


def _sign_patterns(start: int, stop: int, n: int) -> np.ndarray:
    """Sign vectors number ``start`` .. ``stop - 1`` of all 2**n (bit i of the number -> sign of item i)."""
    codes = np.arange(start, stop, dtype=np.int64)[:, None]
    bits = (codes >> np.arange(n, dtype=np.int64)) & 1
    return 1.0 - 2.0 * bits


def randomization_test(
    scores_a: Sequence[float] | np.ndarray,
    scores_b: Sequence[float] | np.ndarray,
    *,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = DEFAULT_SEED,
) -> RandomizationResult:
    """Paired (sign-flip) randomization test of H0: mean(a - b) = 0, two-sided.

    Under H0 the labels of each pair are exchangeable, i.e. each per-topic difference may
    flip its sign. When ``2**n <= permutations`` all sign patterns are enumerated and the
    p-value is exact: P(|T| >= |t_obs|). Otherwise ``permutations`` random patterns are drawn
    (numpy PCG64 seeded with ``seed``) and p = (hits + 1) / (permutations + 1), which
    counts the observed labelling and never returns 0.
    """
    if permutations < 1:
        raise ConfigError(f"permutations must be positive, got {permutations}")
    diffs = _paired_differences(scores_a, scores_b)
    n = diffs.size
    observed = float(diffs.mean())
    # Sign flips reproduce |observed| up to rounding of the summation; a relative tolerance
    # keeps such patterns counted as "at least as extreme".
    threshold = abs(observed) - 1e-12 * max(1.0, float(np.abs(diffs).sum()))
    if n < 63 and 2**n <= permutations:
        total = 2**n
        hits = 0
        for start in range(0, total, _CHUNK_ROWS):
            stats = _sign_patterns(start, min(total, start + _CHUNK_ROWS), n) @ diffs / n
            hits += int(np.count_nonzero(np.abs(stats) >= threshold))
        return RandomizationResult(observed, hits / total, total, True, n)
    rng = np.random.default_rng(seed)
    hits = 0
    remaining = permutations
    while remaining:
        rows = min(remaining, _CHUNK_ROWS)
        signs = rng.integers(0, 2, size=(rows, n), dtype=np.int8) * 2 - 1
        stats = signs @ diffs / n
        hits += int(np.count_nonzero(np.abs(stats) >= threshold))
        remaining -= rows
    return RandomizationResult(observed, (hits + 1) / (permutations + 1), permutations, False, n)


def bootstrap_ci(
    scores_a: Sequence[float] | np.ndarray,
    scores_b: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_BOOTSTRAP_SAMPLES,
    method: str = "bca",
    seed: int = DEFAULT_SEED,
) -> BootstrapInterval:
    """Bootstrap confidence interval of mean(a - b), resampling topics with replacement.

    ``method`` is ``"percentile"`` or ``"bca"`` (bias-corrected and accelerated, the default,
    as in :func:`scipy.stats.bootstrap`). Deterministic for a given ``seed``.
    """
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if resamples < 2:
        raise ConfigError(f"resamples must be at least 2, got {resamples}")
    if method not in ("percentile", "bca"):
        raise ConfigError(f"unknown bootstrap method {method!r}", expected="percentile or bca")
    diffs = _paired_differences(scores_a, scores_b)
    n = diffs.size
    observed = float(diffs.mean())
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    done = 0
    while done < resamples:
        rows = min(resamples - done, _CHUNK_ROWS)
        idx = rng.integers(0, n, size=(rows, n))
        means[done : done + rows] = diffs[idx].mean(axis=1)
        done += rows
    alpha = (1.0 - confidence) / 2.0
    low_q, high_q = alpha, 1.0 - alpha
    if method == "bca":
        low_q, high_q = _bca_quantiles(diffs, means, observed, alpha)
    if np.isnan(low_q) or np.isnan(high_q):
        # Degenerate bootstrap distribution (all differences equal): the interval is a point.
        return BootstrapInterval(observed, observed, observed, confidence, method, resamples)
    low, high = np.percentile(means, [100.0 * low_q, 100.0 * high_q])
    return BootstrapInterval(observed, float(low), float(high), confidence, method, resamples)


def _bca_quantiles(diffs: np.ndarray, means: np.ndarray, observed: float, alpha: float) -> tuple[float, float]:
    """Adjusted quantile levels of the BCa interval (NaN when undefined)."""
    share_below = (np.count_nonzero(means < observed) + np.count_nonzero(means <= observed)) / (2.0 * means.size)
    z0 = ndtri(share_below)
    n = diffs.size
    jackknife = (diffs.sum() - diffs) / (n - 1) if n > 1 else np.array([observed])
    centred = jackknife.mean() - jackknife
    denominator = 6.0 * float(np.sum(centred**2)) ** 1.5
    acceleration = float(np.sum(centred**3)) / denominator if denominator > 0 else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        levels = []
        for z_alpha in (ndtri(alpha), ndtri(1.0 - alpha)):
            shifted = z0 + z_alpha
            levels.append(float(ndtr(z0 + shifted / (1.0 - acceleration * shifted))))
    return levels[0], levels[1]


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values, in the input order.

    Adjusted p of the i-th smallest (1-based) = max over j <= i of min(1, (m - j + 1) * p_(j)).
    Reject H0 at level alpha where the adjusted p <= alpha (controls the family-wise error).
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ConfigError("p-values must be a flat sequence")
    if np.any((p < 0) | (p > 1) | np.isnan(p)):
        raise ConfigError("p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted_sorted = np.maximum.accumulate(scaled)
    adjusted = np.empty(m, dtype=np.float64)
    adjusted[order] = adjusted_sorted
    return adjusted.tolist()
