"""Reading a user's predictions and matching them to the cube's loci, unambiguously.

Inputs (:func:`read_prediction_table`, :func:`load_predictions`):

- a table (pandas DataFrame; ``.tsv``/``.txt``/``.tab``, ``.csv``, optionally ``.gz``;
  ``.parquet``/``.pq``) with a cell-type column (``cell_type``, ``celltype``, ``cell``,
  ``sample``), a score column (``score``, ``prediction``, ``pred``, ``y_score``,
  ``probability``) and the loci, either in ONE locus column (``locus``, ``name``,
  ``gene_id``, ``gene``, ``locus_name``) or in the three columns ``chrom``, ``start``,
  ``end``;
- an xarray DataArray with dims ``(cell_type, locus)``, or a Dataset / NetCDF (``.nc``,
  ``.nc4``, ``.netcdf``, ``.h5``, ``.cdf``) / Zarr (``.zarr``) store holding exactly one
  such variable: what every :class:`pitfall.predictor.Predictor` returns;
- an ENCODE-DREAM challenge submission (:func:`read_submission`): ``chr start stop
  probability``, tab separated, no header, gzipped, one file per TF and cell type, named
  ``<L|F|B>.<TF>.<cell type>.tab.gz``; its loci are matched by coordinates and its cell type
  taken from the file name (or ``cell_type=``);
- a track of one cell type's scores, bigWig (``.bw``, ``.bigwig``) or bedGraph
  (``.bedgraph``, ``.bg``, optionally ``.gz``), with ``cell_type=``: each cube locus gets
  the mean score over its window (:func:`pitfall.tracks.read_track`); loci whose window
  holds no data are not scored. A mapping ``{cell_type: track}`` gives several.

How loci are matched (``loci_by``), never guessed from the values:

- ``"name"``: the locus column holds names, matched to the cube's ``name`` coordinate as
  strings (``"007"`` is ``"007"``, not position 7), also without a version suffix
  (``ENSG1.5`` matches ``ENSG1``). Genome-bin cubes have no names: their names are
  ``chrom:start-end`` (:func:`pitfall.cube.locus_names`);
- ``"position"``: the locus column holds integer positions along the cube's ``locus`` dim;
- ``"coordinates"``: ``chrom``, ``start``, ``end`` (0-based, half-open) equal a locus's; a
  row whose coordinates several cube loci share (identical windows) scores all of them;
- ``"auto"`` (default): a table's single locus column is names and its ``chrom``/``start``/
  ``end`` columns are coordinates; a table with both, or with several locus columns, is
  refused with a message that says how to choose. A DataArray's integer ``locus``
  coordinate is the cube's position index (as every predictor returns it), a string one
  holds names.
"""

from __future__ import annotations

import gzip
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from pitfall import tracks
from pitfall.cube import locus_names
from pitfall.sources.annotation import compression_of

__all__ = [
    "AuditWarning",
    "LOCI_BY",
    "Predictions",
    "load_predictions",
    "read_prediction_table",
    "read_submission",
    "submission_cell_type",
]

LociBy = Literal["auto", "name", "position", "coordinates"]
LOCI_BY: tuple[str, ...] = ("auto", "name", "position", "coordinates")
LOCUS_COLUMNS = ("locus", "name", "gene_id", "gene", "locus_name")
COORDINATE_COLUMNS = ("chrom", "start", "end")
CELL_TYPE_COLUMNS = ("cell_type", "celltype", "cell", "sample")
SCORE_COLUMNS = ("score", "prediction", "pred", "y_score", "probability")
NA_TOKENS = ("", "NA", "N/A", "NaN", "nan", "null", "None", ".")
_VERSION = re.compile(r"\.\d+$")
_BIN_NAME = re.compile(r"^(?P<chrom>[^:\s]+):(?P<start>\d+)-(?P<end>\d+)$")
#: An ENCODE-DREAM submission's name: round letter (L leaderboard, F final, B baseline), TF,
#: cell type, ``.tab.gz``.
_SUBMISSION_NAME = re.compile(r"^[A-Z]\.(?P<tf>[^.]+)\.(?P<cell_type>[^.]+)\.tab(\.gz)?$")
_HOW = "choose with loci_by='name', 'position' or 'coordinates' (CLI: --loci-by)"


class AuditWarning(UserWarning):
    """Something in the predictions the audit dropped or that limits what it can say."""


def _warn(msg: str, log: list[str]) -> None:
    log.append(msg)
    warnings.warn(msg, AuditWarning, stacklevel=4)


def _examples(values: Iterable[Any], k: int = 5) -> str:
    values = list(values)
    shown = ", ".join(map(str, values[:k]))
    return shown + (", ..." if len(values) > k else "")


