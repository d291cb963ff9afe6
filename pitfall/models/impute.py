"""Imputation families: predict one (cell type, mark) track, trained with a squared error.

Three families register here (:mod:`pitfall.models.registry`), each fitted on an
:class:`~pitfall.imputation.ImputationSplit` of an in-memory cube
(:func:`pitfall.imputation.signal_array`):

================== ==========================================================================
family             model
================== ==========================================================================
``impute_dense``   the paper's dense network (``units``, ReLU, one linear output, MSE): the
                   cell type's *other* marks at a locus (0 where an experiment is missing)
                   -> its target mark (cell-type-specific inputs); ``inputs="random"``: the
                   locus-constant random vector instead (only the locus's identity)
``avocado``        a factorization in the style of Avocado (Schreiber et al. 2020, Genome
                   Biology): embeddings of the cell type, the mark, the locus and the block
                   of ``block_size`` loci (the position at two resolutions), widths
                   ``embed = (cell type, mark, locus, block)``, concatenated -> dense
                   ``units`` (ReLU) -> one linear output, MSE; trained on every observed
                   (cell type, mark, locus) value the split allows
``impute_xgboost`` XGBoost regression (``reg:squarederror``) on the inputs of
                   ``impute_dense``
================== ==========================================================================

What each family trains on (:meth:`pitfall.imputation.ImputationSplit.train_mask`):

- ``impute_dense`` and ``impute_xgboost`` learn the map other marks -> target mark from the
  other cell types that have the target mark: rows (cell type, locus) at the training loci.
  Across cell types that is every locus (the test loci included, under other cell types);
  in the hybrid setting no test locus is ever a training row, so nothing about a test locus
  but the target cell type's own other marks reaches the model.
- ``avocado`` trains on every observed value but the target track. A position embedding
  exists only for positions trained on, so in the hybrid setting it also trains, at the
  test loci, on the other marks of every cell type (as Avocado learns the genomic factors
  of held-out positions from the experiments there) -- never on the target mark of any
  cell type at the test loci, so what it memorises of a test locus comes from other marks.
  Across cell types it reads the target mark of every other cell type at every locus, the
  memorisation of the locus's average activity the paper warns of.

Parameter counts are computable from the spec and the cube's shape before training
(:func:`n_params`), and equal Keras's ``count_params()`` for the networks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from pitfall.imputation import ImputationSplit, signal_array
from pitfall.loaders.encoding import random_inputs
from pitfall.loaders.tracks import TrackBatches
from pitfall.models import devices
from pitfall.models.gbm import count_leaves
from pitfall.models.registry import FamilySpec, register_family
from pitfall.models.spec import (
    ModelSpec,
    SpecError,
    check_stack,
    check_unused,
    dense_params,
    need,
    stack_label,
)

__all__ = ["FAMILIES_IMPUTATION", "ImputationModel", "build_imputation_model", "n_params"]

#: The imputation families, by name.
FAMILIES_IMPUTATION = ("impute_dense", "avocado", "impute_xgboost")
_MAX_EMBED = 2**12


def n_params(spec: ModelSpec, *, n_cell_types: int, n_marks: int, n_loci: int) -> int:
    """Trainable parameters of an imputation spec on a cube of that shape, unbuilt.

    Parameters
    ----------
    spec
        A spec of :data:`FAMILIES_IMPUTATION`.
    n_cell_types, n_marks, n_loci
        The cube's sizes; the dense families' input width is ``n_marks - 1`` (the target
        cell type's other marks; ``n_random`` for the random control).

    Returns
    -------
    int
        Weights plus biases (Keras's ``count_params()``); for ``impute_xgboost`` the largest
        possible leaf count ``n_trees * 2**max_depth``.
    """
    if spec.family == "impute_xgboost":
        return spec.n_trees * 2**spec.max_depth
    if spec.family == "impute_dense":
        width = n_marks - 1 if spec.inputs == "signal" else spec.n_random
        need(width, "n_marks - 1" if spec.inputs == "signal" else "n_random")
        total, last = dense_params(width, spec.units)
        return total + last + 1
    if spec.family == "avocado":
        d_ct, d_mark, d_locus, d_block = spec.embed
        n_blocks = -(-n_loci // spec.block_size)
        emb = n_cell_types * d_ct + n_marks * d_mark + n_loci * d_locus + n_blocks * d_block
        total, last = dense_params(d_ct + d_mark + d_locus + d_block, spec.units)
        return emb + total + last + 1
    raise SpecError(f"family {spec.family!r} is not an imputation family {FAMILIES_IMPUTATION}")


def _validate(spec: ModelSpec) -> None:
    f = spec.family
    if spec.average or spec.target != "label":
        raise SpecError(f"{f} predicts the track itself: no average input, no residual target")
    if f == "impute_xgboost":
        if not (1 <= spec.n_trees and 1 <= spec.max_depth):
            raise SpecError(f"{f} needs n_trees >= 1 and max_depth >= 1")
        check_unused(f, units=spec.units, embed=spec.embed, block_size=spec.block_size)
        return
    check_unused(f, filters=spec.filters, seq_units=spec.seq_units, joint_units=spec.joint_units)
    if spec.n_trees or spec.max_depth:
        raise SpecError(f"n_trees and max_depth are for xgboost, not {f!r}")
    if f == "impute_dense":
        check_stack("units", spec.units, 1, 5, 2**12)
        check_unused(f, embed=spec.embed, block_size=spec.block_size)
        return
    check_stack("units", spec.units, 1, 3, 2**12)
    if len(spec.embed) != 4 or not all(1 <= e <= _MAX_EMBED for e in spec.embed):
        raise SpecError(
            f"avocado needs embed = (cell type, mark, locus, block) widths in 1..{_MAX_EMBED}, "
            f"got {spec.embed}"
        )
    if spec.block_size < 2:
        raise SpecError(f"avocado needs block_size >= 2 loci, got {spec.block_size}")


def _describe(spec: ModelSpec) -> str:
    if spec.family == "impute_xgboost":
        return f"xgboost regression {spec.n_trees}x{spec.max_depth}"
    if spec.family == "impute_dense":
        return f"dense {stack_label(spec.units)}"
    d = "/".join(map(str, spec.embed))
    return f"avocado embed {d} (block {spec.block_size}) / dense {stack_label(spec.units)}"


def build_imputation_model(
    spec: ModelSpec, *, n_cell_types: int, n_marks: int, n_loci: int, learning_rate: float = 1e-3
) -> Any:
    """Build and compile the Keras model of a neural imputation spec.

    Returns
    -------
    keras.Model
        ``impute_dense``: input ``signal`` ``(n_marks - 1,)`` or ``random``
        ``(n_random,)``; ``avocado``: int inputs ``cell_type``, ``mark``, ``locus``,
        ``block``, each ``(1,)``. One linear output; Adam, mean squared error.
    """
    keras = devices.keras()
    layers = keras.layers
    if spec.family == "impute_dense":
        width = n_marks - 1 if spec.inputs == "signal" else spec.n_random
        ins = [keras.Input((width,), name=spec.inputs)]
        x = ins[0]
    elif spec.family == "avocado":
        n_blocks = -(-n_loci // spec.block_size)
        sizes = {"cell_type": n_cell_types, "mark": n_marks, "locus": n_loci, "block": n_blocks}
        ins, parts = [], []
        for (name, n), d in zip(sizes.items(), spec.embed, strict=True):
            i = keras.Input((1,), name=name, dtype="int32")
            ins.append(i)
            parts.append(layers.Flatten()(layers.Embedding(n, d, name=f"{name}_embedding")(i)))
        x = layers.Concatenate()(parts)
    else:
        raise ValueError(f"build_imputation_model builds networks, not {spec.family!r}")
    for u in spec.units:
        x = layers.Dense(u, activation="relu")(x)
    out = layers.Dense(1, name="output")(x)
    model = keras.Model(ins, out, name=spec.family)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mean_squared_error")
    return model


class ImputationModel:
    """A model of an imputation family, fitted on an imputation split of an in-memory cube.

    Parameters
    ----------
    spec
        A spec of :data:`FAMILIES_IMPUTATION`.
    cube
        The cube, with ``signal`` (cell_type, locus, mark) (read into memory once).
    epochs, batch_size, learning_rate
        The networks' training: passes over the training values, mini-batch, Adam's rate.
    eta, n_jobs
        XGBoost's learning rate and threads.
    stream
        Networks: train on batches read from the cube a block of loci at a time
        (:class:`pitfall.loaders.TrackBatches`), never holding the whole signal; otherwise
        on :meth:`training_data` in memory. XGBoost always trains in memory.

    Attributes
    ----------
    n_params_ : int
        Keras's ``count_params()``; for XGBoost the fitted leaf count.
    history_ : list of float
        Networks: the training loss per epoch.
    """

    def __init__(
        self,
        spec: ModelSpec,
        cube: xr.Dataset,
        *,
        epochs: int = 20,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        eta: float = 0.3,
        n_jobs: int | None = None,
        stream: bool = False,
    ) -> None:
        if spec.family not in FAMILIES_IMPUTATION:
            raise ValueError(f"ImputationModel takes {FAMILIES_IMPUTATION}, not {spec.family!r}")
        self.spec = spec
        self.cube = cube
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.eta = eta
        self.n_jobs = n_jobs
        self.stream = stream
        self.name = spec.label
        self._signal: np.ndarray | None = None
        self._parts: tuple[Any, ...] | None = None

    @property
    def signal(self) -> np.ndarray:
        """The cube's signal, float32 ``(cell_type, locus, mark)``, NaN where unobserved."""
        if self._signal is None:
            self._signal = signal_array(self.cube)
        return self._signal

    def _index(self, split: ImputationSplit) -> tuple[int, int]:
        cts = [str(c) for c in self.cube["cell_type"].values]
        marks = [str(m) for m in self.cube["mark"].values]
        return cts.index(split.cell_type), marks.index(split.mark)

    def _dense_x(
        self, split: ImputationSplit, sig: np.ndarray, cts: np.ndarray, loci: np.ndarray
    ) -> np.ndarray:
        """Rows (cell type, locus) in that order: other marks (NaN -> 0) or random inputs.

        ``sig``: the signal at ``loci`` (positions along ``locus``), ``(cell_type,
        len(loci), mark)``; ``cts``: rows of ``sig``.
        """
        if self.spec.inputs == "random":
            ids = np.asarray(self.cube["locus"].values)[loci]
            r = random_inputs(ids, self.spec.seed, self.spec.n_random)
            return np.tile(r, (cts.size, 1)).astype(np.float32)
        _, j = self._index(split)
        others = np.array([k for k in range(sig.shape[2]) if k != j])
        x = sig[np.ix_(cts, np.arange(loci.size), others)].reshape(-1, len(others))
        return np.nan_to_num(x, nan=0.0).astype(np.float32)

    def examples(
        self, split: ImputationSplit, sig: np.ndarray, loci: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The training examples at ``loci``: inputs by name, each ``(n, ...)``, and targets
        ``(n,)`` (defined targets only), from ``sig``, the cube's signal there
        ``(cell_type, len(loci), mark)``. Every locus at once gives :meth:`training_data`;
        :class:`pitfall.loaders.TrackBatches` reads them a block of loci at a time."""
        loci = np.asarray(loci, np.int64)
        _, j = self._index(split)
        experiments, train, rows = self._training_parts(split)
        if self.spec.family == "avocado":
            mask = split.mask_from(self.cube, experiments, train[loci], True) & np.isfinite(sig)
            c, pos, m = np.nonzero(mask)
            locus = loci[pos]
            x = {
                "cell_type": c.astype(np.int32),
                "mark": m.astype(np.int32),
                "locus": locus.astype(np.int32),
                "block": (locus // self.spec.block_size).astype(np.int32),
            }
            return x, sig[c, pos, m].astype(np.float32)
        at = np.flatnonzero(train[loci])
        y = sig[np.ix_(rows, at, np.array([j]))].reshape(-1)
        keep = np.isfinite(y)
        xd = self._dense_x(split, sig[:, at, :], rows, loci[at])[keep]
        return {self.spec.inputs: xd}, y[keep].astype(np.float32)

    def _training_parts(self, split: ImputationSplit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What :meth:`examples` reads of ``split`` at every block, computed once per split:
        the training experiments ``(cell_type, mark)``, the training loci as a mask
        ``(n_loci,)`` and the reference cell types' rows."""
        if self._parts is None or self._parts[0] != split:
            split.check(self.cube)
            cts = [str(c) for c in self.cube["cell_type"].values]
            rows = np.array([cts.index(c) for c in split.reference_cell_types(self.cube)])
            parts = (
                split.train_experiments(self.cube).values,
                split.train_locus_mask(self.cube),
                rows,
            )
            self._parts = (split, *parts)
        return self._parts[1], self._parts[2], self._parts[3]

    def training_data(self, split: ImputationSplit) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Exactly the arrays the model is fed in memory: :meth:`examples` at every locus."""
        return self.examples(split, self.signal, np.arange(self.cube.sizes["locus"]))

    def test_inputs(self, split: ImputationSplit) -> dict[str, np.ndarray]:
        """The inputs of the target track's test loci, by name, each ``(n_test, ...)``."""
        i, j = self._index(split)
        loci = split.test_loci(self.cube)
        if self.spec.family == "avocado":
            n = loci.size
            return {
                "cell_type": np.full(n, i, np.int32),
                "mark": np.full(n, j, np.int32),
                "locus": loci.astype(np.int32),
                "block": (loci // self.spec.block_size).astype(np.int32),
            }
        # the target cell type's signal at the test loci alone, not the whole cube's
        if self._signal is not None:
            sig = self._signal[i : i + 1, loci, :]
        else:
            sig = np.asarray(self.cube["signal"].isel(cell_type=[i], locus=loci).values)
        return {self.spec.inputs: self._dense_x(split, sig, np.array([0]), loci)}

    def fit(self, split: ImputationSplit) -> ImputationModel:
        """Train on the values ``split`` allows (never the target track)."""
        n_ct, n_loci, n_marks = (self.cube.sizes[d] for d in ("cell_type", "locus", "mark"))
        if self.spec.family == "impute_xgboost":
            x, y = self.training_data(split)
            xgb = devices.xgboost()
            params = {
                "objective": "reg:squarederror",
                "max_depth": self.spec.max_depth,
                "eta": self.eta,
                "seed": self.spec.seed,
            }
            if self.n_jobs is not None:
                params["nthread"] = self.n_jobs
            dtrain = xgb.DMatrix(x[self.spec.inputs], label=y)
            self.booster_ = xgb.train(params, dtrain, num_boost_round=self.spec.n_trees)
            self.n_params_ = count_leaves(self.booster_)
        else:
            keras = devices.keras()
            keras.utils.set_random_seed(self.spec.seed)
            self.model_ = build_imputation_model(
                self.spec,
                n_cell_types=n_ct,
                n_marks=n_marks,
                n_loci=n_loci,
                learning_rate=self.learning_rate,
            )
            self.n_params_ = int(self.model_.count_params())
            if self.stream:
                batches = TrackBatches(self, split, batch_size=self.batch_size, seed=self.spec.seed)
                hist = self.model_.fit(
                    batches.to_tf(self.epochs),
                    steps_per_epoch=len(batches),
                    epochs=self.epochs,
                    shuffle=False,
                    verbose=0,
                )
                losses = hist.history["loss"]
            else:
                x, y = self.training_data(split)
                hist = self.model_.fit(
                    x, y, batch_size=self.batch_size, epochs=self.epochs, shuffle=True, verbose=0
                )
                losses = hist.history["loss"]
            self.history_ = [float(v) for v in losses]
        self.fitted_ = True
        return self

    def score(self, x: dict[str, np.ndarray]) -> np.ndarray:
        """Predicted values of a block of inputs (as :meth:`test_inputs`), float32 ``(n,)``."""
        if self.spec.family == "impute_xgboost":
            xgb = devices.xgboost()
            p = self.booster_.predict(xgb.DMatrix(x[self.spec.inputs]))
        else:
            p = self.model_.predict(x, batch_size=4096, verbose=0)
        return np.asarray(p, np.float32).reshape(-1)

    def predict(self, split: ImputationSplit) -> xr.DataArray:
        """The imputed target track at the test loci: float32, dims ``(cell_type, locus)``
        (the one target cell type)."""
        if not getattr(self, "fitted_", False):
            raise RuntimeError("fit the model before predict")
        p = self.score(self.test_inputs(split))
        loci = split.test_loci(self.cube)
        return xr.DataArray(
            p[None, :],
            dims=("cell_type", "locus"),
            coords={"cell_type": [split.cell_type], "locus": self.cube["locus"].values[loci]},
            name="imputed",
            attrs={"model": self.name},
        )


for _name, _inputs, _neural in (
    ("impute_dense", ("signal", "random"), True),
    ("avocado", ("signal",), True),
    ("impute_xgboost", ("signal", "random"), False),
):
    register_family(
        FamilySpec(
            _name,
            ImputationModel,
            inputs=_inputs,
            validate=_validate,
            describe=_describe,
            neural=_neural,
            label_inputs=_name == "impute_xgboost",
        ),
        replace=True,
    )
