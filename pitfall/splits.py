"""Splits: which cell types and chromosomes train, validate and test, as xarray selections.

A :class:`Split` is plain data. The paper's presets (Schreiber et al. 2020, target H1 = E003):

=================== ============================== =========================== ===============
setting             train                          valid                       test
=================== ============================== =========================== ===============
cross-chromosome    target, chr3-22 (TAD: chr3)    target, chr2                target, chr1
cross-cell-type     others but valid, chr2-22      E113 E004 E037 E106         target, chr2-22
                    (TAD: chr2-3)                  (TAD: GM12878), same chroms (TAD: chr2-3)
hybrid              as cross-cell-type             as cross-cell-type          target, chr1
=================== ============================== =========================== ===============

*Leakage* is the fraction of test loci whose label the training data holds under another
cell type: 100% for cross-cell-type, 0% for hybrid and cross-chromosome.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from pitfall.loci import chrom_order

__all__ = [
    "ROLES",
    "SETTINGS",
    "Role",
    "Split",
    "SplitError",
    "chrom_names",
    "chrom_runs",
    "cube_chroms",
    "hybrid_grid",
    "locus_indexer",
    "locus_positions",
    "preset",
    "replacement_valid_cell_types",
    "take_loci",
]

log = logging.getLogger(__name__)

Role = Literal["train", "valid", "test"]
ROLES: tuple[Role, ...] = ("train", "valid", "test")
#: The paper's three settings, in the order tables and figures show them.
SETTINGS = ("cross-chromosome", "cross-cell-type", "hybrid")


class SplitError(ValueError):
    """A split that cannot be applied to a cube, or that breaks its own setting's rules."""


def chrom_names(n: Iterable[int | str]) -> tuple[str, ...]:
    """``[1, 2, "X"]`` -> ``("chr1", "chr2", "chrX")``."""
    return tuple(f"chr{c}" for c in n)


