"""Sweeps: many (cube, split setting, model spec, seed) experiments -> one results table.

A sweep spec (TOML)::

    cube = "out/demo/store/expression"   # relative to the spec's folder
    task = "expression"                  # expression | tad: which paper split rules
    target = "E003"                      # or targets = ["E003", "E047"]: each one
    folds = [{test = ["chr1"], valid = ["chr2"]}, {test = ["chr2"], valid = ["chr1"]}]
    settings = ["cross-chromosome", "cross-cell-type", "hybrid"]
    seeds = [0]
    [training]                           # NeuralModel / GBMModel keywords
    batches_per_epoch = 400
    max_epochs = 100
    patience = 5
    [[models]]                           # a ModelSpec; a list of alternatives expands
    family = "seq_conv"                  # into a grid (for layer sizes: a list of lists)
    filters = [[8], [32, 32]]
    units = [16, 128]                    # alternatives? no: a layer-size list is one value

Layer-size fields (``units``, ``filters``, ``seq_units``) take one list (one value) or a list
of lists (alternatives); other fields take a value or a list of alternatives.

Every experiment becomes one row of a Parquet table, appended as soon as it finishes:
setting, inputs, family, spec, parameter count, AP on test, AP of each baseline on the same
test loci, epochs run, training time, seed, cube snapshot, package versions, status and
error. A restarted sweep skips the experiments whose rows are there (``ok`` or ``failed``;
``retry_failed`` runs the failed ones again). Experiments run in parallel on Dask: a local
cluster of ``workers`` processes, or an existing cluster (``scheduler``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
import tomllib
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from pitfall import _config_schema as config_schema
from pitfall import baselines, cube, splits, tasks
from pitfall._atomic import atomic_path
from pitfall._logs import progress_bars
from pitfall.models.spec import ModelSpec
from pitfall.storage import is_url

__all__ = [
    "Experiment",
    "RESULTS_FILE",
    "SweepError",
    "SweepSpec",
    "columns",
    "expand_models",
    "load_sweep",
    "make_split",
    "package_versions",
    "read_predictions",
    "read_results",
    "run_experiment",
    "run_sweep",
    "run_sweep_timed",
    "skipped_ids",
    "spec_schema",
    "sweep_from_dict",
]

RESULTS_FILE = "results.parquet"
_LAYER_FIELDS = ("units", "filters", "seq_units")
_VERSIONED = (
    "pitfall",
    "numpy",
    "xarray",
    "zarr",
    "icechunk",
    "dask",
    "numba",
    "keras",
    "tensorflow-cpu",
    "tensorflow",
    "xgboost-cpu",
    "xgboost",
)
_BEFORE_BASELINES = [
    "id",
    "task",
    "setting",
    "target",
    "test_chroms",
    "inputs",
    "family",
    "label",
    "spec",
    "n_params",
    "ap",
]
_AFTER_BASELINES = [
    "epochs",
    "train_seconds",
    "device",
    "seed",
    "snapshot",
    "versions",
    "status",
    "error",
    "finished_at",
]


def columns() -> list[str]:
    """The results table's columns: one ``ap_<name>`` per registered baseline."""
    return [
        *_BEFORE_BASELINES,
        *(b.column for b in baselines.BASELINES.values()),
        *_AFTER_BASELINES,
    ]


class SweepError(config_schema.ConfigError):
    """A sweep spec that cannot be run; the message names the file and key."""


@dataclass(frozen=True)
class Experiment:
    """One model to train and score: a cube, a split setting, a spec and a seed."""

    cube: str
    task: str
    setting: str
    target: str
    spec: ModelSpec
    training: tuple[tuple[str, Any], ...] = ()
    valid_cell_types: tuple[str, ...] | None = None
    #: Chromosome fold: test and validation chromosomes (empty: the task's, chr1 and chr2).
    test_chroms: tuple[str, ...] = ()
    valid_chroms: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """Stable id: the same experiment always gets the same id (restart skips it)."""
        parts: list[Any] = [
            self.cube,
            self.task,
            self.setting,
            self.target,
            self.spec.to_dict(),
            list(self.training),
            self.valid_cell_types,
        ]
        if self.test_chroms or self.valid_chroms:
            # only then, so that tables written before folds existed keep their ids
            parts.append([list(self.test_chroms), list(self.valid_chroms)])
        key = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    @property
    def input_kind(self) -> str:
        """What the figures colour by: sequence, signal, both, random or permuted."""
        return "permuted" if self.spec.permuted else self.spec.inputs


