"""Every model grid and training recipe of the experiments, one definition per size.

Sizes ``quick`` and ``demo`` fit a laptop's CPU; ``paper`` is the paper's grid (Schreiber et
al. 2020, Methods): every power of two the methods list, for both tasks alike. Each grid
is a list of ``[[models]]`` tables of a sweep (:mod:`pitfall.sweep`); :func:`sweep_spec`
wraps one in a sweep spec.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pitfall import splits
from pitfall.storage import is_url

__all__ = [
    "GAUSSIAN_SIZES",
    "IMPUTATION_TRAINING",
    "MAX_COMBINED_PARAMS",
    "N_COMBINED",
    "PAPER_SHAPE",
    "REMEDIES",
    "REMEDY_SETTINGS",
    "TRAINING",
    "combined_draw",
    "gbm_grid",
    "imputation_grid",
    "model_grid",
    "remedies_spec",
    "remedy_grid",
    "sweep_spec",
]


#: Training recipe per size: the paper's (32 x 400 batches, <= 100 epochs, patience 5) is
#: the "paper" size; smaller sizes shorten epochs so a sweep fits a laptop's CPU.
TRAINING = {
    "quick": {
        "batches_per_epoch": 40,
        "max_epochs": 6,
        "patience": 2,
        "valid_size": 640,
        "sample_size": 2000,
    },
    "demo": {
        "batches_per_epoch": 100,
        "max_epochs": 12,
        "patience": 3,
        "valid_size": 1600,
        "sample_size": 6400,
    },
    "paper": {"batches_per_epoch": 400, "max_epochs": 100, "patience": 5, "valid_size": 3200},
}


#: Input shapes at which the paper grid's parameter counts are quoted and the combined
#: architectures are drawn: the paper's five core marks and 2 kbp of sequence (upstream of
#: the TSS for expression, the middle of each 40 kb bin for TAD boundaries).
PAPER_SHAPE = {"n_marks": 5, "seq_len": 2000}


#: Combined architectures of the paper grid, and the parameter count they reach.
N_COMBINED = 100


MAX_COMBINED_PARAMS = 10**8


def _stacks(depths: Sequence[int], exponents: Sequence[int]) -> list[list[int]]:
    """Equal-width stacks: ``[2**k] * n`` for every depth ``n`` and exponent ``k``."""
    return [[2**k] * n for n in depths for k in exponents]


def combined_draw(
    n: int = N_COMBINED,
    *,
    seed: int = 0,
    max_params: int = MAX_COMBINED_PARAMS,
    n_marks: int = PAPER_SHAPE["n_marks"],
    seq_len: int = PAPER_SHAPE["seq_len"],
    n_candidates: int = 4000,
) -> list[dict[str, Any]]:
    """``n`` randomly drawn combined architectures spanning sizes up to ``max_params``.

    Each candidate draws, uniformly and independently: 1-3 convolution layers of ``2**a``
    filters (a in 0..8) and one dense layer of ``2**b`` units (b in 0..10) on the sequence;
    1-5 dense layers of ``2**c`` units (c in 0..12) on the epigenomic signal; ``2**d`` units
    (d in 0..12) in the layer after the concatenation. Of ``n_candidates`` such draws (from
    ``numpy.random.default_rng(seed)``), those with at most ``max_params`` parameters at
    ``(n_marks, seq_len)`` are kept, and the ``n`` nearest to ``n`` targets evenly spaced in
    log parameters, from the smallest kept candidate to ``max_params``, are picked (each at
    most once): random architectures whose sizes cover the whole range, the largest about
    ``max_params``. Deterministic for a seed.

    Returns
    -------
    list of dict
        ``[[models]]`` tables of a sweep, one model each, by increasing parameter count.
    """
    from pitfall.models import ModelSpec

    rng = np.random.default_rng(seed)
    draws = np.column_stack(
        [
            rng.integers(1, 4, n_candidates),
            rng.integers(0, 9, n_candidates),
            rng.integers(0, 11, n_candidates),
            rng.integers(1, 6, n_candidates),
            rng.integers(0, 13, n_candidates),
            rng.integers(0, 13, n_candidates),
        ]
    )
    tables, sizes = [], []
    for n_conv, a, b, n_epi, c, d in np.unique(draws, axis=0).tolist():
        table = {
            "family": "combined",
            "filters": [2**a] * n_conv,
            "seq_units": [2**b],
            "units": [2**c] * n_epi,
            "joint_units": 2**d,
        }
        size = ModelSpec.from_dict(table).n_params(n_marks, seq_len)
        if size <= max_params:
            tables.append(table)
            sizes.append(size)
    logs = np.log10(np.asarray(sizes, dtype=float))
    if len(tables) < n:
        raise ValueError(f"only {len(tables)} distinct candidates; draw more than {n_candidates}")
    free = np.ones(len(tables), dtype=bool)
    picked = []
    for t in np.linspace(logs.min(), np.log10(max_params), n):
        # nearest free candidate (ties: the first in the sorted unique order)
        i = int(np.argmin(np.where(free, np.abs(logs - t), np.inf)))
        free[i] = False
        picked.append(i)
    picked.sort(key=lambda i: (sizes[i], i))
    return [tables[i] for i in picked]


def model_grid(task: str, size: str = "demo") -> list[dict[str, Any]]:
    """``[[models]]`` tables of a sweep: every family of the paper over a range of sizes.

    ``paper``: every power of two the methods list, for both tasks alike -- epigenomic dense
    networks of 1-5 layers of 2^0..2^12 units (65); sequence dense networks of 1-3 layers
    of 2^0..2^10 (33); sequence convolutional networks of 1-3 convolution layers of
    2^0..2^8 filters (kernel 8, max pooling 4) then one dense layer of 2^0..2^10 units
    (297); :data:`N_COMBINED` randomly drawn combined networks up to about 10^8 parameters
    (:func:`combined_draw`); and the controls at the sizes of the models they mimic: the
    locus-constant random inputs as the epigenomic grid (65), the permuted sequence as the
    sequence dense grid (33).

    ``quick`` and ``demo``: subsets that fit a laptop's CPU. Each family keeps both ends of
    its range: its smallest model (one unit or filter per layer, as few parameters as the
    paper's smallest) and the largest affordable on a CPU, at least two decades bigger. ``demo`` has every family of ``paper``; ``quick`` the
    three the demo's findings read (epigenomic, sequence dense, random control), its
    epigenomic models from 4 units (see the comment there). Both tasks get the same families.
    """
    if task not in ("expression", "tad"):
        from pitfall import tasks as task_registry

        task_registry.get_task(task)  # an unknown task fails here, naming the known ones
    if size == "quick":
        return [
            # Epigenomic models start at 4 units here: one ReLU unit on five non-negative
            # marks is dead from initialisation at seed 0 (AP = prevalence), which would make
            # the quick findings on epigenomic models a dead unit's artefact.
            {"family": "dense", "inputs": "signal", "units": [[4], [16], [64], [256, 256]]},
            {"family": "seq_dense", "units": [[1], [16], [512]]},
            {"family": "dense", "inputs": "random", "units": [[1], [64], [512]]},
        ]
    if size == "demo":
        return [
            {"family": "dense", "inputs": "signal", "units": [[1], [16], [256, 256], [1024, 1024]]},
            {"family": "seq_dense", "units": [[1], [16], [128], [1024]]},
            {"family": "seq_conv", "filters": [[1, 1, 1]], "units": [[1]]},
            {"family": "seq_conv", "filters": [[4]], "units": [[64]]},
            {"family": "seq_conv", "filters": [[32, 32]], "units": [[256]]},
            {
                "family": "combined",
                "filters": [1, 1, 1],
                "seq_units": [1],
                "units": [1],
                "joint_units": 1,
            },
            {
                "family": "combined",
                "filters": [4],
                "seq_units": [64],
                "units": [16],
                "joint_units": 16,
            },
            {
                "family": "combined",
                "filters": [32, 32],
                "seq_units": [256],
                "units": [256, 256],
                "joint_units": 256,
            },
            {"family": "dense", "inputs": "random", "units": [[1], [16], [256], [1024, 1024]]},
            {"family": "seq_dense", "permuted": True, "units": [[1], [128], [1024]]},
        ]
    if size != "paper":
        raise ValueError(f"size must be one of {tuple(TRAINING)}, got {size!r}")
    epigenomic = _stacks(range(1, 6), range(0, 13))
    sequence = _stacks(range(1, 4), range(0, 11))
    return [
        {"family": "dense", "inputs": "signal", "units": epigenomic},
        {"family": "seq_dense", "units": sequence},
        {
            "family": "seq_conv",
            "filters": _stacks(range(1, 4), range(0, 9)),
            "units": _stacks([1], range(0, 11)),
        },
        *combined_draw(),
        {"family": "dense", "inputs": "random", "units": epigenomic},
        {"family": "seq_dense", "permuted": True, "units": sequence},
    ]


def gbm_grid(size: str = "demo") -> list[dict[str, Any]]:
    """The gradient-boosted trees sweep: tree counts on each input type.

    ``paper``: every power of two from 1 to 1,024 trees (depth 4) on the signal and on the
    random control. Sequence inputs (one-hot, flattened: 8,000 features at 2 kbp) stop one
    power earlier, as each tree costs far more than on the five marks.
    """
    trees = {"quick": [1, 10, 50], "demo": [1, 4, 16, 64, 256], "paper": [2**k for k in range(11)]}
    many = trees[size]
    few = many[:-1] if size != "quick" else many
    return [
        {"family": "xgboost", "inputs": "signal", "n_trees": many, "max_depth": 4},
        {"family": "xgboost", "inputs": "random", "n_trees": many, "max_depth": 4},
        {"family": "xgboost", "inputs": "sequence", "n_trees": few, "max_depth": 4},
    ]


def sweep_spec(
    cube_path: str, task: str, target: str, size: str, *, gbm: bool = False, seeds=(0,)
) -> dict[str, Any]:
    """A sweep spec (the TOML's dict) for one task's three settings."""
    spec: dict[str, Any] = {
        # absolute: a sweep resolves relative paths against its own folder, not the cwd
        "cube": cube_path if is_url(str(cube_path)) else str(Path(cube_path).resolve()),
        "task": task,
        "target": target,
        "settings": list(splits.SETTINGS),
        "seeds": list(seeds),
        "training": TRAINING[size],
        "models": gbm_grid(size) if gbm else model_grid(task, size),
    }
    return spec


#: The remedies of each model (``[[models]]`` fields) and their names in tables.
REMEDIES: dict[str, dict[str, Any]] = {
    "none": {},
    "average input": {"average": True},
    "residual target": {"target": "residual"},
    "both": {"average": True, "target": "residual"},
}


#: Settings the remedies are run in: both need cell types other than the target's to
#: average over, which the cross-chromosome setting (trained on the target alone) lacks.
REMEDY_SETTINGS = ("cross-cell-type", "hybrid")


def remedy_grid(size: str = "quick") -> list[dict[str, Any]]:
    """``[[models]]`` tables of the remedies' sweep: each model under every remedy.

    An epigenomic model (which can learn the target cell type's own activity) and a
    sequence-only model (which can only learn a locus's average activity), at sizes the
    size affords; each plain, with the average activity as an input, trained on the
    residual, and both (:data:`REMEDIES`).
    """
    models: dict[str, list[dict[str, Any]]] = {
        "quick": [
            {"family": "dense", "inputs": "signal", "units": [64]},
            {"family": "seq_dense", "units": [512]},
        ],
        "demo": [
            {"family": "dense", "inputs": "signal", "units": [[16], [256, 256]]},
            {"family": "seq_dense", "units": [[16], [1024]]},
            {"family": "seq_conv", "filters": [32, 32], "units": [256]},
        ],
        "paper": [
            {"family": "dense", "inputs": "signal", "units": [[16], [256, 256], [4096] * 3]},
            {"family": "seq_dense", "units": [[16], [1024] * 3]},
            {"family": "seq_conv", "filters": [[32, 32], [256]], "units": [256]},
            {
                "family": "combined",
                "filters": [64],
                "seq_units": [256],
                "units": [256, 256],
                "joint_units": 256,
            },
        ],
    }
    if size not in models:
        raise ValueError(f"size must be one of {tuple(models)}, got {size!r}")
    return [{**m, **fields} for m in models[size] for fields in REMEDIES.values()]


def remedies_spec(
    cube_path: str,
    task: str,
    target: str,
    size: str = "quick",
    *,
    seeds: Sequence[int] = (0,),
    training: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The remedies' sweep spec (the TOML's dict): :func:`remedy_grid` in the settings
    across cell types (:data:`REMEDY_SETTINGS`), with the size's training recipe (or
    ``training``)."""
    spec = sweep_spec(cube_path, task, target, size, seeds=seeds)
    spec["settings"] = list(REMEDY_SETTINGS)
    spec["models"] = remedy_grid(size)
    if training is not None:
        spec["training"] = dict(training)
    return spec


#: Preprint Figure S2's networks per size: hidden units, seeds, test points and iterations
#: (:func:`pitfall.experiments.preprint_s2.size_sweep`).
GAUSSIAN_SIZES: dict[str, dict[str, Any]] = {
    "quick": {"sizes": (1, 4, 16, 64, 256), "seeds": (0,), "n_test": 10_000, "max_iter": 200},
    "demo": {
        "sizes": (1, 4, 16, 64, 256, 1024),
        "seeds": (0, 1),
        "n_test": 10_000,
        "max_iter": 300,
    },
    "paper": {
        "sizes": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        "seeds": (0, 1, 2),
        "n_test": 20_000,
        "max_iter": 300,
    },
}


#: The imputation families' training per size: passes over the training values, mini-batch
#: and Adam's rate (:class:`pitfall.models.impute.ImputationModel`).
IMPUTATION_TRAINING: dict[str, dict[str, Any]] = {
    "quick": {"epochs": 3, "batch_size": 512, "learning_rate": 3e-3},
    "demo": {"epochs": 8, "batch_size": 512, "learning_rate": 2e-3},
    "paper": {"epochs": 20, "batch_size": 1024, "learning_rate": 1e-3},
}


def imputation_grid(size: str = "quick") -> list[dict[str, Any]]:
    """Model specs (``ModelSpec.to_dict()`` form) of the imputation figure, per size.

    Each family spans several decades of parameters: dense networks on the target cell
    type's other marks, their locus-constant random control, the Avocado-style
    factorization (its position embeddings grow with ``embed``), and XGBoost regression.
    """
    dense = {
        "quick": [[8], [64]],
        "demo": [[4], [32], [256], [256, 256]],
        "paper": [[4], [32], [256], [1024, 1024], [2048, 2048, 2048]],
    }
    random = {"quick": [[64]], "demo": [[32], [256]], "paper": [[32], [256], [1024, 1024]]}
    avocado = {
        "quick": [((1, 1, 1, 1), [8]), ((8, 4, 8, 4), [32]), ((32, 8, 32, 8), [64])],
        "demo": [
            ((1, 1, 1, 1), [8]),
            ((4, 4, 4, 4), [32]),
            ((16, 8, 16, 8), [64]),
            ((64, 8, 64, 16), [128]),
        ],
        "paper": [
            ((1, 1, 1, 1), [8]),
            ((4, 4, 4, 4), [32]),
            ((16, 8, 16, 8), [64]),
            ((64, 16, 64, 16), [256]),
            ((256, 32, 256, 32), [512, 512]),
        ],
    }
    trees = {"quick": [4, 32], "demo": [4, 16, 64], "paper": [4, 16, 64, 256]}
    if size not in dense:
        raise ValueError(f"size must be one of {tuple(dense)}, got {size!r}")
    out: list[dict[str, Any]] = [
        {"family": "impute_dense", "inputs": "signal", "units": u} for u in dense[size]
    ]
    out += [{"family": "impute_dense", "inputs": "random", "units": u} for u in random[size]]
    out += [
        {"family": "avocado", "inputs": "signal", "embed": list(e), "units": u, "block_size": 40}
        for e, u in avocado[size]
    ]
    out += [
        {"family": "impute_xgboost", "inputs": "signal", "n_trees": n, "max_depth": 6}
        for n in trees[size]
    ]
    return out
