"""Paired significance tests over per-question scores, as ranx and trec_eval users expect them.

Both tests compare two systems on the same questions through the differences d_i = a_i - b_i:

- Fisher's randomization test: under the null hypothesis the sign of each d_i is arbitrary, so the
  observed |mean(d)| is ranked among the |mean(s * d)| for random sign vectors s. With 2**n no
  larger than the number of permutations every sign vector is enumerated (an exact p-value);
  otherwise `n_permutations` vectors are drawn with a fixed seed, and p = (1 + hits) / (1 + R).
- the paired t-test: t = mean(d) / (sd(d) / sqrt(n)), two-sided, Student's t with n - 1 degrees of
  freedom (the distribution is computed here, through the regularised incomplete beta function).

Holm-Bonferroni adjusts a family of p-values; Cohen's d_z = mean(d) / sd(d) is the effect size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

N_PERMUTATIONS = 10_000
SEED = 42
ALPHA = 0.05
TESTS = ("randomization", "ttest")


def _differences(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired scores need two equal-length lists, got {x.shape} and {y.shape}")
    return x - y


def randomization_test(
    a: Sequence[float], b: Sequence[float], n_permutations: int = N_PERMUTATIONS, seed: int = SEED
) -> float:
    """Two-sided p-value of Fisher's paired randomization (sign-flip) test on mean(a - b)."""
    d = _differences(a, b)
    n = len(d)
    if n == 0 or not np.any(d):
        return 1.0
    observed = abs(float(d.sum()))
    # Sums, not means, are compared (same order, fewer divisions); the slack absorbs rounding
    # so that a permutation equal to the observed one counts as at least as extreme.
    slack = 1e-9 * max(1.0, observed)
    if 2**n <= n_permutations:
        signs = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2.0 - 1.0
        return float(np.mean(np.abs(_sums(signs, d)) >= observed - slack))
    hits = int(np.count_nonzero(np.abs(_sums(_signs(n, n_permutations, seed), d)) >= observed - slack))
    return (1 + hits) / (1 + n_permutations)


def _sums(signs: np.ndarray, d: np.ndarray) -> np.ndarray:
    # einsum's own loop: a BLAS matrix-vector product is no faster on this size and, with its
    # threads on a busy machine, was measured 10x slower
    return np.einsum("ij,j->i", signs, d)


@lru_cache(maxsize=4)
def _signs(n: int, n_permutations: int, seed: int) -> np.ndarray:
    """The random sign vectors, drawn once per (n, count, seed): every test on n questions uses
    the same ones, so a table of many tests costs one matrix product each."""
    rng = np.random.default_rng(seed)
    signs = rng.integers(0, 2, size=(n_permutations, n), dtype=np.int8) * 2.0 - 1.0
    signs.flags.writeable = False
    return signs


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(t, two-sided p) of the paired t-test on a - b; identical scores give (0, 1)."""
    d = _differences(a, b)
    n = len(d)
    if n < 2:
        return 0.0, 1.0
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return (0.0, 1.0) if mean == 0.0 else (math.copysign(math.inf, mean), 0.0)
    t = mean / (sd / math.sqrt(n))
    return t, student_t_two_sided(t, n - 1)


def student_t_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom: I_{df/(df+t^2)}(df/2, 1/2)."""
    if math.isinf(t):
        return 0.0
    return incomplete_beta(df / (df + t * t), df / 2.0, 0.5)


def incomplete_beta(x: float, a: float, b: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction.

    The fraction converges quickly for x < (a + 1) / (a + b + 2); beyond that the symmetry
    I_x(a, b) = 1 - I_{1-x}(b, a) is used.
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - incomplete_beta(1.0 - x, b, a)
    log_front = a * math.log(x) + b * math.log1p(-x) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    return math.exp(log_front) / a * _beta_fraction(x, a, b)


def _beta_fraction(x: float, a: float, b: float) -> float:
    """1 / (1 + c1 / (1 + c2 / (1 + ...))) with the incomplete beta's coefficients:
    c_{2m+1} = -(a+m)(a+b+m)x / ((a+2m)(a+2m+1)), c_{2m} = m(b-m)x / ((a+2m-1)(a+2m)).
    The denominator is evaluated by the modified Lentz method."""
    tiny = 1e-300
    g = c = 1.0
    d = 0.0
    for j in range(1, 1000):
        m = j // 2
        if j % 2:
            coef = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        else:
            coef = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 + coef * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + coef / c
        c = c if abs(c) > tiny else tiny
        step = c * d
        g *= step
        if abs(step - 1.0) < 1e-15:
            break
    return 1.0 / g


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given.

    Sorted ascending, the i-th smallest (from 1) is multiplied by m - i + 1, capped at 1, and
    made non-decreasing: adjusted_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def effect_size(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Cohen's d_z for paired scores, mean(a - b) / sd(a - b); None when every d_i is equal."""
    d = _differences(a, b)
    if len(d) < 2:
        return None
    sd = float(d.std(ddof=1))
    return float(d.mean()) / sd if sd > 0 else None


def paired_p(a: Sequence[float], b: Sequence[float], test: str) -> float:
    """The two-sided p-value of the named test ('randomization' or 'ttest')."""
    if test == "randomization":
        return randomization_test(a, b)
    if test == "ttest":
        return paired_t_test(a, b)[1]
    raise ValueError(f"unknown test '{test}' (use {', '.join(TESTS)})")
