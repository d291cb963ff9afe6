"""Imputation across cell types: MSE and correlation against parameters, per family and setting.

The Figure 1 layout for a continuous target (issue 26): one (cell type, mark) track of the
cube is imputed by every model of :func:`pitfall.experiments.grids.imputation_grid` in the
cross-cell-type and hybrid settings (:mod:`pitfall.imputation`), and scored with the
ENCODE Imputation Challenge's ``mse`` and ``gwcorr`` (:mod:`pitfall.track_metrics`) beside
the track baselines (:data:`pitfall.baselines.TRACK_BASELINES`: the Average, the most
similar cell type, zero) on the same loci.

What the hybrid setting means differs by family (:mod:`pitfall.models.impute`): the dense
networks and XGBoost read the target cell type's other marks and never train on a test
locus; the factorization family (Avocado) learns one embedding per position, so it trains
at the test loci on the other marks of every cell type, never on the target mark there.
Across cell types every family may read the target mark of the other cell types at every
locus: memorising a locus's average activity pays there, and only there.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from pitfall import baselines, imputation
from pitfall._plotting import OKABE_ITO, legend_entries, log_axis, pyplot
from pitfall.evaluate import partition_by_variance
from pitfall.experiments._result import Result
from pitfall.experiments.grids import IMPUTATION_TRAINING, imputation_grid
from pitfall.models import make_model
from pitfall.models.spec import ModelSpec
from pitfall.track_metrics import track_metrics

__all__ = [
    "DECILE_COLUMNS",
    "FAMILY_NAMES",
    "N_DECILES",
    "decile_mse",
    "describe",
    "findings",
    "make",
    "plot",
    "run",
]

#: Display name and colour of each imputation family (the random control apart).
FAMILY_NAMES: dict[str, tuple[str, str]] = {
    "impute_dense": ("dense network (other marks)", OKABE_ITO[5]),
    "avocado": ("Avocado-style factorization", OKABE_ITO[4]),
    "impute_xgboost": ("XGBoost (other marks)", OKABE_ITO[2]),
    "random": ("locus-constant random inputs (control)", OKABE_ITO[6]),
}
METRICS = ("mse", "gwcorr")
#: Groups of test loci by the target mark's variance across the reference cell types.
N_DECILES = 10
#: Columns of :func:`run`'s table: the MSE within each decile of variance, least variable first.
DECILE_COLUMNS = tuple(f"mse_decile_{i + 1}" for i in range(N_DECILES))
_METRIC_LABELS = {"mse": "MSE (log scale; lower is better)", "gwcorr": "Pearson r (gwcorr)"}


def _kind(spec: ModelSpec) -> str:
    return "random" if spec.inputs == "random" else spec.family


def _scores(y: np.ndarray, pred: xr.DataArray, group: np.ndarray) -> dict[str, float]:
    p = np.asarray(pred.values, np.float64).reshape(-1)
    m = track_metrics(y, p)
    return {**{k: float(m[k]) for k in METRICS}, **decile_mse(y, p, group)}


def decile_mse(y: np.ndarray, pred: np.ndarray, group: np.ndarray) -> dict[str, float]:
    """The MSE within each group of :func:`pitfall.evaluate.partition_by_variance` over the
    bins where both are defined (NaN for a group without such a bin), by
    :data:`DECILE_COLUMNS`."""
    keep = np.isfinite(y) & np.isfinite(pred)
    err = np.where(keep, (y - pred) ** 2, 0.0)
    n = np.bincount(group, weights=keep.astype(np.float64), minlength=N_DECILES)
    sse = np.bincount(group, weights=err, minlength=N_DECILES)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(n > 0, sse / np.maximum(n, 1), np.nan)
    return {c: float(v) for c, v in zip(DECILE_COLUMNS, per[:N_DECILES], strict=True)}


def run(
    ds: xr.Dataset,
    *,
    cell_type: str,
    mark: str,
    size: str = "quick",
    settings: Sequence[str] = imputation.SETTINGS,
    test_chroms: Sequence[str] = ("chr1",),
    say: Any = None,
) -> pd.DataFrame:
    """Train every model of the grid in each setting and score it with the baselines.

    Parameters
    ----------
    ds
        A cube with ``signal`` (cell_type, locus, mark) and its ``observed`` experiments.
    cell_type, mark
        The target track (observed in the cube).
    size
        The grid and recipe (:func:`pitfall.experiments.grids.imputation_grid`).
    settings
        Of :data:`pitfall.imputation.SETTINGS`.
    test_chroms
        The hybrid setting's held-out chromosomes.
    say
        Called with a line of progress per model (default: nothing).

    Returns
    -------
    pandas.DataFrame
        One row per (setting, model or baseline): ``setting``, ``kind`` (family, ``random``
        or ``baseline``), ``label``, ``n_params`` (NaN for baselines), ``mse``, ``gwcorr``,
        ``train_seconds`` and the MSE within each decile of the target mark's variance
        across the reference cell types (:data:`DECILE_COLUMNS`, the paper's partitioned
        evaluation for a continuous target).
    """
    ds = ds.load()
    rows: list[dict[str, Any]] = []
    training = IMPUTATION_TRAINING[size]
    # The target track, read once; the split checks that it is observed.
    track = np.asarray(ds["signal"].sel(cell_type=cell_type, mark=mark).values, np.float64)
    for setting in settings:
        split = imputation.imputation_split(ds, setting, cell_type, mark, test_chroms=test_chroms)
        y = track[split.test_loci(ds)]
        variance = np.nan_to_num(split.reference_variance(ds), nan=-1.0)
        group = partition_by_variance(variance, N_DECILES)
        for name in baselines.TRACK_BASELINES:
            b = baselines.TRACK_BASELINES[name]
            predictor = b.make(ds, split)
            if predictor is None:
                continue
            # Track baselines read the split they were made for: no selections to pass.
            baseline: Any = predictor
            pred = baseline.fit().predict()
            rows.append(
                {
                    "setting": setting,
                    "kind": "baseline",
                    "label": b.label,
                    "baseline": name,
                    "n_params": np.nan,
                    **_scores(y, pred, group),
                    "train_seconds": 0.0,
                }
            )
        for raw in imputation_grid(size):
            spec = ModelSpec.from_dict(raw)
            t0 = time.perf_counter()
            model = make_model(spec, ds, **training).fit(split)
            pred = model.predict(split)
            row = {
                "setting": setting,
                "kind": _kind(spec),
                "label": spec.label,
                "baseline": "",
                "n_params": int(model.n_params_),
                **_scores(y, pred, group),
                "train_seconds": time.perf_counter() - t0,
            }
            rows.append(row)
            if say is not None:
                say(f"{setting}: {spec.label}: MSE {row['mse']:.4f}, r {row['gwcorr']:.3f}")
    return pd.DataFrame(rows)


def findings(table: pd.DataFrame) -> dict[str, Any]:
    """Per setting: each baseline's metrics, each family's best, and Avocado over size.

    Returns
    -------
    dict
        ``{setting: {"baselines": {name: {mse, gwcorr}}, "families": {kind: {best_mse,
        best_mse_label, best_mse_params, best_gwcorr, beats_average_mse,
        beats_average_gwcorr, decile_ratio, deciles_beating_average}},
        "avocado_trend": {spearman_mse, first, last}}}``. ``decile_ratio`` is the best
        model's MSE over the Average's in each decile of variance (least variable first);
        ``deciles_beating_average`` counts those below 1.
    """
    out: dict[str, Any] = {}
    for setting, part in table.groupby("setting", sort=False):
        base = part[part["kind"] == "baseline"].set_index("baseline")
        avg = base.loc["track_average"]
        entry: dict[str, Any] = {
            "baselines": {b: {m: float(base.loc[b, m]) for m in METRICS} for b in base.index},
            "families": {},
        }
        for kind, rows in part[part["kind"] != "baseline"].groupby("kind", sort=False):
            best = rows.loc[rows["mse"].idxmin()]
            entry["families"][kind] = {
                "best_mse": float(best["mse"]),
                "best_mse_label": str(best["label"]),
                "best_mse_params": int(best["n_params"]),
                "best_gwcorr": float(rows["gwcorr"].max()),
                "beats_average_mse": bool(best["mse"] < avg["mse"]),
                "beats_average_gwcorr": bool(rows["gwcorr"].max() > avg["gwcorr"]),
                **_decile_ratio(best, avg),
            }
        av = part[part["kind"] == "avocado"].sort_values("n_params")
        if len(av) >= 2:
            rho = stats.spearmanr(np.log10(av["n_params"].astype(float)), av["mse"]).statistic
            ends = {
                key: {
                    "n_params": int(av["n_params"].iloc[i]),
                    "mse": float(av["mse"].iloc[i]),
                    "gwcorr": float(av["gwcorr"].iloc[i]),
                }
                for key, i in (("first", 0), ("last", -1))
            }
            entry["avocado_trend"] = {"spearman_mse": float(rho), **ends}
        out[str(setting)] = entry
    return out


def _decile_ratio(best: pd.Series, avg: pd.Series) -> dict[str, Any]:
    cols = [c for c in DECILE_COLUMNS if c in best.index]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.asarray(best[cols], np.float64) / np.asarray(avg[cols], np.float64)
    return {
        "decile_ratio": [float(r) for r in ratio],
        "deciles_beating_average": int(np.sum(ratio < 1)),
    }


def describe(f: dict[str, Any]) -> list[str]:
    """The findings in words: a sentence per setting, one per setting on the deciles of
    variance, and one on Avocado's size."""
    lines = []
    for setting, e in f.items():
        avg = e["baselines"]["track_average"]
        parts = []
        for kind, d in e["families"].items():
            name = FAMILY_NAMES.get(kind, (kind, ""))[0]
            verdict = "beats" if d["beats_average_mse"] else "does not beat"
            parts.append(
                f"the best {name} ({d['best_mse_label']}, {d['best_mse_params']:,} parameters) "
                f"scores MSE {d['best_mse']:.4f} and r {d['best_gwcorr']:.3f} ({verdict} it)"
            )
        lines.append(
            f"{setting}: the Average scores MSE {avg['mse']:.4f} and r {avg['gwcorr']:.3f}; "
            + "; ".join(parts)
            + "."
        )
    for setting, e in f.items():
        bits = []
        for kind, d in e["families"].items():
            ratio = d.get("decile_ratio") or []
            if not ratio:
                continue
            name = FAMILY_NAMES.get(kind, (kind, ""))[0]
            bits.append(
                f"the best {name} in {d['deciles_beating_average']} of {len(ratio)} (MSE "
                f"{ratio[0]:.2f}x the Average's in the least variable decile, {ratio[-1]:.2f}x "
                "in the most)"
            )
        if bits:
            lines.append(
                f"{setting}, by decile of the mark's variance across the reference cell types, "
                "the MSE is below the Average's for " + "; ".join(bits) + "."
            )
    trends = {s: e["avocado_trend"] for s, e in f.items() if "avocado_trend" in e}
    if trends:
        bits = [
            f"{s}: MSE {t['first']['mse']:.4f} at {t['first']['n_params']:,} parameters to "
            f"{t['last']['mse']:.4f} at {t['last']['n_params']:,}"
            for s, t in trends.items()
        ]
        lines.append("As Avocado's embeddings grow, " + "; ".join(bits) + ".")
    return lines


