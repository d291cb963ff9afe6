"""The average-activity baseline of every line held out in turn, from integer counts.

Holding one line out, the baseline scores each locus by the mean label of the other lines
(:mod:`pitfall.average_activity`). :func:`leave_one_out_counts` reduces a chunk of labels
to the number of loci per (held-out label, positives among the others, labelled others),
from which :class:`AverageActivityEvaluation` derives every AP, every activity group's AP
and the unscored loci exactly; :func:`average_activity_evaluation` sums those counts over
the chunks of a cube in one pass.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Literal

import dask
import numpy as np
import pandas as pd

from pitfall import average_activity
from pitfall.evaluate._core import ArrayLike, as_dask, labels_2d, merge_tree, sum_arrays, to_numpy
from pitfall.evaluate.ap import ap_or_nan
from pitfall.evaluate.chunked import ScoreCounts
from pitfall.evaluate.partitions import GroupCounts

__all__ = [
    "N_STATES",
    "PATTERN_MAX_LINES",
    "AverageActivityEvaluation",
    "average_activity_evaluation",
    "leave_one_out_counts",
]

N_STATES = 3
"""Label states counted by :func:`leave_one_out_counts`: 0 unlabelled (NaN), 1 negative
(0), 2 positive (1)."""


PATTERN_MAX_LINES = 10
"""Up to this many lines, :func:`leave_one_out_counts` histograms whole label patterns
(``3 ** n_lines`` codes, which fit in uint16); beyond, it counts target by target."""


def leave_one_out_counts(
    labels: ArrayLike,
    targets: ArrayLike | None = None,
    *,
    method: Literal["auto", "patterns", "targets"] = "auto",
) -> np.ndarray:
    """Everything the average-activity evaluation needs, per held-out row (one chunk).

    Holding out row ``t``, the average-activity baseline scores a locus ``p / k``: ``k``
    other rows are labelled there and ``p`` of them are 1 (NaN if ``k = 0``: the locus
    is unscored). The locus's group in the partitioned evaluation
    (:func:`partition_by_activity` of the other rows) is ``p``. Score, group and
    scoredness are therefore all functions of ``(p, k)``, so counting loci per (label of
    row ``t``, p, k) gives every AP, every group's AP and the unscored loci exactly,
    from integer histograms, with no sort and no float score.

    Parameters
    ----------
    labels : array-like, shape (n_lines, n_loci)
        Binary labels (0, 1, NaN) of every line in one chunk of loci.
    targets : array-like of int, shape (n_targets,), optional
        Rows held out in turn (default: every row).
    method : {"auto", "patterns", "targets"}
        ``"patterns"``: one histogram of each locus's whole label pattern (NaN/0/1 in
        every row, ``3 ** n_lines`` codes), from which every target's counts follow;
        one pass over the loci whatever the number of targets, for at most
        :data:`PATTERN_MAX_LINES` lines. ``"targets"``: one histogram per target.
        ``"auto"``: patterns when they fit. Both give the same counts.

    Returns
    -------
    numpy.ndarray, shape (n_targets, 3, n_lines, n_lines), int64
        ``counts[i, s, p, k]``: loci whose label in row ``targets[i]`` is NaN (``s=0``),
        0 (``s=1``) or 1 (``s=2``), that are 1 in ``p`` of the other rows and labelled
        in ``k`` of them (``p <= k <= n_lines - 1``; other entries are 0).

    Raises
    ------
    ValueError
        When ``labels`` is not 2-D or holds a value other than 0, 1 and NaN, or
        ``method="patterns"`` with more than :data:`PATTERN_MAX_LINES` lines.
    """
    y = to_numpy(labels)
    if y.ndim != 2:
        raise ValueError(f"labels must be 2-D (line, locus), got shape {y.shape}")
    if method not in ("auto", "patterns", "targets"):
        raise ValueError(f'method must be "auto", "patterns" or "targets", got {method!r}')
    n = y.shape[0]
    if method == "patterns" and n > PATTERN_MAX_LINES:
        raise ValueError(f"method='patterns' takes at most {PATTERN_MAX_LINES} lines, got {n}")
    rows = np.arange(n) if targets is None else np.asarray(targets, dtype=np.intp)
    pos = y == 1
    neg = y == 0
    n_nan = np.count_nonzero(np.isnan(y)) if y.dtype.kind == "f" else 0
    if n_nan + np.count_nonzero(pos) + np.count_nonzero(neg) != y.size:
        known = ~np.isnan(y) if y.dtype.kind == "f" else np.ones(y.shape, dtype=bool)
        bad = np.unique(y[known & ~pos & ~neg])[:5]
        raise ValueError(f"labels must be 0, 1 or NaN, found {bad.tolist()}")
    # State 0 (NaN), 1 (0) or 2 (1) of every item.
    state = neg.view(np.uint8) + pos.view(np.uint8) * np.uint8(2)
    if method == "targets" or (method == "auto" and n > PATTERN_MAX_LINES):
        return _leave_one_out_by_target(state, rows)
    # One base-3 code per locus for its whole pattern, so a single histogram (one pass
    # over the loci) serves every target; 3 ** 10 fits in uint16, and uint8 * uint16
    # scalar stays uint16 (NumPy 2 promotion), so nothing is widened to int64.
    code = np.zeros(y.shape[1], dtype=np.uint16)
    for i in range(n):
        code += state[i] * np.uint16(3**i)
    histogram = np.bincount(code, minlength=3**n)
    return _leave_one_out_from_patterns(histogram, n, rows)


def _leave_one_out_by_target(state: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """:func:`leave_one_out_counts` with one histogram of (state, p, k) codes per target.

    Parameters
    ----------
    state : numpy.ndarray, shape (n_lines, n_loci), uint8
        0 (NaN), 1 (label 0) or 2 (label 1).
    rows : numpy.ndarray, shape (n_targets,), int
        Rows held out.
    """
    n = state.shape[0]
    size = N_STATES * n * n
    known, pos = state > 0, state == 2
    # (p, k) over all rows, coded p * n + k; held-out row t in state s moves the code by
    # a constant per s (minus its own label, plus s * n * n), so one lookup does it.
    base = pos.sum(axis=0, dtype=np.intp) * n + known.sum(axis=0, dtype=np.intp)
    shift = np.array([0, n * n - 1, 2 * n * n - n - 1], dtype=np.intp)
    out = np.empty((rows.size, N_STATES, n, n), dtype=np.int64)
    for i, t in enumerate(rows):
        out[i] = np.bincount(base + shift[state[t]], minlength=size).reshape(N_STATES, n, n)
    return out


def _leave_one_out_from_patterns(histogram: np.ndarray, n: int, rows: np.ndarray) -> np.ndarray:
    """:func:`leave_one_out_counts` from the number of loci with each label pattern.

    Parameters
    ----------
    histogram : numpy.ndarray, shape (3 ** n,), int
        Loci per pattern ``sum_i state_i * 3 ** i`` (state 0 NaN, 1 label 0, 2 label 1).
    n : int
        Number of lines.
    rows : numpy.ndarray, shape (n_targets,), int
        Rows held out.
    """
    codes = np.arange(3**n)
    state = (codes[None, :] // (3 ** np.arange(n))[:, None]) % 3  # (n, 3**n)
    known, pos = state > 0, state == 2
    n_pos, n_known = pos.sum(axis=0), known.sum(axis=0)
    # float64 weights are exact for counts below 2**53.
    weights = histogram.astype(np.float64)
    size = N_STATES * n * n
    out = np.empty((rows.size, N_STATES, n, n), dtype=np.int64)
    for i, t in enumerate(rows):
        code = state[t] * n * n + (n_pos - pos[t]) * n + (n_known - known[t])
        counts = np.bincount(code, weights=weights, minlength=size)
        out[i] = counts.astype(np.int64).reshape(N_STATES, n, n)
    return out


def _stack_rows_and_count(targets: np.ndarray, *row_blocks: np.ndarray) -> np.ndarray:
    """:func:`leave_one_out_counts` of one chunk of loci whose lines come in several blocks."""
    block = row_blocks[0] if len(row_blocks) == 1 else np.concatenate(row_blocks, axis=0)
    return leave_one_out_counts(block, targets)


class AverageActivityEvaluation:
    """The average-activity baseline of each held-out line, evaluated from its counts.

    Built by :func:`average_activity_evaluation`; every statistic below is exact and
    derived from :attr:`counts` without touching the labels again.

    Parameters
    ----------
    counts : numpy.ndarray, shape (n_targets, 3, n_lines, n_lines), int64
        Summed :func:`leave_one_out_counts` over every chunk of loci.
    targets : list, length n_targets
        Name of each held-out line (a value of the cell-type coordinate, or a row index).

    Attributes
    ----------
    counts, targets
        As given.
    """

    def __init__(self, counts: np.ndarray, targets: list[Hashable]) -> None:
        if counts.ndim != 4 or counts.shape[0] != len(targets) or counts.shape[1] != N_STATES:
            raise ValueError(f"counts of shape {counts.shape} do not fit {len(targets)} targets")
        self.counts = counts
        self.targets = list(targets)
        n = counts.shape[-1]
        p, k = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        self._scored = (k >= 1) & (p <= k)
        self._p = p
        # The baseline's score of a locus with p positives among k labelled other lines.
        self._score = average_activity.mean(p, k)

    def __repr__(self) -> str:
        return f"AverageActivityEvaluation(targets={self.targets}, n_lines={self.n_lines})"

    @property
    def n_lines(self) -> int:
        """Number of lines in the labels (each target's score averages the other ones)."""
        return int(self.counts.shape[-1])

    def _row(self, target: Hashable) -> np.ndarray:
        try:
            return self.counts[self.targets.index(target)]
        except ValueError:
            raise KeyError(f"{target!r} is not one of the targets {self.targets}") from None

    def score_counts(self, target: Hashable, group: int | None = None) -> ScoreCounts:
        """The :data:`ScoreCounts` of a target's scored, labelled loci (optionally one group).

        Parameters
        ----------
        target : hashable
            A held-out line.
        group : int, optional
            Only loci bound in exactly this many other lines.

        Returns
        -------
        ScoreCounts
            Ascending distinct scores ``p / k`` (float64) (m,), positives (m,) and
            labelled loci (m,), int64; scores with no labelled locus left out. Equal
            fractions (1/2, 2/4, 3/6) are one score: float division is correctly rounded,
            so they give the same float64, which ``np.unique`` merges.
        """
        row = self._row(target)
        keep = self._scored if group is None else self._scored & (self._p == group)
        positives = row[2][keep]
        totals = row[1][keep] + positives
        scores = self._score[keep]
        uniq, inverse = np.unique(scores, return_inverse=True)
        pos = np.bincount(inverse, weights=positives, minlength=uniq.size).astype(np.int64)
        tot = np.bincount(inverse, weights=totals, minlength=uniq.size).astype(np.int64)
        present = tot > 0
        return uniq[present], pos[present], tot[present]

    def group_counts(self, target: Hashable) -> GroupCounts:
        """Group (0..n_lines-1: other lines bound) -> :data:`ScoreCounts`, as
        :func:`partitioned_ap_dask` ``return_counts`` (groups with no scored, labelled
        locus get empty arrays)."""
        return {g: self.score_counts(target, g) for g in range(self.n_lines)}

    @property
    def ap(self) -> pd.Series:
        """AP of the baseline per target over its scored, labelled loci (NaN: no positive)."""
        values = [ap_or_nan(self.score_counts(t)) for t in self.targets]
        return pd.Series(values, index=pd.Index(self.targets, name="cell_type"), name="ap")

    @property
    def ap_by_group(self) -> pd.DataFrame:
        """AP of each target (a row each) in each group (a column each: 0..n_lines-1 other
        lines bound).

        NaN where a group has no positive scored locus, as :func:`ap_by_group`.
        """
        values = [
            [ap_or_nan(self.score_counts(t, g)) for g in range(self.n_lines)] for t in self.targets
        ]
        return pd.DataFrame(
            values,
            index=pd.Index(self.targets, name="cell_type"),
            columns=pd.RangeIndex(self.n_lines, name="group"),
        )

    @property
    def n_unscored(self) -> pd.Series:
        """Labelled loci of each target that no other line labels (NaN score), int."""
        values = self.counts[:, 1:, 0, 0].sum(axis=1)
        return pd.Series(values, index=pd.Index(self.targets, name="cell_type"), name="n_unscored")

    def table(self) -> pd.DataFrame:
        """One row per (target, group), groups ascending then ``"all"``.

        Returns
        -------
        pandas.DataFrame
            Columns ``cell_type``, ``group``, ``n_loci`` (scored, labelled loci),
            ``n_positive``, ``prevalence`` (the random predictor's AP; NaN with no
            locus) and ``ap`` (NaN with no positive), as :func:`partitioned_evaluation`.
        """
        rows = []
        for t in self.targets:
            for g in [*range(self.n_lines), "all"]:
                counts = self.score_counts(t, None if g == "all" else g)
                n_loci, n_pos = int(counts[2].sum()), int(counts[1].sum())
                rows.append(
                    {
                        "cell_type": t,
                        "group": g,
                        "n_loci": n_loci,
                        "n_positive": n_pos,
                        "prevalence": n_pos / n_loci if n_loci else float("nan"),
                        "ap": ap_or_nan(counts),
                    }
                )
        columns = ["cell_type", "group", "n_loci", "n_positive", "prevalence", "ap"]
        return pd.DataFrame(rows, columns=columns)


def average_activity_evaluation(
    labels: ArrayLike,
    targets: list[Hashable] | None = None,
    *,
    dim: str = "cell_type",
    chunks: int | tuple[int, ...] | str | None = None,
    fan_in: int = 8,
) -> AverageActivityEvaluation:
    """Average-activity baseline of each line held out in turn, in one pass over the chunks.

    For each target line, the baseline scores each locus by the mean label of the other
    lines (NaN labels skipped: :func:`pitfall.average_activity.mean` of the counts); its AP on
    the target's labels, its AP within each group of loci bound in 0..n-1 other lines
    (the partitioned evaluation, groups as :func:`partition_by_activity`), and the
    number of labelled loci no other line labels (unscored, left out of the APs as
    :func:`pitfall.baselines.score_predictions` does) all come from the counts of
    :func:`leave_one_out_counts`. One task per chunk of loci reads the labels of every
    line there once and counts for every target; the fixed-size counts (targets x 3 x
    n x n) are summed in a tree. Nothing is sorted and no score is materialised.

    Parameters
    ----------
    labels : xarray.DataArray (dim, locus), dask array or numpy array (line, locus)
        Binary labels (0, 1, NaN) of every line: each target is scored by the others.
        A dask-backed DataArray (the cube's ``label``) stays lazy; its chunks along
        ``dim`` are stacked per chunk of loci.
    targets : list, optional
        Lines held out in turn: values of the ``dim`` coordinate (row indices for
        arrays). Default: every line.
    dim : str
        The cell-type dim of a DataArray.
    chunks : int, tuple, "auto" or None
        Chunking for inputs that are not dask-backed yet (None: one chunk).
    fan_in : int
        Number of count arrays summed per task.

    Returns
    -------
    AverageActivityEvaluation
        ``.ap`` (per target), ``.ap_by_group`` (target x group), ``.n_unscored``,
        ``.table()`` and the counts; equal to the separate
        :func:`pitfall.baselines.score_predictions` and :func:`partitioned_ap_dask` to
        ~1e-15.

    Raises
    ------
    ValueError
        When ``labels`` is not 2-D, holds a value other than 0, 1 and NaN, names a
        target it does not hold, or ``fan_in < 2``.
    """
    if fan_in < 2:
        raise ValueError(f"fan_in must be at least 2, got {fan_in}")
    labels, names = labels_2d(labels, dim)
    targets = list(names) if targets is None else list(targets)
    missing = [t for t in targets if t not in names]
    if missing:
        raise ValueError(f"targets {missing} are not lines of the labels ({names})")
    rows = np.array([names.index(t) for t in targets], dtype=np.intp)
    x = as_dask(labels, chunks)
    blocks = x.to_delayed()  # (line blocks, locus blocks)
    count = dask.delayed(_stack_rows_and_count, pure=True)
    parts = [count(rows, *blocks[:, j]) for j in range(blocks.shape[1])]
    (total,) = dask.compute(merge_tree(parts, sum_arrays, fan_in))
    return AverageActivityEvaluation(total, targets)
