"""Locus sets from annotation files: TSS windows from GTF/BED6, genome bins, BED regions.

Every reader returns a locus table with the cube's columns ``chrom, start, end, strand,
name`` (0-based half-open), sorted by chromosome (natural order) and start.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pitfall.loci import chrom_order

__all__ = [
    "AnnotationError",
    "GTF_COLUMNS",
    "compression_of",
    "genome_bins",
    "read_bed_regions",
    "read_chrom_sizes",
    "read_genes",
    "strip_version",
    "tss_windows",
]

GTF_COLUMNS = ["chrom", "source", "feature", "start", "end", "score", "strand", "frame", "attrs"]


class AnnotationError(ValueError):
    """An annotation file that cannot be read as described; the message names the file."""


def _check_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (check the path in the manifest)")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{path}: not readable (check its permissions)")
    return path


def compression_of(path: str | os.PathLike) -> str:
    """``"gzip"`` for a gzipped file whatever its name, else ``"infer"`` (from the suffix).

    For ``pandas.read_csv(..., compression=...)``: a gzipped table named ``.tsv`` is read,
    not decoded as text.
    """
    with open(path, "rb") as fh:
        return "gzip" if fh.read(2) == b"\x1f\x8b" else "infer"


def _open_text(path: Path):
    return gzip.open(path, "rt") if compression_of(path) == "gzip" else open(path)


def _sort_loci(loci: pd.DataFrame) -> pd.DataFrame:
    rank = {c: i for i, c in enumerate(chrom_order(loci["chrom"].unique()))}
    order = np.lexsort((loci["start"].to_numpy(), loci["chrom"].map(rank).to_numpy()))
    return loci.iloc[order].reset_index(drop=True)


def read_chrom_sizes(path: str | os.PathLike) -> dict[str, int]:
    """Read a UCSC ``chrom.sizes`` file (two columns: name, length)."""
    path = _check_file(path)
    sizes: dict[str, int] = {}
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) < 2 or not parts[1].isdigit():
                raise AnnotationError(
                    f"{path}, line {lineno}: expected 'chrom<TAB>length', got {line.strip()!r}"
                )
            sizes[parts[0]] = int(parts[1])
    if not sizes:
        raise AnnotationError(f"{path}: no chromosome sizes in the file")
    return sizes


def read_genes(path: str | os.PathLike) -> pd.DataFrame:
    """Read genes from a GTF (``gene`` records) or a BED6 file.

    Returns
    -------
    pandas.DataFrame
        Columns ``chrom, start, end, strand, gene_id, gene_name, gene_type`` with 0-based
        half-open coordinates (GTF's 1-based closed ``start`` is shifted by one).
    """
    path = _check_file(path)
    with _open_text(path) as fh:
        first = next((line for line in fh if line.strip() and not line.startswith("#")), "")
    n_fields = len(first.rstrip("\n").split("\t"))
    try:
        if n_fields >= 9 and first.split("\t")[8].strip().startswith("gene_id"):
            return _read_gtf(path)
        if n_fields >= 6:
            return _read_bed6(path)
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as err:
        raise AnnotationError(f"{path}: cannot be read as GTF or BED6 ({err})") from err
    raise AnnotationError(
        f"{path}: neither a GTF (9 columns, attributes starting with gene_id) nor a BED6 file "
        f"(first data line has {n_fields} tab-separated fields)"
    )


def _read_gtf(path: Path) -> pd.DataFrame:
    gtf = pd.read_csv(
        path,
        sep="\t",
        comment="#",
        header=None,
        names=GTF_COLUMNS,
        dtype={"chrom": str},
        compression=compression_of(path),
    )
    gtf = gtf[gtf["feature"] == "gene"]
    if gtf.empty:
        raise AnnotationError(f"{path}: no 'gene' records (column 3) in this GTF")

    def attr(name: str) -> pd.Series:
        return gtf["attrs"].str.extract(rf'{name} "([^"]*)"', expand=False)

    genes = pd.DataFrame(
        {
            "chrom": gtf["chrom"].to_numpy(),
            "start": gtf["start"].to_numpy(np.int64) - 1,
            "end": gtf["end"].to_numpy(np.int64),
            "strand": gtf["strand"].to_numpy(),
            "gene_id": attr("gene_id").to_numpy(),
            "gene_name": attr("gene_name").fillna("").to_numpy(),
            "gene_type": attr("gene_type").fillna("").to_numpy(),
        }
    )
    if genes["gene_id"].isna().any():
        raise AnnotationError(f"{path}: some gene records have no gene_id attribute")
    return genes


def _read_bed6(path: Path) -> pd.DataFrame:
    bed = pd.read_csv(
        path,
        sep="\t",
        comment="#",
        header=None,
        usecols=range(6),
        dtype={0: str, 3: str},
        compression=compression_of(path),
    )
    bed = bed[~bed[0].str.startswith(("track", "browser"))]
    return pd.DataFrame(
        {
            "chrom": bed[0].to_numpy(),
            "start": bed[1].to_numpy(np.int64),
            "end": bed[2].to_numpy(np.int64),
            "strand": bed[5].to_numpy(),
            "gene_id": bed[3].to_numpy(),
            "gene_name": bed[3].to_numpy(),
            "gene_type": "",
        }
    )


def strip_version(ids: Sequence[str] | pd.Series) -> pd.Series:
    """Drop a GENCODE version suffix: ``ENSG00000000003.10`` -> ``ENSG00000000003``.

    What ``str.replace(r"\\.\\d+$", "")`` does, without a regular expression per id (a
    build strips every gene id several times). Values that are not strings stay as they are.
    """
    series = pd.Series(ids, dtype=object)
    return pd.Series([_unversioned(i) for i in series.to_numpy()], index=series.index, dtype=object)


def _unversioned(gene_id: Any) -> Any:
    if not isinstance(gene_id, str):
        return gene_id
    head, dot, tail = gene_id.rpartition(".")
    # isdecimal is the regular expression's \d on str: Unicode decimal digits
    return head if dot and tail.isdecimal() else gene_id


def tss_windows(
    genes: pd.DataFrame,
    upstream: int = 2000,
    downstream: int = 0,
    chroms: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Windows around each gene's TSS, strand-aware.

    On ``+`` the TSS is the first base (``start``) and the window is
    ``[start - upstream, start + downstream)``; on ``-`` the TSS is the last base
    (``end - 1``) and the window is ``[end - downstream, end + upstream)``, so "upstream"
    always means 5' of the gene. Windows may run past a chromosome's ends; the featurizer
    clips them (signal) or pads them with N (sequence).

    Returns
    -------
    pandas.DataFrame
        Locus table (``chrom, start, end, strand, name``; name = gene id) plus ``gene_id``
        without version, sorted by chromosome and start.
    """
    genes = genes if chroms is None else genes[genes["chrom"].isin(chroms)]
    bad = genes.loc[~genes["strand"].isin(["+", "-"]), "gene_id"]
    if len(bad):
        raise AnnotationError(
            f"{len(bad)} genes have no strand (e.g. {bad.iloc[0]}); TSS windows need + or -"
        )
    plus = genes["strand"].to_numpy() == "+"
    tss_start = np.where(plus, genes["start"], genes["end"])
    lo = np.where(plus, tss_start - upstream, tss_start - downstream)
    hi = np.where(plus, tss_start + downstream, tss_start + upstream)
    loci = pd.DataFrame(
        {
            "chrom": genes["chrom"].to_numpy(),
            "start": lo.astype(np.int64),
            "end": hi.astype(np.int64),
            "strand": genes["strand"].to_numpy(),
            "name": genes["gene_id"].to_numpy(),
            "gene_id": strip_version(genes["gene_id"]).to_numpy(),
        }
    )
    return _sort_loci(loci)


def genome_bins(
    chrom_sizes: dict[str, int], bin_size: int, chroms: Sequence[str] | None = None
) -> pd.DataFrame:
    """Tile chromosomes with bins of ``bin_size``; the last bin of each is clipped at its end.

    Returns
    -------
    pandas.DataFrame
        Locus table with strand ``"."`` and names ``chrom:start-end``.
    """
    if bin_size <= 0:
        raise AnnotationError(f"bin_size must be positive, got {bin_size}")
    chroms = chrom_order(chrom_sizes) if chroms is None else list(chroms)
    missing = [c for c in chroms if c not in chrom_sizes]
    if missing:
        raise AnnotationError(f"chromosomes {missing} are not in the chromosome sizes")
    parts = []
    for chrom in chroms:
        starts = np.arange(0, chrom_sizes[chrom], bin_size, dtype=np.int64)
        ends = np.minimum(starts + bin_size, chrom_sizes[chrom])
        parts.append((chrom, starts, ends))
    chrom_col = np.concatenate([np.full(len(s), c, dtype=object) for c, s, _ in parts])
    start = np.concatenate([s for _, s, _ in parts])
    end = np.concatenate([e for _, _, e in parts])
    name = (
        pd.Series(chrom_col) + ":" + pd.Series(start).astype(str) + "-" + pd.Series(end).astype(str)
    )
    return pd.DataFrame(
        {
            "chrom": chrom_col,
            "start": start,
            "end": end,
            "strand": np.full(len(start), ".", dtype=object),
            "name": name.to_numpy(dtype=object),
        }
    )


def read_bed_regions(path: str | os.PathLike, chroms: Sequence[str] | None = None) -> pd.DataFrame:
    """Read regions from a BED file (3+ columns; name in column 4 and strand in 6 if present)."""
    path = _check_file(path)
    try:
        bed = pd.read_csv(
            path,
            sep="\t",
            comment="#",
            header=None,
            dtype={0: str},
            compression=compression_of(path),
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise AnnotationError(f"{path}: cannot be read as BED ({err})") from err
    if bed.shape[1] < 3:
        raise AnnotationError(f"{path}: a BED file needs at least 3 columns")
    if chroms is not None:
        bed = bed[bed[0].isin(chroms)]
    start = bed[1].to_numpy(np.int64)
    end = bed[2].to_numpy(np.int64)
    chrom = bed[0].to_numpy(dtype=object)
    loci = pd.DataFrame(
        {
            "chrom": chrom,
            "start": start,
            "end": end,
            "strand": bed[5].to_numpy(dtype=object) if bed.shape[1] >= 6 else ".",
            "name": (
                bed[3].astype(str).to_numpy(dtype=object)
                if bed.shape[1] >= 4
                else np.array([f"{c}:{s}-{e}" for c, s, e in zip(chrom, start, end, strict=True)])
            ),
        }
    )
    return _sort_loci(loci)
