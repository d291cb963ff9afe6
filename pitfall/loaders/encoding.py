"""Model inputs made from raw cube rows: one-hot sequence, signal, and the two controls.

Raw inputs are read from the cube per (cell type, locus) pair -- ``signal`` rows
``(n, n_marks)`` float32 and sequence ``codes`` ``(n, L)`` uint8 -- and an
:class:`InputEncoder` turns them into what a model eats: a dict keyed ``sequence``
(one-hot, ``(n, L, 4)``), ``signal`` ``(n, n_marks)`` and/or ``random`` ``(n, n_random)``,
and, for the paper's first remedy, ``average`` ``(n, 1)``: the locus's average activity
over the cell types a model may see (:class:`~pitfall.loaders.average.LocusAverage`).

Controls (Schreiber et al. 2020), both functions of the locus's *position in the cube* and a
seed only, so they are computed per locus, on the fly, without a table, identically in every
cell type and every process:

- :func:`permute_codes`: each locus's sequence shuffled by its own permutation. The locus stays
  identifiable (its base composition is kept), the motif grammar is gone.
- :func:`random_inputs`: a Gaussian vector per locus. It carries no biology, only identity.

Layout: a one-hot sequence is ``(n, L, 4)`` (``"NLC"``, channels last: Keras, TensorFlow,
JAX) or ``(n, 4, L)`` (``"NCL"``, channels first: PyTorch's ``Conv1d``), :data:`LAYOUTS`.

Augmentation (:class:`Augment`, off unless asked for): each example's sequence shifted by a
few bases and/or reverse-complemented, drawn from ``(seed, epoch, cell type, locus)`` alone,
so every reader, worker and shard draws the same.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np

from pitfall import kernels
from pitfall.loaders.average import LocusAverage

__all__ = [
    "LAYOUTS",
    "Alloc",
    "Augment",
    "InputEncoder",
    "augment_codes",
    "check_layout",
    "flatten",
    "fresh_copy",
    "one_hot_layout",
    "permute_codes",
    "random_inputs",
]

#: What a loader's ``layout`` may be: one-hot sequence ``(n, L, 4)`` or ``(n, 4, L)``.
LAYOUTS: tuple[str, ...] = ("NLC", "NCL")

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


def check_layout(layout: str) -> str:
    """``layout`` when it is one of :data:`LAYOUTS`, else a ValueError saying what it may be."""
    if layout not in LAYOUTS:
        raise ValueError(
            f"layout must be 'NLC' (batch, length, 4: Keras, TensorFlow) or 'NCL' (batch, 4, "
            f"length: PyTorch Conv1d), got {layout!r}"
        )
    return layout


@numba.njit(cache=True)
def _one_hot_ncl_kernel(codes: np.ndarray, out: np.ndarray) -> None:
    n, length = codes.shape
    for r in range(n):
        # Channel by channel: each inner loop writes one contiguous row, which LLVM
        # vectorises (a base's four channels at once wrote four strided streams).
        for k in range(4):
            for i in range(length):
                out[r, k, i] = np.float32(codes[r, i] == k)


def one_hot_layout(
    codes: np.ndarray, layout: str = "NLC", out: np.ndarray | None = None
) -> np.ndarray:
    """One-hot float32 of base codes ``(n, L)`` in ``layout``.

    Parameters
    ----------
    codes
        uint8 codes A=0 C=1 G=2 T=3 (anything else, N: an all-zero column), shape ``(n, L)``.
    layout
        ``"NLC"``: shape ``(n, L, 4)`` (:func:`pitfall.kernels.one_hot`); ``"NCL"``:
        ``(n, 4, L)``, written directly (no transposed copy).
    out
        A C-contiguous float32 buffer of the result's shape to write into.

    Returns
    -------
    numpy.ndarray
        float32, ``(n, L, 4)`` or ``(n, 4, L)``; ``out`` when given.
    """
    if layout == "NLC":
        return kernels.one_hot(codes, out=out)
    check_layout(layout)
    codes = np.ascontiguousarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be (n, L), got shape {codes.shape}")
    shape = (codes.shape[0], 4, codes.shape[1])
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous with shape {shape}, got {out.shape}")
    _one_hot_ncl_kernel(codes, out)
    return out


@numba.njit(cache=True)
def _augment_kernel(
    codes: np.ndarray, flip: np.ndarray, shift: np.ndarray, out: np.ndarray
) -> None:
    n, length = codes.shape
    for r in range(n):
        s = shift[r]
        for i in range(length):
            j = i + s
            c = codes[r, j] if 0 <= j < length else np.uint8(4)
            if flip[r]:
                # The reverse complement: position i of the result is L-1-i of the shifted
                # window, complemented (A<->T, C<->G, N stays N).
                out[r, length - 1 - i] = 3 - c if c <= 3 else 4
            else:
                out[r, i] = c


def augment_codes(codes: np.ndarray, flip: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Each row's sequence shifted, then reverse-complemented where ``flip``.

    Parameters
    ----------
    codes
        uint8 base codes, shape ``(n, L)``.
    flip
        bool ``(n,)``: reverse-complement the (shifted) row.
    shift
        int ``(n,)``: position ``i`` of a row takes base ``i + shift`` of the stored window
        (the window moved ``shift`` bases towards its end); bases from beyond the window's
        edges are N (code 4, an all-zero one-hot column): the cube stores no flanks.

    Returns
    -------
    numpy.ndarray
        uint8, shape ``(n, L)``: a new array.
    """
    codes = np.ascontiguousarray(codes)
    n = codes.shape[0]
    flip = np.ascontiguousarray(flip, dtype=np.bool_).reshape(-1)
    shift = np.ascontiguousarray(shift, dtype=np.int64).reshape(-1)
    if codes.ndim != 2 or flip.shape != (n,) or shift.shape != (n,):
        raise ValueError(
            f"codes must be (n, L), flip and shift (n,); got {codes.shape}, {flip.shape}, "
            f"{shift.shape}"
        )
    out = np.empty_like(codes)
    _augment_kernel(codes, flip, shift, out)
    return out


