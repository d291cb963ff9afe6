"""Evaluation: average precision in memory and chunk by chunk, within groups, and tests.

Every function accepts numpy arrays and :class:`xarray.DataArray` objects; the main case
is a DataArray over the ``locus`` dim (one cell type's labels or predictions), or over
``(cell_type, locus)``. Labels are binary: 1 (active / boundary / bound), 0 (not),
NaN (unknown). **Loci whose label is NaN are dropped** before any metric is computed,
so a prediction at an unlabelled locus never counts. Average precision follows
scikit-learn's ``average_precision_score`` exactly, tied scores forming one threshold.

One module per responsibility, every public name re-exported here:

- :mod:`pitfall.evaluate.ap`: average precision in memory (:func:`average_precision`,
  :func:`random_ap`, :func:`ap_or_nan`);
- :mod:`pitfall.evaluate.chunked`: the same AP from per-distinct-score counts, for arrays
  too large for memory (:func:`score_counts`, :func:`merge_score_counts`,
  :func:`average_precision_from_counts`, :func:`average_precision_dask`);
- :mod:`pitfall.evaluate.partitions`: AP within groups of loci, the paper's partitioned
  evaluation (:func:`partition_by_activity`, :func:`partition_by_variance`, :func:`ap_by_group`,
  :func:`partitioned_evaluation`, :func:`partitioned_ap_dask`) and per cell type
  (:func:`average_precision_by_cell_type`);
- :mod:`pitfall.evaluate.leave_one_out`: the average-activity baseline of every line held
  out in turn, from counts (:func:`average_activity_evaluation`);
- :mod:`pitfall.evaluate.mann_whitney`: Mann-Whitney U tests per group
  (:func:`mann_whitney_by_group`, the paper's test);
- :mod:`pitfall.evaluate.residual`: the residual target (:func:`residual_target`).

The grouped in-memory functions (:func:`ap_by_group`, :func:`partitioned_evaluation`, the
Mann-Whitney tests) load their inputs; the chunked ones read each chunk once.
"""

from __future__ import annotations

from pitfall.evaluate.ap import ap_or_nan, average_precision, random_ap
from pitfall.evaluate.chunked import (
    ScoreCounts,
    average_precision_dask,
    average_precision_from_counts,
    merge_score_counts,
    score_counts,
)
from pitfall.evaluate.leave_one_out import (
    N_STATES,
    PATTERN_MAX_LINES,
    AverageActivityEvaluation,
    average_activity_evaluation,
    leave_one_out_counts,
)
from pitfall.evaluate.mann_whitney import mann_whitney_by_group, mann_whitney_scores_by_group
from pitfall.evaluate.partitions import (
    GroupCounts,
    ap_by_group,
    average_precision_by_cell_type,
    group_score_counts,
    merge_group_counts,
    partition_by_activity,
    partition_by_variance,
    partitioned_ap_dask,
    partitioned_evaluation,
    row_score_counts,
)
from pitfall.evaluate.residual import residual_target, score_from_residual

__all__ = [
    "N_STATES",
    "PATTERN_MAX_LINES",
    "AverageActivityEvaluation",
    "GroupCounts",
    "ScoreCounts",
    "ap_by_group",
    "ap_or_nan",
    "average_activity_evaluation",
    "average_precision",
    "average_precision_by_cell_type",
    "average_precision_dask",
    "average_precision_from_counts",
    "group_score_counts",
    "leave_one_out_counts",
    "mann_whitney_by_group",
    "mann_whitney_scores_by_group",
    "merge_group_counts",
    "merge_score_counts",
    "partition_by_activity",
    "partition_by_variance",
    "partitioned_ap_dask",
    "partitioned_evaluation",
    "random_ap",
    "residual_target",
    "row_score_counts",
    "score_counts",
    "score_from_residual",
]
