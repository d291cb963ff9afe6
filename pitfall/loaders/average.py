"""Each locus's average activity over a set of cell types, served per pair to models.

The paper's two remedies (Schreiber et al. 2020, Discussion) both start from the locus's
average activity over the cell types whose labels a model may see: give it to the model as
one more input (as Nair et al. 2019 do), or train on the residual ``label - average``.
:class:`LocusAverage` holds that average (:mod:`pitfall.average_activity`) as per-locus sums
and counts of labels over a set of cell types (read once from the cube, chunk by chunk) and
serves it per (cell type, locus) pair, never counting a pair's own label:

- a pair whose cell type is **not** in the set gets the plain mean over the set;
- a pair whose cell type **is** in the set (a training or validation pair) gets the mean over
  the *other* cell types of the set (leave one out), computed from the pair's own label,
  which the caller passes (the label is exactly what is subtracted from the sum).

So the value a training pair sees has the meaning it has at test time, "the mean label of
this locus over the other known cell types", and no pair's input or residual contains its
own label. Where no other cell type has a label, the set's overall prevalence stands in
(a network cannot take NaN).

Which cell types are in the set is the caller's choice; :class:`~pitfall.models.base.
TrainableModel` uses the training and validation cell types, and :meth:`LocusAverage.without`
drops the test cell types before predicting. The test cell types' labels are then never
read: the reduced set is summed again from the cube, not subtracted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from pitfall import average_activity
from pitfall.loaders.readers import cell_type_index

__all__ = ["LocusAverage"]


class LocusAverage:
    """Sums and counts of labels per locus over a set of cell types.

    Build with :meth:`from_cube`.

    Parameters
    ----------
    sums
        float64, ``(n_loci,)``: sum of the set's known labels at each cube locus.
    counts
        int32, ``(n_loci,)``: number of the set's cell types with a label there.
    members
        bool, ``(n_cube_cell_types,)``: which cube cell types (by position) are in the set.
    cell_types
        The set's names, in the order given.

    Attributes
    ----------
    fill : float
        The set's prevalence (known positives over known labels): the value of loci where no
        cell type of the set (but the pair's own) has a label; 0.5 when the set has none.
    """

    def __init__(
        self,
        sums: np.ndarray,
        counts: np.ndarray,
        members: np.ndarray,
        cell_types: Sequence[str],
    ) -> None:
        self.sums = np.asarray(sums, dtype=np.float64)
        self.counts = np.asarray(counts, dtype=np.int32)  # cell types: int32 is plenty
        self.members = np.asarray(members, dtype=bool)
        self.cell_types = [str(c) for c in cell_types]
        self.fill = average_activity.prevalence(self.sums.sum(), int(self.counts.sum()))

    @classmethod
    def from_cube(cls, cube: xr.Dataset, cell_types: Sequence[str]) -> LocusAverage:
        """The average over ``cell_types`` of the cube's ``label`` (lazy, one pass).

        Parameters
        ----------
        cube
            The whole cube (``open_cube``): every locus, so the arrays index by cube position.
        cell_types
            Names of the cell types averaged; at least one.
        """
        names = list(dict.fromkeys(str(c) for c in cell_types))
        if not names:
            raise ValueError("the average activity needs at least one cell type")
        pos = cell_type_index(cube, names)
        sums, counts = average_activity.label_sums(cube["label"].isel(cell_type=pos))
        members = np.zeros(cube.sizes["cell_type"], dtype=bool)
        members[pos] = True
        return cls(sums, counts, members, names)

    def without(self, cube: xr.Dataset, cell_types: Sequence[str]) -> LocusAverage:
        """The average over this set minus ``cell_types``, summed again from the cube.

        Raises
        ------
        ValueError
            When no cell type is left.
        """
        drop = {str(c) for c in cell_types}
        keep = [c for c in self.cell_types if c not in drop]
        if len(keep) == len(self.cell_types):
            return self
        if not keep:
            raise ValueError(
                "the average activity would use only the cell types left out "
                f"({sorted(drop)}); pass average_cell_types= with other cell types"
            )
        return LocusAverage.from_cube(cube, keep)

    def mean(self) -> np.ndarray:
        """Mean label over the set at every cube locus, float32 ``(n_loci,)``; NaN where no
        cell type of the set has a label."""
        return average_activity.mean(self.sums, self.counts).astype(np.float32)

    def values(
        self,
        loci: np.ndarray,
        cell_types: np.ndarray | None = None,
        y: np.ndarray | None = None,
    ) -> np.ndarray:
        """The average each pair sees, float32 ``(n,)``.

        Parameters
        ----------
        loci
            Cube positions of the pairs' loci, ``(n,)``.
        cell_types
            Cube positions of the pairs' cell types, ``(n,)``; None: none is in the set.
        y
            The pairs' labels ``(n,)`` (NaN: unknown), needed for the rows whose cell type is
            in the set: their own label is left out of the mean.

        Returns
        -------
        numpy.ndarray
            Mean label over the set's cell types other than the pair's own; :attr:`fill`
            where none of them has a label at the locus.

        Raises
        ------
        ValueError
            A row's cell type is in the set and ``y`` is None.
        """
        loci = np.asarray(loci, dtype=np.int64)
        s = self.sums[loci]
        n = self.counts[loci]
        if cell_types is not None:
            own = self.members[np.asarray(cell_types, dtype=np.int64)]
            if own.any():
                if y is None:
                    raise ValueError(
                        "pairs of cell types in the average need their labels, to leave "
                        "them out of it"
                    )
                own_label = np.where(own, np.asarray(y, dtype=np.float64), np.nan)
                s, n = average_activity.leave_own_out(s, n, own_label)
        return average_activity.mean(s, n, self.fill).astype(np.float32)
