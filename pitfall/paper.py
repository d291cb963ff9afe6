"""The paper's experiments as data and figure makers, shared by ``pitfall demo`` and pipelines.

Model grids per size (``quick``, ``demo``, ``paper``) follow Schreiber et al. 2020's
families: ``paper`` every power of two of the methods (593 networks per setting, up to
1.3e8 parameters, :func:`model_grid`), ``quick`` and ``demo`` subsets that fit 2 CPU cores;
each experiment of a grid is one sweep row. The findings (:func:`findings`) are computed
from the results table, so the report's sentences and the tests that check them read the
same numbers. The paper's two remedies (the average activity as an input, the residual
target) run as their own sweep and are scored against the average-activity baseline on the
same loci, overall and within activity groups (:func:`remedies`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from pitfall import baselines, evaluate, random_ranking, splits, sweep
from pitfall.multiple_testing import adjust_pvalues

#: Training recipe per size: the paper's (32 x 400 batches, <= 100 epochs, patience 5) is
#: the "paper" size; smaller sizes shorten epochs so a sweep fits on 2 cores.
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
    draws = np.column_stack([
        rng.integers(1, 4, n_candidates), rng.integers(0, 9, n_candidates),
        rng.integers(0, 11, n_candidates), rng.integers(1, 6, n_candidates),
        rng.integers(0, 13, n_candidates), rng.integers(0, 13, n_candidates),
    ])  # fmt: skip
    tables, sizes = [], []
    for n_conv, a, b, n_epi, c, d in np.unique(draws, axis=0).tolist():
        table = {"family": "combined", "filters": [2**a] * n_conv, "seq_units": [2**b],
                 "units": [2**c] * n_epi, "joint_units": 2**d}  # fmt: skip
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

    ``quick`` and ``demo``: subsets that fit 2 CPU cores (about 2 and 15 minutes with the
    trees). Each family keeps both ends of its range: its smallest model (one unit or filter
    per layer, as few parameters as the paper's smallest) and the largest affordable on a
    CPU, at least two decades bigger. ``demo`` has every family of ``paper``; ``quick`` the
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
            {"family": "combined", "filters": [1, 1, 1], "seq_units": [1], "units": [1],
             "joint_units": 1},
            {"family": "combined", "filters": [4], "seq_units": [64], "units": [16],
             "joint_units": 16},
            {"family": "combined", "filters": [32, 32], "seq_units": [256], "units": [256, 256],
             "joint_units": 256},
            {"family": "dense", "inputs": "random", "units": [[1], [16], [256], [1024, 1024]]},
            {"family": "seq_dense", "permuted": True, "units": [[1], [128], [1024]]},
        ]  # fmt: skip
    if size != "paper":
        raise ValueError(f"size must be one of {tuple(TRAINING)}, got {size!r}")
    epigenomic = _stacks(range(1, 6), range(0, 13))
    sequence = _stacks(range(1, 4), range(0, 11))
    return [
        {"family": "dense", "inputs": "signal", "units": epigenomic},
        {"family": "seq_dense", "units": sequence},
        {"family": "seq_conv", "filters": _stacks(range(1, 4), range(0, 9)),
         "units": _stacks([1], range(0, 11))},
        *combined_draw(),
        {"family": "dense", "inputs": "random", "units": epigenomic},
        {"family": "seq_dense", "permuted": True, "units": sequence},
    ]  # fmt: skip


def gbm_grid(size: str = "demo") -> list[dict[str, Any]]:
    """The gradient-boosted trees sweep: tree counts on each input type.

    ``paper``: every power of two from 1 to 1,024 trees (depth 4) on the signal and on the
    random control. Sequence inputs (one-hot, flattened: 8,000 features at 2 kbp) stop one
    power earlier, as each tree costs far more than on the five marks.
    """
    trees = {"quick": [1, 10, 50], "demo": [1, 4, 16, 64, 256],
             "paper": [2**k for k in range(11)]}  # fmt: skip
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
        "cube": cube_path if "://" in str(cube_path) else str(Path(cube_path).resolve()),
        "task": task,
        "target": target,
        "settings": list(splits.SETTINGS),
        "seeds": list(seeds),
        "training": TRAINING[size],
        "models": gbm_grid(size) if gbm else model_grid(task, size),
    }
    return spec


# --------------------------------------------------------------------------------------------
# Findings: the numbers behind the report's sentences


#: How far apart the largest epigenomic model's APs across cell types and on unseen
#: chromosomes may be before its gain counts as memorised (in 30 quick-recipe runs of the
#: synthetic compendium at three artefact and noise levels the gap stayed within 0.016).
EPIGENOMIC_MARGIN = 0.02


def trend(results: pd.DataFrame, setting: str, inputs: Sequence[str]) -> dict[str, float]:
    """Spearman correlation of AP with log parameter count, and the AP range, for one panel."""
    rows = results[
        (results["status"] == "ok")
        & (results["setting"] == setting)
        & (results["inputs"].isin(list(inputs)))
        & (results["family"] != "xgboost")
    ]
    if len(rows) < 2:
        return {"n": len(rows), "rho": float("nan"), "p": float("nan"), "gain": float("nan")}
    rho, p = (float("nan"), float("nan"))
    if len(rows) >= 3:
        rho, p = stats.spearmanr(np.log10(rows["n_params"].astype(float)), rows["ap"].astype(float))
    small = rows.loc[rows["n_params"].astype(float).idxmin()]
    large = rows.loc[rows["n_params"].astype(float).idxmax()]
    return {
        "n": int(len(rows)),
        "rho": float(rho),
        "p": float(p),
        "gain": float(large["ap"] - small["ap"]),
        "ap_min": float(rows["ap"].min()),
        "ap_max": float(rows["ap"].max()),
        "ap_smallest": float(small["ap"]),
        "ap_largest": float(large["ap"]),
        "baseline": float(rows["ap_average_activity"].median()),
        "random": float(rows["ap_random"].median()),
    }


def findings(results: pd.DataFrame, task: str) -> dict[str, Any]:
    """What the paper claims, measured on this results table.

    For each setting: the trend with size of sequence-only models (the permuted control
    included), of the locus-constant random control, of epigenomic-only models, and whether
    the average-activity baseline beats every model.
    """
    res = results[(results["task"] == task) & (results["status"] == "ok")]
    out: dict[str, Any] = {}
    for setting in splits.SETTINGS:
        part = res[res["setting"] == setting]
        if part.empty:
            continue
        best = float(part["ap"].max())
        base = float(part["ap_average_activity"].median())
        out[setting] = {
            "sequence": trend(res, setting, ["sequence", "permuted"]),
            "random": trend(res, setting, ["random"]),
            "signal": trend(res, setting, ["signal"]),
            "best_model_ap": best,
            "best_model": str(part.loc[part["ap"].idxmax(), "label"]),
            "average_activity_ap": base,
            "baseline_beats_all": bool(base > best),
        }
    return out


def describe(f: dict[str, Any], task: str) -> list[str]:
    """Plain-language sentences for the findings of one task."""
    lines = []
    ctt, hyb = f.get("cross-cell-type"), f.get("hybrid")
    if ctt:
        s = ctt["sequence"]
        lines.append(
            f"Cross-cell-type ({task}): sequence-only models go from AP "
            f"{s.get('ap_smallest', float('nan')):.3f} (smallest) to {s.get('ap_largest', float('nan')):.3f} "
            f"(largest), Spearman rho of AP with log(parameters) = {s['rho']:.2f}; the "
            f"locus-constant random control, which carries no biology, gives rho = "
            f"{ctt['random']['rho']:.2f}. The average-activity baseline scores "
            f"{ctt['average_activity_ap']:.3f}, "
            + ("above every model" if ctt["baseline_beats_all"] else
               f"below the best model ({ctt['best_model']}, {ctt['best_model_ap']:.3f})")
            + "."
        )  # fmt: skip
    if hyb:
        s, r = hyb["sequence"], hyb["random"]
        gone = max(s.get("gain", 0.0), r.get("gain", 0.0)) < 0.05
        lines.append(
            f"Hybrid ({task}, unseen cell type and unseen chromosome): the same sequence-only "
            f"models span AP {s.get('ap_min', float('nan')):.3f}-"
            f"{s.get('ap_max', float('nan')):.3f} (largest minus smallest "
            f"{s.get('gain', float('nan')):+.3f}), the random control "
            f"{r.get('gain', float('nan')):+.3f}: "
            + ("memorising a locus no longer pays." if gone else
               "size still helps here, so not all of the gain is memorisation.")
        )  # fmt: skip
    if ctt and hyb and ctt["signal"]["n"] >= 2 and hyb["signal"]["n"] >= 2:
        e, h = ctt["signal"], hyb["signal"]
        # Read memorisation off the largest model, the one that could memorise most: the
        # smallest networks' fits vary from run to run (a 4-unit network may or may not
        # converge in a short recipe), which makes largest-minus-smallest a noisy measure.
        same = abs(e["ap_largest"] - h["ap_largest"]) < EPIGENOMIC_MARGIN
        lines.append(
            f"Epigenomic-only models span AP {e['ap_min']:.3f}-{e['ap_max']:.3f} across cell "
            f"types and {h['ap_min']:.3f}-{h['ap_max']:.3f} on unseen chromosomes; the "
            f"largest reaches {e['ap_largest']:.3f} across cell types and "
            f"{h['ap_largest']:.3f} on unseen chromosomes, "
            + ("about the same: what they learn is how marks relate to activity, not which "
               "locus is which." if same else
               "more across cell types than on unseen chromosomes: part of it is memorised.")
        )  # fmt: skip
    return lines


# --------------------------------------------------------------------------------------------
# Figure support: partitioned evaluation (S4, preprint S3), baseline vs similarity (S5), the
# signal's embedding (preprint S1), single cell types as predictors (the project's own)

#: The partitioned figure's reference within a group: a random ranking's expected AP.
RANDOM_RANKING = "random ranking (expected AP)"

#: The partitioned figure's tests: ``(name, side A, side B)`` over the models' per-group
#: APs. The paper's is the first; each control is compared with the epigenomic models on
#: its own, so a control never counts as a sequence model.
PARTITIONED_TESTS = (
    ("epigenomic > sequence", "signal", "sequence"),
    ("epigenomic > permuted sequence (control)", "signal", "permuted"),
    ("epigenomic > locus-constant random (control)", "signal", "random"),
)


def partitioned_table(
    ds: xr.Dataset, split: splits.Split, results: pd.DataFrame, results_dir: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Figure S4 (preprint S3): AP per activity group for every model, and the tests.

    The split's test loci are grouped by the number of training + validation cell types
    in which they are active (:func:`pitfall.evaluate.partition_by_activity`); every
    model's saved predictions for the target are scored within each group, next to the AP
    a random ranking of the group's loci earns on average (the average-activity baseline
    ties within a group, so that is its fair reference there). In each group the epigenomic-only models' APs are compared
    with the sequence-only models' APs by a one-sided Mann-Whitney U test (epigenomic
    greater), the paper's test (:func:`pitfall.evaluate.mann_whitney_by_group`): at equal
    average activity, only the target's own signal still ranks its loci. The controls
    (permuted sequence, locus-constant random inputs) are tested against the epigenomic
    models separately, never pooled with the sequence models.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (``label (cell_type, locus)``).
    split : pitfall.splits.Split
        The setting evaluated (the paper's: cross-cell-type), one test cell type.
    results : pandas.DataFrame
        Rows of the models of that split (``id``, ``inputs``, ``label``), predictions saved.
    results_dir : str
        The sweep's results folder (:func:`pitfall.sweep.read_predictions`).

    Returns
    -------
    table : pandas.DataFrame
        One row per (model, group): ``group`` (int), ``predictor`` (the model's inputs,
        or :data:`RANDOM_RANKING`), ``model`` (its label; "" for the reference), ``ap``
        (NaN where the group has no positive locus).
    tests : pandas.DataFrame
        One row per (comparison, group), comparisons in :data:`PARTITIONED_TESTS` order
        (those with both sides present): ``comparison``, ``group``, ``n_a``, ``n_b``,
        ``U``, ``p_value``, ``p_floor``.
    """
    test = split.test(ds)
    known = [*split.train_cell_types, *split.valid_cell_types]
    lab_known = ds["label"].sel(cell_type=known).sel(locus=test["locus"].values)
    groups = np.asarray(evaluate.partition_by_activity(lab_known))
    y = test["label"].sel(cell_type=split.test_cell_types[0]).values
    rows = []
    for _, r in results.iterrows():
        scores = sweep.read_predictions(results_dir, r["id"]).sel(
            cell_type=split.test_cell_types[0]
        )
        aps = evaluate.ap_by_group(y, scores.values, groups)
        for g, ap in aps.items():
            rows.append({"group": int(g), "predictor": r["inputs"], "model": r["label"], "ap": ap})
    # Within a group the average activity ties, and its AP (ties grouped) is the group's
    # prevalence, below what any random order of the loci earns: the reference drawn is a
    # random ranking's expected AP.
    known_y = ~np.isnan(y)
    for g in np.unique(groups[known_y]):
        m = known_y & (groups == g)
        n, k = int(m.sum()), int(np.sum(y[m] == 1))
        ap = float(random_ranking.expected_ap(n, k)) if k else float("nan")
        rows.append({"group": int(g), "predictor": RANDOM_RANKING, "model": "", "ap": ap})
    table = pd.DataFrame(rows, columns=["group", "predictor", "model", "ap"])
    tests = []
    present = set(table["predictor"])
    for name, a, b in PARTITIONED_TESTS:
        if a in present and b in present:
            res = evaluate.mann_whitney_by_group(table, a, b, "greater")
            tests.append(res.assign(comparison=name))
    columns = ["comparison", "group", "n_a", "n_b", "U", "p_value", "p_floor"]
    if not tests:
        return table, pd.DataFrame(columns=columns)
    return table, pd.concat(tests, ignore_index=True)[columns]


