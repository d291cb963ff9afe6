"""Keras models of the paper's families, trained by ``model.fit`` over the loader's ``tf.data``.

The recipe (Schreiber et al. 2020): ReLU hidden layers, a sigmoid output, Adam with Keras's
defaults, binary cross-entropy, no regularisation; balanced mini-batches of 32, an epoch of
400 of them, at most 100 epochs, and early stopping once the loss on one fixed balanced
validation sample of 3,200 has not improved for 5 epochs, restoring the best weights
(Keras's ``EarlyStopping(monitor="val_loss", restore_best_weights=True)``, fed the sample's
loss by a callback after each epoch). Every number is a keyword of :class:`NeuralModel`.

Batches come from :class:`pitfall.loaders.Loader` through a prefetching ``tf.data`` pipeline;
epoch ``e`` of ``fit`` is the loader's epoch ``e``, so a fixed seed gives the batches of the
earlier ``train_on_batch`` loop, batch for batch.

The four neural families register here (:mod:`pitfall.models.registry`). TensorFlow and
Keras are imported when a model is built, so ``import pitfall.models`` stays cheap and works
without the ``nn`` extra.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import xarray as xr

from pitfall.loaders import Batch, Loader
from pitfall.models import devices
from pitfall.models.base import TrainableModel
from pitfall.models.registry import FamilySpec, register_family
from pitfall.models.spec import (
    KERNEL_SIZE,
    POOL_SIZE,
    ModelSpec,
    SpecError,
    check_stack,
    check_unused,
    conv_params,
    dense_params,
    need,
    stack_label,
)

__all__ = [
    "MAX_STEPS_PER_EXECUTION",
    "NeuralModel",
    "build_model",
    "steps_per_execution",
    "validation_loss",
]

#: Most mini-batches one call into TensorFlow runs (Keras's ``steps_per_execution``):
#: amortises the per-call overhead without changing a single update.
MAX_STEPS_PER_EXECUTION = 8
_PREDICT_ROWS = 512
_EPS = 1e-7  # Keras's clip of probabilities in binary cross-entropy


def build_model(
    spec: ModelSpec, *, n_marks: int = 0, seq_len: int = 0, steps_per_execution: int = 1
) -> Any:
    """Build and compile the Keras model of a spec (functional API).

    Parameters
    ----------
    spec
        A neural spec (not ``xgboost``).
    n_marks
        Width of the signal input (``(n_marks,)``).
    seq_len
        Length of the one-hot sequence input (``(seq_len, 4)``).
    steps_per_execution
        Mini-batches per call into TensorFlow (Keras ``compile``); each is still one update.

    Returns
    -------
    keras.Model
        Inputs named ``sequence``, ``signal`` (those the spec uses, in that order) or
        ``random``, then ``average`` ``(1,)`` when the spec has it: the keys of a loader's
        batches; one output unit, sigmoid (tanh for the residual target); compiled with Adam
        and binary cross-entropy (mean squared error for the residual target).
    """
    if not spec.is_neural:
        raise ValueError(f"build_model builds neural families, not {spec.family!r}")
    spec.n_params(n_marks, seq_len)  # raises a clear SpecError on impossible shapes
    keras = devices.keras()
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

    # The remedy input joins the first dense layer's input (of the stack, after the
    # convolutions, or of the epigenomic branch), as one more feature.
    avg_in = keras.Input((1,), name="average") if spec.average else None

    def with_average(x: Any) -> Any:
        return x if avg_in is None else layers.Concatenate()([x, avg_in])

    f = spec.family
    if f == "dense":
        width = n_marks if spec.inputs == "signal" else spec.n_random
        x_in = [keras.Input((width,), name=spec.inputs)]
        x = dense(with_average(x_in[0]), spec.units)
    elif f in ("seq_dense", "seq_conv"):
        x_in = [keras.Input((seq_len, 4), name="sequence")]
        x = layers.Flatten()(x_in[0]) if f == "seq_dense" else conv(x_in[0], spec.filters)
        x = dense(with_average(x), spec.units)
    else:
        x_in = [keras.Input((seq_len, 4), name="sequence"), keras.Input((n_marks,), name="signal")]
        s = conv(x_in[0], spec.filters) if spec.filters else layers.Flatten()(x_in[0])
        s = dense(s, spec.seq_units)
        e = dense(with_average(x_in[1]), spec.units)
        x = layers.Dense(spec.joint_units, activation="relu")(layers.Concatenate()([s, e]))
    if avg_in is not None:
        x_in.append(avg_in)
    residual = spec.target == "residual"
    out = layers.Dense(1, activation="tanh" if residual else "sigmoid", name="output")(x)
    model = keras.Model(x_in, out, name=spec.family)
    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss="mean_squared_error" if residual else "binary_crossentropy",
        steps_per_execution=steps_per_execution,
    )
    return model


def steps_per_execution(batches_per_epoch: int, most: int = MAX_STEPS_PER_EXECUTION) -> int:
    """The largest divisor of ``batches_per_epoch`` up to ``most``: Keras runs whole
    executions, so a divisor keeps every epoch at exactly ``batches_per_epoch`` updates."""
    return max(d for d in range(1, max(1, most) + 1) if batches_per_epoch % d == 0)


def validation_loss(y: np.ndarray, p: np.ndarray, *, residual: bool = False) -> float:
    """The loss the model trains on, of predictions ``p`` against targets ``y`` (both ``(n,)``):
    binary cross-entropy with Keras's clip of probabilities, or the mean squared error of the
    residual target; computed in float64."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    if residual:
        return float(np.mean((p - y) ** 2))
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _epoch_log(keras: Any, model: NeuralModel, valid: Batch | None) -> Any:
    class EpochLog(keras.callbacks.Callback):
        """Per epoch: the training loss and time; the loss on the fixed validation sample,
        put in ``logs["val_loss"]`` for the callbacks after this one (early stopping).

        The validation runs here (one prediction of the sample, the loss in float64) rather
        than through ``validation_data``: Keras's evaluation loop adds a fixed cost to every
        epoch, which small models notice.
        """

        def on_train_begin(self, logs: dict | None = None) -> None:
            self.rows: list[dict[str, float]] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.t_epoch = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            t_valid = time.perf_counter()
            row = {
                "epoch": epoch,
                "loss": float((logs or {}).get("loss", np.nan)),
                "seconds": t_valid - self.t_epoch,
            }
            if valid is not None:
                x, y = valid
                residual = model.spec.target == "residual"
                row["val_loss"] = validation_loss(y, model.score(x), residual=residual)
                row["valid_seconds"] = time.perf_counter() - t_valid
                if logs is not None:
                    logs["val_loss"] = row["val_loss"]
            self.rows.append(row)

    return EpochLog()


