"""Gradient-boosted trees (XGBoost) over the same inputs as the networks.

Trees see the inputs flattened -- one-hot sequence ``(L * 4)`` and/or the signal row, or the
random control -- on one fixed balanced sample of the training selection drawn by the same
loader as the networks' batches (:meth:`pitfall.loaders.Loader.sample`). Complexity is
trees x leaves, counted in the fitted booster.

The ``xgboost`` family registers here (:mod:`pitfall.models.registry`). XGBoost is imported
when a model is fitted, so ``import pitfall.models`` works without the ``gbm`` extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from pitfall.loaders import Batch, Loader, flatten
from pitfall.models import devices
from pitfall.models.base import SAMPLE_KEY, TrainableModel
from pitfall.models.registry import FamilySpec, register_family
from pitfall.models.spec import INPUTS, ModelSpec, SpecError

__all__ = ["GBMModel", "count_leaves", "default_device"]


def default_device() -> str:
    """``"cuda"`` when this XGBoost build has CUDA and the driver reports a device, else
    ``"cpu"`` (:func:`pitfall.models.devices.xgboost_device`)."""
    return devices.xgboost_device("auto")


def count_leaves(booster: Any) -> int:
    """Total leaves over the booster's trees (from its text dump)."""
    return sum(tree.count("leaf=") for tree in booster.get_dump())


class GBMModel(TrainableModel):
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
    n_jobs
        Threads (None: XGBoost's default, every core).
    xgb_params
        Any further XGBoost parameters.
    **common
        ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``; None is ``"auto"``), ``in_memory``,
        ``cache_bytes``, ``store``, ``prefetch``, ``average_cell_types``: as
        :class:`~pitfall.models.base.TrainableModel`.

    Attributes
    ----------
    booster_ : xgboost.Booster
    n_leaves_ : int
        Leaves over all trees of the fitted booster.
    complexity_ : int
        Trees x leaves as the paper counts it: the actual total leaf count.
    n_params_ : int
        Same as ``complexity_`` (the column the sweep compares with networks).
    device_ : str
        ``"cpu"`` or ``"cuda"``.
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
        n_jobs: int | None = None,
        xgb_params: dict[str, Any] | None = None,
        **common: Any,
    ) -> None:
        if spec.family != "xgboost":
            raise ValueError(f"GBMModel takes the xgboost family, not {spec.family!r}")
        super().__init__(spec, cube, valid_size=valid_size, **common)
        self.sample_size = sample_size
        self.early_stopping_rounds = early_stopping_rounds
        self.learning_rate = learning_rate
        self.n_jobs = n_jobs
        self.xgb_params = dict(xgb_params or {})

    def resolve_device(self) -> str:
        return devices.xgboost_device(self.device)

    def _params(self) -> dict[str, Any]:
        residual = self.spec.target == "residual"
        params = {
            "objective": "reg:squarederror" if residual else "binary:logistic",
            "eval_metric": "rmse" if residual else "logloss",
            "tree_method": "hist",
            "device": self.device_,
            "max_depth": self.spec.max_depth,
            "eta": self.learning_rate,
            "seed": self.spec.seed,
            "verbosity": 0,
        }
        if self.n_jobs is not None:
            params["nthread"] = self.n_jobs
        params.update(self.xgb_params)
        return params

    def fit_loader(self, train: Loader, valid: Batch | None) -> None:
        xgb = devices.xgboost()
        x, y = train.sample(self.sample_size, key=SAMPLE_KEY)
        dtrain = xgb.DMatrix(flatten(x), label=y)
        evals = []
        if valid is not None:
            evals = [(xgb.DMatrix(flatten(valid[0]), label=valid[1]), "valid")]
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

    def score(self, x: dict[str, np.ndarray]) -> np.ndarray:
        xgb = devices.xgboost()
        return self.booster_.predict(xgb.DMatrix(flatten(x))).astype(np.float32)


# --------------------------------------------------------------------------------------------
# The xgboost family's rules


def _validate(spec: ModelSpec) -> None:
    if spec.n_trees < 1:
        raise SpecError(f"xgboost needs n_trees >= 1, got {spec.n_trees}")
    if not 1 <= spec.max_depth <= 20:
        raise SpecError(f"xgboost needs max_depth in 1..20, got {spec.max_depth}")
    neural = {
        "embed": spec.embed,
        "block_size": spec.block_size,
        "units": spec.units,
        "filters": spec.filters,
        "seq_units": spec.seq_units,
        "joint_units": spec.joint_units,
    }
    used = [k for k, v in neural.items() if v]
    if used:
        raise SpecError(f"xgboost takes no layer sizes, got {used}")


def _n_params(spec: ModelSpec, n_marks: int, seq_len: int, n_random: int) -> int:
    return spec.n_trees * 2**spec.max_depth


register_family(
    FamilySpec(
        "xgboost",
        GBMModel,
        inputs=INPUTS,
        validate=_validate,
        n_params=_n_params,
        describe=lambda s: f"xgb {s.n_trees} trees depth {s.max_depth}",
        label_inputs=True,
    ),
    replace=True,
)
