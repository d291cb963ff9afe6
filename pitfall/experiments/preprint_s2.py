"""Preprint Figure S2: two overlapping 2-D Gaussians, the AP of networks of growing size.

Why epigenomic models stay flat with size (Figure 1): the classes are two overlapping
Gaussians, so the Bayes-optimal boundary is a straight line; networks of every size find
it, and their AP on new points stays flat, at the Bayes-optimal rule's. No cube: everything
is drawn here, with fixed seeds.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pitfall._plotting import log_axis, pyplot
from pitfall.evaluate import average_precision
from pitfall.experiments._result import Result

__all__ = [
    "GaussianSweep",
    "bayes_log_odds",
    "class_means",
    "make",
    "plot",
    "size_sweep",
    "two_gaussians",
]


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
            rows.append(
                {
                    "size": size,
                    "n_params": int(n_params),
                    "seed": seed,
                    "ap": average_precision(y_test, score),
                    "ap_bayes": ap_bayes,
                    "prevalence": float(y_test.mean()),
                }
            )
            if seed == seeds[0] and size in (min(sizes), max(sizes)):
                probabilities[size] = model.predict_proba(plane)[:, 1].reshape(g1.shape)
    return GaussianSweep(pd.DataFrame(rows), points, (g1, g2), probabilities, separation)


def plot(sweep: Any, title: str = ""):
    """Preprint Figure S2: two overlapping Gaussians; AP of networks of growing size.

    Parameters
    ----------
    sweep : GaussianSweep
        Its ``table`` (``size, n_params, seed, ap, ap_bayes, prevalence``), ``points``
        (``x1, x2, label``), ``grid``, ``probabilities`` (size -> P(class 1) on the grid)
        and ``separation``.
    title : str

    Returns
    -------
    matplotlib.figure.Figure
        (a) the training points, the Bayes-optimal boundary and the smallest and largest
        networks' boundaries; (b) test AP against parameters (log x), with the
        Bayes-optimal AP and the prevalence as lines. Legends sit below the axes.
    """
    plt = pyplot()
    table, pts = sweep.table, sweep.points
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 5.2), width_ratios=(1, 1.25))
    for lab, color, name in ((0, "#7570b3", "class 0"), (1, "#d95f02", "class 1")):
        sel = pts["label"] == lab
        ax.scatter(
            pts.loc[sel, "x1"],
            pts.loc[sel, "x2"],
            s=7,
            alpha=0.55,
            color=color,
            linewidths=0,
            label=name,
        )
    g1, g2 = sweep.grid
    # the Bayes boundary: (mu_1 - mu_0) . x = 0, i.e. x2 = -x1 for means on the diagonal
    ax.plot(
        [g1.min(), g1.max()],
        [-g1.min(), -g1.max()],
        color="black",
        lw=1.6,
        label="Bayes-optimal boundary",
    )
    styles = {
        min(sweep.probabilities, default=0): ("#1b9e77", "--"),
        max(sweep.probabilities, default=0): ("#e7298a", ":"),
    }
    n_params = table.drop_duplicates("size").set_index("size")["n_params"]
    for size, prob in sorted(sweep.probabilities.items()):
        color, ls = styles[size]
        ax.contour(g1, g2, prob, levels=[0.5], colors=[color], linestyles=[ls], linewidths=1.6)
        ax.plot(
            [],
            [],
            color=color,
            ls=ls,
            lw=1.6,
            label=f"network, {size} hidden unit{'s' if size > 1 else ''} "
            f"({n_params[size]:,} parameters)",
        )
    ax.set_xlim(g1.min(), g1.max())
    ax.set_ylim(g2.min(), g2.max())
    ax.set_aspect("equal")
    ax.set_xlabel("input 1 (e.g. a mark's signal)")
    ax.set_ylabel("input 2")
    ax.set_title("(a) two overlapping Gaussians, one per class", fontsize=11)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.13), ncol=2)

    nets = table.groupby("n_params", as_index=False)[["ap", "ap_bayes", "prevalence"]].mean()
    # every seed's networks as faint points, their mean as the line
    bx.scatter(table["n_params"], table["ap"], s=14, color="#d95f02", alpha=0.5, linewidths=0)
    bx.plot(
        nets["n_params"],
        nets["ap"],
        marker="o",
        color="#d95f02",
        label=f"networks, mean over {table['seed'].nunique()} seed(s)",
    )
    # dashed and below the networks' line, which lies on it
    bx.axhline(
        nets["ap_bayes"].mean(),
        color="black",
        lw=1.2,
        ls="--",
        zorder=1,
        label="Bayes-optimal rule",
    )
    bx.axhline(nets["prevalence"].mean(), color="0.6", ls=":", lw=1.2, label="random (prevalence)")
    log_axis(bx, table["n_params"])
    spread = nets["ap"].max() - nets["ap"].min()
    gap = (nets["ap_bayes"] - nets["ap"]).max()
    bx.set_ylim(min(0.45, nets["prevalence"].min() - 0.05), 1.0)
    bx.set_xlabel("trainable parameters")
    bx.set_ylabel("average precision (new points)")
    bx.set_title("(b) AP of networks of growing size", fontsize=11)
    bx.text(
        0.5,
        0.42,
        f"spread over sizes: {spread:.3f}\nlargest gap below the Bayes rule: {gap:.3f}",
        transform=bx.transAxes,
        ha="center",
        va="center",
        fontsize=9,
        bbox={"facecolor": "white", "edgecolor": "0.8"},
    )
    bx.grid(alpha=0.25, lw=0.5)
    bx.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.13))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def make(size: str = "demo") -> Result:
    """Preprint Figure S2 at a size of :data:`pitfall.experiments.grids.GAUSSIAN_SIZES`.

    Returns
    -------
    Result
        ``findings``: ``spread`` (the range of the mean AP over network sizes) and
        ``gap_to_bayes`` (the largest mean AP below the Bayes-optimal rule's);
        ``tables["networks"]``: one row per (size, seed).

    Examples
    --------
    >>> from pitfall.experiments import preprint_s2
    >>> exp = preprint_s2.make("quick")  # doctest: +SKIP
    >>> exp.findings["spread"] < 0.02  # doctest: +SKIP
    True
    """
    from pitfall.experiments.grids import GAUSSIAN_SIZES

    if size not in GAUSSIAN_SIZES:
        raise ValueError(f"size must be one of {tuple(GAUSSIAN_SIZES)}, got {size!r}")
    sweep = size_sweep(**GAUSSIAN_SIZES[size])
    means = sweep.table.groupby("n_params")[["ap", "ap_bayes"]].mean()
    spread = float(means["ap"].max() - means["ap"].min())
    gap = float((means["ap_bayes"] - means["ap"]).max())
    title = "Preprint Figure S2: two overlapping Gaussians"
    return Result(
        name="preprint_figure_s2_gaussians",
        title=title,
        figure=plot(sweep, title),
        findings={"spread": spread, "gap_to_bayes": gap},
        sentences=[
            f"Networks from {means.index.min():,} to {means.index.max():,} parameters score "
            f"AP within {spread:.3f} of each other and at most {gap:.3f} below the "
            "Bayes-optimal rule: when the boundary is simple, capacity buys nothing, as for "
            "the epigenomic models of Figure 1."
        ],
        tables={"networks": sweep.table},
    )