def partitioned_summary(tests: pd.DataFrame, alpha: float = 0.05) -> dict[str, dict[str, Any]]:
    """Per comparison of :func:`partitioned_table`: groups tested, below ``alpha``, reachable.

    Returns
    -------
    dict
        ``{comparison: {"groups", "significant", "reachable", "at_floor", "p_floor", "n_a",
        "n_b"}}``: groups with a p-value, those with ``p < alpha``, those where the exact
        test could reach ``alpha`` at all with the models at hand (``p_floor < alpha``),
        those at the floor (every model of side A above every model of side B: the
        strongest result the test can give), the largest floor and the model counts per
        side.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, part in tests.groupby("comparison", sort=False):
        done = part[part["p_value"].notna()]
        out[str(name)] = {
            "groups": int(len(done)),
            "significant": int((done["p_value"] < alpha).sum()),
            "reachable": int((done["p_floor"] < alpha).sum()),
            # a relative margin: scipy's exact p and 1 / C(n, k) differ in the last bits
            "at_floor": int((done["p_value"] <= done["p_floor"] * (1 + 1e-9)).sum()),
            "p_floor": float(done["p_floor"].max()) if len(done) else float("nan"),
            "n_a": int(done["n_a"].max()) if len(done) else 0,
            "n_b": int(done["n_b"].max()) if len(done) else 0,
        }
    return out


def cell_type_correlation(
    x: xr.DataArray, *, dim: str = "cell_type", block: int | None = None
) -> pd.DataFrame:
    """Pearson correlation of every pair of cell types, chunk by chunk over the loci.

    Each pair is correlated over the loci (and any other dims, e.g. marks) where both are
    defined (pairwise-complete, as :meth:`pandas.DataFrame.corr`), from sums accumulated
    block by block, so a cube of millions of loci never sits in memory at once.

    Parameters
    ----------
    x : xarray.DataArray, dims (dim, locus, ...)
        Labels, values or signal of every cell type.
    dim : str
        The cell-type dim.
    block : int, optional
        Loci read at a time (default: about 8 million values per block).

    Returns
    -------
    pandas.DataFrame, shape (n, n)
        Indexed and columned by cell type; 1 on the diagonal; NaN for a pair with fewer
        than two shared values or a constant one.
    """
    others = [d for d in x.dims if d not in (dim, "locus")]
    x = x.transpose(dim, "locus", *others)
    n, n_loci = x.sizes[dim], x.sizes["locus"]
    width = int(np.prod([x.sizes[d] for d in others])) if others else 1
    block = block or max(1, 8_000_000 // max(n * width, 1))
    count, s, ss, cross = (np.zeros((n, n)) for _ in range(4))
    shift = None
    for a in range(0, n_loci, block):
        v = np.asarray(x.isel(locus=slice(a, a + block)).values, dtype=np.float64).reshape(n, -1)
        w = np.isfinite(v)
        if shift is None:
            # centring by a first estimate of each mean keeps the sums of squares small
            # (correlation does not change under a shift)
            n_known = w.sum(axis=1)
            total = np.where(w, v, 0.0).sum(axis=1)
            shift = (total / np.maximum(n_known, 1))[:, None]
        v0 = np.where(w, v - shift, 0.0)
        wf = w.astype(np.float64)
        count += wf @ wf.T
        s += v0 @ wf.T  # s[i, j]: sum of i's values where i and j are both defined
        ss += (v0 * v0) @ wf.T
        cross += v0 @ v0.T
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = count * cross - s * s.T
        var = count * ss - s * s
        r = cov / np.sqrt(var * var.T)
    r[(count < 2) | (var <= 0) | (var.T <= 0)] = np.nan
    r = np.clip(r, -1.0, 1.0)
    names = [str(c) for c in x[dim].values]
    return pd.DataFrame(r, index=pd.Index(names, name=dim), columns=names)


def baseline_vs_similarity(
    ds: xr.Dataset,
    train_chroms: Sequence[str],
    test_chroms: Sequence[str],
    *,
    on: str = "label",
    cell_types: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Figure S5: each target's average-activity AP, and its similarity to the others.

    Every cell type is the target in turn. The baseline scores each locus by the mean
    label of every other cell type (no training), and is scored on the target's labels at
    the loci on ``test_chroms`` (:func:`pitfall.evaluate.average_activity_evaluation`,
    one pass for every target). The target's similarity to each other cell type is the
    Pearson correlation of ``on`` over the loci on ``train_chroms`` only
    (:func:`cell_type_correlation`), so the similarity never sees the loci it is
    compared with.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube: ``label (cell_type, locus)`` and ``on``.
    train_chroms, test_chroms : sequence of str
        Chromosomes whose loci measure similarity, and where the baseline is scored (as a
        hybrid split's: e.g. chr3-22 and chr1).
    on : str
        The variable compared: ``"label"``, ``"value"`` (compared as ``log1p``, as
        :class:`pitfall.baselines.MostSimilar` does) or ``"signal"`` (all marks).
    cell_types : sequence of str, optional
        The cell types (targets, and each other's training set); default every one.

    Returns
    -------
    pandas.DataFrame
        One row per target, in cube order: ``cell_type``, ``name`` and ``group`` (the
        cube's ``cell_type_name`` and ``cell_type_group``, or ""), ``ap``, ``prevalence``
        (the target's share of active test loci), ``ap_normalised`` (``(ap -
        prevalence) / (1 - prevalence)``: how much of the way from random to perfect),
        ``mean_similarity`` and ``max_similarity`` (over the other cell types),
        ``most_similar``. ``attrs``: ``on``, ``n_train_loci``, ``n_test_loci``.
    """
    cts = [str(c) for c in ds["cell_type"].values] if cell_types is None else list(cell_types)
    if len(cts) < 3:
        raise ValueError(f"need at least 3 cell types (a target and 2 to average), got {cts}")
    test_pos = splits.locus_positions(ds, list(test_chroms))
    train_pos = splits.locus_positions(ds, list(train_chroms))
    if not len(test_pos) or not len(train_pos):
        raise ValueError(
            f"no loci on the test chromosomes {list(test_chroms)} or on the training ones "
            f"{list(train_chroms)} (the cube's: {splits.cube_chroms(ds)})"
        )
    if on not in ds:
        raise ValueError(f"the cube has no {on!r} variable to compare cell types on")
    labels = splits.take_loci(ds[["label"]], test_pos)["label"].sel(cell_type=cts)
    ev = evaluate.average_activity_evaluation(labels)
    whole = ev.table()
    whole = whole[whole["group"] == "all"].set_index("cell_type")
    x = splits.take_loci(ds[[on]], train_pos)[on].sel(cell_type=cts)
    if on == "value":
        x = xr.apply_ufunc(np.log1p, x.clip(min=0), dask="allowed")
    corr = cell_type_correlation(x)
    off = corr.to_numpy(copy=True)
    np.fill_diagonal(off, np.nan)
    names = _coord(ds, "cell_type_name", cts)
    groups = _coord(ds, "cell_type_group", cts)
    rows = []
    for i, ct in enumerate(cts):
        sims = off[i]
        ap, prev = float(ev.ap[ct]), float(whole.loc[ct, "prevalence"])
        best = int(np.nanargmax(sims)) if np.isfinite(sims).any() else -1
        rows.append(
            {
                "cell_type": ct,
                "name": names[i],
                "group": groups[i],
                "ap": ap,
                "prevalence": prev,
                "ap_normalised": (ap - prev) / (1 - prev) if prev < 1 else float("nan"),
                "mean_similarity": float(np.nanmean(sims)) if best >= 0 else float("nan"),
                "max_similarity": float(sims[best]) if best >= 0 else float("nan"),
                "most_similar": cts[best] if best >= 0 else "",
            }
        )
    out = pd.DataFrame(rows)
    out.attrs.update({"on": on, "n_train_loci": int(len(train_pos)),
                      "n_test_loci": int(len(test_pos))})  # fmt: skip
    return out