def _str_array(values: Any) -> np.ndarray:
    """Strings as an object array (also from numpy's ``StringDType``, which Zarr returns)."""
    values = np.asarray(values)
    if values.dtype.kind in "OTU":
        return values.astype(object).ravel()
    return np.asarray([str(v) for v in values.ravel()], dtype=object)


# --------------------------------------------------------------------------------------------
# Reading into one long table


def _find(columns: Sequence[Any], candidates: Sequence[str]) -> list[Any]:
    """The columns whose lower-cased name is a candidate, in candidate order."""
    lower = {str(c).lower(): c for c in columns}
    return [lower[c] for c in candidates if c in lower]


def _pick(columns: Sequence[Any], candidates: Sequence[str], what: str) -> Any:
    found = _find(columns, candidates)
    if not found:
        raise ValueError(
            f"predictions lack a {what} column: expected one of {list(candidates)}, "
            f"found columns {list(columns)}"
        )
    return found[0]


def _is_track(path: Path) -> bool:
    return tracks.track_format(path) is not None


def _read_text_table(path: Path, sep: str) -> pd.DataFrame:
    # Every column as text: pandas would parse integer-looking locus names ("007") as
    # numbers; scores and coordinates are converted once their columns are known.
    # A gzipped table is read whatever its name says (a .tsv that is gzip inside).
    return pd.read_csv(
        path, sep=sep, dtype=str, keep_default_na=False, compression=compression_of(path)
    )


def submission_cell_type(path: str | os.PathLike) -> str | None:
    """The cell type an ENCODE-DREAM submission's file name states (``F.CTCF.iPSC.tab.gz``
    -> ``"iPSC"``), or None for another name."""
    match = _SUBMISSION_NAME.match(Path(path).name)
    return match["cell_type"] if match else None


def _is_submission(path: Path) -> bool:
    """A headerless ``chrom start stop probability`` text file (the challenge's format)."""
    if not path.is_file():
        return False
    try:
        with gzip.open(path, "rt") if compression_of(path) == "gzip" else open(path) as fh:
            first = fh.readline().rstrip("\r\n").split("\t")
    except (OSError, UnicodeDecodeError, EOFError):
        return False
    if len(first) != 4 or not (first[1].isdigit() and first[2].isdigit()):
        return False
    try:
        float(first[3])
    except ValueError:
        return False
    return True


