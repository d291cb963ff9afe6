"""The paper's figures and the project's own experiments, one module each.

Every module has a ``make`` function that takes a cube or a sweep's results table and
returns a :class:`Result`: the figure, the findings (numbers, and sentences derived
from them) and the tables. ``pitfall demo``, ``pitfall report real``, the pipelines and the
tests all call them.

========================== ===================================================================
module                     what it makes
========================== ===================================================================
:mod:`.figure1`            Figure 1 d-f / g-i: AP against parameters in the three settings
:mod:`.figure_s1`          Figure S1: gradient-boosted trees
:mod:`.figure_s3`          Figure S3: the average activity against ENCODE-DREAM submissions
:mod:`.figure_s4`          Figure S4 (preprint S3): the partitioned evaluation and its tests
:mod:`.figure_s5`          Figure S5: the baseline's AP against the target's similarity
:mod:`.preprint_s1`        preprint Figure S1: PCA and UMAP of the epigenomic signal
:mod:`.preprint_s2`        preprint Figure S2: two overlapping Gaussians
:mod:`.controls`           the controls (permuted sequence, locus-constant random) over size
:mod:`.remedies`           the paper's two remedies, scored against the baseline
:mod:`.single_cell_types`  single cell types as predictors, against similarity
:mod:`.imputation`         imputation of a mark's track: MSE and correlation against parameters
:mod:`.real_labels`        the real-label report (Roadmap expression, TAD boundaries)
:mod:`.robustness`         the demo's findings over artefact and noise levels
:mod:`.grids`              every model grid and training recipe, per size
========================== ===================================================================
"""

from __future__ import annotations

from pitfall.experiments._result import Result

__all__ = ["Result"]
