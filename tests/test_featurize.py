"""Featurization: files -> cube, checked against naive numpy readings of the same files.

The oracles here read the files with their own libraries (gzip + str.split for the GTF,
pyBigWig ``values`` per base, pyfaidx, pandas) and never call ``pitfall.sources``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pyfaidx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pitfall import _repository as repository
from pitfall import cube, featurize, synth
from pitfall.featurize import writer
from pitfall.manifest import ManifestError, dumps_manifest, load_manifest
from pitfall.schema import root_attr

INPROC = {"workers": 1, "processes": False, "progress": False}
CODES = {"A": 0, "C": 1, "G": 2, "T": 3}
COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture(scope="module")
def comp(tmp_path_factory) -> synth.SynthCompendium:
    return synth.synthesize(tmp_path_factory.mktemp("compendium"), "tiny")


@pytest.fixture(scope="module")
def built(comp, tmp_path_factory) -> dict[str, Path]:
    """The expression and TAD cubes of the tiny compendium, built in-process."""
    root = tmp_path_factory.mktemp("cubes")
    out = {}
    for key, manifest in (("expr", comp.manifest), ("tad", comp.manifest_tad)):
        summary = featurize.build(manifest, root / key, **INPROC)
        # The tiny compendium's domain lists lack chr3: said, not silently zero.
        assert bool(summary.warnings) == (key == "tad"), summary.warnings
        out[key] = root / key
    return out


def _warned(summary, pattern: str) -> bool:
    return any(re.search(pattern, w) for w in summary.warnings)


def _raw_manifest(path: Path) -> dict:
    """A manifest as nested dicts with every path made absolute (so copies can move)."""
    raw = tomllib.loads(path.read_text())
    root = path.parent

    def absolute(p: str) -> str:
        return str((root / p).resolve())

    loci = raw["loci"]
    for kind in ("tss", "bins", "bed"):
        if kind in loci:
            loci[kind] = absolute(loci[kind])
    if "sequence" in raw:
        raw["sequence"]["fasta"] = absolute(raw["sequence"]["fasta"])
    if "table" in raw["target"]:
        raw["target"]["table"] = absolute(raw["target"]["table"])
    for spec in raw.get("cell_types", {}).values():
        spec["signal"] = {k: absolute(v) for k, v in spec.get("signal", {}).items()}
        if "target" in spec:
            spec["target"] = absolute(spec["target"])
    return raw


def _write(raw: dict, path: Path) -> Path:
    path.write_text(dumps_manifest(raw))
    return path


def _load(store: Path):
    return cube.open_cube(store).load()


def _assert_same_cube(a, b, cell_types=None) -> None:
    """Every variable and locus coordinate equal (NaN == NaN), over ``cell_types``."""
    cts = list(cell_types if cell_types is not None else a["cell_type"].values)
    a, b = a.sel(cell_type=cts), b.sel(cell_type=cts)
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    locus_coords = {c for c in ("strand", "name") if c in a.coords}
    assert locus_coords == {c for c in ("strand", "name") if c in b.coords}
    for name in (
        "chrom",
        "start",
        "end",
        *sorted(locus_coords),
        "cell_type_name",
        "cell_type_group",
    ):
        assert list(a[name].values) == list(b[name].values), name


def _committed(store: Path) -> list[list[str]]:
    """Cell types of each commit that wrote some, oldest first."""
    return [c.cell_types for c in reversed(cube.cube_log(store)) if c.cell_types]


def _chrom_sizes(path: Path) -> dict[str, int]:
    return {line.split()[0]: int(line.split()[1]) for line in path.read_text().splitlines()}


def _naive_genes(gtf: Path) -> pd.DataFrame:
    rows = []
    with gzip.open(gtf, "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            if f[2] != "gene":
                continue
            gid = re.search(r'gene_id "([^"]+)"', f[8]).group(1)
            rows.append((f[0], int(f[3]) - 1, int(f[4]), f[6], gid))
    return pd.DataFrame(rows, columns=["chrom", "start0", "end", "strand", "gene_id"])


def _naive_mean(bw, chrom: str, start: int, end: int, size: int) -> float:
    s, e = max(start, 0), min(end, size)
    v = np.asarray(bw.values(chrom, s, e, numpy=True), dtype=np.float64)
    return float(np.arcsinh(np.nan_to_num(v, nan=0.0)).mean())


def _naive_codes(fa: pyfaidx.Fasta, chrom: str, start: int, end: int, strand: str) -> np.ndarray:
    size = len(fa[chrom])
    text = str(fa[chrom][max(start, 0) : min(end, size)]).upper()
    text = "N" * max(0, -start) + text + "N" * max(0, end - size)
    codes = np.array([CODES.get(ch, 4) for ch in text], dtype=np.uint8)
    return COMPLEMENT[codes[::-1]] if strand == "-" else codes


def _check_signal(ds, comp, chrom_of, start_of, end_of, sizes) -> None:
    for ct in ds["cell_type"].values:
        for mark in ds["mark"].values:
            bw = pyBigWig.open(str(comp.bigwigs[str(ct)][str(mark)]))
            want = np.array(
                [
                    _naive_mean(bw, c, s, e, sizes[c])
                    for c, s, e in zip(chrom_of, start_of, end_of, strict=True)
                ]
            )
            bw.close()
            got = ds["signal"].sel(cell_type=ct, mark=mark).values
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"{ct} {mark}")


# --------------------------------------------------------------------------------------------
# 1. Values against naive oracles


def test_build__expression_cube_matches_naive_reading(comp, built) -> None:
    ds = _load(built["expr"])
    sizes = _chrom_sizes(comp.chrom_sizes)
    genes = _naive_genes(comp.gtf).set_index("gene_id")
    plus = genes["strand"] == "+"
    genes["w0"] = np.where(plus, genes["start0"] - 2000, genes["end"])
    genes["w1"] = np.where(plus, genes["start0"], genes["end"] + 2000)
    names = [str(n) for n in ds["name"].values]
    assert sorted(names) == sorted(genes.index)
    g = genes.loc[names]
    # The windows as made; the loci themselves clipped to the chromosome.
    length = g["chrom"].map(sizes)
    np.testing.assert_array_equal(ds["window_start"].values, g["w0"])
    np.testing.assert_array_equal(ds["window_end"].values, g["w1"])
    np.testing.assert_array_equal(ds["start"].values, np.maximum(g["w0"], 0))
    np.testing.assert_array_equal(ds["end"].values, np.minimum(g["w1"], length))
    assert cube.chrom_sizes(ds) == {c: sizes[c] for c in cube.chrom_order(g["chrom"])}
    assert list(ds["strand"].values) == list(g["strand"])
    # synth's edge genes: one window runs past a chromosome's start, one past its end.
    assert (g["w0"] < 0).sum() >= 1 and (g["w1"] > length).sum() >= 1
    assert list(ds["cell_type"].values) == list(comp.cell_types)

    _check_signal(ds, comp, g["chrom"], g["w0"], g["w1"], sizes)

    rpkm = pd.read_csv(comp.rpkm, sep="\t", index_col=False).set_index("gene_id")
    for ct in comp.cell_types:
        want = rpkm.loc[[re.sub(r"\.\d+$", "", n) for n in names], ct].to_numpy()
        np.testing.assert_array_equal(ds["label"].sel(cell_type=ct).values, want > 0.5)
        np.testing.assert_allclose(ds["value"].sel(cell_type=ct).values, want, rtol=1e-6)

    fa = pyfaidx.Fasta(str(comp.fasta), as_raw=True)
    want = np.stack(
        [
            _naive_codes(fa, c, s, e, st)
            for c, s, e, st in zip(g["chrom"], g["w0"], g["w1"], g["strand"], strict=True)
        ]
    )
    np.testing.assert_array_equal(ds["sequence"].values, want)


def test_build__records_each_input_file_checksum(comp, built) -> None:
    sources = root_attr(_load(built["expr"]).attrs, "cell_type_sources")
    assert sorted(sources) == sorted(comp.cell_types)
    for ct in comp.cell_types:
        want = {f"signal:{mk}": p for mk, p in comp.bigwigs[ct].items()}
        want["table"] = comp.rpkm
        assert sorted(sources[ct]) == sorted(want), ct
        for role, path in want.items():
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            assert sources[ct][role] == {"path": str(path), "sha256": digest}, (ct, role)


def test_build__tad_cube_matches_naive_reading(comp, built) -> None:
    ds = _load(built["tad"])
    sizes = _chrom_sizes(comp.chrom_sizes)
    bins = [
        (c, s, min(s + 40_000, n)) for c, n in sizes.items() for s in range(0, n, 40_000)
    ]  # chrom.sizes lists chr1..chr3 in order
    chrom_of, start_of, end_of = (np.array(x) for x in zip(*bins, strict=True))
    assert list(ds["chrom"].values) == list(chrom_of)
    np.testing.assert_array_equal(ds["start"].values, start_of)
    np.testing.assert_array_equal(ds["end"].values, end_of)

    _check_signal(ds, comp, chrom_of, start_of, end_of, sizes)

    for ct in comp.cell_types:
        want = np.zeros(len(bins))
        domains = pd.read_csv(comp.domains[ct], sep="\t", header=None)
        for c in sizes:
            on = chrom_of == c
            d = domains[domains[0] == c]
            if d.empty:  # a chromosome without domains is unknown, not "no boundary"
                want[on] = np.nan
                continue
            first = np.flatnonzero(on)[0]
            want[first + d[1].to_numpy() // 40_000] = 1
            want[first + (d[2].to_numpy() - 1) // 40_000] = 1
        np.testing.assert_array_equal(ds["label"].sel(cell_type=ct).values, want, err_msg=ct)
    assert np.isnan(ds["label"].values).any()  # the tiny compendium has such a chromosome

    fa = pyfaidx.Fasta(str(comp.fasta), as_raw=True)
    centre = (start_of + end_of) // 2
    want = np.stack(
        [
            _naive_codes(fa, c, m - 2000, m + 2000, ".")
            for c, m in zip(chrom_of, centre, strict=True)
        ]
    )
    np.testing.assert_array_equal(ds["sequence"].values, want)


def test_build__feature_window_is_the_middle_of_each_bin(comp, tmp_path) -> None:
    # The paper's TAD inputs: signal and sequence from the 2 kbp at the middle of each bin.
    raw = _raw_manifest(comp.manifest_tad)
    raw["features"] = {"window": 2000}
    raw["sequence"].pop("length", None)
    raw["cell_types"] = {ct: raw["cell_types"][ct] for ct in list(raw["cell_types"])[:2]}
    summary = featurize.build(_write(raw, tmp_path / "m.toml"), tmp_path / "s", **INPROC)
    assert summary.sequence_length == 2000
    ds = _load(tmp_path / "s")
    sizes = _chrom_sizes(comp.chrom_sizes)
    chrom_of, start_of, end_of = (ds[c].values for c in ("chrom", "start", "end"))
    assert (end_of - start_of).max() == 40_000  # the loci are still the 40 kb bins
    mid = (start_of + end_of) // 2
    _check_signal(ds, comp, chrom_of, mid - 1000, mid + 1000, sizes)
    fa = pyfaidx.Fasta(str(comp.fasta), as_raw=True)
    want = np.stack(
        [_naive_codes(fa, c, m - 1000, m + 1000, ".") for c, m in zip(chrom_of, mid, strict=True)]
    )
    np.testing.assert_array_equal(ds["sequence"].values, want)
    assert root_attr(ds.attrs, "featurization")["feature_window"] == 2000


def test_build__chrom_sizes_stored_from_sizes_file_fasta_or_bigwig_headers(
    comp, built, tmp_path
) -> None:
    sizes = _chrom_sizes(comp.chrom_sizes)
    tad = _load(built["tad"])  # genome bins: the [loci] bins sizes file
    assert cube.chrom_sizes(tad) == {c: sizes[c] for c in cube.chrom_order(tad["chrom"].values)}
    # Without a FASTA, the bigWig headers; the first TSS window still starts before chr1.
    raw = _raw_manifest(comp.manifest)
    del raw["sequence"]
    raw["cell_types"] = {ct: raw["cell_types"][ct] for ct in list(raw["cell_types"])[:1]}
    featurize.build(_write(raw, tmp_path / "m.toml"), tmp_path / "bw", **INPROC)
    ds = _load(tmp_path / "bw")
    bw = pyBigWig.open(str(next(iter(comp.bigwigs[ds["cell_type"].values[0]].values()))))
    header = bw.chroms()
    bw.close()
    assert cube.chrom_sizes(ds) == {c: header[c] for c in cube.chrom_order(ds["chrom"].values)}
    assert int(ds["window_start"].min()) < 0 <= int(ds["start"].min())
    # With neither (no FASTA, no signal), the cube says it stores none.
    del raw["signal"], raw["cell_types"]
    featurize.build(_write(raw, tmp_path / "m2.toml"), tmp_path / "none", **INPROC)
    assert cube.cube_info(tmp_path / "none")["chrom_sizes"] is None
    ds = _load(tmp_path / "none")
    assert int(ds["start"].min()) == 0 and int(ds["window_start"].min()) < 0


def test_build__process_cluster_equals_in_process(comp, built, tmp_path) -> None:
    # The default LocalCluster (2 worker processes) must write exactly what one thread does.
    summary = featurize.build(comp.manifest_tad, tmp_path / "tad", workers=2, progress=False)
    assert _warned(summary, "no domains on chr3")
    assert summary.cell_types == list(comp.cell_types)
    _assert_same_cube(_load(tmp_path / "tad"), _load(built["tad"]))


# --------------------------------------------------------------------------------------------
# 2. Append


def test_append__equals_full_build(comp, built, tmp_path) -> None:
    first = ["E003", "E037"]
    rest = [c for c in comp.cell_types if c not in first]
    store = tmp_path / "cube"
    featurize.build(comp.manifest, store, cell_types=first, cell_types_per_commit=1, **INPROC)
    summary = featurize.append(store, comp.manifest, rest, cell_types_per_commit=1, **INPROC)
    assert summary.cell_types == rest and len(summary.snapshots) == len(rest)
    ds = _load(store)
    assert list(ds["cell_type"].values) == first + rest
    _assert_same_cube(ds, _load(built["expr"]), comp.cell_types)
    # One commit per cell type, in the requested order (after the repository's own first).
    assert _committed(store) == [[c] for c in first + rest]


def test_append__small_cell_types_share_commits(comp, built, tmp_path) -> None:
    # The tiny compendium's cell types are far below COMMIT_MIN_VALUES: by default a build
    # and an append each make one commit; two per commit gives runs of two, in order.
    first = ["E003", "E037"]
    rest = [c for c in comp.cell_types if c not in first]
    store, pairs = tmp_path / "cube", tmp_path / "pairs"
    featurize.build(comp.manifest, store, cell_types=first, **INPROC)
    summary = featurize.append(store, comp.manifest, rest, **INPROC)
    assert len(summary.snapshots) == 1
    assert _committed(store) == [first, rest]
    _assert_same_cube(_load(store), _load(built["expr"]), comp.cell_types)
    featurize.build(comp.manifest, pairs, cell_types_per_commit=2, **INPROC)
    cts = list(comp.cell_types)
    assert _committed(pairs) == [cts[i : i + 2] for i in range(0, len(cts), 2)]
    _assert_same_cube(_load(pairs), _load(built["expr"]), comp.cell_types)


@pytest.mark.parametrize(
    ("n", "values", "per_commit", "want"),
    [
        (5, 10**6, None, [[0], [1], [2], [3], [4]]),  # large: one each
        (5, 10**6 + 1, None, [[0], [1], [2], [3], [4]]),
        (5, 400_000, None, [[0, 1, 2], [3, 4]]),  # ceil(1e6 / 4e5) = 3 per commit
        (3, 1, None, [[0, 1, 2]]),
        (4, 1, 3, [[0, 1, 2], [3]]),
        (0, 5, None, []),
    ],
)
def test_commit_batches__hand_checked(n, values, per_commit, want) -> None:
    assert writer.COMMIT_MIN_VALUES == 10**6
    assert writer.commit_batches(n, values, per_commit) == want


def test_commit_batches__zero_per_commit_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        writer.commit_batches(3, 10, 0)


@pytest.mark.parametrize(
    ("n", "values", "threads", "want"),
    [
        # the demo preset (3,000 genes x 6): 2 rounds of tasks per thread, as even as possible
        (
            18,
            18_000,
            2,
            [list(range(0, 5)), list(range(5, 10)), list(range(10, 14)), list(range(14, 18))],
        ),
        # one thread: 6 cell types carry the 100,000 values (ceil(1e5 / 18,000) = 6)
        (18, 18_000, 1, [list(range(a, a + 6)) for a in range(0, 18, 6)]),
        # 6 tasks of 3 rounded up to 8 (a multiple of 4 threads), as even as possible
        (18, 18_000, 4, [[0, 1, 2], [3, 4, 5]] + [[k, k + 1] for k in range(6, 18, 2)]),
        (5, 10**6, 2, [[0], [1], [2], [3], [4]]),  # large: one each, never more than n
        (7, 50_000, 1, [[0, 1], [2, 3], [4, 5], [6]]),  # ceil(1e5 / 5e4) = 2 per task
        # the tiny compendium in one thread (the ``built`` cubes): two tasks of three, checked
        # against the naive readings above
        (6, 400 * 6, 1, [[0, 1, 2], [3, 4, 5]]),
        (1, 10, 4, [[0]]),
        (0, 10, 2, []),
    ],
)
def test_task_groups__hand_checked(n, values, threads, want) -> None:
    assert (writer.TASK_MIN_VALUES, writer.TASK_ROUNDS) == (100_000, 2)
    assert writer.task_groups(n, values, threads) == want


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["chr1", "chr2", "chrX"]), st.integers(0, 10**6), st.integers(0, 5000)
        ),
        max_size=30,
    )
)
def test_extents__naive_min_max_per_chromosome(rows) -> None:
    from pitfall import loci as loci_mod
    from pitfall.featurize.plan import _extents

    # Unsorted on purpose: a chromosome may come back in several runs.
    chrom = [c for c, _, _ in rows]
    start = np.array([s for _, s, _ in rows], dtype=np.int64)
    table = loci_mod.LocusTable.from_columns(chrom, start, start + [n for *_, n in rows])
    want: dict[str, tuple[int, int]] = {}
    for c, s, n in rows:
        lo, hi = want.get(c, (s, s + n))
        want[c] = (min(lo, s), max(hi, s + n))
    got = _extents(table)
    assert got == want and list(got) == list(want)  # first-appearance order too


def test_append__overtaken_batch_is_redone_at_the_new_tip(comp, built, tmp_path, monkeypatch):
    # Another appender commits between this append's writes and its commit: the batch's
    # commit conflicts, and both of its cell types are written again after the other's.
    store = tmp_path / "cube"
    featurize.build(comp.manifest, store, cell_types=["E003"], **INPROC)
    original, overtaken = repository.pause_point, []

    def pause(name: str) -> None:
        if name == "after_write" and not overtaken:
            overtaken.append(name)
            featurize.append(store, comp.manifest, ["E116"], **INPROC)
        original(name)

    monkeypatch.setattr(repository, "pause_point", pause)
    summary = featurize.append(store, comp.manifest, ["E004", "E037"], **INPROC)
    assert overtaken and summary.retries == 1 and len(summary.snapshots) == 1
    assert _committed(store) == [["E003"], ["E116"], ["E004", "E037"]]
    ds = _load(store)
    assert list(ds["cell_type"].values) == ["E003", "E116", "E004", "E037"]
    _assert_same_cube(ds, _load(built["expr"]), ["E003", "E116", "E004", "E037"])


def test_append__cell_type_already_present_is_refused(comp, built) -> None:
    before = cube.cube_log(built["expr"])
    with pytest.raises(cube.CubeError, match=r"\['E003'\] are already in the cube"):
        featurize.append(built["expr"], comp.manifest, ["E003"], **INPROC)
    assert cube.cube_log(built["expr"]) == before


# --------------------------------------------------------------------------------------------
# 3. Bad inputs


def _variant(comp, tmp_path: Path, tad: bool = False) -> tuple[dict, Path]:
    raw = _raw_manifest(comp.manifest_tad if tad else comp.manifest)
    return raw, tmp_path / "manifest.toml"


def _assert_failed_build(manifest: Path, store: Path, exc, *patterns: str) -> None:
    with pytest.raises(exc) as info:
        featurize.build(manifest, store, **INPROC)
    for p in patterns:
        assert re.search(p, str(info.value)), (p, str(info.value))
    assert not store.exists()


def _assert_bad_file_named(raw: dict, path: Path, exc, bad: Path, *patterns: str) -> None:
    """A build from ``raw`` (written to ``path``, the store beside it) fails with ``exc``
    naming ``bad`` and matching ``patterns``."""
    store = path.parent / "s"
    _assert_failed_build(_write(raw, path), store, exc, re.escape(str(bad)), *patterns)


def test_build__missing_file_is_named(comp, tmp_path) -> None:
    raw, path = _variant(comp, tmp_path)
    gone = tmp_path / "gone.bw"
    raw["cell_types"]["E106"]["signal"]["H3K27me3"] = str(gone)
    _assert_bad_file_named(raw, path, FileNotFoundError, gone, "no such file")


def test_build__directory_instead_of_file_is_named(comp, tmp_path) -> None:
    raw, path = _variant(comp, tmp_path)
    folder = tmp_path / "a_folder.bw"
    folder.mkdir()
    raw["cell_types"]["E003"]["signal"]["H3K4me3"] = str(folder)
    _assert_bad_file_named(raw, path, ValueError, folder, "directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_build__unreadable_file_is_named(comp, tmp_path) -> None:
    raw, path = _variant(comp, tmp_path)
    locked = tmp_path / "locked.bw"
    shutil.copy(comp.bigwigs["E003"]["H3K4me3"], locked)
    locked.chmod(0)
    raw["cell_types"]["E003"]["signal"]["H3K4me3"] = str(locked)
    _assert_bad_file_named(raw, path, PermissionError, locked, "readable")


def _rewrite_bigwig(src: Path, dst: Path, rename=lambda c: c, keep=lambda c: True) -> None:
    """Copy a bigWig run by run, renaming or dropping chromosomes."""
    with pyBigWig.open(str(src)) as bw_in:
        chroms = {c: n for c, n in bw_in.chroms().items() if keep(c)}
        out = pyBigWig.open(str(dst), "w")
        out.addHeader([(rename(c), n) for c, n in chroms.items()])
        for c in chroms:
            runs = bw_in.intervals(c) or ()
            if runs:
                s, e, v = (list(x) for x in zip(*runs, strict=True))
                out.addEntries([rename(c)] * len(s), s, ends=e, values=v)
        out.close()


def test_build__chromosome_spelling_mismatch_names_both(comp, tmp_path) -> None:
    raw, path = _variant(comp, tmp_path)
    bad = tmp_path / "ensembl_names.bw"
    _rewrite_bigwig(comp.bigwigs["E004"]["H3K9me3"], bad, rename=lambda c: c[3:])
    raw["cell_types"]["E004"]["signal"]["H3K9me3"] = str(bad)
    _assert_bad_file_named(raw, path, ValueError, bad, "'1'", "'chr1'")


def test_build__bigwig_lacking_a_chromosome_is_nan_there_with_warning(
    comp, built, tmp_path
) -> None:
    raw, path = _variant(comp, tmp_path)
    partial = tmp_path / "no_chr2.bw"
    _rewrite_bigwig(comp.bigwigs["E037"]["H3K4me1"], partial, keep=lambda c: c != "chr2")
    raw["cell_types"]["E037"]["signal"]["H3K4me1"] = str(partial)
    summary = featurize.build(_write(raw, path), tmp_path / "s", **INPROC)
    assert _warned(summary, re.escape(str(partial)) + ".*chr2")
    assert len([w for w in summary.warnings if str(partial) in w]) == 1  # said once
    ds, full = _load(tmp_path / "s"), _load(built["expr"])
    on_chr2 = ds["chrom"].values == "chr2"
    sig = ds["signal"].sel(cell_type="E037", mark="H3K4me1").values
    assert np.isnan(sig[on_chr2]).all() and not np.isnan(sig[~on_chr2]).any()
    full["signal"].loc[{"cell_type": "E037", "mark": "H3K4me1"}] = np.where(
        on_chr2, np.nan, full["signal"].sel(cell_type="E037", mark="H3K4me1").values
    )
    _assert_same_cube(ds, full)


def test_build__duplicate_gene_ids_in_gtf(comp, tmp_path) -> None:
    raw, path = _variant(comp, tmp_path)
    lines = gzip.open(comp.gtf, "rt").read().splitlines(keepends=True)
    gene = next(line for line in lines if "\tgene\t" in line)
    gtf = tmp_path / "dups.gtf"
    gtf.write_text("".join(lines) + gene)
    raw["loci"]["tss"] = str(gtf)
    gid = re.search(r'gene_id "([^"]+)"', gene).group(1)
    _assert_bad_file_named(raw, path, ValueError, gtf, "duplicate", gid)


def test_build__non_numeric_expression_value_names_line_and_gene(comp, tmp_path) -> None:
    raw, path = _variant(comp, tmp_path)
    lines = gzip.open(comp.rpkm, "rt").read().splitlines(keepends=True)
    fields = lines[5].split("\t")
    fields[2] = "n/a?"
    lines[5] = "\t".join(fields)
    table = tmp_path / "rpkm.tsv"
    table.write_text("".join(lines))
    raw["target"]["table"] = str(table)
    _assert_bad_file_named(raw, path, ValueError, table, "line 6", fields[0], "non-numeric")


def test_build__cell_type_absent_from_expression_table(comp, tmp_path) -> None:
    raw, path = _variant(comp, tmp_path)
    rpkm = pd.read_csv(comp.rpkm, sep="\t", index_col=False).drop(columns="E113")
    table = tmp_path / "rpkm.tsv"
    rpkm.to_csv(table, sep="\t", index=False)
    raw["target"]["table"] = str(table)
    _assert_bad_file_named(raw, path, ValueError, table, "E113", "not columns")


def _peaks_manifest(comp, tmp_path: Path, peaks: dict[str, Path]) -> Path:
    raw = {
        "assembly": "synth1",
        "loci": {"bins": str(comp.chrom_sizes), "bin_size": 200_000},
        "target": {"kind": "peaks"},
        "cell_types": {ct: {"name": ct, "target": str(p)} for ct, p in peaks.items()},
    }
    return _write(raw, tmp_path / "peaks.toml")


def test_build__peaks(comp, tmp_path) -> None:
    # narrowPeak summits (column 10) place the label; a chromosome without peaks is NaN.
    good = tmp_path / "good.narrowPeak"
    good.write_text(
        "chr1\t199000\t199600\t.\t0\t.\t1\t1\t1\t500\n"  # summit 199500: bin 0
        "chr1\t199900\t200500\t.\t0\t.\t1\t1\t1\t200\n"  # summit 200100: bin 1
        "chr2\t10\t20\t.\t0\t.\t1\t1\t1\t-1\n"  # no summit: midpoint 15, bin 0 of chr2
    )
    summary = featurize.build(
        _peaks_manifest(comp, tmp_path, {"X": good}), tmp_path / "s", **INPROC
    )
    assert _warned(summary, "no peaks on chr3")
    ds = _load(tmp_path / "s")
    label = pd.Series(ds["label"].sel(cell_type="X").values)
    chrom = pd.Series(ds["chrom"].values)
    assert label[chrom == "chr1"].tolist() == [1, 1, 0, 0, 0]
    assert label[chrom == "chr2"].tolist() == [1, 0, 0, 0, 0]
    assert label[chrom == "chr3"].isna().all()


def test_build__empty_peak_file_is_named(comp, tmp_path) -> None:
    empty = tmp_path / "empty.narrowPeak"
    empty.write_text("")
    manifest = _peaks_manifest(comp, tmp_path, {"X": empty})
    _assert_failed_build(manifest, tmp_path / "s", ValueError, re.escape(str(empty)), "no peaks")


def _truncated_bigwig(comp, raw: dict, tmp_path: Path) -> Path:
    """The first half of E113's H3K36me3 bigWig, put in its place in ``raw``."""
    cut = tmp_path / "cut.bw"
    data = comp.bigwigs["E113"]["H3K36me3"].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    raw["cell_types"]["E113"]["signal"]["H3K36me3"] = str(cut)
    return cut


