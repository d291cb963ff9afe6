"""Genome and epigenome constants shared by the data sets, the manifests and the pipelines."""

from __future__ import annotations

__all__ = ["AUTOSOMES", "CORE_MARKS"]

#: The human autosomes in natural order, ``("chr1", ..., "chr22")``: every task of Schreiber
#: et al. (2020) and every real data set of this project uses them (the sex chromosomes differ
#: between cell lines' donors).
AUTOSOMES: tuple[str, ...] = tuple(f"chr{i}" for i in range(1, 23))

#: The five core histone marks that every consolidated Roadmap epigenome has (the inputs of
#: the paper's expression models), in the order of Roadmap's core 15-state model.
CORE_MARKS: tuple[str, ...] = ("H3K4me3", "H3K4me1", "H3K36me3", "H3K27me3", "H3K9me3")
