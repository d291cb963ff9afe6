"""The audit's verdict and its report: text, JSON, HTML (Jupyter) and a figure.

Verdict rules (``margin`` = 0.01, ``memorisation_threshold`` = 0.8, :data:`ALPHA` = 0.05),
applied to each target's numbers and to the pooled ones (:func:`classify`):

- ``beats`` = ``ap_model > ap_average_activity + margin``;
- ``within`` = ``within_group_gain > margin`` and ``within_group_p < ALPHA``;
- beats and within -> ``"cell-type-specific"``;
- within but not beats -> ``"within groups only"`` (ranks loci inside a group, misses the
  locus-level activity the baseline has);
- not within and ``spearman_avg > memorisation_threshold`` -> ``"memorising"`` (also when
  the pooled AP edges past the baseline by chance: a noisy copy of the average activity
  does);
- otherwise ``"between groups only"`` (beats) or ``"no gain"``.

CI gates (:data:`FAIL_ON`, :meth:`AuditReport.failed`): ``"memorising"`` holds when the
pooled call is ``"memorising"``; ``"no-gain"`` when it is ``"no gain"`` or
``"memorising"`` (the model beats the baseline neither pooled nor within activity groups).

Floor 4: imports nothing of the project.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ALPHA", "AuditReport", "FAIL_ON", "classify", "verdict_text"]

ALPHA = 0.05
FAIL_ON: tuple[str, ...] = ("memorising", "no-gain")
_FAILING_CALLS = {"memorising": {"memorising"}, "no-gain": {"no gain", "memorising"}}
_CALL_COLOURS = {
    "cell-type-specific": "#1a7f37",
    "within groups only": "#9a6700",
    "between groups only": "#9a6700",
    "no gain": "#cf222e",
    "memorising": "#cf222e",
}


def classify(row: dict[str, Any], margin: float, threshold: float) -> str:
    """The verdict's category of a summary row (rules in the module docstring)."""
    beats = row["ap_model"] > row["ap_average_activity"] + margin
    within = row["within_group_gain"] > margin and row["within_group_p"] < ALPHA
    if beats and within:
        return "cell-type-specific"
    if within:
        return "within groups only"
    if row["spearman_avg"] > threshold:
        return "memorising"
    return "between groups only" if beats else "no gain"


def verdict_text(row: dict[str, Any], leak: float | None) -> str:
    """The plain-language verdict of a (pooled) summary row with its ``call``."""
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


_TEXT_COLUMNS = {
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
_PARTITION_COLUMNS = ["group", "n_loci", "n_positive", "ap_model", "ap_average_activity", "mwu_p"]


@dataclass
class AuditReport:
    """Result of :func:`pitfall.audit.audit_predictions`.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per target cell type, then ``"pooled"``; see :meth:`to_frame`.
    partitions : pandas.DataFrame
        Per target (and ``"pooled"``) and activity group: ``n_loci``, ``n_positive``,
        ``ap_model``, ``ap_average_activity``, ``auroc_model``, ``auroc_baseline``,
        ``mwu_U``, ``mwu_p``.
    verdict : str
        Plain-language verdict on the pooled numbers.
    memorising, beats_baseline, beats_within_groups : bool
        The verdict's flags (pooled).
    leakage : float or None
        Pooled leakage; None when no training information was given.
    warnings : list of str
        Every warning raised while reading and matching the predictions.
    settings : dict
        ``margin``, ``memorisation_threshold``, reference cell types, training chromosomes,
        how loci were matched.
    curves : dict
        Pooled labels ``y`` and ``scores`` per predictor (for :meth:`plot`).
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

    @property
    def call(self) -> str:
        """The pooled verdict's category (:func:`classify`)."""
        return str(self.summary["call"].iloc[-1])

    def failed(self, fail_on: Iterable[str]) -> list[str]:
        """The CI gates of ``fail_on`` (each in :data:`FAIL_ON`) that this report fails."""
        out = []
        for gate in fail_on:
            if gate not in _FAILING_CALLS:
                raise ValueError(f"fail_on: {gate!r} is not one of {FAIL_ON}")
            if self.call in _FAILING_CALLS[gate]:
                out.append(gate)
        return out

    def to_frame(self) -> pd.DataFrame:
        """The summary table: one row per target cell type and a last ``"pooled"`` row.

        Columns: ``cell_type``, ``n_scored``, ``n_labelled``, ``n_positive``, ``prevalence``,
        ``ap_model``, ``ap_average_activity``, ``ap_most_similar``, ``most_similar``,
        ``ap_random``, ``pearson_avg``, ``spearman_avg``, ``within_group_gain``,
        ``within_group_p``, ``leakage``, ``call``.
        """
        return self.summary.copy()

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what :meth:`to_json` writes)."""
        return {
            "verdict": self.verdict,
            "call": self.call,
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
        table = self.summary[list(_TEXT_COLUMNS)].rename(columns=_TEXT_COLUMNS)
        lines = [
            "pitfall audit: model vs the average-activity baseline",
            table.to_string(index=False, float_format=lambda x: f"{x:.3f}", na_rep="-"),
            "",
            "partitioned AP (loci grouped by the number of reference cell types where active),"
            " pooled:",
        ]
        part = self.partitions[self.partitions["cell_type"] == "pooled"]
        lines.append(
            part[_PARTITION_COLUMNS].to_string(
                index=False, float_format=lambda x: f"{x:.3g}", na_rep="-"
            )
        )
        lines += ["", f"verdict: {self.verdict}"]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The report in a Jupyter notebook: verdict first, then the tables and warnings."""
        colour = _CALL_COLOURS.get(self.call, "#57606a")
        table = self.summary[list(_TEXT_COLUMNS)].rename(columns=_TEXT_COLUMNS)
        part = self.partitions[self.partitions["cell_type"] == "pooled"][_PARTITION_COLUMNS]
        parts = [
            '<div class="pitfall-audit">',
            "<h4>pitfall audit: model vs the average-activity baseline</h4>",
            f'<p><span style="background:{colour};color:white;padding:1px 6px;'
            f'border-radius:4px">{html.escape(self.call)}</span> '
            f"{html.escape(self.verdict)}</p>",
            table.to_html(index=False, float_format=lambda x: f"{x:.3f}", na_rep="-"),
            "<p>Partitioned AP, pooled (loci grouped by the number of reference cell types "
            "where active):</p>",
            part.to_html(index=False, float_format=lambda x: f"{x:.3g}", na_rep="-"),
        ]
        if self.warnings:
            items = "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings)
            parts.append(f"<p>Warnings:</p><ul>{items}</ul>")
        parts.append("</div>")
        return "\n".join(parts)

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
    return [{str(k): _plain(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


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
