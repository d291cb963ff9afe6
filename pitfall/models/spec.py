"""Model specifications: the paper's model families as plain, validated data.

A :class:`ModelSpec` names a family, its layer sizes, its inputs and a seed; it builds nothing,
so a sweep can enumerate, filter, store and compare specs (e.g. by :meth:`ModelSpec.n_params`)
before paying for a single model. Families (Schreiber et al. 2020):

============= =====================================================================
family        architecture
============= =====================================================================
``dense``     epigenomic (or random-control) vector -> 1-5 dense layers of 2^0..2^12
``seq_dense`` one-hot sequence, flattened -> 1-3 dense layers of 2^0..2^10
``seq_conv``  one-hot sequence -> 1-3 x [conv (1-256 filters, kernel 8, stride 1), max
              pool (4, stride 4)] -> flatten -> one dense layer of 1-1024
``combined``  a sequence branch (``seq_units`` dense layers, after ``filters`` convs when
              given) and an epigenomic branch (``units``), their last hidden layers
              concatenated -> one dense layer of ``joint_units``
``xgboost``   gradient-boosted trees, ``n_trees`` trees of depth <= ``max_depth``
============= =====================================================================

The imputation families (a continuous target track, :mod:`pitfall.models.impute`):
``impute_dense``, ``avocado`` (embeddings ``embed`` of cell type, mark, locus and blocks of
``block_size`` loci, combined by ``units``) and ``impute_xgboost``.

Every hidden layer uses ReLU and the output is one sigmoid unit (``tanh`` for the residual
target, whose range is [-1, 1]); neither choice changes the parameter count.

The paper's two remedies are fields of any spec: ``average=True`` gives the model the locus's
average activity over the cell types it may see as one more input (it joins the input of
the first dense layer: of the stack, after the convolutions, or of the epigenomic branch),
and ``target="residual"`` trains it on the label minus that average.

The rules of each family (ranges, parameter count, label) live with the family, in the
registry (:mod:`pitfall.models.registry`); this module checks what all families share and
holds the helpers their rules use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from pitfall.models.registry import FAMILIES, get_family

__all__ = [
    "DEFAULT_N_RANDOM",
    "INPUTS",
    "KERNEL_SIZE",
    "ModelSpec",
    "POOL_SIZE",
    "SpecError",
    "TARGETS",
    "check_stack",
    "check_unused",
    "conv_output_length",
    "conv_params",
    "dense_params",
    "need",
    "stack_label",
]

INPUTS = ("signal", "sequence", "both", "random")
TARGETS = ("label", "residual")
KERNEL_SIZE = 8
POOL_SIZE = 4
DEFAULT_N_RANDOM = 100
_LATER_FIELDS = ("average", "embed", "block_size")


class SpecError(ValueError):
    """A model specification outside the paper's families or ranges."""


def _tuple(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int):
        return (int(value),)
    return tuple(int(v) for v in value)