@numba.njit(cache=True)
def _augment_draws_kernel(
    seed: np.uint64,
    epoch: np.uint64,
    cts: np.ndarray,
    loci: np.ndarray,
    max_shift: np.int64,
    flip: np.ndarray,
    shift: np.ndarray,
) -> None:
    span = np.uint64(2 * max_shift + 1)
    for r in range(loci.size):
        key = _splitmix64(_locus_key(seed ^ (epoch * _GOLDEN), loci[r], np.uint64(0xA06)))
        h = _splitmix64(key + np.uint64(cts[r]) * _GOLDEN)
        flip[r] = (h >> np.uint64(63)) == np.uint64(1)
        shift[r] = np.int64(_splitmix64(h) % span) - max_shift


class Augment:
    """Random reverse complement and shift of each example's sequence (both off by default).

    Parameters
    ----------
    reverse_complement
        Reverse-complement each example with probability 1/2.
    max_shift
        Shift each example by a whole number of bases drawn uniformly from
        ``[-max_shift, max_shift]`` (:func:`augment_codes`: N beyond the window's edges).
    seed
        With the epoch, the cell type and the locus (cube positions), all that a draw depends
        on: the same example gets the same draw in every reader, worker or shard.
    """

    def __init__(self, *, reverse_complement: bool = False, max_shift: int = 0, seed: int = 0):
        if (
            isinstance(max_shift, bool)
            or not isinstance(max_shift, (int, np.integer))
            or max_shift < 0
        ):
            raise ValueError(f"max_shift must be a whole number of at least 0, got {max_shift!r}")
        self.reverse_complement = bool(reverse_complement)
        self.max_shift = int(max_shift)
        self.seed = int(seed)

    @property
    def active(self) -> bool:
        """Whether anything is changed."""
        return self.reverse_complement or self.max_shift > 0

    def draws(self, epoch: int, cts: np.ndarray, loci: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each example's ``flip`` (bool ``(n,)``) and ``shift`` (int64 ``(n,)``) in ``epoch``.

        ``cts``, ``loci``: cube positions, ``(n,)``."""
        loci = np.ascontiguousarray(loci, dtype=np.int64).reshape(-1)
        cts = np.ascontiguousarray(cts, dtype=np.int64).reshape(-1)
        flip = np.empty(loci.size, dtype=np.bool_)
        shift = np.empty(loci.size, dtype=np.int64)
        _augment_draws_kernel(
            np.uint64(self.seed), np.uint64(epoch), cts, loci, np.int64(self.max_shift), flip, shift
        )
        if not self.reverse_complement:
            flip[:] = False
        return flip, shift

    def apply(self, codes: np.ndarray, epoch: int, cts: np.ndarray, loci: np.ndarray) -> np.ndarray:
        """``codes`` ``(n, L)`` augmented for ``epoch`` (themselves when :attr:`active` is False)."""
        if not self.active:
            return codes
        flip, shift = self.draws(epoch, cts, loci)
        return augment_codes(codes, flip, shift)


# --------------------------------------------------------------------------------------------


Alloc = Callable[[tuple[int, ...], np.dtype], np.ndarray]
"""``alloc(shape, dtype)``: an empty C-contiguous array to fill (see
:meth:`InputEncoder.inputs_of`)."""


def fresh_copy(a: np.ndarray, alloc: Alloc | None = None) -> np.ndarray:
    """A copy of ``a`` in a new array, or in ``alloc(a.shape, a.dtype)``."""
    if alloc is None:
        return a.copy()
    out = alloc(a.shape, a.dtype)
    out[...] = a
    return out


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
    average
        Add the input ``average`` ``(n, 1)``: each pair's locus average over the set's cell
        types other than its own (:meth:`LocusAverage.values`; rows of a cell type in the
        set need their label, ``raw["y"]``, in :meth:`prepare`).
    layout
        Of the one-hot sequence: ``"NLC"`` ``(n, L, 4)`` or ``"NCL"`` ``(n, 4, L)``
        (:data:`LAYOUTS`).

    Notes
    -----
    :meth:`prepare` does the per-row work that depends on the locus only (permutation,
    random vectors, the average); it runs once per epoch, in the prefetch thread.
    :meth:`inputs_of` one-hot encodes a batch (by the Numba kernel of :mod:`pitfall.kernels`) into fresh
    arrays, or into a buffer reused across calls of the same batch size.
    """

    def __init__(
        self,
        inputs: str,
        *,
        permuted: bool = False,
        seed: int = 0,
        n_random: int = 100,
        average: LocusAverage | None = None,
        layout: str = "NLC",
    ) -> None:
        self.inputs = inputs
        self.layout = check_layout(layout)
        self.permuted = permuted
        self.seed = seed
        self.n_random = n_random
        self.average = average
        self._buffers: dict[tuple[int, ...], np.ndarray] = {}

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
        """True when inputs do not depend on the cell type (predict once per locus).

        The average is per locus for every cell type outside its set, which is what a
        prediction's cell types are (:meth:`LocusAverage.without`)."""
        return "signal" not in self.needs

    def prepare(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Apply the controls to raw rows (``locus`` (n,), ``codes`` (n, L), ``signal``;
        ``cell_type`` and ``y`` for the average) and add the average."""
        out = dict(raw)
        if self.average is not None:
            out["average"] = self.average.values(
                raw["locus"], raw.get("cell_type"), raw.get("y")
            ).reshape(-1, 1)
        if self.permuted and "codes" in raw:
            out["codes"] = permute_codes(raw["codes"], raw["locus"], self.seed)
        if self.inputs == "random":
            out["random"] = random_inputs(raw["locus"], self.seed, self.n_random)
        if "signal" in raw:
            # Marks absent on a chromosome are NaN in the cube; a network cannot eat NaN, and
            # "no data" is what a zero mean arcsinh signal already says.
            out["signal"] = np.nan_to_num(raw["signal"], nan=0.0)
        return out

    @property
    def names(self) -> tuple[str, ...]:
        """Keys of :meth:`inputs`, in the models' input order: sequence, signal, or random,
        then average when it is one."""
        base = {
            "signal": ("signal",),
            "sequence": ("sequence",),
            "both": ("sequence", "signal"),
            "random": ("random",),
        }[self.inputs]
        return (*base, "average") if self.average is not None else base

    def shapes(self, *, n_marks: int = 0, seq_len: int = 0) -> dict[str, tuple[int, ...]]:
        """Per-row shape of each input: ``sequence`` ``(seq_len, 4)`` (``(4, seq_len)`` in
        layout ``"NCL"``), ``signal`` ``(n_marks,)``, ``random`` ``(n_random,)``, ``average``
        ``(1,)``; all float32."""
        every = {
            "sequence": (4, seq_len) if self.layout == "NCL" else (seq_len, 4),
            "signal": (n_marks,),
            "random": (self.n_random,),
            "average": (1,),
        }
        return {k: every[k] for k in self.names}

    def inputs_of(
        self,
        prepared: dict[str, np.ndarray],
        rows: slice | None = None,
        *,
        reuse: bool = False,
        alloc: Alloc | None = None,
    ) -> dict[str, np.ndarray]:
        """Model inputs of ``prepared[...][rows]``, keyed as :attr:`names` (float32).

        Parameters
        ----------
        prepared
            :meth:`prepare` output (``codes`` (n, L) uint8, ``signal`` (n, n_marks),
            ``random`` (n, n_random)).
        rows
            Which rows (default all).
        reuse
            One-hot encode into a buffer reused across calls of the same size (no allocation
            per batch; consume the result before the next call). Off, every array returned
            is fresh, so it can be kept, handed to another thread or wrapped zero-copy.
        alloc
            Where each fresh array goes instead of a new one: ``alloc(shape, dtype)`` returns
            an empty C-contiguous array (a torch worker's shared-memory slot,
            :mod:`pitfall.loaders.slots`); ignored with ``reuse``.

        Returns
        -------
        dict
            ``sequence`` ``(n, L, 4)`` (``(n, 4, L)`` in layout ``"NCL"``), ``signal``
            ``(n, n_marks)`` and/or ``random`` ``(n, n_random)``; ``average`` ``(n, 1)``
            with an average.
        """
        rows = slice(None) if rows is None else rows
        out: dict[str, np.ndarray] = {}
        if "sequence" in self.needs:
            codes = prepared["codes"][rows]
            n, length = codes.shape
            shape = (n, 4, length) if self.layout == "NCL" else (n, length, 4)
            buf = None
            if reuse:
                buf = self._buffers.get(shape)
                if buf is None:
                    buf = self._buffers[shape] = np.empty(shape, np.float32)
            elif alloc is not None:
                buf = alloc(shape, np.dtype(np.float32))
            out["sequence"] = one_hot_layout(codes, self.layout, out=buf)
        for name in self.names:
            if name != "sequence":
                part = prepared[name][rows]
                out[name] = part if reuse else fresh_copy(part, alloc)
        return out

    def encode(
        self, prepared: dict[str, np.ndarray], rows: slice | None = None
    ) -> list[np.ndarray]:
        """:meth:`inputs_of` as a list in the order [sequence, signal] or [random], one-hot
        encoded into a reused buffer (consume before the next call)."""
        return list(self.inputs_of(prepared, rows, reuse=True).values())

    def flat(self, prepared: dict[str, np.ndarray], rows: slice | None = None) -> np.ndarray:
        """All inputs flattened and concatenated, shape ``(n, features)`` (for trees)."""
        return flatten(self.inputs_of(prepared, rows, reuse=True))


def flatten(x: dict[str, np.ndarray]) -> np.ndarray:
    """Inputs ``x`` (as :meth:`InputEncoder.inputs_of`) flattened per row and concatenated in
    key order, shape ``(n, features)``: what trees eat."""
    return np.concatenate([v.reshape(len(v), -1) for v in x.values()], axis=1)
