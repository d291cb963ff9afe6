"""Models of the paper's families (Keras networks, XGBoost) with the baselines' interface.

``make_model(spec, cube, **training)`` returns an object with ``fit(train, valid) -> self``
and ``predict(test) -> DataArray (cell_type, locus)``, like :mod:`pitfall.baselines`.

TensorFlow, Keras and XGBoost are imported only when a model is built or fitted, so this
package imports cheaply and without the ``nn`` / ``gbm`` extras.
"""

from __future__ import annotations

from typing import Any

import xarray as xr

from pitfall.models.spec import FAMILIES, INPUTS, ModelSpec, SpecError

__all__ = ["FAMILIES", "INPUTS", "ModelSpec", "SpecError", "make_model"]


def make_model(spec: ModelSpec | dict[str, Any], cube: xr.Dataset, **training: Any) -> Any:
    """A model for ``spec`` on ``cube``, ready to ``fit(train, valid)``.

    Parameters
    ----------
    spec
        A :class:`ModelSpec` or its ``to_dict()``.
    cube
        The whole cube (``open_cube``).
    **training
        Keywords of :class:`~pitfall.models.nn.NeuralModel` (batch_size, batches_per_epoch,
        max_epochs, patience, valid_size, in_memory, ...) or of
        :class:`~pitfall.models.gbm.GBMModel` (sample_size, device, ...).
    """
    if isinstance(spec, dict):
        spec = ModelSpec.from_dict(spec)
    if spec.family == "xgboost":
        from pitfall.models.gbm import GBMModel

        return GBMModel(spec, cube, **training)
    from pitfall.models.nn import NeuralModel

    return NeuralModel(spec, cube, **training)
