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

from pitfall import baselines, evaluate, splits, sweep

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
        same = abs(e["gain"] - h["gain"]) < 0.05
        lines.append(
            f"Epigenomic-only models span AP {e['ap_min']:.3f}-{e['ap_max']:.3f} across cell "
            f"types and {h['ap_min']:.3f}-{h['ap_max']:.3f} on unseen chromosomes: size buys "
            f"them {e['gain']:+.3f} and {h['gain']:+.3f}, "
            + ("about the same in both settings: what they learn is how marks relate to "
               "activity, not which locus is which." if same else
               "more across cell types than on unseen chromosomes.")
        )  # fmt: skip
    return lines


# --------------------------------------------------------------------------------------------
# Partitioned evaluation (Figure S3), PCA (Figure S1), baseline strength


def partitioned_table(
    ds: xr.Dataset, split: splits.Split, results: pd.DataFrame, results_dir: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """AP per activity group for every model of one setting, and the per-group tests.

    Loci are grouped by the number of training + validation cell types in which they are
    active. Within each group, the APs of epigenomic models are compared with those of
    sequence models by a one-sided Mann-Whitney U test (epigenomic greater): the paper's
    Figure S3 shows that, at equal average activity, only the epigenomic models rank the
    target cell type's loci.
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
    avg = baselines.AverageActivity(ds).fit(split.train(ds), split.valid(ds)).predict(test)
    for g, ap in evaluate.ap_by_group(y, avg.values[0], groups).items():
        rows.append({"group": int(g), "predictor": "average activity", "model": "", "ap": ap})
    table = pd.DataFrame(rows)
    tests = []
    for g, part in table.groupby("group"):
        a = part.loc[part.predictor == "signal", "ap"].dropna()
        b = part.loc[part.predictor.isin(["sequence", "permuted", "random"]), "ap"].dropna()
        if len(a) and len(b):
            u, p = stats.mannwhitneyu(a, b, alternative="greater")
            tests.append({"group": g, "comparison": "epigenomic > sequence", "U": u, "p_value": p})
    return table, pd.DataFrame(tests)


def pca_of_signal(ds: xr.Dataset, cell_type: str, n: int = 2) -> pd.DataFrame:
    """Figure S1: the first principal components of one cell type's signal (loci x marks)."""
    x = np.nan_to_num(ds["signal"].sel(cell_type=cell_type).values)
    x = (x - x.mean(0)) / (x.std(0) + 1e-9)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    pcs = u[:, :n] * s[:n]
    out = pd.DataFrame(pcs, columns=[f"PC{i + 1}" for i in range(n)])
    out["label"] = ds["label"].sel(cell_type=cell_type).values
    out.attrs["explained"] = (s[:n] ** 2 / (s**2).sum()).tolist()
    return out


def strength_vs_similarity(ds: xr.Dataset, target: str, on: str | None = None) -> pd.DataFrame:
    """Each other cell type's labels as a predictor of the target's, against its similarity."""
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
        baseline, same loci), ``gain`` (their difference), ``within_group_gain`` (the
        audit's: mean over activity groups, weighted by loci, of the model's AP minus the
        baseline's), ``within_group_p`` (one-sided, Stouffer over groups), ``beats_baseline``
        (``gain`` above the audit's margin), ``leakage`` and ``call`` (the audit's verdict).
    groups : pandas.DataFrame
        One row per model, setting and activity group (the partitioned evaluation,
        :func:`pitfall.evaluate.partitioned_evaluation`): ``group`` (training + validation
        cell types in which the locus is active), ``n_loci``, ``n_positive``, ``ap_model``,
        ``ap_average_activity``.
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
            )  # fmt: skip
        pooled = rep.summary.iloc[-1]
        base = {"setting": r["setting"], "model": _base_label(spec), "inputs": r["inputs"],
                "remedy": remedy_of(spec)}  # fmt: skip
        rows.append({
            **base,
            "n_params": int(r["n_params"]),
            "ap": float(pooled["ap_model"]),
            "ap_average_activity": float(pooled["ap_average_activity"]),
            "gain": float(pooled["ap_model"] - pooled["ap_average_activity"]),
            "within_group_gain": float(pooled["within_group_gain"]),
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
                               "ap_average_activity": float(g["ap_average_activity"])})  # fmt: skip
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
    above = rem[rem["ap"] > rem["ap_average_activity"] + margin]
    level = rem[(rem["ap"] - rem["ap_average_activity"]).abs() <= margin]
    lines.append(
        f"{len(above)} of {len(rem)} remedied models beat the baseline by more than {margin:g} "
        f"AP, {len(level)} are level with it (within {margin:g})"
        + (f", the best {above.loc[above['ap'].idxmax(), 'model']} "
           f"({above.loc[above['ap'].idxmax(), 'remedy']}, "
           f"{above['ap'].max() - base:+.3f})" if len(above) else "")
        + "."
    )  # fmt: skip
    within = []
    for kind, name in kinds:
        rows = hyb[hyb["inputs"] == kind]
        w = rows["within_group_gain"]
        sig = int(((rows["within_group_p"] < 0.05) & (w > 0)).sum())
        within.append(
            f"{name} models (plain or remedied) gain {w.min():+.3f} to {w.max():+.3f} AP over "
            f"it, significantly (one-sided p < 0.05) in {sig} of {len(rows)}"
        )
    lines.append(
        "Within groups of loci active in the same number of other cell types, "
        + "; ".join(within)
        + "."
    )
    by_kind = {k: rem[rem["inputs"] == k] for k, _ in kinds}
    epi, seq = by_kind.get("signal"), by_kind.get("sequence")
    if epi is not None and len(epi) and seq is not None and len(seq):
        epi_best, seq_best = float(epi["ap"].max()), float(seq["ap"].max())
        epi_sig = bool(((epi["within_group_p"] < 0.05) & (epi["within_group_gain"] > 0)).any())
        seq_sig = bool(((seq["within_group_p"] < 0.05) & (seq["within_group_gain"] > 0)).any())
        if epi_best >= base - margin and seq_best <= base + margin and epi_sig and not seq_sig:
            where = "above" if epi_best > base + margin else "level with"
            lines.append(
                f"So a remedy brings an epigenomic model {where} the baseline (best "
                f"{epi_best:.3f}) by sparing it the "
                "relearning of the average, and its cell type's own signal then ranks loci "
                f"of equal average activity; sequence-only models get no further than the "
                f"baseline with any remedy (best {seq_best:.3f}): a sequence, the same in "
                "every cell type, cannot say how one cell type departs from the average."
            )  # fmt: skip
        elif epi_best < base - margin and seq_best < base - margin:
            lines.append(
                "No remedied model comes within the margin of the baseline here: the average "
                "stays the thing to beat."
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
        cols = ["setting", "model", "remedy", "n_params", "ap", "ap_average_activity",
                "within_group_gain", "within_group_p", "beats_baseline"]  # fmt: skip
        shown = self.table[cols].copy() if len(self.table) else self.table
        return {
            "heading": "Remedies: the average activity as an input, the residual target",
            "findings": self.sentences,
            "text": [
                "Each model trained plain, with the locus's average activity over the cell "
                "types it saw as one more input (never counting a pair's own label), on the "
                "residual from that average, and both; scored against the average-activity "
                "baseline on the same test loci, overall and within groups of loci active in "
                "the same number of those cell types (the audit's within-group gain)."
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
