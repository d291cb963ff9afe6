"""The one base of the trainable models: data in through loaders, scores out a chunk at a time.

:class:`TrainableModel` does what every family shares -- the chunk reader and its cache, the
training and validation loaders (:class:`pitfall.loaders.Loader`), the residual target, the
device, the timing, and the streamed prediction of every (cell type, locus) pair of a test
selection -- so a family only says how it learns from a loader (:meth:`fit_loader`) and how it
scores a block of inputs (:meth:`score`). Every subclass is a
:class:`~pitfall.predictor.Predictor`.
"""

from __future__ import annotations

import abc
import time
from typing import Any

import numpy as np
import xarray as xr

from pitfall.loaders import (
    DEFAULT_CACHE_BYTES,
    Batch,
    ChunkReader,
    Loader,
    MemoryReader,
    iter_selection,
    selection_index,
)
from pitfall.models import inputs as inp
from pitfall.models.spec import ModelSpec

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
        Residual target only: the cell types whose mean label is the baseline; default the
        training cell types. At prediction the test cell types are left out of it.

    Attributes
    ----------
    device_ : str
        Where it trained: ``"cpu"`` or ``"cuda"``.
    train_seconds_ : float
        Wall time of the whole fit.
    n_params_ : int
        Trainable parameters (or the family's complexity).
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

    def target_of(self, y: np.ndarray, locus: np.ndarray) -> np.ndarray:
        """Training target of labels ``y`` of loci ``locus`` (cube positions), ``(n,)``:
        the labels, or their residual from the average activity."""
        if self.spec.target == "residual":
            return inp.residual(y, locus, self.avg_)
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
        if self.spec.target == "residual":
            self.avg_cell_types_ = list(self.average_cell_types or self.train_cell_types_)
            self.avg_ = inp.average_activity(self.cube, self.avg_cell_types_)
        loader = self.loader(train, **self.training_loader_options())
        self.fit_loader(loader, self.validation_sample(valid))
        self.fitted_ = True
        self.train_seconds_ = time.perf_counter() - t0
        return self

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
            Probabilities, or for the residual target ``residual + average activity`` (the
            score scale; NaN where no average-activity cell type has a label).
        """
        if not getattr(self, "fitted_", False):
            raise RuntimeError("fit the model before predict")
        cts, loci = selection_index(self.cube, test)
        order = np.argsort(loci, kind="stable")
        avg = self._test_average(test) if self.spec.target == "residual" else None
        out = np.full((cts.size, loci.size), np.nan, dtype=np.float32)
        seq_len = self.seq_len if self.spec.uses_sequence else 0
        max_rows = max(64, min(8192, block_bytes // max(1, 16 * seq_len)))
        for j, span, prep in iter_selection(
            self.reader, cts, loci[order], self.encoder, max_rows=max_rows
        ):
            p = np.asarray(self.score(self.encoder.inputs_of(prep, reuse=True)), np.float32)
            if avg is not None:
                p = inp.scores_from_residual(p, prep["locus"], avg)
            if j is None:
                out[:, order[span]] = p
            else:
                out[j, order[span]] = p
        return xr.DataArray(
            out,
            dims=("cell_type", "locus"),
            coords={"cell_type": test["cell_type"].values, "locus": test["locus"].values},
            name="score",
            attrs={"model": self.name},
        )

    def _test_average(self, test: xr.Dataset) -> np.ndarray:
        # The average activity of the test cell types' own labels would leak them.
        test_cts = {str(c) for c in test["cell_type"].values}
        others = [c for c in self.avg_cell_types_ if c not in test_cts]
        if not others:
            raise ValueError(
                "the residual target's average activity would use the test cell types' own "
                "labels (a cross-chromosome split?); pass average_cell_types= with other "
                "cell types"
            )
        if len(others) == len(self.avg_cell_types_):
            return self.avg_
        return inp.average_activity(self.cube, others)
