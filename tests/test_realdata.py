"""Real-data cubes from ../shared/data against the figures its README states (skipped without it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pitfall import baselines, cube, evaluate, featurize, splits, tasks, tracks
from pitfall.audit import audit_predictions
from pitfall.datasets import roadmap as roadmap_data
from pitfall.datasets import tads as tad_data
from pitfall.genome import AUTOSOMES
from pitfall.sources import labels


@pytest.fixture(scope="module")
def roadmap(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("roadmap")
    manifest = roadmap_data.manifest_from_folder(shared_data, out)
    featurize.build(manifest, out / "cube", workers=1, processes=False, progress=False)
    return cube.open_cube(out / "cube")


def test_roadmap_cube__matches_the_data_readme(roadmap, shared_data: Path) -> None:
    ds = roadmap
    assert ds.sizes["locus"] == 18_915
    assert ds.sizes["cell_type"] == 56
    assert "E000" not in set(ds["cell_type"].values)
    assert set(ds["chrom"].values) == set(AUTOSOMES)
    e003 = ds["label"].sel(cell_type="E003").values
    assert np.nanmean(e003) == pytest.approx(0.674, abs=0.0005)
    # The stray-tab quirk: the cube's E003 values are E003's, not the neighbouring column's.
    raw = pd.read_csv(
        shared_data / "roadmap" / "57epigenomes.RPKM.pc.gz", sep="\t", index_col=False
    ).set_index("gene_id")
    genes = [str(n).split(".")[0] for n in ds["name"].values[:50]]
    np.testing.assert_allclose(
        ds["value"].sel(cell_type="E003").values[:50], raw.loc[genes, "E003"], rtol=1e-6
    )
    assert ds["cell_type_name"].sel(cell_type="E003").item() == "H1 Cells"


def test_roadmap_cube__average_activity_ap_matches_the_data_readme(roadmap) -> None:
    ds = roadmap
    chroms = AUTOSOMES
    others = tuple(str(c) for c in ds["cell_type"].values if str(c) != "E003")
    split = splits.Split(others, chroms, (), (), ("E003",), chroms, setting="cross-cell-type")
    test = split.test(ds)
    avg = baselines.AverageActivity(ds).fit(split.train(ds)).predict(test)
    ap = evaluate.average_precision(test["label"], avg)
    assert ap == pytest.approx(0.983, abs=0.002)
    e047 = baselines.AverageActivity(ds, cell_types=["E047"]).fit(split.train(ds)).predict(test)
    assert evaluate.average_precision(test["label"], e047) == pytest.approx(0.830, abs=0.002)
    # an independent oracle: scikit-learn on the plain arrays
    from sklearn.metrics import average_precision_score

    y = ds["label"].sel(cell_type="E003").values
    mean_others = ds["label"].sel(cell_type=list(others)).mean("cell_type").values
    assert ap == pytest.approx(average_precision_score(y, mean_others), abs=1e-12)
    assert split.leakage(ds) == 1.0


@pytest.fixture(scope="module")
def tads(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("tads")
    manifest = tad_data.manifest_from_folder(shared_data, out)
    summary = featurize.build(manifest, out / "cube", workers=0, progress=False)
    assert any("K562" in w and "chr9" in w for w in summary.warnings)
    return cube.open_cube(out / "cube")


def test_tad_cube__bins_and_boundaries_from_both_formats(tads, shared_data: Path) -> None:
    ds = tads
    sizes = pd.read_csv(
        shared_data / "ctcf" / "hg19.autoX.chrom.sizes", sep="\t", header=None, index_col=0
    )[1]
    n_bins = sum(-(-sizes[c] // 40_000) for c in AUTOSOMES)
    assert ds.sizes["locus"] == n_bins == 72_036
    assert list(ds["cell_type"].values) == list(tad_data.TAD_FILES)
    chrom = np.asarray(ds["chrom"].values).astype(object)
    start = ds["start"].values
    for ct, (name, _) in tad_data.TAD_FILES.items():
        lab = ds["label"].sel(cell_type=ct).values
        # naive oracle: mark the bins of each domain's first and last base
        dom = labels.read_domains(shared_data / "tads" / name)
        expected = np.zeros(n_bins)
        index = {(c, s): i for i, (c, s) in enumerate(zip(chrom, start, strict=True))}
        for c, s, e in dom[dom.chrom.isin(AUTOSOMES)].itertuples(index=False):
            expected[index[(c, s // 40_000 * 40_000)]] = 1
            expected[index[(c, (e - 1) // 40_000 * 40_000)]] = 1
        without = set(AUTOSOMES) - set(dom.chrom)
        expected[np.isin(chrom, list(without))] = np.nan
        np.testing.assert_array_equal(lab, expected, err_msg=ct)
    assert np.isnan(ds["label"].sel(cell_type="K562").values[chrom == "chr9"]).all()


def test_tad_cube__hybrid_split_has_no_leakage(tads) -> None:
    split = tasks.get_task("tad").split(tads, "hybrid", "hESC")
    assert split.train_chroms == ("chr2", "chr3")
    assert split.valid_cell_types == ("GM12878",)
    assert split.leakage(tads) == 0.0
    table = baselines.baseline_table(tads, split)
    avg = table.set_index("predictor").loc["average activity", "ap"]
    rnd = table.set_index("predictor").loc["random", "ap"]
    assert avg > 2 * rnd  # boundaries are shared across cell types, as the paper found


def _others_mean(ds, target: str) -> np.ndarray:
    others = [str(c) for c in ds["cell_type"].values if str(c) != target]
    return ds["label"].sel(cell_type=others).mean("cell_type").values


def test_audit__real_roadmap_memoriser_and_perfect_predictor(roadmap) -> None:
    from sklearn.metrics import average_precision_score

    ds = roadmap
    y = ds["label"].sel(cell_type="E003").values
    avg = _others_mean(ds, "E003")
    # Keyed by unversioned Ensembl ids, as Roadmap's RPKM table names genes.
    genes = [str(n).split(".")[0] for n in ds["name"].values]
    memoriser = pd.DataFrame({"gene_id": genes, "cell_type": "E003", "score": avg})
    # a labels-only cube: the most-similar baseline is left out with a note, not a warning
    report = audit_predictions(memoriser, ds)
    assert any("most-similar baseline is left out" in n for n in report.notes)
    row = report.to_frame().iloc[0]
    assert row["ap_model"] == pytest.approx(average_precision_score(y, avg), abs=1e-12)
    assert row["ap_model"] == pytest.approx(0.983, abs=0.002)  # the data README
    assert row["ap_model"] == row["ap_average_activity"]
    assert report.memorising and row["spearman_avg"] == pytest.approx(1.0)
    perfect = memoriser.assign(score=y)
    assert audit_predictions(perfect, ds).to_frame().iloc[0]["ap_model"] == 1.0


def test_write_track__real_tss_windows_overlap(roadmap, shared_data: Path, tmp_path: Path) -> None:
    import pyBigWig

    ds = roadmap
    # The Roadmap cube is built from labels alone, so it stores no chromosome sizes.
    sizes = shared_data / "ctcf" / "hg19.autoX.chrom.sizes"
    split = splits.Split(
        tuple(c for c in map(str, ds["cell_type"].values) if c != "E003"), AUTOSOMES, (), (),
        ("E003",), AUTOSOMES, setting="cross-cell-type",
    )  # fmt: skip
    scores = baselines.AverageActivity(ds).fit(split.train(ds)).predict(split.test(ds))
    with pytest.raises(ValueError, match=r"locus windows on chr\d+ overlap.*overlaps='max'"):
        tracks.write_track(scores, ds, tmp_path / "avg.bw", chrom_sizes=sizes)
    path = tracks.write_track(scores, ds, tmp_path / "avg.bw", overlaps="max", chrom_sizes=sizes)
    chrom = np.asarray(ds["chrom"].values).astype(object)
    start, end = ds["start"].values, ds["end"].values
    value = scores.sel(cell_type="E003").values
    # Windows that overlap no other carry their own score; shared bases the larger one.
    frame = pd.DataFrame({"chrom": chrom, "start": start, "end": end}).sort_values(
        ["chrom", "start"]
    )
    prev_end = frame.groupby("chrom")["end"].transform(lambda e: e.cummax().shift())
    next_start = frame.groupby("chrom")["start"].shift(-1)
    alone = frame.index[~((frame["start"] < prev_end) | (next_start < frame["end"]))]
    assert 1000 < len(alone) < len(frame)
    bw = pyBigWig.open(str(path))
    for i in alone[::50]:
        got = bw.stats(chrom[i], int(max(start[i], 0)), int(end[i]), exact=True)[0]
        assert got == np.float32(value[i])
    bw.close()


def test_audit__tad_bins_by_derived_name_and_coordinates(tads) -> None:
    from sklearn.metrics import average_precision_score

    ds = tads
    y = ds["label"].sel(cell_type="hESC").values
    avg = _others_mean(ds, "hESC")
    names = cube.locus_names(ds).astype(object)
    by_name = pd.DataFrame({"locus": names, "cell_type": "hESC", "score": avg})
    row = audit_predictions(by_name, ds).to_frame().iloc[0]
    assert row["ap_model"] == pytest.approx(average_precision_score(y, avg), abs=1e-12)
    by_coords = pd.DataFrame(
        {
            "chrom": np.asarray(ds["chrom"].values).astype(object),
            "start": ds["start"].values,
            "end": ds["end"].values,
            "cell_type": "hESC",
            "score": avg,
        }
    )
    got, want = audit_predictions(by_coords, ds), audit_predictions(by_name, ds)
    pd.testing.assert_frame_equal(got.to_frame(), want.to_frame())