def _truncated_fasta(comp, raw: dict, tmp_path: Path) -> Path:
    """The first 90% of the genome FASTA, put in its place in ``raw``."""
    fa = tmp_path / "genome.fa"
    data = comp.fasta.read_bytes()
    fa.write_bytes(data[: int(len(data) * 0.9)])
    raw["sequence"]["fasta"] = str(fa)
    return fa


def test_build__truncated_bigwig_is_named(comp, tmp_path) -> None:
    raw, path = _variant(comp, tmp_path)
    cut = _truncated_bigwig(comp, raw, tmp_path)
    _assert_bad_file_named(raw, path, ValueError, cut, "not a readable bigWig")


def test_build__corrupt_bigwig_data_fails_in_task_with_its_own_message(comp, tmp_path) -> None:
    # Header and index intact, data blocks garbled: only the task reading them can tell. Its
    # error must reach the caller as the original ValueError naming the file.
    raw, path = _variant(comp, tmp_path)
    bad = tmp_path / "garbled.bw"
    data = bytearray(comp.bigwigs["E116"]["H3K4me3"].read_bytes())
    n = len(data)
    data[n // 3 : n // 3 + 2000] = np.random.default_rng(0).bytes(2000)
    bad.write_bytes(bytes(data))
    raw["cell_types"]["E116"]["signal"]["H3K4me3"] = str(bad)
    _assert_bad_file_named(raw, path, ValueError, bad, "not a readable bigWig")


def test_build__truncated_fasta_with_stale_index(comp, tmp_path) -> None:
    raw, path = _variant(comp, tmp_path)
    fa = _truncated_fasta(comp, raw, tmp_path)
    pyfaidx.Faidx(str(comp.fasta)).close()  # the whole file's index (if no build made it yet)
    shutil.copy(comp.fasta.with_suffix(".fa.fai"), tmp_path / "genome.fa.fai")  # newer: trusted
    _assert_bad_file_named(raw, path, ValueError, fa, "truncated")


def test_build__truncated_fasta_without_index(comp, tmp_path) -> None:
    # Indexed afresh, the cut file looks like a valid FASTA with a short chr3: the bigWigs'
    # chromosome sizes give it away.
    raw, path = _variant(comp, tmp_path)
    fa = _truncated_fasta(comp, raw, tmp_path)
    _assert_bad_file_named(raw, path, ValueError, fa, "chr3", "truncated")


def test_build__corrupt_fasta_is_named(comp, tmp_path) -> None:
    raw, path = _variant(comp, tmp_path)
    fa = tmp_path / "genome.fa"
    lines = comp.fasta.read_text().splitlines(keepends=True)
    lines[100] = lines[100][:25] + "\n"  # one short line inside chr1
    fa.write_text("".join(lines))
    raw["sequence"]["fasta"] = str(fa)
    _assert_bad_file_named(raw, path, ValueError, fa, "cannot be read as FASTA")


def test_build__rerun_after_failure_leaves_no_leftovers(comp, tmp_path) -> None:
    raw, path = _variant(comp, tmp_path)
    good = raw["cell_types"]["E003"]["signal"]["H3K4me3"]
    raw["cell_types"]["E003"]["signal"]["H3K4me3"] = str(tmp_path / "gone.bw")
    store = tmp_path / "s"
    _assert_failed_build(_write(raw, path), store, FileNotFoundError, "gone.bw")
    raw["cell_types"]["E003"]["signal"]["H3K4me3"] = good
    featurize.build(_write(raw, path), store, **INPROC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gone.bw", "manifest.toml", "s"][1:]
    assert list(cube.open_cube(store)["cell_type"].values) == list(comp.cell_types)


def test_append__failure_leaves_cube_unchanged(comp, tmp_path) -> None:
    raw, path = _variant(comp, tmp_path)
    store = tmp_path / "s"
    featurize.build(comp.manifest, store, cell_types=["E003", "E004"], **INPROC)
    before_log, before = cube.cube_log(store), _load(store)
    cut = _truncated_bigwig(comp, raw, tmp_path)
    with pytest.raises(ValueError, match=re.escape(str(cut))):
        featurize.append(store, _write(raw, path), ["E037", "E113"], **INPROC)
    assert cube.cube_log(store) == before_log
    _assert_same_cube(_load(store), before)


# --------------------------------------------------------------------------------------------
# 4. Manifest errors


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda raw: raw.update(colour="blue"), "colour"),
        (lambda raw: raw.pop("target"), "'target'"),
        (lambda raw: raw["loci"].update(bins="chrom.sizes"), r"bins.*tss|tss.*bins"),
        # A cell type may lack marks (missing experiments), not name one the cube lacks.
        (
            lambda raw: raw["cell_types"]["E004"]["signal"].update(H3K9ac="x.bw"),
            r"\[cell_types.E004\].*H3K9ac.*not in \[signal\] marks",
        ),
    ],
    ids=["unknown_key", "missing_target", "two_loci_kinds", "cell_type_names_unknown_mark"],
)
def test_manifest__error_names_file_and_key(comp, tmp_path, edit, key) -> None:
    raw, path = _variant(comp, tmp_path)
    edit(raw)
    _write(raw, path)
    with pytest.raises(ManifestError, match=re.escape(str(path.resolve())) + ".*" + key):
        load_manifest(path)


