"""Audit a model's cross-cell-type predictions for the pitfall (Schreiber et al. 2020).

A model that predicts activity in a cell type it never saw can look good only because it
learned each locus's *average* activity over the training cell types. :func:`audit` puts the
user's predictions next to the baselines that expose this, on exactly the same loci and cell
types, and says in plain words what the numbers mean.

What is computed, per target cell type (a cell type of the predictions) and pooled over all
(cell type, locus) pairs:

- ``ap_model``: average precision of the scores against the cube's labels (loci whose label
  is NaN are left out), identical to scikit-learn's ``average_precision_score``;
- ``ap_average_activity``: the mean label of each scored locus over the *reference* cell
  types: the user's ``train_cell_types`` minus the target if given, else every cube cell
  type except the target (only the target is excluded, also when several are scored);
  a locus without any reference label gets the reference cell types' overall prevalence;
- ``ap_most_similar``: the labels of the reference cell type most similar to the target.
  Similarity is the Pearson correlation of the ``signal`` (all marks, flattened; at most
  200,000 evenly spaced loci) when the cube has signal, otherwise the correlation of the
  *labels* over the loci **not** scored for the target (labels the user could have trained
  on); without such loci the baseline is unavailable (NaN). NaN labels of the chosen cell
  type get its prevalence;
- ``ap_random``: the prevalence of positives (the expected AP of random scores);
- ``pearson_avg`` / ``spearman_avg``: correlation of the scores with the average activity
  over the scored loci;
- the partitioned evaluation: scored loci grouped by ``n_active``, the number of reference
  cell types in which the locus is active, and within each group the AP of the model and of
  the average-activity baseline. The test per group is the one-sided Mann-Whitney U test
  ``scipy.stats.mannwhitneyu(model scores at the group's active loci, model scores at its
  inactive loci, alternative="greater")``: does the model rank the group's active loci above
  its inactive ones? The average-activity baseline is constant within a group (exactly so
  when the reference labels have no NaN), so it cannot; its null is precisely the
  baseline's behaviour. ``auroc_model`` = U / (n_active_loci * n_inactive_loci) and
  ``auroc_baseline`` (0.5 when constant) are reported alongside;
- ``within_group_gain``: the mean over groups holding both classes, weighted by labelled
  loci, of ``ap_model - ap_average_activity``;
- ``leakage`` (when ``train_cell_types`` or ``train_chroms`` is given, the other defaulting
  to every cube cell type but the target, resp. every chromosome): the fraction of scored
  loci that lie on a training chromosome and carry a non-NaN label in some training cell
  type other than the target, as :meth:`pitfall.splits.Split.leakage`. 1.0 is a
  cross-cell-type evaluation, 0.0 a hybrid one.

Verdict rules (``margin`` = 0.01, ``memorisation_threshold`` = 0.8, alpha = 0.05):

- ``beats`` = ``ap_model > ap_average_activity + margin`` (pooled);
- ``within`` = ``within_group_gain > margin`` and ``within_group_p < 0.05``, where
  ``within_group_p`` is the Stouffer combination (weights sqrt(n_loci)) of the per-group
  one-sided Mann-Whitney p-values over groups holding both classes;
- beats and within -> ``"cell-type-specific"``: "beats the average-activity baseline by
  0.08 AP, also within loci of the same activity group: learns cell-type-specific activity";
- within but not beats -> ``"within groups only"`` (ranks loci inside a group, misses the
  locus-level activity the baseline has);
- not within and ``spearman_avg > memorisation_threshold`` -> ``"memorising"``, flagged
  **likely memorising locus activity** (``AuditReport.memorising``), also when its pooled AP
  edges past the baseline by chance (a noisy copy of the average activity does);
- otherwise ``"between groups only"`` (beats) or ``"no gain"`` (does not beat).

Leakage, when known and above 0, is added to the verdict as a warning that the evaluation
is cross-cell-type (memorisation pays there).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from pitfall.baselines import MostSimilar
from pitfall.cube import open_cube
from pitfall.evaluate import average_precision

__all__ = ["AuditReport", "AuditWarning", "add_audit_parser", "audit", "run_audit_cli"]

LOCUS_COLUMNS = ("locus", "name", "gene_id", "gene", "locus_name")
CELL_TYPE_COLUMNS = ("cell_type", "celltype", "cell", "sample")
SCORE_COLUMNS = ("score", "prediction", "pred", "y_score", "probability")
MAX_SIMILARITY_LOCI = 200_000
ALPHA = 0.05
_VERSION = re.compile(r"\.\d+$")


class AuditWarning(UserWarning):
    """Something in the predictions the audit dropped or that limits what it can say."""


# --------------------------------------------------------------------------------------------
# The report


@dataclass
class AuditReport:
    """Result of :func:`audit`.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per target cell type, then ``"pooled"``; see :meth:`to_frame`.
    partitions : pandas.DataFrame
        Per target (and ``"pooled"``) and activity group: ``n_loci``, ``n_positive``,
        ``ap_model``, ``ap_average_activity``, ``auroc_model``, ``auroc_baseline``,
        ``mwu_U``, ``mwu_p`` (see the module docstring for the test).
    verdict : str
        Plain-language verdict on the pooled numbers.
    memorising, beats_baseline, beats_within_groups : bool
        The verdict's flags (pooled).
    leakage : float or None
        Pooled leakage; None when no training information was given.
    warnings : list of str
        Every warning raised while reading and matching the predictions.
    settings : dict
        ``margin``, ``memorisation_threshold``, reference cell types, training chromosomes.
    """

    summary: pd.DataFrame
    partitions: pd.DataFrame
    verdict: str
    memorising: bool
    beats_baseline: bool
    beats_within_groups: bool
    leakage: float | None
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_frame(self) -> pd.DataFrame:
        """The summary table: one row per target cell type and a last ``"pooled"`` row.

        Columns: ``cell_type``, ``n_scored``, ``n_labelled``, ``n_positive``, ``prevalence``,
        ``ap_model``, ``ap_average_activity``, ``ap_most_similar``, ``most_similar``,
        ``ap_random``, ``pearson_avg``, ``spearman_avg``, ``within_group_gain``, ``leakage``,
        ``call``.
        """
        return self.summary.copy()

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what :meth:`to_json` writes)."""
        return {
            "verdict": self.verdict,
            "memorising": self.memorising,
            "beats_baseline": self.beats_baseline,
            "beats_within_groups": self.beats_within_groups,
            "leakage": self.leakage,
            "summary": _records(self.summary),
            "partitions": _records(self.partitions),
            "warnings": list(self.warnings),
            "settings": self.settings,
        }

    def to_json(self, path: str | os.PathLike) -> dict[str, Any]:
        """Write :meth:`to_dict` as JSON (NaN as null) to ``path``; return the dict."""
        d = self.to_dict()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(d, indent=2, allow_nan=False) + "\n")
        return d

    def __str__(self) -> str:
        cols = {
            "cell_type": "cell type",
            "n_labelled": "loci",
            "prevalence": "prev",
            "ap_model": "AP model",
            "ap_average_activity": "AP avg",
            "ap_most_similar": "AP similar",
            "most_similar": "similar",
            "spearman_avg": "rho(avg)",
            "within_group_gain": "within",
            "leakage": "leakage",
            "call": "call",
        }
        table = self.summary[list(cols)].rename(columns=cols)
        lines = [
            "pitfall audit: model vs the average-activity baseline",
            table.to_string(index=False, float_format=lambda x: f"{x:.3f}", na_rep="-"),
            "",
            "partitioned AP (loci grouped by the number of reference cell types where active),"
            " pooled:",
        ]
        part = self.partitions[self.partitions["cell_type"] == "pooled"]
        pcols = ["group", "n_loci", "n_positive", "ap_model", "ap_average_activity", "mwu_p"]
        lines.append(
            part[pcols].to_string(index=False, float_format=lambda x: f"{x:.3g}", na_rep="-")
        )
        lines += ["", f"verdict: {self.verdict}"]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike) -> Path:
        """Save a figure: pooled PR curves of the model and the baselines, and the
        partitioned AP as grouped bars. Needs matplotlib (the ``plot`` extra)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as err:  # pragma: no cover - depends on the install
            raise ImportError(
                "AuditReport.plot needs matplotlib: pip install 'pitfall[plot]'"
            ) from err
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
        y = self.curves["y"]
        for name, s in self.curves["scores"].items():
            if s is None:
                continue
            r, p = _pr_curve(y, s)
            ax1.step(r, p, where="post", label=name)
        ax1.axhline(float(np.mean(y == 1)), color="grey", ls="--", label="random (prevalence)")
        ax1.set_xlabel("recall")
        ax1.set_ylabel("precision")
        ax1.set_xlim(0, 1)
        ax1.set_ylim(0, 1.02)
        ax1.set_title("pooled precision-recall")
        ax1.legend(loc="lower left", fontsize=8)
        part = self.partitions[self.partitions["cell_type"] == "pooled"]
        x = np.arange(len(part))
        w = 0.4
        ax2.bar(x - w / 2, part["ap_model"].to_numpy(dtype=float), w, label="model")
        ax2.bar(
            x + w / 2,
            part["ap_average_activity"].to_numpy(dtype=float),
            w,
            label="average activity",
        )
        ax2.set_xticks(x, [str(g) for g in part["group"]])
        ax2.set_xlabel("reference cell types in which the locus is active")
        ax2.set_ylabel("average precision")
        ax2.set_ylim(0, 1.02)
        ax2.set_title("partitioned AP")
        ax2.legend(fontsize=8)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in df.to_dict(orient="records"):
        out.append({str(k): _plain(v) for k, v in row.items()})
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _pr_curve(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision at every distinct threshold, high to low (starts at recall 0)."""
    order = np.argsort(-s, kind="stable")
    ss, yy = s[order], (y[order] == 1)
    tp = np.cumsum(yy)
    last = np.append(np.flatnonzero(np.diff(ss) != 0), ss.size - 1)
    tp, called = tp[last], last + 1
    n_pos = max(int(yy.sum()), 1)
    return np.r_[0.0, tp / n_pos], np.r_[1.0, tp / called]


