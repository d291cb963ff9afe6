"""The signal of a synthetic compendium: one bigWig per cell type and mark.

Runs of 20-200 bp tile each gene's upstream window (a tenth of them left as gaps with no
data), plus a sparse background of broad runs in every bin whose level follows that bin's
boundary state. Values are skewed and non-negative, like -log10 p-values, and scatter around
the truth's ``signal_level`` and ``bin_signal_level`` (which carry each locus's artefact
factor, the same in every cell type).
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyBigWig

from pitfall.synth.model import STREAM_SIGNAL, stream
from pitfall.synth.params import SynthParams

__all__ = ["bigwig_task", "write_bigwig", "write_bigwigs"]

_RUN_MIN, _RUN_MAX = 20, 200  # bp of the runs that tile gene windows
_GAP_FRACTION = 0.1  # share of window runs left without data


def write_bigwig(
    path: Path,
    params: SynthParams,
    genes: dict[str, np.ndarray],
    bins: dict[str, np.ndarray],
    gene_level: np.ndarray,
    bin_level: np.ndarray,
    forbidden: list[np.ndarray],
    key: tuple[int, ...],
) -> None:
    """One bigWig: runs tiling gene windows plus broad background runs in every bin."""
    rng = stream(params, *key)
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


def bigwig_task(args: tuple) -> None:
    """:func:`write_bigwig` of one argument tuple, for a process pool's ``map``."""
    write_bigwig(*args)


def write_bigwigs(
    paths: dict[str, dict[str, Path]],
    params: SynthParams,
    genes: dict[str, np.ndarray],
    bins: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    forbidden: list[np.ndarray],
    workers: int,
    key: int = STREAM_SIGNAL,
) -> None:
    """Write every listed cell type's and mark's bigWig, in ``workers`` processes when above 1.

    Each file draws from its own (cell type, mark) stream, so the bytes do not depend on how
    many workers write them, in which order, or which other files are listed.

    Parameters
    ----------
    paths : dict
        ``paths[cell_type][mark]``: where to write, cell types in the truth's order; a mark
        a cell type does not list gets no file.
    params : SynthParams
        The compendium's parameters.
    genes, bins : dict of str to numpy.ndarray
        The gene layout and the bins (:mod:`pitfall.synth.model`).
    truth : dict of str to numpy.ndarray
        The latent truth; ``signal_level`` (C, G, M) and ``bin_signal_level`` (C, B, M) are
        read.
    forbidden : list of numpy.ndarray
        Per chromosome, (n, 2) runs of N where no background run may fall.
    workers : int
        Processes writing the files; 1 or less writes them here.
    key : int
        The ``STREAM_*`` key of the files' streams (one per set of bigWigs).
    """
    tasks = [
        (
            paths[cid][mark],
            params,
            genes,
            bins,
            truth["signal_level"][c, :, m],
            truth["bin_signal_level"][c, :, m],
            forbidden,
            (key, c, m),
        )
        for c, cid in enumerate(paths)
        for m, mark in enumerate(params.marks)
        if mark in paths[cid]
    ]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(bigwig_task, tasks, chunksize=4))
    else:
        for task in tasks:
            bigwig_task(task)