@dataclass
class SweepSpec:
    """A parsed sweep spec."""

    path: Path | None
    experiments: list[Experiment] = field(default_factory=list)


def _alternatives(name: str, value: Any) -> list[Any]:
    if name in _LAYER_FIELDS:
        if isinstance(value, list) and value and isinstance(value[0], list):
            return value
        return [value]
    return value if isinstance(value, list) else [value]


def expand_models(table: dict[str, Any], seeds: Iterable[int]) -> list[ModelSpec]:
    """The grid of :class:`ModelSpec` a ``[[models]]`` table describes, for every seed."""
    names = list(table)
    grids = [_alternatives(n, table[n]) for n in names]
    specs = []
    for combo in itertools.product(*grids):
        for seed in seeds:
            specs.append(
                ModelSpec.from_dict({**dict(zip(names, combo, strict=True)), "seed": seed})
            )
    return specs


def load_sweep(path: str | os.PathLike) -> SweepSpec:
    """Read a sweep spec (TOML) into experiments."""
    path = Path(path).resolve()
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such sweep spec") from None
    except tomllib.TOMLDecodeError as err:
        raise SweepError(f"{path}: not valid TOML ({err})") from err
    return sweep_from_dict(raw, root=path.parent, path=path)


def _training_keys() -> dict[str, config_schema.Key]:
    """Keywords the registered families' classes take (what ``[training]`` may set), typed by
    their defaults."""
    import inspect

    from pitfall.models import FAMILIES

    out: dict[str, config_schema.Key] = {}
    for family in FAMILIES.values():
        known = family.training_keywords()
        for cls in inspect.getmro(family.model):
            init = cls.__dict__.get("__init__")
            if init is None:
                continue
            for name, param in inspect.signature(init).parameters.items():
                if name not in known or name in out or name == "store":
                    continue
                out[name] = _key_for(param.default)
    return out


def _key_for(default: Any) -> config_schema.Key:
    # The default says the type; numbers are never negative here.
    if isinstance(default, bool):
        return config_schema.Key(bool)
    if isinstance(default, int):
        return config_schema.Key(int, low=0)
    if isinstance(default, float):
        return config_schema.Key(float, low=0)
    if isinstance(default, str):
        return config_schema.Key(str)
    return config_schema.Key((int, float, bool, str), low=0)


def spec_schema() -> config_schema.Table:
    """The sweep spec's declared schema (:mod:`pitfall._config_schema`)."""
    from dataclasses import fields

    value = config_schema.Key((int, float, bool, str, list))
    model_keys = {f.name: value for f in fields(ModelSpec) if f.name != "seed"}
    return config_schema.Table(
        {
            "cube": config_schema.Key(str, required=True, help="the cube: a path or a URL"),
            "task": config_schema.Key(str, choices=lambda: list(tasks.TASKS)),
            "target": config_schema.Key(str),
            "targets": config_schema.Key(list, items=str, unique=True, help="several targets"),
            "folds": config_schema.Key(
                list,
                each=config_schema.Table(
                    {
                        "test": config_schema.Key(list, items=str, required=True, unique=True),
                        "valid": config_schema.Key(list, items=str, required=True, unique=True),
                    }
                ),
                help="[[folds]] tables: test (and validation) chromosomes",
            ),
            "settings": config_schema.Key(list, items=str, unique=True, choices=splits.SETTINGS),
            "seeds": config_schema.Key(list, items=int, unique=True, low=0),
            "valid_cell_types": config_schema.Key(list, items=str, unique=True),
            "training": config_schema.Table(_training_keys()),
            "models": config_schema.Key(
                list, required=True, each=config_schema.Table(model_keys), help="[[models]] tables"
            ),
        }
    )


