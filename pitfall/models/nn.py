"""Keras models of the paper's families, trained on balanced batches streamed from the cube.

The recipe (Schreiber et al. 2020): ReLU hidden layers, a sigmoid output, Adam with Keras's
defaults, binary cross-entropy, no regularisation; balanced mini-batches of 32, an epoch of
400 of them, at most 100 epochs, and early stopping once the loss on one balanced validation
batch of 3,200 has not improved for 5 epochs, restoring the best weights. Every number is a
keyword of :class:`NeuralModel`.

TensorFlow and Keras are imported when a model is built, so ``import pitfall.models`` stays
cheap and works without the ``nn`` extra.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import xarray as xr

from pitfall.models import inputs as inp
from pitfall.models.batches import (
    DEFAULT_CACHE_BYTES,
    BalancedBatches,
    ChunkReader,
    MemoryReader,
    predict_selection,
    selection_index,
)
from pitfall.models.spec import KERNEL_SIZE, POOL_SIZE, ModelSpec

_EPS = 1e-7  # Keras's clip of probabilities in binary cross-entropy


def _keras() -> Any:
    # Silence TensorFlow's C++ start-up chatter unless the user asked for it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
    except ImportError as err:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "neural models need Keras and TensorFlow: pip install 'pitfall[nn]'"
        ) from err
    return keras


def build_model(spec: ModelSpec, *, n_marks: int = 0, seq_len: int = 0) -> Any:
    """Build and compile the Keras model of a spec (functional API).

    Parameters
    ----------
    spec
        A neural spec (not ``xgboost``).
    n_marks
        Width of the signal input (``(n_marks,)``).
    seq_len
        Length of the one-hot sequence input (``(seq_len, 4)``).

    Returns
    -------
    keras.Model
        Inputs in the order [sequence, signal] (those the spec uses) or [random]; one output
        unit, sigmoid (tanh for the residual target); compiled with Adam and binary
        cross-entropy (mean squared error for the residual target).
    """
    if not spec.is_neural:
        raise ValueError(f"build_model builds neural families, not {spec.family!r}")
    spec.n_params(n_marks, seq_len)  # raises a clear SpecError on impossible shapes
    keras = _keras()
    layers = keras.layers

    def dense(x: Any, units: tuple[int, ...]) -> Any:
        for u in units:
            x = layers.Dense(u, activation="relu")(x)
        return x

    def conv(x: Any, filters: tuple[int, ...]) -> Any:
        for f in filters:
            x = layers.Conv1D(f, KERNEL_SIZE, strides=1, activation="relu")(x)
            x = layers.MaxPooling1D(POOL_SIZE, strides=POOL_SIZE)(x)
        return layers.Flatten()(x)

    f = spec.family
    if f == "dense":
        width = n_marks if spec.inputs == "signal" else spec.n_random
        x_in = [keras.Input((width,), name=spec.inputs)]
        x = dense(x_in[0], spec.units)
    elif f in ("seq_dense", "seq_conv"):
        x_in = [keras.Input((seq_len, 4), name="sequence")]
        x = layers.Flatten()(x_in[0]) if f == "seq_dense" else conv(x_in[0], spec.filters)
        x = dense(x, spec.units)
    else:
        x_in = [keras.Input((seq_len, 4), name="sequence"), keras.Input((n_marks,), name="signal")]
        s = conv(x_in[0], spec.filters) if spec.filters else layers.Flatten()(x_in[0])
        s = dense(s, spec.seq_units)
        e = dense(x_in[1], spec.units)
        x = layers.Dense(spec.joint_units, activation="relu")(layers.Concatenate()([s, e]))
    residual = spec.target == "residual"
    out = layers.Dense(1, activation="tanh" if residual else "sigmoid", name="output")(x)
    model = keras.Model(x_in, out, name=spec.family)
    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss="mean_squared_error" if residual else "binary_crossentropy",
    )
    return model


def _one(xs: list[np.ndarray]) -> Any:
    return xs[0] if len(xs) == 1 else xs


class NeuralModel:
    """A Keras model of the paper, with the models' interface ``fit`` / ``predict``.

    Parameters
    ----------
    spec
        A neural :class:`~pitfall.models.spec.ModelSpec`.
    cube
        The whole cube (``open_cube``); selections passed to ``fit`` / ``predict`` are
        matched to it by their integer ``locus`` coordinate and cell-type names.
    batch_size, batches_per_epoch, max_epochs, patience, valid_size
        The training recipe (paper: 32, 400, 100, 5, 3,200).
    in_memory
        Load the cube's label, signal and sequence into memory first (same batches as the
        streaming default; for small cubes and benchmarks).
    cache_bytes
        Chunk cache of the streaming reader.
    prefetch
        Prepare the next epoch in a background thread.
    average_cell_types
        Residual target only: the cell types whose mean label is the baseline; default the
        training cell types. At prediction the test cell types are left out of it.
    verbose
        Print one line per epoch.

    Attributes
    ----------
    model_ : keras.Model
    history_ : list of dict
        Per epoch: ``epoch``, ``loss`` (mean training loss), ``val_loss``, ``seconds``
        (training batches), ``wait_seconds`` (blocked on data before them) and
        ``valid_seconds``.
    epochs_run_, best_epoch_ : int
    stopped_early_ : bool
    train_seconds_ : float
        Wall time of the whole fit (build, sampling, training, validation).
    n_params_ : int
        Trainable parameters (``model_.count_params()``).
    """

    def __init__(
        self,
        spec: ModelSpec,
        cube: xr.Dataset,
        *,
        batch_size: int = 32,
        batches_per_epoch: int = 400,
        max_epochs: int = 100,
        patience: int = 5,
        valid_size: int = 3200,
        in_memory: bool = False,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        prefetch: bool = True,
        average_cell_types: list[str] | None = None,
        verbose: bool = False,
    ) -> None:
        if not spec.is_neural:
            raise ValueError(f"NeuralModel takes neural families, not {spec.family!r}")
        self.spec = spec
        self.cube = cube
        self.batch_size = batch_size
        self.batches_per_epoch = batches_per_epoch
        self.max_epochs = max_epochs
        self.patience = patience
        self.valid_size = valid_size
        self.in_memory = in_memory
        self.cache_bytes = cache_bytes
        self.prefetch = prefetch
        self.average_cell_types = average_cell_types
        self.verbose = verbose
        self.n_marks = cube.sizes.get("mark", 0) if "signal" in cube else 0
        self.seq_len = cube.sizes.get("position", 0) if "sequence" in cube else 0
        self.encoder = inp.InputEncoder(
            spec.inputs, permuted=spec.permuted, seed=spec.seed, n_random=spec.n_random
        )
        self.name = spec.label

    # ----------------------------------------------------------------------------------------
    def _reader(self) -> ChunkReader:
        if getattr(self, "reader_", None) is None:
            if self.in_memory:
                self.reader_ = MemoryReader(self.cube, ["label", *self.encoder.needs])
            else:
                self.reader_ = ChunkReader(self.cube, cache_bytes=self.cache_bytes)
        return self.reader_

    def _targets(self, data: dict[str, np.ndarray]) -> np.ndarray:
        if self.spec.target == "residual":
            return inp.residual(data["y"], data["locus"], self.avg_)
        return data["y"]

    def _predict_rows(self, xs: list[np.ndarray]) -> np.ndarray:
        n = len(xs[0])
        step = 512
        parts = []
        for i in range(0, n, step):
            block = [x[i : i + step] for x in xs]
            rows = len(block[0])
            if rows < step:
                # One input shape for every call: a short last block would make TensorFlow
                # trace the predict function again for each new size.
                block = [np.concatenate([b, np.zeros((step - rows, *b.shape[1:]), b.dtype)])
                         for b in block]  # fmt: skip
            parts.append(np.asarray(self.model_.predict_on_batch(_one(block)))[:rows])
        return np.concatenate(parts).reshape(-1).astype(np.float32)

    def _loss(self, y: np.ndarray, p: np.ndarray) -> float:
        if self.spec.target == "residual":
            return float(np.mean((p - y) ** 2))
        p = np.clip(p, _EPS, 1 - _EPS)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    def fit(self, train: xr.Dataset, valid: xr.Dataset | None = None) -> NeuralModel:
        """Train on balanced batches of ``train``, early-stopping on a batch of ``valid``.

        Parameters
        ----------
        train, valid
            Split selections (``split.train(cube)``, ``split.valid(cube)``), dims
            ``(cell_type, locus)``; only their coordinates are used, data come from the cube.
            Without ``valid`` (or with no labelled pair in it) training runs ``max_epochs``.
        """
        t0 = time.perf_counter()
        keras = _keras()
        keras.utils.set_random_seed(self.spec.seed)
        self.model_ = build_model(self.spec, n_marks=self.n_marks, seq_len=self.seq_len)
        self.n_params_ = int(self.model_.count_params())
        reader = self._reader()
        cts, loci = selection_index(self.cube, train)
        self.train_cell_types_ = [str(c) for c in train["cell_type"].values]
        if self.spec.target == "residual":
            avg_cts = self.average_cell_types or self.train_cell_types_
            self.avg_cell_types_ = list(avg_cts)
            self.avg_ = inp.average_activity(self.cube, self.avg_cell_types_)
        stream = BalancedBatches(
            reader, cts, loci, self.encoder, batch_size=self.batch_size,
            batches_per_epoch=self.batches_per_epoch, seed=self.spec.seed,
            prefetch=self.prefetch,
        )  # fmt: skip
        val = None
        if valid is not None and valid.sizes["cell_type"] and valid.sizes["locus"]:
            vcts, vloci = selection_index(self.cube, valid)
            vstream = BalancedBatches(reader, vcts, vloci, self.encoder, seed=self.spec.seed)
            if all(vstream.sampler.counts):
                val = vstream.balanced(self.valid_size, key=(2,))
                val_x = [x.copy() for x in self.encoder.encode(val)]
                val_y = self._targets(val)
        self.history_: list[dict[str, float]] = []
        best, best_weights, stale = np.inf, None, 0
        self.best_epoch_, self.stopped_early_ = 0, False
        t_ready = time.perf_counter()
        for epoch in stream.epochs(self.max_epochs):
            i = len(self.history_)
            y_all = self._targets(epoch.data)
            te = time.perf_counter()
            # Time blocked on the data (the first epoch's draw, or a prefetch that lagged).
            wait = te - t_ready
            losses = []
            for b in range(epoch.n_batches):
                rows = epoch.rows(b)
                xs = self.encoder.encode(epoch.data, rows)
                out = self.model_.train_on_batch(_one(xs), y_all[rows])
                losses.append(out)
            # train_on_batch returns a loss per call; reading them once keeps TF async.
            loss = float(np.mean([float(np.asarray(v).ravel()[0]) for v in losses]))
            row = {
                "epoch": i,
                "loss": loss,
                "seconds": time.perf_counter() - te,
                "wait_seconds": wait,
            }
            if val is not None:
                tv = time.perf_counter()
                row["val_loss"] = self._loss(val_y, self._predict_rows(val_x))
                row["valid_seconds"] = time.perf_counter() - tv
            self.history_.append(row)
            t_ready = time.perf_counter()
            if self.verbose:
                print(f"{self.name}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()))
            if val is None:
                continue
            if row["val_loss"] < best:
                best, best_weights, stale = row["val_loss"], self.model_.get_weights(), 0
                self.best_epoch_ = i
            else:
                stale += 1
                if stale >= self.patience:
                    self.stopped_early_ = True
                    break
        if best_weights is not None:
            self.model_.set_weights(best_weights)
        self.epochs_run_ = len(self.history_)
        self.train_seconds_ = time.perf_counter() - t0
        return self

    # ----------------------------------------------------------------------------------------
    def predict(self, test: xr.Dataset) -> xr.DataArray:
        """Scores of every (cell type, locus) pair of ``test``, streamed a chunk at a time.

        Returns
        -------
        xarray.DataArray
            float32, dims ``(cell_type, locus)`` with the test selection's coordinates.
            Probabilities, or for the residual target ``residual + average activity`` (the
            score scale, within [-1, 2]; NaN where no average-activity cell type has a label).
        """
        if not hasattr(self, "model_"):
            raise RuntimeError("fit the model before predict")
        return predict_selection(
            self,
            test,
            lambda prep: self._predict_rows(self.encoder.encode(prep)),
            seq_len=self.seq_len,
        )
