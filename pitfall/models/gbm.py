"""Gradient-boosted trees (XGBoost) over the same inputs as the networks.

Trees see the inputs flattened -- one-hot sequence ``(L * 4)`` and/or the signal row, or the
random control -- on a balanced sample of the training selection drawn by the same sampler
as the networks' batches. Complexity is trees x leaves, counted in the fitted booster.

XGBoost is imported when a model is fitted, so ``import pitfall.models`` works without the
``gbm`` extra.
"""

from __future__ import annotations

import functools
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
from pitfall.models.spec import ModelSpec


def _xgb() -> Any:
    try:
        import xgboost
    except ImportError as err:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "gradient-boosted trees need XGBoost: pip install 'pitfall[gbm]'"
        ) from err
    return xgboost


@functools.cache
def default_device() -> str:
    """``"cuda"`` when this XGBoost build has CUDA and an NVIDIA device exists, else ``"cpu"``.

    Checked without touching the GPU (build flags and device files), so it costs nothing on
    the CPU-only machines that run most sweeps.
    """
    xgb = _xgb()
    try:
        has_cuda = bool(xgb.build_info().get("USE_CUDA"))
    except Exception:  # an exotic build without build_info: assume CPU
        has_cuda = False
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    has_device = os.path.exists("/dev/nvidia0") and visible not in ("", "-1")
    return "cuda" if has_cuda and has_device else "cpu"


def count_leaves(booster: Any) -> int:
    """Total leaves over the booster's trees (from its text dump)."""
    return sum(tree.count("leaf=") for tree in booster.get_dump())


