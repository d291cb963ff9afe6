"""The audit's verdict and its report: text, JSON, HTML (Jupyter) and a figure.

Verdict rules (``margin`` = 0.01, ``memorisation_threshold`` = 0.8, ``alpha`` = 0.05),
applied to each target's numbers and to the pooled ones (:func:`classify`):

- ``beats`` = the model's AP minus the average-activity baseline's (its ties broken at
  random) exceeds ``margin`` **and** the lower end of its block-bootstrap interval is
  above 0;
- ``within`` = the within-group gain (the model's AP minus a random ranking's, inside
  groups of equally active loci) exceeds ``margin`` **and** its permutation test, adjusted
  over the targets, is below ``alpha``;
- beats and within -> ``"cell-type-specific"``;
- within but not beats -> ``"within groups only"`` (ranks loci inside a group, misses the
  locus-level activity the baseline has);
- not within and ``spearman_avg > memorisation_threshold`` -> ``"memorising"`` (also when
  the pooled AP edges past the baseline: a noisy copy of the average activity does);
- otherwise ``"between groups only"`` (beats) or ``"no gain"``.

For continuous targets (:mod:`pitfall.audit.continuous`) the same calls are made from the
headline metric's difference to the Average baseline and from the within-decile gain.

CI gates (:data:`FAIL_ON`, :meth:`AuditReport.failed`): ``"memorising"`` holds when the
pooled call is ``"memorising"``; ``"no-gain"`` when it is ``"no gain"`` or
``"memorising"`` (the model beats the baseline neither pooled nor within activity groups).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pitfall._atomic import atomic_write_bytes

__all__ = [
    "CALLS",
    "FAIL_ON",
    "PALETTE",
    "AuditReport",
    "call_of",
    "classify",
    "json_schema",
    "verdict_text",
]

FAIL_ON: tuple[str, ...] = ("memorising", "no-gain")
CALLS: tuple[str, ...] = (
    "cell-type-specific",
    "within groups only",
    "between groups only",
    "no gain",
    "memorising",
)
_FAILING_CALLS = {"memorising": {"memorising"}, "no-gain": {"no gain", "memorising"}}

#: Okabe and Ito's colour-blind-safe palette, by role in the figures.
PALETTE = {
    "model": "#0072B2",
    "average activity": "#000000",
    "most similar cell type": "#E69F00",
    "zero": "#CC79A7",
    "random": "#999999",
    "good": "#009E73",
    "bad": "#D55E00",
}
_CALL_COLOURS = {
    "cell-type-specific": PALETTE["good"],
    "within groups only": PALETTE["most similar cell type"],
    "between groups only": PALETTE["most similar cell type"],
    "no gain": PALETTE["bad"],
    "memorising": PALETTE["bad"],
}


def call_of(beats: bool, within: bool, spearman_avg: float, threshold: float) -> str:
    """The verdict's category from its two findings and the correlation with the average
    (rules in the module docstring; binary and continuous targets alike)."""
    if beats and within:
        return "cell-type-specific"
    if within:
        return "within groups only"
    if spearman_avg > threshold:
        return "memorising"
    return "between groups only" if beats else "no gain"


def classify(row: dict[str, Any], margin: float, threshold: float, alpha: float) -> str:
    """The verdict's category of a binary summary row (rules in the module docstring)."""
    diff, (low, _) = row["ap_diff"], row["ap_diff_ci"]
    p = row.get("within_group_p_adjusted", row["within_group_p"])
    within = bool(row["within_group_gain"] > margin and p < alpha)
    return call_of(bool(diff > margin and low > 0), within, row["spearman_avg"], threshold)


def _p(p: float) -> str:
    """A p-value as text: two significant digits, three decimals near 1."""
    if not math.isfinite(p):
        return "-"
    return f"{p:.3f}" if p >= 0.01 else f"{p:.2g}"


def _ci(ci: Sequence[float], fmt: str = ".3f") -> str:
    low, high = ci
    if not (math.isfinite(low) and math.isfinite(high)):
        return "[-]"
    return f"[{low:{fmt}}, {high:{fmt}}]"


