"""The one base of the trainable models: data in through loaders, scores out a chunk at a time.

:class:`TrainableModel` does what every family shares -- the chunk reader and its cache, the
training and validation loaders (:class:`pitfall.loaders.Loader`), the residual target, the
device, the timing, and the streamed prediction of every (cell type, locus) pair of a test
selection -- so a family only says how it learns from a loader (:meth:`fit_loader`) and how it
scores a block of inputs (:meth:`score`). Every subclass is a
:class:`~pitfall.predictor.Predictor`.

The paper's remedies live here too, for every family: the locus's average activity as an
input (``spec.average``) and the residual target (``spec.target == "residual"``). Both use
one :class:`~pitfall.loaders.LocusAverage` over the cell types the model sees (training and
validation, unless ``average_cell_types`` says otherwise), leaving each training pair's own
label out; before predicting, the test cell types are dropped from it, so no test label is
ever read.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import xarray as xr

from pitfall.evaluate import residual_target as evaluate_residual
from pitfall.evaluate import score_from_residual as evaluate_score
from pitfall.loaders import (
    DEFAULT_CACHE_BYTES,
    Batch,
    ChunkReader,
    InputEncoder,
    Loader,
    LocusAverage,
    MemoryReader,
    iter_selection,
    selection_index,
)
from pitfall.models import inputs as inp
from pitfall.models.spec import ModelSpec

__all__ = ["SAMPLE_KEY", "TrainableModel", "VALID_KEY"]

#: The key of the validation sample's draw (``(seed, 2)``), and of the trees' training sample.
VALID_KEY = 2
SAMPLE_KEY = 3


class TrainableModel(abc.ABC):
    """A model of a :class:`~pitfall.models.spec.ModelSpec`, fitted on split selections.

    Parameters
    ----------
    spec
        The model's spec (its family's class is this one).
    cube
        The whole cube (``open_cube``); selections passed to ``fit`` / ``predict`` are matched
        to it by their integer ``locus`` coordinate and cell-type names.
    valid_size
        Pairs of the fixed, balanced validation sample (paper: 3,200).
    device
        ``"auto"`` (a GPU when the family's library can use one), ``"cpu"`` or ``"cuda"``.
    in_memory
        Load the cube's label, signal and sequence into memory first (the same batches as
        streaming; for small cubes and benchmarks).
    cache_bytes
        Chunk cache of the streaming reader.
    store
        Where the reader reads chunks straight from (:class:`pitfall.loaders.ChunkReader`).
    prefetch
        Prepare the next epoch in a background thread.
    average_cell_types
        Remedies only (``spec.average``, the residual target): the cell types whose mean
        label is the locus's average activity; default the training and validation cell
        types (the labels the model sees, and those the average-activity baseline averages).
        A pair's own label is never part of its average; at prediction the test cell types
        are left out of it.

    Attributes
    ----------
    device_ : str
        Where it trained: ``"cpu"`` or ``"cuda"``.
    train_seconds_ : float
        Wall time of the whole fit.
    n_params_ : int
        Trainable parameters (or the family's complexity).
    average_ : LocusAverage
        Remedies only: the average over ``avg_cell_types_``.
    """

    def __init__(
        self,
        spec: ModelSpec,
        cube: xr.Dataset,
        *,
        valid_size: int = 3200,
        device: str | None = "auto",
        in_memory: bool = False,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        store: Any = None,
        prefetch: bool = True,
        average_cell_types: list[str] | None = None,
    ) -> None:
        self.spec = spec
        self.cube = cube
        self.valid_size = valid_size
        self.device = device or "auto"
        self.in_memory = in_memory
        self.cache_bytes = cache_bytes
        self.store = store
        self.prefetch = prefetch
        self.average_cell_types = average_cell_types
        self.n_marks = cube.sizes.get("mark", 0) if "signal" in cube else 0
        self.seq_len = cube.sizes.get("position", 0) if "sequence" in cube else 0
        self.encoder = inp.InputEncoder(
            spec.inputs, permuted=spec.permuted, seed=spec.seed, n_random=spec.n_random
        )
        self.name = spec.label
        self._reader: ChunkReader | None = None

    # ------------------------------------------------------------------------------------
    # What a family says

    @abc.abstractmethod
    def fit_loader(self, train: Loader, valid: Batch | None) -> None:
        """Learn from the training loader; ``valid`` is the fixed validation sample
        ``(x, y)`` (targets already applied), or None. Sets the fitted attributes."""

    @abc.abstractmethod
    def score(self, x: dict[str, np.ndarray]) -> np.ndarray:
        """Scores of a block of inputs (as a loader's ``x``), on the target's scale, ``(n,)``."""

    def resolve_device(self) -> str:
        """Where this family trains for ``self.device`` (default: the CPU)."""
        if self.device == "cuda":
            from pitfall.models.devices import DeviceError

            raise DeviceError(f"{type(self).__name__} has no GPU implementation")
        return "cpu"

    def training_loader_options(self) -> dict[str, Any]:
        """Keywords of the training :class:`~pitfall.loaders.Loader` (batching)."""
        return {}

    # ------------------------------------------------------------------------------------
    # What they share

    @property
    def reader(self) -> ChunkReader:
        """The chunk reader shared by the model's loaders and its predictions."""
        if self._reader is None:
            self._reader = (
                MemoryReader(self.cube, ["label", *self.encoder.needs])
                if self.in_memory
                else ChunkReader(self.cube, store=self.store, cache_bytes=self.cache_bytes)
            )
        return self._reader

    @property
    def uses_average(self) -> bool:
        """True when a remedy needs the locus's average activity."""
        return self.spec.average or self.spec.target == "residual"

    def target_of(self, y: np.ndarray, locus: np.ndarray, cell_type: np.ndarray) -> np.ndarray:
        """Training target of labels ``y`` of pairs (``locus``, ``cell_type``: cube
        positions), ``(n,)``: the labels, or their residual from the average activity over
        the other cell types of the set."""
        if self.spec.target == "residual":
            avg = self.average_.values(locus, cell_type, y)
            return np.asarray(evaluate_residual(y, avg), dtype=np.float32)
        return y

    def loader(self, selection: xr.Dataset, **options: Any) -> Loader:
        """A :class:`~pitfall.loaders.Loader` of ``selection`` with this model's inputs,
        seed, reader and target."""
        options.setdefault("prefetch", self.prefetch)
        return Loader(
            self.cube,
            selection,
            inputs=self.spec.inputs,
            permuted=self.spec.permuted,
            n_random=self.spec.n_random,
            seed=self.spec.seed,
            reader=self.reader,
            target=self.target_of,
            average=self.average_ if self.spec.average else None,
            **options,
        )

    def validation_sample(self, valid: xr.Dataset | None) -> Batch | None:
        """The fixed balanced validation sample of ``valid`` (``valid_size`` pairs drawn
        from ``(seed, 2)``), or None without a labelled positive and negative in it."""
        if valid is None or not valid.sizes["cell_type"] or not valid.sizes["locus"]:
            return None
        vloader = self.loader(valid, prefetch=False)
        if not all(vloader.counts):
            return None
        return vloader.sample(self.valid_size, key=VALID_KEY)

    def fit(self, train: xr.Dataset, valid: xr.Dataset | None = None) -> TrainableModel:
        """Train on ``train``, validating on ``valid``.

        Parameters
        ----------
        train, valid
            Split selections (``split.train(cube)``, ``split.valid(cube)``), dims
            ``(cell_type, locus)``; only their coordinates are used, data come from the cube.
        """
        t0 = time.perf_counter()
        self.device_ = self.resolve_device()
        self.train_cell_types_ = [str(c) for c in train["cell_type"].values]
        if self.uses_average:
            self.avg_cell_types_ = self._average_cell_types(train, valid)
            self.average_ = LocusAverage.from_cube(self.cube, self.avg_cell_types_)
        loader = self.loader(train, **self.training_loader_options())
        self.fit_loader(loader, self.validation_sample(valid))
        self.fitted_ = True
        self.train_seconds_ = time.perf_counter() - t0
        return self

    def _average_cell_types(self, train: xr.Dataset, valid: xr.Dataset | None) -> list[str]:
        """The remedies' cell types: given, or those of training and validation."""
        if self.average_cell_types is not None:
            cts = [str(c) for c in self.average_cell_types]
        else:
            cts = list(self.train_cell_types_)
            if valid is not None:
                cts += [str(c) for c in valid["cell_type"].values]
        cts = list(dict.fromkeys(cts))
        # Each pair's own label is left out of its average: a cell type trained on needs
        # another cell type of the set (a cross-chromosome split has none).
        lonely = [c for c in self.train_cell_types_ if not set(cts) - {c}]
        if not cts or lonely:
            raise ValueError(
                f"the average activity over {cts} has no cell type left once the label of "
                f"{(lonely or ['the pair'])[0]} is left out (a cross-chromosome split?); pass "
                "average_cell_types= with other cell types"
            )
        return cts

    def _test_average(self, test: xr.Dataset) -> LocusAverage:
        # The test cell types' own labels would leak: they leave the set, which is summed
        # again without them (never read and subtracted).
        return self.average_.without(self.cube, [str(c) for c in test["cell_type"].values])

    def iter_inputs(
        self, test: xr.Dataset, *, block_bytes: int = 64 << 20
    ) -> Iterator[tuple[int | None, np.ndarray, dict[str, np.ndarray], np.ndarray | None]]:
        """The inputs the model scores for every pair of ``test``, a block at a time.

        Yields
        ------
        j : int or None
            Index of the block's test cell type, or None when the inputs are the same for
            every test cell type.
        columns : numpy.ndarray
            Indices into the test selection's loci of the block's rows, ``(m,)``.
        x : dict
            The inputs (keys as the model's), each ``(m, ...)``; reused buffers, consume
            before the next block.
        average : numpy.ndarray or None
            The residual target's average at the rows, ``(m,)`` (None without it).
        """
        if not getattr(self, "fitted_", False):
            raise RuntimeError("fit the model before predict")
        cts, loci = selection_index(self.cube, test)
        order = np.argsort(loci, kind="stable")
        avg = self._test_average(test) if self.uses_average else None
        encoder = InputEncoder(
            self.spec.inputs,
            permuted=self.spec.permuted,
            seed=self.spec.seed,
            n_random=self.spec.n_random,
            average=avg if self.spec.average else None,
        )
        residual = avg if self.spec.target == "residual" else None
        seq_len = self.seq_len if self.spec.uses_sequence else 0
        max_rows = max(64, min(8192, block_bytes // max(1, 16 * seq_len)))
        for j, span, prep in iter_selection(
            self.reader, cts, loci[order], encoder, max_rows=max_rows
        ):
            base = None if residual is None else residual.values(prep["locus"], prep["cell_type"])
            yield j, order[span], encoder.inputs_of(prep, reuse=True), base

    def features(self, test: xr.Dataset) -> dict[str, np.ndarray]:
        """Every input the model scores for ``test``, for inspection and tests.

        Returns
        -------
        dict
            Input name -> float32 array ``(n_cell_types, n_loci, ...)`` in the test
            selection's order (inputs the same for every cell type repeated).
        """
        n_ct, n_loci = test.sizes["cell_type"], test.sizes["locus"]
        out: dict[str, np.ndarray] = {}
        for j, cols, x, _ in self.iter_inputs(test):
            for k, v in x.items():
                if k not in out:
                    out[k] = np.full((n_ct, n_loci, *v.shape[1:]), np.nan, np.float32)
                out[k][slice(None) if j is None else j, cols] = v
        return out

    def predict(self, test: xr.Dataset, *, block_bytes: int = 64 << 20) -> xr.DataArray:
        """Scores of every (cell type, locus) pair of ``test``, streamed a chunk at a time.

        Parameters
        ----------
        test
            A split selection, dims ``(cell_type, locus)``.
        block_bytes
            Bound of each block's one-hot sequence (16 bytes a base).

        Returns
        -------
        xarray.DataArray
            float32, dims ``(cell_type, locus)`` with the test selection's coordinates.
            Probabilities, or for the residual target ``residual + average activity`` over
            the set without the test cell types (the score scale; the set's prevalence
            stands in for the average where none of its cell types has a label).
        """
        out = np.full((test.sizes["cell_type"], test.sizes["locus"]), np.nan, dtype=np.float32)
        for j, cols, x, base in self.iter_inputs(test, block_bytes=block_bytes):
            p = np.asarray(self.score(x), np.float32)
            if base is not None:
                p = np.asarray(evaluate_score(p, base), np.float32)
            if j is None:
                out[:, cols] = p
            else:
                out[j, cols] = p
        return xr.DataArray(
            out,
            dims=("cell_type", "locus"),
            coords={"cell_type": test["cell_type"].values, "locus": test["locus"].values},
            name="score",
            attrs={"model": self.name},
        )
