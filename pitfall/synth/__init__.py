"""A seeded synthetic compendium in real file formats, whose ground truth has the pitfall.

Every cell type's activity is a gene's propensity, shared by all cell types, plus a shift of
its lineage and noise of its own (:mod:`~pitfall.synth.model`). Because the propensity
dominates, most genes have the same state in most cell types (as in real data), and the mean
label over other cell types predicts a new cell type well: the pitfall of Schreiber et al.
(Genome Biology 2020).

For imputation, a manifest of its own (``manifest_imputation.toml``) lists only the observed
experiments (``missing_fraction`` of the (cell type, mark) pairs are missing) of a signal
whose log levels add a cell-type-specific component shared by the cell type's marks (what a
model reading the other marks can recover and the average over cell types cannot), a
locus-constant component (what the average and locus memorisation recover) and noise.

- :mod:`~pitfall.synth.params`: sizes and strengths (:class:`SynthParams`), presets, the
  cell types, marks and motifs.
- :mod:`~pitfall.synth.model`: the gene layout, the bins, the latent truth, the imputation
  signal and which experiments are observed.
- :mod:`~pitfall.synth.sequence`: the genome (FASTA) with its planted motifs.
- :mod:`~pitfall.synth.signal`: the bigWigs.
- :mod:`~pitfall.synth.tables`: the GTF, the RPKM table, the domain BEDs, the manifests,
  the truth.
- :mod:`~pitfall.synth.compendium`: :func:`synthesize`, which writes them all, and the
  list of files.
"""

from pitfall.genome import CORE_MARKS
from pitfall.synth.compendium import SynthCompendium, synthesize
from pitfall.synth.params import (
    BIN_MOTIF,
    CELL_TYPES,
    GENE_MOTIF,
    HG19_LENGTHS,
    MARK_EFFECTS,
    PRESETS,
    SynthParams,
)

__all__ = [
    "BIN_MOTIF",
    "CELL_TYPES",
    "CORE_MARKS",
    "GENE_MOTIF",
    "HG19_LENGTHS",
    "MARK_EFFECTS",
    "PRESETS",
    "SynthCompendium",
    "SynthParams",
    "synthesize",
]