# --------------------------------------------------------------------------------------------
# Reading predictions


def _str_array(values: Any) -> np.ndarray:
    """Strings as an object array (also from numpy's ``StringDType``, which Zarr returns)."""
    values = np.asarray(values)
    if values.dtype.kind in "OTU":
        return values.astype(object).ravel()
    return np.asarray([str(v) for v in values.ravel()], dtype=object)


def _warn(msg: str, log: list[str]) -> None:
    log.append(msg)
    warnings.warn(msg, AuditWarning, stacklevel=3)


def _examples(values: Sequence[Any], k: int = 5) -> str:
    values = list(values)
    shown = ", ".join(map(str, values[:k]))
    return shown + (", ..." if len(values) > k else "")


def _pick(columns: Sequence[str], candidates: Sequence[str], what: str) -> str:
    lower = {str(c).lower(): c for c in columns}
    for c in candidates:
        if c in lower:
            return lower[c]
    raise ValueError(
        f"predictions lack a {what} column: expected one of {list(candidates)}, "
        f"found columns {list(columns)}"
    )


def _table_to_long(df: pd.DataFrame) -> pd.DataFrame:
    loc = _pick(df.columns, LOCUS_COLUMNS, "locus")
    ct = _pick(df.columns, CELL_TYPE_COLUMNS, "cell type")
    sc = _pick(df.columns, SCORE_COLUMNS, "score")
    out = pd.DataFrame({"locus": df[loc].to_numpy(), "cell_type": df[ct].astype(str).to_numpy()})
    try:
        out["score"] = pd.to_numeric(df[sc]).to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise ValueError(f"predictions column {sc!r} must be numeric scores: {err}") from err
    return out


