"""Imputation across cell types: the target is one (cell type, mark) track of the cube.

The cube's ``signal`` ``(cell_type, locus, mark)`` holds one track per observed experiment;
an experiment that does not exist is NaN at every locus, and the ``observed``
``(cell_type, mark)`` coordinate says which exist (:func:`observed`). An imputation split
(:class:`ImputationSplit`) names the target track and which values a model may train on:

- ``cross-cell-type``: every observed experiment but the target track, over every locus;
  the target track is tested on the same loci. Every test locus is seen in training under
  the target mark of another cell type (leakage 1 when another cell type has the mark);
- ``hybrid``: the test loci are those of held-out chromosomes. What a family may read there
  depends on the family (``transductive``): models reading the target cell type's other
  marks (the dense networks, XGBoost) never see a test locus in training; the factorization
  family (Avocado) learns one embedding per position, which it can only have for the test
  loci if it trains there, so it reads the *other* marks of every cell type at the test
  loci -- never the target mark of any cell type there (leakage 0 for both).

The target track itself is never in training in either setting.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from pitfall import splits

__all__ = [
    "SETTINGS",
    "ImputationError",
    "ImputationSplit",
    "imputation_split",
    "observed",
    "signal_array",
]

#: The settings of an imputation split.
SETTINGS = ("cross-cell-type", "hybrid")


class ImputationError(ValueError):
    """An imputation split that does not fit a cube; the message says what to do."""


def observed(ds: xr.Dataset) -> xr.DataArray:
    """Which experiments exist: bool, dims ``(cell_type, mark)``.

    The cube's ``observed`` coordinate when it has one; otherwise a track is observed where
    its signal is defined at some locus (``signal.notnull().any("locus")``).
    """
    if "observed" in ds.coords or "observed" in ds:
        obs = ds["observed"]
    else:
        obs = ds["signal"].notnull().any("locus")
    return obs.astype(bool).transpose("cell_type", "mark").compute()


def signal_array(ds: xr.Dataset) -> np.ndarray:
    """The cube's signal in memory, float32 ``(cell_type, locus, mark)``, NaN where an
    experiment is not observed (whatever the stored values say)."""
    sig = np.asarray(ds["signal"].transpose("cell_type", "locus", "mark").values, np.float32)
    obs = observed(ds).values
    return np.where(obs[:, None, :], sig, np.float32(np.nan))


@dataclass(frozen=True)
class ImputationSplit:
    """The target track of an imputation task and what training may read.

    Attributes
    ----------
    setting
        ``"cross-cell-type"`` or ``"hybrid"``.
    cell_type, mark
        The target track.
    test_chroms
        Hybrid: the held-out chromosomes the test loci lie on. Cross-cell-type: empty
        (every locus tests).
    """

    setting: str
    cell_type: str
    mark: str
    test_chroms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "test_chroms", tuple(self.test_chroms))
        if self.setting not in SETTINGS:
            raise ImputationError(f"imputation setting {self.setting!r} is not one of {SETTINGS}")
        if self.setting == "hybrid" and not self.test_chroms:
            raise ImputationError("a hybrid imputation split needs test_chroms")
        if self.setting == "cross-cell-type" and self.test_chroms:
            raise ImputationError(
                "a cross-cell-type imputation split tests on every locus: give no test_chroms"
            )

    @property
    def name(self) -> str:
        return f"imputation:{self.setting}:{self.cell_type}:{self.mark}"

    # ----------------------------------------------------------------------------------------
    def check(self, ds: xr.Dataset) -> None:
        """Raise :class:`ImputationError` unless the cube has the target track observed,
        another cell type with the mark, and the test chromosomes."""
        cts = [str(c) for c in ds["cell_type"].values]
        marks = [str(m) for m in ds["mark"].values]
        if self.cell_type not in cts:
            raise ImputationError(
                f"cell type {self.cell_type!r} is not in the cube (it has {', '.join(cts[:10])})"
            )
        if self.mark not in marks:
            raise ImputationError(
                f"mark {self.mark!r} is not in the cube (it has {', '.join(marks)})"
            )
        obs = observed(ds)
        if not bool(obs.sel(cell_type=self.cell_type, mark=self.mark)):
            raise ImputationError(
                f"{self.cell_type} has no observed {self.mark} track: nothing to test an "
                "imputation against; choose an observed experiment (cube info shows them)"
            )
        if not bool(obs.sel(mark=self.mark).drop_sel(cell_type=self.cell_type).any()):
            raise ImputationError(
                f"no cell type but {self.cell_type} has {self.mark}: nothing to learn the mark from"
            )
        missing = sorted(set(self.test_chroms) - set(splits.cube_chroms(ds)))
        if missing:
            raise ImputationError(f"{self.name}: chromosomes {missing} are not in the cube")

    def test_loci(self, ds: xr.Dataset) -> np.ndarray:
        """Positions along ``locus`` of the test loci, ``(n_test,)``."""
        if self.setting == "cross-cell-type":
            return np.arange(ds.sizes["locus"], dtype=np.int64)
        return splits.locus_positions(ds, self.test_chroms)

    def train_loci(self, ds: xr.Dataset) -> np.ndarray:
        """Positions along ``locus`` of the loci training reads every training experiment
        at, ``(n_train,)``: every locus across cell types, those off the test chromosomes
        in the hybrid setting."""
        return np.flatnonzero(self.train_locus_mask(ds))

    def train_locus_mask(self, ds: xr.Dataset) -> np.ndarray:
        """:meth:`train_loci` as a mask: bool ``(n_loci,)``."""
        keep = np.ones(ds.sizes["locus"], dtype=bool)
        if self.setting != "cross-cell-type":
            keep[self.test_loci(ds)] = False
        return keep

    def train_experiments(self, ds: xr.Dataset) -> xr.DataArray:
        """The experiments training may read: observed, but not the target track; bool
        ``(cell_type, mark)``."""
        obs = observed(ds).copy()
        obs.loc[{"cell_type": self.cell_type, "mark": self.mark}] = False
        return obs

    def train_mask(self, ds: xr.Dataset, *, transductive: bool = False) -> np.ndarray:
        """Which values of the cube training may read: bool ``(cell_type, locus, mark)``.

        Parameters
        ----------
        transductive
            Hybrid only: also read, at the test loci, every observed experiment of a mark
            other than the target mark (what the factorization family learns the held-out
            positions' embeddings from).
        """
        self.check(ds)
        train = self.train_locus_mask(ds)
        return self.mask_from(ds, self.train_experiments(ds).values, train, transductive)

    def mask_from(
        self, ds: xr.Dataset, experiments: np.ndarray, train: np.ndarray, transductive: bool
    ) -> np.ndarray:
        """:meth:`train_mask` from its parts, for a reader that computes them once and
        goes a block of loci at a time: ``experiments`` bool ``(cell_type, mark)``
        (:meth:`train_experiments`), ``train`` bool ``(k,)`` (:meth:`train_locus_mask` at
        the loci wanted). Returns bool ``(cell_type, k, mark)``."""
        mask = experiments[:, None, :] & train[None, :, None]
        if transductive and self.setting == "hybrid":
            other = experiments.copy()
            other[:, [str(m) for m in ds["mark"].values].index(self.mark)] = False
            mask |= other[:, None, :] & ~train[None, :, None]
        return mask

    def reference_cell_types(self, ds: xr.Dataset) -> list[str]:
        """The other cell types with the target mark observed (the baselines' references)."""
        obs = observed(ds).sel(mark=self.mark)
        return [
            str(c)
            for c, ok in zip(ds["cell_type"].values, obs.values, strict=True)
            if ok and str(c) != self.cell_type
        ]

    def reference_variance(self, ds: xr.Dataset) -> np.ndarray:
        """The target mark's population variance across :meth:`reference_cell_types` at
        each test locus (what the audit's ``msevar`` weighs and its deciles rank): float64,
        ``(n_test,)``; NaN where no reference has a value."""
        sig = ds["signal"].sel(cell_type=self.reference_cell_types(ds), mark=self.mark)
        values = np.asarray(sig.isel(locus=self.test_loci(ds)).values, np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a locus no reference has: NaN
            return np.nanvar(values, axis=0)

    def input_marks(self, ds: xr.Dataset) -> list[str]:
        """The target cell type's other observed marks (the cell-type-specific inputs)."""
        obs = observed(ds).sel(cell_type=self.cell_type)
        return [
            str(m)
            for m, ok in zip(ds["mark"].values, obs.values, strict=True)
            if ok and str(m) != self.mark
        ]

    def leakage(self, ds: xr.Dataset, *, transductive: bool = False) -> float:
        """Fraction of test loci at which training reads the target mark of another cell type
        (as :meth:`pitfall.splits.Split.leakage`: the test value's stand-ins seen in training)."""
        test = self.test_loci(ds)
        if test.size == 0:
            return float("nan")
        j = [str(m) for m in ds["mark"].values].index(self.mark)
        seen = self.train_mask(ds, transductive=transductive)[:, test, j]
        return float(seen.any(axis=0).sum() / test.size)

    def describe(self, ds: xr.Dataset) -> pd.DataFrame:
        """One row per role (train, test): experiments, chromosomes, loci; leakage in attrs."""
        exp = self.train_experiments(ds)
        chroms = splits.cube_chroms(ds)
        test_chroms = list(self.test_chroms) or chroms
        train_chroms = [c for c in chroms if c not in self.test_chroms]
        rows = [
            {
                "role": "train",
                "n_experiments": int(exp.values.sum()),
                "chroms": ",".join(train_chroms),
                "n_loci": int(self.train_loci(ds).size),
            },
            {
                "role": "test",
                "n_experiments": 1,
                "chroms": ",".join(test_chroms),
                "n_loci": int(self.test_loci(ds).size),
            },
        ]
        out = pd.DataFrame(rows).set_index("role")
        out.attrs["setting"] = self.setting
        out.attrs["leakage"] = self.leakage(ds)
        out.attrs["leakage_transductive"] = self.leakage(ds, transductive=True)
        return out


def imputation_split(
    ds: xr.Dataset,
    setting: str,
    cell_type: str,
    mark: str,
    *,
    test_chroms: Sequence[str] = ("chr1",),
) -> ImputationSplit:
    """The imputation split of ``setting`` for the track (``cell_type``, ``mark``), checked
    against the cube (``test_chroms`` are used by the hybrid setting only)."""
    split = ImputationSplit(
        setting, cell_type, mark, tuple(test_chroms) if setting == "hybrid" else ()
    )
    split.check(ds)
    return split