def verdict_text(row: dict[str, Any], settings: dict[str, Any]) -> str:
    """The plain-language verdict of a (pooled) summary row with its ``call``.

    ``settings`` gives the leakage declaration, the interval level and the tests' sizes
    (what :class:`AuditReport` stores).
    """
    call = row["call"]
    ap_m, ap_b = row["ap_model"], row["ap_average_activity_random_ties"]
    tied = row["ap_average_activity"]
    diff, diff_ci = row["ap_diff"], row["ap_diff_ci"]
    level = f"{settings['level']:.0%}"
    numbers = (
        f"AP {ap_m:.3f} {_ci(row['ap_model_ci'])} vs {ap_b:.3f} "
        f"{_ci(row['ap_average_activity_random_ties_ci'])}"
    )
    if abs(tied - ap_b) >= 5e-4:
        numbers += f" (its ties broken at random; {tied:.3f} with ties grouped)"
    numbers += f", difference {diff:+.3f} {_ci(diff_ci, '+.3f')}"
    if call in ("cell-type-specific", "between groups only"):
        head = f"beats the average-activity baseline: {numbers}"
    elif diff_ci[1] < 0:
        head = f"falls short of the average-activity baseline: {numbers}"
    else:
        head = f"does not beat the average-activity baseline: {numbers}"
    gain, gain_ci = row["within_group_gain"], row["within_group_gain_ci"]
    p = row.get("within_group_p_adjusted", row["within_group_p"])
    if math.isnan(gain):
        g = "no group holds both classes"
    else:
        g = (
            f"{gain:+.3f} AP over a random ranking {_ci(gain_ci, '+.3f')}, permutation "
            f"p = {_p(p)}; {row['n_groups_significant']} of {row['n_groups_tested']} groups "
            f"significant after {settings['adjust'].upper() if settings['adjust'] == 'bh' else 'Holm'} "
            "correction"
        )
    rho = row["spearman_avg"]
    if call == "memorising":
        text = (
            f"{head}; within groups of equally active loci it ranks no better than chance "
            f"({g}); its scores correlate {rho:.2f} (Spearman) with the locus's average "
            "activity over the other cell types: likely memorising locus activity"
        )
    elif call == "no gain":
        text = (
            f"{head}; its scores correlate {rho:.2f} (Spearman) with the average activity and "
            f"do not rank loci within an activity group better than chance ({g}): it adds "
            "nothing over the baseline"
        )
    elif call == "cell-type-specific":
        text = (
            f"{head}, and within groups of equally active loci it ranks better than chance "
            f"({g}): learns cell-type-specific activity"
        )
    elif call == "within groups only":
        text = (
            f"{head}, but within groups of equally active loci it ranks better than chance "
            f"({g}): it learns cell-type-specific activity the baseline lacks, yet misses "
            "the locus-level activity the baseline has (combining both may help)"
        )
    else:
        text = (
            f"{head}, but not within groups of equally active loci ({g}): the gain comes "
            "from ranking activity groups, not from cell-type-specific activity"
        )
    text += f". The call rests on {level} block-bootstrap intervals and the corrected tests"
    return text + ". " + leakage_sentence(row["leakage"], settings["leakage_declared"])


def leakage_sentence(leak: float, declared: bool) -> str:
    """What the leakage means for the verdict, and how to state it when it was not."""
    if not declared:
        return (
            "Leakage not declared: assumed the worst, every scored locus labelled in training "
            "under another cell type (leakage 100%), where memorising pays; state it with "
            "train_cell_types= and train_chroms= (CLI: --train-cell-types, --train-chroms)"
        )
    if leak > 0:
        return (
            f"{leak:.0%} of the scored loci were labelled in training under another cell "
            "type (cross-cell-type evaluation), where memorising pays; a hybrid evaluation "
            "(unseen chromosomes too) is the fair test"
        )
    return "Leakage 0%: no scored locus was labelled in training (a hybrid evaluation)"


def _schema_text() -> str:
    return resources.files("pitfall.audit").joinpath("audit.schema.json").read_text()


def json_schema() -> dict[str, Any]:
    """The JSON Schema of :meth:`AuditReport.to_dict` (``pitfall/audit/audit.schema.json``)."""
    return dict(json.loads(_schema_text()))


_TEXT_COLUMNS = {
    "cell_type": "cell type",
    "n_labelled": "loci",
    "prevalence": "prev",
    "ap_model": "AP model",
    "ap_average_activity_random_ties": "AP avg",
    "ap_diff": "diff",
    "ap_most_similar_random_ties": "AP similar",
    "spearman_avg": "rho(avg)",
    "within_group_gain": "within",
    "within_group_p_adjusted": "p(within)",
    "leakage": "leakage",
    "call": "call",
}
_INTERVALS = {
    "ap_model": "ap_model_ci",
    "ap_average_activity_random_ties": "ap_average_activity_random_ties_ci",
    "ap_diff": "ap_diff_ci",
    "ap_most_similar_random_ties": "ap_most_similar_random_ties_ci",
    "within_group_gain": "within_group_gain_ci",
}
_PARTITION_COLUMNS = [
    "group",
    "n_loci",
    "n_positive",
    "ap_model",
    "ap_random_expected",
    "gain",
    "p",
    "p_adjusted",
]