@dataclass(frozen=True)
class Split:
    """Cell types and chromosomes per role.

    Attributes
    ----------
    train_cell_types, valid_cell_types, test_cell_types
        Cell-type ids per role.
    train_chroms, valid_chroms, test_chroms
        Chromosome names per role.
    setting
        ``"cross-chromosome"``, ``"cross-cell-type"``, ``"hybrid"`` or ``"custom"``; a hybrid
        split that shares a cell type or a chromosome between train and test is refused.
    """

    train_cell_types: tuple[str, ...]
    train_chroms: tuple[str, ...]
    valid_cell_types: tuple[str, ...]
    valid_chroms: tuple[str, ...]
    test_cell_types: tuple[str, ...]
    test_chroms: tuple[str, ...]
    setting: str = "custom"
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for f in (
            "train_cell_types",
            "train_chroms",
            "valid_cell_types",
            "valid_chroms",
            "test_cell_types",
            "test_chroms",
        ):
            value = getattr(self, f)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, f, tuple(str(v) for v in value))
        if not self.train_cell_types or not self.test_cell_types:
            raise SplitError("a split needs training and test cell types")
        if not self.train_chroms or not self.test_chroms:
            raise SplitError("a split needs training and test chromosomes")
        shared_ct = sorted(set(self.train_cell_types) & set(self.test_cell_types))
        shared_chrom = sorted(set(self.train_chroms) & set(self.test_chroms))
        if self.setting == "hybrid" and (shared_ct or shared_chrom):
            raise SplitError(
                "a hybrid split tests on unseen cell types AND unseen chromosomes, but this one "
                f"shares cell types {shared_ct} and chromosomes {shared_chrom} between train "
                "and test"
            )
        if self.setting == "cross-cell-type" and shared_ct:
            raise SplitError(f"a cross-cell-type split shares cell types {shared_ct}")
        if self.setting == "cross-chromosome" and shared_chrom:
            raise SplitError(f"a cross-chromosome split shares chromosomes {shared_chrom}")
        if not self.name:
            object.__setattr__(self, "name", f"{self.setting}:{','.join(self.test_cell_types)}")

    # ----------------------------------------------------------------------------------------
    def cell_types(self, role: Role) -> tuple[str, ...]:
        """Cell types of one role."""
        return getattr(self, f"{role}_cell_types")

    def chroms(self, role: Role) -> tuple[str, ...]:
        """Chromosomes of one role."""
        return getattr(self, f"{role}_chroms")

    def loci(self, ds: xr.Dataset, role: Role) -> np.ndarray:
        """Integer positions along ``locus`` of the role's chromosomes, shape ``(n,)``."""
        return locus_positions(ds, self.chroms(role))

    def select(self, ds: xr.Dataset, role: Role) -> xr.Dataset:
        """The role's part of the cube: its cell types x the loci on its chromosomes (lazy)."""
        self.check(ds)
        cts = list(self.cell_types(role))
        sel = ds.sel(cell_type=cts) if cts else ds.isel(cell_type=slice(0, 0))
        return take_loci(sel, locus_indexer(ds, self.chroms(role)))

    def train(self, ds: xr.Dataset) -> xr.Dataset:
        """Training selection."""
        return self.select(ds, "train")

    def valid(self, ds: xr.Dataset) -> xr.Dataset:
        """Validation selection."""
        return self.select(ds, "valid")

    def test(self, ds: xr.Dataset) -> xr.Dataset:
        """Test selection."""
        return self.select(ds, "test")

    def check(self, ds: xr.Dataset) -> None:
        """Raise :class:`SplitError` naming cell types or chromosomes absent from the cube."""
        present = {str(c) for c in ds["cell_type"].values}
        wanted = {c for r in ROLES for c in self.cell_types(r)}
        missing = sorted(wanted - present)
        if missing:
            raise SplitError(
                f"split {self.name!r} names cell types {missing} that are not in the cube "
                f"(it has {len(present)}: {', '.join(sorted(present)[:10])}...)"
            )
        chroms = set(_chrom_index(ds))
        missing = sorted({c for r in ROLES for c in self.chroms(r)} - chroms)
        if missing:
            raise SplitError(f"split {self.name!r} names chromosomes {missing} not in the cube")

    def leakage(self, ds: xr.Dataset) -> float:
        """Fraction of test loci whose label training holds under another cell type.

        A test locus leaks when it lies on a training chromosome and some training cell type
        other than the test cell type has a (non-NaN) label there.
        """
        test_idx = self.loci(ds, "test")
        if test_idx.size == 0:
            return float("nan")
        in_train = np.isin(test_idx, self.loci(ds, "train"))
        others = [c for c in self.train_cell_types if c not in self.test_cell_types]
        if not others or not in_train.any():
            return 0.0
        seen = (
            ds["label"]
            .sel(cell_type=others)
            .isel(locus=test_idx[in_train])
            .notnull()
            .any("cell_type")
        )
        return float(np.asarray(seen).sum() / test_idx.size)

    def describe(self, ds: xr.Dataset) -> pd.DataFrame:
        """One row per role: cell types, chromosomes, loci, labelled positives; and leakage."""
        rows = []
        for role in ROLES:
            idx = self.loci(ds, role)
            cts = list(self.cell_types(role))
            lab = ds["label"].sel(cell_type=cts).isel(locus=idx) if cts else None
            n_pos = int(np.asarray((lab == 1).sum())) if lab is not None else 0
            n_lab = int(np.asarray(lab.notnull().sum())) if lab is not None else 0
            rows.append(
                {
                    "role": role,
                    "n_cell_types": len(cts),
                    "cell_types": ",".join(cts),
                    "chroms": _compact(self.chroms(role)),
                    "n_loci": idx.size,
                    "n_labels": n_lab,
                    "prevalence": n_pos / n_lab if n_lab else float("nan"),
                }
            )
        out = pd.DataFrame(rows).set_index("role")
        out.attrs["leakage"] = self.leakage(ds)
        out.attrs["setting"] = self.setting
        return out

    def _repr_html_(self) -> str:
        """A table of the roles for Jupyter: cell types and chromosomes per role."""
        import html

        rows = "".join(
            f"<tr><th>{role}</th><td>{html.escape(', '.join(self.cell_types(role)) or '-')}"
            f"</td><td>{html.escape(_compact(self.chroms(role)) or '-')}</td></tr>"
            for role in ROLES
        )
        title = html.escape(f"{self.setting} split" + (f" {self.name}" if self.name else ""))
        return (
            f"<table><caption>{title}</caption><tr><th>role</th><th>cell types</th>"
            f"<th>chromosomes</th></tr>{rows}</table>"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists of strings), e.g. for a results table or JSON."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Split:
        """Inverse of :meth:`to_dict`."""
        return cls(**d)


