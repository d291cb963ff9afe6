"""The ENCODE-DREAM conventions: overlap labels, strided bins, ambiguous and blacklisted bins,
the challenge's submission format and Figure S3; checked against naive loops and hand-made
truths, then on the real CTCF peaks of ../shared/data where present."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from pitfall import genome
from pitfall.cube import root_attr
from pitfall.datasets import ctcf
from pitfall.loci import GenomeBins
from pitfall.manifest import ManifestError, dumps_manifest, load_manifest
from pitfall.sources.labels import LabelError, peak_labels, read_peaks

AUTOSOMES = list(genome.AUTOSOMES)


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def peaks_frame(rows: list[tuple[str, int, int]], path: str = "peaks") -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["chrom", "start", "end"])
    frame["summit_pos"] = (frame["start"] + frame["end"]) // 2
    frame.attrs["path"] = path
    return frame


def naive_overlap(bins: pd.DataFrame, regions: pd.DataFrame, k: int) -> np.ndarray:
    """1 where a bin shares at least ``k`` bp with a region: a loop over every pair."""
    out = np.zeros(len(bins), dtype=bool)
    for i, (c, a, b) in enumerate(bins[["chrom", "start", "end"]].itertuples(index=False)):
        for rc, s, e in regions[["chrom", "start", "end"]].itertuples(index=False):
            if rc == c and min(b, e) - max(a, s) >= k:
                out[i] = True
    return out


def strided_bins(sizes: dict[str, int], width: int, stride: int) -> pd.DataFrame:
    rows = []
    for c, n in sizes.items():
        s = 0
        while True:
            rows.append((c, s, min(s + width, n)))
            if s + width >= n:
                break
            s += stride
    return pd.DataFrame(rows, columns=["chrom", "start", "end"])


# ------------------------------------------------------------------------------------------
# Bins at a stride


@pytest.mark.parametrize(("size", "stride"), [(1000, 50), (1030, 50), (150, 50), (1000, 200)])
def test_genome_bins__stride_layout_matches_naive_walk(size: int, stride: int) -> None:
    sizes = {"chr1": size, "chr2": 777}
    bins = GenomeBins.from_sizes(sizes, 200, stride=stride)
    table = bins.block(0, len(bins))
    expected = strided_bins(sizes, 200, stride)
    assert len(bins) == len(expected)
    np.testing.assert_array_equal(table.start, expected["start"])
    np.testing.assert_array_equal(table.end, expected["end"])
    # A block in the middle is the same slice of the whole.
    part = bins.block(5, 17)
    np.testing.assert_array_equal(part.start, expected["start"][5:17])


def test_genome_bins__stride_of_bin_size_is_the_tiling() -> None:
    sizes = {"chr1": 1030}
    assert GenomeBins.from_sizes(sizes, 200, stride=200) == GenomeBins.from_sizes(sizes, 200)
    with pytest.raises(ValueError, match="stride"):
        GenomeBins(tuple(sizes.items()), 200, 300)


def test_real_ctcf__dream_bins_are_about_57_million(shared_data: Path) -> None:
    from pitfall.sources.annotation import read_chrom_sizes

    sizes = read_chrom_sizes(shared_data / "ctcf" / "hg19.autoX.chrom.sizes")
    bins = GenomeBins.from_sizes(sizes, 200, AUTOSOMES, 50)
    expected = sum(1 + -(-(sizes[c] - 200) // 50) for c in AUTOSOMES)
    assert len(bins) == expected == pytest.approx(57.6e6, rel=0.005)


# ------------------------------------------------------------------------------------------
# Labels


@settings(max_examples=60, deadline=None)
@given(
    stride=st.sampled_from([25, 50, 100, 200]),
    k=st.integers(1, 120),
    raw=st.lists(st.tuples(st.integers(0, 1400), st.integers(1, 500)), min_size=1, max_size=12),
)
def test_peak_labels__overlap_rule_matches_naive_loop(stride: int, k: int, raw: list) -> None:
    sizes = {"chr1": 1500}
    bins = strided_bins(sizes, 200, stride)
    peaks = peaks_frame([("chr1", s, min(s + w, 1500)) for s, w in raw if s < 1500])
    label = peak_labels(peaks, bins, rule="overlap", min_overlap=k)
    np.testing.assert_array_equal(label, naive_overlap(bins, peaks, k).astype(np.float32))
    # The same bins described by their sizes alone give the same labels.
    table = GenomeBins.from_sizes(sizes, 200, stride=stride)
    np.testing.assert_array_equal(
        peak_labels(peaks, table.block(0, len(table)), rule="overlap", min_overlap=k), label
    )


def test_peak_labels__summit_marks_every_overlapping_bin_holding_it() -> None:
    bins = strided_bins({"chr1": 600}, 200, 50)  # starts 0, 50, ..., 400
    peaks = peaks_frame([("chr1", 230, 250)])  # summit 240: in the bins starting 50..200
    label = peak_labels(peaks, bins)
    np.testing.assert_array_equal(np.flatnonzero(label), [1, 2, 3, 4])


def test_peak_labels__ambiguous_and_blacklist_hand_checked() -> None:
    # Ten 100 bp bins on chr1; chr2's 3 bins have no peak at all.
    bins = pd.DataFrame(
        {
            "chrom": ["chr1"] * 10 + ["chr2"] * 3,
            "start": [*range(0, 1000, 100), 0, 100, 200],
            "end": [*range(100, 1100, 100), 100, 200, 300],
        }
    )
    conservative = peaks_frame([("chr1", 150, 260)])  # bins 1, 2 (>= 10 bp); bin 1 by 50 bp
    relaxed = peaks_frame([("chr1", 140, 270), ("chr1", 590, 720), ("chr2", 0, 50)])
    blacklist = peaks_frame([("chr1", 899, 900)])  # 1 bp: bin 8
    label, summary = peak_labels(
        conservative,
        bins,
        rule="overlap",
        min_overlap=10,
        ambiguous=relaxed,
        blacklist=blacklist,
        missing="nan",
        return_summary=True,
    )
    nan = np.nan
    expected = [0, 1, 1, 0, 0, nan, nan, nan, nan, 0, nan, nan, nan]
    np.testing.assert_array_equal(label, np.array(expected, dtype=np.float32))
    assert summary["n_ambiguous"] == 3 and summary["n_blacklisted"] == 1
    assert summary["chroms_without"] == ["chr2"] and summary["n_positive"] == 2
    # min_overlap 60: bin 1 shares only 50 bp with the conservative peak.
    tight = peak_labels(conservative, bins.iloc[:10], rule="overlap", min_overlap=60)
    np.testing.assert_array_equal(np.flatnonzero(tight), [2])


def test_peak_labels__bad_rule_or_overlap() -> None:
    bins = strided_bins({"chr1": 400}, 200, 200)
    peaks = peaks_frame([("chr1", 0, 10)])
    with pytest.raises(LabelError, match="rule"):
        peak_labels(peaks, bins, rule="centre")  # type: ignore[arg-type]
    with pytest.raises(LabelError, match="min_overlap"):
        peak_labels(peaks, bins, rule="overlap", min_overlap=0)


# ------------------------------------------------------------------------------------------
# The manifest


def _manifest(tmp_path: Path, loci: dict, target: dict, cell: dict | None = None) -> Path:
    write(tmp_path / "sizes", "chr1\t1000\n")
    write(tmp_path / "a.bed", "chr1\t0\t10\n")
    text = dumps_manifest(
        {
            "assembly": "hg19",
            "loci": {"bins": "sizes", **loci},
            "target": target,
            "cell_types": {"A": {"target": "a.bed", **(cell or {})}},
        }
    )
    return write(tmp_path / "m.toml", text)


def test_manifest__peak_conventions_are_read(tmp_path: Path) -> None:
    path = _manifest(
        tmp_path,
        {"bin_size": 200, "stride": 50},
        {"kind": "peaks", "rule": "overlap", "min_overlap": 100, "blacklist": "a.bed"},
        {"ambiguous": "a.bed"},
    )
    m = load_manifest(path)
    assert (m.stride, m.rule, m.min_overlap) == (50, "overlap", 100)
    assert m.blacklist == tmp_path / "a.bed" and m.cell_types["A"].ambiguous == tmp_path / "a.bed"
    assert m.featurization()["loci"]["stride"] == 50
    assert m.featurization()["target"]["rule"] == "overlap"
    assert m.input_files().count(tmp_path / "a.bed") == 3


@pytest.mark.parametrize(
    ("loci", "target", "cell", "message"),
    [
        ({"bin_size": 200, "stride": 300}, {"kind": "peaks"}, None, "stride 300 is larger"),
        ({"bin_size": 200}, {"kind": "peaks", "rule": "centre"}, None, "rule is 'centre'"),
        ({"bin_size": 200}, {"kind": "peaks", "min_overlap": 5}, None, "rule = 'overlap'"),
        ({"bin_size": 200}, {"kind": "domains", "rule": "overlap"}, None, "kind = 'peaks'"),
        ({"bin_size": 200}, {"kind": "domains"}, {"ambiguous": "a.bed"}, "ambiguous goes"),
    ],
)
def test_manifest__peak_conventions_refused(tmp_path, loci, target, cell, message) -> None:
    with pytest.raises(ManifestError, match=message) as err:
        load_manifest(_manifest(tmp_path, loci, target, cell))
    assert "m.toml" in str(err.value)


# ------------------------------------------------------------------------------------------
# A tiny ctcf/ folder in the data README's layout, built through pitfall build


def tiny_ctcf_folder(root: Path, size: int = 1200) -> dict[str, list[tuple[str, int, int]]]:
    """``root/ctcf/`` with every file of the layout; chroms of ``size`` bp; peaks on chr2-3.

    Returns the conservative peaks of each line (the relaxed ones are these widened by 100
    bp on each side, plus one on chr3 at 900-950; the blacklist is chr2:1000-1010).
    """
    folder = root / "ctcf"
    folder.mkdir(parents=True)
    write(
        folder / "hg19.autoX.chrom.sizes", "".join(f"{c}\t{size}\n" for c in [*AUTOSOMES, "chrX"])
    )
    write(folder / "blacklist.bed.gz", "chr2\t1000\t1010\n")
    rng = np.random.default_rng(3)
    peaks = {}
    for line in ctcf.CTCF_CELL_LINES:
        rows = [
            (c, int(s), int(s) + 150) for c in ("chr2", "chr3") for s in rng.choice(10, 2) * 100
        ]
        rows.append(("chr2", 300, 420))  # bound in every line
        peaks[line] = rows
        text = "".join(f"{c}\t{s}\t{e}\t.\t0\t.\t5\t-1\t3\t60\n" for c, s, e in rows)
        write(folder / ctcf.peak_file(line).name, text)
        if line != "MCF-7":
            relaxed = [(c, max(0, s - 100), e + 100) for c, s, e in rows] + [("chr3", 900, 950)]
            text = "".join(
                f"{c}\t{s}\t{e}\t.\t0\t.\t5\t-1\t3\t20" + "\t0" * 10 + "\n" for c, s, e in relaxed
            )
            write(folder / ctcf.relaxed_file(line).name, text)
    return peaks


def test_build__dream_manifest_labels_match_naive_loop(tmp_path: Path) -> None:
    from pitfall import cube, featurize

    peaks = tiny_ctcf_folder(tmp_path / "data")
    manifest = ctcf.dream_manifest(tmp_path / "data", tmp_path / "manifest")
    featurize.build(manifest, tmp_path / "store", workers=0, progress=False)
    ds = cube.open_cube(tmp_path / "store")
    sizes = dict.fromkeys(AUTOSOMES, 1200)
    bins = strided_bins(sizes, 200, 50)
    assert ds.sizes["locus"] == len(bins)
    np.testing.assert_array_equal(ds["start"].values, bins["start"])
    black = naive_overlap(bins, pd.DataFrame([("chr2", 1000, 1010)], columns=bins.columns), 1)
    no_peaks = ~bins["chrom"].isin(["chr2", "chr3"]).to_numpy()
    for line in ctcf.CTCF_CELL_LINES:
        conservative = pd.DataFrame(peaks[line], columns=["chrom", "start", "end"])
        bound = naive_overlap(bins, conservative, 1)
        expected = bound.astype(np.float32)
        if line != "MCF-7":
            relaxed = conservative.assign(
                start=(conservative["start"] - 100).clip(lower=0), end=conservative["end"] + 100
            )
            relaxed.loc[len(relaxed)] = ("chr3", 900, 950)
            expected[naive_overlap(bins, relaxed, 1) & ~bound] = np.nan
        expected[black | no_peaks] = np.nan
        np.testing.assert_array_equal(ds["label"].sel(cell_type=line).values, expected)
    sources = root_attr(ds.attrs, "cell_type_sources")["A549"]
    assert {"target", "ambiguous", "blacklist"} <= set(sources)
    assert root_attr(ds.attrs, "featurization")["target"]["rule"] == "overlap"


# ------------------------------------------------------------------------------------------
# Submissions and Figure S3


def write_submission(path: Path, bins: pd.DataFrame, scores: np.ndarray) -> Path:
    lines = [
        f"{c}\t{s}\t{e}\t{p:.6f}\n"
        for c, s, e, p in zip(bins["chrom"], bins["start"], bins["end"], scores, strict=True)
    ]
    return write(path, "".join(lines))


def toy_cube() -> xr.Dataset:
    """Eight loci, three training lines and the target T, with a hand-checkable truth.

    Loci 0-3 are bound in some training line (seen), 4-7 in none; T is bound at 0, 1 and 5;
    locus 7 is ambiguous in T (NaN).
    """
    train = np.array(
        [
            [1, 1, 0, 1, 0, 0, 0, 0],
            [1, 0, 1, 0, 0, 0, 0, 0],
            [1, 0, 0, 0, 0, 0, 0, np.nan],
        ],
        dtype=np.float32,
    )
    target = np.array([1, 1, 0, 0, 0, 1, 0, np.nan], dtype=np.float32)
    return xr.Dataset(
        {"label": (("cell_type", "locus"), np.vstack([train, target]))},
        coords={
            "cell_type": ["A", "B", "C", "T"],
            "locus": np.arange(8),
            "chrom": ("locus", ["chr1"] * 8),
            "start": ("locus", np.arange(8) * 50),
            "end": ("locus", np.arange(8) * 50 + 200),
        },
    )


def test_read_submission__format_and_cell_type_from_name(tmp_path: Path) -> None:
    from pitfall.audit.reading import load_predictions, read_prediction_table, read_submission

    ds = toy_cube()
    bins = ds[["chrom", "start", "end"]].to_dataframe().reset_index(drop=True)
    scores = np.linspace(0.1, 0.8, 8)
    path = write_submission(tmp_path / "F.CTCF.T.tab.gz", bins, scores)
    table = read_submission(path)
    assert list(table.columns) == ["chrom", "start", "end", "score", "cell_type"]
    assert table["cell_type"].eq("T").all() and table["start"].dtype == np.int64
    pd.testing.assert_frame_equal(read_prediction_table(path), table)
    pred = load_predictions(path, ds)
    pos, got = pred.scores("T")
    np.testing.assert_array_equal(pos, np.arange(8))
    np.testing.assert_allclose(got, scores, atol=1e-6)
    # A name without the cell type: load_predictions' cell_type= names it.
    other = write_submission(tmp_path / "team.tab.gz", bins, scores)
    assert "cell_type" not in read_submission(other)
    assert load_predictions(other, ds, cell_type="T").targets == ["T"]
    bad = write(tmp_path / "F.CTCF.T2.tab", "chr1\t0\t200\t0.5\nchr1\tx\t250\t0.1\n")
    with pytest.raises(ValueError, match="not an ENCODE-DREAM submission"):
        read_submission(bad)


def test_figure_s3__hand_checked_truth(tmp_path: Path) -> None:
    from pitfall.experiments import figure_s3

    ds = toy_cube()
    bins = ds[["chrom", "start", "end"]].to_dataframe().reset_index(drop=True)
    # "perfect" ranks T's bound loci first everywhere; "seen_only" memorised the training
    # lines' mean and knows nothing else (0.5 everywhere off the seen loci).
    perfect = np.array([0.9, 0.8, 0.1, 0.1, 0.1, 0.7, 0.1, 0.5])
    mean = np.array([1, 1 / 3, 1 / 3, 1 / 3, 0, 0, 0, 0])
    memorised = np.where(mean > 0, mean, 0.5)
    subs = {
        "perfect": write_submission(tmp_path / "F.CTCF.T.tab.gz", bins, perfect),
        "memorised": write_submission(tmp_path / "m.tab.gz", bins, memorised),
    }
    # "memorised" is named m.tab.gz: no cell type in its name, the target names it.
    result = figure_s3.make(ds, "T", subs)
    ap = result.tables["ap"].set_index(["predictor", "group"])["ap"]
    seen, rest = figure_s3.GROUPS
    # Seen: loci 0-3, T bound at 0, 1. Rest: loci 4-6 (7 is NaN in T), T bound at 5.
    y_seen, y_rest = np.array([1, 1, 0, 0]), np.array([0, 1, 0])
    assert ap["perfect", seen] == 1.0 and ap["perfect", rest] == 1.0
    assert ap["average activity", seen] == pytest.approx(average_precision_score(y_seen, mean[:4]))
    assert ap["average activity", rest] == pytest.approx(1 / 3)  # all tied: prevalence
    assert ap["memorised", seen] == ap["average activity", seen]
    assert ap["memorised", rest] == pytest.approx(average_precision_score(y_rest, memorised[4:7]))
    rows = result.tables["ap"].set_index(["predictor", "group"])
    assert rows.loc[("perfect", seen), "n_loci"] == 4 and rows.loc[("perfect", rest), "n_loci"] == 3
    assert rows.loc[("perfect", rest), "random_ap"] == pytest.approx(1 / 3)
    assert result.findings[seen]["beaten"] == []
    assert result.findings[rest]["beaten"] == []
    paths = result.save(tmp_path / "out")
    assert paths["figure"].stat().st_size > 10_000


def test_figure_s3__baseline_beats_a_worse_participant(tmp_path: Path) -> None:
    from pitfall.experiments import figure_s3

    ds = toy_cube()
    bins = ds[["chrom", "start", "end"]].to_dataframe().reset_index(drop=True)
    inverted = np.array([0.1, 0.2, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5])
    path = write_submission(tmp_path / "F.CTCF.T.tab.gz", bins, inverted)
    result = figure_s3.make(ds, "T", {"inverted": path}, training=["A", "B", "C"])
    seen = figure_s3.GROUPS[0]
    assert result.findings[seen]["beaten"] == ["inverted"]
    assert result.findings[seen]["ap"]["inverted"] == pytest.approx(
        average_precision_score([1, 1, 0, 0], inverted[:4])
    )
    with pytest.raises(ValueError, match="among the training"):
        figure_s3.make(ds, "T", {"x": path}, training=["A", "T"])


# ------------------------------------------------------------------------------------------
# Real data: the data README's held-out-line figures


def test_real_ctcf__overlap_rule_held_out_aps_match_readme(shared_data: Path) -> None:
    """Overlap labels on non-overlapping 200 bp bins; each line predicted by the mean of
    the other six: AP 0.67-0.77 (the data README), to 0.01."""
    from pitfall.sources.annotation import read_chrom_sizes

    sizes = read_chrom_sizes(shared_data / "ctcf" / "hg19.autoX.chrom.sizes")
    bins = GenomeBins.from_sizes(sizes, 200, AUTOSOMES)
    table = bins.block(0, len(bins))
    lines = ctcf.CTCF_CELL_LINES
    files = [shared_data / ctcf.peak_file(line) for line in lines]
    labels = np.stack(
        [peak_labels(read_peaks(f), table, rule="overlap", missing="nan") for f in files]
    )
    # The overlap rule against integer arithmetic on the non-overlapping bins: a peak
    # [s, e) marks bins s // 200 .. (e - 1) // 200 of its chromosome.
    offsets = dict(
        zip(AUTOSOMES, np.cumsum([0] + [-(-sizes[c] // 200) for c in AUTOSOMES]), strict=False)
    )
    naive = np.zeros(len(bins), dtype=bool)
    frame = pd.read_csv(files[1], sep="\t", header=None, usecols=[0, 1, 2])
    for c, s, e in frame.itertuples(index=False):
        if c in offsets:
            naive[offsets[c] + s // 200 : offsets[c] + (e - 1) // 200 + 1] = True
    known = ~np.isnan(labels[1])
    np.testing.assert_array_equal(labels[1][known] == 1, naive[known])
    aps = {}
    keep = ~np.isnan(labels).any(axis=0)
    for i, line in enumerate(lines):
        others = np.delete(labels[:, keep], i, axis=0).mean(axis=0)
        aps[line] = average_precision_score(labels[i, keep], others)
    assert min(aps.values()) == pytest.approx(0.67, abs=0.01), aps
    assert max(aps.values()) == pytest.approx(0.77, abs=0.01), aps
    expected = {
        "A549": 0.773, "H1-hESC": 0.677, "HeLa-S3": 0.760, "HepG2": 0.773,
        "IMR-90": 0.710, "K562": 0.724, "MCF-7": 0.670,
    }  # fmt: skip
    assert aps == pytest.approx(expected, abs=0.001)


def test_build__labels_only_manifest_builds_in_process(tmp_path: Path, monkeypatch) -> None:
    """A manifest without signal or sequence builds in the calling process unless workers are
    asked for, whatever its size."""
    from pitfall import featurize
    from pitfall.cluster import dask_client

    asked: list[int | None] = []

    def recording(**kw):
        asked.append(kw.get("workers"))
        return dask_client(**{**kw, "workers": 0})

    monkeypatch.setattr(featurize, "dask_client", recording)
    monkeypatch.setattr(featurize, "IN_PROCESS_BELOW", 0)  # every build counts as large
    tiny_ctcf_folder(tmp_path / "data")
    manifest = ctcf.dream_manifest(tmp_path / "data", tmp_path / "manifest")
    featurize.build(manifest, tmp_path / "a", progress=False)
    featurize.build(manifest, tmp_path / "b", workers=2, progress=False)
    assert asked == [0, 2]


def test_append__peaks_cube_without_rule_attributes_takes_summit_manifests(tmp_path: Path) -> None:
    """A peaks cube whose featurization does not state the rule was labelled by summits: a
    summit manifest appends to it, an overlap one is refused."""
    from pitfall.featurize import _check_same_featurization
    from pitfall.schema import CubeError

    path = _manifest(tmp_path, {"bin_size": 200}, {"kind": "peaks"})
    m = load_manifest(path)
    old = m.featurization()
    for key in ("rule", "min_overlap", "blacklist"):
        del old["target"][key]
    _check_same_featurization(old, m.featurization(), m, "cube")
    overlap = load_manifest(
        _manifest(tmp_path, {"bin_size": 200}, {"kind": "peaks", "rule": "overlap"})
    )
    with pytest.raises(CubeError, match="target.rule is 'overlap'"):
        _check_same_featurization(old, overlap.featurization(), overlap, "cube")
