"""A seeded synthetic compendium in real file formats, whose ground truth has the pitfall.

The generative model (all on a latent scale where 0 separates active from inactive):

- every gene ``g`` has a propensity ``mu[g]`` shared by all cell types; every 40 kb bin
  ``j`` has a boundary propensity ``beta[j]``;
- every cell type belongs to a lineage; each lineage shifts a small random fraction of the
  loci up or down (``lineage_fraction``, ``lineage_shift``);
- every cell type adds its own noise (``cell_noise``), so the latent activity is
  ``z[c, g] = mu[g] + shift[lineage(c), g] + noise[c, g]`` and the label is ``z > 0``;
- marks follow each cell type's own ``z``: activating marks are high where the locus is
  active, repressive marks where it is inactive, with log-normal noise (``mark_noise``);
- every locus scales each mark's signal by a factor of its own that is the same in every
  cell type (``artefact_strength``), as mappability, GC content and CpG islands do in real
  ChIP-seq: it carries no activity, only the locus's identity, which a model seeing a locus
  in many training cell types can memorise from the signal as from the sequence;
- the sequence carries a motif whose number of copies in a gene's upstream window is a
  Poisson draw whose rate grows with ``mu[g]`` (and a second motif in bins, with
  ``beta[j]``), at uniformly random non-overlapping positions, so the sequence reveals the
  *average* activity of a locus over cell types, never what is specific to one cell type.

Because ``mu`` dominates ``z``, most genes have the same state in most cell types (as in
real data), and the mean label over other cell types predicts a new cell type well: the
pitfall of Schreiber et al. (Genome Biology 2020).

Files written by :func:`synthesize` (paths relative to ``out_dir``):

``genome.fa``
    Plain FASTA, 60 letters a line, ``chr1..chrN``; soft-masked (lowercase) stretches and a
    few runs of ``N`` between genes. ``pyfaidx`` builds the ``.fai`` on first use.
``chrom.sizes``
    UCSC two columns, ``chrom<TAB>length``.
``genes.gtf.gz``
    GENCODE-like ``gene`` records (two ``##`` header lines, 1-based inclusive coordinates,
    sorted by chromosome then start, both strands, ids with a version suffix). No gene body
    overlaps another gene's upstream window. The first gene of ``chr1`` (plus strand) and
    the last gene of the last chromosome (minus strand) sit so close to the chromosome end
    that their upstream window runs past it.
``bigwig/{CELL}-{MARK}.bw``
    One bigWig per cell type and mark: runs of 20-200 bp tiling each gene's upstream window
    (a tenth of them left as gaps with no data) plus a sparse background of broad runs in
    every 40 kb bin whose level follows that bin's boundary state. Values are skewed and
    non-negative, like -log10 p-values. Every value of a locus (gene window or bin) and
    mark carries that locus's artefact factor (``signal_artefact``, ``bin_signal_artefact``
    in ``truth.npz``), the same in every cell type.
``rpkm.tsv.gz``
    Shaped like Roadmap's ``57epigenomes.RPKM.pc.gz``: header ``gene_id<TAB>E003...``
    (columns sorted by id, no trailing tab), one row per gene sorted by gene id, ids
    without version, three decimals, and -- Roadmap's quirk -- every *data* row ends with a
    stray tab, so ``pandas.read_csv(..., sep="\\t", index_col=0)`` shifts the columns; read it
    with ``index_col=False``. Label rule: active = RPKM > 0.5, exactly the truth's
    ``activity``.
``domains/{CELL}.bed``
    ``chrom start end`` (0-based half-open, sorted), contiguous domains whose edges lie in
    the middle of boundary bins: domain ``k`` spans
    ``[b_k * bin_size + bin_size // 2, b_{k+1} * bin_size + bin_size // 2)`` for consecutive
    boundary bins ``b_k`` of a chromosome. The truth's ``boundary`` is the set of bins in
    which a domain starts or ends; as no edge lies on a bin edge, ``end // bin_size`` and
    ``(end - 1) // bin_size`` mark the same bin.
``truth.npz``
    The ground truth, see :func:`synthesize`. Written with a fixed zip timestamp so that
    every file of the compendium is byte-identical for a given seed.
``manifest.toml``, ``manifest_tad.toml``
    The expression task (gene upstream windows) and the TAD task (40 kb bins).

Coordinates: a gene's TSS (0-based) is ``start`` of a plus-strand gene and ``end - 1`` of a
minus-strand gene (BED-style ``start, end``); its upstream window of ``window`` bases is
``[tss - window, tss)`` on the plus strand and ``[tss + 1, tss + 1 + window)`` on the minus
strand, clipped to the chromosome. The gene motif is its own reverse complement, so its
count does not depend on the strand the window is read on.

Floor 1: imports nothing from the project.
"""

from __future__ import annotations

import dataclasses
import gzip
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pyBigWig
from scipy.special import expit