_CHROM_RUNS: dict[tuple[str, int], dict[str, list[tuple[int, int]]]] = {}


def _chrom_index(ds: xr.Dataset) -> dict[str, list[tuple[int, int]]]:
    """Each chromosome's loci as runs of positions ``[(start, stop), ...]``.

    Read one stored chunk of ``chrom`` at a time, so a 14-million-locus cube never holds
    all its chromosome names at once; loci are sorted by chromosome, so each chromosome is
    one run (or a few). Kept per cube snapshot (a snapshot never changes).
    """
    key = (str(ds.attrs.get("snapshot", "")), ds.sizes["locus"])
    if key[0] and key in _CHROM_RUNS:
        return _CHROM_RUNS[key]
    data = ds["chrom"].data
    blocks = (
        [data.blocks[i] for i in range(data.numblocks[0])] if hasattr(data, "blocks") else [data]
    )
    runs: dict[str, list[tuple[int, int]]] = {}
    offset = 0
    for block in blocks:
        values = np.asarray(block)
        change = np.flatnonzero(values[1:] != values[:-1]) + 1
        starts = np.concatenate([[0], change])
        stops = np.concatenate([change, [values.size]])
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
            chrom_runs = runs.setdefault(str(values[a]), [])
            if chrom_runs and chrom_runs[-1][1] == offset + a:
                chrom_runs[-1] = (chrom_runs[-1][0], offset + b)
            else:
                chrom_runs.append((offset + a, offset + b))
        offset += values.size
    if key[0]:
        _CHROM_RUNS[key] = runs
    return runs


def _runs(ds: xr.Dataset, chroms: Sequence[str]) -> list[tuple[int, int]]:
    """The position runs of ``chroms``, sorted and with touching runs merged."""
    index = _chrom_index(ds)
    merged: list[tuple[int, int]] = []
    for a, b in sorted(r for c in dict.fromkeys(chroms) for r in index.get(c, [])):
        if merged and merged[-1][1] == a:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def take_loci(ds: xr.Dataset, positions: np.ndarray | slice) -> xr.Dataset:
    """``ds.isel(locus=positions)``, as a slice when the positions are one contiguous run.

    Loci are sorted by chromosome, so most chromosome sets are one run; a slice keeps the
    Dask graph at one task per chunk, where an integer array of millions of positions would
    build an index per chunk.
    """
    if isinstance(positions, slice):
        return ds.isel(locus=positions)
    positions = np.asarray(positions, dtype=np.int64)
    if positions.size and positions[-1] - positions[0] + 1 == positions.size:
        # sorted and the right span: then contiguous (a bool array, not an int64 diff)
        if np.all(positions[1:] > positions[:-1]):
            return ds.isel(locus=slice(int(positions[0]), int(positions[-1]) + 1))
    return ds.isel(locus=positions)


def locus_positions(ds: xr.Dataset, chroms: Sequence[str]) -> np.ndarray:
    """Sorted integer positions along ``locus`` of the loci on ``chroms``."""
    runs = _runs(ds, chroms)
    if not runs:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in runs])


