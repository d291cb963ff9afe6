"""The paper's experiments as data and figure makers, shared by ``pitfall demo`` and pipelines.

Model grids per size (``quick``, ``demo``, ``paper``) follow Schreiber et al. 2020's
families at sizes that fit the machine; each experiment of a grid is one sweep row. The
findings (:func:`findings`) are computed from the results table, so the report's sentences
and the tests that check them read the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def model_grid(task: str, size: str = "demo") -> list[dict[str, Any]]:
    """``[[models]]`` tables of a sweep: every input type over a range of sizes.

    Sequence models span small to large (the memorisation axis), epigenomic models the same
    range, ``both`` a few combined models, and the controls (locus-constant random inputs,
    permuted sequence) the same sizes as the models they mimic.
    """
    if size == "quick":
        return [
            {"family": "dense", "inputs": "signal", "units": [[4], [16], [64]]},
            {"family": "seq_dense", "units": [[1], [16], [512]]},
            {"family": "dense", "inputs": "random", "units": [[1], [64], [512]]},
        ]
    if size == "demo":
        if task == "tad":
            return [
                {"family": "dense", "inputs": "signal", "units": [[4], [16], [256]]},
                {"family": "seq_dense", "units": [[1], [16], [256]]},
                {"family": "dense", "inputs": "random", "units": [[1], [64], [1024]]},
            ]
        return [
            {"family": "dense", "inputs": "signal", "units": [[4], [16], [64], [256, 256]]},
            {"family": "seq_dense", "units": [[1], [4], [16], [128], [1024]]},
            {"family": "seq_conv", "filters": [[4], [32, 32]], "units": [[64]]},
            {"family": "combined", "units": [[16]], "seq_units": [[1], [128]],
             "joint_units": 16},
            {"family": "dense", "inputs": "random", "units": [[1], [16], [256], [1024, 1024]]},
            {"family": "seq_dense", "permuted": True, "units": [[4], [128]]},
        ]  # fmt: skip
    return [
        {"family": "dense", "inputs": "signal",
         "units": [[2**k] * n for n in (1, 2, 3, 4, 5) for k in (0, 2, 4, 6, 8, 10, 12)]},
        {"family": "seq_dense", "units": [[2**k] * n for n in (1, 2, 3) for k in (0, 2, 4, 6, 8, 10)]},
        {"family": "seq_conv", "filters": [[f] * n for n in (1, 2, 3) for f in (1, 4, 16, 64, 256)],
         "units": [[1], [16], [256], [1024]]},
        {"family": "combined", "units": [[16], [256]], "seq_units": [[16], [256]],
         "joint_units": [16, 256]},
        {"family": "dense", "inputs": "random", "units": [[2**k] for k in range(0, 13, 2)]},
        {"family": "seq_dense", "permuted": True, "units": [[2**k] for k in range(0, 11, 2)]},
    ]  # fmt: skip


def gbm_grid(size: str = "demo") -> list[dict[str, Any]]:
    """The gradient-boosted trees sweep: tree counts on each input type.

    Sequence inputs (one-hot, flattened: 8,000 features at 2 kbp) stop at fewer trees, as
    each costs far more than on the five marks.
    """
    trees = {"quick": [1, 10, 50], "demo": [1, 4, 16, 64, 256], "paper": [1, 4, 16, 64, 256, 1024]}
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
