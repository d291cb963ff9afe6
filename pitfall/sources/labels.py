"""Labels from real files: expression tables, domain (TAD) calls and peak calls.

Three label sources, each turned into one float32 value per locus of a locus table
(``chrom, start, end, ...``) from :mod:`pitfall.sources.annotation`:

- expression: Roadmap's RPKM matrix (genes x cell types) -> ``label = RPKM > threshold``
  on TSS windows (:func:`read_expression_table`, :func:`match_genes`,
  :func:`expression_labels`);
- domain boundaries: Dixon / Rao domain lists -> 1 for each bin in which a domain starts or
  ends (:func:`read_domains`, :func:`domain_boundaries`);
- binding: narrowPeak / BED peak calls -> 1 for each bin holding a peak summit, or
  overlapping a peak by at least ``min_overlap`` bp; NaN where only a relaxed (ambiguous)
  peak marks the bin or a blacklisted region overlaps it: the ENCODE-DREAM conventions
  (:func:`read_peaks`, :func:`peak_labels`).

Rules (each tested):

- A domain ``[s, e)`` (0-based half-open) starts in the bin holding base ``s`` and ends in
  the bin holding its last base ``e - 1``. So an end exactly on a bin edge marks the bin
  *before* the edge: with 40 kb bins, ``[0, 80000)`` marks bins 0 and 1, not 2.
- A peak's summit is ``start + offset`` when narrowPeak column 10 (``offset``) is >= 0,
  else the midpoint ``(start + end) // 2`` (also for BED3+ files). ENCODE files hold a few
  peaks whose offset equals the peak width, i.e. one base past the peak; such summits are
  clipped to the peak's last base ``end - 1`` so a summit always lies inside its peak.
- Points and intervals are placed by binary search on each chromosome's sorted bin starts,
  so bins may have any size (the last bin of a chromosome is shorter), may leave gaps and
  may overlap (a stride smaller than their width: a point then marks every bin holding
  it); a point or peak in no bin is dropped and counted in the summary.
- Chromosome names are compared as spelled. Readers take ``chroms=`` (the loci's
  chromosome names) to rename a file's ``'1'`` to ``'chr1'`` (or back) when only that makes
  them match; the label functions call :func:`check_chrom_names` and refuse a file whose
  names would only match after such a renaming, instead of silently labelling all zeros.
- Bins on a chromosome with no domain / peak at all get 0 by default (``missing="zero"``)
  or NaN (``missing="nan"``: unknown, e.g. the ENCODE-DREAM CTCF files, which hold out
  chr1, chr8 and chr21); either way the summary lists those chromosomes and a warning is
  logged.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from pitfall.loci import LocusTable
from pitfall.manifest import Manifest, ManifestError
from pitfall.registry import Registry, RegistryError, closest
from pitfall.sources.annotation import (
    _check_file,
    _open_text,
    chrom_order,
    compression_of,
    strip_version,
)

__all__ = [
    "GENE_COLUMN",
    "LABEL_KINDS",
    "LabelError",
    "LabelKind",
    "check_chrom_names",
    "domain_boundaries",
    "expression_labels",
    "label_kind",
    "locus_gene_ids",
    "match_genes",
    "peak_labels",
    "peak_options",
    "read_domains",
    "read_expression_table",
    "read_peaks",
    "register_label_kind",
]

log = logging.getLogger(__name__)

#: First header field accepted as the gene column of an expression table.
GENE_COLUMN = re.compile(r"gene|^id$|^name$|^ensembl", re.IGNORECASE)


class LabelError(ValueError):
    """A label file that cannot be used as described; the message names the file and the fix."""


def _checked(path: str | os.PathLike) -> Path:
    # annotation's checks raise OSError subclasses; labels promise one error class.
    try:
        return _check_file(path)
    except OSError as err:
        raise LabelError(str(err)) from err


def _abbrev(items: Sequence[Any], n: int = 6) -> str:
    items = list(items)
    shown = ", ".join(repr(str(x)) for x in items[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


# --------------------------------------------------------------------------------------
# Expression


def read_expression_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a genes x cell types expression matrix (Roadmap's RPKM format).

    The first header field names the gene column (``gene_id``), the others the cell types.
    Roadmap's data rows end with a stray tab (one more field than the header); plain
    ``pandas.read_csv(..., index_col=0)`` then shifts every column by one, so the table is
    read with ``index_col=False`` and indexed afterwards. Tables without the stray tab,
    gzipped or not, read the same. Empty cells and ``NA`` become NaN.

    Parameters
    ----------
    path
        Tab-separated text file, optionally gzipped.

    Returns
    -------
    pandas.DataFrame
        Shape (n_genes, n_cell_types), float64; index = gene ids without version (named
        ``gene_id``); ``attrs["path"]`` = the file, for later messages.

    Raises
    ------
    LabelError
        Missing or unreadable file, a header whose first field is not a gene column, rows
        with more fields than the header (beyond one trailing empty field), a row without a
        gene id, duplicate gene ids (after removing versions), or non-numeric values.
    """
    path = _checked(path)
    try:
        with _open_text(path) as fh:
            header = fh.readline().rstrip("\r\n").split("\t")
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise LabelError(f"{path}: cannot be read as text ({err})") from err
    if not header[0].strip() or not GENE_COLUMN.search(header[0]):
        raise LabelError(
            f"{path}, line 1: the header's first field is {header[0]!r}, not a gene column "
            f"(expected e.g. 'gene_id'). If the header lists only the cell types (as R's "
            f"write.table does with row names), add 'gene_id<TAB>' at its start."
        )
    gene_col = header[0]
    try:
        with warnings.catch_warnings():
            # pandas only warns (and drops data) when rows are longer than the header.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            raw = pd.read_csv(
                path,
                sep="\t",
                index_col=False,
                skip_blank_lines=False,  # keeps row i on file line i + 2, for messages
                dtype={gene_col: str},
                compression=compression_of(path),
            )
    except (pd.errors.ParserError, pd.errors.ParserWarning) as err:
        raise LabelError(
            f"{path}: rows have more fields than the header's {len(header)} "
            f"(one trailing empty field is tolerated) ({err}); check the file is a "
            f"tab-separated genes x cell types table"
        ) from err
    except (pd.errors.EmptyDataError, UnicodeDecodeError, EOFError, OSError) as err:
        raise LabelError(f"{path}: cannot be read as a table ({err})") from err
    # A header that itself ends with a tab yields one empty, unnamed column.
    extra = [c for c in raw.columns[1:] if str(c).startswith("Unnamed:") and raw[c].isna().all()]
    raw = raw.drop(columns=extra)

    line = np.arange(len(raw)) + 2
    values = raw.drop(columns=gene_col)
    blank = raw[gene_col].isna().to_numpy() & values.isna().all(axis=1).to_numpy()
    raw, values, line = raw[~blank], values[~blank], line[~blank]
    no_id = raw[gene_col].isna().to_numpy() | (raw[gene_col].str.strip() == "").to_numpy()
    if no_id.any():
        raise LabelError(f"{path}, line {line[no_id][0]}: a data row without a gene id")
    if values.shape[1] == 0:
        raise LabelError(f"{path}: no cell-type columns after {gene_col!r}")

    genes = strip_version(raw[gene_col].str.strip()).to_numpy(dtype=object)
    dup = pd.Series(genes).duplicated(keep=False).to_numpy()
    if dup.any():
        names = pd.unique(genes[dup])
        raise LabelError(
            f"{path}: {len(names)} gene ids occur more than once (after removing version "
            f"suffixes): {_abbrev(names)}; keep one row per gene (e.g. sum or drop duplicates)"
        )

    out = {}
    for col in values.columns:
        column = values[col]
        if not pd.api.types.is_numeric_dtype(column):
            numeric = pd.to_numeric(column, errors="coerce")
            bad = (numeric.isna() & column.notna()).to_numpy()
            i = int(np.flatnonzero(bad)[0])
            raise LabelError(
                f"{path}, line {line[i]}: non-numeric value {column.iloc[i]!r} for gene "
                f"{genes[i]!r} in column {col!r}; expression values must be numbers "
                f"(empty or NA for missing)"
            )
        out[str(col)] = column.to_numpy(dtype=np.float64)
    table = pd.DataFrame(out, index=pd.Index(genes, name="gene_id"))
    table.attrs["path"] = str(path)
    return table


