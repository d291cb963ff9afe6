"""pitfall.multiple_testing against hand-checked values, the definitions and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pitfall.multiple_testing import adjust_pvalues


def test_adjust_pvalues__holm_hand_checked() -> None:
    # sorted 0.01, 0.02, 0.03, 0.5 times 4, 3, 2, 1: 0.04, 0.06, 0.06 (monotone), 0.5
    got = adjust_pvalues([0.03, 0.01, 0.5, 0.02], "holm")
    np.testing.assert_allclose(got, [0.06, 0.04, 0.5, 0.06])
    # NaN is not a test: three tests, not four
    got = adjust_pvalues([0.01, np.nan, 0.02, 0.04], "holm")
    np.testing.assert_allclose(got, [0.03, np.nan, 0.04, 0.04])


def _holm_naive(p: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's procedure as stated: reject the i-th smallest while p_(i) <= alpha / (m - i)."""
    order = np.argsort(p, kind="stable")
    reject = np.zeros(p.size, bool)
    for i, j in enumerate(order):
        if p[j] > alpha / (p.size - i):
            break
        reject[j] = True
    return reject


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=40), st.sampled_from([0.01, 0.05, 0.2]))
def test_adjust_pvalues__holm_rejects_what_the_procedure_rejects(p: list, alpha: float) -> None:
    p = np.asarray(p)
    np.testing.assert_array_equal(adjust_pvalues(p, "holm") <= alpha, _holm_naive(p, alpha))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=40))
def test_adjust_pvalues__bh_equals_scipy(p: list) -> None:
    np.testing.assert_allclose(
        adjust_pvalues(p, "bh"), stats.false_discovery_control(p, method="bh"), atol=1e-12
    )


def test_adjust_pvalues__bad_input() -> None:
    with pytest.raises(ValueError, match="one of"):
        adjust_pvalues([0.1], "bonferonni")
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        adjust_pvalues([1.2], "holm")
    assert np.isnan(adjust_pvalues([np.nan, np.nan])).all()