@dataclass(frozen=True)
class ModelSpec:
    """One model of the paper's families, as plain data.

    Attributes
    ----------
    family
        A registered family (:data:`FAMILIES`, :mod:`pitfall.models.registry`).
    inputs
        ``"signal"`` (epigenomic marks), ``"sequence"`` (one-hot), ``"both"``, or ``"random"``
        (the control: Gaussian vectors constant per locus across cell types).
    units
        Hidden dense layers: of the ``dense`` / ``seq_dense`` stack, the one dense layer after
        the convolutions of ``seq_conv``, or the epigenomic branch of ``combined``.
    filters
        Convolution filters per conv layer (``seq_conv``; optional for ``combined``, whose
        sequence branch is then convolutional).
    seq_units
        ``combined`` only: the sequence branch's dense layers (1-3 without ``filters``,
        exactly 1 with them).
    joint_units
        ``combined`` only: the hidden layer after the concatenation.
    n_trees, max_depth
        ``xgboost`` only.
    permuted
        Permute each locus's sequence (the control that keeps the locus identifiable but
        destroys motif grammar); needs sequence inputs.
    n_random
        Width of the random control vector.
    target
        ``"label"`` (binary cross-entropy) or ``"residual"`` (label minus the locus's average
        activity over the cell types the model sees, mean squared error; predictions are
        turned back into scores).
    seed
        Seeds weights, batch sampling and the controls.
    average
        Give the model the locus's average activity over the cell types it sees (the
        remedy of Nair et al. 2019): one more input, ``average`` ``(1,)``, never counting
        the pair's own label (:class:`pitfall.loaders.LocusAverage`).
    embed
        ``avocado`` only: embedding widths ``(cell type, mark, locus, block)``.
    block_size
        ``avocado`` only: loci per block of the coarser position embedding.
    """

    family: str
    inputs: str = ""
    units: tuple[int, ...] = ()
    filters: tuple[int, ...] = ()
    seq_units: tuple[int, ...] = ()
    joint_units: int = 0
    n_trees: int = 0
    max_depth: int = 0
    permuted: bool = False
    n_random: int = DEFAULT_N_RANDOM
    target: str = "label"
    seed: int = 0
    average: bool = False
    embed: tuple[int, ...] = ()
    block_size: int = 0

    def __post_init__(self) -> None:
        for name in ("units", "filters", "seq_units", "embed"):
            object.__setattr__(self, name, _tuple(getattr(self, name)))
        if self.family not in FAMILIES:
            raise SpecError(f"family {self.family!r} is not one of {tuple(FAMILIES)}")
        if not self.inputs:
            # The one natural input of each family, so ModelSpec("seq_conv", ...) just works.
            object.__setattr__(self, "inputs", get_family(self.family).inputs[0])
        self.validate()

    # ------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`SpecError` naming the first field outside the family's ranges."""
        family = get_family(self.family)
        if self.inputs not in INPUTS:
            raise SpecError(f"inputs {self.inputs!r} is not one of {INPUTS}")
        if self.inputs not in family.inputs:
            raise SpecError(
                f"family {self.family!r} takes inputs {family.inputs}, not {self.inputs!r}"
            )
        if self.target not in TARGETS:
            raise SpecError(f"target {self.target!r} is not one of {TARGETS}")
        if self.permuted and self.inputs not in ("sequence", "both"):
            raise SpecError("permuted=True needs sequence inputs ('sequence' or 'both')")
        if self.n_random < 1:
            raise SpecError(f"n_random must be >= 1, got {self.n_random}")
        family.validate(self)

    # ------------------------------------------------------------------------------------
    @property
    def is_neural(self) -> bool:
        """True for the Keras families."""
        return get_family(self.family).neural

    @property
    def uses_sequence(self) -> bool:
        """True when the inputs include the one-hot sequence."""
        return self.inputs in ("sequence", "both")

    @property
    def uses_signal(self) -> bool:
        """True when the inputs include the epigenomic signal."""
        return self.inputs in ("signal", "both")

    @property
    def label(self) -> str:
        """A short description, e.g. ``"conv 2x64 / dense 128"``."""
        family = get_family(self.family)
        text = family.describe(self) if family.describe else self.family
        tags = []
        if family.label_inputs or self.inputs == "random":
            tags.append(self.inputs)
        if self.permuted:
            tags.append("permuted")
        if self.average:
            tags.append("+average")
        if self.target == "residual":
            tags.append("residual")
        return text + (f" ({', '.join(tags)})" if tags else "")

    # ------------------------------------------------------------------------------------
    def n_params(self, n_marks: int = 0, seq_len: int = 0, n_random: int | None = None) -> int:
        """Number of trainable parameters, computed without building the model.

        Parameters
        ----------
        n_marks
            Width of the epigenomic signal vector (marks).
        seq_len
            Sequence length in bp (the one-hot input is ``(seq_len, 4)``).
        n_random
            Width of the random control vector; default the spec's ``n_random``.

        Returns
        -------
        int
            Weights plus biases for the Keras families; for ``xgboost`` the largest possible
            leaf count, ``n_trees * 2**max_depth`` (a fitted model reports its actual count).
        """
        family = get_family(self.family)
        if family.n_params is None:
            raise SpecError(f"family {self.family!r} cannot count its parameters unbuilt")
        n_random = self.n_random if n_random is None else n_random
        return int(family.n_params(self, n_marks, seq_len, n_random))

    # ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists for the layer sizes), e.g. for a results table or JSON.

        Fields added after the first sweeps (``average``, ``embed``, ``block_size``)
        appear only when set, so the ids
        of earlier sweeps' experiments (a hash of this dict) stay the same.
        """
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        for name in _LATER_FIELDS:
            if not out[name]:
                del out[name]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SpecError(f"unknown ModelSpec fields {unknown}; known: {sorted(known)}")
        return cls(**d)


# --------------------------------------------------------------------------------------------
# Helpers of the families' rules


def check_stack(name: str, sizes: tuple[int, ...], lo: int, hi: int, max_size: int) -> None:
    """Raise :class:`SpecError` unless ``sizes`` has ``lo..hi`` layers of ``1..max_size``."""
    if not lo <= len(sizes) <= hi:
        n = f"{lo}" if lo == hi else f"{lo}-{hi}"
        raise SpecError(f"{name} needs {n} layer(s), got {len(sizes)}: {sizes}")
    bad = [s for s in sizes if not 1 <= s <= max_size]
    if bad:
        raise SpecError(f"{name} sizes must be in 1..{max_size}, got {bad}")


def check_unused(family: str, **values: Any) -> None:
    """Raise :class:`SpecError` naming the fields of ``values`` that are set."""
    used = [k for k, v in values.items() if v]
    if used:
        raise SpecError(f"family {family!r} does not use {used}")


def conv_output_length(seq_len: int, n_conv: int) -> int:
    """Length after ``n_conv`` x [conv (kernel 8, 'valid'), max pool (4, stride 4)]."""
    length = seq_len
    for _ in range(n_conv):
        length = (length - KERNEL_SIZE + 1) // POOL_SIZE
    return length


def need(value: int, name: str) -> None:
    """Raise :class:`SpecError` unless ``value >= 1`` (an input size ``n_params`` needs)."""
    if value < 1:
        raise SpecError(f"n_params needs {name} >= 1 for this spec, got {value}")


def dense_params(width: int, units: tuple[int, ...]) -> tuple[int, int]:
    """Parameters of a dense stack on a ``width`` input, and the stack's output width."""
    total = 0
    for u in units:
        total += (width + 1) * u
        width = u
    return total, width


def conv_params(
    seq_len: int, filters: tuple[int, ...], units: tuple[int, ...], extra: int = 0
) -> tuple[int, int]:
    """Parameters of [conv + pool] x ``filters`` -> flatten (and ``extra`` more features,
    e.g. the average input) -> dense ``units`` on a one-hot ``(seq_len, 4)`` input, and the
    output width."""
    length = conv_output_length(seq_len, len(filters))
    if length < 1:
        raise SpecError(
            f"a {seq_len} bp sequence is too short for {len(filters)} conv + pool layers "
            "(each divides the length by about 4)"
        )
    total, channels = 0, 4
    for f in filters:
        total += (KERNEL_SIZE * channels + 1) * f
        channels = f
    dense, last = dense_params(length * channels + extra, units)
    return total + dense, last


def stack_label(sizes: tuple[int, ...]) -> str:
    """``"2x64"`` for equal layers, else ``"64-32"``."""
    if len(set(sizes)) == 1 and len(sizes) > 1:
        return f"{len(sizes)}x{sizes[0]}"
    return "-".join(map(str, sizes))
