"""Model inputs: signal rows, one-hot sequence, the two controls, and the residual target.

Raw inputs are read from the cube per (cell type, locus) pair -- ``signal`` rows
``(n, n_marks)`` float32 and sequence ``codes`` ``(n, L)`` uint8 -- and an
:class:`InputEncoder` turns them into what a model eats.

Controls (Schreiber et al. 2020), both functions of the locus's *position in the cube* and a
seed only, so they are computed per locus, on the fly, without a table, identically in every
cell type and every process:

- :func:`permute_codes`: each locus's sequence shuffled by its own permutation. The locus stays
  identifiable (its base composition is kept), the motif grammar is gone.
- :func:`random_inputs`: a Gaussian vector per locus. It carries no biology, only identity.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import xarray as xr

from pitfall import evaluate, kernels

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(cache=True, inline="always")
def _splitmix64(x: np.uint64) -> np.uint64:
    # SplitMix64 finaliser: a bijective, well-mixed hash, so (seed, locus, j) streams never
    # collide and need no stored state.
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(cache=True)
def _locus_key(seed: np.uint64, locus: np.int64, salt: np.uint64) -> np.uint64:
    return _splitmix64(_splitmix64(seed ^ salt) + np.uint64(locus) * _GOLDEN)


@numba.njit(cache=True)
def _permute_kernel(codes: np.ndarray, loci: np.ndarray, seed: np.uint64, out: np.ndarray) -> None:
    n, length = codes.shape
    for r in range(n):
        for i in range(length):
            out[r, i] = codes[r, i]
        state = _locus_key(seed, loci[r], np.uint64(0x5EC))
        # Fisher-Yates with a per-locus counter-based generator: O(L) per row.
        for i in range(length - 1, 0, -1):
            state += _GOLDEN
            j = np.int64(_splitmix64(state) % np.uint64(i + 1))
            tmp = out[r, i]
            out[r, i] = out[r, j]
            out[r, j] = tmp


@numba.njit(cache=True)
def _gaussian_kernel(loci: np.ndarray, seed: np.uint64, out: np.ndarray) -> None:
    n, width = out.shape
    scale = 1.0 / 18446744073709551616.0  # 2**-64
    for r in range(n):
        state = _locus_key(seed, loci[r], np.uint64(0x7A4D))
        for j in range(0, width, 2):
            state += _GOLDEN
            u1 = (np.float64(_splitmix64(state)) + 0.5) * scale
            state += _GOLDEN
            u2 = (np.float64(_splitmix64(state)) + 0.5) * scale
            # Box-Muller: two standard normals from two uniforms in (0, 1).
            radius = np.sqrt(-2.0 * np.log(u1))
            out[r, j] = radius * np.cos(2.0 * np.pi * u2)
            if j + 1 < width:
                out[r, j + 1] = radius * np.sin(2.0 * np.pi * u2)


def permute_codes(codes: np.ndarray, loci: np.ndarray, seed: int) -> np.ndarray:
    """Shuffle each row's sequence by a permutation drawn from ``(seed, locus)``.

    Parameters
    ----------
    codes : numpy.ndarray
        uint8 base codes, shape ``(n, L)``.
    loci : numpy.ndarray
        Position in the cube of each row's locus, shape ``(n,)``. Rows of the same locus
        (e.g. in different cell types) get the same permutation.
    seed : int
        Seed of the control.

    Returns
    -------
    numpy.ndarray
        uint8, shape ``(n, L)``: a new array, each row a permutation of its input row.
    """
    codes = np.ascontiguousarray(codes)
    loci = np.ascontiguousarray(loci, dtype=np.int64)
    if codes.ndim != 2 or loci.shape != (codes.shape[0],):
        raise ValueError(f"codes must be (n, L) and loci (n,), got {codes.shape}, {loci.shape}")
    out = np.empty_like(codes)
    _permute_kernel(codes, loci, np.uint64(seed), out)
    return out


def random_inputs(loci: np.ndarray, seed: int, n_random: int = 100) -> np.ndarray:
    """Standard Gaussian vectors, one per locus, drawn from ``(seed, locus)``.

    Parameters
    ----------
    loci : numpy.ndarray
        Positions in the cube, shape ``(n,)``.
    seed : int
        Seed of the control.
    n_random : int
        Width of each vector.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(n, n_random)``; equal rows for equal loci, whatever the cell type.
    """
    loci = np.ascontiguousarray(loci, dtype=np.int64).reshape(-1)
    out = np.empty((loci.size, n_random), dtype=np.float64)
    _gaussian_kernel(loci, np.uint64(seed), out)
    return out.astype(np.float32)


# --------------------------------------------------------------------------------------------


class InputEncoder:
    """Turn raw rows (signal, sequence codes, locus positions) into a model's inputs.

    Parameters
    ----------
    inputs
        ``"signal"``, ``"sequence"``, ``"both"`` or ``"random"``.
    permuted
        Apply :func:`permute_codes` to the sequence.
    seed
        Seed of the controls.
    n_random
        Width of the random control.

    Notes
    -----
    :meth:`prepare` does the per-row work that depends on the locus only (permutation,
    random vectors); it runs once per epoch, in the prefetch thread. :meth:`encode` one-hot
    encodes a batch into a buffer reused across calls of the same batch size: consume its
    result before the next call.
    """

    def __init__(
        self, inputs: str, *, permuted: bool = False, seed: int = 0, n_random: int = 100
    ) -> None:
        self.inputs = inputs
        self.permuted = permuted
        self.seed = seed
        self.n_random = n_random
        self._buffers: dict[tuple[int, int], np.ndarray] = {}

    @property
    def needs(self) -> tuple[str, ...]:
        """Cube variables read for these inputs (``"signal"``, ``"sequence"``)."""
        return {
            "signal": ("signal",),
            "sequence": ("sequence",),
            "both": ("sequence", "signal"),
            "random": (),
        }[self.inputs]

    @property
    def per_locus(self) -> bool:
        """True when inputs do not depend on the cell type (predict once per locus)."""
        return "signal" not in self.needs

    def prepare(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Apply the controls to raw rows (``locus`` (n,), ``codes`` (n, L), ``signal``)."""
        out = dict(raw)
        if self.permuted and "codes" in raw:
            out["codes"] = permute_codes(raw["codes"], raw["locus"], self.seed)
        if self.inputs == "random":
            out["random"] = random_inputs(raw["locus"], self.seed, self.n_random)
        if "signal" in raw:
            # Marks absent on a chromosome are NaN in the cube; a network cannot eat NaN, and
            # "no data" is what a zero mean arcsinh signal already says.
            out["signal"] = np.nan_to_num(raw["signal"], nan=0.0)
        return out

    def encode(
        self, prepared: dict[str, np.ndarray], rows: slice | None = None
    ) -> list[np.ndarray]:
        """Model inputs for ``prepared[...][rows]``, in the order [sequence, signal]."""
        rows = slice(None) if rows is None else rows
        xs: list[np.ndarray] = []
        if "sequence" in self.needs:
            codes = prepared["codes"][rows]
            key = codes.shape
            buf = self._buffers.get(key)
            if buf is None:
                buf = self._buffers[key] = np.empty((*codes.shape, 4), dtype=np.float32)
            xs.append(kernels.one_hot(codes, out=buf))
        if "signal" in self.needs:
            xs.append(prepared["signal"][rows])
        if self.inputs == "random":
            xs.append(prepared["random"][rows])
        return xs

    def flat(self, prepared: dict[str, np.ndarray], rows: slice | None = None) -> np.ndarray:
        """All inputs flattened and concatenated, shape ``(n, features)`` (for trees)."""
        xs = self.encode(prepared, rows)
        return np.concatenate([x.reshape(len(x), -1) for x in xs], axis=1)