def sweep_from_dict(raw: dict[str, Any], *, root: Path, path: Path | None = None) -> SweepSpec:
    """Experiments of a sweep given as a dict (the TOML's shape), checked against its schema."""
    where = f"{path}: " if path else ""
    try:
        config_schema.check(raw, spec_schema(), path or "sweep spec")
    except config_schema.ConfigError as err:
        raise SweepError(str(err)) from None
    store = raw["cube"] if is_url(raw["cube"]) else str((root / raw["cube"]).resolve())
    task = tasks.get_task(raw.get("task", "expression")).name
    settings = raw.get("settings", list(splits.SETTINGS))
    unknown = [s for s in settings if s not in splits.SETTINGS]
    if unknown:
        raise SweepError(f"{where}settings {unknown} are not among {splits.SETTINGS}")
    seeds = raw.get("seeds", [0])
    training = tuple(sorted(raw.get("training", {}).items()))
    valid = raw.get("valid_cell_types")
    if "target" in raw and "targets" in raw:
        raise SweepError(f"{where}give target or targets, not both")
    targets = raw.get("targets") or [raw.get("target", "E003")]
    folds = [
        (tuple(f["test"]), tuple(f["valid"])) for f in raw.get("folds", [{"test": [], "valid": []}])
    ]
    experiments = []
    for i, table in enumerate(raw["models"]):
        try:
            specs = expand_models(table, seeds)
        except (ValueError, TypeError) as err:
            raise SweepError(f"{where}[[models]] number {i + 1}: {err}") from err
        for target, (test_chroms, valid_chroms), setting, spec in itertools.product(
            targets, folds, settings, specs
        ):
            experiments.append(
                Experiment(
                    cube=store,
                    task=task,
                    setting=setting,
                    target=target,
                    spec=spec,
                    training=training,
                    valid_cell_types=tuple(valid) if valid else None,
                    test_chroms=test_chroms,
                    valid_chroms=valid_chroms,
                )
            )
    return SweepSpec(path=path, experiments=experiments)


# --------------------------------------------------------------------------------------------
# One experiment (runs on a worker)


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a result."""
    out = {}
    for name in _VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


@lru_cache(maxsize=8)
def _open(path: str) -> Any:
    return cube.open_cube(path)


def make_split(ds: Any, exp: Experiment) -> splits.Split:
    """The paper's split of the experiment's setting on its cube."""
    kw: dict[str, Any] = {}
    if exp.valid_cell_types:
        kw["valid_cell_types"] = exp.valid_cell_types
    if exp.test_chroms:
        kw["test_chroms"] = exp.test_chroms
        kw["valid_chroms"] = exp.valid_chroms
    return tasks.get_task(exp.task).split(ds, exp.setting, exp.target, **kw)


@lru_cache(maxsize=64)
def _baseline_aps(path: str, split_json: str, task: str) -> dict[str, float]:
    """APs of the task's baselines on a split's test loci (once per split and process)."""
    ds = _open(path)
    split = splits.Split.from_dict(json.loads(split_json))
    return baselines.baseline_aps(ds, split, tasks.get_task(task).baselines)


def _training_for(exp: Experiment) -> dict[str, Any]:
    """The spec's ``[training]`` keywords that this model's family takes (its registry entry),
    and the cube's location as the store its loaders read chunks straight from."""
    from pitfall.models import training_keywords

    return training_keywords(exp.spec, {"store": exp.cube, **dict(exp.training)})