def _dataarray_to_long(da: xr.DataArray) -> pd.DataFrame:
    if set(da.dims) != {"cell_type", "locus"}:
        raise ValueError(
            f"a predictions DataArray must have dims ('cell_type', 'locus'), got {da.dims}"
        )
    da = da.transpose("cell_type", "locus")
    if "name" in da.coords and da["name"].dims == ("locus",):
        loci = np.asarray(da["name"].values).astype(object)
    elif "locus" in da.coords:
        loci = np.asarray(da["locus"].values)
        loci = loci.astype(np.int64) if loci.dtype.kind in "iu" else loci.astype(object)
    else:
        loci = np.arange(da.sizes["locus"], dtype=np.int64)
    if "cell_type" not in da.coords:
        raise ValueError("a predictions DataArray needs a 'cell_type' coordinate")
    cts = _str_array(da["cell_type"].values)
    values = np.asarray(da.values, dtype=np.float64)
    n_ct, n_loc = values.shape
    return pd.DataFrame(
        {
            "locus": np.tile(loci, n_ct),
            "cell_type": np.repeat(cts, n_loc).astype(object),
            "score": values.ravel(),
        }
    )


def _dataset_to_dataarray(ds: xr.Dataset, path: Any) -> xr.DataArray:
    names = [v for v in ds.data_vars if set(ds[v].dims) == {"cell_type", "locus"}]
    if len(names) != 1:
        raise ValueError(
            f"{path} must hold exactly one variable with dims (cell_type, locus), found "
            f"{names or list(ds.data_vars)}"
        )
    return ds[names[0]]