# --------------------------------------------------------------------------------------------


def assemble(
    cube: xr.Dataset,
    selection: xr.Dataset,
    inputs: str,
    *,
    permuted: bool = False,
    seed: int = 0,
    n_random: int = 100,
) -> tuple[list[np.ndarray], np.ndarray, xr.DataArray]:
    """Every (cell type, locus) pair of a selection, read straight from the cube.

    For small selections, tests and inspection; training streams instead
    (:mod:`pitfall.models.batches`).

    Parameters
    ----------
    cube
        The whole cube (``open_cube``).
    selection
        A split role's selection, dims ``(cell_type, locus)``.
    inputs, permuted, seed, n_random
        As :class:`InputEncoder`.

    Returns
    -------
    xs : list of numpy.ndarray
        ``[one-hot (n, L, 4)]``, ``[signal (n, n_marks)]``, both (sequence first) or
        ``[random (n, n_random)]``, rows in (cell type, locus) order, ``n = n_ct * n_loci``.
    y : numpy.ndarray
        Labels, shape ``(n,)`` (NaN kept).
    labels : xarray.DataArray
        The selection's labels, dims ``(cell_type, locus)``, whose ravel is ``y``.
    """
    enc = InputEncoder(inputs, permuted=permuted, seed=seed, n_random=n_random)
    loci = np.asarray(selection["locus"].values, dtype=np.int64)
    n_ct = selection.sizes["cell_type"]
    raw: dict[str, np.ndarray] = {"locus": np.tile(loci, n_ct)}
    if "sequence" in enc.needs:
        codes = np.asarray(cube["sequence"].isel(locus=loci).values)
        raw["codes"] = np.tile(codes, (n_ct, 1))
    if "signal" in enc.needs:
        sig = np.asarray(selection["signal"].transpose("cell_type", "locus", "mark").values)
        raw["signal"] = sig.reshape(-1, sig.shape[-1])
    labels = selection["label"].transpose("cell_type", "locus")
    y = np.asarray(labels.values, dtype=np.float32).ravel()
    xs = [x.copy() for x in enc.encode(enc.prepare(raw))]
    return xs, y, labels


def average_activity(cube: xr.Dataset, cell_types: Sequence[str]) -> np.ndarray:
    """Mean label of every locus of the cube over ``cell_types``, shape ``(n_loci,)``.

    NaN where none of them has a label. Read chunk by chunk (Dask); float32.
    """
    if not cell_types:
        raise ValueError("average activity needs at least one cell type")
    lab = cube["label"].sel(cell_type=list(cell_types))
    return np.asarray(lab.mean("cell_type", skipna=True).values, dtype=np.float32)


def residual(y: np.ndarray, loci: np.ndarray, avg: np.ndarray) -> np.ndarray:
    """Residual target of rows: ``y - avg[loci]`` (:func:`pitfall.evaluate.residual_target`)."""
    return np.asarray(evaluate.residual_target(y, avg[loci]), dtype=np.float32)


def scores_from_residual(pred: np.ndarray, loci: np.ndarray, avg: np.ndarray) -> np.ndarray:
    """Back to the score scale: ``pred + avg[loci]`` (:func:`pitfall.evaluate.score_from_residual`)."""
    return np.asarray(evaluate.score_from_residual(pred, avg[loci]), dtype=np.float32)
