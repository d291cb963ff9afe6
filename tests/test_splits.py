"""Splits: the paper's presets, user splits, the hybrid grid, leakage, and refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pitfall import cube, splits, tasks

EXPRESSION = tasks.get_task("expression")

CELL_TYPES = ["E003", "E004", "E037", "E106", "E113", "E005", "E006"]
CHROMS = [f"chr{i}" for i in range(1, 23)]


def _tiny_cube(tmp_path: Path, cell_types=CELL_TYPES, chroms=CHROMS, per_chrom=3):
    chrom = np.repeat(chroms, per_chrom)
    start = np.tile(np.arange(per_chrom) * 1000, len(chroms))
    loci = cube.make_loci(chrom, start, start + 100)
    rng = np.random.default_rng(0)
    slabs = [
        cube.make_slab(ct, loci, label=rng.integers(0, 2, len(loci)), assembly="hg19")
        for ct in cell_types
    ]
    cube.create_cube(tmp_path / "c", slabs)
    return cube.open_cube(tmp_path / "c")


@pytest.fixture
def ds(tmp_path: Path):
    return _tiny_cube(tmp_path)


def test_preset__expression_settings_match_the_paper(ds) -> None:
    cc = EXPRESSION.split(ds, "cross-chromosome", "E003")
    assert cc.train_cell_types == cc.valid_cell_types == cc.test_cell_types == ("E003",)
    assert cc.train_chroms == tuple(f"chr{i}" for i in range(3, 23))
    assert cc.valid_chroms == ("chr2",)
    assert cc.test_chroms == ("chr1",)

    ct = EXPRESSION.split(ds, "cross-cell-type", "E003")
    assert ct.train_cell_types == ("E005", "E006")
    assert ct.valid_cell_types == ("E113", "E004", "E037", "E106")
    assert ct.test_cell_types == ("E003",)
    chr2_22 = tuple(f"chr{i}" for i in range(2, 23))
    assert ct.train_chroms == ct.valid_chroms == ct.test_chroms == chr2_22

    hy = EXPRESSION.split(ds, "hybrid", "E003")
    assert hy.train_cell_types == ct.train_cell_types
    assert hy.valid_cell_types == ct.valid_cell_types
    assert hy.train_chroms == chr2_22
    assert hy.test_chroms == ("chr1",)


def test_preset__tad_settings_match_the_paper(tmp_path: Path) -> None:
    cts = ["hESC", "GM12878", "IMR90", "K562", "HUVEC", "NHEK"]
    ds = _tiny_cube(tmp_path, cell_types=cts)
    cc = tasks.get_task("tad").split(ds, "cross-chromosome", "hESC")
    assert (cc.train_chroms, cc.valid_chroms, cc.test_chroms) == (("chr3",), ("chr2",), ("chr1",))
    ct = tasks.get_task("tad").split(ds, "cross-cell-type", "hESC")
    assert ct.train_cell_types == ("IMR90", "K562", "HUVEC", "NHEK")
    assert ct.valid_cell_types == ("GM12878",)
    assert ct.train_chroms == ct.valid_chroms == ct.test_chroms == ("chr2", "chr3")
    hy = tasks.get_task("tad").split(ds, "hybrid", "hESC")
    assert hy.train_chroms == ("chr2", "chr3")
    assert hy.test_chroms == ("chr1",)


def test_preset__any_target_and_validation(ds) -> None:
    s = EXPRESSION.split(ds, "hybrid", "E005", valid_cell_types=["E006"])
    assert s.test_cell_types == ("E005",)
    assert s.valid_cell_types == ("E006",)
    assert set(s.train_cell_types) == {"E003", "E004", "E037", "E106", "E113"}


def test_preset__no_validation_cell_types_given_chooses_and_says(ds, caplog) -> None:
    caplog.set_level("WARNING", logger="pitfall.splits")
    split = splits.preset(ds, "cross-cell-type", "E003")
    # 6 others: one in five, at least one: the first of them in the cube's order.
    assert split.valid_cell_types == ("E004",)
    assert split.train_cell_types == ("E037", "E106", "E113", "E005", "E006")
    assert "no validation cell types were given: validating on E004" in caplog.text
    caplog.clear()
    none = splits.preset(ds, "hybrid", "E003", valid_cell_types=())  # asked for none
    assert none.valid_cell_types == () and caplog.text == ""


def test_preset__absent_validation_cell_types_never_leave_it_empty_in_silence(
    tmp_path: Path, caplog
) -> None:
    cts = [f"X{i:02d}" for i in range(11)]  # none of the expression task's E113, E004...
    ds = _tiny_cube(tmp_path, cell_types=cts, chroms=CHROMS[:4])
    caplog.set_level("WARNING")
    split = EXPRESSION.split(ds, "cross-cell-type", "X00")
    assert split.valid_cell_types == ("X01", "X10")  # 10 others: 2, evenly spaced
    assert "validation cell types ['E113', 'E004', 'E037', 'E106'] are not in the cube" in (
        caplog.text
    )
    assert "validating on X01, X10 instead" in caplog.text
    two = _tiny_cube(tmp_path / "two", cell_types=["X00", "X01"], chroms=CHROMS[:4])
    caplog.clear()
    assert EXPRESSION.split(two, "hybrid", "X00").valid_cell_types == ()
    assert "validating on no cell type (the cube has too few to spare one)" in caplog.text


def test_split__selections_are_the_roles_cells_and_chromosomes(ds) -> None:
    s = EXPRESSION.split(ds, "hybrid", "E003")
    test = s.test(ds)
    assert list(test["cell_type"].values) == ["E003"]
    assert set(test["chrom"].values) == {"chr1"}
    assert test.sizes["locus"] == 3
    train = s.train(ds)
    assert set(train["chrom"].values) == set(CHROMS[1:])
    assert train.sizes["locus"] == 3 * 21
    # the locus coordinate points back into the cube
    np.testing.assert_array_equal(
        ds["label"].sel(cell_type="E005", locus=train["locus"]).values,
        train["label"].sel(cell_type="E005").values,
    )


def test_split__leakage_is_full_for_cross_cell_type_and_zero_for_hybrid(ds) -> None:
    assert EXPRESSION.split(ds, "cross-cell-type", "E003").leakage(ds) == 1.0
    assert EXPRESSION.split(ds, "hybrid", "E003").leakage(ds) == 0.0
    assert EXPRESSION.split(ds, "cross-chromosome", "E003").leakage(ds) == 0.0


def test_split__leakage_counts_only_labelled_loci(tmp_path: Path) -> None:
    loci = cube.make_loci(
        ["chr1"] * 4 + ["chr2"] * 4, list(range(0, 800, 100)), list(range(50, 850, 100))
    )
    lab_a = np.array([1, 0, 1, 0, 1, 1, 0, 0], dtype=float)
    lab_b = np.array([np.nan, np.nan, 1, 0, 1, 1, 0, 0])
    cube.create_cube(
        tmp_path / "c",
        [
            cube.make_slab("A", loci, label=lab_a, assembly="x"),
            cube.make_slab("B", loci, label=lab_b, assembly="x"),
        ],
    )
    ds = cube.open_cube(tmp_path / "c")
    s = splits.Split(("B",), ("chr1", "chr2"), (), (), ("A",), ("chr1",), setting="cross-cell-type")
    # test: A on chr1 (4 loci); B has labels at 2 of them
    assert s.leakage(ds) == 0.5
    table = s.describe(ds)
    assert table.loc["test", "n_loci"] == 4
    assert table.loc["train", "n_labels"] == 6
    assert table.loc["train", "prevalence"] == pytest.approx(3 / 6)
    assert table.attrs["leakage"] == 0.5


def test_split__hybrid_sharing_a_chromosome_or_cell_type_is_refused() -> None:
    with pytest.raises(splits.SplitError, match=r"chromosomes \['chr1'\]"):
        splits.Split(("A",), ("chr1", "chr2"), (), (), ("B",), ("chr1",), setting="hybrid")
    with pytest.raises(splits.SplitError, match=r"cell types \['A'\]"):
        splits.Split(("A", "B"), ("chr2",), (), (), ("A",), ("chr1",), setting="hybrid")


def test_split__names_missing_cell_types_and_chroms(ds) -> None:
    s = splits.Split(("E999",), ("chr2",), (), (), ("E003",), ("chrZ",))
    with pytest.raises(splits.SplitError, match="E999"):
        s.test(ds)
    with pytest.raises(splits.SplitError, match="not in the cube"):
        EXPRESSION.split(ds, "hybrid", "E777")


def test_split__roundtrips_as_data(ds) -> None:
    s = EXPRESSION.split(ds, "hybrid", "E003")
    assert splits.Split.from_dict(s.to_dict()) == s


def test_hybrid_grid__every_fold_and_cell_type(ds) -> None:
    grid = splits.hybrid_grid(ds, held_out=["E003", "E004"], chroms=["chr1", "chr2", "chr3"])
    assert len(grid) == 2 * 3
    for s in grid:
        assert s.setting == "hybrid"
        assert not set(s.train_chroms) & set(s.test_chroms)
        assert not set(s.train_cell_types) & set(s.test_cell_types)
        assert s.leakage(ds) == 0.0
    assert {(s.test_cell_types[0], s.test_chroms[0]) for s in grid} == {
        (c, ch) for c in ["E003", "E004"] for ch in ["chr1", "chr2", "chr3"]
    }


def test_locus_positions__chromosomes_across_chunk_borders(ds) -> None:
    # chrom read in blocks of 7 loci: runs of 3 loci per chromosome straddle the borders
    chunked = ds.chunk(locus=7)
    chunked.attrs = {}
    chrom = np.asarray(ds["chrom"].values).astype(object)
    for c in ("chr1", "chr2", "chr22"):
        np.testing.assert_array_equal(
            splits.locus_positions(chunked, [c]), np.flatnonzero(chrom == c)
        )
    both = splits.locus_positions(chunked, ["chr5", "chr3"])
    np.testing.assert_array_equal(both, np.flatnonzero(np.isin(chrom, ["chr3", "chr5"])))
    assert splits.locus_indexer(chunked, ["chr2", "chr3"]) == slice(3, 9)
    assert isinstance(splits.locus_indexer(chunked, ["chr1", "chr3"]), np.ndarray)


def test_split__html_for_jupyter_names_every_role(ds) -> None:
    text = EXPRESSION.split(ds, "hybrid", "E003")._repr_html_()
    assert "hybrid split" in text
    for role in ("train", "valid", "test"):
        assert f"<th>{role}</th>" in text
    assert "E003" in text and "chr1" in text and "<script" not in text
