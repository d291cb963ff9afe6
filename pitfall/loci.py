"""Locus sets without per-locus Python objects: tables, genome bins, blocks and fingerprints.

A cube's loci are ``n`` half-open intervals with ``chrom, start, end, strand, name``, inside
their chromosome (``0 <= start < end <= size``); a locus whose window reaches past a
chromosome end (a TSS window near a chromosome start) keeps that window as ``window_start,
window_end`` (:meth:`LocusTable.clip`), which the featurizer reads. Two kinds of locus set
describe them:

- :class:`LocusTable`: the columns as numpy arrays (integers, and numpy ``StringDType``
  strings: one buffer, not a Python object per locus), for TSS windows and BED regions;
- :class:`GenomeBins`: tiles of a genome, described by its chromosome sizes and the bin size
  alone; any block of loci is computed on demand, so 15 M bins of 200 bp cost nothing to
  plan and each worker builds only the block it writes.

Both answer ``len()``, :meth:`~LocusTable.block` (a :class:`LocusTable` of loci
``[i0, i1)``) and :meth:`~LocusTable.chrom_counts`; :func:`fingerprint` hashes any locus set
block by block, so the same loci give the same digest however they were described.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

__all__ = [
    "STR",
    "GenomeBins",
    "LocusSet",
    "LocusTable",
    "chrom_order",
    "chrom_sizes",
    "fingerprint",
    "string_width",
    "strings",
]

#: numpy's variable-width string dtype: what Zarr returns for the cube's string arrays.
STR = np.dtypes.StringDType()
#: Loci per digest block of :func:`fingerprint` (fixed, so digests never depend on chunking).
FINGERPRINT_BLOCK = 1 << 20
STRANDS = ("+", "-", ".")


def chrom_order(chroms: Iterable[str]) -> list[str]:
    """Natural chromosome order: chr1, chr2, ..., chr10, ..., chrX, chrY, chrM, then others."""

    def key(c: str) -> tuple[int, int, str]:
        core = re.sub(r"^chr", "", c)
        if core.isdigit():
            return (0, int(core), c)
        special = {"X": 1, "Y": 2, "M": 3, "MT": 3}
        return (1, special.get(core, 9), c)

    return sorted({str(c) for c in chroms}, key=key)


def strings(values: Any) -> np.ndarray:
    """Any sequence of strings as a flat ``StringDType`` array (no Python object per item)."""
    arr = np.asarray(values)
    if arr.dtype == STR:
        return arr.ravel()
    if arr.dtype.kind in "OUS":
        return arr.astype(STR).ravel()
    return np.asarray([str(v) for v in arr.ravel()], dtype=STR)


def string_width(values: np.ndarray) -> int:
    """Characters of the longest string of ``values`` (at least 1): a fixed-width dtype's size."""
    if len(values) == 0:
        return 1
    return max(1, int(np.strings.str_len(strings(values)).max()))


class LocusSet(Protocol):
    """What the cube and the featurizer need of a locus set."""

    def __len__(self) -> int: ...

    def block(self, i0: int, i1: int) -> LocusTable: ...

    def chrom_counts(self) -> dict[str, int]: ...