# --------------------------------------------------------------------------------------------
# 5-6. Command line, and writers killed mid-way


def _cli(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pitfall.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,  # its own process group: SIGKILL reaches the Dask workers too
        **kw,
    )


def _kill_when_paused(proc: subprocess.Popen, pause_file: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not pause_file.exists():
        if proc.poll() is not None:
            raise AssertionError(f"exited before the pause point: {proc.communicate()}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError("the writer never reached its pause point")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _pause_env(tmp_path: Path, at: str) -> tuple[dict, Path]:
    pause = tmp_path / f"paused-{at}"
    return {
        "PITFALL_PAUSE_AT": at,
        "PITFALL_PAUSE_FILE": str(pause),
        "PITFALL_RESUME_FILE": str(tmp_path / "never"),
    }, pause


def test_cli__killed_build_is_unfinished_and_rerun_finishes_it(comp, built, tmp_path) -> None:
    store = tmp_path / "s"
    # "after_commit" of the create commit: one cell type has landed, five are to come.
    env, pause = _pause_env(tmp_path, "after_commit")
    one = ["--cell-types-per-commit", "1"]
    proc = _cli("build", str(comp.manifest), "--store", str(store), "--workers", "1", *one, env=env)
    _kill_when_paused(proc, pause)
    assert _committed(store) == [["E003"]]
    with pytest.raises(cube.CubeError, match="unfinished build .1 of 6 cell types"):
        cube.open_cube(store)

    proc = _cli("build", str(comp.manifest), "--store", str(store), "--workers", "1", *one)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"wrote 6 cell types to {store}" in out and "loci: 400 on 3 chromosomes" in out
    # The rerun computed only the five missing cell types, each its own commit.
    assert _committed(store) == [[c] for c in comp.cell_types]
    _assert_same_cube(_load(store), _load(built["expr"]))


def test_ensure_built__finishes_a_killed_build_then_leaves_the_cube_alone(
    comp, built, tmp_path
) -> None:
    store = tmp_path / "s"
    env, pause = _pause_env(tmp_path, "after_commit")
    two = ["--cell-types-per-commit", "2"]
    proc = _cli("build", str(comp.manifest), "--store", str(store), "--workers", "1", *two, env=env)
    _kill_when_paused(proc, pause)
    first = list(comp.cell_types[:2])
    assert _committed(store) == [first]

    # The default batching puts the four missing (small) cell types in one commit.
    summary = featurize.ensure_built(lambda: comp.manifest, store, **INPROC)
    assert summary is not None and summary.resumed == first
    assert _committed(store) == [first, list(comp.cell_types[2:])]
    _assert_same_cube(_load(store), _load(built["expr"]))

    def no_manifest_needed() -> Path:
        raise AssertionError("a finished cube needs no manifest")

    before = cube.open_cube(store).attrs["snapshot"]
    assert featurize.ensure_built(no_manifest_needed, store, **INPROC) is None
    assert cube.open_cube(store).attrs["snapshot"] == before


@pytest.mark.parametrize(("at", "n_new"), [("during_write", 0), ("after_commit", 1)])
def test_cli__killed_append_keeps_only_whole_cell_types(comp, built, tmp_path, at, n_new) -> None:
    store = tmp_path / "s"
    featurize.build(comp.manifest, store, cell_types=["E003", "E004"], **INPROC)
    env, pause = _pause_env(tmp_path, at)
    args = [
        "append",
        str(store),
        str(comp.manifest),
        "--workers",
        "1",
        "--cell-types-per-commit",
        "1",
    ]
    proc = _cli(*args, "--cell-type", "E037", "--cell-type", "E106", env=env)
    _kill_when_paused(proc, pause)
    ds = _load(store)
    expected = ["E003", "E004", "E037", "E106"][: 2 + n_new]
    assert list(ds["cell_type"].values) == expected
    _assert_same_cube(ds, _load(built["expr"]), expected)
    assert _committed(store) == [expected[:2], *([c] for c in expected[2:])]


def test_cli__append_prints_summary(comp, built, tmp_path) -> None:
    store = tmp_path / "s"
    featurize.build(comp.manifest, store, cell_types=["E003"], **INPROC)
    proc = _cli("append", str(store), str(comp.manifest), "--cell-type", "E116", "--workers", "1")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"wrote 1 cell types to {store}" in out and "cell types: E116" in out
    _assert_same_cube(_load(store), _load(built["expr"]), ["E003", "E116"])


def test_cli__bad_manifest_exits_2_with_one_line(comp, tmp_path) -> None:
    raw, path = _variant(comp, tmp_path)
    raw["colour"] = "blue"
    _write(raw, path)
    proc = _cli("build", str(path), "--store", str(tmp_path / "s"), "--workers", "1")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(path.resolve()) in lines[0] and "colour" in lines[0]
    assert not (tmp_path / "s").exists()


def test_build_summary__html_for_jupyter(comp, tmp_path) -> None:
    summary = featurize.build(comp.manifest, tmp_path / "s", cell_types=["E003"], **INPROC)
    text = summary._repr_html_()
    assert "E003" in text and "400 on 3 chromosomes" in text and str(tmp_path / "s") in text


# --------------------------------------------------------------------------------------------
# Missing experiments: a manifest's cell types list only the marks they have


#: The experiments dropped from the tiny compendium's manifest: cell type -> marks.
DROPPED = {"E003": ["H3K27me3"], "E037": ["H3K4me3", "H3K9me3"]}


def _missing_manifest(comp, tmp_path: Path, dropped=DROPPED) -> tuple[Path, dict]:
    """A copy of the manifest without the files of ``dropped``; and the manifest dict."""
    raw = _raw_manifest(comp.manifest)
    for ct, marks in dropped.items():
        for mk in marks:
            del raw["cell_types"][ct]["signal"][mk]
    return _write(raw, tmp_path / "missing.toml"), raw


def _oracle_observed(raw: dict, cell_types) -> np.ndarray:
    """The observed matrix as the manifest dict says: cell types x ``[signal] marks``."""
    marks = raw["signal"]["marks"]
    return np.array([[mk in raw["cell_types"][ct]["signal"] for mk in marks] for ct in cell_types])


@pytest.fixture(scope="module")
def missing_cube(comp, built, tmp_path_factory) -> tuple[Path, dict]:
    """The expression cube of every cell type, built from the manifest lacking DROPPED."""
    root = tmp_path_factory.mktemp("missing")
    manifest, raw = _missing_manifest(comp, root)
    featurize.build(manifest, root / "cube", **INPROC)
    return root / "cube", raw


def test_build__missing_experiments_are_nan_and_not_observed(comp, built, missing_cube) -> None:
    store, raw = missing_cube
    ds, full = _load(store), _load(built["expr"])
    cts = list(comp.cell_types)
    want = _oracle_observed(raw, cts)
    assert want.sum() == want.size - 3  # the oracle itself: three experiments dropped
    assert ds["observed"].dims == ("cell_type", "mark") and ds["observed"].dtype == bool
    np.testing.assert_array_equal(ds["observed"].sel(cell_type=cts).values, want)
    got = ds["signal"].sel(cell_type=cts).values
    ref = full["signal"].sel(cell_type=cts).values
    # NaN exactly where the manifest lacks a file; elsewhere the full build's values.
    assert np.isnan(got[~want[:, None, :].repeat(got.shape[1], 1)]).all()
    keep = np.broadcast_to(want[:, None, :], got.shape)
    np.testing.assert_array_equal(got[keep], ref[keep])
    for var in ("label", "value", "sequence"):
        np.testing.assert_array_equal(ds[var].values, full[var].values)
    # Plain xarray sees the same coordinate.
    repo = repository.open_repository(store)
    import xarray as xr

    plain = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
    assert "observed" in plain.coords and "observed" not in plain.data_vars
    np.testing.assert_array_equal(plain["observed"].sel(cell_type=cts).values, want)
    assert plain["observed"].encoding["chunks"] == (1, len(raw["signal"]["marks"]))
    info = cube.cube_info(store)
    assert info["observed"] == want.tolist()
    assert (info["n_observed"], info["n_missing"]) == (want.size - 3, 3)


def test_append_experiments__equals_the_full_build_in_one_commit(comp, built, tmp_path) -> None:
    manifest, raw = _missing_manifest(comp, tmp_path)
    store = tmp_path / "cube"
    featurize.build(manifest, store, cell_types=["E003", "E037"], **INPROC)
    before = cube.cube_log(store)
    # The complete manifest names the dropped files: the same featurization.
    summary = featurize.append_experiments(
        store, comp.manifest, "E037", ["H3K9me3", "H3K4me3"], progress=False
    )
    assert summary.marks == ["H3K9me3", "H3K4me3"] and summary.cell_types == ["E037"]
    assert "added 2 experiments of E037" in str(summary)
    log = cube.cube_log(store)
    assert len(log) == len(before) + 1
    assert (log[0].cell_types, log[0].marks) == (["E037"], ["H3K9me3", "H3K4me3"])
    ds, full = _load(store), _load(built["expr"])
    observed = ds["observed"].values
    np.testing.assert_array_equal(observed, _oracle_observed(raw, ["E003", "E037"]) | [
        [False] * 5, [mk in ("H3K9me3", "H3K4me3") for mk in raw["signal"]["marks"]]
    ])  # fmt: skip
    # E037 is now complete: every mark as the full build has it; E003 unchanged.
    np.testing.assert_array_equal(
        ds["signal"].sel(cell_type="E037").values, full["signal"].sel(cell_type="E037").values
    )
    e003 = ds["signal"].sel(cell_type="E003").values
    j = raw["signal"]["marks"].index("H3K27me3")
    assert np.isnan(e003[:, j]).all()
    sources = root_attr(ds.attrs, "cell_type_sources")["E037"]
    assert sources["signal:H3K9me3"]["path"].endswith("E037-H3K9me3.bw")
    assert "sha256" in sources["signal:H3K4me3"]


def test_append__cell_type_lacking_marks_gets_its_observed_row(comp, built, tmp_path) -> None:
    manifest, raw = _missing_manifest(comp, tmp_path)
    store = tmp_path / "cube"
    featurize.build(manifest, store, cell_types=["E004"], **INPROC)
    featurize.append(store, manifest, ["E037", "E003"], cell_types_per_commit=1, **INPROC)
    ds, full = _load(store), _load(built["expr"])
    cts = ["E004", "E037", "E003"]
    want = _oracle_observed(raw, cts)
    np.testing.assert_array_equal(ds["observed"].values, want)
    keep = np.broadcast_to(want[:, None, :], ds["signal"].shape)
    ref = full["signal"].sel(cell_type=cts).values
    np.testing.assert_array_equal(ds["signal"].values[keep], ref[keep])
    assert np.isnan(ds["signal"].values[~keep]).all()


@pytest.mark.parametrize(
    ("cell_type", "marks", "exc", "pattern"),
    [
        ("E003", ["H3K4me3"], cube.CubeError, "cell type E003 already has mark H3K4me3"),
        ("E003", ["H3K9ac"], cube.CubeError, "mark H3K9ac .*E003.* not among the marks"),
        ("E106", ["H3K27me3"], cube.CubeError, "cell type E106 is not in the cube.*append"),
        ("E003", ["H3K27me3", "H3K27me3"], cube.CubeError, "named twice"),
    ],
    ids=["mark_present", "mark_not_in_cube", "unknown_cell_type", "mark_twice"],
)
def test_append_experiments__refused_naming_cell_type_and_mark(
    comp, tmp_path, cell_type, marks, exc, pattern
) -> None:
    manifest, _ = _missing_manifest(comp, tmp_path)
    store = tmp_path / "cube"
    featurize.build(manifest, store, cell_types=["E003", "E037"], **INPROC)
    before = {str(p): p.read_bytes() for p in store.rglob("*") if p.is_file()}
    with pytest.raises(exc, match=pattern):
        featurize.append_experiments(store, comp.manifest, cell_type, marks, progress=False)
    assert {str(p): p.read_bytes() for p in store.rglob("*") if p.is_file()} == before


def test_append_experiments__another_featurization_is_refused(comp, tmp_path) -> None:
    manifest, raw = _missing_manifest(comp, tmp_path)
    store = tmp_path / "cube"
    featurize.build(manifest, store, cell_types=["E003"], **INPROC)
    raw["target"]["threshold"] = 2.0
    raw["cell_types"]["E003"]["signal"]["H3K27me3"] = str(comp.bigwigs["E003"]["H3K27me3"])
    other = _write(raw, tmp_path / "other.toml")
    before = cube.cube_log(store)
    with pytest.raises(cube.CubeError, match="target.threshold"):
        featurize.append_experiments(store, other, "E003", ["H3K27me3"], progress=False)
    assert cube.cube_log(store) == before


def test_append_experiments__manifest_without_the_file_is_named(comp, tmp_path) -> None:
    manifest, _ = _missing_manifest(comp, tmp_path)
    store = tmp_path / "cube"
    featurize.build(manifest, store, cell_types=["E003"], **INPROC)
    with pytest.raises(featurize.BuildError, match=r"\[cell_types.E003\].*H3K27me3"):
        featurize.append_experiments(store, manifest, "E003", ["H3K27me3"], progress=False)


def test_cli_append_mark__end_to_end_in_a_subprocess(comp, built, tmp_path) -> None:
    manifest, raw = _missing_manifest(comp, tmp_path)
    store = tmp_path / "cube"
    featurize.build(manifest, store, cell_types=["E003", "E037"], **INPROC)

    def pitfall(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pitfall.cli", *map(str, args)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    done = pitfall("append", store, comp.manifest, "--cell-type", "E003", "--mark", "H3K27me3")
    assert done.returncode == 0, done.stderr
    assert "added 1 experiments of E003" in done.stdout
    ds, full = _load(store), _load(built["expr"])
    assert bool(ds["observed"].sel(cell_type="E003").all())
    np.testing.assert_array_equal(
        ds["signal"].sel(cell_type="E003").values, full["signal"].sel(cell_type="E003").values
    )
    again = pitfall("append", store, comp.manifest, "--cell-type", "E003", "--mark", "H3K27me3")
    assert again.returncode == 2, again.stderr
    assert "E003 already has mark H3K27me3" in again.stderr and "Traceback" not in again.stderr
    two = pitfall("append", store, comp.manifest, "--cell-type", "E003", "--cell-type", "E037",
                  "--mark", "H3K4me3")  # fmt: skip
    assert two.returncode == 2 and "one cell type" in two.stderr, two.stderr
    info = pitfall("cube", "info", store)
    assert info.returncode == 0, info.stderr
    marks = raw["signal"]["marks"]
    # The grid: a header of marks, then a row per cell type (E037 lacks two of five).
    assert "experiments: 8 of 10 observed, 2 missing" in info.stdout
    lines = info.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split() == marks)
    rows = {line.split()[0]: line.split()[1:] for line in lines[header + 1 : header + 3]}
    assert rows == {
        "E003": ["x"] * 5,
        "E037": ["x" if mk not in DROPPED["E037"] else "." for mk in marks],
    }
    as_json = json.loads(pitfall("cube", "info", store, "--json").stdout)
    assert as_json["observed"] == [[True] * 5, [mk not in DROPPED["E037"] for mk in marks]]


def test_readme_cube_append__commands_run_as_written(comp, tmp_path) -> None:
    # The folder the README's commands name: a cube at store/mycube of E003 (lacking
    # H3K27me3) and E004, and manifest.toml naming every file.
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    m = re.search(r"<!-- cube:append -->\n```bash\n(.*?)```", text, re.S)
    assert m, "README lacks the block cube:append"
    block = m.group(1)
    assert "--cell-type E003 --mark H3K27me3" in block
    missing, _ = _missing_manifest(comp, tmp_path, {"E003": ["H3K27me3"]})
    featurize.build(missing, tmp_path / "store" / "mycube", cell_types=["E003", "E004"], **INPROC)
    _write(_raw_manifest(comp.manifest), tmp_path / "manifest.toml")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "added 1 experiments of E003" in out.stdout
    assert "experiments: 15 of 15 observed, 0 missing" in out.stdout
    ds = cube.open_cube(tmp_path / "store" / "mycube")
    assert list(ds["cell_type"].values) == ["E003", "E004", "E037"]
    assert bool(ds["observed"].all())
    assert [c.marks for c in cube.cube_log(tmp_path / "store" / "mycube")[:2]] == [
        ["H3K27me3"], []
    ]  # fmt: skip