def read_predictions(predictions: Any) -> pd.DataFrame:
    """Predictions as a long table with columns ``locus``, ``cell_type``, ``score``.

    Accepts a pandas DataFrame, an xarray DataArray (dims cell_type, locus) or Dataset with
    one such variable, or a path: ``.tsv``/``.txt`` (tab), ``.csv`` (comma), optionally
    ``.gz``; ``.parquet``/``.pq``; ``.nc``/``.netcdf``/``.h5`` (NetCDF) or ``.zarr``.
    ``locus`` holds names (strings) or integer positions in the cube.
    """
    if isinstance(predictions, pd.DataFrame):
        return _table_to_long(predictions)
    if isinstance(predictions, xr.DataArray):
        return _dataarray_to_long(predictions)
    if isinstance(predictions, xr.Dataset):
        return _dataarray_to_long(_dataset_to_dataarray(predictions, "the Dataset"))
    path = Path(predictions)
    if not path.exists():
        raise FileNotFoundError(f"predictions file {path} does not exist")
    name = path.name.lower()
    stem = name[:-3] if name.endswith(".gz") else name
    if stem.endswith((".parquet", ".pq")):
        return _table_to_long(pd.read_parquet(path))
    if stem.endswith(".csv"):
        return _table_to_long(pd.read_csv(path))
    if stem.endswith((".tsv", ".txt", ".tab")):
        return _table_to_long(pd.read_csv(path, sep="\t"))
    if name.endswith(".zarr") or (path.is_dir() and (path / "zarr.json").exists()):
        with warnings.catch_warnings():
            # Stores without consolidated metadata are read fine; xarray warns about speed.
            warnings.simplefilter("ignore", RuntimeWarning)
            ds = xr.open_zarr(path, consolidated=None)
        with ds:
            return _dataarray_to_long(_dataset_to_dataarray(ds, path).load())
    if stem.endswith((".nc", ".netcdf", ".nc4", ".h5", ".cdf")):
        with xr.open_dataset(path) as ds:
            return _dataarray_to_long(_dataset_to_dataarray(ds, path).load())
    raise ValueError(f"cannot tell the format of {path}: use .tsv, .csv, .parquet, .nc or .zarr")