def run_experiment(exp: Experiment, predictions_dir: str | None = None) -> dict[str, Any]:
    """Train and score one experiment; a failure becomes a row with its error.

    With ``predictions_dir``, the test scores are also saved there as ``<id>.nc`` (a
    DataArray over the test cell types and loci, for partitioned evaluations).
    """
    row: dict[str, Any] = {
        "id": exp.id,
        "task": exp.task,
        "setting": exp.setting,
        "target": exp.target,
        "test_chroms": ",".join(exp.test_chroms) or "chr1",
        "inputs": exp.input_kind,
        "family": exp.spec.family,
        "label": exp.spec.label,
        "spec": json.dumps(exp.spec.to_dict(), sort_keys=True),
        "seed": exp.spec.seed,
        "versions": json.dumps(package_versions(), sort_keys=True),
    }
    t0 = time.perf_counter()
    try:
        from pitfall.models import make_model
        from pitfall.models.devices import pin_worker_gpu

        pin_worker_gpu()  # one GPU per worker, before TensorFlow or XGBoost start CUDA
        ds = _open(exp.cube)
        row["snapshot"] = ds.attrs.get("snapshot", "")
        split = make_split(ds, exp)
        train, valid, test = split.train(ds), split.valid(ds), split.test(ds)
        model = make_model(exp.spec, ds, **_training_for(exp)).fit(train, valid)
        scores = model.predict(test)
        row["ap"] = baselines.score_predictions(test, scores)[exp.target]
        if predictions_dir is not None:
            Path(predictions_dir).mkdir(parents=True, exist_ok=True)
            tmp = Path(predictions_dir) / f"{exp.id}.nc.tmp"
            scores.rename("score").astype("float32").to_netcdf(tmp)
            tmp.replace(Path(predictions_dir) / f"{exp.id}.nc")
        row["n_params"] = int(
            getattr(model, "n_params_", None) or getattr(model, "complexity_", 0) or 0
        )
        row["epochs"] = int(getattr(model, "epochs_run_", 0) or 0)
        row["train_seconds"] = float(getattr(model, "train_seconds_", time.perf_counter() - t0))
        row["device"] = str(getattr(model, "device_", "cpu"))
        row.update(_baseline_aps(exp.cube, json.dumps(split.to_dict(), sort_keys=True), exp.task))
        row["status"] = "ok"
        row["error"] = ""
    except Exception as err:  # a failed model is a result too: keep it, with its error
        row["status"] = "failed"
        row["error"] = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=3)}"
    row.setdefault("train_seconds", time.perf_counter() - t0)
    row["finished_at"] = pd.Timestamp.now(tz="UTC").isoformat()
    return row


# --------------------------------------------------------------------------------------------
# The driver


def read_predictions(results_dir: str | os.PathLike, experiment_id: str) -> Any:
    """The saved test scores of one experiment (``run_sweep(save_predictions=True)``)."""
    import xarray as xr

    path = Path(results_dir) / "predictions" / f"{experiment_id}.nc"
    with xr.open_dataarray(path) as da:
        return da.load()


def _skipped(table: pd.DataFrame, retry_failed: bool) -> set[str]:
    status = ["ok"] if retry_failed else ["ok", "failed"]
    return set(table.loc[table["status"].isin(status), "id"])


def skipped_ids(results_dir: str | os.PathLike, *, retry_failed: bool = False) -> set[str]:
    """Ids of the experiments a sweep into ``results_dir`` would not train: finished rows,
    and failed ones unless ``retry_failed`` (:func:`run_sweep`'s rule)."""
    return _skipped(read_results(results_dir), retry_failed)


def read_results(results_dir: str | os.PathLike) -> pd.DataFrame:
    """The results table of a sweep (empty with the right columns when there is none)."""
    path = Path(results_dir) / RESULTS_FILE
    if not path.exists():
        return pd.DataFrame(columns=columns())
    return pd.read_parquet(path)


def _write(results: pd.DataFrame, results_dir: Path) -> None:
    # Written whole, then renamed: a sweep killed mid-write never leaves a truncated table.
    with atomic_path(results_dir / RESULTS_FILE) as tmp:
        results.to_parquet(tmp, index=False)


def _add_row(results_dir: Path, row: dict[str, Any]) -> pd.DataFrame:
    """Add one finished row to the table on disk, keeping every other writer's rows.

    Several sweeps may share a results folder: under a file lock each reads the table as it
    is on disk now, replaces the row of the same experiment (a retried failure) and writes
    it back whole, so no finished row is lost.
    """
    import filelock

    results_dir.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(results_dir / f"{RESULTS_FILE}.lock")):
        table = read_results(results_dir)
        if len(table):
            table = table[table["id"] != row["id"]]
        new = _row_frame([row])
        table = pd.concat([t for t in (table, new) if len(t)], ignore_index=True)
        _write(table, results_dir)
    return table


_RESULTS_FILES = {RESULTS_FILE, f"{RESULTS_FILE}.lock", "predictions"}