from pitfall.genome import CORE_MARKS

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

#: hg19 lengths of chr1..chr22; chromosome ``i`` is ``chrom_length * HG19_LENGTHS[i] //
#: HG19_LENGTHS[0]`` long, so ``chrom_length=249_250_621`` gives hg19's autosomes.
HG19_LENGTHS = (
    249250621, 243199373, 198022430, 191154276, 180915260, 171115067, 159138663, 146364022,
    141213431, 135534747, 135006516, 133851895, 115169878, 107349540, 102531392, 90354753,
    81195210, 78077248, 59128983, 63025520, 48129895, 51304566,
)  # fmt: skip

#: The five core marks of Roadmap, activating first.

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

ASSEMBLY = "synth1"

# Independent random streams, one per stage, so that changing one stage (e.g. the number of
# marks) leaves every other stage's draws unchanged.
_S_LAYOUT, _S_MODEL, _S_SEQ, _S_SIGNAL, _S_LEVEL, _S_ARTEFACT = 1, 2, 3, 4, 5, 6

# Background base composition (A, C, G, T) of about 41% GC, as a 200-entry lookup table so
# that one uint8 draw per base suffices.
_BASE_LUT = np.repeat(np.frombuffer(b"ACGT", dtype=np.uint8), [59, 41, 41, 59])
_RUN_MIN, _RUN_MAX = 20, 200  # bp of the runs that tile gene windows
_GAP_FRACTION = 0.1  # share of window runs left without data
_SHARPNESS = 1.0  # slope of the chromatin state's logistic response to the latent activity
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# Share of an artefact's log-scale variance common to all marks of a locus (mappability hits
# every assay alike); the rest is mark-specific (GC and CpG biases differ between antibodies).
_ARTEFACT_SHARED = 0.5


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


#: tiny: unit tests (about a second); demo: a laptop demo (3,000 genes, 18 cell types,
#: 53 Mbp, 1,300 bins); paper: the paper's scale (17,951 genes, 56 cell types, hg19's
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


@dataclass
class SynthCompendium:
    """Everything :func:`synthesize` wrote, with the parameters that made it."""

    root: Path
    params: SynthParams
    cell_types: tuple[str, ...]
    names: tuple[str, ...]
    groups: tuple[str, ...]
    marks: tuple[str, ...]
    fasta: Path
    chrom_sizes: Path
    gtf: Path
    rpkm: Path
    truth_path: Path
    manifest: Path
    manifest_tad: Path
    bigwigs: dict[str, dict[str, Path]] = field(default_factory=dict)
    domains: dict[str, Path] = field(default_factory=dict)

    def truth(self) -> dict[str, np.ndarray]:
        """Load ``truth.npz`` into a dict of arrays (keys described in :func:`synthesize`)."""
        with np.load(self.truth_path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}


# --------------------------------------------------------------------------- model


def _rng(params: SynthParams, *key: int) -> np.random.Generator:
    return np.random.default_rng([params.seed, *key])


def _cell_table(params: SynthParams) -> tuple[list[str], list[str], list[str]]:
    rows = CELL_TYPES[: params.n_cell_types]
    ids = [r[0] for r in rows]
    names = [r[1] for r in rows]
    groups = [r[2] for r in rows]
    if params.n_lineages is not None:
        k = params.n_lineages
        draw = _rng(params, _S_MODEL, 99).integers(0, k, size=len(ids))
        draw[0] = 0
        groups = [f"L{i + 1}" for i in draw]
    return ids, names, groups