def read_submission(path: str | os.PathLike, cell_type: str | None = None) -> pd.DataFrame:
    """Read an ENCODE-DREAM submission: ``chr start stop probability``, no header.

    Parameters
    ----------
    path
        The submission, tab separated, gzipped or not.
    cell_type
        Its cell type; default: the one its file name states (:func:`submission_cell_type`).

    Returns
    -------
    pandas.DataFrame
        Shape (n_bins, 5): ``chrom`` (str), ``start``, ``end`` (int64, 0-based half-open),
        ``score`` (float64) and ``cell_type``; without ``cell_type`` where neither the
        argument nor the file name gives one (:func:`load_predictions`' ``cell_type=`` then
        names it, as for any table without a cell-type column).

    Raises
    ------
    ValueError
        A row that is not 4 tab-separated fields with integer coordinates and a numeric
        probability.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"submission file {path} does not exist")
    cell_type = cell_type or submission_cell_type(path)
    try:
        table = pd.read_csv(
            path,
            sep="\t",
            header=None,
            names=["chrom", "start", "end", "score"],
            dtype={"chrom": str, "start": np.int64, "end": np.int64, "score": np.float64},
            compression=compression_of(path),
        )
    except (ValueError, pd.errors.ParserError) as err:
        raise ValueError(
            f"{path}: not an ENCODE-DREAM submission (4 tab-separated fields per row: chr, "
            f"start, stop, probability; no header): {err}"
        ) from err
    if cell_type is not None:
        table["cell_type"] = str(cell_type)
    return table


def _dataarray_table(da: xr.DataArray) -> pd.DataFrame:
    """A (cell_type, locus) DataArray as a long table: ``locus`` (its coordinate), then
    ``name``, ``chrom``, ``start``, ``end`` where it has them, ``cell_type`` and ``score``.

    ``attrs["dataarray"]`` marks the table so that ``loci_by="auto"`` reads an integer
    ``locus`` as the cube's positions.
    """
    if set(da.dims) != {"cell_type", "locus"}:
        raise ValueError(
            f"a predictions DataArray must have dims ('cell_type', 'locus'), got {da.dims}"
        )
    if "cell_type" not in da.coords:
        raise ValueError("a predictions DataArray needs a 'cell_type' coordinate")
    da = da.transpose("cell_type", "locus")
    n_ct, n_loc = da.shape
    out: dict[str, Any] = {}
    if "locus" in da.coords:
        loci = np.asarray(da["locus"].values)
        out["locus"] = np.tile(
            loci.astype(np.int64) if loci.dtype.kind in "iu" else _str_array(loci), n_ct
        )
    for name in ("name", *COORDINATE_COLUMNS):
        if name in da.coords and da[name].dims == ("locus",):
            values = np.asarray(da[name].values)
            values = _str_array(values) if values.dtype.kind not in "iu" else values
            out[name] = np.tile(values, n_ct)
    if not out:
        raise ValueError(
            "a predictions DataArray needs a 'locus' coordinate (the cube's positions or "
            "names), a 'name' coordinate, or chrom/start/end coordinates"
        )
    out["cell_type"] = np.repeat(_str_array(da["cell_type"].values), n_loc)
    out["score"] = np.asarray(da.values, dtype=np.float64).ravel()
    table = pd.DataFrame(out)
    table.attrs["dataarray"] = True
    return table


def _only_variable(ds: xr.Dataset, source: Any) -> xr.DataArray:
    names = [v for v in ds.data_vars if set(ds[v].dims) == {"cell_type", "locus"}]
    if len(names) != 1:
        raise ValueError(
            f"{source} must hold exactly one variable with dims (cell_type, locus), found "
            f"{names or list(ds.data_vars)}"
        )
    return ds[names[0]]


def read_prediction_table(predictions: Any) -> pd.DataFrame:
    """Predictions as a long table, before any matching to a cube.

    Parameters
    ----------
    predictions
        A DataFrame, a DataArray (dims cell_type, locus), a Dataset with one such variable,
        or a path to a table, NetCDF or Zarr store (see the module docstring). Tracks need
        a cube: see :func:`load_predictions`.

    Returns
    -------
    pandas.DataFrame
        One row per (locus, cell type): the table's own columns for a table; for a
        DataArray, ``locus`` (its coordinate) and ``name``/``chrom``/``start``/``end``
        where present, then ``cell_type`` and ``score`` (float64).

    Raises
    ------
    FileNotFoundError
        When the path does not exist.
    ValueError
        For an unknown format, or a DataArray / store of the wrong shape.
    """
    if isinstance(predictions, pd.DataFrame):
        return predictions
    if isinstance(predictions, xr.DataArray):
        return _dataarray_table(predictions)
    if isinstance(predictions, xr.Dataset):
        return _dataarray_table(_only_variable(predictions, "the Dataset"))
    path = Path(predictions)
    if not path.exists():
        raise FileNotFoundError(f"predictions file {path} does not exist")
    name = path.name.lower()
    stem = name[:-3] if name.endswith(".gz") else name
    if stem.endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    if stem.endswith(".csv"):
        return _read_text_table(path, ",")
    if stem.endswith((".tsv", ".txt", ".tab")):
        if _is_submission(path):
            return read_submission(path)
        return _read_text_table(path, "\t")
    if name.endswith(".zarr") or (path.is_dir() and (path / "zarr.json").exists()):
        with warnings.catch_warnings():
            # Stores without consolidated metadata are read fine; xarray warns about speed.
            warnings.simplefilter("ignore", RuntimeWarning)
            ds = xr.open_zarr(path, consolidated=None)
        with ds:
            return _dataarray_table(_only_variable(ds, path).load())
    if stem.endswith((".nc", ".netcdf", ".nc4", ".h5", ".cdf")):
        with xr.open_dataset(path) as ds:
            return _dataarray_table(_only_variable(ds, path).load())
    if _is_track(path):
        raise ValueError(
            f"{path} is a track of one cell type: read it with load_predictions(path, cube, "
            "cell_type=...) (CLI: --cell-type)"
        )
    raise ValueError(
        f"cannot tell the format of {path}: use .tsv, .csv, .parquet, .nc, .zarr, or a "
        ".bw / .bedGraph track with a cell type"
    )


# --------------------------------------------------------------------------------------------
# Matched predictions


@dataclass
class Predictions:
    """Predictions matched to a cube's loci.

    Attributes
    ----------
    table : pandas.DataFrame
        Columns ``locus`` (as given, for messages), ``cell_type``, ``pos`` (int64 position
        along the cube's ``locus`` dim) and ``score`` (float64, finite); one row per
        (cell type, position). Built on first use when the predictions came as arrays.
    targets : list of str
        Cell types, in order of first appearance.
    loci_by : str
        How the loci were matched: ``"name"``, ``"position"``, ``"coordinates"`` or
        ``"track windows"``.
    log : list of str
        Every warning raised while reading and matching.
    arrays : dict or None
        Per cell type, positions (int64, ascending) and scores (float32 when the DataArray
        holds float32, else float64; views of the DataArray where it needs no reordering
        or dropping): what a DataArray over the cube's positions gives without a long table.
    """

    _table: pd.DataFrame | None
    targets: list[str]
    loci_by: str
    log: list[str] = field(default_factory=list)
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def table(self) -> pd.DataFrame:
        if self._table is None:
            assert self.arrays is not None
            parts = [
                pd.DataFrame(
                    {"locus": pos, "cell_type": ct, "pos": pos, "score": score.astype(np.float64)}
                )
                for ct, (pos, score) in self.arrays.items()
            ]
            self._table = pd.concat(parts, ignore_index=True)
        return self._table

    def scores(self, cell_type: str) -> tuple[np.ndarray, np.ndarray]:
        """Positions (int64, shape (n,), ascending) and scores (shape (n,), float64, or
        float32 as the DataArray gave them: :attr:`arrays`) of a cell type."""
        if self.arrays is not None:
            return self.arrays[cell_type]
        sub = self.table[self.table["cell_type"] == cell_type].sort_values("pos")
        return sub["pos"].to_numpy(np.int64), sub["score"].to_numpy(np.float64)

    def to_dataarray(self, cube: xr.Dataset) -> xr.DataArray:
        """Scores as a DataArray, dims ``(cell_type, locus)`` over every cube locus.

        NaN where a cell type has no prediction; ``locus`` is the cube's integer position,
        as a :class:`pitfall.predictor.Predictor` returns it.
        """
        n = cube.sizes["locus"]
        values = np.full((len(self.targets), n), np.nan)
        for i, ct in enumerate(self.targets):
            pos, s = self.scores(ct)
            values[i, pos] = s
        return xr.DataArray(
            values,
            dims=("cell_type", "locus"),
            coords={"cell_type": list(self.targets), "locus": np.arange(n)},
            name="score",
        )


def load_predictions(
    predictions: Any,
    cube: xr.Dataset,
    *,
    loci_by: LociBy = "auto",
    cell_type: str | None = None,
    chrom_sizes: Mapping[str, int] | str | os.PathLike | None = None,
) -> Predictions:
    """Read predictions and match them to the cube's loci and cell types.

    Parameters
    ----------
    predictions
        Any input of :func:`read_prediction_table`, a bigWig / bedGraph track of one cell
        type, or a mapping ``{cell_type: track path}``.
    cube
        The opened cube, with its integer ``locus`` coordinate.
    loci_by
        ``"auto"``, ``"name"``, ``"position"`` or ``"coordinates"`` (module docstring).
    cell_type
        The cell type of a track (required for one); for a table, keep only its rows (or, for
        a table without a cell-type column, the cell type of every row).
    chrom_sizes
        Chromosome sizes for a bedGraph track (bigWigs carry their own): a mapping or a
        ``chrom.sizes`` file; windows are clipped to them.

    Returns
    -------
    Predictions

    Raises
    ------
    ValueError
        Missing or ambiguous locus columns (the message says how to choose), no matching
        locus or cell type, a (locus, cell type) pair scored twice, all scores NaN.

    Warns
    -----
    AuditWarning
        Unknown loci or cell types (dropped), NaN scores (dropped), track windows only
        partly covered by data.
    """
    if loci_by not in LOCI_BY:
        raise ValueError(f"loci_by must be one of {LOCI_BY}, got {loci_by!r}")
    log: list[str] = []
    track = _as_tracks(predictions, cell_type)
    if track is not None:
        if loci_by not in ("auto", "coordinates"):
            raise ValueError(
                f"a track is matched to the cube by its windows' coordinates; loci_by={loci_by!r} "
                "does not apply (leave it at 'auto')"
            )
        long = _track_table(track, cube, chrom_sizes, log)
        how = "track windows"
    else:
        fast = _positions_array(predictions, loci_by, cell_type, cube, log)
        if fast is not None:
            return fast
        table = read_prediction_table(predictions)
        long, how = _identify(table, loci_by, cell_type)
        long = _match_loci(long, how, cube, log)
    return _finish(long, how, cube, log)


def _positions_array(
    predictions: Any, loci_by: str, cell_type: str | None, cube: xr.Dataset, log: list[str]
) -> Predictions | None:
    """A (cell_type, locus) DataArray over integer positions, matched without a long table
    (a genome of 200 bp bins is 14 million rows per cell type); None for any other input.

    Checks as :func:`_finish` does: unknown cell types and NaN scores dropped with a
    warning, positions outside the cube or repeated refused.
    """
    if isinstance(predictions, xr.Dataset):
        names = [
            v for v in predictions.data_vars if set(predictions[v].dims) == {"cell_type", "locus"}
        ]
        if len(names) != 1:
            return None
        predictions = predictions[names[0]]
    if not isinstance(predictions, xr.DataArray) or loci_by not in ("auto", "position"):
        return None
    da = predictions
    if set(da.dims) != {"cell_type", "locus"} or "cell_type" not in da.coords:
        return None
    if "locus" not in da.coords or da["locus"].dtype.kind not in "iu":
        return None
    da = da.transpose("cell_type", "locus")
    pos = np.asarray(da["locus"].values, dtype=np.int64)
    n_loci = cube.sizes["locus"]
    outside = (pos < 0) | (pos >= n_loci)
    if outside.all():
        raise ValueError(
            f"none of the {pos.size} predicted positions lies in the cube's 0..{n_loci - 1}"
        )
    has_outside = bool(outside.any())
    if has_outside:
        _warn(
            f"{int(outside.sum())} predicted position(s) lie outside the cube's "
            f"0..{n_loci - 1} (e.g. {_examples(pos[outside])}) and are dropped",
            log,
        )
    # A predictor returns its loci in cube order: sort only when they are not.
    in_order = bool(np.all(pos[1:] > pos[:-1]))
    order = None if in_order else np.argsort(pos, kind="stable")
    if order is not None and np.any(np.diff(pos[order]) == 0):
        raise ValueError("the predictions' locus coordinate repeats positions: one score each")
    cts = [str(c) for c in _str_array(da["cell_type"].values)]
    if cell_type is not None:
        cts = [c for c in cts if c == cell_type]
    cube_cts = {str(c) for c in cube["cell_type"].values}
    unknown = [c for c in cts if c not in cube_cts]
    if len(unknown) == len(cts):
        raise ValueError(
            f"no cell type of the predictions is in the cube: target cell type(s) "
            f"{unknown} absent (the cube has {_examples(sorted(cube_cts), 10)})"
        )
    if unknown:
        _warn(
            f"{len(unknown)} cell type(s) of the predictions are not in the cube "
            f"({_examples(unknown)}); their {len(unknown) * pos.size} rows are dropped",
            log,
        )
    all_cts = [str(c) for c in _str_array(da["cell_type"].values)]
    arrays = {}
    n_nan, n_all = 0, 0
    n_inside = pos.size - int(np.count_nonzero(outside))
    for ct in cts:
        if ct in unknown:
            continue
        values = np.asarray(da.isel(cell_type=all_cts.index(ct)).values)
        if values.dtype not in (np.float32, np.float64):
            values = values.astype(np.float64)
        keep = np.isfinite(values)
        n_nan += n_inside - int(np.count_nonzero(keep[~outside] if has_outside else keep))
        n_all += n_inside
        if has_outside:
            keep &= ~outside
        if in_order and keep.all():
            # Every score kept, in cube order: the input's own arrays, no copy.
            arrays[ct] = (pos, values)
            continue
        ok = np.flatnonzero(keep) if order is None else order[keep[order]]
        arrays[ct] = (pos[ok], values[ok])
    if n_nan == n_all:
        raise ValueError(f"all {n_all} matched scores are NaN or infinite")
    if n_nan:
        _warn(f"{n_nan} of {n_all} scores are NaN or infinite and are dropped", log)
    return Predictions(None, list(arrays), "position", log, arrays)


def _as_tracks(predictions: Any, cell_type: str | None) -> dict[str, Path] | None:
    """``{cell_type: path}`` when the predictions are tracks, else None."""
    # An xarray Dataset is a Mapping too: only plain mappings name tracks.
    if isinstance(predictions, Mapping) and not isinstance(predictions, xr.Dataset):
        paths = {str(k): Path(v) for k, v in predictions.items()}
        bad = [str(p) for p in paths.values() if not _is_track(p)]
        if bad:
            raise ValueError(f"a mapping of predictions must map cell types to tracks: {bad}")
        return paths
    if isinstance(predictions, (str, os.PathLike)) and _is_track(Path(predictions)):
        if cell_type is None:
            raise ValueError(
                f"{predictions} is a track of one cell type's scores: say which with "
                "cell_type= (CLI: --cell-type)"
            )
        return {str(cell_type): Path(predictions)}
    return None


def _track_table(
    paths: dict[str, Path],
    cube: xr.Dataset,
    chrom_sizes: Mapping[str, int] | str | os.PathLike | None,
    log: list[str],
) -> pd.DataFrame:
    parts = []
    for ct, path in paths.items():
        means, covered, length = tracks.read_track(path, cube, chrom_sizes=chrom_sizes)
        scored = covered > 0
        partial = scored & (covered < length)
        if partial.any():
            _warn(
                f"{path}: {int(partial.sum())} of {int(scored.sum())} scored locus windows are "
                "only partly covered by the track; their uncovered bases count as 0",
                log,
            )
        if not scored.any():
            raise ValueError(
                f"{path} has no data over any locus window of the cube: check that it holds "
                "predictions on the cube's assembly and chromosome names"
            )
        pos = np.flatnonzero(scored)
        parts.append(pd.DataFrame({"locus": pos, "cell_type": ct, "pos": pos, "score": means[pos]}))
    return pd.concat(parts, ignore_index=True)


def _identify(table: pd.DataFrame, loci_by: str, cell_type: str | None) -> tuple[pd.DataFrame, str]:
    """The long table ``locus`` (or ``chrom``/``start``/``end``), ``cell_type``, ``score``,
    and how its loci are to be matched."""
    cols = list(table.columns)
    is_da = bool(table.attrs.get("dataarray"))
    name_cols = _find(cols, LOCUS_COLUMNS)
    coord_cols = _find(cols, COORDINATE_COLUMNS)
    has_coords = len(coord_cols) == 3
    how = loci_by
    if is_da:
        # A DataArray's coordinates are named by the cube's conventions: ``locus`` is the
        # position index when it is integer, ``name`` holds names.
        has_locus, has_name = "locus" in table, "name" in table
        integer = has_locus and pd.api.types.is_integer_dtype(table["locus"])
        if loci_by == "auto":
            how = "position" if integer else "name" if has_locus or has_name else "coordinates"
        if how == "position":
            name_cols = ["locus"] if integer else []
        elif how == "name":
            name_cols = ["name"] if has_name else ["locus"] if has_locus else []
    elif loci_by == "auto":
        if len(name_cols) > 1:
            raise ValueError(
                f"the predictions have several locus columns {name_cols}: keep the one that "
                "names the cube's loci (drop or rename the others)"
            )
        if name_cols and has_coords:
            raise ValueError(
                f"the predictions give their loci twice, by name (column {name_cols[0]!r}) "
                f"and by coordinates (columns {coord_cols}): {_HOW}"
            )
        how = "name" if name_cols else "coordinates"
    if how in ("name", "position"):
        if not name_cols:
            raise ValueError(
                f"predictions lack a locus column: expected one of {list(LOCUS_COLUMNS)} "
                f"(or the columns chrom, start, end with loci_by='coordinates'), found "
                f"columns {cols}"
            )
        if len(name_cols) > 1:
            raise ValueError(
                f"the predictions have several locus columns {name_cols}: keep one for "
                f"loci_by={how!r}"
            )
    elif not has_coords:
        raise ValueError(
            f"predictions lack a locus column: expected one of {list(LOCUS_COLUMNS)} or the "
            f"columns chrom, start, end, found columns {cols}"
        )
    # Positional arrays throughout: a user's DataFrame may repeat index labels.
    out: dict[str, np.ndarray] = {}
    if how == "coordinates":
        for c, src in zip(COORDINATE_COLUMNS, coord_cols, strict=True):
            out[c] = table[src].to_numpy()
        out["locus"] = np.asarray(
            [f"{c}:{s}-{e}" for c, s, e in zip(*(out[c] for c in COORDINATE_COLUMNS), strict=True)],
            dtype=object,
        )
    else:
        out["locus"] = table[name_cols[0]].to_numpy()
    keep = np.ones(len(table), dtype=bool)
    ct_cols = _find(cols, CELL_TYPE_COLUMNS)
    if ct_cols:
        out["cell_type"] = table[ct_cols[0]].astype(str).to_numpy()
        if cell_type is not None:
            keep = out["cell_type"] == str(cell_type)
            if not keep.any():
                raise ValueError(
                    f"the predictions have no row for cell type {cell_type!r} (they have "
                    f"{_examples(pd.unique(out['cell_type']))})"
                )
    elif cell_type is not None:
        out["cell_type"] = np.full(len(table), str(cell_type), dtype=object)
    else:
        _pick(cols, CELL_TYPE_COLUMNS, "cell type")
    sc = _pick(cols, SCORE_COLUMNS, "score")
    out["score"] = _numeric(table[sc].reset_index(drop=True), sc, float)
    long = pd.DataFrame(out)
    return long[keep].reset_index(drop=True), how


def _numeric(values: pd.Series, column: Any, kind: type) -> np.ndarray:
    """A column as float64 (NA tokens as NaN) or int64; a clear error when it is not."""
    if values.dtype == object:
        values = values.replace(dict.fromkeys(NA_TOKENS, np.nan))
    try:
        out = pd.to_numeric(values).to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as err:
        what = "numeric scores" if kind is float else "integers"
        raise ValueError(f"predictions column {column!r} must hold {what}: {err}") from err
    if kind is float:
        return out
    if not np.all(np.isfinite(out) & (out == np.round(out))):
        bad = pd.unique(values[~(np.isfinite(out) & (out == np.round(out)))])
        raise ValueError(
            f"predictions column {column!r} must hold integers, found {_examples(bad)}"
        )
    return out.astype(np.int64)


def _match_loci(long: pd.DataFrame, how: str, cube: xr.Dataset, log: list[str]) -> pd.DataFrame:
    """Add ``pos``; rows matching no cube locus get -1, names matching only another version
    of a cube locus -2 (both dropped in :func:`_finish`)."""
    n_loci = cube.sizes["locus"]
    if how == "position":
        pos = _numeric(long["locus"], "locus", int)
        long = long.assign(pos=np.where((pos >= 0) & (pos < n_loci), pos, -1))
        if (long["pos"] < 0).all():
            raise ValueError(
                f"none of the {len(long)} predicted positions lies in the cube's 0..{n_loci - 1} "
                f"(e.g. {_examples(pd.unique(long['locus']))}); if they are locus names, pass "
                "loci_by='name' (CLI: --loci-by name)"
            )
        return long
    if how == "coordinates":
        return _match_coordinates(long, cube)
    keys = _str_array(long["locus"].to_numpy())
    if "name" not in cube.coords:
        # A genome-bin cube: its names are chrom:start-end, so match their coordinates
        # (no 14-million-string index).
        parsed = pd.Series(keys).str.extract(_BIN_NAME)
        ok = parsed["chrom"].notna().to_numpy()
        coords = pd.DataFrame(
            {
                "chrom": parsed["chrom"].to_numpy(),
                "start": pd.to_numeric(parsed["start"]).to_numpy(),
                "end": pd.to_numeric(parsed["end"]).to_numpy(),
            }
        )
        matched = _coordinate_positions(coords[ok].reset_index(drop=True), cube)
        pos = np.full(len(keys), -1, dtype=np.int64)
        # Bins never share coordinates, so each parsed name matches at most one locus.
        pos[np.flatnonzero(ok)[matched["row"].to_numpy()]] = matched["pos"].to_numpy()
    else:
        names = _str_array(locus_names(cube))
        pos, other_version = _name_positions(keys, names)
        clash = other_version >= 0
        if clash.any():
            _warn(
                f"{len(pd.unique(keys[clash]))} locus name(s) match a cube locus only in "
                f"another version (e.g. {_examples(pd.unique(keys[clash]))}; the cube has "
                f"{_examples(pd.unique(names[other_version[clash]]))}): left out, since an id "
                "matches with or without its version suffix, never another version",
                log,
            )
            pos = np.where(clash, -2, pos)
    if (pos < 0).all():
        raise ValueError(_no_match_message(keys, cube))
    return long.assign(pos=pos)


def _name_positions(keys: np.ndarray, names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each key among the cube's names (first one when repeated), else by its
    name without a version suffix where that is unique in the cube and one side has no
    version (``ENSG1`` is ``ENSG1.5``, but ``ENSG1.4`` is not ``ENSG1.5``); -1 when absent.

    Returns
    -------
    pos : numpy.ndarray
        int64, shape (n_keys,).
    other_version : numpy.ndarray
        int64, shape (n_keys,): for a key left out because the cube holds another version
        of it, that locus's position; else -1.
    """
    index = pd.Index(names)
    key_index = pd.Index(keys)
    pos = index.get_indexer(key_index) if index.is_unique else _first_indexer(names, key_index)
    other_version = np.full(len(keys), -1, dtype=np.int64)
    miss = pos < 0
    if miss.any():
        bases = pd.Series(np.arange(len(names)), index=[_VERSION.sub("", n) for n in names])
        bases = bases[~bases.index.duplicated(keep=False)]
        missing = key_index[miss]
        stripped = pd.Index([_VERSION.sub("", k) for k in missing])
        found = pd.Index(bases.index).get_indexer(stripped)
        at = np.where(found >= 0, bases.to_numpy()[np.maximum(found, 0)], -1)
        key_versioned = np.asarray(stripped) != np.asarray(missing)
        name_versioned = np.asarray([_VERSION.search(str(names[i])) is not None for i in at])
        clash = (at >= 0) & key_versioned & name_versioned
        other_version[np.flatnonzero(miss)[clash]] = at[clash]
        at[clash] = -1
        pos[miss] = at
    return pos.astype(np.int64), other_version


def _first_indexer(names: np.ndarray, keys: pd.Index) -> np.ndarray:
    """Position of the first cube locus of each name in ``keys`` (-1 when absent)."""
    first = pd.Series(np.arange(len(names)), index=names)
    first = first[~first.index.duplicated(keep="first")]
    ix = pd.Index(first.index).get_indexer(keys)
    return np.where(ix >= 0, first.to_numpy()[np.maximum(ix, 0)], -1)


def _no_match_message(keys: np.ndarray, cube: xr.Dataset) -> str:
    shown = _examples(pd.unique(keys))
    cube_names = _examples(_str_array(locus_names(cube.isel(locus=slice(0, 5)))))
    msg = (
        f"none of the {len(keys)} predicted loci matches the cube's locus names (e.g. {shown}; "
        f"the cube has e.g. {cube_names})"
    )
    if all(re.fullmatch(r"-?\d+", str(k)) for k in pd.unique(keys)[:1000]):
        msg += (
            "; the locus column holds integers: if they are positions along the cube's "
            "locus dim, pass loci_by='position' (CLI: --loci-by position)"
        )
    return msg


def _cube_coordinates(cube: xr.Dataset) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "chrom": pd.Categorical(_str_array(cube["chrom"].values)),
            "start": np.asarray(cube["start"].values, dtype=np.int64),
            "end": np.asarray(cube["end"].values, dtype=np.int64),
            "pos": np.arange(cube.sizes["locus"], dtype=np.int64),
        }
    )


