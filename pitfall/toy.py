"""The pitfall in two dimensions (the paper's Figure S2): two overlapping Gaussians.

Loci are points ``x`` in the plane drawn from two overlapping Gaussians, one per class of
"propensity". Each locus also has its own offset ``u`` that no function of ``x`` can see
(what makes a gene active everywhere beyond its sequence), and each cell type draws its
labels independently: ``y[c, i] ~ Bernoulli(sigmoid(f(x_i) + u_i))``. Besides ``x`` the
model sees a random code per locus (``n_code`` Gaussian values, the same in every cell
type), which identifies the locus as a sequence does but says nothing about it.

- *cross-cell-type*: train on cell types 1..k, test on a new cell type at the same loci;
  a network big enough to memorise each locus's average label recovers ``u_i`` and its AP
  grows with its size.
- *hybrid*: test on a new cell type at new loci; ``u`` is unknowable there, only ``f(x)``
  generalises, and a small network already learns it: AP is flat in size.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pitfall.evaluate import average_precision


def two_gaussians(
    n_loci: int = 1500,
    n_cell_types: int = 8,
    *,
    separation: float = 1.0,
    locus_scale: float = 2.0,
    n_code: int = 16,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Draw the toy compendium.

    Returns
    -------
    dict
        ``x`` (2 * n_loci, 2 + n_code) points and locus codes (the first half for training
        loci, the second half new loci), ``p`` (2 * n_loci,) true propensities and ``y`` (n_cell_types + 1,
        2 * n_loci) labels; the last cell type is the held-out target.
    """
    rng = np.random.default_rng(seed)
    n = 2 * n_loci
    cls = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 2)) + np.where(cls[:, None] == 1, separation / 2, -separation / 2)
    f = separation * (x[:, 0] + x[:, 1])
    u = rng.normal(scale=locus_scale, size=n)
    p = 1 / (1 + np.exp(-(f + u)))
    y = (rng.random((n_cell_types + 1, n)) < p).astype(np.float32)
    code = rng.normal(size=(n, n_code))
    return {"x": np.hstack([x, code]).astype(np.float32), "p": p, "y": y}


def size_sweep(
    sizes: Sequence[int] = (1, 4, 16, 64, 256),
    *,
    n_loci: int = 1500,
    n_cell_types: int = 8,
    seeds: Sequence[int] = (0,),
    max_iter: int = 400,
) -> pd.DataFrame:
    """AP of networks of growing width in both settings.

    Each network (one hidden ReLU layer of ``size`` units, scikit-learn's MLP, Adam) is
    trained on every training cell type's labels at the training loci, with the locus's
    identity available only through ``x``; memorising needs capacity, as in the paper.

    Returns
    -------
    pandas.DataFrame
        Columns ``size, n_params, setting, seed, ap``, plus rows ``size = 0`` for the
        average-activity baseline (cross-cell-type) and the prevalence (random).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    rows = []
    for seed in seeds:
        toy = two_gaussians(n_loci, n_cell_types, seed=seed)
        x, y = toy["x"], toy["y"]
        train, new = slice(0, n_loci), slice(n_loci, 2 * n_loci)
        x_train = np.tile(x[train], (n_cell_types, 1))
        y_train = y[:-1, train].ravel()
        target = y[-1]
        for size in sizes:
            model = MLPClassifier(
                hidden_layer_sizes=(size,), max_iter=max_iter, random_state=seed, tol=1e-5
            )
            with warnings.catch_warnings():
                # max_iter bounds the run time; a net stopped early is still a fair point
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x_train, y_train)
            n_params = sum(w.size for w in model.coefs_) + sum(b.size for b in model.intercepts_)
            for setting, loci in (("cross-cell-type", train), ("hybrid", new)):
                score = model.predict_proba(x[loci])[:, 1]
                rows.append({"size": size, "n_params": n_params, "setting": setting,
                             "seed": seed, "ap": average_precision(target[loci], score)})  # fmt: skip
        avg = y[:-1, train].mean(axis=0)
        rows.append({"size": 0, "n_params": 0, "setting": "average activity", "seed": seed,
                     "ap": average_precision(target[train], avg)})  # fmt: skip
        rows.append({"size": 0, "n_params": 0, "setting": "random", "seed": seed,
                     "ap": float(target[train].mean())})  # fmt: skip
    return pd.DataFrame(rows)