class GBMModel:
    """XGBoost classifier with the models' interface ``fit`` / ``predict``.

    Parameters
    ----------
    spec
        An ``xgboost`` :class:`~pitfall.models.spec.ModelSpec` (``n_trees``, ``max_depth``,
        ``inputs``, ``permuted``, ``target``, ``seed``).
    cube
        The whole cube (``open_cube``).
    sample_size
        Balanced training pairs (half positive); the paper's networks see 12,800 per epoch.
    valid_size
        Balanced validation pairs, evaluated after fitting (``valid_loss_``) and used for
        early stopping when ``early_stopping_rounds`` is set.
    early_stopping_rounds
        Stop adding trees when the validation log-loss has not improved for this many.
    learning_rate
        XGBoost's ``eta`` (its default, 0.3).
    device
        ``"cpu"``, ``"cuda"``, or None for :func:`default_device`.
    n_jobs
        Threads (None: XGBoost's default, every core).
    in_memory, cache_bytes
        As for :class:`~pitfall.models.nn.NeuralModel`.
    average_cell_types
        Residual target: as for :class:`~pitfall.models.nn.NeuralModel`.
    xgb_params
        Any further XGBoost parameters.

    Attributes
    ----------
    booster_ : xgboost.Booster
    n_leaves_ : int
        Leaves over all trees of the fitted booster.
    complexity_ : int
        Trees x leaves as the paper counts it: the actual total leaf count.
    n_params_ : int
        Same as ``complexity_`` (the column the sweep compares with networks).
    train_seconds_ : float
    """

    def __init__(
        self,
        spec: ModelSpec,
        cube: xr.Dataset,
        *,
        sample_size: int = 12_800,
        valid_size: int = 3_200,
        early_stopping_rounds: int | None = None,
        learning_rate: float = 0.3,
        device: str | None = None,
        n_jobs: int | None = None,
        in_memory: bool = False,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        average_cell_types: list[str] | None = None,
        xgb_params: dict[str, Any] | None = None,
    ) -> None:
        if spec.family != "xgboost":
            raise ValueError(f"GBMModel takes the xgboost family, not {spec.family!r}")
        self.spec = spec
        self.cube = cube
        self.sample_size = sample_size
        self.valid_size = valid_size
        self.early_stopping_rounds = early_stopping_rounds
        self.learning_rate = learning_rate
        self.device = device
        self.n_jobs = n_jobs
        self.in_memory = in_memory
        self.cache_bytes = cache_bytes
        self.average_cell_types = average_cell_types
        self.xgb_params = dict(xgb_params or {})
        self.encoder = inp.InputEncoder(
            spec.inputs, permuted=spec.permuted, seed=spec.seed, n_random=spec.n_random
        )
        self.name = spec.label

    def _reader(self) -> ChunkReader:
        if getattr(self, "reader_", None) is None:
            self.reader_ = (
                MemoryReader(self.cube, ["label", *self.encoder.needs])
                if self.in_memory
                else ChunkReader(self.cube, cache_bytes=self.cache_bytes)
            )
        return self.reader_

    def _params(self) -> dict[str, Any]:
        residual = self.spec.target == "residual"
        params = {
            "objective": "reg:squarederror" if residual else "binary:logistic",
            "eval_metric": "rmse" if residual else "logloss",
            "tree_method": "hist",
            "device": self.device or default_device(),
            "max_depth": self.spec.max_depth,
            "eta": self.learning_rate,
            "seed": self.spec.seed,
            "verbosity": 0,
        }
        if self.n_jobs is not None:
            params["nthread"] = self.n_jobs
        params.update(self.xgb_params)
        return params

    def _targets(self, data: dict[str, np.ndarray]) -> np.ndarray:
        if self.spec.target == "residual":
            return inp.residual(data["y"], data["locus"], self.avg_)
        return data["y"]

    def fit(self, train: xr.Dataset, valid: xr.Dataset | None = None) -> GBMModel:
        """Fit ``n_trees`` trees on a balanced sample of ``train`` (selections as for networks)."""
        xgb = _xgb()
        t0 = time.perf_counter()
        reader = self._reader()
        cts, loci = selection_index(self.cube, train)
        self.train_cell_types_ = [str(c) for c in train["cell_type"].values]
        if self.spec.target == "residual":
            self.avg_cell_types_ = list(self.average_cell_types or self.train_cell_types_)
            self.avg_ = inp.average_activity(self.cube, self.avg_cell_types_)
        stream = BalancedBatches(reader, cts, loci, self.encoder, seed=self.spec.seed)
        data = stream.balanced(self.sample_size, key=(3,))
        dtrain = xgb.DMatrix(self.encoder.flat(data), label=self._targets(data))
        evals, dvalid = [], None
        if valid is not None and valid.sizes["cell_type"] and valid.sizes["locus"]:
            vcts, vloci = selection_index(self.cube, valid)
            vstream = BalancedBatches(reader, vcts, vloci, self.encoder, seed=self.spec.seed)
            if all(vstream.sampler.counts):
                vdata = vstream.balanced(self.valid_size, key=(2,))
                dvalid = xgb.DMatrix(self.encoder.flat(vdata), label=self._targets(vdata))
                evals = [(dvalid, "valid")]
        record: dict[str, Any] = {}
        self.booster_ = xgb.train(
            self._params(),
            dtrain,
            num_boost_round=self.spec.n_trees,
            evals=evals,
            evals_result=record,
            early_stopping_rounds=self.early_stopping_rounds if evals else None,
            verbose_eval=False,
        )
        if self.early_stopping_rounds and evals:
            # Keep only the trees up to the best round, so the counted leaves are the used ones.
            best = int(self.booster_.best_iteration) + 1
            self.booster_ = self.booster_[:best]
        self.history_ = {k: {m: list(v) for m, v in d.items()} for k, d in record.items()}
        if evals:
            metric = next(iter(record["valid"]))
            self.valid_loss_ = float(
                record["valid"][metric][self.booster_.num_boosted_rounds() - 1]
            )
        self.n_trees_ = int(self.booster_.num_boosted_rounds())
        self.n_leaves_ = count_leaves(self.booster_)
        self.complexity_ = self.n_leaves_
        self.n_params_ = self.n_leaves_
        self.train_seconds_ = time.perf_counter() - t0
        return self

    def predict(self, test: xr.Dataset) -> xr.DataArray:
        """Scores of every pair of ``test``, dims ``(cell_type, locus)`` (as networks)."""
        xgb = _xgb()
        if not hasattr(self, "booster_"):
            raise RuntimeError("fit the model before predict")
        return predict_selection(
            self,
            test,
            lambda prep: self.booster_.predict(xgb.DMatrix(self.encoder.flat(prep))).astype(
                np.float32
            ),
            seq_len=self.cube.sizes.get("position", 0) if self.spec.uses_sequence else 0,
        )