def _coordinate_positions(coords: pd.DataFrame, cube: xr.Dataset) -> pd.DataFrame:
    """``row`` (of ``coords``) and ``pos`` of every (row, cube locus) pair with equal
    ``chrom``, ``start``, ``end``; a row may match several loci, or none."""
    left = pd.DataFrame(
        {
            "chrom": _str_array(coords["chrom"].to_numpy()),
            "start": _numeric(coords["start"], "start", int),
            "end": _numeric(coords["end"], "end", int),
            "row": np.arange(len(coords), dtype=np.int64),
        }
    )
    right = _cube_coordinates(cube)
    left["chrom"] = pd.Categorical(left["chrom"], categories=right["chrom"].cat.categories)
    merged = left.merge(right, on=["chrom", "start", "end"], how="inner", sort=False)
    return merged[["row", "pos"]]


def _match_coordinates(long: pd.DataFrame, cube: xr.Dataset) -> pd.DataFrame:
    pairs = _coordinate_positions(long[list(COORDINATE_COLUMNS)], cube)
    if pairs.empty:
        raise ValueError(
            f"none of the {len(long)} predicted windows (e.g. "
            f"{_examples(pd.unique(long['locus']))}) has the chrom, start and end of a cube "
            "locus (0-based, half-open; the cube has e.g. "
            f"{_examples(_str_array(locus_names(cube.isel(locus=slice(0, 3)))))})"
        )
    out = long.drop(columns=list(COORDINATE_COLUMNS))
    hit = out.iloc[pairs["row"].to_numpy()].assign(pos=pairs["pos"].to_numpy())
    missed = out.drop(index=out.index[pairs["row"].unique()]).assign(pos=-1)
    return pd.concat([hit, missed], ignore_index=True)


