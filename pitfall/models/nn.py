"""Keras models of the paper's families, trained by ``model.fit`` over the loader's ``tf.data``.

The recipe (Schreiber et al. 2020): ReLU hidden layers, a sigmoid output, Adam with Keras's
defaults, binary cross-entropy, no regularisation; balanced mini-batches of 32, an epoch of
400 of them, at most 100 epochs, and early stopping once the loss on one fixed balanced
validation sample of 3,200 has not improved for 5 epochs, restoring the best weights
(Keras's ``EarlyStopping(monitor="val_loss", restore_best_weights=True)``, fed the sample's
loss by a callback after each epoch). Every number is a keyword of :class:`NeuralModel`.

A combined (sequence + epigenome) network is warm-started (``warm_start``): its epigenomic
branch is first trained alone by the same recipe (:func:`branch_models`), the network is set
to compute it (:func:`start_from_branch`), then trained whole; it keeps that start unless
training lowers the validation loss below it. Trained from scratch, its sequence branch
memorises the training loci within an epoch or two, long before the epigenomic branch has
learnt, and early stopping keeps a network worse than the epigenomic one alone. The
epigenomic branch is the default start because it carries the target cell type's own
activity and is cheap to train; ``warm_start="better"`` trains both branches alone and
starts from the one with the lower validation loss.

Batches come from :class:`pitfall.loaders.Loader` through a prefetching ``tf.data`` pipeline;
epoch ``e`` of ``fit`` is the loader's epoch ``e``, so a fixed seed gives the batches of the
earlier ``train_on_batch`` loop, batch for batch.

The four neural families register here (:mod:`pitfall.models.registry`). TensorFlow and
Keras are imported when a model is built, so ``import pitfall.models`` stays cheap and works
without the ``nn`` extra.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
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
    "BRANCHES",
    "MAX_STEPS_PER_EXECUTION",
    "NeuralModel",
    "WARM_STARTS",
    "branch_models",
    "build_model",
    "start_from_branch",
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
        and binary cross-entropy (mean squared error for the residual target). A combined
        model's concatenation of its branches is the layer ``branches``, the hidden layer
        after it ``joint`` (:func:`branch_models`).
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
        seq_in = keras.Input((seq_len, 4), name="sequence")
        sig_in = keras.Input((n_marks,), name="signal")
        x_in = [seq_in, sig_in]
        s = conv(seq_in, spec.filters) if spec.filters else layers.Flatten()(seq_in)
        s = dense(s, spec.seq_units)
        e = dense(with_average(sig_in), spec.units)
        x = layers.Dense(spec.joint_units, activation="relu", name="joint")(
            layers.Concatenate(name="branches")([s, e])
        )
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


#: The combined model's branches, in the order of its concatenation.
BRANCHES = ("sequence", "signal")
#: How a combined network may start (:class:`NeuralModel`'s ``warm_start``).
WARM_STARTS = ("signal", "sequence", "better", "none")
#: Shift that lets a single ReLU unit pass a logit through: ``relu(z + c) - c = z`` for
#: ``z > -c``; below, the probability is under ``sigmoid(-c)`` (about 5e-5) either way.
_PASS_SHIFT = 10.0


def branch_models(model: Any, spec: ModelSpec, *, steps_per_execution: int = 1) -> dict[str, Any]:
    """Each branch of a combined model alone, as a model of its own.

    Parameters
    ----------
    model
        A combined model from :func:`build_model`.
    spec
        Its spec.
    steps_per_execution
        As :func:`build_model`.

    Returns
    -------
    dict
        ``{"sequence": keras.Model, "signal": keras.Model}``: the branch's inputs (the
        ``signal`` branch also takes ``average`` when the spec has it), its layers (shared
        with ``model``: training a branch model trains the combined model's branch), then an
        output unit of its own; compiled as :func:`build_model` compiles.
    """
    keras = devices.keras()
    inputs = {t.name: t for t in model.inputs}
    names = {"sequence": ["sequence"], "signal": ["signal"] + (["average"] if spec.average else [])}
    residual = spec.target == "residual"
    out = {}
    for name, last in zip(BRANCHES, model.get_layer("branches").input, strict=True):
        head = keras.layers.Dense(
            1, activation="tanh" if residual else "sigmoid", name=f"{name}_output"
        )
        branch = keras.Model([inputs[n] for n in names[name]], head(last), name=name)
        branch.compile(
            optimizer=keras.optimizers.Adam(),
            loss="mean_squared_error" if residual else "binary_crossentropy",
            steps_per_execution=steps_per_execution,
        )
        out[name] = branch
    return out


def start_from_branch(model: Any, branch: Any, which: str) -> None:
    """Set a combined model's joint and output layers so that it computes ``branch``'s output.

    ``branch`` is one of :func:`branch_models` (already trained); its output unit's logit
    ``z = w . h + b`` (``h`` the branch's last hidden layer) is passed through the joint
    layer: with two or more joint units, ``relu(z) - relu(-z) = z`` on the first two; with
    one, ``relu(z + c) - c`` (:data:`_PASS_SHIFT`). The joint units' weights from the other
    branch start at zero; the remaining joint units keep their initial weights, with zero
    weight in the output, so that they learn from the first update without changing the
    start. The combined model then predicts exactly what ``branch`` predicts.
    """
    w, b = (np.asarray(a) for a in branch.get_layer(f"{which}_output").get_weights())
    joint, output = model.get_layer("joint"), model.get_layer("output")
    kernel, bias = (np.asarray(a).copy() for a in joint.get_weights())
    widths = [int(t.shape[-1]) for t in model.get_layer("branches").input]
    lo = sum(widths[: BRANCHES.index(which)])
    rows = np.zeros(kernel.shape[0], dtype=bool)
    rows[lo : lo + widths[BRANCHES.index(which)]] = True
    out_kernel = np.zeros((kernel.shape[1], 1), dtype=kernel.dtype)
    signs = (1.0, -1.0) if kernel.shape[1] >= 2 else (1.0,)
    for unit, sign in enumerate(signs):
        kernel[:, unit] = 0.0
        kernel[rows, unit] = sign * w[:, 0]
        bias[unit] = sign * b[0]
        out_kernel[unit, 0] = sign
    out_bias = np.zeros(1, dtype=kernel.dtype)
    if len(signs) == 1:
        bias[0] += _PASS_SHIFT
        out_bias[0] = -_PASS_SHIFT
    joint.set_weights([kernel, bias])
    output.set_weights([out_kernel, out_bias])


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


def _epoch_log(
    keras: Any,
    score: Callable[[dict[str, np.ndarray]], np.ndarray],
    valid: Batch | None,
    residual: bool,
    stage: str | None = None,
) -> Any:
    class EpochLog(keras.callbacks.Callback):
        """Per epoch: the training loss and time; the loss on the fixed validation sample,
        put in ``logs["val_loss"]`` for the callbacks after this one (early stopping).

        The validation runs here (one prediction of the sample, the loss in float64) rather
        than through ``validation_data``: Keras's evaluation loop adds a fixed cost to every
        epoch, which small models notice.
        """

        def on_train_begin(self, logs: dict | None = None) -> None:
            self.rows: list[dict[str, Any]] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.t_epoch = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            t_valid = time.perf_counter()
            row: dict[str, Any] = {} if stage is None else {"stage": stage}
            row |= {
                "epoch": epoch,
                "loss": float((logs or {}).get("loss", np.nan)),
                "seconds": t_valid - self.t_epoch,
            }
            if valid is not None:
                x, y = valid
                row["val_loss"] = validation_loss(y, score(x), residual=residual)
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
    warm_start
        How a combined network starts (other families ignore it): ``"signal"`` or
        ``"sequence"``, from that branch trained alone; ``"better"``, from the branch (both
        trained alone) with the lower validation loss; ``"none"``, from scratch. Needs a
        validation set (without one, every network starts from scratch).
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
        (training batches, including any time blocked on data) and ``valid_seconds``; for a
        warm-started combined network also ``stage`` (``sequence``, ``signal``: a branch
        alone; ``combined``), the stages one after the other.
    epochs_run_, best_epoch_ : int
        Epochs of every stage; the epoch whose weights were kept (of the last stage; -1:
        a combined network kept its start).
    start_ : str or None
        The branch a combined network started from (None: not warm-started).
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
        warm_start: str = "signal",
        verbose: bool = False,
        **common: Any,
    ) -> None:
        if not spec.is_neural:
            raise ValueError(f"NeuralModel takes neural families, not {spec.family!r}")
        if warm_start not in WARM_STARTS:
            raise ValueError(
                f"warm_start must be one of {', '.join(WARM_STARTS)}, got {warm_start!r}"
            )
        super().__init__(spec, cube, valid_size=valid_size, **common)
        self.batch_size = batch_size
        self.batches_per_epoch = batches_per_epoch
        self.max_epochs = max_epochs
        self.patience = patience
        self.steps_per_execution = steps_per_execution
        self.warm_start = warm_start
        self.verbose = verbose

    def resolve_device(self) -> str:
        return devices.tensorflow_device(self.device)

    def training_loader_options(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "batches_per_epoch": self.batches_per_epoch}

    def fit_loader(self, train: Loader, valid: Batch | None) -> None:
        keras = devices.keras()
        keras.utils.set_random_seed(self.spec.seed)
        spe = steps_per_execution(len(train), self.steps_per_execution)
        self.start_: str | None = None
        with devices.tensorflow_scope(self.device_):
            self.model_ = build_model(
                self.spec, n_marks=self.n_marks, seq_len=self.seq_len, steps_per_execution=spe
            )
            self.n_params_ = int(self.model_.count_params())
            rows: list[dict[str, Any]] = []
            warm = self.spec.family == "combined" and valid is not None
            warm = warm and self.warm_start != "none"
            if warm:
                assert valid is not None
                rows, start_loss = self._warm_start(train, valid, spe)
                start = self.model_.get_weights()
            stage_rows, stop = self._train(self.model_, train, valid, "combined" if warm else None)
            rows += stage_rows
            if warm and stop is not None and stop.best > start_loss:
                # Training from the start never beat it on the validation sample: keep it.
                self.model_.set_weights(start)
                self.best_epoch_ = -1
            else:
                self.best_epoch_ = int(stop.best_epoch) if stop is not None else 0
        self.history_ = rows
        if self.verbose:
            for row in self.history_:
                print(
                    f"{self.name}: "
                    + ", ".join(
                        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in row.items()
                    )
                )
        self.epochs_run_ = len(self.history_)
        self.stopped_early_ = bool(stop is not None and stop.stopped_epoch > 0)

    def _train(
        self,
        model: Any,
        train: Loader,
        valid: Batch | None,
        stage: str | None = None,
        inputs: Sequence[str] | None = None,
    ) -> tuple[list[dict[str, Any]], Any]:
        """Train ``model`` by the recipe (early stopping on the validation sample's loss,
        best weights restored); ``inputs``: the batch keys it takes (default all).

        Returns the per-epoch rows and the early-stopping callback (None without
        ``valid``)."""
        keras = devices.keras()
        keep = None if inputs is None else list(inputs)
        residual = self.spec.target == "residual"

        def score(x: dict[str, np.ndarray]) -> np.ndarray:
            return _score(model, x if keep is None else {k: x[k] for k in keep})

        log = _epoch_log(keras, score, valid, residual, stage)
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
        # One stream across epochs: fit's epoch e takes the loader's epoch e.
        with train:
            data = train.to_tf(epochs=None)
            if keep is not None:

                def only(x: dict[str, Any], y: Any) -> tuple[dict[str, Any], Any]:
                    return {k: x[k] for k in keep}, y

                data = data.map(only)
            model.fit(
                data,
                epochs=self.max_epochs,
                steps_per_epoch=len(train),
                callbacks=callbacks,
                shuffle=False,
                verbose=0,
            )
        return log.rows, stop

    def _warm_start(self, train: Loader, valid: Batch, spe: int) -> tuple[list[dict], float]:
        """Train the ``warm_start`` branch (or both) of the combined model alone by the
        recipe, then set the combined model to compute it (or the one whose validation loss
        is lower; :func:`start_from_branch`). Kept there unless training improves on it
        (:meth:`fit_loader`), the network is at least as good on the validation sample as
        that branch alone.

        Returns the branches' per-epoch rows and the start's validation loss.
        """
        rows: list[dict[str, Any]] = []
        branches = branch_models(self.model_, self.spec, steps_per_execution=spe)
        if self.warm_start != "better":
            branches = {self.warm_start: branches[self.warm_start]}
        residual = self.spec.target == "residual"
        x, y = valid
        losses = {}
        for name, branch in branches.items():
            keep = [t.name for t in branch.inputs]
            stage_rows, _ = self._train(branch, train, valid, name, keep)
            rows += stage_rows
            p = _score(branch, {k: x[k] for k in keep})
            losses[name] = validation_loss(y, p, residual=residual)
        best = min(losses, key=losses.__getitem__)
        start_from_branch(self.model_, branches[best], best)
        self.start_ = best
        return rows, validation_loss(y, _score(self.model_, x), residual=residual)

    def score(self, x: dict[str, np.ndarray]) -> np.ndarray:
        return _score(self.model_, x)


def _score(model: Any, x: dict[str, np.ndarray]) -> np.ndarray:
    """A Keras model's output for inputs ``x`` (arrays ``(n, ...)`` by input name): ``(n,)``
    float32, predicted in blocks of :data:`_PREDICT_ROWS`."""
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
        parts.append(np.asarray(model.predict_on_batch(block))[:rows])
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