@dataclass(frozen=True, eq=False)
class LocusTable:
    """Locus columns as numpy arrays, all of length ``n``.

    Attributes
    ----------
    chrom
        ``StringDType``.
    start, end
        int64, 0-based half-open.
    strand, name
        ``StringDType`` (strand ``"+"``, ``"-"`` or ``"."``), or None where they carry no
        information: strand ``"."`` and names ``chrom:start-end`` (genome bins).
    extra
        Optional per-locus columns carried along (e.g. ``gene_id`` for expression labels).
    runs
        The chromosome runs (:meth:`chrom_runs`) when the maker knows them (genome bins).
    window_start, window_end
        int64, the window each locus was made from where it reaches past a chromosome end
        (:meth:`clip`); None where every window lies inside its chromosome (then the window
        is ``start, end``).
    sizes
        ``(chrom, length)`` pairs the loci were clipped to (:meth:`clip`), when known.
    """

    chrom: np.ndarray
    start: np.ndarray
    end: np.ndarray
    strand: np.ndarray | None
    name: np.ndarray | None
    extra: Mapping[str, np.ndarray] | None = None
    runs: tuple[tuple[str, int, int], ...] | None = None
    window_start: np.ndarray | None = None
    window_end: np.ndarray | None = None
    sizes: tuple[tuple[str, int], ...] | None = None

    def __post_init__(self) -> None:
        n = len(self.start)
        if (self.window_start is None) != (self.window_end is None):
            raise ValueError("window_start and window_end go together (both or neither)")
        for col in ("chrom", "end", "strand", "name", "window_start", "window_end"):
            if getattr(self, col) is not None and len(getattr(self, col)) != n:
                raise ValueError(
                    f"locus column {col!r} has {len(getattr(self, col))} rows, not {n}"
                )

    @classmethod
    def from_columns(
        cls,
        chrom: Sequence[str],
        start: Sequence[int],
        end: Sequence[int],
        strand: Sequence[str] | None = None,
        name: Sequence[str] | None = None,
        window_start: Sequence[int] | None = None,
        window_end: Sequence[int] | None = None,
        **extra: Sequence[Any],
    ) -> LocusTable:
        """Build a table; default strand ``"."`` and names ``chrom:start-end``."""
        chroms = strings(chrom)
        starts = np.asarray(start, dtype=np.int64).ravel()
        ends = np.asarray(end, dtype=np.int64).ravel()
        strands = np.full(len(starts), ".", dtype=STR) if strand is None else strings(strand)
        names = bin_names(chroms, starts, ends) if name is None else strings(name)
        ext = {k: np.asarray(v) for k, v in extra.items()} or None

        def ints(col: Sequence[int] | None) -> np.ndarray | None:
            return None if col is None else np.asarray(col, dtype=np.int64).ravel()

        return cls(
            chroms,
            starts,
            ends,
            strands,
            names,
            ext,
            window_start=ints(window_start),
            window_end=ints(window_end),
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> LocusTable:
        """From a data frame with columns ``chrom, start, end`` (``strand``, ``name``,
        ``window_start``, ``window_end`` optional; other columns become :attr:`extra`)."""
        missing = [c for c in ("chrom", "start", "end") if c not in frame.columns]
        if missing:
            raise ValueError(f"locus table lacks columns {missing}")
        extra = {c: frame[c].to_numpy() for c in frame.columns if c not in _COLUMNS}
        return cls.from_columns(
            frame["chrom"].to_numpy(),
            frame["start"].to_numpy(),
            frame["end"].to_numpy(),
            frame["strand"].to_numpy() if "strand" in frame else None,
            frame["name"].to_numpy() if "name" in frame else None,
            frame["window_start"].to_numpy() if "window_start" in frame else None,
            frame["window_end"].to_numpy() if "window_end" in frame else None,
            **extra,
        )

    def to_frame(self) -> pd.DataFrame:
        """A data frame of the columns (strings as Python objects: for small tables only)."""
        cols: dict[str, Any] = {
            "chrom": self.chrom.astype(object),
            "start": self.start,
            "end": self.end,
            "strand": self.strands().astype(object),
            "name": self.names().astype(object),
        }
        if self.window_start is not None:
            cols["window_start"], cols["window_end"] = self.window_start, self.window_end
        for k, v in (self.extra or {}).items():
            cols[k] = v.astype(object) if v.dtype == STR else v
        return pd.DataFrame(cols)

    def __len__(self) -> int:
        return len(self.start)

    def strands(self) -> np.ndarray:
        """The strand column, ``"."`` where none is stored."""
        return np.full(len(self), ".", dtype=STR) if self.strand is None else self.strand

    def names(self) -> np.ndarray:
        """The name column, ``chrom:start-end`` where none is stored."""
        return bin_names(self.chrom, self.start, self.end) if self.name is None else self.name

    def windows(self) -> tuple[np.ndarray, np.ndarray]:
        """The window of each locus: ``(window_start, window_end)``, else ``(start, end)``.

        What features are read over (:func:`pitfall.featurize.plan.centred_windows`); it may
        reach past the chromosome's ends, which the kernels handle.
        """
        if self.window_start is None or self.window_end is None:
            return self.start, self.end
        return self.window_start, self.window_end

    def clip(self, sizes: Mapping[str, int], *, what: str = "loci") -> LocusTable:
        """The loci clipped to their chromosome, each keeping its window.

        ``start`` becomes ``max(start, 0)`` and ``end`` ``min(end, size)`` (a chromosome
        absent from ``sizes`` is clipped at 0 only); ``window_start, window_end`` keep the
        windows as they were when any locus changed (else None: nothing to keep).

        Parameters
        ----------
        sizes
            Chromosome -> length in bp.
        what
            Names the loci in errors (e.g. their file).

        Raises
        ------
        ValueError
            A locus with nothing inside its chromosome (it would be empty once clipped),
            naming it.
        """
        lo, hi = self.windows()
        size = np.full(len(self), np.iinfo(np.int64).max, dtype=np.int64)
        for c, a, b in self.chrom_runs():
            if c in sizes:
                size[a:b] = int(sizes[c])
        start = np.maximum(lo, 0)
        end = np.minimum(hi, size)
        empty = np.flatnonzero(end <= start)
        if empty.size:
            i = int(empty[0])
            c = str(self.chrom[i])
            length = f"length {sizes[c]:,}" if c in sizes else "starting at 0"
            raise ValueError(
                f"{what}: {empty.size} loci lie outside their chromosome, e.g. "
                f"{self.names()[i]} at {c}:{int(lo[i])}-{int(hi[i])} ({c} has {length}); the "
                "loci and the genome are from different assemblies (or a file is truncated)"
            )
        if np.array_equal(start, lo) and np.array_equal(end, hi):
            return self
        return dataclasses.replace(
            self, start=start, end=end, window_start=np.asarray(lo), window_end=np.asarray(hi)
        )

    def block(self, i0: int, i1: int) -> LocusTable:
        """Loci ``[i0, i1)`` as a table (views, no copy)."""
        return self.take(slice(i0, i1))

    def take(self, rows: np.ndarray | slice) -> LocusTable:
        """Loci at positions ``rows`` (a view for a slice, else a copy)."""

        def pick(col: np.ndarray | None) -> np.ndarray | None:
            return None if col is None else col[rows]

        extra = {k: v[rows] for k, v in self.extra.items()} if self.extra else None
        return LocusTable(
            self.chrom[rows],
            self.start[rows],
            self.end[rows],
            pick(self.strand),
            pick(self.name),
            extra,
            window_start=pick(self.window_start),
            window_end=pick(self.window_end),
            sizes=self.sizes,
        )

    def chrom_runs(self) -> list[tuple[str, int, int]]:
        """Maximal runs of one chromosome: ``(chrom, i0, i1)`` in order."""
        if self.runs is not None:
            return list(self.runs)
        n = len(self)
        if n == 0:
            return []
        edges = np.flatnonzero(self.chrom[1:] != self.chrom[:-1]) + 1
        bounds = [0, *edges.tolist(), n]
        return [(str(self.chrom[a]), a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def chrom_counts(self) -> dict[str, int]:
        """Loci per chromosome, in order of first appearance."""
        counts: dict[str, int] = {}
        for c, a, b in self.chrom_runs():
            counts[c] = counts.get(c, 0) + b - a
        return counts

    def sorted(self) -> LocusTable:
        """Sorted by chromosome (natural order), then start (stable)."""
        rank = {c: i for i, c in enumerate(chrom_order(np.unique(self.chrom).tolist()))}
        codes, uniques = pd.factorize(self.chrom)
        chrom_rank = np.array([rank[str(u)] for u in uniques], dtype=np.int64)[codes]
        return self.take(np.lexsort((self.start, chrom_rank)))


_COLUMNS = ("chrom", "start", "end", "strand", "name", "window_start", "window_end")


def bin_names(chrom: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """``chrom:start-end`` names, built as ``StringDType`` arrays (vectorised)."""
    chrom = strings(chrom)
    out = np.strings.add(chrom, ":")
    out = np.strings.add(out, np.asarray(start, dtype=np.int64).astype(STR))
    out = np.strings.add(out, "-")
    return np.strings.add(out, np.asarray(end, dtype=np.int64).astype(STR))


@dataclass(frozen=True)
class GenomeBins:
    """Chromosomes tiled by bins of ``bin_size`` starting every ``stride`` bp.

    Bin ``k`` of a chromosome of length ``n`` is ``[k * stride, k * stride + bin_size)``
    clipped at ``n``; a chromosome has ``1 + ceil(max(0, n - bin_size) / stride)`` bins, so
    the last one reaches its end. With ``stride == bin_size`` (the default) the bins tile
    the chromosome; a smaller stride makes them overlap (ENCODE-DREAM: 200 bp every 50 bp).

    Parameters
    ----------
    sizes
        ``(chrom, length)`` pairs in cube order.
    bin_size
        Bin length in bp.
    stride
        Distance between consecutive bin starts in bp (None: ``bin_size``).
    """

    sizes: tuple[tuple[str, int], ...]
    bin_size: int
    stride: int | None = None

    def __post_init__(self) -> None:
        if self.bin_size <= 0:
            raise ValueError(f"bin_size must be positive, got {self.bin_size}")
        if self.stride is not None and not 0 < self.stride <= self.bin_size:
            raise ValueError(
                f"stride must be between 1 and bin_size ({self.bin_size}), got {self.stride}"
            )

    @property
    def step(self) -> int:
        """Distance between consecutive bin starts in bp."""
        return self.bin_size if self.stride is None else self.stride

    @classmethod
    def from_sizes(
        cls,
        sizes: Mapping[str, int],
        bin_size: int,
        chroms: Sequence[str] | None = None,
        stride: int | None = None,
    ) -> GenomeBins:
        """Bins over ``chroms`` (default every chromosome of ``sizes``, natural order)."""
        chroms = chrom_order(sizes) if chroms is None else list(chroms)
        missing = [c for c in chroms if c not in sizes]
        if missing:
            raise ValueError(f"chromosomes {missing} are not in the chromosome sizes")
        step = None if stride is None or stride == bin_size else int(stride)
        return cls(tuple((c, int(sizes[c])) for c in chroms), int(bin_size), step)

    def _counts(self) -> np.ndarray:
        step = self.step
        return np.array(
            [1 + max(0, -(-(n - self.bin_size) // step)) for _, n in self.sizes], dtype=np.int64
        )

    def __len__(self) -> int:
        return int(self._counts().sum())

    def chrom_counts(self) -> dict[str, int]:
        return {c: int(k) for (c, _), k in zip(self.sizes, self._counts(), strict=True)}

    def block(self, i0: int, i1: int) -> LocusTable:
        """Bins ``[i0, i1)``, computed from the sizes alone."""
        counts = self._counts()
        offsets = np.concatenate([[0], np.cumsum(counts)])
        i0, i1 = max(0, int(i0)), min(int(offsets[-1]), int(i1))
        n = max(0, i1 - i0)
        chrom = np.empty(n, dtype=STR)
        start = np.empty(n, dtype=np.int64)
        end = np.empty(n, dtype=np.int64)
        runs = []
        for k, (c, size) in enumerate(self.sizes):
            lo, hi = max(i0, offsets[k]), min(i1, offsets[k + 1])
            if hi <= lo:
                continue
            a, b = lo - i0, hi - i0
            # Filling a slice is several times faster than building StringDType arrays anew.
            chrom[a:b] = c
            start[a:b] = (np.arange(lo, hi, dtype=np.int64) - offsets[k]) * self.step
            np.minimum(start[a:b] + self.bin_size, size, out=end[a:b])
            runs.append((c, int(a), int(b)))
        return LocusTable(chrom, start, end, None, None, runs=tuple(runs))


def chrom_sizes(loci: LocusSet) -> dict[str, int] | None:
    """The chromosome sizes a locus set knows (genome bins, clipped tables), else None."""
    sizes = getattr(loci, "sizes", None)
    return {str(c): int(n) for c, n in sizes} if sizes else None


def blocks(n: int, size: int) -> Iterator[tuple[int, int]]:
    """``[i0, i1)`` ranges of ``size`` loci covering ``0 .. n``."""
    for i0 in range(0, n, size):
        yield i0, min(n, i0 + size)


def block_digest(table: LocusTable) -> str:
    """Hash of one block's coordinates (chromosome runs, start, end, strand, name, windows).

    A strand or name column that is not stored hashes as its derived value's marker, not as
    the derived strings: bins cost no string building to fingerprint. Windows are hashed only
    where some locus was clipped (:meth:`LocusTable.clip`), so loci inside their
    chromosomes hash as they did before windows existed.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps([(c, b - a) for c, a, b in table.chrom_runs()]).encode())
    h.update(table.start.astype("<i8").tobytes())
    h.update(table.end.astype("<i8").tobytes())
    for col in (table.strand, table.name):
        h.update(b"\x01" if col is None else "\x00".join(col.tolist()).encode() + b"\x02")
    if table.window_start is not None and table.window_end is not None:
        h.update(b"\x03" + table.window_start.astype("<i8").tobytes())
        h.update(table.window_end.astype("<i8").tobytes())
    return h.hexdigest()


def combine_digests(digests: Sequence[str], n: int) -> str:
    """The fingerprint of a locus set from its block digests (in order) and size."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{n}:".encode())
    for d in digests:
        h.update(d.encode())
    return h.hexdigest()


def fingerprint(loci: LocusSet, block: int = FINGERPRINT_BLOCK) -> str:
    """A hash of every locus's coordinates and name, in order, in blocks of ``block`` loci.

    Equal loci hash equal for equal ``block`` (the cube records its own: its locus chunk,
    so that its workers can hash the chunks they write).
    """
    n = len(loci)
    return combine_digests([block_digest(loci.block(a, b)) for a, b in blocks(n, block)], n)