class NeuralModel(TrainableModel):
    """A Keras model of the paper, with the models' interface ``fit`` / ``predict``.

    Parameters
    ----------
    spec
        A neural :class:`~pitfall.models.spec.ModelSpec`.
    cube
        The whole cube (``open_cube``).
    batch_size, batches_per_epoch, max_epochs, patience, valid_size
        The training recipe (paper: 32, 400, 100, 5, 3,200).
    steps_per_execution
        Most mini-batches per call into TensorFlow (the largest divisor of
        ``batches_per_epoch`` up to it is used; 1: one call per batch).
    verbose
        Print one line per epoch.
    **common
        ``device``, ``in_memory``, ``cache_bytes``, ``store``, ``prefetch``,
        ``average_cell_types``: as :class:`~pitfall.models.base.TrainableModel`.

    Attributes
    ----------
    model_ : keras.Model
    history_ : list of dict
        Per epoch: ``epoch``, ``loss`` (mean training loss), ``val_loss``, ``seconds``
        (training batches, including any time blocked on data) and ``valid_seconds``.
    epochs_run_, best_epoch_ : int
    stopped_early_ : bool
    train_seconds_ : float
        Wall time of the whole fit (build, sampling, training, validation).
    n_params_ : int
        Trainable parameters (``model_.count_params()``).
    device_ : str
        ``"cpu"`` or ``"cuda"``.
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
        steps_per_execution: int = MAX_STEPS_PER_EXECUTION,
        verbose: bool = False,
        **common: Any,
    ) -> None:
        if not spec.is_neural:
            raise ValueError(f"NeuralModel takes neural families, not {spec.family!r}")
        super().__init__(spec, cube, valid_size=valid_size, **common)
        self.batch_size = batch_size
        self.batches_per_epoch = batches_per_epoch
        self.max_epochs = max_epochs
        self.patience = patience
        self.steps_per_execution = steps_per_execution
        self.verbose = verbose

    def resolve_device(self) -> str:
        return devices.tensorflow_device(self.device)

    def training_loader_options(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "batches_per_epoch": self.batches_per_epoch}

    def fit_loader(self, train: Loader, valid: Batch | None) -> None:
        keras = devices.keras()
        keras.utils.set_random_seed(self.spec.seed)
        spe = steps_per_execution(len(train), self.steps_per_execution)
        log = _epoch_log(keras, self, valid)
        callbacks = [log]  # first: it puts val_loss in the logs the others read
        stop = None
        if valid is not None:
            stop = keras.callbacks.EarlyStopping(
                monitor="val_loss",
                mode="min",
                patience=self.patience,
                restore_best_weights=True,
            )
            callbacks.append(stop)
        with devices.tensorflow_scope(self.device_):
            self.model_ = build_model(
                self.spec, n_marks=self.n_marks, seq_len=self.seq_len, steps_per_execution=spe
            )
            self.n_params_ = int(self.model_.count_params())
            # One stream across epochs: fit's epoch e takes the loader's epoch e.
            with train:
                self.model_.fit(
                    train.to_tf(epochs=None),
                    epochs=self.max_epochs,
                    steps_per_epoch=len(train),
                    callbacks=callbacks,
                    shuffle=False,
                    verbose=0,
                )
        self.history_ = log.rows
        if self.verbose:
            for row in self.history_:
                print(f"{self.name}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()))
        self.epochs_run_ = len(self.history_)
        self.best_epoch_ = int(stop.best_epoch) if stop is not None else 0
        self.stopped_early_ = bool(stop is not None and stop.stopped_epoch > 0)

    def score(self, x: dict[str, np.ndarray]) -> np.ndarray:
        n = len(next(iter(x.values())))
        parts = []
        for i in range(0, n, _PREDICT_ROWS):
            block = {k: v[i : i + _PREDICT_ROWS] for k, v in x.items()}
            rows = len(next(iter(block.values())))
            if rows < _PREDICT_ROWS:
                # One input shape for every call: a short last block would make TensorFlow
                # trace the predict function again for each new size.
                pad = _PREDICT_ROWS - rows
                block = {
                    k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)])
                    for k, v in block.items()
                }
            parts.append(np.asarray(self.model_.predict_on_batch(block))[:rows])
        return np.concatenate(parts).reshape(-1).astype(np.float32)


# --------------------------------------------------------------------------------------------
# The neural families' rules

_DENSE_RANGE = {"dense": (1, 5, 2**12), "seq_dense": (1, 3, 2**10)}
_MAX_FILTERS = 256
_MAX_CONV_DENSE = 1024


def _validate(spec: ModelSpec) -> None:
    f = spec.family
    if spec.n_trees or spec.max_depth:
        raise SpecError(f"n_trees and max_depth are for xgboost, not {f!r}")
    check_unused(f, embed=spec.embed, block_size=spec.block_size)
    if f in _DENSE_RANGE:
        lo, hi, max_units = _DENSE_RANGE[f]
        check_stack("units", spec.units, lo, hi, max_units)
        check_unused(
            f, filters=spec.filters, seq_units=spec.seq_units, joint_units=spec.joint_units
        )
    elif f == "seq_conv":
        check_stack("filters", spec.filters, 1, 3, _MAX_FILTERS)
        check_stack("units", spec.units, 1, 1, _MAX_CONV_DENSE)
        check_unused(f, seq_units=spec.seq_units, joint_units=spec.joint_units)
    else:  # combined
        check_stack("units", spec.units, 1, 5, 2**12)
        if spec.filters:
            check_stack("filters", spec.filters, 1, 3, _MAX_FILTERS)
            check_stack("seq_units", spec.seq_units, 1, 1, _MAX_CONV_DENSE)
        else:
            check_stack("seq_units", spec.seq_units, 1, 3, 2**10)
        if not 1 <= spec.joint_units <= 2**12:
            raise SpecError(f"combined needs joint_units in 1..4096, got {spec.joint_units}")


def _n_params(spec: ModelSpec, n_marks: int, seq_len: int, n_random: int) -> int:
    f = spec.family
    extra = 1 if spec.average else 0  # the remedy input: one more feature of a first layer
    if f == "dense":
        width = n_marks if spec.inputs == "signal" else n_random
        need(width, "n_marks" if spec.inputs == "signal" else "n_random")
        total, last = dense_params(width + extra, spec.units)
    elif f == "seq_dense":
        need(seq_len, "seq_len")
        total, last = dense_params(4 * seq_len + extra, spec.units)
    elif f == "seq_conv":
        total, last = conv_params(seq_len, spec.filters, spec.units, extra)
    else:
        need(n_marks, "n_marks")
        if spec.filters:
            seq_total, seq_last = conv_params(seq_len, spec.filters, spec.seq_units)
        else:
            need(seq_len, "seq_len")
            seq_total, seq_last = dense_params(4 * seq_len, spec.seq_units)
        epi_total, epi_last = dense_params(n_marks + extra, spec.units)
        total = seq_total + epi_total + (seq_last + epi_last + 1) * spec.joint_units
        last = spec.joint_units
    return total + last + 1  # the output unit


def _describe(spec: ModelSpec) -> str:
    f = spec.family
    if f == "dense":
        return f"dense {stack_label(spec.units)}"
    if f == "seq_dense":
        return f"seq dense {stack_label(spec.units)}"
    if f == "seq_conv":
        return f"conv {stack_label(spec.filters)} / dense {stack_label(spec.units)}"
    seq = (
        f"conv {stack_label(spec.filters)} / dense {stack_label(spec.seq_units)}"
        if spec.filters
        else f"dense {stack_label(spec.seq_units)}"
    )
    return f"seq[{seq}] + epi[dense {stack_label(spec.units)}] / dense {spec.joint_units}"


for _name, _inputs in (
    ("dense", ("signal", "random")),
    ("seq_dense", ("sequence",)),
    ("seq_conv", ("sequence",)),
    ("combined", ("both",)),
):
    register_family(
        FamilySpec(
            _name,
            NeuralModel,
            inputs=_inputs,
            validate=_validate,
            n_params=_n_params,
            describe=_describe,
            neural=True,
        ),
        replace=True,
    )