def locus_gene_ids(loci: pd.DataFrame | LocusTable) -> pd.Series:
    """Each locus's gene, as the expression table names it (without version suffix).

    The ``gene_id`` column as it is (:func:`~pitfall.sources.annotation.tss_windows` wrote it
    without version), else the ``name`` with its version removed. Not both: removing a
    version twice would turn ``X.1.2`` into ``X``, which the table (``X.1``) lacks.

    Returns
    -------
    pandas.Series
        Shape (n_loci,), object strings.
    """
    if isinstance(loci, LocusTable):
        ids = (loci.extra or {}).get("gene_id")
        if ids is not None:
            return pd.Series(np.asarray(ids).astype(object))
        return strip_version(pd.Series(loci.names().astype(object)))
    if "gene_id" in loci:
        return loci["gene_id"].astype(str).astype(object)
    if "name" in loci:
        return strip_version(loci["name"].astype(str))
    raise LabelError("the loci have neither a 'gene_id' nor a 'name' column (use tss_windows)")


def match_genes(loci: pd.DataFrame, table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Keep the loci whose gene (version removed) is in the expression table.

    Parameters
    ----------
    loci
        Locus table from :func:`~pitfall.sources.annotation.tss_windows` (n_loci rows,
        already restricted to the wanted chromosomes), with a ``gene_id`` column.
    table
        Expression table from :func:`read_expression_table`.

    Returns
    -------
    loci_kept : pandas.DataFrame
        The matching rows of ``loci`` (order kept, index reset).
    summary : dict
        Gene counts: ``annotation`` (distinct genes of the loci), ``table`` (genes of the
        table), ``kept``, ``dropped_from_annotation`` (loci genes not in the table),
        ``dropped_from_table`` (table genes not among the loci: other chromosomes or not
        annotated).
    """
    ids = locus_gene_ids(loci)
    keep = ids.isin(table.index).to_numpy()
    in_loci = set(ids)
    in_table = set(table.index)
    kept = in_loci & in_table
    summary = {
        "annotation": len(in_loci),
        "table": len(in_table),
        "kept": len(kept),
        "dropped_from_annotation": len(in_loci - in_table),
        "dropped_from_table": len(in_table - in_loci),
    }
    return loci[keep].reset_index(drop=True), summary


def expression_labels(
    table: pd.DataFrame, loci: pd.DataFrame, cell_type: str, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Expression value and binary label of each locus in one cell type.

    Parameters
    ----------
    table
        Expression table from :func:`read_expression_table` (genes x cell types).
    loci
        Locus table with ``gene_id`` (n_loci rows), ideally from :func:`match_genes`; a gene
        missing from the table gets NaN.
    cell_type
        Column of the table (e.g. ``"E003"``).
    threshold
        A locus is active when its value is strictly greater.

    Returns
    -------
    label : numpy.ndarray
        Shape (n_loci,), float32: 1 active, 0 not, NaN where the value is NaN.
    value : numpy.ndarray
        Shape (n_loci,), float32: the table's value (e.g. RPKM).
    """
    if cell_type not in table.columns:
        raise LabelError(
            f"{table.attrs.get('path', 'expression table')}: no column for cell type "
            f"{cell_type!r}; available: {_abbrev(table.columns, 8)}"
        )
    ids = locus_gene_ids(loci)
    value = table[cell_type].reindex(ids.to_numpy()).to_numpy(dtype=np.float32)
    label = np.where(np.isnan(value), np.float32(np.nan), value > threshold).astype(np.float32)
    return label, value


# --------------------------------------------------------------------------------------
# Chromosome names


def _toggle_chr(name: str) -> str:
    return name[3:] if name.startswith("chr") else "chr" + name


def check_chrom_names(
    file_chroms: Iterable[str], expected_chroms: Iterable[str], path: str | os.PathLike | None
) -> None:
    """Refuse a file whose chromosome names match the loci only after a 'chr' change.

    Raises when more of the file's chromosomes would match ``expected_chroms`` after adding
    or removing a ``chr`` prefix than match as spelled (e.g. the file says ``'1'`` and the
    loci ``'chr1'``): every label would otherwise silently be 0.

    Parameters
    ----------
    file_chroms
        Chromosome names found in the file.
    expected_chroms
        Chromosome names of the loci (bins).
    path
        The file, for the message.
    """
    file_set = {str(c) for c in file_chroms}
    expected = {str(c) for c in expected_chroms}
    direct = file_set & expected
    toggled = {c for c in file_set if _toggle_chr(c) in expected}
    if len(toggled) > len(direct):
        shown_file = _abbrev(chrom_order(toggled), 3)
        shown_loci = _abbrev([_toggle_chr(c) for c in chrom_order(toggled)], 3)
        raise LabelError(
            f"{path}: the file uses {shown_file} but the loci use {shown_loci} "
            f"({len(direct)} of the file's {len(file_set)} chromosome names match as "
            f"spelled); read it with chroms=<the loci's chromosomes> to rename, or fix "
            f"the file's names"
        )


def _rename_chroms(chrom: pd.Series, chroms: Sequence[str] | None) -> pd.Series:
    # Rename only names that do not match as spelled but do after toggling 'chr'.
    if chroms is None:
        return chrom
    expected = set(chroms)
    mapping = {
        c: _toggle_chr(c)
        for c in chrom.unique()
        if c not in expected and _toggle_chr(c) in expected
    }
    return chrom.replace(mapping) if mapping else chrom


# --------------------------------------------------------------------------------------
# Placing points in bins


class _Block(NamedTuple):
    """One chromosome's bins: row positions, sorted starts, matching ends, and the running
    maximum of those ends (what a binary search for "ends at or after" needs)."""

    rows: np.ndarray | slice
    starts: np.ndarray
    ends: np.ndarray
    reach: np.ndarray


def _block(rows: np.ndarray | slice, starts: np.ndarray, ends: np.ndarray) -> _Block:
    return _Block(rows, starts, ends, np.maximum.accumulate(ends) if len(ends) else ends)


def _bin_blocks(
    bins: pd.DataFrame | LocusTable,
) -> dict[str, _Block]:
    """Per chromosome: bin row positions, their sorted starts and matching ends."""
    if isinstance(bins, LocusTable):
        runs = bins.chrom_runs()
        if len({c for c, _, _ in runs}) == len(runs):
            # One sorted run per chromosome (bins, sorted tables): no per-locus strings needed.
            out: dict[str, _Block] = {}
            for name, lo, hi in runs:
                s = bins.start[lo:hi]
                if np.all(s[1:] >= s[:-1]):
                    out[name] = _block(slice(lo, hi), s, bins.end[lo:hi])
                else:
                    order = np.argsort(s, kind="stable")
                    out[name] = _block(lo + order, s[order], bins.end[lo:hi][order])
            return out
        chrom = pd.Series(bins.chrom.astype(object))
        starts, ends = bins.start, bins.end
        edges = np.array([a for _, a, _ in runs], dtype=np.int64)
        names = [c for c, _, _ in runs]
    else:
        chrom = bins["chrom"]
        starts = bins["start"].to_numpy(np.int64)
        ends = bins["end"].to_numpy(np.int64)
        if len(chrom) == 0:
            return {}
        # Bins from genome_bins come in one contiguous, sorted block per chromosome: find the
        # blocks with one vectorised comparison instead of a mask per chromosome (14.4M bins).
        edges = np.flatnonzero((chrom != chrom.shift()).to_numpy())
        names = chrom.iloc[edges].astype(str).tolist()
    if len(chrom) == 0:
        return {}
    blocks: dict[str, _Block] = {}
    if len(set(names)) == len(names):
        bounds = [*edges.tolist(), len(chrom)]
        for name, lo, hi in zip(names, bounds[:-1], bounds[1:], strict=True):
            s = starts[lo:hi]
            if np.all(s[1:] >= s[:-1]):
                blocks[name] = _block(slice(lo, hi), s, ends[lo:hi])
            else:
                order = np.argsort(s, kind="stable")
                blocks[name] = _block(lo + order, s[order], ends[lo:hi][order])
        return blocks
    codes, uniques = pd.factorize(chrom)
    for k, name in enumerate(uniques):
        rows = np.flatnonzero(codes == k)
        order = np.argsort(starts[rows], kind="stable")
        rows = rows[order]
        blocks[str(name)] = _block(rows, starts[rows], ends[rows])
    return blocks


def _place(points: np.ndarray, block: _Block):
    """Row positions of the bins holding ``points`` (several per point where bins overlap);
    also a mask of points in no bin."""
    return _overlapping(block, points, points + 1, 1)


#: id(frame) -> (weak reference, its rows by chromosome, its length): see _rows_by_chrom.
_ROWS_BY_CHROM: dict[int, tuple[weakref.ref[pd.DataFrame], dict[str, np.ndarray], int]] = {}


def _rows_by_chrom(records: pd.DataFrame) -> dict[str, np.ndarray]:
    """Row positions of each chromosome's records, in file order.

    Remembered per frame (held weakly): a build's worker places the same cached file on
    every block of loci, and grouping its chromosome names is most of a small block's cost.
    """
    key, n = id(records), len(records)
    hit = _ROWS_BY_CHROM.get(key)
    if hit is not None and hit[2] == n and hit[0]() is records:
        return hit[1]
    chrom = np.asarray(records["chrom"].astype(str).to_numpy(), dtype=object)
    indices = pd.Series(np.arange(chrom.size)).groupby(chrom).indices
    groups = {str(c): rows for c, rows in indices.items()}
    if len(_ROWS_BY_CHROM) >= 64:
        _ROWS_BY_CHROM.clear()
    _ROWS_BY_CHROM[key] = (weakref.ref(records), groups, n)
    return groups


def _label_by_chrom(
    records: pd.DataFrame,
    blocks: dict[str, _Block],
    n_bins: int,
    place: Callable[[Any, _Block], list[tuple[np.ndarray, np.ndarray]]],
    missing: Literal["zero", "nan"],
    path: Any,
) -> tuple[np.ndarray, list[str], dict[str, int], int]:
    """Label 1 at the bins ``place(rows, block)`` marks, chromosome by chromosome: it
    returns ``(bin positions, records outside every bin)`` pairs for one chromosome's rows.

    Returns
    -------
    label : numpy.ndarray
        float32, shape (n_bins,); a chromosome without records is 0, or NaN with
        ``missing="nan"``.
    without : list of str
        Chromosomes of the bins without records.
    off : dict
        Records per chromosome the bins do not cover.
    outside_bins : int
        Placed records that fell outside every bin.
    """
    by_chrom = _rows_by_chrom(records)
    check_chrom_names(list(by_chrom), blocks, path)
    label = np.zeros(n_bins, dtype=np.float32)
    outside_bins = 0
    without = []
    for name, block in blocks.items():
        rows = by_chrom.get(name)
        if rows is None:
            without.append(name)
            if missing == "nan":
                label[block[0]] = np.nan
            continue
        for pos, out in place(rows, block):
            label[pos] = 1.0
            outside_bins += int(out.sum())
    off = {c: len(r) for c, r in by_chrom.items() if c not in blocks}
    return label, without, off, outside_bins


def _region_labels(
    records: pd.DataFrame,
    points: list[np.ndarray],
    bins: pd.DataFrame | LocusTable,
    what: str,
    missing: Literal["zero", "nan"],
    return_summary: bool,
    blocks: dict[str, _Block] | None = None,
) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
    """Shared core of :func:`domain_boundaries` and :func:`peak_labels`: label 1 for every
    bin holding one of the points of a record (``what``: ``"domains"`` or ``"peaks"``).

    ``points`` holds one array per kind of point (domain start, domain last base; or
    summit), each aligned with the records. Without ``return_summary`` the chromosomes
    without any record are logged; a caller that asks for the summary reports them itself,
    once, rather than once per block of loci.
    """
    path = records.attrs.get("path", what)
    if missing not in ("zero", "nan"):
        raise LabelError(f"missing must be 'zero' or 'nan', got {missing!r}")
    blocks = _bin_blocks(bins) if blocks is None else blocks
    label, without, off, outside_bins = _label_by_chrom(
        records,
        blocks,
        len(bins),
        lambda rows, block: [_place(p[rows], block) for p in points],
        missing,
        path,
    )
    summary: dict[str, Any] = {
        f"n_{what}": len(records),
        "chroms_without": chrom_order(without),
        "off_bins_chroms": {c: off[c] for c in chrom_order(off)},
        f"n_{what}_off_bins_chroms": sum(off.values()),
        "points_outside_bins": outside_bins,
        "n_positive": int(np.nansum(label)),
    }
    if without and not return_summary:
        log.warning(
            "%s: no %s on %s (labelled %s there)",
            path,
            what,
            _abbrev(summary["chroms_without"], 8),
            "NaN" if missing == "nan" else "0",
        )
    return (label, summary) if return_summary else label


# --------------------------------------------------------------------------------------
# Domains


def read_domains(path: str | os.PathLike, chroms: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a domain (TAD) list: Dixon's BED3 or Rao's Arrowhead list.

    Handles what the real files contain: CRLF line ends (Dixon's ``.bed``), gzip and any
    order (Rao's lists), extra columns (only the first three are used; in Rao's original
    ``chr1 x1 x2 chr2 y1 y2 ...`` layout these are the domain's chromosome, start, end),
    one header line (first line whose 2nd and 3rd fields are not integers), ``#``,
    ``track`` and ``browser`` lines.

    Parameters
    ----------
    path
        Domain file, optionally gzipped.
    chroms
        The loci's chromosome names. When given, a file name that is not among them but is
        after adding or removing ``chr`` (Rao/Juicer lists often say ``1``) is renamed to
        the loci's spelling. Without it names are kept as in the file.

    Returns
    -------
    pandas.DataFrame
        Shape (n_domains, 3): ``chrom, start, end`` (0-based half-open, int64), sorted by
        chromosome and start; ``attrs["path"]`` = the file.
    """
    path = _checked(path)
    rows: list[tuple[str, int, int]] = []
    seen_data = False
    try:
        with _open_text(path) as fh:
            for lineno, raw in enumerate(fh, 1):
                line = raw.rstrip("\r\n")
                if not line.strip() or line.startswith(("#", "track", "browser")):
                    continue
                parts = line.split("\t") if "\t" in line else line.split()
                ok = len(parts) >= 3 and parts[1].strip().isdigit() and parts[2].strip().isdigit()
                if not ok:
                    if not seen_data:
                        seen_data = True  # one header line is allowed, before any data
                        continue
                    raise LabelError(
                        f"{path}, line {lineno}: expected 'chrom<TAB>start<TAB>end', got "
                        f"{line[:80]!r}"
                    )
                seen_data = True
                s, e = int(parts[1]), int(parts[2])
                if e <= s:
                    raise LabelError(
                        f"{path}, line {lineno}: domain end {e} is not after its start {s}"
                    )
                rows.append((parts[0].strip(), s, e))
    except (UnicodeDecodeError, EOFError, OSError) as err:
        raise LabelError(f"{path}: cannot be read as a text domain list ({err})") from err
    if not rows:
        raise LabelError(f"{path}: no domains (an empty file usually means a failed download)")
    domains = pd.DataFrame(rows, columns=["chrom", "start", "end"])
    domains["chrom"] = _rename_chroms(domains["chrom"], chroms)
    domains = _sort_regions(domains)
    domains.attrs["path"] = str(path)
    return domains


def _sort_regions(regions: pd.DataFrame) -> pd.DataFrame:
    rank = {c: i for i, c in enumerate(chrom_order(regions["chrom"].unique()))}
    order = np.lexsort((regions["start"].to_numpy(), regions["chrom"].map(rank).to_numpy()))
    return regions.iloc[order].reset_index(drop=True)


def domain_boundaries(
    domains: pd.DataFrame,
    bins: pd.DataFrame | LocusTable,
    *,
    missing: Literal["zero", "nan"] = "zero",
    return_summary: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
    """Label each bin 1 when a domain starts or ends in it, else 0.

    A domain ``[s, e)`` starts in the bin holding base ``s`` and ends in the bin holding
    its last base ``e - 1``: an end exactly on a bin edge marks the bin before the edge.

    Parameters
    ----------
    domains
        From :func:`read_domains` (n_domains rows).
    bins
        Locus table, e.g. from :func:`~pitfall.sources.annotation.genome_bins` (n_bins
        rows); bins may differ in size.
    missing
        Label of the bins of a chromosome with no domain at all: ``"zero"`` or ``"nan"``.
    return_summary
        Also return the summary.

    Returns
    -------
    label : numpy.ndarray
        Shape (n_bins,), float32.
    summary : dict, only when ``return_summary``
        ``n_domains``; ``chroms_without`` (bin chromosomes with no domain, e.g. K562
        chr9: the featurizer should warn); ``off_bins_chroms`` (domains per chromosome
        absent from the bins, ignored) and their total ``n_domains_off_bins_chroms``;
        ``points_outside_bins`` (starts / last bases in no bin); ``n_positive``.
    """
    points = [domains["start"].to_numpy(np.int64), domains["end"].to_numpy(np.int64) - 1]
    return _region_labels(domains, points, bins, "domains", missing, return_summary)


# --------------------------------------------------------------------------------------
# Peaks


def read_peaks(path: str | os.PathLike, chroms: Sequence[str] | None = None) -> pd.DataFrame:
    """Read peak calls: narrowPeak (summit from column 10) or BED3+ (midpoint).

    Parameters
    ----------
    path
        Peak file, optionally gzipped; ``#``, ``track`` and ``browser`` lines are skipped.
    chroms
        The loci's chromosome names, to rename ``1`` <-> ``chr1`` as in :func:`read_domains`.

    Returns
    -------
    pandas.DataFrame
        Shape (n_peaks, 4): ``chrom, start, end, summit_pos`` (int64; summit = absolute
        0-based position of the summit base), in file order; ``attrs["path"]`` = the file.
    """
    path = _checked(path)
    try:
        # track / browser lines have fewer fields than the data and upset the C parser.
        n_head = 0
        with _open_text(path) as fh:
            for line in fh:
                if line.strip() and not line.startswith(("#", "track", "browser")):
                    break
                n_head += 1
        table = pd.read_csv(
            path,
            sep="\t",
            header=None,
            skiprows=n_head,
            comment="#",
            dtype={0: str},
            skip_blank_lines=True,
            compression=compression_of(path),
        )
    except pd.errors.EmptyDataError:
        table = pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as err:
        raise LabelError(f"{path}: cannot be read as narrowPeak or BED ({err})") from err
    if len(table):
        table = table[~table[0].str.startswith(("track", "browser"))]
    if len(table) == 0:
        raise LabelError(
            f"{path}: no peaks; an empty peak file usually means a failed download or an "
            f"empty call set"
        )
    if table.shape[1] < 3:
        raise LabelError(f"{path}: a peak file needs at least 3 columns (chrom, start, end)")
    coords = table[[1, 2]].apply(pd.to_numeric, errors="coerce")
    bad = coords.isna().any(axis=1).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise LabelError(
            f"{path}: data row {i + 1}: start/end are not integers "
            f"({table.iloc[i, 1]!r}, {table.iloc[i, 2]!r})"
        )
    start = coords[1].to_numpy(np.int64)
    end = coords[2].to_numpy(np.int64)
    mid = (start + end) // 2
    if table.shape[1] >= 10 and pd.api.types.is_numeric_dtype(table[9]):
        offset = table[9].fillna(-1).to_numpy(np.int64)
        # A few ENCODE peaks have offset == width (one base past the peak): clip to it.
        summit = np.where(offset >= 0, np.minimum(start + offset, end - 1), mid)
    else:
        summit = mid
    peaks = pd.DataFrame(
        {
            "chrom": _rename_chroms(table[0].str.strip().reset_index(drop=True), chroms),
            "start": start,
            "end": end,
            "summit_pos": summit.astype(np.int64),
        }
    )
    peaks.attrs["path"] = str(path)
    return peaks


def peak_labels(
    peaks: pd.DataFrame,
    bins: pd.DataFrame | LocusTable,
    *,
    rule: Literal["summit", "overlap"] = "summit",
    min_overlap: int = 1,
    ambiguous: pd.DataFrame | None = None,
    blacklist: pd.DataFrame | None = None,
    missing: Literal["zero", "nan"] = "zero",
    return_summary: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
    """Label each bin bound (1), unbound (0) or unknown (NaN) from peak calls.

    ``rule="summit"``: a bin is bound when a peak summit falls in it. ``rule="overlap"``:
    when it shares at least ``min_overlap`` bp with a peak (``[s, e)`` and ``[a, b)`` share
    ``min(e, b) - max(s, a)`` bp). Then, in this order:

    - ``ambiguous`` (e.g. the ENCODE-DREAM relaxed peaks): a bin the same rule marks with
      an ambiguous peak but not with ``peaks`` is NaN (neither bound nor unbound);
    - ``blacklist``: a bin sharing at least 1 bp with a blacklisted region is NaN;
    - a chromosome of the bins without any peak is 0 or NaN (``missing``).

    Vectorised per chromosome (``searchsorted`` into the sorted bin starts); the overlap
    rule expands each peak to its candidate bins, so its memory grows with the number of
    (peak, bin) overlaps, not with the number of bins.

    Parameters
    ----------
    peaks
        From :func:`read_peaks` (n_peaks rows).
    bins
        Locus table, e.g. 200 bp bins (n_bins rows); bins may overlap (a stride smaller than
        their width) and differ in size.
    rule, min_overlap
        How a peak marks a bin (``min_overlap`` in bp, only for ``"overlap"``).
    ambiguous, blacklist
        From :func:`read_peaks` (a BED3 blacklist reads the same), or None.
    missing
        Label of the bins of a chromosome with no peak at all: ``"zero"`` or ``"nan"``
        (e.g. chromosomes held out of the file).
    return_summary
        Also return the summary (as in :func:`domain_boundaries`, with ``n_peaks``,
        ``n_ambiguous`` and ``n_blacklisted`` bins).

    Returns
    -------
    label : numpy.ndarray
        Shape (n_bins,), float32.
    summary : dict, only when ``return_summary``
    """
    if rule not in ("summit", "overlap"):
        raise LabelError(f"peak rule must be 'summit' or 'overlap', got {rule!r}")
    if isinstance(min_overlap, bool) or not isinstance(min_overlap, int | np.integer):
        raise LabelError(f"min_overlap must be a whole number of bp, got {min_overlap!r}")
    if min_overlap < 1:
        raise LabelError(f"min_overlap must be at least 1 bp, got {min_overlap}")
    blocks = _bin_blocks(bins)
    if rule == "summit":
        points = [peaks["summit_pos"].to_numpy(np.int64)]
        label, summary = _region_labels(peaks, points, bins, "peaks", missing, True, blocks)
    else:
        label, summary = _interval_labels(peaks, blocks, len(bins), min_overlap, missing)
    n_ambiguous = n_blacklisted = 0
    if ambiguous is not None:
        marked = _marked(ambiguous, blocks, len(bins), rule, min_overlap)
        hit = marked & (label == 0)
        n_ambiguous = int(hit.sum())
        label[hit] = np.nan
    if blacklist is not None:
        hit = _marked(blacklist, blocks, len(bins), "overlap", 1)
        n_blacklisted = int(hit.sum())
        label[hit] = np.nan
    summary.update(
        n_ambiguous=n_ambiguous, n_blacklisted=n_blacklisted, n_positive=int(np.nansum(label))
    )
    if summary["chroms_without"] and not return_summary:
        log.warning(
            "%s: no peaks on %s (labelled %s there)",
            peaks.attrs.get("path", "peaks"),
            _abbrev(summary["chroms_without"], 8),
            "NaN" if missing == "nan" else "0",
        )
    return (label, summary) if return_summary else label


def _overlapping(
    block: _Block,
    start: np.ndarray,
    end: np.ndarray,
    min_overlap: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the bins sharing ``min_overlap`` bp with an interval; also a mask of
    the intervals that share it with no bin."""
    rows, starts, ends, reach = block
    # Candidates: from the first bin whose running-maximum end reaches s + k (every earlier
    # bin ends before it) to the last bin starting at or before e - k (sorted starts).
    lo = np.searchsorted(reach, start + min_overlap, side="left")
    hi = np.searchsorted(starts, end - min_overlap, side="right")
    n = np.maximum(hi - lo, 0)
    total = int(n.sum())
    owner = np.repeat(np.arange(len(start)), n)
    idx = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
    shared = np.minimum(ends[idx], end[owner]) - np.maximum(starts[idx], start[owner])
    ok = shared >= min_overlap
    idx = idx[ok]
    placed = np.zeros(len(start), dtype=bool)
    placed[owner[ok]] = True
    pos = idx + rows.start if isinstance(rows, slice) else rows[idx]
    return pos, ~placed


def _interval_labels(
    peaks: pd.DataFrame,
    blocks: dict[str, _Block],
    n_bins: int,
    min_overlap: int,
    missing: Literal["zero", "nan"],
) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`peak_labels` with the overlap rule, before ambiguous and blacklisted bins."""
    if missing not in ("zero", "nan"):
        raise LabelError(f"missing must be 'zero' or 'nan', got {missing!r}")
    start = peaks["start"].to_numpy(np.int64)
    end = peaks["end"].to_numpy(np.int64)
    label, without, off, outside_bins = _label_by_chrom(
        peaks,
        blocks,
        n_bins,
        lambda rows, block: [_overlapping(block, start[rows], end[rows], min_overlap)],
        missing,
        peaks.attrs.get("path", "peaks"),
    )
    summary: dict[str, Any] = {
        "n_peaks": len(peaks),
        "chroms_without": chrom_order(without),
        "off_bins_chroms": {c: off[c] for c in chrom_order(off)},
        "n_peaks_off_bins_chroms": sum(off.values()),
        "points_outside_bins": outside_bins,
    }
    return label, summary


def _marked(
    regions: pd.DataFrame,
    blocks: dict[str, _Block],
    n_bins: int,
    rule: str,
    min_overlap: int,
) -> np.ndarray:
    """Shape (n_bins,) bool: the bins ``regions`` mark under ``rule``."""
    by_chrom = _rows_by_chrom(regions)
    check_chrom_names(list(by_chrom), blocks, regions.attrs.get("path"))
    out = np.zeros(n_bins, dtype=bool)
    start = regions["start"].to_numpy(np.int64)
    end = regions["end"].to_numpy(np.int64)
    summit = regions["summit_pos"].to_numpy(np.int64) if rule == "summit" else None
    for name, block in blocks.items():
        rows = by_chrom.get(name)
        if rows is None:
            continue
        if summit is not None:
            pos, _ = _place(summit[rows], block)
        else:
            pos, _ = _overlapping(block, start[rows], end[rows], min_overlap)
        out[pos] = True
    return out


# --------------------------------------------------------------------------------------
# The label kinds: what a manifest's ``[target] kind`` may name


@dataclass(frozen=True)
class LabelKind:
    """One kind of label source: how a manifest names it and how its files become labels.

    Attributes
    ----------
    name
        The manifest's ``[target] kind``.
    description
        One line for messages and docs.
    table
        One table for every cell type (``[target] table``, genes x cell types), whose
        values become ``value`` and ``label = value > threshold``.
    per_cell_type_file
        One file per cell type (``[cell_types.<id>] target``), read by ``read`` and
        placed on the loci by ``place``.
    loci
        The ``[loci]`` kinds it works with (None: any).
    read
        Reader of the table or of one cell type's file (a path) -> a data frame.
    place
        ``place(regions, loci, missing="nan", return_summary=True, **options) ->
        (label, summary)``: label shape ``(n_loci,)`` float32 over a
        :class:`~pitfall.loci.LocusTable` block.
    options
        ``options(manifest, cell_type) -> (values, files)``: further keyword arguments of
        ``place`` for one cell type: plain values, and files (read by ``read``, as the
        target) passed by name. None: no further arguments.
    """

    name: str
    description: str
    table: bool = False
    per_cell_type_file: bool = False
    loci: tuple[str, ...] | None = None
    read: Callable[..., pd.DataFrame] | None = None
    place: Callable[..., Any] | None = None
    options: Callable[[Manifest, str], tuple[dict[str, Any], dict[str, Any]]] | None = None

    def check(self, m: Manifest) -> None:
        """Raise :class:`~pitfall.manifest.ManifestError` where ``m`` does not fit this kind."""
        where = f"{m.path}: [target] kind = {self.name!r}"
        if self.table and m.table is None:
            raise ManifestError(f"{where} needs table = 'genes x cell types table'")
        if not self.table and m.table is not None:
            raise ManifestError(f"{where} takes no table (each cell type names its file)")
        if self.loci is not None and m.loci_kind not in self.loci:
            raise ManifestError(f"{where} needs [loci] {' or '.join(self.loci)}")
        if self.per_cell_type_file:
            if not m.cell_types:
                raise ManifestError(
                    f"{m.path}: no [cell_types.<id>] tables; each names its target file"
                )
            lacking = [ct for ct, spec in m.cell_types.items() if spec.target is None]
            if lacking:
                raise ManifestError(
                    f"{m.path}: [cell_types.{lacking[0]}] needs target = '<{self.name} file>'"
                )
        elif not self.table and not m.cell_types:
            raise ManifestError(f"{m.path}: no [cell_types.<id>] tables")


def _check_label_kind(kind: LabelKind) -> None:
    if kind.table == kind.per_cell_type_file:
        raise RegistryError(f"label kind {kind.name!r}: exactly one of table, per_cell_type_file")
    if kind.per_cell_type_file and (kind.read is None or kind.place is None):
        raise RegistryError(
            f"label kind {kind.name!r} reads one file per cell type: give read and place"
        )


#: Every label kind a manifest may name, by name (:func:`register_label_kind` adds one).
LABEL_KINDS: Registry[LabelKind] = Registry("label kind", check=_check_label_kind)


def register_label_kind(kind: LabelKind) -> LabelKind:
    """Add a label kind (a new ``[target] kind`` for manifests); return it.

    Raises
    ------
    pitfall.registry.RegistryError
        Its name is taken, or it reads neither one table nor one file per cell type.
    """
    return LABEL_KINDS.register(kind)


def label_kind(m: Manifest) -> LabelKind:
    """The label kind of a manifest, checked against it (its errors name file and key)."""
    kind = LABEL_KINDS[m.target_kind] if m.target_kind in LABEL_KINDS else None
    if kind is None:
        raise ManifestError(
            f"{m.path}: [target] kind {m.target_kind!r} is not a label kind"
            f"{closest(m.target_kind, LABEL_KINDS)}; known: {', '.join(LABEL_KINDS)}"
        )
    kind.check(m)
    return kind


register_label_kind(
    LabelKind(
        "expression",
        "a genes x cell types table (e.g. RPKM); label = value > threshold",
        table=True,
        loci=("tss",),
        read=read_expression_table,
    )
)
register_label_kind(
    LabelKind(
        "domains",
        "one domain (TAD) list per cell type; a bin is 1 where a domain starts or ends",
        per_cell_type_file=True,
        read=read_domains,
        place=domain_boundaries,
    )
)


def peak_options(m: Manifest, cell_type: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest's peak rule for one cell type, as :func:`peak_labels` takes it.

    Returns
    -------
    values : dict
        ``rule`` and ``min_overlap``.
    files : dict
        ``ambiguous`` (the cell type's relaxed peaks) and ``blacklist``, where given.
    """
    spec = m.cell_types.get(cell_type)
    files = {"ambiguous": spec.ambiguous if spec else None, "blacklist": m.blacklist}
    return (
        {"rule": m.rule, "min_overlap": m.min_overlap},
        {k: v for k, v in files.items() if v is not None},
    )


register_label_kind(
    LabelKind(
        "peaks",
        "one peak file per cell type; a bin is 1 where a summit falls or a peak overlaps it "
        "([target] rule), NaN where only an ambiguous peak does or a blacklisted region",
        per_cell_type_file=True,
        read=read_peaks,
        place=peak_labels,
        options=peak_options,
    )
)
