"""Real-data cubes from ../shared/data against the figures its README states (skipped without it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pitfall import baselines, cube, evaluate, featurize, realdata, splits, tasks
from pitfall.sources import labels


@pytest.fixture(scope="module")
def roadmap(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("roadmap")
    manifest = realdata.roadmap_manifest(shared_data, out)
    featurize.build(manifest, out / "cube", workers=1, processes=False, progress=False)
    return cube.open_cube(out / "cube")


def test_roadmap_cube__matches_the_data_readme(roadmap, shared_data: Path) -> None:
    ds = roadmap
    assert ds.sizes["locus"] == 18_915
    assert ds.sizes["cell_type"] == 56
    assert "E000" not in set(ds["cell_type"].values)
    assert set(ds["chrom"].values) == set(realdata.AUTOSOMES)
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
    chroms = realdata.AUTOSOMES
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
    manifest = realdata.tad_manifest(shared_data, out)
    with pytest.warns(UserWarning, match="K562.*chr9"):
        featurize.build(manifest, out / "cube", workers=1, processes=False, progress=False)
    return cube.open_cube(out / "cube")


def test_tad_cube__bins_and_boundaries_from_both_formats(tads, shared_data: Path) -> None:
    ds = tads
    sizes = pd.read_csv(
        shared_data / "ctcf" / "hg19.autoX.chrom.sizes", sep="\t", header=None, index_col=0
    )[1]
    n_bins = sum(-(-sizes[c] // 40_000) for c in realdata.AUTOSOMES)
    assert ds.sizes["locus"] == n_bins == 72_036
    assert list(ds["cell_type"].values) == list(realdata.TAD_FILES)
    chrom = np.asarray(ds["chrom"].values).astype(object)
    start = ds["start"].values
    for ct, (name, _) in realdata.TAD_FILES.items():
        lab = ds["label"].sel(cell_type=ct).values
        # naive oracle: mark the bins of each domain's first and last base
        dom = labels.read_domains(shared_data / "tads" / name)
        expected = np.zeros(n_bins)
        index = {(c, s): i for i, (c, s) in enumerate(zip(chrom, start, strict=True))}
        for c, s, e in dom[dom.chrom.isin(realdata.AUTOSOMES)].itertuples(index=False):
            expected[index[(c, s // 40_000 * 40_000)]] = 1
            expected[index[(c, (e - 1) // 40_000 * 40_000)]] = 1
        without = set(realdata.AUTOSOMES) - set(dom.chrom)
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
