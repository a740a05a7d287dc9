"""Paired randomization test, bootstrap CI and Holm correction, checked against scipy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st

from avsbench.errors import ConfigError
from avsbench.eval.significance import bootstrap_ci, holm_adjust, randomization_test


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def _pair(n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.random(n)
    return a, a - shift + rng.normal(0.0, 0.1, n)


@pytest.mark.parametrize(("n", "shift", "seed"), [(4, 0.05, 0), (7, 0.1, 1), (10, 0.02, 2), (12, 0.08, 3)])
def test_exact_enumeration_equals_scipy(n: int, shift: float, seed: int) -> None:
    a, b = _pair(n, shift, seed)
    ours = randomization_test(a, b, permutations=10_000)
    ref = st.permutation_test(
        (a, b), _mean_difference, permutation_type="samples", n_resamples=np.inf, alternative="two-sided"
    )
    assert ours.exact and ours.permutations == 2**n
    assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-12)
    assert ours.mean_difference == pytest.approx(float(np.mean(a - b)))


def test_exact_p_value_by_hand() -> None:
    # Differences (1, 2, 3): of the 8 sign patterns only +++ and --- reach |mean| >= 2.
    result = randomization_test([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert result.exact and result.p_value == pytest.approx(2 / 8)


def test_identical_systems_have_p_one() -> None:
    scores = [0.1, 0.4, 0.3, 0.2]
    assert randomization_test(scores, scores).p_value == 1.0


def test_sampled_test_agrees_with_scipy_and_is_seeded() -> None:
    a, b = _pair(25, 0.04, 5)
    ours = randomization_test(a, b, permutations=20_000, seed=7)
    ref = st.permutation_test(
        (a, b),
        _mean_difference,
        permutation_type="samples",
        n_resamples=20_000,
        alternative="two-sided",
        random_state=11,
    )
    assert not ours.exact and ours.permutations == 20_000
    # Two independent Monte Carlo estimates: standard error <= 0.0036 each.
    assert ours.p_value == pytest.approx(ref.pvalue, abs=0.02)
    assert randomization_test(a, b, permutations=20_000, seed=7) == ours
    assert randomization_test(a, b, permutations=20_000, seed=8).p_value != ours.p_value


def test_strong_effect_is_significant_and_p_never_zero() -> None:
    a, b = _pair(30, 0.3, 9)
    result = randomization_test(a, b)
    assert 0.0 < result.p_value < 1e-3
    assert result.p_value == pytest.approx(1 / 10_001)


@pytest.mark.parametrize(("method", "scipy_method"), [("percentile", "percentile"), ("bca", "BCa")])
def test_bootstrap_agrees_with_scipy(method: str, scipy_method: str) -> None:
    a, b = _pair(20, 0.05, 4)
    ours = bootstrap_ci(a, b, method=method, resamples=40_000, seed=1)
    ref = st.bootstrap(((a - b),), np.mean, method=scipy_method, n_resamples=40_000, random_state=2)
    assert ours.low < ours.mean_difference < ours.high
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.004)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.004)


def test_bootstrap_is_seeded_and_degenerate_case_is_a_point() -> None:
    a, b = _pair(15, 0.05, 6)
    assert bootstrap_ci(a, b, seed=3) == bootstrap_ci(a, b, seed=3)
    assert bootstrap_ci(a, b, seed=3) != bootstrap_ci(a, b, seed=4)
    point = bootstrap_ci([0.5, 0.6, 0.7], [0.4, 0.5, 0.6])
    assert point.low == pytest.approx(0.1) and point.high == pytest.approx(0.1)


def test_holm_by_hand() -> None:
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, max(0.04*1, 0.06)=0.06
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm_adjust([0.02]) == pytest.approx([0.02])


def test_bad_inputs_raise() -> None:
    with pytest.raises(ConfigError):
        randomization_test([0.1, 0.2], [0.1])
    with pytest.raises(ConfigError):
        randomization_test([], [])
    with pytest.raises(ConfigError):
        bootstrap_ci([0.1, float("nan")], [0.1, 0.2])
    with pytest.raises(ConfigError):
        bootstrap_ci([0.1], [0.2], confidence=1.5)
    with pytest.raises(ConfigError):
        holm_adjust([0.5, 1.5])


def test_swapping_the_systems_keeps_p_and_mirrors_the_interval() -> None:
    a, b = _pair(18, 0.03, 12)
    forward, backward = randomization_test(a, b), randomization_test(b, a)
    assert forward.p_value == backward.p_value
    assert forward.mean_difference == pytest.approx(-backward.mean_difference)
    ci_ab = bootstrap_ci(a, b, method="percentile", seed=5)
    ci_ba = bootstrap_ci(b, a, method="percentile", seed=5)
    assert ci_ab.low == pytest.approx(-ci_ba.high) and ci_ab.high == pytest.approx(-ci_ba.low)


def test_sampled_p_value_approaches_the_exact_one() -> None:
    a, b = _pair(13, 0.05, 21)  # 8192 patterns: exact with 10,000, sampled with 8,000
    exact = randomization_test(a, b, permutations=10_000)
    sampled = randomization_test(a, b, permutations=8_000, seed=3)
    assert exact.exact and not sampled.exact
    assert sampled.p_value == pytest.approx(
        exact.p_value, abs=4 * np.sqrt(exact.p_value * (1 - exact.p_value) / 8_000) + 1e-3
    )
