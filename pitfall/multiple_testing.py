"""p-values adjusted for the number of tests made together.

Testing every group of loci separately makes, with 36 groups at alpha = 0.05, about two
"significant" groups by chance alone; the adjusted p-values below keep the error rate at
alpha over the whole family:

- ``"holm"`` (Holm 1979), the default: the family-wise error rate (the chance of any false
  positive) at most alpha, under any dependence between the tests; uniformly more powerful
  than Bonferroni;
- ``"bh"`` (Benjamini and Hochberg 1995): the false discovery rate (the expected share of
  false positives among the groups called) at most alpha, for independent or positively
  dependent tests.

NaN p-values (groups that could not be tested) stay NaN and do not count as tests.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["METHODS", "adjust_pvalues"]

#: The adjustments :func:`adjust_pvalues` knows.
METHODS: tuple[str, ...] = ("holm", "bh")


def adjust_pvalues(p: npt.ArrayLike, method: str = "holm") -> np.ndarray:
    """Adjusted p-values, in the order given.

    Parameters
    ----------
    p : array-like, shape (m,)
        Raw p-values in [0, 1]; NaN for a test not made.
    method : {"holm", "bh"}
        Module docstring.

    Returns
    -------
    numpy.ndarray
        float64, shape (m,): a test is significant at level alpha when its adjusted
        p-value is at most alpha.

    Examples
    --------
    >>> from pitfall.multiple_testing import adjust_pvalues
    >>> adjust_pvalues([0.01, 0.04, 0.03], "holm").round(3)
    array([0.03, 0.06, 0.06])
    >>> adjust_pvalues([0.01, 0.04, 0.03], "bh").round(3)
    array([0.03, 0.04, 0.04])
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    p = np.asarray(p, dtype=np.float64).ravel()
    if np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = tested.size
    if m == 0:
        return out
    order = tested[np.argsort(p[tested], kind="stable")]
    sorted_p = p[order]
    if method == "holm":
        # step-down: the i-th smallest is multiplied by (m - i), then made non-decreasing
        adjusted = np.maximum.accumulate(sorted_p * (m - np.arange(m)))
    else:
        # step-up: the i-th smallest by m / (i + 1), then non-increasing from the largest
        adjusted = np.minimum.accumulate((sorted_p * m / np.arange(1, m + 1))[::-1])[::-1]
    out[order] = np.minimum(adjusted, 1.0)
    return out
