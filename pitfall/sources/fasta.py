"""Locus sequences from a FASTA file, as strand-aware uint8 codes.

pyfaidx indexes the file; a plain file's windows are then read in place (memory-mapped,
:func:`~pitfall.kernels.fasta_window_codes`), a bgzip-compressed one through pyfaidx.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyfaidx

from pitfall.kernels import encode_dna, fasta_window_codes, reverse_complement

__all__ = ["FastaError", "N_CODE", "chrom_sizes", "open_fasta", "window_codes"]

N_CODE = 4


class FastaError(ValueError):
    """A FASTA file that cannot be read; the message names the file and what to do."""


def open_fasta(path: str | os.PathLike) -> pyfaidx.Fasta:
    """Open (and index, if needed) a FASTA file, plain or bgzip-compressed.

    Raises
    ------
    FastaError
        For a file that is missing, not FASTA, or truncated/corrupt (the index does not
        match the file); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such FASTA file (check the manifest's [sequence])")
    try:
        fa = pyfaidx.Fasta(str(path), as_raw=True, sequence_always_upper=False)
    except (pyfaidx.FastaIndexingError, pyfaidx.FetchError, ValueError, OSError) as err:
        raise FastaError(
            f"{path}: cannot be read as FASTA ({err}); check that it is complete and, if it "
            f"was re-downloaded, delete the stale index {path}.fai"
        ) from err
    _check_complete(fa, path)
    return fa


def _check_complete(fa: pyfaidx.Fasta, path: Path) -> None:
    # pyfaidx trusts an index newer than the file: a download truncated after its .fai was
    # written would read short (or as N) without complaint. Each record's ``bend`` is the
    # byte offset where it ends; the file must reach the last one (the final newline may
    # be missing). bgzip offsets are virtual, so only plain files can be checked this way.
    if getattr(fa.faidx, "_bgzf", False) or not fa.faidx.index:
        return
    needed = max(rec.bend for rec in fa.faidx.index.values()) - 1
    size = path.stat().st_size
    if size < needed:
        fa.close()
        raise FastaError(
            f"{path}: truncated: the file has {size:,} bytes but its index {path}.fai "
            f"describes {needed:,}; download the FASTA again and delete the stale index"
        )


def chrom_sizes(path: str | os.PathLike) -> dict[str, int]:
    """Chromosome lengths of a FASTA file, from its index."""
    fa = open_fasta(path)
    return {name: len(rec) for name, rec in fa.records.items()}


def window_codes(
    path: str | os.PathLike,
    chrom: str,
    starts: np.ndarray,
    ends: np.ndarray,
    strands: np.ndarray,
) -> np.ndarray:
    """Sequence codes of equal-length windows on one chromosome.

    Parameters
    ----------
    path
        FASTA file.
    chrom
        Chromosome of every window.
    starts, ends
        Shape ``(n,)``, 0-based half-open; every window has the same length ``L``. Parts of a
        window past either chromosome end are N (code 4).
    strands
        Shape ``(n,)``; ``"-"`` windows are reverse-complemented, so position 0 is always the
        5'-most base on the locus's strand.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, L)`` uint8: A=0 C=1 G=2 T=3 N=4.
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    lengths = np.unique(ends - starts)
    if lengths.size > 1:
        raise FastaError(f"{path}: windows on {chrom} have different lengths {lengths[:5]}")
    if starts.size == 0:
        return np.zeros((0, 0), dtype=np.uint8)
    length = int(lengths[0])
    fa = open_fasta(path)
    if chrom not in fa:
        raise FastaError(
            f"{path}: has no chromosome {chrom!r} (it has {list(fa.keys())[:5]}...); "
            "the FASTA must cover every chromosome of the loci"
        )
    if not getattr(fa.faidx, "_bgzf", False):
        # A plain file is read in place: only the pages the windows cover, not the span
        # between the first and the last window (most of a chromosome for sparse loci).
        rec = fa.faidx.index[chrom]
        fa.close()
        text = np.memmap(path, dtype=np.uint8, mode="r")
        try:
            return fasta_window_codes(
                text,
                rec.offset,
                rec.lenc,
                rec.lenb,
                rec.rlen,
                starts,
                length,
                np.asarray(strands) == "-",
            )
        except ValueError as err:
            raise FastaError(
                f"{path}: reading {chrom} failed ({err}); download the FASTA again and "
                "delete its .fai index"
            ) from err
        finally:
            del text
    lo = max(0, int(starts.min()))
    try:
        text = fa[chrom][lo : int(ends.max())]
    except (pyfaidx.FetchError, ValueError, OSError) as err:
        raise FastaError(
            f"{path}: reading {chrom} failed ({err}); the file may be truncated"
        ) from err
    expected = min(int(ends.max()), len(fa[chrom])) - lo
    if len(text) < expected:
        # A file cut short under an index that still describes the whole chromosome.
        raise FastaError(
            f"{path}: {chrom}[{lo}:{lo + expected}] read only {len(text)} of {expected} bases; "
            "the file is truncated (download it again and delete its .fai index)"
        )
    codes = encode_dna(text)
    # Pad with N on both sides so windows past either chromosome end read N there.
    padded = np.concatenate(
        [np.full(length, N_CODE, np.uint8), codes, np.full(length, N_CODE, np.uint8)]
    )
    offsets = starts - lo + length
    idx = offsets[:, None] + np.arange(length)[None, :]
    idx = np.clip(idx, 0, padded.size - 1)
    out = padded[idx]
    minus = np.asarray(strands) == "-"
    if minus.any():
        out[minus] = reverse_complement(out[minus])
    return out
