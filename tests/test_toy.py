"""Preprint Figure S2: two overlapping Gaussians, networks of growing size stay flat.

Oracles: the Bayes-optimal AP computed by numerical integration from the two Gaussians'
definition (independent of the sampler and of any network), and the test sample's own
sampling error of AP (a bootstrap), which sets the tolerance for "flat".
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm
from sklearn.metrics import average_precision_score

from pitfall.experiments import preprint_s2


def _expected_bayes_ap(separation: float) -> float:
    """AP of the Bayes rule for infinitely many points, equal priors.

    Along ``w = mu_1 - mu_0`` the standardised score is N(+d/2, 1) for class 1 and
    N(-d/2, 1) for class 0; AP = integral of precision(t) d recall(t).
    """
    d = separation

    def integrand(t: float) -> float:
        tp, fp = norm.sf(t - d / 2), norm.sf(t + d / 2)
        return tp / (tp + fp) * norm.pdf(t - d / 2)

    value, _ = integrate.quad(integrand, -12, 12, limit=200)
    return float(value)


def test_two_gaussians__bayes_rule_scores_the_theoretical_ap() -> None:
    x, y = preprint_s2.two_gaussians(200_000, separation=1.5, seed=1)
    assert x.shape == (200_000, 2) and set(np.unique(y)) == {0, 1}
    got = average_precision_score(y, preprint_s2.bayes_log_odds(x, 1.5))
    # AP's sampling sd at 200k points is about 0.001
    assert got == pytest.approx(_expected_bayes_ap(1.5), abs=0.004)
    # and the log-odds are the true ones: their logistic is P(class 1 | x) (calibration)
    p = 1 / (1 + np.exp(-preprint_s2.bayes_log_odds(x, 1.5)))
    for lo, hi in ((0.1, 0.2), (0.45, 0.55), (0.8, 0.9)):
        sel = (p >= lo) & (p < hi)
        assert y[sel].mean() == pytest.approx(p[sel].mean(), abs=0.01)


@pytest.mark.slow
def test_size_sweep__ap_flat_with_size_near_the_bayes_rule() -> None:
    n_test = 5000
    # from 2 units up (a single ReLU unit ties the loci beyond its kink: size_sweep's doc)
    sweep = preprint_s2.size_sweep(
        (2, 16, 256), n_train=2000, n_test=n_test, seeds=(0,), max_iter=200
    )
    t = sweep.table
    assert t["size"].tolist() == [2, 16, 256]
    assert t["n_params"].tolist() == [9, 65, 1025]  # 2 inputs, one hidden layer, 1 output
    # Tolerance: the test sample's own sampling error of AP. Bootstrap the Bayes rule's AP
    # over resamples of the same n_test points; a size effect smaller than twice that
    # spread could not be told from a different draw of test loci. (The memorisation
    # effect of Figure 1 is > 0.1; this sd is about 0.006.)
    rng = np.random.default_rng(0)
    x, y = preprint_s2.two_gaussians(n_test, separation=1.5, seed=rng)
    s = preprint_s2.bayes_log_odds(x, 1.5)
    boot = [
        average_precision_score(y[i], s[i])
        for i in (rng.integers(0, n_test, n_test) for _ in range(200))
    ]
    tol = 2 * float(np.std(boot))
    assert 0.003 < tol < 0.02
    assert t["ap"].max() - t["ap"].min() < tol
    assert (t["ap_bayes"] - t["ap"]).max() < tol
    # the Bayes rule is the ceiling: no network beats it by more than chance
    assert (t["ap"] - t["ap_bayes"]).max() < tol / 2
    assert t["ap_bayes"].iloc[0] == pytest.approx(_expected_bayes_ap(1.5), abs=3 * tol)
    # what the figure draws: the largest and smallest networks' P(class 1) on the grid
    assert sorted(sweep.probabilities) == [2, 256]
    g1, _ = sweep.grid
    assert all(p.shape == g1.shape for p in sweep.probabilities.values())
    assert set(sweep.points["label"]) == {0, 1}


def test_size_sweep__needs_a_seed_and_a_size() -> None:
    with pytest.raises(ValueError, match="at least one"):
        preprint_s2.size_sweep((), seeds=(0,))