def plot(table: pd.DataFrame, title: str = ""):
    """MSE and correlation against parameters, and MSE by decile of variance: rows those,
    columns settings.

    Returns
    -------
    matplotlib.figure.Figure
        Top rows: points are models coloured by family (:data:`FAMILY_NAMES`), x
        log-scaled; lines are the track baselines on the same loci. Bottom row: each
        family's best model (by MSE), its MSE over the Average's in each decile of the
        target mark's variance across the reference cell types (1: the Average).
    """
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    plt = pyplot()
    settings = list(dict.fromkeys(table["setting"]))
    decile_row = all(c in table.columns for c in DECILE_COLUMNS)
    n_rows = len(METRICS) + int(decile_row)
    fig, axes = plt.subplots(
        n_rows, len(settings), figsize=(4.4 * len(settings), 3.3 * n_rows), squeeze=False,
        sharey="row",
    )  # fmt: skip
    models = table[table["kind"] != "baseline"]
    for j in range(len(settings)):
        for i in range(len(METRICS) - 1):
            axes[i, j].sharex(axes[len(METRICS) - 1, j])
    for j, setting in enumerate(settings):
        part = table[table["setting"] == setting]
        for i, metric in enumerate(METRICS):
            ax = axes[i, j]
            for kind, rows in part[part["kind"] != "baseline"].groupby("kind", sort=False):
                name, colour = FAMILY_NAMES.get(kind, (kind, "0.3"))
                ax.scatter(
                    rows["n_params"],
                    rows[metric],
                    s=24,
                    color=colour,
                    label=name,
                    edgecolor="white",
                    linewidth=0.4,
                    zorder=3,
                )
            for _, b in part[part["kind"] == "baseline"].iterrows():
                spec = baselines.TRACK_BASELINES[b["baseline"]]
                if np.isfinite(b[metric]):
                    ax.axhline(
                        b[metric], color=spec.color, ls=spec.linestyle, lw=1.2, label=spec.label
                    )
            if metric == "mse":
                # zero's MSE is the track's mean square: far above every model's
                ax.set_yscale("log")
                ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
                ax.yaxis.set_minor_formatter(NullFormatter())
            log_axis(ax, models["n_params"])
            ax.grid(alpha=0.25, lw=0.5)
            if i == 0:
                ax.set_title(setting)
            if j == 0:
                ax.set_ylabel(_METRIC_LABELS[metric])
            if i == len(METRICS) - 1:
                ax.set_xlabel("trainable parameters (XGBoost: leaves)")
            else:
                ax.tick_params(labelbottom=False)
        if decile_row:
            _decile_panel(axes[len(METRICS), j], part, first=j == 0)
    handles, labels_ = legend_entries(list(axes.ravel()))
    fig.legend(handles, labels_, loc="lower center", ncol=3, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def _decile_panel(ax: Any, part: pd.DataFrame, *, first: bool) -> None:
    """Each family's best model: MSE over the Average's per decile of variance."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    base = part[part["kind"] == "baseline"].set_index("baseline")
    avg = np.asarray(base.loc["track_average", list(DECILE_COLUMNS)], np.float64)
    x = np.arange(1, N_DECILES + 1)
    markers = "osD^v"
    kinds = part[part["kind"] != "baseline"].groupby("kind", sort=False)
    for m, (kind, rows) in enumerate(kinds):
        best = rows.loc[rows["mse"].idxmin()]
        name, colour = FAMILY_NAMES.get(kind, (kind, "0.3"))
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.asarray(best[list(DECILE_COLUMNS)], np.float64) / avg
        ax.plot(x, ratio, color=colour, marker=markers[m % len(markers)], ms=4, lw=1.2, label=name)
    spec = baselines.TRACK_BASELINES["track_average"]
    ax.axhline(1.0, color=spec.color, ls=spec.linestyle, lw=1.2, label=spec.label)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(x)
    ax.set_xlabel("decile of variance across cell types (1: least)")
    if first:
        ax.set_ylabel("MSE / the Average's\n(best model of each family)")
    ax.grid(alpha=0.25, lw=0.5)


CAPTION = (
    "Each point is one trained imputation model (x: trainable parameters, log scale; for "
    "XGBoost its leaves), coloured by family; lines are the track baselines on the same "
    "loci. Across cell types every family may read the target mark of other cell types at "
    "every locus; in the hybrid setting the test loci are on held-out chromosomes. Bottom "
    "row: the test loci in ten groups by the target mark's variance across the reference "
    "cell types; each family's best model's MSE there over the Average's (below 1: better "
    "than the Average within loci of alike variability)."
)


def make(
    ds: xr.Dataset,
    *,
    cell_type: str,
    mark: str,
    size: str = "quick",
    test_chroms: Sequence[str] = ("chr1",),
    say: Any = None,
) -> Result:
    """The imputation figure for one track: train the grid, score, plot, say.

    Returns
    -------
    Result
        ``findings``: :func:`findings`; ``sentences``: :func:`describe`;
        ``tables["models"]``: :func:`run`'s table.
    """
    table = run(ds, cell_type=cell_type, mark=mark, size=size, test_chroms=test_chroms, say=say)
    found = findings(table)
    title = f"Imputation across cell types: {mark} in {cell_type}"
    return Result(
        name="imputation",
        title=title,
        figure=plot(table, title=title),
        findings=found,
        sentences=describe(found),
        tables={"models": table},
        caption=[CAPTION],
    )
