"""The one interface of everything that scores loci: baselines and trainable models alike.

A predictor is fitted on a split's training (and validation) selection of a cube and
predicts scores for its test selection::

    p = SomePredictor(cube, ...).fit(split.train(cube), split.valid(cube))
    scores = p.predict(split.test(cube))        # DataArray (cell_type, locus)

The sweep, the report, the audit and the pipelines only ever call these two methods, so a
new baseline or model family is one class plus one registration
(:mod:`pitfall.baselines`, :mod:`pitfall.models`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import xarray as xr

__all__ = ["Predictor"]


@runtime_checkable
class Predictor(Protocol):
    """Fit on selections of a cube, then score the loci of another selection."""

    def fit(self, train: xr.Dataset, valid: xr.Dataset | None = None) -> Predictor:
        """Learn from ``train`` (cell_type x locus selections of the cube); return self.

        ``valid`` is the validation selection (early stopping, model choice), or None.
        """
        ...

    def predict(self, test: xr.Dataset) -> xr.DataArray:
        """Scores, dims ``(cell_type, locus)`` matching ``test``; higher means more active."""
        ...