def locus_indexer(ds: xr.Dataset, chroms: Sequence[str]) -> slice | np.ndarray:
    """What selects the loci on ``chroms``: a slice when they are one run, else positions."""
    runs = _runs(ds, chroms)
    if len(runs) == 1:
        return slice(*runs[0])
    return locus_positions(ds, chroms)


def _compact(chroms: Sequence[str]) -> str:
    return ",".join(chroms) if len(chroms) <= 4 else f"{chroms[0]}..{chroms[-1]} ({len(chroms)})"


def chrom_runs(ds: xr.Dataset) -> dict[str, list[tuple[int, int]]]:
    """Each chromosome's loci as runs of positions ``[(start, stop), ...]`` along ``locus``.

    Chromosomes in the cube's order (of their first locus), read without decoding every
    locus's name; the mapping is shared by every caller (read it, never change it).
    """
    return _chrom_index(ds)


def cube_chroms(ds: xr.Dataset) -> list[str]:
    """The cube's chromosomes, in natural order."""
    return chrom_order(_chrom_index(ds))


# --------------------------------------------------------------------------------------------
# Presets


def replacement_valid_cell_types(cell_types: Sequence[str], target: str) -> tuple[str, ...]:
    """Validation cell types for a cube that has none of those asked for.

    One in five of the cell types other than the target, at least one and at most four
    (the paper validates on 4 of 56), taken evenly spaced through the cube's order so that
    they span its lineages; at least one other cell type is left to train on, so a cube of
    two cell types gets none.

    Parameters
    ----------
    cell_types
        The cube's cell types, in its order.
    target
        The test cell type (never chosen).

    Examples
    --------
    >>> replacement_valid_cell_types(["E003", "E004", "E005", "E006", "E007", "E008"], "E003")
    ('E004',)
    >>> replacement_valid_cell_types([f"c{i}" for i in range(12)], "c0")
    ('c1', 'c11')
    """
    others = [c for c in cell_types if c != target]
    if len(others) < 2:
        return ()
    k = min(4, max(1, len(others) // 5))
    picks = np.linspace(0, len(others) - 1, k).round().astype(int)
    return tuple(others[i] for i in dict.fromkeys(picks.tolist()))


def preset(
    ds: xr.Dataset,
    setting: str,
    target: str,
    *,
    valid_cell_types: Sequence[str] | None = None,
    test_chroms: Sequence[str] = ("chr1",),
    valid_chroms: Sequence[str] = ("chr2",),
    train_chroms: Sequence[str] | None = None,
    cross_cell_type_on_train_only: bool = False,
) -> Split:
    """The paper's split for ``setting`` on this cube, for any target and validation cell types.

    The tasks (:mod:`pitfall.tasks`) call this with their own rules and defaults; use
    ``pitfall.tasks.get_task("expression").split(ds, setting)`` for the paper's.

    Parameters
    ----------
    ds
        The cube (only its cell types and chromosomes are read).
    setting
        ``"cross-chromosome"``, ``"cross-cell-type"`` or ``"hybrid"``.
    target
        The test cell type (an id of the cube).
    valid_cell_types
        Validation cell types across cell types (ids; the target and absent ones are
        dropped). None, or none of them in the cube: :func:`replacement_valid_cell_types`
        chooses them, and a warning on the ``pitfall.splits`` logger names them. An empty
        sequence asks for no validation cell types.
    test_chroms, valid_chroms
        Test and validation chromosomes.
    train_chroms
        Training chromosomes; default every chromosome that is neither test nor validation.
    cross_cell_type_on_train_only
        Across cell types, models see only the training and validation chromosomes (the
        paper's TAD set-up) rather than every non-test chromosome.
    """
    if setting not in SETTINGS:
        raise SplitError(f"setting {setting!r} is not one of {SETTINGS}")
    all_chroms = cube_chroms(ds)
    held = set(test_chroms) | set(valid_chroms)
    if train_chroms is None:
        train_chroms = [c for c in all_chroms if c not in held]
    train_chroms = tuple(train_chroms)
    cell_types = [str(c) for c in ds["cell_type"].values]
    if target not in cell_types:
        raise SplitError(f"target cell type {target!r} is not in the cube ({cell_types[:10]}...)")
    valid_cell_types = _valid_cell_types(valid_cell_types, cell_types, target, setting)
    others = tuple(c for c in cell_types if c != target and c not in valid_cell_types)
    non_test = tuple(c for c in all_chroms if c not in set(test_chroms))
    if setting == "cross-chromosome":
        split = Split(
            train_cell_types=(target,),
            train_chroms=train_chroms,
            valid_cell_types=(target,),
            valid_chroms=tuple(valid_chroms),
            test_cell_types=(target,),
            test_chroms=tuple(test_chroms),
            setting=setting,
        )
    else:
        ctt_chroms = (
            tuple(dict.fromkeys((*valid_chroms, *train_chroms)))
            if cross_cell_type_on_train_only
            else non_test
        )
        split = Split(
            train_cell_types=others,
            train_chroms=ctt_chroms,
            valid_cell_types=valid_cell_types,
            valid_chroms=ctt_chroms,
            test_cell_types=(target,),
            test_chroms=ctt_chroms if setting == "cross-cell-type" else tuple(test_chroms),
            setting=setting,
        )
    split.check(ds)
    return split


def _valid_cell_types(
    asked: Sequence[str] | None, cell_types: list[str], target: str, setting: str
) -> tuple[str, ...]:
    """The validation cell types of a split: those asked for, else stated replacements."""
    if asked is not None and not asked:
        return ()
    present = tuple(c for c in dict.fromkeys(asked or ()) if c != target and c in cell_types)
    if present or setting == "cross-chromosome":
        return present
    chosen = replacement_valid_cell_types(cell_types, target)
    why = (
        "no validation cell types were given"
        if asked is None
        else f"none of the validation cell types {list(asked)} is in the cube"
    )
    log.warning(
        "%s: validating on %s instead (pass valid_cell_types to choose)",
        why,
        ", ".join(chosen) if chosen else "no cell type (the cube has too few to spare one)",
    )
    return chosen


def hybrid_grid(
    ds: xr.Dataset,
    *,
    held_out: Sequence[str] | None = None,
    chroms: Sequence[str] | None = None,
    n_valid: int = 1,
    seed: int = 0,
) -> list[Split]:
    """Every chromosome fold x every held-out cell type, as hybrid splits.

    Each split tests one cell type on one chromosome, trains the other cell types (less
    ``n_valid`` validation cell types, drawn with ``seed``) on the other chromosomes, and
    validates on the validation cell types over the same training chromosomes.
    """
    cell_types = [str(c) for c in ds["cell_type"].values]
    held_out = list(held_out or cell_types)
    chroms = list(chroms or cube_chroms(ds))
    rng = np.random.default_rng(seed)
    splits = []
    for target in held_out:
        others = [c for c in cell_types if c != target]
        if len(others) <= n_valid:
            raise SplitError(f"hybrid grid needs more than {n_valid + 1} cell types")
        valid = tuple(rng.choice(others, n_valid, replace=False)) if n_valid else ()
        train = tuple(c for c in others if c not in valid)
        for chrom in chroms:
            rest = tuple(c for c in chroms if c != chrom)
            splits.append(
                Split(
                    train_cell_types=train,
                    train_chroms=rest,
                    valid_cell_types=valid,
                    valid_chroms=rest,
                    test_cell_types=(target,),
                    test_chroms=(chrom,),
                    setting="hybrid",
                    name=f"hybrid:{target}:{chrom}",
                )
            )
    return splits
