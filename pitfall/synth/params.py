"""The parameters of a synthetic compendium: sizes, strengths, presets, cell types and marks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pitfall.genome import CORE_MARKS

__all__ = [
    "ASSEMBLY",
    "BIN_MOTIF",
    "CELL_TYPES",
    "GENE_MOTIF",
    "HG19_LENGTHS",
    "MARK_EFFECTS",
    "PRESETS",
    "SynthParams",
]

#: hg19 lengths of chr1..chr22; chromosome ``i`` is ``chrom_length * HG19_LENGTHS[i] //
#: HG19_LENGTHS[0]`` long, so ``chrom_length=249_250_621`` gives hg19's autosomes.
HG19_LENGTHS = (
    249250621,
    243199373,
    198022430,
    191154276,
    180915260,
    171115067,
    159138663,
    146364022,
    141213431,
    135534747,
    135006516,
    133851895,
    115169878,
    107349540,
    102531392,
    90354753,
    81195210,
    78077248,
    59128983,
    63025520,
    48129895,
    51304566,
)


#: Mark -> (sign, strength at gene upstream windows, strength at TAD boundaries).
#: A positive sign means high where the locus is active (or a boundary); strengths scale the
#: log-fold change. H3K4me3 marks active promoters best; boundaries carry H3K4me3 and
#: H3K36me3 (housekeeping genes sit at boundaries) and lack H3K9me3.
MARK_EFFECTS: dict[str, tuple[int, float, float]] = {
    "H3K4me3": (+1, 1.0, 0.8),
    "H3K4me1": (+1, 0.6, 0.3),
    "H3K36me3": (+1, 0.4, 0.8),
    "H3K27me3": (-1, 0.7, 0.3),
    "H3K9me3": (-1, 0.35, 0.6),
    "H3K27ac": (+1, 0.8, 0.4),
    "H3K9ac": (+1, 0.8, 0.4),
}

#: The motif planted in gene upstream windows (a CRE, TGACGTCA): its own reverse complement
#: and unable to overlap itself, so counts are the same on both strands and for overlapping or
#: non-overlapping counting.
GENE_MOTIF = "TGACGTCA"
#: The motif planted in bins (a CTCF-like core), in either orientation; neither it nor its
#: reverse complement can overlap itself or the other.
BIN_MOTIF = "CCACCAGGTGGA"

#: Roadmap epigenomes with RNA-seq (E000 excluded): (id, display name, lineage). The order
#: puts the paper's target (E003, H1) first, then its validation cell types (E004, E037,
#: E106, E113), then GM12878 (the TAD validation cell line), then varied lineages, so that
#: the first ``n_cell_types`` are diverse. H1's lineage (ES) has few members on purpose.
CELL_TYPES: tuple[tuple[str, str, str], ...] = (
    ("E003", "H1", "ES"),
    ("E004", "H1 BMP4 Derived Mesendoderm", "ES-derived"),
    ("E037", "CD4 Memory Primary Cells", "blood"),
    ("E106", "Sigmoid Colon", "digestive"),
    ("E113", "Spleen", "blood"),
    ("E116", "GM12878", "blood"),
    ("E123", "K562", "blood"),
    ("E122", "HUVEC", "mesenchymal"),
    ("E127", "NHEK", "epithelial"),
    ("E128", "NHLF", "mesenchymal"),
    ("E016", "HUES64", "ES"),
    ("E047", "CD8 Naive Primary Cells", "blood"),
    ("E053", "Cortex Derived Neurospheres", "brain"),
    ("E057", "Foreskin Keratinocyte 02", "epithelial"),
    ("E055", "Foreskin Fibroblast 01", "mesenchymal"),
    ("E095", "Left Ventricle", "heart-muscle"),
    ("E066", "Liver", "digestive"),
    ("E082", "Fetal Brain", "brain"),
    ("E005", "H1 BMP4 Derived Trophoblast", "ES-derived"),
    ("E006", "H1 Derived Mesenchymal Stem Cells", "ES-derived"),
    ("E007", "H1 Derived Neuronal Progenitor", "ES-derived"),
    ("E011", "hESC Derived CD184+ Endoderm", "ES-derived"),
    ("E012", "hESC Derived CD56+ Ectoderm", "ES-derived"),
    ("E013", "hESC Derived CD56+ Mesoderm", "ES-derived"),
    ("E024", "ES-UCSF4", "ES"),
    ("E027", "Breast Myoepithelial", "epithelial"),
    ("E028", "Breast vHMEC", "epithelial"),
    ("E038", "CD4 Naive Primary Cells", "blood"),
    ("E050", "Mobilized CD34 Primary Cells", "blood"),
    ("E054", "Ganglion Eminence Derived Neurospheres", "brain"),
    ("E056", "Foreskin Fibroblast 02", "mesenchymal"),
    ("E058", "Foreskin Keratinocyte 03", "epithelial"),
    ("E059", "Foreskin Melanocyte 01", "epithelial"),
    ("E061", "Foreskin Melanocyte 03", "epithelial"),
    ("E062", "Peripheral Blood Mononuclear Cells", "blood"),
    ("E065", "Aorta", "heart-muscle"),
    ("E070", "Brain Germinal Matrix", "brain"),
    ("E071", "Brain Hippocampus Middle", "brain"),
    ("E079", "Esophagus", "digestive"),
    ("E084", "Fetal Intestine Large", "digestive"),
    ("E085", "Fetal Intestine Small", "digestive"),
    ("E087", "Pancreatic Islets", "digestive"),
    ("E094", "Gastric", "digestive"),
    ("E096", "Lung", "other"),
    ("E097", "Ovary", "other"),
    ("E098", "Pancreas", "digestive"),
    ("E100", "Psoas Muscle", "heart-muscle"),
    ("E104", "Right Atrium", "heart-muscle"),
    ("E105", "Right Ventricle", "heart-muscle"),
    ("E109", "Small Intestine", "digestive"),
    ("E112", "Thymus", "blood"),
    ("E114", "A549", "other"),
    ("E117", "HeLa-S3", "other"),
    ("E118", "HepG2", "digestive"),
    ("E119", "HMEC", "epithelial"),
    ("E120", "HSMM", "heart-muscle"),
)

#: The assembly name the manifests give.
ASSEMBLY = "synth1"


@dataclass(frozen=True)
class SynthParams:
    """Sizes and strengths of a synthetic compendium.

    Parameters
    ----------
    n_chroms : int
        Number of chromosomes, ``chr1..chrN`` (at most 22).
    chrom_length : int
        Length of ``chr1``; the others follow hg19's proportions (see ``HG19_LENGTHS``).
    n_genes : int
        Genes, spread over chromosomes in proportion to their length.
    n_cell_types : int
        The first ``n_cell_types`` of ``CELL_TYPES`` (at most 56).
    n_lineages : int or None
        None keeps the biological lineages of ``CELL_TYPES``; an integer replaces them with
        that many synthetic lineages ``L1..Lk`` drawn from the seed (E003 always in ``L1``).
    marks : tuple of str
        Histone marks, each a key of ``MARK_EFFECTS``.
    window : int
        Bases of each gene's upstream window (2 kbp upstream of the TSS in the paper).
    bin_size : int
        Bases of the TAD task's bins.
    seed : int
        Seed of every random draw.
    propensity_mean, propensity_scale : float
        Mean and standard deviation of the per-gene propensity (latent scale).
    lineage_fraction : float
        Fraction of loci shifted in each lineage.
    lineage_shift : float
        Standard deviation of a lineage's shift of a shifted locus.
    cell_noise : float
        Standard deviation of the per cell type and locus noise.
    chromatin_noise : float
        Standard deviation of a per cell type and locus discordance between chromatin and
        activity (e.g. poised promoters), shared by all marks, so that combining marks cannot
        average it away.
    mark_noise : float
        Standard deviation of the log signal level of each mark around what the chromatin
        state implies.
    artefact_strength : float
        Standard deviation of a per-locus, per-mark offset of the log signal level that is
        identical in every cell type (mappability, GC content, CpG islands): half of its
        variance is shared by all marks of the locus, half is mark-specific. Gene windows and
        bins each get their own; it is independent of activity and propensity, so it tells
        a model which locus it sees and nothing else. 0 turns artefacts off (every factor is
        exactly 1). For scale: ``mark_noise`` is 1.0 and varies per cell type.
    boundary_mean, boundary_scale : float
        Mean and standard deviation of the per-bin boundary propensity.
    motif_rate : float
        Expected copies of ``GENE_MOTIF`` in the window of a gene of very high propensity.
    bin_motif_rate : float
        Expected copies of ``BIN_MOTIF`` in a bin of very high boundary propensity.
    bin_runs : int
        Background runs of signal per bin (broad, 200-2000 bp).
    bin_sequence : int
        Bases at the centre of each bin that carry its motifs and that the TAD task reads
        as sequence input.
    gene_body_median : int
        Median gene length in bp (log-normal); shrunk when genes would not fit.
    missing_fraction : float
        Fraction of the (cell type, mark) experiments that the imputation manifest
        (``manifest_imputation.toml``) leaves out, in ``[0, 1)``: ``round(missing_fraction *
        C * M)`` of them, or as many as the rules allow when fewer. The rules: E003 (the
        tasks' target) keeps every mark, every mark stays observed in at least 2 cell types,
        every cell type keeps at least 2 marks. The other manifests list every experiment.
    imputation_cell : float
        Scale of the imputation signal's cell-type-specific component: the log level of mark
        ``m`` in cell type ``c`` at gene ``g`` moves by ``imputation_cell * loading[m] *
        a[c, g]``, where ``a`` is the cell type's own deviation of activity from the gene's
        propensity (lineage shift and cell noise, as in ``activity_level``), standardised and
        shared by all marks of the cell type, and ``loading[m] = sign * (0.5 + 0.5 *
        strength)`` from ``MARK_EFFECTS``. A model reading the cell type's other marks can
        recover it; the mark's average over other cell types cannot.
    imputation_locus : float
        Standard deviation of the imputation signal's locus-constant component: a per gene
        and mark log-level offset, the same in every cell type, half of its variance the
        gene's standardised propensity (signed by the mark, so the sequence's motifs reveal
        it), half mark-specific. The average over other cell types, or a model memorising
        loci, recovers it.
    imputation_noise : float
        Standard deviation of the imputation signal's log-level noise per cell type, gene and
        mark, which nothing predicts.
    """

    n_chroms: int = 4
    chrom_length: int = 15_000_000
    n_genes: int = 3000
    n_cell_types: int = 18
    n_lineages: int | None = None
    marks: tuple[str, ...] = CORE_MARKS
    window: int = 2000
    bin_size: int = 40_000
    seed: int = 0
    propensity_mean: float = 1.0
    propensity_scale: float = 2.5
    lineage_fraction: float = 0.1
    lineage_shift: float = 2.0
    cell_noise: float = 0.6
    chromatin_noise: float = 1.5
    mark_noise: float = 1.0
    artefact_strength: float = 0.5
    boundary_mean: float = -2.8
    boundary_scale: float = 2.0
    motif_rate: float = 2.0
    bin_motif_rate: float = 6.0
    bin_runs: int = 6
    bin_sequence: int = 4000
    gene_body_median: int = 10_000
    missing_fraction: float = 0.25
    imputation_cell: float = 1.5
    imputation_locus: float = 1.0
    imputation_noise: float = 0.5

    def __post_init__(self) -> None:
        # Frozen dataclass: normalise marks to a tuple (a list from an override is common).
        object.__setattr__(self, "marks", tuple(self.marks))
        if not 1 <= self.n_chroms <= len(HG19_LENGTHS):
            raise ValueError(f"n_chroms must be in 1..{len(HG19_LENGTHS)}, got {self.n_chroms}")
        if not 1 <= self.n_cell_types <= len(CELL_TYPES):
            raise ValueError(
                f"n_cell_types must be in 1..{len(CELL_TYPES)}, got {self.n_cell_types}"
            )
        unknown = [m for m in self.marks if m not in MARK_EFFECTS]
        if unknown or not self.marks or len(set(self.marks)) != len(self.marks):
            raise ValueError(
                f"marks must be distinct names from {sorted(MARK_EFFECTS)}, got {self.marks}"
            )
        if not self.artefact_strength >= 0:
            raise ValueError(f"artefact_strength must be >= 0, got {self.artefact_strength}")
        if not 0 <= self.missing_fraction < 1:
            raise ValueError(f"missing_fraction must be in [0, 1), got {self.missing_fraction}")
        for name in ("imputation_cell", "imputation_locus", "imputation_noise"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.n_lineages is not None and self.n_lineages < 1:
            raise ValueError(f"n_lineages must be None or >= 1, got {self.n_lineages}")
        if self.n_genes < 2 or self.window < 1 or self.bin_size < 4000:
            raise ValueError("need n_genes >= 2, window >= 1 and bin_size >= 4000")
        if self.bin_size // self.bin_runs <= 2000:
            raise ValueError("bin_size / bin_runs must exceed 2000 bp (the longest run)")
        if min(self.chrom_lengths) < 4 * (self.window + self.bin_size):
            raise ValueError(f"chromosomes too short: {self.chrom_lengths}")

    @property
    def chroms(self) -> tuple[str, ...]:
        """Chromosome names, ``chr1..chrN``."""
        return tuple(f"chr{i + 1}" for i in range(self.n_chroms))

    @property
    def chrom_lengths(self) -> tuple[int, ...]:
        """Chromosome lengths (integer arithmetic, so hg19's own lengths come out exactly)."""
        return tuple(
            self.chrom_length * HG19_LENGTHS[i] // HG19_LENGTHS[0] for i in range(self.n_chroms)
        )

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SynthParams:
        """A preset of ``PRESETS`` with some fields replaced."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
        return dataclasses.replace(PRESETS[name], **overrides)


#: tiny: unit tests; demo: a laptop demo (3,000 genes, 18 cell types, 53 Mbp, 1,300
#: bins); paper: the paper's scale (17,951 genes, 56 cell types, hg19's
#: chr1..chr22 lengths, 72,000 bins).
PRESETS: dict[str, SynthParams] = {
    "tiny": SynthParams(n_chroms=3, chrom_length=1_000_000, n_genes=400, n_cell_types=6),
    "demo": SynthParams(),
    "paper": SynthParams(
        n_chroms=22,
        chrom_length=HG19_LENGTHS[0],
        n_genes=17_951,
        n_cell_types=56,
        gene_body_median=20_000,
    ),
}
