"""Writing a synthetic compendium: :func:`synthesize` and what it returns.

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
``bigwig_imputation/{CELL}-{MARK}.bw``
    The imputation signal, one bigWig per cell type and mark, missing experiments included
    (the imputation manifest leaves those out; they are the held-back truth): laid out as the
    ``bigwig/`` files (runs tiling gene windows, a background in bins that follows the
    boundary state without the artefact factors), but the window levels are the imputation truth's ``signal_level``, whose log adds a
    cell-type-specific component shared by the cell type's marks, a locus-constant one per
    mark and noise (:func:`pitfall.synth.model.simulate_imputation`).
``manifest_imputation.toml``
    The imputation task: gene upstream windows and the expression target as in
    ``manifest.toml``, but each cell type's ``signal`` lists only its observed marks, from
    ``bigwig_imputation/`` (``missing_fraction`` of the experiments are missing; E003 keeps
    every mark, every mark is observed in at least 2 cell types, every cell type keeps at
    least 2 marks).
``truth_imputation.npz``
    The imputation truth: ``cell_types`` (C,), ``marks`` (M,), ``observed`` (C, M) bool,
    ``signal_level`` (C, G, M) of every experiment, missing ones included,
    ``cell_component`` (C, G), ``locus_component`` (G, M), ``loading`` (M,); genes in
    genomic order as in ``truth.npz``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pitfall.synth.model import (
    STREAM_IMPUTATION_SIGNAL,
    cell_table,
    gene_ids,
    layout_bins,
    layout_genes,
    observed_matrix,
    simulate,
    simulate_imputation,
)
from pitfall.synth.params import SynthParams
from pitfall.synth.sequence import write_genome
from pitfall.synth.signal import write_bigwigs
from pitfall.synth.tables import domains_bed, manifest_text, write_gtf, write_npz, write_rpkm

__all__ = ["MARKER", "SynthCompendium", "synthesize"]


@dataclass
class SynthCompendium:
    """Everything :func:`synthesize` wrote, with the parameters that made it.

    ``manifest_imputation`` is the imputation task's manifest, ``bigwigs_imputation``
    ``[cell_type][mark]`` the imputation signal's bigWigs (every experiment; the manifest
    names the observed ones), ``observed`` the (C, M)
    bool matrix of observed experiments (cell types x marks, in the order of
    ``cell_types`` and ``marks``) and ``truth_imputation_path`` its truth.
    """

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
    manifest_imputation: Path
    truth_imputation_path: Path
    observed: np.ndarray
    bigwigs: dict[str, dict[str, Path]] = field(default_factory=dict)
    bigwigs_imputation: dict[str, dict[str, Path]] = field(default_factory=dict)
    domains: dict[str, Path] = field(default_factory=dict)

    def truth(self) -> dict[str, np.ndarray]:
        """Load ``truth.npz`` into a dict of arrays (keys described in :func:`synthesize`)."""
        with np.load(self.truth_path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

    def truth_imputation(self) -> dict[str, np.ndarray]:
        """Load ``truth_imputation.npz`` (keys described in :mod:`pitfall.synth.compendium`)."""
        with np.load(self.truth_imputation_path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}


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
    (root / "bigwig_imputation").mkdir(parents=True, exist_ok=True)
    ids, names, groups = cell_table(params)
    chroms = np.array(params.chroms)

    genes = layout_genes(params)
    bins = layout_bins(params)
    truth = simulate(params, groups, len(bins["start"]))

    seqinfo = write_genome(params, genes, bins, truth, root / "genome.fa")
    (root / "chrom.sizes").write_text(
        "".join(f"{c}\t{n}\n" for c, n in zip(params.chroms, params.chrom_lengths, strict=True))
    )

    number, base_id, gene_id = gene_ids(params)
    strand = np.where(genes["plus"], "+", "-")
    write_gtf(root / "genes.gtf.gz", params, genes, strand, gene_id, number)
    write_rpkm(root / "rpkm.tsv.gz", ids, base_id, truth["rpkm"])

    bigwigs = {cid: {m: root / "bigwig" / f"{cid}-{m}.bw" for m in params.marks} for cid in ids}
    write_bigwigs(bigwigs, params, genes, bins, truth, seqinfo["n_runs"], workers)

    boundary = np.zeros((len(ids), len(bins["start"])), dtype=np.uint8)
    domains: dict[str, Path] = {}
    for c, cid in enumerate(ids):
        text_c, boundary[c] = domains_bed(truth["boundary_level"][c] > 0, bins, params)
        domains[cid] = root / "domains" / f"{cid}.bed"
        domains[cid].write_text(text_c)

    (root / "manifest.toml").write_text(manifest_text(params, ids, names, groups, tad=False))
    (root / "manifest_tad.toml").write_text(manifest_text(params, ids, names, groups, tad=True))

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
    write_npz(root / "truth.npz", arrays)

    observed = observed_matrix(params, len(ids))
    imputation = simulate_imputation(params, truth)
    bigwigs_imputation = {
        cid: {m: root / "bigwig_imputation" / f"{cid}-{m}.bw" for m in params.marks} for cid in ids
    }
    write_bigwigs(
        bigwigs_imputation,
        params,
        genes,
        bins,
        {"signal_level": imputation["signal_level"], "bin_signal_level": truth["bin_signal_plain"]},
        seqinfo["n_runs"],
        workers,
        key=STREAM_IMPUTATION_SIGNAL,
    )
    (root / "manifest_imputation.toml").write_text(
        manifest_text(
            params,
            ids,
            names,
            groups,
            tad=False,
            observed=observed,
            bigwig_dir="bigwig_imputation",
        )
    )
    write_npz(
        root / "truth_imputation.npz",
        {
            "cell_types": np.array(ids),
            "marks": np.array(params.marks),
            "observed": observed,
            **imputation,
        },
    )

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
        manifest_imputation=root / "manifest_imputation.toml",
        truth_imputation_path=root / "truth_imputation.npz",
        observed=observed,
        bigwigs=bigwigs,
        bigwigs_imputation=bigwigs_imputation,
        domains=domains,
    )
