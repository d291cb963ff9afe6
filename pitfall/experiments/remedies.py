"""The paper's two remedies: the average activity as an input, and the residual target.

An epigenomic and a sequence-only model are trained plain, with the locus's average
activity over the cell types they saw as one more input (never a pair's own label; as Nair
et al. 2019), on the residual from that average, and both (grid:
:func:`pitfall.experiments.grids.remedy_grid`), across cell types and in the hybrid
setting, and each is scored against the average-activity baseline on the same test loci,
overall and within activity groups, with the audit's intervals and tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from pitfall import sweep
from pitfall.experiments._result import Result
from pitfall.experiments.grids import REMEDIES, REMEDY_SETTINGS, remedies_spec
from pitfall.multiple_testing import adjust_pvalues

__all__ = ["REMEDY_MARGIN", "describe_remedies", "make", "remedy_of", "remedy_table"]


def remedy_of(spec: dict[str, Any]) -> str:
    """The name in :data:`REMEDIES` of a spec's remedy fields."""
    average, residual = bool(spec.get("average")), spec.get("target") == "residual"
    return {
        (False, False): "none",
        (True, False): "average input",
        (False, True): "residual target",
        (True, True): "both",
    }[(average, residual)]


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
                scores,
                ds,
                train_cell_types=[*split.train_cell_types, *split.valid_cell_types],
                train_chroms=[*split.train_chroms, *split.valid_chroms],
                n_bootstrap=REMEDY_BOOTSTRAP,
            )
        pooled = rep.summary.iloc[-1]
        base = {
            "setting": r["setting"],
            "model": _base_label(spec),
            "inputs": r["inputs"],
            "remedy": remedy_of(spec),
        }
        rows.append(
            {
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
            }
        )
        parts = rep.partitions[rep.partitions["cell_type"] == "pooled"]
        for _, g in parts.iterrows():
            group_rows.append(
                {
                    **base,
                    "group": int(g["group"]),
                    "n_loci": int(g["n_loci"]),
                    "n_positive": int(g["n_positive"]),
                    "ap_model": float(g["ap_model"]),
                    "ap_random_expected": float(g["ap_random_expected"]),
                    "p_adjusted": float(g["p_adjusted"]),
                }
            )
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
    names = {
        "none": "plain",
        "average input": "with the average as an input",
        "residual target": "on the residual",
        "both": "with both",
    }
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
        + (
            f", the best {best['model']} ({best['remedy']}, {best['gain']:+.3f} "
            f"[{best['gain_ci'][0]:+.3f}, {best['gain_ci'][1]:+.3f}])"
            if best is not None
            else ""
        )
        + "."
    )
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
            )
        elif epi_best["gain_ci"][1] < 0 and seq_best["gain_ci"][1] < 0:
            lines.append(
                "Every remedied model falls short of the baseline here (every interval of "
                "the difference lies below 0): the average stays the thing to beat."
            )
    return lines


#: The columns of the remedies' summary table.
SUMMARY_COLUMNS = [
    "setting",
    "model",
    "remedy",
    "n_params",
    "ap",
    "ap_average_activity",
    "gain",
    "gain_ci",
    "within_group_gain",
    "within_group_gain_ci",
    "within_group_p",
    "beats_baseline",
]

CAPTION = (
    "Each model trained plain, with the locus's average activity over the cell types it saw "
    "as one more input (never counting a pair's own label), on the residual from that "
    "average, and both; scored against the average-activity baseline on the same test loci "
    "(its ties broken at random: the audit's gain, with a 95% block-bootstrap interval) and, "
    "within groups of loci active in the same number of those cell types, against a random "
    "ranking of the group (the audit's within-group gain and its permutation test)."
)


def make(
    cube_path: str | Path,
    results_dir: str | Path,
    *,
    task: str = "expression",
    target: str = "E003",
    size: str = "quick",
    workers: int | None = None,
    training: dict[str, Any] | None = None,
    progress: bool = True,
) -> Result:
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
        ``quick``, ``demo`` or ``paper``: the models
        (:func:`pitfall.experiments.grids.remedy_grid`) and the training recipe
        (:data:`pitfall.experiments.grids.TRAINING`).
    workers
        Local Dask workers (0: in this process).
    training
        A training recipe instead of the size's.
    progress
        Show the sweep's progress bar.

    Returns
    -------
    Result
        ``tables``: ``"remedies"`` (:func:`remedy_table`, one row per model and remedy),
        ``"summary"`` (its main columns), ``"groups"`` (the APs per activity group) and
        ``"results"`` (the sweep's rows); ``sentences``: :func:`describe_remedies`. No figure.
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
    summary = table[SUMMARY_COLUMNS].copy() if len(table) else table
    return Result(
        name="remedies",
        title="Remedies: the average activity as an input, the residual target",
        findings={"remedies": table.to_dict(orient="records")},
        sentences=describe_remedies(table),
        tables={"remedies": table, "summary": summary, "groups": groups, "results": results},
        caption=[CAPTION],
    )