def _coord(ds: xr.Dataset, name: str, cts: Sequence[str]) -> list[str]:
    if name not in ds.coords:
        return [""] * len(cts)
    values = ds[name].sel(cell_type=list(cts)).values
    return [str(v) for v in values]


def similarity_summary(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Spearman correlations over the targets of :func:`baseline_vs_similarity`'s table.

    Returns
    -------
    dict
        ``{"<similarity> vs <ap column>": {"rho", "p", "n"}}`` for ``mean_similarity`` and
        ``max_similarity`` against ``ap`` and ``ap_normalised``, and ``prevalence vs ap``
        (the confounder: AP rises with the share of active loci).
    """
    out = {}
    pairs = [(s, a) for s in ("mean_similarity", "max_similarity")
             for a in ("ap", "ap_normalised")] + [("prevalence", "ap")]  # fmt: skip
    for sim, col in pairs:
        ok = table[sim].notna() & table[col].notna()
        if ok.sum() < 3:
            out[f"{sim} vs {col}"] = {"rho": float("nan"), "p": float("nan"), "n": int(ok.sum())}
            continue
        rho, p = stats.spearmanr(table.loc[ok, sim], table.loc[ok, col])
        out[f"{sim} vs {col}"] = {"rho": float(rho), "p": float(p), "n": int(ok.sum())}
    return out


def signal_embedding(
    ds: xr.Dataset,
    cell_type: str,
    *,
    umap: bool = True,
    max_points: int = 5000,
    seed: int = 0,
) -> pd.DataFrame:
    """Preprint Figure S1: the loci of one cell type by PCA and UMAP of their signal.

    Each locus is the vector of its signal (every mark, and any other dim, flattened);
    missing values take their column's mean and every column is standardised, so no mark
    dominates by its scale. PCA uses every locus; UMAP (``umap-learn``, the optional
    ``umap`` extra) a random sample of ``max_points`` loci, as do the returned rows.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube, with ``signal (cell_type, locus, mark)`` and ``label``.
    cell_type : str
        Whose signal and labels.
    umap : bool
        Also embed by UMAP when ``umap-learn`` is installed (its first run in a process
        compiles for about half a minute). Without it, or with ``umap=False``, the table
        has no UMAP columns and ``attrs["note"]`` says why (the figure then shows PCA
        alone, with the note).
    max_points : int
        Loci returned (and embedded by UMAP), sampled at random without replacement.
    seed : int
        Seed of the sample and of UMAP (which then runs single-threaded, reproducibly).

    Returns
    -------
    pandas.DataFrame
        One row per sampled locus: ``locus`` (position along the cube), ``PC1``, ``PC2``,
        ``UMAP1`` and ``UMAP2`` (when embedded), ``label``. ``attrs``: ``explained`` (the
        two components' shares of the variance), ``n_loci``, ``features`` and ``note``
        (empty when UMAP ran).
    """
    if "signal" not in ds:
        raise ValueError("the cube has no signal to embed (a labels-only cube?)")
    sig = ds["signal"].sel(cell_type=cell_type)
    sig = sig.transpose("locus", *[d for d in sig.dims if d != "locus"])
    x = np.asarray(sig.values, dtype=np.float64).reshape(sig.sizes["locus"], -1)
    known = np.isfinite(x)
    means = np.where(known, x, 0.0).sum(axis=0) / np.maximum(known.sum(axis=0), 1)
    x = np.where(known, x, means)
    sd = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    pcs = u[:, :2] * s[:2]
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(len(z), size=min(max_points, len(z)), replace=False))
    out = pd.DataFrame({"locus": take, "PC1": pcs[take, 0], "PC2": pcs[take, 1]})
    note = ""
    if umap:
        try:
            import umap as umap_learn  # optional: the "umap" extra
        except ImportError:
            note = ("UMAP not shown: umap-learn is not installed "
                    "(pip install 'pitfall[umap]'); PCA only.")  # fmt: skip
        else:
            import warnings  # here: the module's header belongs to the grids' editors

            with warnings.catch_warnings():
                # a fixed random_state makes UMAP single-threaded, and it says so
                warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
                emb = umap_learn.UMAP(
                    n_neighbors=15, min_dist=0.1, random_state=seed
                ).fit_transform(z[take])
            out["UMAP1"], out["UMAP2"] = emb[:, 0], emb[:, 1]
    else:
        note = "UMAP not computed here (it takes about a minute); PCA only."
    out["label"] = ds["label"].sel(cell_type=cell_type).values[take]
    total = float((s**2).sum())
    out.attrs.update({
        "explained": (s[:2] ** 2 / total).tolist() if total > 0 else [float("nan")] * 2,
        "n_loci": int(len(z)),
        "features": int(z.shape[1]),
        "note": note,
    })  # fmt: skip
    return out


def strength_vs_similarity(ds: xr.Dataset, target: str, on: str | None = None) -> pd.DataFrame:
    """Single cell types as predictors (the project's own figure, not the paper's).

    Each other cell type's labels, used alone to predict the target's, against its
    similarity to the target (:meth:`pitfall.baselines.MostSimilar.similarity`, over every
    locus): how far the best single cell type falls below the average of all of them.

    Returns
    -------
    pandas.DataFrame
        ``cell_type``, ``similarity``, ``ap``, one row per other cell type
        (:func:`pitfall.evaluate.baseline_strength`).
    """
    others = [str(c) for c in ds["cell_type"].values if str(c) != target]
    train = ds.sel(cell_type=others)
    sim = baselines.MostSimilar(ds, on=on).fit(train).similarity(target)
    return evaluate.baseline_strength(ds["label"], target, sim)


# --------------------------------------------------------------------------------------------
# The paper's two remedies: the average activity as an input, the residual target

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
            {"family": "combined", "filters": [64], "seq_units": [256], "units": [256, 256],
             "joint_units": 256},
        ],
    }  # fmt: skip
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


def remedy_of(spec: dict[str, Any]) -> str:
    """The name in :data:`REMEDIES` of a spec's remedy fields."""
    average, residual = bool(spec.get("average")), spec.get("target") == "residual"
    return {(False, False): "none", (True, False): "average input",
            (False, True): "residual target", (True, True): "both"}[(average, residual)]  # fmt: skip


def remedy_table(
    ds: xr.Dataset,
    results: pd.DataFrame,
    results_dir: str | Path,
    *,
    task: str = "expression",
    target: str = "E003",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each remedied model against the average-activity baseline on the same loci.

    Every model's saved test scores go through :func:`pitfall.audit.audit_predictions`, with
    the split's training and validation cell types as the reference (the baseline averages
    their labels: exactly the cell types the model saw, its average input included) and its
    training chromosomes (so the audit knows the leakage: 1 across cell types, 0 hybrid).

    Returns
    -------
    table : pandas.DataFrame
        One row per model and setting: ``setting``, ``model`` (the architecture), ``inputs``,
        ``remedy`` (:data:`REMEDIES`), ``n_params``, ``ap``, ``ap_average_activity`` (the
        baseline, same loci, ties grouped), ``gain`` (the model's AP minus the baseline's
        with its ties broken at random, the audit's ``ap_diff``) and ``gain_ci`` (its
        block-bootstrap interval), ``within_group_gain`` (the audit's: mean over activity
        groups, weighted by loci, of the model's AP minus a random ranking's expected AP
        there, the baseline's fair reference within a group) with ``within_group_gain_ci``,
        ``within_group_p`` (one-sided permutation test of that gain), ``beats_baseline``
        (the audit's: gain above its margin with an interval above 0), ``leakage`` and
        ``call`` (the audit's verdict).
    groups : pandas.DataFrame
        One row per model, setting and activity group (the partitioned evaluation,
        :func:`pitfall.evaluate.partitioned_evaluation`): ``group`` (training + validation
        cell types in which the locus is active), ``n_loci``, ``n_positive``, ``ap_model``,
        ``ap_random_expected`` (a random ranking of the group's loci: the reference within
        a group, where the average activity ties), ``p_adjusted`` (the audit's permutation
        test, Holm-adjusted over the groups).
    """
    import json
    import warnings

    from pitfall import audit, tasks

    ok = results[(results["status"] == "ok") & results["setting"].isin(REMEDY_SETTINGS)]
    rows, group_rows = [], []
    for _, r in ok.iterrows():
        spec = json.loads(r["spec"])
        split = tasks.get_task(task).split(ds, r["setting"], target)
        scores = sweep.read_predictions(results_dir, r["id"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unlabelled loci are left out, as documented
            rep = audit.audit_predictions(
                scores, ds,
                train_cell_types=[*split.train_cell_types, *split.valid_cell_types],
                train_chroms=[*split.train_chroms, *split.valid_chroms],
                n_bootstrap=REMEDY_BOOTSTRAP,
            )  # fmt: skip
        pooled = rep.summary.iloc[-1]
        base = {"setting": r["setting"], "model": _base_label(spec), "inputs": r["inputs"],
                "remedy": remedy_of(spec)}  # fmt: skip
        rows.append({
            **base,
            "n_params": int(r["n_params"]),
            "ap": float(pooled["ap_model"]),
            "ap_average_activity": float(pooled["ap_average_activity"]),
            "gain": float(pooled["ap_diff"]),
            "gain_ci": list(pooled["ap_diff_ci"]),
            "within_group_gain": float(pooled["within_group_gain"]),
            "within_group_gain_ci": list(pooled["within_group_gain_ci"]),
            "within_group_p": float(pooled["within_group_p"]),
            "beats_baseline": bool(rep.beats_baseline),
            "leakage": float(pooled["leakage"]),
            "call": str(pooled["call"]),
        })  # fmt: skip
        parts = rep.partitions[rep.partitions["cell_type"] == "pooled"]
        for _, g in parts.iterrows():
            group_rows.append({**base, "group": int(g["group"]), "n_loci": int(g["n_loci"]),
                               "n_positive": int(g["n_positive"]),
                               "ap_model": float(g["ap_model"]),
                               "ap_random_expected": float(g["ap_random_expected"]),
                               "p_adjusted": float(g["p_adjusted"])})  # fmt: skip
    order = {name: i for i, name in enumerate(REMEDIES)}
    table = pd.DataFrame(rows)
    groups = pd.DataFrame(group_rows)
    if len(table):
        table = table.sort_values(
            ["setting", "inputs", "model", "remedy"],
            key=lambda c: c.map(order) if c.name == "remedy" else c,
        ).reset_index(drop=True)
    return table, groups


def _base_label(spec: dict[str, Any]) -> str:
    """The architecture's label, without the remedy's tags."""
    from pitfall.models import ModelSpec

    plain = {k: v for k, v in spec.items() if k not in ("average", "target")}
    return ModelSpec.from_dict(plain).label


#: AP above the baseline's that counts as beating it: the audit's default margin.
REMEDY_MARGIN = 0.01
#: Block-bootstrap replicates of each remedied model's audit.
REMEDY_BOOTSTRAP = 500
_KINDS = (("signal", "epigenomic"), ("sequence", "sequence-only"))


def describe_remedies(table: pd.DataFrame, margin: float = REMEDY_MARGIN) -> list[str]:
    """Plain-language sentences on the remedies in the hybrid setting, computed from
    :func:`remedy_table` (the best model of each input kind under each remedy, against the
    average-activity baseline on the same loci, overall and within activity groups)."""
    hyb = table[table["setting"] == "hybrid"] if len(table) else table
    if hyb.empty:
        return []
    base = float(hyb["ap_average_activity"].median())
    names = {"none": "plain", "average input": "with the average as an input",
             "residual target": "on the residual", "both": "with both"}  # fmt: skip
    kinds = [(k, name) for k, name in _KINDS if (hyb["inputs"] == k).any()]
    parts = []
    for kind, name in kinds:
        rows = hyb[hyb["inputs"] == kind]
        best = rows.groupby("remedy")["ap"].max()
        aps = ", ".join(f"{best[r]:.3f} {names[r]}" for r in REMEDIES if r in best)
        parts.append(f"{name} models reach AP {aps}")
    lines = [
        f"Hybrid setting (unseen cell type and unseen chromosome), where the average-activity "
        f"baseline scores AP {base:.3f} on the test loci: " + "; ".join(parts) + "."
    ]
    rem = hyb[hyb["remedy"] != "none"]
    above = rem[rem["beats_baseline"]]
    level = rem[rem["gain_ci"].map(lambda ci: ci[0] <= 0 <= ci[1])]
    best = above.loc[above["gain"].idxmax()] if len(above) else None
    lines.append(
        f"{len(above)} of {len(rem)} remedied models beat the baseline (by more than {margin:g} "
        f"AP, with a 95% interval above 0), {len(level)} are level with it (their interval "
        "includes 0)"
        + (f", the best {best['model']} ({best['remedy']}, {best['gain']:+.3f} "
           f"[{best['gain_ci'][0]:+.3f}, {best['gain_ci'][1]:+.3f}])" if best is not None
           else "")
        + "."
    )  # fmt: skip
    # Each model's within-group test is one of many: Holm over the hybrid models.
    hyb = hyb.assign(within_p_adjusted=adjust_pvalues(hyb["within_group_p"].to_numpy()))
    within = []
    for kind, name in kinds:
        rows = hyb[hyb["inputs"] == kind]
        w = rows["within_group_gain"]
        sig = int(((rows["within_p_adjusted"] < 0.05) & (w > 0)).sum())
        within.append(
            f"{name} models (plain or remedied) gain {w.min():+.3f} to {w.max():+.3f} AP over "
            f"a random ranking of the group's loci, significantly (one-sided permutation "
            f"test, Holm-adjusted over the {len(hyb)} models, p < 0.05) in {sig} of {len(rows)}"
        )
    lines.append(
        "Within groups of loci active in the same number of other cell types, where the "
        "baseline ties and a random ranking is its fair reference, " + "; ".join(within) + "."
    )
    rem = hyb[hyb["remedy"] != "none"]
    by_kind = {k: rem[rem["inputs"] == k] for k, _ in kinds}
    epi, seq = by_kind.get("signal"), by_kind.get("sequence")
    if epi is not None and len(epi) and seq is not None and len(seq):
        epi_best, seq_best = epi.loc[epi["gain"].idxmax()], seq.loc[seq["gain"].idxmax()]
        epi_sig = bool(((epi["within_p_adjusted"] < 0.05) & (epi["within_group_gain"] > 0)).any())
        seq_sig = bool(((seq["within_p_adjusted"] < 0.05) & (seq["within_group_gain"] > 0)).any())
        epi_reaches = epi_best["gain_ci"][1] >= 0
        seq_stays = seq_best["gain_ci"][0] <= 0 or seq_best["gain"] <= margin
        if epi_reaches and seq_stays and epi_sig and not seq_sig:
            where = "above" if bool(epi_best["beats_baseline"]) else "level with"
            lines.append(
                f"So a remedy brings an epigenomic model {where} the baseline (best AP "
                f"{epi_best['ap']:.3f}, {epi_best['gain']:+.3f}) by sparing it the "
                "relearning of the average, and its cell type's own signal then ranks loci "
                f"of equal average activity; sequence-only models get no further than the "
                f"baseline with any remedy (best AP {seq_best['ap']:.3f}, "
                f"{seq_best['gain']:+.3f}): a sequence, the same in every cell type, cannot "
                "say how one cell type departs from the average."
            )  # fmt: skip
        elif epi_best["gain_ci"][1] < 0 and seq_best["gain_ci"][1] < 0:
            lines.append(
                "Every remedied model falls short of the baseline here (every interval of "
                "the difference lies below 0): the average stays the thing to beat."
            )
    return lines


@dataclass
class RemedyReport:
    """Result of :func:`remedies`.

    Attributes
    ----------
    table, groups : pandas.DataFrame
        :func:`remedy_table`.
    sentences : list of str
        :func:`describe_remedies`.
    results : pandas.DataFrame
        The sweep's results table.
    """

    table: pd.DataFrame
    groups: pd.DataFrame
    sentences: list[str]
    results: pd.DataFrame

    def section(self) -> dict[str, Any]:
        """A report section (:func:`pitfall.report.html_report`): heading, findings, tables."""
        cols = ["setting", "model", "remedy", "n_params", "ap", "ap_average_activity", "gain",
                "gain_ci", "within_group_gain", "within_group_gain_ci", "within_group_p",
                "beats_baseline"]  # fmt: skip
        shown = self.table[cols].copy() if len(self.table) else self.table
        return {
            "heading": "Remedies: the average activity as an input, the residual target",
            "findings": self.sentences,
            "text": [
                "Each model trained plain, with the locus's average activity over the cell "
                "types it saw as one more input (never counting a pair's own label), on the "
                "residual from that average, and both; scored against the average-activity "
                "baseline on the same test loci (its ties broken at random: the audit's "
                "gain, with a 95% block-bootstrap interval) and, within groups of loci active "
                "in the same number of those cell types, against a random ranking of the "
                "group (the audit's within-group gain and its permutation test)."
            ],
            "tables": [shown],
        }


def remedies(
    cube_path: str | Path,
    results_dir: str | Path,
    *,
    task: str = "expression",
    target: str = "E003",
    size: str = "quick",
    workers: int | None = None,
    training: dict[str, Any] | None = None,
    progress: bool = True,
) -> RemedyReport:
    """Run the remedies' sweep on a cube and compare each model with the baseline.

    Parameters
    ----------
    cube_path
        The cube (e.g. the demo's ``store/expression``).
    results_dir
        The sweep's folder (results table and saved predictions); a rerun trains only
        what is missing.
    task, target
        The task's split rules and the target cell type.
    size
        ``quick``, ``demo`` or ``paper``: the models (:func:`remedy_grid`) and the training
        recipe (:data:`TRAINING`).
    workers
        Local Dask workers (0: in this process).
    training
        A training recipe instead of the size's (:data:`TRAINING`).
    progress
        Show the sweep's progress bar.

    Returns
    -------
    RemedyReport
        The table, the per-group APs, the sentences, and :meth:`RemedyReport.section` for
        a report.
    """
    from pitfall import cube

    spec = remedies_spec(str(cube_path), task, target, size, training=training)
    exps = sweep.sweep_from_dict(spec, root=Path(results_dir)).experiments
    results = sweep.run_sweep(
        exps, results_dir, workers=workers, save_predictions=True, progress=progress
    )
    ids = {e.id for e in exps}
    results = results[results["id"].isin(ids)]
    ds = cube.open_cube(cube_path)
    table, groups = remedy_table(ds, results, results_dir, task=task, target=target)
    return RemedyReport(table, groups, describe_remedies(table), results)