def _finish(long: pd.DataFrame, how: str, cube: xr.Dataset, log: list[str]) -> Predictions:
    """Drop unknown cell types and loci, refuse duplicates, drop NaN scores."""
    cube_cts = [str(c) for c in cube["cell_type"].values]
    unknown_ct = sorted(set(long["cell_type"]) - set(cube_cts))
    if unknown_ct:
        if len(unknown_ct) == long["cell_type"].nunique():
            raise ValueError(
                f"no cell type of the predictions is in the cube: target cell type(s) "
                f"{unknown_ct} absent (the cube has {_examples(cube_cts, 10)})"
            )
        n = int(long["cell_type"].isin(unknown_ct).sum())
        _warn(
            f"{len(unknown_ct)} cell type(s) of the predictions are not in the cube "
            f"({_examples(unknown_ct)}); their {n} rows are dropped",
            log,
        )
        long = long[~long["cell_type"].isin(unknown_ct)]
    # -2: a name that matches only another version of a cube locus, already warned about
    long = long[long["pos"].to_numpy() != -2]
    unknown = long["pos"].to_numpy() == -1
    if unknown.any():
        bad = pd.unique(long["locus"].to_numpy()[unknown])
        what = "position(s)" if how == "position" else "locus name(s)"
        if how == "coordinates":
            what = "window(s)"
        _warn(
            f"{len(bad)} {what} of the predictions ({int(unknown.sum())} rows) are not "
            f"in the cube and are dropped, e.g. {_examples(bad)}",
            log,
        )
        long = long[~unknown]
    dup = long.duplicated(["cell_type", "pos"], keep=False)
    if dup.any():
        rows = long[dup]
        pairs = list(dict.fromkeys(zip(rows["locus"], rows["cell_type"], strict=True)))
        raise ValueError(
            f"{int(dup.sum())} prediction rows repeat a (locus, cell type) pair "
            f"({len(pairs)} distinct pairs), e.g. {_examples(pairs)}; keep one score per pair"
        )
    nan = ~np.isfinite(long["score"].to_numpy(dtype=np.float64))
    if nan.all():
        raise ValueError(f"all {len(nan)} matched scores are NaN or infinite")
    if nan.any():
        ex = list(zip(long["locus"][nan], long["cell_type"][nan], strict=True))
        _warn(
            f"{int(nan.sum())} of {len(nan)} scores are NaN or infinite and are dropped, "
            f"e.g. {_examples(ex)}",
            log,
        )
        long = long[~nan]
    table = long[["locus", "cell_type", "pos", "score"]].reset_index(drop=True)
    table["pos"] = table["pos"].astype(np.int64)
    targets = list(dict.fromkeys(table["cell_type"]))
    return Predictions(table, targets, how, log)
