"""The genome of a synthetic compendium: random bases, planted motifs, masking, runs of N.

Each gene's upstream window carries copies of ``GENE_MOTIF``, their number a Poisson draw
whose rate grows with the gene's propensity, at uniformly random non-overlapping positions;
each bin carries copies of ``BIN_MOTIF`` (either way round) at a rate that grows with its
boundary propensity. So the sequence reveals the *average* activity of a locus over cell
types, never what is specific to one cell type. The gene motif is its own reverse
complement, so its count does not depend on the strand the window is read on.

Written as plain FASTA, 60 letters a line, with soft-masked (lowercase) stretches and a few
runs of ``N`` between genes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

import numpy as np
from scipy.special import expit

from pitfall.synth.model import STREAM_SEQUENCE, stream
from pitfall.synth.params import BIN_MOTIF, GENE_MOTIF, SynthParams

__all__ = ["GenomeInfo", "write_genome"]

# Background base composition (A, C, G, T) of about 41% GC, as a 200-entry lookup table so
# that one uint8 draw per base suffices.
_BASE_LUT = np.repeat(np.frombuffer(b"ACGT", dtype=np.uint8), [59, 41, 41, 59])


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


class GenomeInfo(TypedDict):
    """What :func:`write_genome` reports: motif counts per gene and bin, N runs per chromosome."""

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


def write_genome(
    params: SynthParams,
    genes: dict[str, np.ndarray],
    bins: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    path: Path,
) -> GenomeInfo:
    """Write the FASTA; return motif counts per gene and bin and the N runs per chromosome."""
    gmotif, bmotif = GENE_MOTIF.encode(), BIN_MOTIF.encode()
    bmotif_rc = _revcomp(BIN_MOTIF).encode()
    gene_counts = np.zeros(params.n_genes, dtype=np.int32)
    bin_counts = np.zeros(len(bins["start"]), dtype=np.int32)
    n_runs: list[np.ndarray] = []
    with open(path, "wb") as fh:
        for ci, (chrom, length) in enumerate(zip(params.chroms, params.chrom_lengths, strict=True)):
            rng = stream(params, STREAM_SEQUENCE, ci)
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
