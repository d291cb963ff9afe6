"""Preprint Figure S2: two overlapping 2-D Gaussians, why epigenomic models stay flat with size.

The paper's argument: a cell type's epigenomic signal relates to its activity by a simple
rule (marks up, gene on), so the decision boundary is simple and a small network already
finds it; more capacity has nothing left to learn, and AP stays flat with size (Figure 1's
epigenomic models). Sequence models, by contrast, can only climb by memorising loci.

The toy makes the first half exact. Each point (a locus's marks, reduced to two numbers) is
drawn from one of two Gaussians with identity covariance, one per class, equal priors, and
means ``+-mu`` with ``|mu_1 - mu_0| = separation`` along the diagonal. With equal
covariances the Bayes-optimal rule is linear: the log-odds is ``w . x`` with
``w = mu_1 - mu_0`` (:func:`bayes_log_odds`), so the best possible AP on a test sample is
that of ``w . x`` on it, and no network, however large, can beat it except by chance.
:func:`size_sweep` trains networks of growing width and scores each, and the Bayes rule,
on the same fresh test sample.

(The paper's other half, memorisation of locus identity, is shown on the real task by the
locus-constant random control: see ``pipelines/controls.py``.)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pitfall.evaluate import average_precision

__all__ = ["GaussianSweep", "bayes_log_odds", "class_means", "size_sweep", "two_gaussians"]


def class_means(separation: float) -> tuple[np.ndarray, np.ndarray]:
    """Means ``(mu_0, mu_1)``, shape (2,) each: ``+-separation / 2`` along the diagonal."""
    mu = separation / 2 / math.sqrt(2) * np.ones(2)
    return -mu, mu


def two_gaussians(
    n: int, *, separation: float = 1.5, seed: int | np.random.Generator = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` points from the two classes (equal priors).

    Parameters
    ----------
    n
        Number of points.
    separation
        Distance between the class means in units of the (shared, identity) standard
        deviation: 0 makes the classes identical, 1.5 gives a Bayes-optimal AP near 0.85.
    seed
        Seed or generator.

    Returns
    -------
    x : numpy.ndarray, shape (n, 2), float64
        The points.
    y : numpy.ndarray, shape (n,), int64
        Their classes (0 or 1).
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    mu0, mu1 = class_means(separation)
    x = rng.normal(size=(n, 2)) + np.where(y[:, None] == 1, mu1, mu0)
    return x, y


def bayes_log_odds(x: np.ndarray, separation: float) -> np.ndarray:
    """Log-odds of class 1 under the true model, shape (n,): ``(mu_1 - mu_0) . x``.

    For two Gaussians with the same covariance ``I`` and equal priors, ``log p(1|x) /
    p(0|x) = (mu_1 - mu_0) . x - (|mu_1|^2 - |mu_0|^2) / 2``; the second term is 0 for
    means symmetric about the origin.
    """
    mu0, mu1 = class_means(separation)
    return np.asarray(x, dtype=np.float64) @ (mu1 - mu0)


#: Networks narrower than this are fitted several times (:func:`size_sweep`'s ``restarts``).
RESTART_BELOW = 8


@dataclass
class GaussianSweep:
    """What :func:`size_sweep` measured, with what the figure draws.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (seed, size): ``size`` (hidden units), ``n_params``, ``seed``, ``ap``
        (the network's AP on the test sample), ``ap_bayes`` (the Bayes rule's AP on the
        same sample), ``prevalence`` (the random predictor's AP).
    points : pandas.DataFrame
        A sample of the first seed's training points: ``x1``, ``x2``, ``label``.
    grid : tuple of numpy.ndarray
        ``(g1, g2)``, each (m, m): the plane where ``probabilities`` are evaluated.
    probabilities : dict of int -> numpy.ndarray (m, m)
        The first seed's networks' P(class 1) over ``grid``, by size (smallest and
        largest only), for drawing their decision boundaries.
    separation : float
        The classes' separation.
    """

    table: pd.DataFrame
    points: pd.DataFrame
    grid: tuple[np.ndarray, np.ndarray]
    probabilities: dict[int, np.ndarray] = field(default_factory=dict)
    separation: float = 1.5


def size_sweep(
    sizes: Sequence[int] = (1, 4, 16, 64, 256, 1024),
    *,
    n_train: int = 2000,
    n_test: int = 20000,
    separation: float = 1.5,
    seeds: Sequence[int] = (0,),
    max_iter: int = 300,
    restarts: int = 3,
    n_points: int = 600,
) -> GaussianSweep:
    """AP of networks of growing width on the two Gaussians, and of the Bayes rule.

    Each network has one hidden layer of ``size`` ReLU units (scikit-learn's MLP, Adam,
    its default L2 penalty and stopping rule), trained on ``n_train`` points and scored on
    ``n_test`` new points drawn from the same two Gaussians (a new sample: what a new cell
    type's loci are to an epigenomic model). Sizes from 1 to 1024 units span 5 to ~4,100
    parameters. From two units up a network can rank the plane as ``w . x`` does; a single
    ReLU unit is constant on one side of its kink, and the loci there tie, so it may sit a
    little (about 0.02) below the Bayes rule: the one capacity limit in sight.

    Parameters
    ----------
    sizes
        Hidden units of each network.
    n_train, n_test
        Training and test points per seed.
    separation
        See :func:`two_gaussians`.
    seeds
        One training sample, test sample and set of initial weights per seed.
    max_iter
        Epochs at most; a network stopped by this bound is still a fair point (the
        large ones converge in fewer).
    restarts
        Initialisations of each network narrower than :data:`RESTART_BELOW` units, the
        one with the lowest training loss kept. A ReLU network of one or two units can
        die at initialisation (every unit off over the data, its output constant): its
        AP then measures a failed fit, not its capacity (one seed's single unit scored
        the prevalence, 0.50, without restarts). Wider networks keep enough live units.
    n_points
        Training points kept for the figure.

    Returns
    -------
    GaussianSweep
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    if not seeds or not sizes:
        raise ValueError("size_sweep needs at least one seed and one size")
    lim = 3.5 + separation / 2
    g1, g2 = np.meshgrid(np.linspace(-lim, lim, 121), np.linspace(-lim, lim, 121))
    plane = np.column_stack([g1.ravel(), g2.ravel()])
    rows, probabilities = [], {}
    points = pd.DataFrame()
    for seed in seeds:
        rng = np.random.default_rng(seed)
        x_train, y_train = two_gaussians(n_train, separation=separation, seed=rng)
        x_test, y_test = two_gaussians(n_test, separation=separation, seed=rng)
        ap_bayes = average_precision(y_test, bayes_log_odds(x_test, separation))
        if seed == seeds[0]:
            keep = slice(0, min(n_points, n_train))
            points = pd.DataFrame(
                {"x1": x_train[keep, 0], "x2": x_train[keep, 1], "label": y_train[keep]}
            )
        for size in sizes:
            fits = []
            for restart in range(restarts if size < RESTART_BELOW else 1):
                model = MLPClassifier(
                    hidden_layer_sizes=(size,),
                    max_iter=max_iter,
                    random_state=seed * 1000 + restart,
                    tol=1e-4,
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model.fit(x_train, y_train)
                fits.append(model)
            # chosen by training loss, never by test AP
            model = min(fits, key=lambda m: m.loss_)
            n_params = sum(w.size for w in model.coefs_) + sum(b.size for b in model.intercepts_)
            score = model.predict_proba(x_test)[:, 1]
            rows.append({"size": size, "n_params": int(n_params), "seed": seed,
                         "ap": average_precision(y_test, score), "ap_bayes": ap_bayes,
                         "prevalence": float(y_test.mean())})  # fmt: skip
            if seed == seeds[0] and size in (min(sizes), max(sizes)):
                probabilities[size] = model.predict_proba(plane)[:, 1].reshape(g1.shape)
    return GaussianSweep(pd.DataFrame(rows), points, (g1, g2), probabilities, separation)
