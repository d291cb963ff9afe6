"""The small files of a synthetic compendium: GTF, RPKM table, domain BEDs, manifests, truth.

Every writer gives identical bytes for identical input (no timestamps, no file names in
gzip headers), so a compendium is byte-identical for a given seed. File formats are
described in :mod:`pitfall.synth.compendium`.
"""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np

from pitfall.synth.params import ASSEMBLY, SynthParams

__all__ = [
    "domains_bed",
    "gzip_write",
    "manifest_text",
    "write_gtf",
    "write_npz",
    "write_rpkm",
]

_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def gzip_write(path: Path, text: str) -> None:
    """Write ``text`` gzipped, with the same bytes on every run."""
    # mtime=0 and no file name in the header.
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(text.encode())


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an ``.npz`` (deflated), with the same bytes on every run."""
    # np.savez stamps the current time into the zip; a fixed stamp keeps the bytes stable.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def manifest_text(
    params: SynthParams,
    ids: list[str],
    names: list[str],
    groups: list[str],
    tad: bool,
    observed: np.ndarray | None = None,
    bigwig_dir: str = "bigwig",
) -> str:
    """The TOML manifest of the expression task, or of the TAD task when ``tad``.

    Parameters
    ----------
    params : SynthParams
        The compendium's parameters.
    ids, names, groups : list of str
        Cell types' ids, display names and lineages, shape (C,).
    tad : bool
        The TAD task's bins and domains instead of the expression task's gene windows.
    observed : numpy.ndarray or None
        Shape (C, M), bool: each cell type's ``signal`` lists only its observed marks (the
        imputation manifest); None lists every mark.
    bigwig_dir : str
        Folder of the bigWigs, relative to the manifest, holding ``{CELL}-{MARK}.bw``.
    """
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
    for c, (cid, name, group) in enumerate(zip(ids, names, groups, strict=True)):
        signal = ", ".join(
            f"{m} = {_toml_str(f'{bigwig_dir}/{cid}-{m}.bw')}"
            for k, m in enumerate(params.marks)
            if observed is None or observed[c, k]
        )
        head += ["", f"[cell_types.{cid}]", f"name = {_toml_str(name)}"]
        head += [f"group = {_toml_str(group)}", f"signal = {{ {signal} }}"]
        if tad:
            head += [f"target = {_toml_str(f'domains/{cid}.bed')}"]
    return "\n".join(head) + "\n"


def domains_bed(
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


def write_gtf(
    path: Path,
    params: SynthParams,
    genes: dict[str, np.ndarray],
    strand: np.ndarray,
    gene_id: np.ndarray,
    number: np.ndarray,
) -> None:
    """GENCODE-like ``gene`` records, gzipped: two ``##`` header lines, then one per gene.

    Parameters
    ----------
    path : Path
        Where to write (``genes.gtf.gz``).
    params : SynthParams
        The compendium's parameters.
    genes : dict of str to numpy.ndarray
        The gene layout (:func:`pitfall.synth.model.layout_genes`), genomic order.
    strand, gene_id, number : numpy.ndarray
        Shape (G,): ``"+"``/``"-"``, the id with version, and the number of the gene name.
    """
    chroms = np.array(params.chroms)
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
    gzip_write(path, "".join(gtf))


def write_rpkm(path: Path, ids: list[str], base_id: np.ndarray, rpkm: np.ndarray) -> None:
    """The expression table shaped like Roadmap's ``57epigenomes.RPKM.pc.gz``, gzipped.

    Parameters
    ----------
    path : Path
        Where to write (``rpkm.tsv.gz``).
    ids : list of str
        Cell-type ids, shape (C,); columns come sorted by id.
    base_id : numpy.ndarray
        Gene ids without version, shape (G,); rows come sorted by id.
    rpkm : numpy.ndarray
        Shape (C, G), genes in genomic order.
    """
    col = np.argsort(ids, kind="stable")
    row = np.argsort(base_id, kind="stable")
    table = rpkm[col][:, row].T
    text = ["gene_id\t" + "\t".join(ids[i] for i in col) + "\n"]
    # Roadmap's quirk: a stray tab ends every data row (not the header).
    text += [
        f"{gid}\t" + "\t".join(f"{v:.3f}" for v in vals) + "\t\n"
        for gid, vals in zip(base_id[row], table.tolist(), strict=True)
    ]
    gzip_write(path, "".join(text))