def _layout_genes(params: SynthParams) -> dict[str, np.ndarray]:
    """Place genes so that no gene body or window overlaps another gene's window."""
    rng = _rng(params, _S_LAYOUT)
    lengths = np.array(params.chrom_lengths, dtype=np.int64)
    w = params.window
    # Largest-remainder apportionment: deterministic and sums to n_genes exactly.
    share = params.n_genes * lengths / lengths.sum()
    counts = np.floor(share).astype(np.int64)
    counts[np.argsort(-(share - counts), kind="stable")[: params.n_genes - counts.sum()]] += 1
    margin = 2 * w
    chrom_idx, fstart, body, plus = [], [], [], []
    for ci, (n, length) in enumerate(zip(counts, lengths, strict=True)):
        n = int(n)
        if n == 0:
            continue
        usable = int(length) - 2 * margin
        b = np.clip(rng.lognormal(np.log(params.gene_body_median), 0.8, n), 500, 200_000)
        # Leave at least 40% of the chromosome intergenic: shrink bodies when they crowd.
        budget = 0.6 * usable - n * w
        if budget < n * 300:
            raise ValueError(f"{n} genes of window {w} do not fit on chr{ci + 1}")
        if b.sum() > budget:
            b = np.maximum(b * budget / b.sum(), 300)
        b = b.astype(np.int64)
        foot = b + w
        free = usable - int(foot.sum())
        cuts = np.sort(rng.integers(0, free + 1, size=n))
        gaps = np.diff(np.concatenate([[0], cuts]))
        starts = margin + np.cumsum(gaps) + np.concatenate([[0], np.cumsum(foot)[:-1]])
        chrom_idx.append(np.full(n, ci))
        fstart.append(starts)
        body.append(b)
        plus.append(rng.random(n) < 0.5)
    ci_all = np.concatenate(chrom_idx)
    fs = np.concatenate(fstart)
    bl = np.concatenate(body)
    pl = np.concatenate(plus)
    # Edge cases for featurizers: the first gene of chr1 (plus strand) and the last gene of
    # the last chromosome (minus strand) get windows that run past the chromosome's ends.
    # Moving a footprint outward cannot make it overlap its neighbours.
    pl[0] = True
    fs[0] = -(w - min(700, w // 2))
    last = len(fs) - 1
    pl[last] = False
    fs[last] = int(lengths[ci_all[last]]) + min(800, w // 2) - w - int(bl[last])
    # Footprint: plus = [window][body], minus = [body][window].
    g_start = np.where(pl, fs + w, fs)
    g_end = g_start + bl
    tss = np.where(pl, g_start, g_end - 1)
    ws = np.where(pl, tss - w, tss + 1)
    we = ws + w
    clen = lengths[ci_all]
    return {
        "chrom_index": ci_all,
        "start": g_start,
        "end": g_end,
        "plus": pl,
        "tss": tss,
        "window_start": np.clip(ws, 0, clen),
        "window_end": np.clip(we, 0, clen),
    }


def _bins(params: SynthParams) -> dict[str, np.ndarray]:
    ci, st, en = [], [], []
    for i, length in enumerate(params.chrom_lengths):
        s = np.arange(0, length, params.bin_size, dtype=np.int64)
        ci.append(np.full(len(s), i))
        st.append(s)
        en.append(np.minimum(s + params.bin_size, length))
    return {
        "chrom_index": np.concatenate(ci),
        "start": np.concatenate(st),
        "end": np.concatenate(en),
    }


def _latent(
    rng: np.random.Generator, base: np.ndarray, lineage: np.ndarray, params: SynthParams
) -> np.ndarray:
    """``base + lineage shift + cell noise`` for every cell type (rows) and locus (columns)."""
    n_lin = int(lineage.max()) + 1
    shifted = rng.random((n_lin, base.size)) < params.lineage_fraction
    shift = np.where(shifted, rng.normal(0.0, params.lineage_shift, (n_lin, base.size)), 0.0)
    noise = rng.normal(0.0, params.cell_noise, (lineage.size, base.size))
    return base[None, :] + shift[lineage] + noise


def _artefacts(params: SynthParams, n_loci: int, kind: int) -> np.ndarray:
    """Multiplicative artefact factors (loci x marks), the same in every cell type.

    ``kind`` keeps gene windows (0) and bins (1) apart. Each mark draws from a stream keyed
    by its place in ``MARK_EFFECTS``, so a mark's factors do not depend on which other marks
    are synthesized; the draws do not depend on the strength either, so compendia that
    differ only in ``artefact_strength`` differ only by these factors.
    """
    common = _rng(params, _S_ARTEFACT, kind).standard_normal(n_loci)
    names = list(MARK_EFFECTS)
    own = np.stack(
        [
            _rng(params, _S_ARTEFACT, kind, 1 + names.index(m)).standard_normal(n_loci)
            for m in params.marks
        ],
        axis=1,
    )
    log_f = params.artefact_strength * (
        np.sqrt(_ARTEFACT_SHARED) * common[:, None] + np.sqrt(1.0 - _ARTEFACT_SHARED) * own
    )
    return np.exp(log_f)  # exactly 1 at strength 0


def _simulate(params: SynthParams, groups: list[str], n_bins: int) -> dict[str, np.ndarray]:
    rng = _rng(params, _S_MODEL)
    _, lineage = np.unique(np.array(groups), return_inverse=True)
    n_c, n_g, n_m = len(groups), params.n_genes, len(params.marks)
    mu = rng.normal(params.propensity_mean, params.propensity_scale, n_g)
    z = _latent(rng, mu, lineage, params)
    beta = rng.normal(params.boundary_mean, params.boundary_scale, n_bins)
    y = _latent(rng, beta, lineage, params)
    # Sequencing depth differs per experiment: a per (cell type, mark) scale factor.
    depth = np.exp(rng.normal(0.0, 0.2, (n_c, n_m)))
    sign = np.array([MARK_EFFECTS[m][0] for m in params.marks])
    s_gene = np.array([MARK_EFFECTS[m][1] for m in params.marks])
    s_bin = np.array([MARK_EFFECTS[m][2] for m in params.marks])

    def levels(
        lat: np.ndarray,
        strength: np.ndarray,
        bg: float,
        top: float,
        discord: float,
        artefact: np.ndarray,
    ) -> np.ndarray:
        chromatin = lat + rng.normal(0.0, discord, lat.shape)
        act = expit(_SHARPNESS * chromatin)[:, :, None]
        x = np.where(sign > 0, act, 1.0 - act)
        log_level = np.log(bg) + strength * np.log(top / bg) * x
        log_level = log_level + rng.normal(0.0, params.mark_noise, log_level.shape)
        return (np.exp(log_level) * depth[:, None, :] * artefact[None, :, :]).astype(np.float32)

    gene_artefact = _artefacts(params, n_g, 0)
    bin_artefact = _artefacts(params, n_bins, 1)
    gene_level = levels(z, s_gene, 0.3, 30.0, params.chromatin_noise, gene_artefact)
    # Discordance between chromatin and activity is a promoter notion (poised genes, RNA
    # turnover); a boundary's marks follow its state up to mark noise only.
    bin_level = levels(y, s_bin, 0.2, 20.0, 0.0, bin_artefact)
    # RPKM > 0.5 exactly when z > 0; Roadmap writes three decimals, so a barely active gene
    # that would print as 0.500 is printed as 0.501 to keep the label rule exact.
    rpkm = np.round(0.5 * np.exp(1.3 * z), 3)
    rpkm = np.where(z > 0, np.maximum(rpkm, 0.501), np.minimum(rpkm, 0.5))
    return {
        "lineage_index": lineage,
        "propensity": mu.astype(np.float32),
        "activity_level": z.astype(np.float32),
        "activity": (z > 0).astype(np.uint8),
        "rpkm": rpkm,
        "signal_level": gene_level,
        "boundary_propensity": beta.astype(np.float32),
        "boundary_level": y.astype(np.float32),
        "bin_signal_level": bin_level,
        "signal_artefact": gene_artefact.astype(np.float32),
        "bin_signal_artefact": bin_artefact.astype(np.float32),
    }


# --------------------------------------------------------------------------- sequence


def _plant(seq: np.ndarray, pos: np.ndarray, motif: bytes) -> None:
    m = np.frombuffer(motif, dtype=np.uint8)
    seq[pos[:, None] + np.arange(m.size)] = m


def _revcomp(s: str) -> str:
    return s[::-1].translate(str.maketrans("ACGT", "TGCA"))


def _count_starts(upper: bytes, motif: bytes) -> np.ndarray:
    """Start positions of ``motif`` in ``upper`` (occurrences cannot overlap, see BIN_MOTIF)."""
    out, i = [], upper.find(motif)
    while i >= 0:
        out.append(i)
        i = upper.find(motif, i + 1)
    return np.array(out, dtype=np.int64)


class _GenomeInfo(TypedDict):
    motif_count: np.ndarray
    bin_motif_count: np.ndarray
    n_runs: list[np.ndarray]


def _spread(
    rng: np.random.Generator, room: np.ndarray, k: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """``k[i]`` non-overlapping copies of ``size`` bases at free offsets in ``[0, room[i])``.

    Every placement of the copies is equally likely: with ``q_j = p_j - j * (size - 1)``,
    sorted starts ``p_j`` that fit and do not overlap are exactly ``k`` distinct ``q_j`` in
    ``0 .. room - k * (size - 1) - 1``, drawn by Floyd's algorithm, vectorised over
    rows (one step per copy, not per row).

    Parameters
    ----------
    rng : numpy.random.Generator
        The stream to draw from.
    room : numpy.ndarray
        Bases available to each row (e.g. a gene's clipped window).
    k : numpy.ndarray
        Copies per row; ``k * size <= room``.
    size : int
        Length of a copy (the motif).

    Returns
    -------
    row, offset : numpy.ndarray
        The row of each copy and its start from the row's first base; rows in order,
        offsets sorted within a row.
    """
    k = np.asarray(k, dtype=np.int64)
    n_pos = room - k * (size - 1)
    k_max = int(k.max(initial=0))
    chosen = np.full((k.size, k_max), np.iinfo(np.int64).max, dtype=np.int64)
    for j in range(k_max):
        act = np.flatnonzero(k > j)
        top = n_pos[act] - k[act] + j  # Floyd: draw from 0..top; on a repeat take top
        t = rng.integers(0, top + 1)
        seen = (chosen[act, :j] == t[:, None]).any(axis=1)
        chosen[act, j] = np.where(seen, top, t)
    chosen.sort(axis=1)
    keep = np.arange(k_max)[None, :] < k[:, None]
    offset = (chosen + np.arange(k_max)[None, :] * (size - 1))[keep]
    row = np.broadcast_to(np.arange(k.size)[:, None], keep.shape)[keep]
    return row, offset


def _write_genome(
    params: SynthParams,
    genes: dict[str, np.ndarray],
    bins: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    path: Path,
) -> _GenomeInfo:
    """Write the FASTA; return motif counts per gene and bin and the N runs per chromosome."""
    gmotif, bmotif = GENE_MOTIF.encode(), BIN_MOTIF.encode()
    bmotif_rc = _revcomp(BIN_MOTIF).encode()
    gene_counts = np.zeros(params.n_genes, dtype=np.int32)
    bin_counts = np.zeros(len(bins["start"]), dtype=np.int32)
    n_runs: list[np.ndarray] = []
    with open(path, "wb") as fh:
        for ci, (chrom, length) in enumerate(zip(params.chroms, params.chrom_lengths, strict=True)):
            rng = _rng(params, _S_SEQ, ci)
            seq = _BASE_LUT[rng.integers(0, _BASE_LUT.size, size=length, dtype=np.uint8)]
            # Bin motifs first, gene motifs after, so that no gene copy is overwritten; a bin
            # copy landing in a window adds to its count, which is taken from the final
            # sequence below.
            bsel = np.flatnonzero(bins["chrom_index"] == ci)
            lam = params.bin_motif_rate * expit(truth["boundary_propensity"][bsel] + 1.0)
            # A chromosome's last bin can be a few bases long: plant nothing there.
            k = np.where(bins["end"][bsel] - bins["start"][bsel] >= 100, rng.poisson(lam), 0)
            # Copies go in the centre of the bin, the part the TAD task's sequence input reads
            # (``bin_sequence`` bp, manifest_tad.toml's [sequence] length).
            lo, hi = bins["start"][bsel], bins["end"][bsel]
            width = np.minimum(hi - lo, params.bin_sequence)
            centre_lo = (lo + hi) // 2 - width // 2
            b_start = np.repeat(centre_lo, k)
            b_len = np.repeat(width, k)
            pos = b_start + (rng.random(b_start.size) * (b_len - len(bmotif))).astype(np.int64)
            fwd = rng.random(pos.size) < 0.5
            _plant(seq, pos[fwd], bmotif)
            _plant(seq, pos[~fwd], bmotif_rc)
            gsel = np.flatnonzero(genes["chrom_index"] == ci)
            lo = genes["window_start"][gsel]
            room = genes["window_end"][gsel] - lo
            lam = params.motif_rate * expit(truth["propensity"][gsel])
            k = np.minimum(rng.poisson(lam), room // len(gmotif))
            row, offset = _spread(rng, room, k, len(gmotif))
            _plant(seq, lo[row] + offset, gmotif)
            # Soft-masking: lowercase stretches of 50-3000 bp over about a fifth of the genome.
            n_mask = max(1, int(0.2 * length / 1525))
            m_start = rng.integers(0, length, n_mask)
            m_end = np.minimum(m_start + rng.integers(50, 3001, n_mask), length)
            # Setting bit 0x20 lowercases an ASCII letter and is idempotent where stretches
            # overlap; a slice loop beats a genome-long mask by far.
            for s0, e0 in zip(m_start.tolist(), m_end.tolist(), strict=True):
                seq[s0:e0] |= 0x20
            # Runs of N in intergenic gaps (between gene footprints) only.
            foot_lo = np.minimum(genes["window_start"][gsel], genes["start"][gsel])
            foot_hi = np.maximum(genes["window_end"][gsel], genes["end"][gsel])
            gap_lo = np.concatenate([[0], foot_hi])
            gap_hi = np.concatenate([foot_lo, [length]])
            big = np.flatnonzero(gap_hi - gap_lo >= 2000)
            n_n = min(big.size, max(1, length // 5_000_000))
            pick = np.sort(rng.choice(big, size=n_n, replace=False))
            glen = gap_hi[pick] - gap_lo[pick]
            nlen = np.minimum(rng.integers(100, 5001, n_n), glen // 2)
            nst = gap_lo[pick] + rng.integers(0, glen - nlen + 1)
            for s, e in zip(nst, nst + nlen, strict=True):
                seq[s:e] = ord("N")
            n_runs.append(np.stack([nst, nst + nlen], axis=1))
            # Truth counts from the final sequence, case-insensitively.
            upper = seq.tobytes().upper()
            for g, s, e in zip(
                gsel, genes["window_start"][gsel], genes["window_end"][gsel], strict=True
            ):
                gene_counts[g] = upper.count(gmotif, int(s), int(e))
            starts = np.concatenate([_count_starts(upper, bmotif), _count_starts(upper, bmotif_rc)])
            np.add.at(bin_counts, bsel[0] + starts // params.bin_size, 1)
            # FASTA: 60 letters a line.
            fh.write(f">{chrom}\n".encode())
            n_full = length // 60
            lines = np.empty((n_full, 61), dtype=np.uint8)
            lines[:, :60] = seq[: n_full * 60].reshape(n_full, 60)
            lines[:, 60] = ord("\n")
            fh.write(lines.tobytes())
            if length % 60:
                fh.write(seq[n_full * 60 :].tobytes() + b"\n")
    return {"motif_count": gene_counts, "bin_motif_count": bin_counts, "n_runs": n_runs}


# --------------------------------------------------------------------------- signal


def _write_bigwig(
    path: Path,
    params: SynthParams,
    genes: dict[str, np.ndarray],
    bins: dict[str, np.ndarray],
    gene_level: np.ndarray,
    bin_level: np.ndarray,
    forbidden: list[np.ndarray],
    stream: tuple[int, ...],
) -> None:
    """One bigWig: runs tiling gene windows plus broad background runs in every bin."""
    rng = _rng(params, *stream)
    n_col = -(-params.window // _RUN_MIN) + 1
    k = params.bin_runs
    slot = params.bin_size // k
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(zip(params.chroms, params.chrom_lengths, strict=True)))
    for ci, (chrom, length) in enumerate(zip(params.chroms, params.chrom_lengths, strict=True)):
        gsel = genes["chrom_index"] == ci
        ws, we = genes["window_start"][gsel], genes["window_end"][gsel]
        lens = rng.integers(_RUN_MIN, _RUN_MAX + 1, size=(ws.size, n_col))
        cum = np.cumsum(lens, axis=1)
        wl = (we - ws)[:, None]
        keep = (cum - lens < wl) & (rng.random(lens.shape) >= _GAP_FRACTION)
        g_st = (ws[:, None] + cum - lens)[keep]
        g_en = (ws[:, None] + np.minimum(cum, wl))[keep]
        g_val = np.broadcast_to(gene_level[gsel][:, None], lens.shape)[keep]
        # Background: one broad run per slot of each bin, dropped where it would touch a
        # gene window or a run of N (no reads map there).
        bsel = bins["chrom_index"] == ci
        slot_start = (bins["start"][bsel][:, None] + np.arange(k) * slot).ravel()
        run_len = rng.integers(200, 2001, slot_start.size)
        b_st = slot_start + rng.integers(0, slot - run_len + 1)
        b_en = np.minimum(b_st + run_len, length)
        b_val = np.repeat(bin_level[bsel], k)
        lo = np.concatenate([ws, forbidden[ci][:, 0]])
        hi = np.concatenate([we, forbidden[ci][:, 1]])
        order = np.argsort(lo, kind="stable")
        lo, hi = lo[order], hi[order]
        j = np.searchsorted(lo, b_en, side="left") - 1
        clash = (j >= 0) & (hi[np.maximum(j, 0)] > b_st)
        ok = (b_st < length) & ~clash
        st = np.concatenate([g_st, b_st[ok]])
        en = np.concatenate([g_en, b_en[ok]])
        val = np.concatenate([g_val, b_val[ok]])
        order = np.argsort(st, kind="stable")
        st, en = st[order], en[order]
        # Skewed, non-negative values around the level, like -log10 p-values of a peak caller.
        val = val[order] * rng.gamma(2.0, 0.5, st.size)
        if st.size:
            bw.addEntries(
                [chrom] * st.size,
                st.astype(np.int64),
                ends=en.astype(np.int64),
                values=val.astype(np.float64),
            )
    bw.close()


def _bigwig_task(args: tuple) -> None:
    _write_bigwig(*args)


# --------------------------------------------------------------------------- text files


def _gzip_write(path: Path, text: str) -> None:
    # mtime=0 and no file name in the header: identical bytes on every run.
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(text.encode())


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # np.savez stamps the current time into the zip; a fixed stamp keeps the bytes stable.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _manifest(
    params: SynthParams,
    ids: list[str],
    names: list[str],
    groups: list[str],
    tad: bool,
) -> str:
    marks = ", ".join(_toml_str(m) for m in params.marks)
    head = [f"assembly = {_toml_str(ASSEMBLY)}", "", "[loci]"]
    if tad:
        head += ['bins = "chrom.sizes"', f"bin_size = {params.bin_size}"]
    else:
        head += ['tss = "genes.gtf.gz"', f"upstream = {params.window}", "downstream = 0"]
    head += ["", "[sequence]", 'fasta = "genome.fa"']
    if tad:
        head += [f"length = {params.bin_sequence}"]
    head += ["", "[signal]", f"marks = [{marks}]"]
    head += ["", "[target]"]
    if tad:
        head += ['kind = "domains"']
    else:
        head += ['kind = "expression"', 'table = "rpkm.tsv.gz"', "threshold = 0.5"]
    for cid, name, group in zip(ids, names, groups, strict=True):
        signal = ", ".join(f"{m} = {_toml_str(f'bigwig/{cid}-{m}.bw')}" for m in params.marks)
        head += ["", f"[cell_types.{cid}]", f"name = {_toml_str(name)}"]
        head += [f"group = {_toml_str(group)}", f"signal = {{ {signal} }}"]
        if tad:
            head += [f"target = {_toml_str(f'domains/{cid}.bed')}"]
    return "\n".join(head) + "\n"


def _domains(
    boundary: np.ndarray, bins: dict[str, np.ndarray], params: SynthParams
) -> tuple[str, np.ndarray]:
    """BED text of one cell type's domains and the boundary bins they define."""
    lines, derivable = [], np.zeros_like(boundary)
    for ci, chrom in enumerate(params.chroms):
        sel = np.flatnonzero(bins["chrom_index"] == ci)
        b = sel[boundary[sel] > 0]
        # A lone boundary bounds no domain and could not be read back, so it is not truth.
        if b.size < 2:
            continue
        derivable[b] = 1
        # Edges sit mid-bin, as real calls rarely fall on bin edges; then a domain starts in
        # its first boundary bin and its last base lies in the next one, whichever rule a
        # reader takes for ends (end // bin_size or (end - 1) // bin_size).
        edges = (b - sel[0]) * params.bin_size + params.bin_size // 2
        lines += [f"{chrom}\t{s}\t{e}\n" for s, e in zip(edges[:-1], edges[1:], strict=True)]
    return "".join(lines), derivable


# --------------------------------------------------------------------------- entry point


#: Marks a folder as a synthetic compendium's, so a later run may write over it.
MARKER = ".pitfall-synth"


def _claim(root: Path) -> None:
    """Refuse to write into a folder holding files an earlier synthesis did not write."""
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root} is a file; give a folder for the compendium")
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).exists():
        raise FileExistsError(
            f"{root} holds files that no earlier `pitfall synth` wrote; choose a new or empty "
            "folder (pitfall never writes over files it did not make)"
        )
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("written by pitfall.synth.synthesize; safe to overwrite\n")


def synthesize(
    out_dir: str | Path,
    params: SynthParams | str = "demo",
    *,
    workers: int = 1,
    **overrides: Any,
) -> SynthCompendium:
    """Write a synthetic compendium into ``out_dir`` (created if needed).

    Parameters
    ----------
    out_dir : str or Path
        A new or empty folder, or one an earlier run wrote (its files are overwritten); a
        folder holding anything else is refused (:class:`FileExistsError`).
    params : SynthParams or str
        The parameters, or the name of a preset of ``PRESETS`` ("tiny", "demo", "paper").
    workers : int
        Processes writing the bigWigs (the slowest part at paper scale); the output does not
        depend on it.
    **overrides
        Fields of :class:`SynthParams` to replace, e.g. ``seed=1`` or ``n_cell_types=8``.

    Returns
    -------
    SynthCompendium
        The paths written. ``truth()`` loads ``truth.npz``, whose arrays are: per cell type
        ``cell_types``, ``names``, ``lineage`` (``groups``); ``marks``; per gene (genomic
        order, as in the GTF) ``gene_id`` (with version), ``chrom``, ``start``, ``end``
        (0-based half-open), ``strand``, ``tss``, ``window_start``, ``window_end`` (clipped),
        ``propensity``, ``motif_count`` (copies of ``GENE_MOTIF`` in the window); per cell
        type x gene ``activity`` (0/1), ``activity_level`` (latent, active when > 0),
        ``rpkm`` (as written); per gene x mark ``signal_artefact`` (the factor that scales
        the window's signal in every cell type; all 1 when ``artefact_strength`` is 0); per
        cell type x gene x mark ``signal_level`` (the level the window's runs scatter around,
        artefact included); per bin ``bin_chrom``, ``bin_start``, ``bin_end``,
        ``boundary_propensity``, ``bin_motif_count`` (copies of ``BIN_MOTIF`` either way
        round starting in the bin); per bin x mark ``bin_signal_artefact``; per cell type x
        bin ``boundary`` (0/1), ``boundary_level`` (latent); per cell type x bin x mark
        ``bin_signal_level``.
    """
    if isinstance(params, str):
        params = SynthParams.preset(params, **overrides)
    elif overrides:
        params = dataclasses.replace(params, **overrides)
    root = Path(out_dir)
    _claim(root)
    (root / "bigwig").mkdir(parents=True, exist_ok=True)
    (root / "domains").mkdir(parents=True, exist_ok=True)
    ids, names, groups = _cell_table(params)
    chroms = np.array(params.chroms)

    genes = _layout_genes(params)
    bins = _bins(params)
    truth = _simulate(params, groups, len(bins["start"]))

    seqinfo = _write_genome(params, genes, bins, truth, root / "genome.fa")
    (root / "chrom.sizes").write_text(
        "".join(f"{c}\t{n}\n" for c, n in zip(params.chroms, params.chrom_lengths, strict=True))
    )

    # Gene ids are not in genomic order (as in GENCODE), so the RPKM table, sorted by id,
    # lists genes in a different order from the GTF.
    rng = _rng(params, _S_LAYOUT, 1)
    number = rng.permutation(params.n_genes) + 1
    version = rng.integers(1, 13, params.n_genes)
    base_id = np.array([f"SYNG{n:08d}" for n in number])
    gene_id = np.array([f"{b}.{v}" for b, v in zip(base_id, version, strict=True)])
    strand = np.where(genes["plus"], "+", "-")
    gtf = [
        "##description: pitfall.synth synthetic annotation, GENCODE-like gene records\n",
        f"##provider: pitfall.synth seed={params.seed}\n",
    ]
    gtf += [
        f"{chroms[c]}\tSYNTH\tgene\t{s + 1}\t{e}\t.\t{st}\t.\t"
        f'gene_id "{gid}"; gene_type "protein_coding"; gene_name "SG{n}"; level 2;\n'
        for c, s, e, st, gid, n in zip(
            genes["chrom_index"],
            genes["start"],
            genes["end"],
            strand,
            gene_id,
            number,
            strict=True,
        )
    ]
    _gzip_write(root / "genes.gtf.gz", "".join(gtf))

    col = np.argsort(ids, kind="stable")
    row = np.argsort(base_id, kind="stable")
    table = truth["rpkm"][col][:, row].T
    text = ["gene_id\t" + "\t".join(ids[i] for i in col) + "\n"]
    # Roadmap's quirk: a stray tab ends every data row (not the header).
    text += [
        f"{gid}\t" + "\t".join(f"{v:.3f}" for v in vals) + "\t\n"
        for gid, vals in zip(base_id[row], table.tolist(), strict=True)
    ]
    _gzip_write(root / "rpkm.tsv.gz", "".join(text))

    bigwigs = {cid: {m: root / "bigwig" / f"{cid}-{m}.bw" for m in params.marks} for cid in ids}
    # Each file draws from its own (cell type, mark) stream, so the bytes do not depend on
    # how many workers write them or in which order.
    tasks = [
        (
            bigwigs[cid][mark],
            params,
            genes,
            bins,
            truth["signal_level"][c, :, m],
            truth["bin_signal_level"][c, :, m],
            seqinfo["n_runs"],
            (_S_SIGNAL, c, m),
        )
        for c, cid in enumerate(ids)
        for m, mark in enumerate(params.marks)
    ]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_bigwig_task, tasks, chunksize=4))
    else:
        for task in tasks:
            _bigwig_task(task)

    boundary = np.zeros((len(ids), len(bins["start"])), dtype=np.uint8)
    domains: dict[str, Path] = {}
    for c, cid in enumerate(ids):
        text_c, boundary[c] = _domains(truth["boundary_level"][c] > 0, bins, params)
        domains[cid] = root / "domains" / f"{cid}.bed"
        domains[cid].write_text(text_c)

    (root / "manifest.toml").write_text(_manifest(params, ids, names, groups, tad=False))
    (root / "manifest_tad.toml").write_text(_manifest(params, ids, names, groups, tad=True))

    arrays = {
        "cell_types": np.array(ids),
        "names": np.array(names),
        "lineage": np.array(groups),
        "marks": np.array(params.marks),
        "gene_id": gene_id,
        "chrom": chroms[genes["chrom_index"]],
        "start": genes["start"],
        "end": genes["end"],
        "strand": strand,
        "tss": genes["tss"],
        "window_start": genes["window_start"],
        "window_end": genes["window_end"],
        "propensity": truth["propensity"],
        "motif_count": seqinfo["motif_count"],
        "activity": truth["activity"],
        "activity_level": truth["activity_level"],
        "rpkm": truth["rpkm"],
        "signal_level": truth["signal_level"],
        "bin_chrom": chroms[bins["chrom_index"]],
        "bin_start": bins["start"],
        "bin_end": bins["end"],
        "boundary_propensity": truth["boundary_propensity"],
        "bin_motif_count": seqinfo["bin_motif_count"],
        "boundary": boundary,
        "boundary_level": truth["boundary_level"],
        "bin_signal_level": truth["bin_signal_level"],
        "signal_artefact": truth["signal_artefact"],
        "bin_signal_artefact": truth["bin_signal_artefact"],
    }
    _write_npz(root / "truth.npz", arrays)

    return SynthCompendium(
        root=root,
        params=params,
        cell_types=tuple(ids),
        names=tuple(names),
        groups=tuple(groups),
        marks=params.marks,
        fasta=root / "genome.fa",
        chrom_sizes=root / "chrom.sizes",
        gtf=root / "genes.gtf.gz",
        rpkm=root / "rpkm.tsv.gz",
        truth_path=root / "truth.npz",
        manifest=root / "manifest.toml",
        manifest_tad=root / "manifest_tad.toml",
        bigwigs=bigwigs,
        domains=domains,
    )
