"""Model families as a registry: a family is one module plus one :func:`register_family`.

A :class:`FamilySpec` says everything the rest of the project needs to know about a family:
which class trains it, which inputs it takes, how to check a spec's layer sizes, how to count
its parameters without building it, and how to name it. :class:`~pitfall.models.spec.ModelSpec`
validates, counts and labels through it; :func:`pitfall.models.make_model` and the sweep
build models through it. The paper's families register themselves in
:mod:`pitfall.models.nn` (``dense``, ``seq_dense``, ``seq_conv``, ``combined``) and
:mod:`pitfall.models.gbm` (``xgboost``), which :mod:`pitfall.models` imports.

Adding a family::

    # pitfall/models/mine.py
    from pitfall.models.base import TrainableModel
    from pitfall.models.registry import FamilySpec, register_family

    class MyModel(TrainableModel):
        def fit_loader(self, train, valid): ...   # train: a pitfall.loaders.Loader
        def score(self, x): ...                   # x: dict of input arrays -> (n,) scores

    register_family(FamilySpec("mine", MyModel, inputs=("signal",), validate=...,
                               n_params=..., describe=lambda spec: f"mine {spec.units}"))

and one import of the module in :mod:`pitfall.models`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pitfall.registry import Registry, RegistryError

if TYPE_CHECKING:
    from pitfall.models.spec import ModelSpec

__all__ = ["FAMILIES", "INPUT_TYPES", "FamilySpec", "get_family", "register_family"]


def _no_check(spec: ModelSpec) -> None:
    return None


@dataclass(frozen=True)
class FamilySpec:
    """One model family.

    Attributes
    ----------
    name
        The ``family`` of its specs.
    model
        The class that trains it, called ``model(spec, cube, **training)``; a
        :class:`~pitfall.models.base.TrainableModel` (so a
        :class:`~pitfall.predictor.Predictor`).
    inputs
        The inputs it takes (of ``signal``, ``sequence``, ``both``, ``random``); the first is
        a spec's default.
    validate
        ``validate(spec)`` raises :class:`~pitfall.models.spec.SpecError` naming the first
        field outside the family's ranges (called after the checks common to all families).
    n_params
        ``n_params(spec, n_marks, seq_len, n_random) -> int``: trainable parameters (or the
        family's complexity) computed without building the model.
    describe
        ``describe(spec) -> str``: a short label, e.g. ``"conv 2x64 / dense 128"``.
    neural
        True for Keras networks.
    label_inputs
        Tag the label with the inputs (for families that take several, e.g. trees).
    """

    name: str
    model: type
    inputs: tuple[str, ...]
    validate: Callable[[ModelSpec], None] = _no_check
    n_params: Callable[[ModelSpec, int, int, int], int] | None = None
    describe: Callable[[ModelSpec], str] | None = None
    neural: bool = False
    label_inputs: bool = False

    def training_keywords(self) -> set[str]:
        """Keywords the family's class takes (what a sweep's ``[training]`` table may give)."""
        import inspect

        names: set[str] = set()
        for klass in self.model.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            params = inspect.signature(init).parameters.values()
            names |= {p.name for p in params if p.kind is p.KEYWORD_ONLY}
        return names


#: The input types a family may take.
INPUT_TYPES = ("signal", "sequence", "both", "random")


def _check_family(family: FamilySpec) -> None:
    if not family.inputs or any(i not in INPUT_TYPES for i in family.inputs):
        raise RegistryError(
            f"family {family.name!r}: inputs must be some of {INPUT_TYPES}, got {family.inputs}"
        )


#: Registered families, by name (iterates over the names).
FAMILIES: Registry[FamilySpec] = Registry("model family", check=_check_family)


def register_family(family: FamilySpec, *, replace: bool = False) -> FamilySpec:
    """Register a family; return it.

    Raises
    ------
    pitfall.registry.RegistryError
        Its name is taken (unless ``replace``), or its ``inputs`` are empty or unknown.
    """
    return FAMILIES.register(family, replace=replace)


def get_family(name: str) -> FamilySpec:
    """The registered family ``name``.

    Raises
    ------
    pitfall.registry.RegistryError
        A :class:`KeyError` naming the closest and the known families.
    """
    return FAMILIES.get(name)


def describe(spec: Any) -> str:
    """``spec``'s family's label of it (the family name when it gives none)."""
    family = get_family(spec.family)
    return family.describe(spec) if family.describe else spec.family