def _check_results_dir(results_dir: Path) -> None:
    """Refuse a results folder holding files a sweep did not write."""
    if not results_dir.exists():
        return
    if not results_dir.is_dir():
        raise FileExistsError(f"{results_dir}: --results names a file, not a folder")
    foreign = sorted(
        p.name
        for p in results_dir.iterdir()
        if p.name not in _RESULTS_FILES and not p.name.endswith(".tmp")
    )
    if foreign:
        raise FileExistsError(
            f"{results_dir} holds files a sweep did not write ({', '.join(foreign[:3])}"
            f"{', ...' if len(foreign) > 3 else ''}); give --results a new or a sweep's folder"
        )


def _row_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    cols = columns()
    for col in cols:
        if col not in frame:
            frame[col] = pd.NA
    return frame[cols]


def run_sweep(
    experiments: Sequence[Experiment],
    results_dir: str | os.PathLike,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    retry_failed: bool = False,
    save_predictions: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Run experiments (skipping those already in the table) and return the whole table.

    Parameters
    ----------
    experiments
        From :func:`load_sweep` or built in Python.
    results_dir
        Folder of ``results.parquet``; rows are appended as experiments finish.
    workers
        Local Dask worker processes (one thread each); ``0`` runs in this process, one at a
        time (no Dask), which is what a debugger wants.
    scheduler
        Address of an existing Dask scheduler.
    retry_failed
        Run again the experiments whose rows say ``failed``.
    save_predictions
        Keep each model's test scores in ``results_dir/predictions/<id>.nc``.
    """
    results_dir = Path(results_dir)
    _check_results_dir(results_dir)
    pred_dir = str(results_dir / "predictions") if save_predictions else None
    done = read_results(results_dir)
    skip = _skipped(done, retry_failed)
    todo = [e for e in dict.fromkeys(experiments) if e.id not in skip]
    rows: list[dict[str, Any]] = []
    n_failed = 0

    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc="sweep", unit="model", disable=not progress_bars(progress))
    if len(experiments) - len(todo):
        bar.write(f"sweep: {len(experiments) - len(todo)} experiments already in {results_dir}")

    n_slots = 1 if workers == 0 and scheduler is None else (workers or 2)

    def record(row: dict[str, Any]) -> None:
        nonlocal n_failed, done
        rows.append(row)
        n_failed += row["status"] == "failed"
        done = _add_row(results_dir, row)
        bar.update(1)
        running = min(n_slots, len(todo) - len(rows))
        bar.set_postfix(
            running=running, failed=n_failed, last=f"{row['label']} {row['setting']}"[:36]
        )

    if workers == 0 and scheduler is None:
        for exp in todo:
            bar.set_postfix(running=exp.spec.label)
            record(run_experiment(exp, pred_dir))
    elif todo:
        from dask.distributed import as_completed

        from pitfall.cluster import dask_client

        # One thread per worker, and TensorFlow's pools sized to match, so n workers use n
        # cores instead of fighting over them.
        env = {
            "OMP_NUM_THREADS": "1",
            "TF_NUM_INTRAOP_THREADS": "1",
            "TF_NUM_INTEROP_THREADS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        with dask_client(workers=workers, scheduler=scheduler, env=env) as client:
            futures = [client.submit(run_experiment, e, pred_dir, pure=False) for e in todo]
            for fut in as_completed(futures):
                record(fut.result())
                fut.release()
    bar.close()
    return done


def run_sweep_timed(
    experiments: Sequence[Experiment],
    results_dir: str | os.PathLike,
    *,
    say: Callable[[str], None],
    **kwargs: Any,
) -> tuple[pd.DataFrame, int, float]:
    """:func:`run_sweep` for a report: says how many models it holds first, and returns
    with the table how many of them ``results_dir`` already held and the sweep's seconds.

    ``kwargs``: those of :func:`run_sweep`.
    """
    say(f"{len(experiments)} models to train or find in {results_dir}")
    done_before = skipped_ids(results_dir)
    n_found = sum(e.id in done_before for e in experiments)
    t0 = time.perf_counter()
    table = run_sweep(experiments, results_dir, **kwargs)
    return table, n_found, time.perf_counter() - t0
