"""Models of the paper's families (Keras networks, XGBoost) with the baselines' interface.

``make_model(spec, cube, **training)`` returns a :class:`~pitfall.models.base.TrainableModel`
-- ``fit(train, valid) -> self`` and ``predict(test) -> DataArray (cell_type, locus)``, a
:class:`~pitfall.predictor.Predictor` like :mod:`pitfall.baselines` -- of the family the
spec names, looked up in the registry (:data:`FAMILIES`, :func:`register_family`).

TensorFlow, Keras and XGBoost are imported only when a model is built or fitted, so this
package imports cheaply and without the ``nn`` / ``gbm`` extras.
"""

from __future__ import annotations

from typing import Any

import xarray as xr

from pitfall.models.registry import FAMILIES, FamilySpec, get_family, register_family
from pitfall.models.spec import INPUTS, ModelSpec, SpecError

# isort: off
# The paper's families register themselves on import: networks, then trees.
from pitfall.models import nn  # noqa: F401
from pitfall.models import gbm  # noqa: F401
from pitfall.models import impute  # noqa: F401
from pitfall.models.base import TrainableModel

# isort: on

__all__ = [
    "FAMILIES",
    "INPUTS",
    "FamilySpec",
    "ModelSpec",
    "SpecError",
    "TrainableModel",
    "get_family",
    "make_model",
    "register_family",
    "training_keywords",
]


def training_keywords(spec: ModelSpec | dict[str, Any], training: dict[str, Any]) -> dict[str, Any]:
    """The keywords of ``training`` that ``spec``'s family takes.

    One ``[training]`` table of a sweep serves every family: each model takes the keywords
    its class knows (``batches_per_epoch`` for networks, ``sample_size`` for XGBoost).
    """
    family = spec["family"] if isinstance(spec, dict) else spec.family
    known = get_family(family).training_keywords()
    return {k: v for k, v in training.items() if k in known}


def make_model(spec: ModelSpec | dict[str, Any], cube: xr.Dataset, **training: Any) -> Any:
    """A model for ``spec`` on ``cube``, ready to ``fit(train, valid)``.

    Parameters
    ----------
    spec
        A :class:`ModelSpec` or its ``to_dict()``.
    cube
        The whole cube (``open_cube``).
    **training
        Keywords of the family's class: :class:`~pitfall.models.nn.NeuralModel`
        (batch_size, batches_per_epoch, max_epochs, patience, valid_size, ...),
        :class:`~pitfall.models.gbm.GBMModel` (sample_size, n_jobs, ...), and those all take
        (device, in_memory, cache_bytes, store, prefetch, average_cell_types).
    """
    if isinstance(spec, dict):
        spec = ModelSpec.from_dict(spec)
    return get_family(spec.family).model(spec, cube, **training)