def _match(long: pd.DataFrame, cube: xr.Dataset, log: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Add ``pos`` (locus position in the cube); drop unknown loci / cell types, NaN scores."""
    n_loci = cube.sizes["locus"]
    cube_cts = [str(c) for c in cube["cell_type"].values]
    # cell types
    unknown_ct = sorted(set(long["cell_type"]) - set(cube_cts))
    if unknown_ct:
        if len(unknown_ct) == long["cell_type"].nunique():
            raise ValueError(
                f"no cell type of the predictions is in the cube: target cell type(s) "
                f"{unknown_ct} absent (the cube has {_examples(cube_cts, 10)})"
            )
        n = int(long["cell_type"].isin(unknown_ct).sum())
        _warn(
            f"{len(unknown_ct)} cell type(s) of the predictions are not in the cube "
            f"({_examples(unknown_ct)}); their {n} rows are dropped",
            log,
        )
        long = long[~long["cell_type"].isin(unknown_ct)]
    # loci
    loc = long["locus"].to_numpy()
    if len(loc) and pd.api.types.is_integer_dtype(long["locus"]):
        pos = loc.astype(np.int64)
        pos = np.where((pos >= 0) & (pos < n_loci), pos, -1)
    else:
        names = _str_array(cube["name"].values)
        index = pd.Index(names)
        keys = pd.Index(_str_array(loc))
        pos = index.get_indexer(keys) if index.is_unique else _first_indexer(names, keys)
        miss = pos < 0
        if miss.any():
            bases = pd.Series(np.arange(n_loci), index=[_VERSION.sub("", n) for n in names])
            bases = bases[~bases.index.duplicated(keep=False)]
            stripped = pd.Index([_VERSION.sub("", k) for k in keys[miss]])
            pos[miss] = pd.Index(bases.index).get_indexer(stripped)
            pos[miss] = np.where(pos[miss] >= 0, bases.to_numpy()[np.maximum(pos[miss], 0)], -1)
    unknown = pos < 0
    if unknown.all():
        raise ValueError(
            f"none of the {len(pos)} predicted loci matches the cube's locus names "
            f"(e.g. {_examples(pd.unique(loc))}; the cube has e.g. "
            f"{_examples(np.asarray(cube['name'].values[:5]))})"
        )
    if unknown.any():
        bad = pd.unique(loc[unknown])
        _warn(
            f"{len(bad)} locus name(s) of the predictions ({int(unknown.sum())} rows) are not "
            f"in the cube and are dropped, e.g. {_examples(bad)}",
            log,
        )
    long = long.assign(pos=pos)[~unknown]
    # duplicates
    dup = long.duplicated(["cell_type", "pos"], keep=False)
    if dup.any():
        rows = long[dup]
        pairs = list(dict.fromkeys(zip(rows["locus"], rows["cell_type"], strict=True)))
        raise ValueError(
            f"{int(dup.sum())} prediction rows repeat a (locus, cell type) pair "
            f"({len(pairs)} distinct pairs), e.g. {_examples(pairs)}; keep one score per pair"
        )
    # NaN scores
    nan = ~np.isfinite(long["score"].to_numpy(dtype=np.float64))
    if nan.all():
        raise ValueError(f"all {len(nan)} matched scores are NaN or infinite")
    if nan.any():
        ex = list(zip(long["locus"][nan], long["cell_type"][nan], strict=True))
        _warn(
            f"{int(nan.sum())} of {len(nan)} scores are NaN or infinite and are dropped, "
            f"e.g. {_examples(ex)}",
            log,
        )
        long = long[~nan]
    targets = list(dict.fromkeys(long["cell_type"]))
    return long.reset_index(drop=True), targets


def _first_indexer(names: np.ndarray, keys: pd.Index) -> np.ndarray:
    """Position of the first cube locus of each name in ``keys`` (-1 when absent)."""
    first = pd.Series(np.arange(len(names)), index=names)
    first = first[~first.index.duplicated(keep="first")]
    ix = pd.Index(first.index).get_indexer(keys)
    return np.where(ix >= 0, first.to_numpy()[np.maximum(ix, 0)], -1)


# --------------------------------------------------------------------------------------------
# Metrics


def _ap(y: np.ndarray, s: np.ndarray) -> float:
    keep = ~np.isnan(y)
    if not np.any(y[keep] == 1):
        return float("nan")
    return average_precision(y[keep], s[keep])


def _corr(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan"), float("nan")
    return float(stats.pearsonr(a, b)[0]), float(stats.spearmanr(a, b)[0])


def _auroc_test(y: np.ndarray, s: np.ndarray) -> tuple[float, float, float]:
    """U, p (one-sided, positives greater) and AUROC of scores ``s`` for labels ``y``."""
    pos, neg = s[y == 1], s[y == 0]
    if pos.size == 0 or neg.size == 0:
        return float("nan"), float("nan"), float("nan")
    res = stats.mannwhitneyu(pos, neg, alternative="greater")
    u = float(res.statistic)
    return u, float(res.pvalue), u / (pos.size * neg.size)


def _partitions(
    who: str, y: np.ndarray, s: np.ndarray, avg: np.ndarray, n_active: np.ndarray
) -> list[dict[str, Any]]:
    rows = []
    for g in np.unique(n_active):
        m = (n_active == g) & ~np.isnan(y)
        yy = y[m]
        u, p, auc = _auroc_test(yy, s[m])
        _, _, auc_b = _auroc_test(yy, avg[m])
        rows.append(
            {
                "cell_type": who,
                "group": int(g),
                "n_loci": int(m.sum()),
                "n_positive": int(np.sum(yy == 1)),
                "ap_model": _ap(yy, s[m]),
                "ap_average_activity": _ap(yy, avg[m]),
                "auroc_model": auc,
                "auroc_baseline": auc_b,
                "mwu_U": u,
                "mwu_p": p,
            }
        )
    return rows


def _within_gain(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """Loci-weighted mean AP gain over groups holding both classes, and the Stouffer
    combination (weights sqrt(n_loci)) of the groups' one-sided Mann-Whitney p-values."""
    ok = [r for r in rows if 0 < r["n_positive"] < r["n_loci"]]
    w = sum(r["n_loci"] for r in ok)
    if not w:
        return float("nan"), float("nan")
    gain = sum(r["n_loci"] * (r["ap_model"] - r["ap_average_activity"]) for r in ok) / w
    p = np.clip([r["mwu_p"] for r in ok], 1e-300, 1 - 1e-16)
    z = stats.norm.isf(p)
    wt = np.sqrt([r["n_loci"] for r in ok])
    p_all = float(stats.norm.sf(np.sum(wt * z) / np.sqrt(np.sum(wt**2))))
    return float(gain), p_all


def _call(
    ap_m: float, ap_b: float, rho: float, gain: float, p: float, margin: float, thr: float
) -> str:
    """The verdict's category (rules in the module docstring)."""
    beats = ap_m > ap_b + margin
    within = gain > margin and p < ALPHA
    if beats and within:
        return "cell-type-specific"
    if within:
        return "within groups only"
    if rho > thr:
        return "memorising"
    return "between groups only" if beats else "no gain"


def _verdict(row: dict[str, Any], leak: float | None) -> str:
    call, ap_m, ap_b = row["call"], row["ap_model"], row["ap_average_activity"]
    rho, gain, p = row["spearman_avg"], row["within_group_gain"], row["within_group_p"]
    diff = ap_m - ap_b
    g = "no group holds both classes" if math.isnan(gain) else f"{gain:+.3f} AP, p = {p:.2g}"
    if ap_m > ap_b:
        head = f"beats the average-activity baseline by {diff:.3f} AP ({ap_m:.3f} vs {ap_b:.3f})"
    else:
        head = f"does not beat the average-activity baseline (AP {ap_m:.3f} vs {ap_b:.3f})"
    if call == "memorising":
        if ap_m > ap_b:
            head = (
                f"does not clearly beat the average-activity baseline (AP {ap_m:.3f} vs "
                f"{ap_b:.3f}, and not within loci of the same activity group: {g})"
            )
        text = (
            f"{head}; its scores correlate {rho:.2f} (Spearman) with the locus's average "
            "activity over the other cell types: likely memorising locus activity"
        )
    elif call == "no gain":
        text = (
            f"{head}; its scores correlate {rho:.2f} (Spearman) with the average activity and "
            f"do not rank loci within an activity group better ({g}): it adds nothing over "
            "the baseline"
        )
    elif call == "cell-type-specific":
        text = (
            f"{head}, also within loci of the same activity group ({g}): learns "
            "cell-type-specific activity"
        )
    elif call == "within groups only":
        text = (
            f"{head}, but within loci of the same activity group it beats it ({g}): it "
            "learns cell-type-specific activity the baseline lacks, yet misses the locus-level "
            "activity the baseline has (combining both may help)"
        )
    else:
        text = (
            f"{head}, but not within loci of the same activity group ({g}): the gain comes "
            "from ranking activity groups, not from cell-type-specific activity"
        )
    if leak is not None and leak > 0:
        text += (
            f". {leak:.0%} of the scored loci were labelled in training under another cell "
            "type (cross-cell-type evaluation), where memorising pays; a hybrid evaluation "
            "(unseen chromosomes too) is the fair test"
        )
    elif leak is None:
        text += ". Leakage unknown: pass train_cell_types / train_chroms"
    return text


# --------------------------------------------------------------------------------------------
# The audit


def audit(
    predictions: Any,
    cube: str | os.PathLike | xr.Dataset,
    *,
    train_cell_types: Sequence[str] | None = None,
    train_chroms: Sequence[str] | None = None,
    figure: str | os.PathLike | None = None,
    json_path: str | os.PathLike | None = None,
    margin: float = 0.01,
    memorisation_threshold: float = 0.8,
) -> AuditReport:
    """Audit predictions for the cross-cell-type pitfall.

    Parameters
    ----------
    predictions
        A path (TSV/CSV with columns for the locus name -- ``locus``, ``name`` or
        ``gene_id`` --, the ``cell_type`` and the ``score`` or ``prediction``; Parquet with the
        same columns; NetCDF or Zarr holding one DataArray with dims (cell_type, locus)), or
        an in-memory DataFrame / DataArray. Loci are matched by the cube's ``name``
        coordinate, also without a version suffix (``ENSG1.5`` matches ``ENSG1``), or by
        integer position when the locus column / coordinate is integer. Each cell type of
        the predictions is a target.
    cube
        The cube's path or the opened Dataset (:func:`pitfall.open_cube`).
    train_cell_types
        Cell types the model was trained on: the reference of the baselines and of the
        activity groups (minus the target). Default: every cube cell type except the target.
    train_chroms
        Chromosomes the model was trained on; with ``train_cell_types`` gives the leakage.
    figure, json_path
        Also save :meth:`AuditReport.plot` / :meth:`AuditReport.to_json` there.
    margin, memorisation_threshold
        Verdict thresholds (see the module docstring for the rules).

    Returns
    -------
    AuditReport

    Raises
    ------
    ValueError
        Missing columns, no matching locus or cell type, duplicated (locus, cell type)
        pairs, a training cell type or chromosome absent from the cube, no labelled
        positive among the scored loci.

    Warns
    -----
    AuditWarning
        Unknown loci or cell types (dropped), NaN scores (dropped), scores at loci without a
        label (left out), constant scores (AP = prevalence).
    """
    log: list[str] = []
    ds = cube if isinstance(cube, xr.Dataset) else open_cube(cube)
    if "locus" not in ds.coords or ds["locus"].dtype.kind not in "iu":
        ds = ds.assign_coords(locus=np.arange(ds.sizes["locus"]))
    cube_cts = [str(c) for c in ds["cell_type"].values]
    if train_cell_types is not None:
        train_cell_types = [str(c) for c in train_cell_types]
        absent = [c for c in train_cell_types if c not in cube_cts]
        if absent:
            raise ValueError(f"training cell type(s) {absent} are not in the cube")
    chrom = _str_array(ds["chrom"].values)
    if train_chroms is not None:
        train_chroms = [str(c) for c in train_chroms]
        absent = sorted(set(train_chroms) - set(chrom))
        if absent:
            raise ValueError(f"training chromosome(s) {absent} are not in the cube")
    long, targets = _match(read_predictions(predictions), ds, log)

    scored = np.unique(long["pos"].to_numpy())
    labels_all = np.asarray(ds["label"].isel(locus=scored).values, dtype=np.float64)
    col = pd.Index(scored)
    ct_index = {c: i for i, c in enumerate(cube_cts)}
    know_train = train_cell_types is not None or train_chroms is not None

    rows, part_rows = [], []
    pooled: dict[str, list[np.ndarray]] = {k: [] for k in ("y", "s", "avg", "ms", "n", "pos")}
    ms_ok = True
    leak_num, leak_den = 0, 0
    refs_used: dict[str, list[str]] = {}
    for t in targets:
        sub = long[long["cell_type"] == t]
        pos = sub["pos"].to_numpy()
        s = sub["score"].to_numpy(dtype=np.float64)
        j = col.get_indexer(pos)
        y = labels_all[ct_index[t], j]
        refs = [c for c in (train_cell_types or cube_cts) if c != t]
        if not refs:
            raise ValueError(f"no reference cell type other than the target {t} to average over")
        refs_used[t] = refs
        ref_lab = labels_all[[ct_index[c] for c in refs]][:, j]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            avg = np.nanmean(ref_lab, axis=0)
        prev_ref = float(np.nanmean(ref_lab)) if np.isfinite(ref_lab).any() else 0.5
        avg = np.where(np.isnan(avg), prev_ref, avg)
        n_active = np.count_nonzero(ref_lab == 1, axis=0)

        unlabelled = np.isnan(y)
        if unlabelled.any():
            _warn(
                f"{t}: {int(unlabelled.sum())} of {len(y)} scored loci have no label in the "
                "cube and are left out of every metric",
                log,
            )
        yk = y[~unlabelled]
        if not np.any(yk == 1):
            raise ValueError(f"{t}: no scored locus is labelled active; AP is undefined")
        if np.ptp(s) == 0:
            _warn(
                f"{t}: all {len(s)} scores are equal ({s[0]:g}); the AP equals the "
                f"prevalence ({np.mean(yk == 1):.3f})",
                log,
            )
        ms_name, ms_score = _most_similar(ds, t, refs, pos, log)
        if ms_score is None:
            ms_ok = False
        ap_m, ap_b = _ap(y, s), _ap(y, avg)
        r_p, r_s = _corr(s, avg)
        prows = _partitions(t, y, s, avg, n_active)
        part_rows += prows
        gain = _within_gain(prows)
        leak = None
        if know_train:
            tct = [c for c in (train_cell_types or cube_cts) if c != t]
            on_train = (
                np.ones(len(pos), bool)
                if train_chroms is None
                else np.isin(chrom[pos], train_chroms)
            )
            seen = np.zeros(len(pos), bool)
            if tct:
                seen = np.isfinite(labels_all[[ct_index[c] for c in tct]][:, j]).any(axis=0)
            n_leak = int(np.sum(on_train & seen))
            leak = n_leak / len(pos)
            leak_num += n_leak
            leak_den += len(pos)
        rows.append(
            _row(
                t,
                s,
                y,
                ap_m,
                ap_b,
                ms_score,
                ms_name,
                r_p,
                r_s,
                gain,
                leak,
                margin,
                memorisation_threshold,
            )
        )
        for k, v in (("y", y), ("s", s), ("avg", avg), ("n", n_active), ("pos", pos)):
            pooled[k].append(v)
        pooled["ms"].append(ms_score if ms_score is not None else np.full(len(pos), np.nan))

    y, s, avg, n_active = (np.concatenate(pooled[k]) for k in ("y", "s", "avg", "n"))
    ms = np.concatenate(pooled["ms"]) if ms_ok else None
    ap_m, ap_b = _ap(y, s), _ap(y, avg)
    r_p, r_s = _corr(s, avg)
    prows = _partitions("pooled", y, s, avg, n_active)
    part_rows += prows
    gain = _within_gain(prows)
    leak = leak_num / leak_den if know_train else None
    pooled_row = _row(
        "pooled", s, y, ap_m, ap_b, ms, None, r_p, r_s, gain, leak, margin, memorisation_threshold
    )
    rows.append(pooled_row)
    call = pooled_row["call"]
    keep = ~np.isnan(y)
    report = AuditReport(
        summary=pd.DataFrame(rows),
        partitions=pd.DataFrame(part_rows),
        verdict=_verdict(pooled_row, leak),
        memorising=call == "memorising",
        beats_baseline=bool(ap_m > ap_b + margin),
        beats_within_groups=call in ("cell-type-specific", "within groups only"),
        leakage=leak,
        warnings=log,
        settings={
            "margin": margin,
            "memorisation_threshold": memorisation_threshold,
            "targets": targets,
            "reference_cell_types": refs_used,
            "train_cell_types": train_cell_types,
            "train_chroms": train_chroms,
            "similarity_on": "signal" if "signal" in ds else "label (unscored loci)",
            "cube_snapshot": ds.attrs.get("snapshot"),
        },
        curves={
            "y": y[keep],
            "scores": {
                "model": s[keep],
                "average activity": avg[keep],
                "most similar cell type": None if ms is None else ms[keep],
            },
        },
    )
    if json_path is not None:
        report.to_json(json_path)
    if figure is not None:
        report.plot(figure)
    return report


def _row(
    who: str,
    s: np.ndarray,
    y: np.ndarray,
    ap_m: float,
    ap_b: float,
    ms: np.ndarray | None,
    ms_name: str | None,
    r_p: float,
    r_s: float,
    gain: tuple[float, float],
    leak: float | None,
    margin: float,
    thr: float,
) -> dict[str, Any]:
    known = ~np.isnan(y)
    n_pos = int(np.sum(y == 1))
    return {
        "cell_type": who,
        "n_scored": int(len(s)),
        "n_labelled": int(known.sum()),
        "n_positive": n_pos,
        "prevalence": n_pos / int(known.sum()),
        "ap_model": ap_m,
        "ap_average_activity": ap_b,
        "ap_most_similar": float("nan") if ms is None else _ap(y, ms),
        "most_similar": ms_name,
        "ap_random": n_pos / int(known.sum()),
        "pearson_avg": r_p,
        "spearman_avg": r_s,
        "within_group_gain": gain[0],
        "within_group_p": gain[1],
        "leakage": float("nan") if leak is None else leak,
        "call": _call(ap_m, ap_b, r_s, gain[0], gain[1], margin, thr),
    }


def _most_similar(
    ds: xr.Dataset, target: str, refs: list[str], scored: np.ndarray, log: list[str]
) -> tuple[str | None, np.ndarray | None]:
    """(chosen reference cell type, its labels at ``scored``), or (None, None)."""
    n = ds.sizes["locus"]
    if "signal" in ds:
        on = "signal"
        loci = np.arange(n)
        if n > MAX_SIMILARITY_LOCI:
            loci = np.linspace(0, n - 1, MAX_SIMILARITY_LOCI).astype(np.int64)
    else:
        on = "label"
        loci = np.setdiff1d(np.arange(n), scored)
    if loci.size < 3:
        _warn(
            f"{target}: the cube has no signal and no unscored locus to compare labels on; "
            "the most-similar baseline is unavailable",
            log,
        )
        return None, None
    ms = MostSimilar(ds, on=on)
    ms.fit(ds.sel(cell_type=refs).isel(locus=loci))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sims = ms.similarity(target)
    finite = {c: r for c, r in sims.items() if np.isfinite(r)}
    if not finite:
        _warn(
            f"{target}: no reference cell type correlates; most-similar baseline unavailable", log
        )
        return None, None
    best = max(finite, key=finite.get)
    lab = np.asarray(ds["label"].sel(cell_type=best).isel(locus=scored).values, np.float64)
    if np.isnan(lab).any():
        lab = np.where(np.isnan(lab), np.nanmean(lab) if np.isfinite(lab).any() else 0.5, lab)
    return best, lab


# --------------------------------------------------------------------------------------------
# Command line


def _csv_list(text: str) -> list[str]:
    return [t for t in (x.strip() for x in text.split(",")) if t]


def add_audit_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``audit`` sub-command to an ``argparse`` subparsers object; return it."""
    p = subparsers.add_parser(
        "audit",
        help="audit a model's cross-cell-type predictions for the pitfall",
        description=(
            "Compare predictions (TSV/CSV/Parquet: locus, cell_type, score; or a NetCDF/Zarr "
            "DataArray) with the average-activity, most-similar and random baselines, and "
            "say whether the model just memorises each locus's average activity."
        ),
    )
    p.add_argument("predictions", help="predictions file")
    p.add_argument("cube", help="the cube (pitfall.open_cube path)")
    p.add_argument(
        "--train-cell-types",
        type=_csv_list,
        default=None,
        help="comma-separated training cell types (default: all but the target)",
    )
    p.add_argument(
        "--train-chroms",
        type=_csv_list,
        default=None,
        help="comma-separated training chromosomes (for the leakage)",
    )
    p.add_argument("--json", dest="json_path", default=None, help="write the report as JSON")
    p.add_argument("--figure", default=None, help="save PR curves and partitioned AP (PNG/PDF)")
    p.add_argument("--margin", type=float, default=0.01, help="AP margin to beat (0.01)")
    p.add_argument(
        "--memorisation-threshold",
        type=float,
        default=0.8,
        help="Spearman correlation with average activity flagged (0.8)",
    )
    p.set_defaults(func=run_audit_cli)
    return p


def run_audit_cli(args: argparse.Namespace) -> int:
    """Run ``pitfall audit``: print the report table and verdict; 0 on success."""
    with warnings.catch_warnings():
        # The report prints its warnings; do not print them twice.
        warnings.simplefilter("ignore", AuditWarning)
        report = audit(
            args.predictions,
            args.cube,
            train_cell_types=args.train_cell_types,
            train_chroms=args.train_chroms,
            figure=args.figure,
            json_path=args.json_path,
            margin=args.margin,
            memorisation_threshold=args.memorisation_threshold,
        )
    print(report)
    if args.json_path:
        print(f"wrote {args.json_path}", file=sys.stderr)
    return 0