@dataclass
class AuditReport:
    """Result of :func:`pitfall.audit.audit_predictions` (and of the arrays and track paths).

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per target cell type, then ``"pooled"``; see :meth:`to_frame`. Intervals
        are ``[low, high]`` lists.
    partitions : pandas.DataFrame
        Per target (and ``"pooled"``) and group of loci: binary targets group loci by the
        number of reference cell types in which they are active (``n_loci``,
        ``n_positive``, ``ap_model``, ``ap_random_expected``, ``random_low``/``random_high``
        the central interval of the permutation null, ``gain``, ``p``, ``p_adjusted``,
        ``significant``); continuous targets by decile of cross-cell-type variance.
    verdict : str
        Plain-language verdict on the pooled numbers.
    memorising, beats_baseline, beats_within_groups : bool
        The verdict's flags (pooled).
    leakage : float
        Pooled leakage (1.0, the worst case, when it was not declared).
    leakage_declared : bool
        Whether the training data were stated.
    kind : str
        ``"binary"`` or ``"continuous"``.
    warnings : list of str
        Every warning raised while reading and matching the predictions.
    notes : list of str
        What the audit left out or assumed, and why.
    settings : dict
        Thresholds, interval and test settings, reference cell types, training data, how
        loci were matched.
    curves : dict
        What :meth:`plot` draws besides the tables: for a binary audit ``"pr"``, the pooled
        precision-recall curve (recall, precision; float64 arrays of at most
        :data:`pitfall.audit.metrics.MAX_CURVE_POINTS` points) of the model and each
        baseline by name; for a continuous audit, evenly spaced bins of the observed,
        predicted and Average tracks.
    """

    summary: pd.DataFrame
    partitions: pd.DataFrame
    verdict: str
    memorising: bool
    beats_baseline: bool
    beats_within_groups: bool
    leakage: float
    leakage_declared: bool
    kind: str = "binary"
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
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

        Binary targets: ``cell_type``, ``n_scored``, ``n_labelled``, ``n_positive``,
        ``prevalence``, ``ap_model`` and ``ap_model_ci``; per baseline (``average_activity``,
        ``most_similar``) ``ap_<b>`` (ties grouped), ``ap_<b>_random_ties`` (ties broken
        at random), both with ``_ci``; ``ap_diff`` (model minus the average activity with
        random ties) and ``ap_diff_most_similar``, with ``_ci``; ``ap_random`` (a random
        ranking's expected AP); ``most_similar``; ``pearson_avg``, ``spearman_avg``;
        ``within_group_gain`` (with ``_ci``), ``within_group_p``,
        ``within_group_p_adjusted``, ``n_groups_tested``, ``n_groups_significant``;
        ``leakage``; ``call``.
        """
        return self.summary.copy()

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what :meth:`to_json` writes), following :func:`json_schema`."""
        return {
            "schema": "pitfall-audit/1",
            "kind": self.kind,
            "verdict": self.verdict,
            "call": self.call,
            "memorising": self.memorising,
            "beats_baseline": self.beats_baseline,
            "beats_within_groups": self.beats_within_groups,
            "leakage": self.leakage,
            "leakage_declared": self.leakage_declared,
            "summary": _records(self.summary),
            "partitions": _records(self.partitions),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "settings": _plain(self.settings),
        }

    def to_json(self, path: str | os.PathLike) -> dict[str, Any]:
        """Write :meth:`to_dict` as JSON (NaN as null) to ``path``; return the dict."""
        d = self.to_dict()
        atomic_write_bytes(path, (json.dumps(d, indent=2, allow_nan=False) + "\n").encode())
        return d

    # ------------------------------------------------------------------------------- text

    def _table(self) -> pd.DataFrame:
        if self.kind == "continuous":
            from pitfall.audit.continuous import summary_table

            return summary_table(self)
        cols = [c for c in _TEXT_COLUMNS if c in self.summary]
        table = self.summary[cols].copy()
        for col, ci in _INTERVALS.items():
            if col in table and ci in self.summary:
                fmt = "+.3f" if col in ("ap_diff", "within_group_gain") else ".3f"
                table[col] = [
                    "-" if not math.isfinite(v) else f"{v:{fmt}} {_ci(c, fmt)}"
                    for v, c in zip(self.summary[col], self.summary[ci], strict=True)
                ]
        return table.rename(columns=_TEXT_COLUMNS)

    def _partition_table(self) -> pd.DataFrame:
        part = self.partitions[self.partitions["cell_type"] == "pooled"]
        if self.kind == "continuous":
            from pitfall.audit.continuous import DECILE_COLUMNS

            return part[[c for c in DECILE_COLUMNS if c in part]]
        return part[[c for c in _PARTITION_COLUMNS if c in part]]

    def _partition_caption(self, as_html: bool = False) -> str:
        if self.kind == "continuous":
            from pitfall.audit.continuous import DECILE_CAPTION

            return DECILE_CAPTION
        if as_html:
            return (
                "Within groups of equally active loci, pooled (reference: a random ranking's "
                "expected AP):"
            )
        return (
            "within groups of loci active in the same number of reference cell types, pooled "
            "(a random ranking's expected AP is the reference):"
        )

    def _footer(self) -> str:
        s = self.settings
        if self.kind == "continuous":
            from pitfall.audit.continuous import footer_text

            return footer_text(s)
        return (
            f"intervals: {s['level']:.0%} block bootstrap ({s['blocks']}, "
            f"{s['n_bootstrap']} replicates, seed {s['seed']}); within groups: permutation "
            f"tests ({s.get('n_permutations', '-')} placements per group), "
            f"{'Holm' if s['adjust'] == 'holm' else 'Benjamini-Hochberg'}-adjusted"
        )

    def __str__(self) -> str:
        lines = [
            f"pitfall audit ({self.kind}): model vs the baselines that expose the pitfall",
            self._table().to_string(index=False, float_format=lambda x: f"{x:.3f}", na_rep="-"),
            "",
            self._partition_caption(),
            self._partition_table().to_string(
                index=False, float_format=lambda x: f"{x:.3g}", na_rep="-"
            ),
            "",
            f"verdict: {self.verdict}",
            self._footer(),
        ]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The report in a notebook: verdict first, the figure, then tables and notes."""
        colour = _CALL_COLOURS.get(self.call, "#57606a")
        parts = [
            '<div class="pitfall-audit">',
            "<h4>pitfall audit: model vs the baselines that expose the pitfall</h4>",
            f'<p><span style="background:{colour};color:white;padding:1px 6px;'
            f'border-radius:4px">{html.escape(self.call)}</span> '
            f"{html.escape(self.verdict)}</p>",
        ]
        png = self.figure_png()
        if png is not None:
            data = base64.b64encode(png).decode()
            parts.append(
                f'<img alt="audit figure" style="max-width:100%" '
                f'src="data:image/png;base64,{data}"/>'
            )
        parts += [
            self._table().to_html(index=False, float_format=lambda x: f"{x:.3f}", na_rep="-"),
            f"<p>{html.escape(self._partition_caption(as_html=True))}</p>",
            self._partition_table().to_html(
                index=False, float_format=lambda x: f"{x:.3g}", na_rep="-"
            ),
            f"<p><small>{html.escape(self._footer())}</small></p>",
        ]
        for title, items in (("Notes", self.notes), ("Warnings", self.warnings)):
            if items:
                lis = "".join(f"<li>{html.escape(w)}</li>" for w in items)
                parts.append(f"<p>{title}:</p><ul>{lis}</ul>")
        parts.append("</div>")
        return "\n".join(parts)

    def to_html(self, path: str | os.PathLike) -> Path:
        """Write the notebook view as a self-contained HTML page."""
        page = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>pitfall audit</title>"
            "</head><body>" + self._repr_html_() + "</body></html>\n"
        )
        return atomic_write_bytes(path, page.encode())

    def save(
        self,
        *,
        figure: str | os.PathLike | None = None,
        json_path: str | os.PathLike | None = None,
        html_path: str | os.PathLike | None = None,
    ) -> None:
        """Write whichever of the figure (PNG), the JSON and the HTML page are asked for."""
        if json_path is not None:
            self.to_json(json_path)
        if figure is not None:
            self.plot(figure)
        if html_path is not None:
            self.to_html(html_path)

    # ----------------------------------------------------------------------------- figure

    def figure(self):
        """The report's figure (a matplotlib Figure; needs the ``plot`` extra)."""
        from pitfall.audit.figure import audit_figure

        return audit_figure(self)

    def figure_png(self) -> bytes | None:
        """The figure as PNG bytes, or None without matplotlib."""
        try:
            fig = self.figure()
        except ImportError:
            return None
        from pitfall._plotting import pyplot

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        pyplot().close(fig)
        return buf.getvalue()

    def plot(self, path: str | os.PathLike) -> Path:
        """Save :meth:`figure` as PNG. Needs matplotlib (the ``plot`` extra)."""
        png = self.figure_png()
        if png is None:
            raise ImportError("AuditReport.plot needs matplotlib: pip install 'pitfall[plot]'")
        return atomic_write_bytes(path, png)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _plain(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple | np.ndarray):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
