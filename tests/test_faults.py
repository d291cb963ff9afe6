"""Faults and bad inputs, through the command line, for every verb that writes.

Each case asserts the exit status of its class (``pitfall.cli.EXIT_CODES``: 2 bad input,
3 environment), that the message is one line naming what failed, that no traceback reaches
the user, and that nothing already on disk changed. Classes:

1. configuration files: hypothesis-driven typos, deletions, wrong types and out-of-range
   values in manifests and sweep specs, plus the reported examples;
2. inputs: a bigWig of another assembly that is not the first file compared, an append whose
   featurization differs from the cube's, a bigWig with a header and no data, a cell type
   named twice, a locus set empty on the chromosomes asked for, gzipped inputs named as
   plain text;
3. outputs that hold what the command did not make: synth, build and sweep folders (and the
   message, which never suggests the command that just failed);
4. the environment: a full disk, a read-only disk (a small tmpfs; skipped where it cannot be
   mounted), a folder where a file is expected, a closed pipe, a read-only cube;
5. concurrency: two builds to one store, two sweeps into one results folder;
6. SIGKILL at random moments of a build, an experiment append and a sweep, then the rerun;
7. files written whole or not at all (:mod:`pitfall._atomic`): a track or an export on a full
   disk (the earlier file unchanged, no temporary left, the rerun works), a track where no
   file can be created (``/proc``, a read-only disk), an existing file or folder or a
   non-empty S3 prefix as the target, a snapshot the cube lacks;
8. storage and network: an S3 server (moto) and an HTTP input server started by the test on
   127.0.0.1 and stopped after the build's first commit, a missing bucket, ``gs://``
   without credentials (exit 3, naming the location and the cause);
9. processes: a PyTorch ``DataLoader`` whose workers are forked from the process that opened
   the cube, ``pitfall report real`` with an input missing for its second cube, progress
   bars and warnings on a stderr that is no terminal;
10. arguments of the public functions (loaders): checked before any work, the message naming
    the argument and what it may be.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pitfall import cli, cube, featurize, synth
from pitfall.manifest import dumps_manifest

sys.path.insert(0, str(Path(__file__).parent))
from test_featurize import _raw_manifest  # noqa: E402

QUICK_TRAINING = {"batches_per_epoch": 2, "max_epochs": 1, "patience": 1, "valid_size": 64}


# --------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture(scope="module")
def comp(tmp_path_factory) -> synth.SynthCompendium:
    return synth.synthesize(tmp_path_factory.mktemp("compendium"), "tiny")


@pytest.fixture(scope="module")
def tiny_cube(comp, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cubes") / "expr"
    featurize.build(comp.manifest, path, cell_types=["E003", "E004", "E037"], workers=0,
                    progress=False)  # fmt: skip
    return path


def run(*argv: str) -> tuple[int, str, str]:
    """``pitfall ARGV`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code: int, err: str, status: int, *words: str) -> None:
    assert code == status, (code, err)
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], (word, lines[0])


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (names and bytes), to show nothing changed."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _keys(tree: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for k, v in tree.items():
        out.append((*prefix, k))
        if isinstance(v, dict) and k not in ("signal",):
            out += _keys(v, (*prefix, k))
    return out


def _get(tree: dict, path: tuple):
    for k in path:
        tree = tree[k]
    return tree


def _set(tree: dict, path: tuple, value) -> None:
    for k in path[:-1]:
        tree = tree[k]
    tree[path[-1]] = value


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(len(word))
    op = rng.choice(["drop", "double", "swap", "change"])
    if op == "drop" and len(word) > 2:
        return word[:i] + word[i + 1 :]
    if op == "double":
        return word[:i] + word[i] + word[i:]
    if op == "swap" and i < len(word) - 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word[:i] + ("x" if word[i] != "x" else "y") + word[i + 1 :]


def _wrong_type(value):
    """A value of another type than ``value`` (never a legal spelling of the same value)."""
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return [value] if not value.endswith((".gz", ".bw", ".fa", ".toml")) else 7
    if isinstance(value, list):
        return ",".join(map(str, value))  # a string where a list is expected
    return "a table"


# --------------------------------------------------------------------------------------------
# 1. Configuration files

MANIFEST_REQUIRED = [("assembly",), ("loci",), ("target",), ("target", "kind")]
OUT_OF_RANGE = [
    (("locus_chunk",), 0, "at least 1"),
    (("locus_chunk",), -3, "at least 1"),
    (("target", "threshold"), math.nan, "finite"),
    (("target", "threshold"), math.inf, "finite"),
    (("loci", "upstream"), -5, "at least 0"),
    (("sequence", "length"), 100_000_000, "at most"),
]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_manifest_faults__every_mutation_is_one_line_exit_2_and_writes_nothing(
    comp, tmp_path, data
) -> None:
    raw = _raw_manifest(comp.manifest)
    raw["locus_chunk"] = 128
    rng = random.Random(data.draw(st.integers(0, 2**31)))
    kind = data.draw(st.sampled_from(["delete", "typo", "type", "range"]))
    keys = [k for k in _keys(raw) if k[0] != "cell_types" or len(k) == 3]
    if kind == "delete":
        path = data.draw(st.sampled_from(MANIFEST_REQUIRED))
        (_get(raw, path[:-1]) if len(path) > 1 else raw).pop(path[-1])
        words = [path[-1]]
    elif kind == "typo":
        path = data.draw(st.sampled_from([k for k in keys if k[0] != "cell_types" or len(k) == 3]))
        parent = _get(raw, path[:-1]) if len(path) > 1 else raw
        bad = _typo(path[-1], rng)
        if bad in parent or bad == path[-1]:
            return  # the typo spelled another real key: nothing wrong to find
        parent[bad] = parent.pop(path[-1])
        words = [repr(bad)]
    elif kind == "type":
        path = data.draw(st.sampled_from([k for k in keys if not isinstance(_get(raw, k), dict)]))
        _set(raw, path, _wrong_type(_get(raw, path)))
        words = [path[-1], "must be"]
    else:
        path, value, phrase = data.draw(st.sampled_from(OUT_OF_RANGE))
        if path[0] == "sequence" and "sequence" not in raw:
            raw["sequence"] = {"fasta": str(comp.root / "genome.fa")}
        _set(raw, path, value)
        words = [path[-1], phrase]
    manifest = tmp_path / f"m{rng.random()}.toml"
    manifest.write_text(dumps_manifest(raw))
    store = tmp_path / f"store{rng.random()}"
    code, _, err = run("build", manifest, "--store", store)
    assert_one_line_error(code, err, 2, str(manifest), *words)
    assert not store.exists()


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda r: r["target"].__setitem__("threshhold", r["target"].pop("threshold")),
         ["'threshhold'", "did you mean 'threshold'"]),
        (lambda r: r["loci"].__setitem__("upstrem", r["loci"].pop("upstream")),
         ["'upstrem'", "did you mean 'upstream'"]),
        (lambda r: r["signal"].__setitem__("marks", "H3K4me3"), ["marks", "must be a list"]),
        (lambda r: r["target"].__setitem__("kind", "expresion"), ["did you mean 'expression'"]),
        (lambda r: r.__setitem__("locus_chunk", 0), ["locus_chunk", "at least 1"]),
    ],
    ids=["threshold_typo", "upstream_typo", "string_for_list", "kind_typo", "zero_chunk"],
)  # fmt: skip
def test_manifest_faults__reported_examples(comp, tmp_path, edit, words) -> None:
    raw = _raw_manifest(comp.manifest)
    edit(raw)
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(dumps_manifest(raw))
    code, _, err = run("build", manifest, "--store", tmp_path / "s")
    assert_one_line_error(code, err, 2, str(manifest), *words)
    assert not (tmp_path / "s").exists()


def _spec(cube_path: Path) -> dict:
    return {
        "cube": str(cube_path),
        "task": "expression",
        "target": "E003",
        "settings": ["cross-chromosome"],
        "seeds": [0],
        "training": dict(QUICK_TRAINING),
        "models": [{"family": "dense", "inputs": "signal", "units": [[2]]}],
    }


def _toml(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return {math.inf: "inf", -math.inf: "-inf"}.get(value, "nan")
    return json.dumps(value)


def _write_spec(raw: dict, path: Path) -> Path:
    """A sweep spec as TOML: tables as sections, [[models]] as an array of tables."""
    lines = [f"{k} = {_toml(v)}" for k, v in raw.items()
             if not (k in ("training", "models") and isinstance(v, (dict, list)))]  # fmt: skip
    if isinstance(raw.get("training"), dict):
        lines += ["[training]", *(f"{k} = {_toml(v)}" for k, v in raw["training"].items())]
    for model in raw["models"] if isinstance(raw.get("models"), list) else []:
        lines += ["[[models]]", *(f"{k} = {_toml(v)}" for k, v in model.items())]
    path.write_text("\n".join(lines) + "\n")
    tomllib.loads(path.read_text())
    return path


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda r: r["training"].__setitem__("max_epoch", r["training"].pop("max_epochs")),
         ["'max_epoch'", "did you mean 'max_epochs'"]),
        (lambda r: r.__setitem__("seed", r.pop("seeds")), ["'seed'", "did you mean 'seeds'"]),
        (lambda r: r.__setitem__("setting", r.pop("settings")),
         ["'setting'", "did you mean 'settings'"]),
        (lambda r: r.__setitem__("task", "tads"), ["'tads'", "did you mean 'tad'"]),
        (lambda r: r.__setitem__("settings", "hybrid"), ["settings", "must be a list"]),
        (lambda r: r.__setitem__("settings", ["hybird"]), ["did you mean 'hybrid'"]),
        (lambda r: r.__setitem__("seeds", [-1]), ["seeds", "at least 0"]),
        (lambda r: r.pop("models"), ["models"]),
        (lambda r: r["models"][0].__setitem__("famly", r["models"][0].pop("family")),
         ["'famly'", "did you mean 'family'"]),
    ],
    ids=["max_epoch", "seed", "setting", "tads", "string_for_list", "setting_typo",
         "negative_seed", "no_models", "model_key_typo"],
)  # fmt: skip
def test_sweep_spec_faults__reported_examples(tiny_cube, tmp_path, edit, words) -> None:
    raw = _spec(tiny_cube)
    edit(raw)
    spec = _write_spec(raw, tmp_path / "sweep.toml")
    results = tmp_path / "results"
    code, _, err = run("sweep", spec, "--results", results)
    assert_one_line_error(code, err, 2, str(spec), *words)
    assert not results.exists()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_sweep_spec_faults__every_mutation_is_one_line_exit_2(tiny_cube, tmp_path, data) -> None:
    raw = _spec(tiny_cube)
    rng = random.Random(data.draw(st.integers(0, 2**31)))
    keys = [("cube",), ("task",), ("target",), ("settings",), ("seeds",), ("training",),
            *(("training", k) for k in raw["training"])]  # fmt: skip
    kind = data.draw(st.sampled_from(["typo", "type"]))
    path = data.draw(st.sampled_from(keys))
    parent = _get(raw, path[:-1]) if len(path) > 1 else raw
    if kind == "typo":
        bad = _typo(path[-1], rng)
        if bad in parent or bad == path[-1]:
            return
        parent[bad] = parent.pop(path[-1])
        words = [repr(bad)]
    else:
        value = parent[path[-1]]
        if isinstance(value, dict):
            parent[path[-1]] = "a table"
        else:
            parent[path[-1]] = _wrong_type(value)
        words = [path[-1]]
    spec = _write_spec(raw, tmp_path / f"sweep{rng.random()}.toml")
    results = tmp_path / f"results{rng.random()}"
    code, _, err = run("sweep", spec, "--results", results)
    assert_one_line_error(code, err, 2, str(spec), *words)
    assert not results.exists()


# --------------------------------------------------------------------------------------------
# 2. Inputs


def test_build__bigwig_of_another_assembly_not_first_is_named(comp, tmp_path) -> None:
    import numpy as np
    import pyBigWig

    raw = _raw_manifest(comp.manifest)
    first = Path(raw["cell_types"]["E003"]["signal"]["H3K4me3"])
    with pyBigWig.open(str(first)) as bw:
        sizes = bw.chroms()
    other = tmp_path / "other-assembly.bw"
    bw = pyBigWig.open(str(other), "w")
    bw.addHeader([(c, n + 1000) for c, n in sizes.items()])  # a different genome build
    bw.addEntries(["chr1"], np.array([0]), ends=np.array([10]), values=np.array([1.0]))
    bw.close()
    raw["cell_types"]["E004"]["signal"]["H3K27me3"] = str(other)
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(dumps_manifest(raw))
    code, _, err = run("build", manifest, "--store", tmp_path / "s")
    assert_one_line_error(code, err, 2, str(other), "another assembly")
    assert not (tmp_path / "s").exists()


def test_append__different_featurization_is_refused_and_cube_unchanged(
    comp, tiny_cube, tmp_path
) -> None:
    raw = _raw_manifest(comp.manifest)
    raw["locus_chunk"] = load_chunk(tiny_cube)
    raw["target"]["threshold"] = 2.0
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(dumps_manifest(raw))
    before = snapshot(tiny_cube)
    code, _, err = run("append", tiny_cube, manifest, "--cell-type", "E106")
    assert_one_line_error(code, err, 2, "target.threshold", "2.0", "0.5")
    assert snapshot(tiny_cube) == before


def load_chunk(path: Path) -> int:
    return int(cube.open_cube(path).attrs["locus_fingerprint_block"])


# --------------------------------------------------------------------------------------------
# 3. Outputs holding what the command did not make


def test_synth__refuses_a_folder_of_foreign_files(tmp_path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "manifest.toml").write_text("my own manifest\n")
    before = snapshot(tmp_path / "mine")
    code, _, err = run("synth", tmp_path / "mine", "--preset", "tiny")
    assert_one_line_error(code, err, 2, "no earlier `pitfall synth` wrote")
    assert snapshot(tmp_path / "mine") == before
    # Its own earlier output it may write over.
    assert run("synth", tmp_path / "fresh", "--preset", "tiny")[0] == 0
    assert run("synth", tmp_path / "fresh", "--preset", "tiny")[0] == 0


def test_build__store_holding_foreign_files_or_naming_a_file_is_refused(comp, tmp_path) -> None:
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    (tmp_path / "afile").write_text("a file")
    for store, words in ((folder, "not a pitfall cube"), (tmp_path / "afile", "afile")):
        before = snapshot(tmp_path)
        code, _, err = run("build", comp.manifest, "--store", store, "--workers", "0")
        assert code in (2, 3), err
        assert_one_line_error(code, err, code, *words)
        assert snapshot(tmp_path) == before


def test_sweep__results_folder_with_foreign_files_or_a_file_is_refused(tiny_cube, tmp_path) -> None:
    spec = _write_spec(_spec(tiny_cube), tmp_path / "sweep.toml")
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "thesis.tex").write_text("precious")
    (tmp_path / "afile").write_text("x")
    for results, words in ((tmp_path / "theirs", "thesis.tex"), (tmp_path / "afile", "a file")):
        before = snapshot(tmp_path)
        code, _, err = run("sweep", spec, "--results", results, "--workers", "0")
        assert_one_line_error(code, err, 2, *words)
        assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------------------------
# 4. The environment


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (the tests run as root here); skipped where it cannot be mounted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_build__full_disk_is_one_line_exit_3(comp, small_disk) -> None:
    # The compendium's cube needs more than 1 MiB.
    (small_disk / "filler").write_bytes(b"\0" * 900_000)
    code, _, err = run("build", comp.manifest, "--store", small_disk / "s", "--workers", "0")
    assert_one_line_error(code, err, 3, "disk is full")
    assert not (small_disk / "s").exists()


def test_build__read_only_disk_is_one_line_exit_3(comp, small_disk) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    code, _, err = run("build", comp.manifest, "--store", small_disk / "s", "--workers", "0")
    assert_one_line_error(code, err, 3, "read-only")


def test_cube_info__json_and_log_through_a_closed_pipe(tiny_cube) -> None:
    proc = subprocess.run(
        f"{sys.executable} -m pitfall.cli cube log {tiny_cube} | head -c 1 > /dev/null",
        shell=True, capture_output=True, text=True, executable="/bin/bash",
    )  # fmt: skip
    assert "Traceback" not in proc.stderr and "Broken pipe" not in proc.stderr, proc.stderr


def test_audit__json_naming_a_folder_is_one_line(tiny_cube, tmp_path) -> None:
    preds = tmp_path / "p.tsv"
    pd.DataFrame({"locus": ["x"], "cell_type": ["E003"], "score": [1.0]}).to_csv(
        preds, sep="\t", index=False
    )
    code, _, err = run("audit", preds, tiny_cube, "--json", tmp_path)
    assert code in (2, 3)
    assert_one_line_error(code, err, code)


# --------------------------------------------------------------------------------------------
# 5. Concurrency and 6. SIGKILL


def _cli(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pitfall.cli", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, **kw,
    )  # fmt: skip


@pytest.mark.slow
def test_build__two_builds_to_one_store_one_lands_whole(comp, tmp_path) -> None:
    store = tmp_path / "s"
    procs = [_cli("build", comp.manifest, "--store", store, "--workers", "0") for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes[0] == 0, results
    loser = next(err for code, err in results if code != 0) if codes[1] else ""
    if codes[1]:
        assert codes[1] == 2 and "Traceback" not in loser, loser
    ds = cube.open_cube(store)
    assert list(ds["cell_type"].values) == list(comp.cell_types)


@pytest.mark.slow
def test_sweep__two_sweeps_into_one_folder_keep_every_row(tiny_cube, tmp_path) -> None:
    results = tmp_path / "results"
    specs = []
    for i, units in enumerate(([[2]], [[3]])):
        raw = _spec(tiny_cube)
        raw["models"][0]["units"] = units
        specs.append(_write_spec(raw, tmp_path / f"sweep{i}.toml"))
    procs = [_cli("sweep", s, "--results", results, "--workers", "0") for s in specs]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read()
    table = pd.read_parquet(results / "results.parquet")
    assert len(table) == 2 and (table["status"] == "ok").all()


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.4, 1.5, 3.0])
def test_build__sigkill_at_a_random_moment_then_rerun(comp, tmp_path, delay) -> None:
    store = tmp_path / "s"
    proc = _cli("build", comp.manifest, "--store", store, "--workers", "0")
    time.sleep(delay * random.Random(delay).uniform(0.8, 1.2))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # The moment decides the state; each state has one right outcome of the same rerun.
    state = "absent"
    if store.exists():
        try:
            ds = cube.open_cube(store)
        except cube.CubeError as err:
            assert "unfinished build" in str(err), err
            state = "unfinished"
        except FileNotFoundError as err:
            assert "empty repository" in str(err), err
            state = "empty"
        else:
            assert list(ds["cell_type"].values) == list(comp.cell_types)
            state = "complete"
    before = snapshot(store)
    rerun = _cli("build", comp.manifest, "--store", store, "--workers", "0")
    out, err = rerun.communicate(timeout=300)
    if state == "complete":
        assert rerun.returncode == 2 and "already holds a cube" in err, err
        assert snapshot(store) == before
    else:
        assert rerun.returncode == 0, (state, err)
    assert list(cube.open_cube(store)["cell_type"].values) == list(comp.cell_types)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [1.0, 2.5, 4.0])
def test_append_experiments__sigkill_at_a_random_moment_then_rerun(comp, tmp_path, delay) -> None:
    raw = _raw_manifest(comp.manifest)
    del raw["cell_types"]["E003"]["signal"]["H3K27me3"]
    missing = tmp_path / "missing.toml"
    missing.write_text(dumps_manifest(raw))
    store = tmp_path / "s"
    featurize.build(missing, store, cell_types=["E003", "E004"], workers=0, progress=False)
    before = cube.open_cube(store).load()
    j = list(before["mark"].values).index("H3K27me3")
    args = ("append", store, comp.manifest, "--cell-type", "E003", "--mark", "H3K27me3")
    proc = _cli(*args)
    time.sleep(delay * random.Random(delay).uniform(0.8, 1.2))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # The moment decides the state: the cube as it was, or with the whole experiment.
    ds = cube.open_cube(store).load()
    done = bool(ds["observed"].sel(cell_type="E003", mark="H3K27me3"))
    if done:
        assert not np.isnan(ds["signal"].sel(cell_type="E003").values[:, j]).all()
        xr.testing.assert_identical(
            ds.sel(cell_type="E004").drop_attrs(), before.sel(cell_type="E004").drop_attrs()
        )
    else:
        xr.testing.assert_identical(ds.drop_attrs(), before.drop_attrs())
    rerun = _cli(*args)
    _, err = rerun.communicate(timeout=300)
    if done:
        assert rerun.returncode == 2 and "E003 already has mark H3K27me3" in err, err
    else:
        assert rerun.returncode == 0, err
    ds = cube.open_cube(store).load()
    assert bool(ds["observed"].all())
    # The experiment equals the one a build of the complete manifest writes.
    whole = tmp_path / "whole"
    featurize.build(comp.manifest, whole, cell_types=["E003"], workers=0, progress=False)
    np.testing.assert_array_equal(
        ds["signal"].sel(cell_type="E003").values,
        cube.open_cube(whole)["signal"].sel(cell_type="E003").values,
    )


@pytest.mark.slow
@pytest.mark.parametrize("delay", [2.0, 6.0])
def test_sweep__sigkill_at_a_random_moment_keeps_a_readable_table(
    tiny_cube, tmp_path, delay
) -> None:
    raw = _spec(tiny_cube)
    raw["seeds"] = [0, 1]
    raw["models"][0]["units"] = [[2], [3]]
    spec = _write_spec(raw, tmp_path / "sweep.toml")
    results = tmp_path / "results"
    proc = _cli("sweep", spec, "--results", results, "--workers", "0")
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if (results / "results.parquet").exists():
        before = pd.read_parquet(results / "results.parquet")  # never truncated
        assert set(before["status"]) <= {"ok", "failed"}
    rerun = _cli("sweep", spec, "--results", results, "--workers", "0")
    assert rerun.wait(timeout=600) == 0, rerun.stderr.read()
    table = pd.read_parquet(results / "results.parquet")
    assert len(table) == 4 and table["id"].is_unique


def test_build__a_creator_that_fails_spares_the_cube_another_build_committed(
    comp, tmp_path
) -> None:
    from pitfall import _repository as repository

    store = tmp_path / "s"
    _, created = repository.create_repository(store)  # build A made the repository...
    assert created
    featurize.build(comp.manifest, store, workers=0, progress=False)  # ...B reused it, won
    before = snapshot(store)
    # A fails now: its clean-up must find B's commits and leave them.
    assert repository.remove_new_repository(store, writer="build-a") is False
    assert snapshot(store) == before
    assert list(cube.open_cube(store)["cell_type"].values) == list(comp.cell_types)


# --------------------------------------------------------------------------------------------
# 7. Files written whole or not at all (pitfall._atomic): tracks and exports on a full disk,
#    in places where nothing can be written, onto folders


@pytest.fixture(scope="module")
def preds(tiny_cube, tmp_path_factory) -> Path:
    """Scores of every locus of E003 in the tiny cube, as a predictions table."""
    import numpy as np

    names = cube.locus_names(cube.open_cube(tiny_cube)).astype(object)
    path = tmp_path_factory.mktemp("preds") / "pred.tsv"
    scores = np.random.default_rng(0).random(len(names))
    pd.DataFrame({"locus": names, "cell_type": "E003", "score": scores}).to_csv(
        path, sep="\t", index=False
    )
    return path


def fill(disk: Path, leave: int) -> None:
    """Fill a tmpfs until ``leave`` bytes are free."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    (disk / "filler").write_bytes(b"\0" * max(0, free - leave))


def export_track(preds: Path, cube_path: Path, out: Path) -> tuple[int, str]:
    """``pitfall export-predictions`` in a subprocess (a crash must not take pytest along)."""
    proc = _cli("export-predictions", preds, cube_path, "--cell-type", "E003", "--out", out,
                "--overlaps", "max")  # fmt: skip
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize("leave", [0, 4096])
def test_export_predictions__full_disk_keeps_the_old_track__1(
    preds, tiny_cube, small_disk, leave
) -> None:
    track = small_disk / "x.bw"
    code, err = export_track(preds, tiny_cube, track)
    assert code == 0, err
    good = track.read_bytes()
    fill(small_disk, leave)
    code, err = export_track(preds, tiny_cube, track)
    assert_one_line_error(code, err, 3, "disk is full")
    assert track.read_bytes() == good
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "x.bw"]


def test_export_predictions__bedgraph_on_a_full_disk_leaves_no_part__1(
    preds, tiny_cube, small_disk
) -> None:
    fill(small_disk, 0)
    code, err = export_track(preds, tiny_cube, small_disk / "x.bedGraph")
    assert_one_line_error(code, err, 3, "disk is full")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


@pytest.mark.parametrize("where", ["/proc/x.bw", "/proc/x.bedGraph", "ro/x.bw"])
def test_export_predictions__unwritable_place_is_one_line_exit_3__8(
    preds, tiny_cube, small_disk, where
) -> None:
    out = Path(where) if where.startswith("/") else small_disk / "x.bw"
    if not where.startswith("/"):
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    code, err = export_track(preds, tiny_cube, out)
    assert_one_line_error(code, err, 3, str(out))
    assert not out.exists()


def test_export_predictions__out_naming_a_folder_is_refused__13(preds, tiny_cube, tmp_path) -> None:
    (tmp_path / "dir.bw").mkdir()
    before = snapshot(tmp_path)
    code, err = export_track(preds, tiny_cube, tmp_path / "dir.bw")
    assert_one_line_error(code, err, 2, str(tmp_path / "dir.bw"), "is a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.bw"]
    assert snapshot(tmp_path) == before


def test_atomic_path__a_failing_writer_leaves_the_old_file_and_no_temporary__1(tmp_path) -> None:
    from pitfall._atomic import atomic_path, atomic_write_text

    final = atomic_write_text(tmp_path / "x.json", "old")
    assert final.stat().st_mode & 0o777 == 0o666 & ~_umask()
    with pytest.raises(KeyboardInterrupt), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert final.read_text() == "old" and os.listdir(tmp_path) == ["x.json"]
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "theirs").write_text("keep")
    with (
        pytest.raises(FileExistsError, match="not empty"),
        atomic_path(tmp_path / "store", folder=True),
    ):
        pass
    assert sorted(os.listdir(tmp_path)) == ["store", "x.json"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_cube_export__full_disk_leaves_nothing_and_the_rerun_works__3(
    tiny_cube, small_disk
) -> None:
    out = small_disk / "plain.zarr"
    fill(small_disk, 64 * 1024)
    code, _, err = run("cube", "export", tiny_cube, out)
    assert_one_line_error(code, err, 3, "disk is full", str(out))
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]
    (small_disk / "filler").unlink()
    code, _, err = run("cube", "export", tiny_cube, out)
    assert code == 0, err
    import xarray as xr

    with xr.open_zarr(out) as plain:
        assert (plain["sequence"].values < 5).all() and plain.sizes["cell_type"] == 3


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--snapshot", "BOGUS"], ["--snapshot", "BOGUS"]),
        (["--zarr-format", "3"], ["afile", "is a file"]),
    ],
    ids=["bogus_snapshot", "onto_a_file"],
)
def test_cube_export__bad_arguments_are_exit_2__12(tiny_cube, tmp_path, args, words) -> None:
    (tmp_path / "afile").write_text("mine")
    out = tmp_path / ("afile" if "afile" in words else "plain.zarr")
    before = snapshot(tmp_path)
    code, _, err = run("cube", "export", tiny_cube, out, *args)
    assert_one_line_error(code, err, 2, *words)
    assert snapshot(tmp_path) == before and sorted(os.listdir(tmp_path)) == ["afile"]


def test_cube_export__s3_prefix_holding_objects_is_refused_in_pitfalls_words__13(
    tiny_cube, s3
) -> None:
    url = s3.url("export")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    s3.client().put_object(Bucket=bucket, Key=f"{prefix}/theirs.txt", Body=b"keep me")
    code, _, err = run("cube", "export", tiny_cube, url)
    assert_one_line_error(code, err, 2, url, "not empty")
    assert "mode" not in err
    assert list(s3.objects(url)) == [f"{prefix}/theirs.txt"]


# --------------------------------------------------------------------------------------------
# 2. Inputs (continued): what would build silently wrong


def test_build__bigwig_with_a_header_and_no_data_is_nan_with_a_warning__4(comp, tmp_path) -> None:
    import numpy as np
    import pyBigWig

    raw = _raw_manifest(comp.manifest)
    first = Path(raw["cell_types"]["E003"]["signal"]["H3K4me3"])
    with pyBigWig.open(str(first)) as bw:
        sizes = bw.chroms()
    empty = tmp_path / "E003-H3K4me3-empty.bw"
    bw = pyBigWig.open(str(empty), "w")
    bw.addHeader(list(sizes.items()))
    bw.close()
    raw["cell_types"]["E003"]["signal"]["H3K4me3"] = str(empty)
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(dumps_manifest(raw))
    store = tmp_path / "s"
    code, out, err = run("build", manifest, "--store", store, "--cell-type", "E003",
                         "--cell-type", "E004")  # fmt: skip
    assert code == 0, err
    assert f"{empty} has no data" in out + err
    ds = cube.open_cube(store)
    signal = ds["signal"].sel(mark="H3K4me3")
    assert np.isnan(signal.sel(cell_type="E003").values).all()
    assert np.isfinite(signal.sel(cell_type="E004").values).all()


def test_build__a_cell_type_given_twice_is_refused_before_any_work__5(comp, tmp_path) -> None:
    store = tmp_path / "s"
    code, _, err = run("build", comp.manifest, "--store", store, "--cell-type", "E003",
                       "--cell-type", "E004", "--cell-type", "E003")  # fmt: skip
    assert_one_line_error(code, err, 2, "--cell-type", "E003", "more than once")
    assert not store.exists()


def test_append__a_cell_type_given_twice_is_refused_before_any_work__5(comp, tmp_path) -> None:
    store = tmp_path / "s"
    featurize.build(comp.manifest, store, cell_types=["E003"], workers=0, progress=False)
    before = snapshot(store)
    code, _, err = run("append", store, comp.manifest, "--cell-type", "E004",
                       "--cell-type", "E004")  # fmt: skip
    assert_one_line_error(code, err, 2, "--cell-type", "E004", "more than once")
    assert snapshot(store) == before


def test_build__empty_locus_set_names_the_chromosome__14(comp, tmp_path) -> None:
    raw = _raw_manifest(comp.manifest)
    raw["chroms"] = ["chr4"]
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(dumps_manifest(raw))
    code, _, err = run("build", manifest, "--store", tmp_path / "s")
    assert_one_line_error(code, err, 2, str(manifest), "chr4", "no locus")
    assert not (tmp_path / "s").exists()


# --------------------------------------------------------------------------------------------
# 3. Outputs (continued) and 4. the environment (continued)


def test_build__store_of_foreign_files_does_not_suggest_the_failing_command__13(
    comp, tmp_path
) -> None:
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    code, _, err = run("build", comp.manifest, "--store", folder, "--workers", "0")
    assert_one_line_error(code, err, 2, str(folder), "choose a new --store")
    assert "pitfall build MANIFEST" not in err


def test_append__read_only_cube_names_the_cube__14(comp, small_disk) -> None:
    store = small_disk / "s"
    featurize.build(comp.manifest, store, cell_types=["E003"], workers=0, progress=False)
    before = snapshot(store)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    code, _, err = run("append", store, comp.manifest, "--cell-type", "E004")
    assert_one_line_error(code, err, 3, "read-only", str(store))
    assert snapshot(store) == before


# --------------------------------------------------------------------------------------------
# 8. Storage and network: servers that die mid-build, missing buckets, missing credentials


@pytest.fixture
def own_s3(monkeypatch, tmp_path):
    """A moto S3 server of this test alone (the test stops it), the environment pointing at it."""
    from conftest import S3_ENV, _wait_for_port, free_port

    moto = Path(sys.executable).with_name("moto_server")
    if not moto.exists():
        pytest.skip("moto[server] is not installed (pip install -e '.[dev]')")
    port = free_port()
    log = open(tmp_path / "moto.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    _wait_for_port(port, proc)
    endpoint = f"http://127.0.0.1:{port}"
    for k, v in {**S3_ENV, "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(k, v)
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="own")
    yield proc, endpoint
    proc.kill()
    proc.wait()
    log.close()


def _stop_at_first_commit(monkeypatch, stop) -> None:
    """Call ``stop()`` once the build's first commit is in (its later commits then fail)."""
    from pitfall import _repository as repository

    original, done = repository.pause_point, []

    def pause(name: str) -> None:
        original(name)
        if name == "after_commit" and not done:
            done.append(name)
            stop()

    monkeypatch.setattr(repository, "pause_point", pause)


@pytest.mark.slow
def test_build__s3_server_dying_mid_build_is_exit_3_naming_the_server__10(
    comp, own_s3, monkeypatch
) -> None:
    proc, endpoint = own_s3
    _stop_at_first_commit(monkeypatch, lambda: (proc.kill(), proc.wait()))
    store = "s3://own/cube"
    t0 = time.monotonic()
    code, _, err = run("build", comp.manifest, "--store", store, "--workers", "0",
                       "--cell-types-per-commit", "1")  # fmt: skip
    assert_one_line_error(code, err, 3, store, "cannot reach the server", endpoint)
    assert "internal error" not in err
    assert time.monotonic() - t0 < 120


@pytest.mark.slow
def test_build__http_input_server_dying_mid_build_is_exit_3_naming_the_server__10(
    comp, tmp_path, monkeypatch
) -> None:
    import http.server
    import shutil
    import threading

    from conftest import _RangeHandler

    www = tmp_path / "www"
    www.mkdir()
    raw = _raw_manifest(comp.manifest)

    def make(*args, **kw):
        return _RangeHandler(*args, directory=str(www), **kw)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    for spec in raw["cell_types"].values():
        for mark, path in spec["signal"].items():
            shutil.copy(path, www / Path(path).name)
            spec["signal"][mark] = f"{base}/{Path(path).name}"
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(dumps_manifest(raw))

    def stop() -> None:
        server.shutdown()
        server.server_close()

    _stop_at_first_commit(monkeypatch, stop)
    code, _, err = run("build", manifest, "--store", tmp_path / "s", "--workers", "0",
                       "--cell-types-per-commit", "1")  # fmt: skip
    assert_one_line_error(code, err, 3, base, "cannot reach the server")
    assert "not a readable bigWig" not in err
    assert not (tmp_path / "s").exists()


def test_cube_info__missing_bucket_is_named__11(s3) -> None:
    code, _, err = run("cube", "info", "s3://nobucket/x")
    assert_one_line_error(code, err, 3, "s3://nobucket/x", "does not exist", "NoSuchBucket")


def test_cube_info__gs_without_credentials_says_what_to_set_at_once__13(
    monkeypatch, tmp_path
) -> None:
    import http.client

    conn = http.client.HTTPConnection("169.254.169.254", 80, timeout=0.5)
    try:
        conn.request("GET", "/computeMetadata/v1/", headers={"Metadata-Flavor": "Google"})
        if conn.getresponse().getheader("Metadata-Flavor") == "Google":
            pytest.skip("Google's metadata server answers here: it may hold credentials")
    except OSError:
        pass
    finally:
        conn.close()
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_SERVICE_ACCOUNT",
                 "GOOGLE_SERVICE_ACCOUNT_PATH", "GOOGLE_SERVICE_ACCOUNT_KEY"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
    t0 = time.monotonic()
    code, _, err = run("cube", "info", "gs://lab-cubes/x")
    assert_one_line_error(code, err, 3, "gs://lab-cubes/x", "GOOGLE_APPLICATION_CREDENTIALS")
    assert "AWS_ENDPOINT_URL" not in err
    assert time.monotonic() - t0 < 2


# --------------------------------------------------------------------------------------------
# 9. Processes: data workers forked from a process that opened the cube

TORCH_FORK = """
import sys
from torch.utils.data import DataLoader
from pitfall import open_cube
from pitfall.loaders import Loader
cube = open_cube(sys.argv[1])
loader = Loader(cube, cube.sel(cell_type=["E003", "E004"]), seed=0, batches_per_epoch=4)
loader = DataLoader(loader.to_torch(), batch_size=None, num_workers=2)  # fork: Linux's default
try:
    print(sum(1 for _ in loader), "batches")
except RuntimeError as err:
    print(str(err).splitlines()[-1])
    sys.exit(3)
"""


def test_torch_dataloader__forked_workers_fail_at_once_asking_for_spawn__9(tiny_cube) -> None:
    pytest.importorskip("torch")
    proc = subprocess.Popen([sys.executable, "-c", TORCH_FORK, str(tiny_cube)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the DataLoader's forked workers hang")
    assert proc.returncode == 3, (out, err)
    assert "'spawn'" in out, out
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # no worker outlives the parent
        os.killpg(proc.pid, 0)


# --------------------------------------------------------------------------------------------
# 10. Arguments of the public functions: checked before any work, naming the argument and
#     what it may be


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"batches_per_epoch": 0}, ["batches_per_epoch", "at least 1", "0"]),
        ({"seed": None}, ["seed", "whole number", "None"]),
        ({"seed": -1}, ["seed", "at least 0"]),
        ({"inputs": "bogus"}, ["inputs", "'bogus'", "'signal'", "'sequence'", "'both'", "'random'"]),
        ({"batch_size": 0}, ["batch_size", "at least"]),
        ({"n_random": 0}, ["n_random", "at least 1"]),
        ({"shard": (2, 2)}, ["shard", "0 <= k < n"]),
    ],
    ids=["zero_batches", "seed_none", "negative_seed", "bogus_inputs", "zero_batch_size",
         "zero_random", "shard"],
)  # fmt: skip
def test_loader__bad_arguments_are_named_before_any_work__15(tiny_cube, kwargs, words) -> None:
    from pitfall.loaders import Loader

    ds = cube.open_cube(tiny_cube)
    with pytest.raises(ValueError) as caught:
        Loader(ds, ds.sel(cell_type=["E003", "E004"]), **kwargs)
    for word in words:
        assert word in str(caught.value), (word, str(caught.value))


@pytest.mark.parametrize("n", [0, -4, 2.5, None])
def test_loader__sample_of_no_pairs_is_named__15(tiny_cube, n) -> None:
    from pitfall.loaders import Loader

    ds = cube.open_cube(tiny_cube)
    loader = Loader(ds, ds.sel(cell_type=["E003", "E004"]), prefetch=False)
    with pytest.raises(ValueError, match=r"sample: n must be a whole number of at least 1"):
        loader.sample(n, 0)


# --------------------------------------------------------------------------------------------
# 2. Inputs (continued)


def test_build__gzipped_inputs_named_as_plain_text_are_read__15(comp, tmp_path) -> None:
    import shutil

    raw = _raw_manifest(comp.manifest)
    for key, name in ((("target", "table"), "rpkm.tsv"), (("loci", "tss"), "genes.gtf")):
        shutil.copy(_get(raw, key), tmp_path / name)  # gzipped, named without .gz
        _set(raw, key, str(tmp_path / name))
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(dumps_manifest(raw))
    code, _, err = run("build", manifest, "--store", tmp_path / "s", "--cell-type", "E003")
    assert code == 0, err
    assert cube.open_cube(tmp_path / "s").sizes["locus"] == 400


# --------------------------------------------------------------------------------------------
# 9. Processes and their output streams (continued)


def test_export_predictions__warnings_are_one_formatted_line__15(
    preds, tiny_cube, tmp_path
) -> None:
    table = pd.read_csv(preds, sep="\t")
    extra = pd.DataFrame({"locus": ["NOPE1"], "cell_type": ["E003"], "score": [0.5]})
    path = tmp_path / "pred.tsv"
    pd.concat([table, extra]).to_csv(path, sep="\t", index=False)
    code, err = export_track(path, tiny_cube, tmp_path / "x.bw")
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pitfall export-predictions: warning: "), err
    assert "NOPE1" in lines[0] and "load_predictions" not in err and ".py:" not in err


def test_report_real__a_missing_tads_file_is_named_before_any_cube_is_built__15(
    comp, tmp_path, monkeypatch
) -> None:
    from pitfall import datasets

    data = tmp_path / "data"
    (data / "roadmap").mkdir(parents=True)
    (data / "tads").mkdir()

    def roadmap_manifest(data_dir: Path, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "manifest.toml").write_text(dumps_manifest(_raw_manifest(comp.manifest)))
        return out_dir / "manifest.toml"

    def tads_manifest(data_dir: Path, out_dir: Path) -> Path:
        raise FileNotFoundError(f"{data_dir / 'tads' / 'hESC_domains_hg19.bed'}: missing")

    monkeypatch.setitem(datasets.FOLDER_MANIFESTS, "roadmap", roadmap_manifest)
    monkeypatch.setitem(datasets.FOLDER_MANIFESTS, "tads", tads_manifest)
    out = tmp_path / "out"
    code, _, err = run("report", "real", data, "--out", out, "--size", "quick")
    assert_one_line_error(code, err, 2, "hESC_domains_hg19.bed", "missing")
    assert not (out / "store" / "roadmap").exists()


def test_build__no_progress_bar_on_a_stderr_that_is_no_terminal__15(comp, tmp_path, capsys) -> None:
    featurize.build(comp.manifest, tmp_path / "s", workers=0, progress=True)
    captured = capsys.readouterr()
    assert "featurize:" not in captured.err and "block/s" not in captured.err, captured.err
