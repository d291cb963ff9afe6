"""Tests of pitfall.sources.labels: hand-made files for every rule and error, then real data."""

from __future__ import annotations

import gzip
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pitfall import genome
from pitfall.sources.annotation import (
    genome_bins,
    read_chrom_sizes,
    read_genes,
    strip_version,
    tss_windows,
)
from pitfall.sources.labels import (
    LabelError,
    check_chrom_names,
    domain_boundaries,
    expression_labels,
    locus_gene_ids,
    match_genes,
    peak_labels,
    read_domains,
    read_expression_table,
    read_peaks,
)

AUTOSOMES = list(genome.AUTOSOMES)


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def loci_for(*gene_ids: str) -> pd.DataFrame:
    n = len(gene_ids)
    return pd.DataFrame(
        {
            "chrom": ["chr1"] * n,
            "start": np.arange(n) * 100,
            "end": np.arange(n) * 100 + 50,
            "strand": ["+"] * n,
            "name": list(gene_ids),
            "gene_id": [g.split(".")[0] for g in gene_ids],
        }
    )


# --------------------------------------------------------------------------------------
# Expression table

ROADMAP_LIKE = "gene_id\tE003\tE004\nENSG1\t1.5\t0.2\t\nENSG2\t0.5\t7.0\t\nENSG3\t0.0\t0.6\t\n"
EXPECTED = {"E003": [1.5, 0.5, 0.0], "E004": [0.2, 7.0, 0.6]}


@given(
    st.lists(
        st.one_of(
            # ids built from the characters that matter: dots, ASCII and other decimal
            # digits (Arabic-Indic), superscripts (digits, not decimal), letters
            st.text(alphabet="ENSG.0123456789\u0663\u00b2x", max_size=12),
            st.none(),
        ),
        max_size=8,
    )
)
def test_strip_version__same_as_the_regular_expression(ids) -> None:
    want = pd.Series(ids, dtype=object).str.replace(r"\.\d+$", "", regex=True)
    got = strip_version(ids)
    assert got.tolist() == want.tolist()


def test_strip_version__hand_checked() -> None:
    got = strip_version(["ENSG00000000003.10", "ENSG5", "a.b.7", "x.", "v1.2a", ".3"])
    assert got.tolist() == ["ENSG00000000003", "ENSG5", "a.b", "x.", "v1.2a", ""]


def test_read_expression_table__stray_tab(tmp_path):
    table = read_expression_table(write(tmp_path / "rpkm.pc", ROADMAP_LIKE))
    assert list(table.index) == ["ENSG1", "ENSG2", "ENSG3"]
    assert list(table.columns) == ["E003", "E004"]
    assert (table.dtypes == np.float64).all()
    for col, values in EXPECTED.items():
        np.testing.assert_array_equal(table[col].to_numpy(), values)
    assert table.attrs["path"].endswith("rpkm.pc")


def test_read_expression_table__no_stray_tab_gzipped(tmp_path):
    text = ROADMAP_LIKE.replace("\t\n", "\n")
    plain = read_expression_table(write(tmp_path / "plain.tsv", text))
    gz = read_expression_table(write(tmp_path / "plain.tsv.gz", text))
    stray = read_expression_table(write(tmp_path / "stray.tsv.gz", ROADMAP_LIKE))
    pd.testing.assert_frame_equal(plain, gz)
    pd.testing.assert_frame_equal(plain, stray)


def test_read_expression_table__versions_stripped_and_na(tmp_path):
    text = "gene_id\tA\nENSG1.7\t1\nENSG2.12\tNA\n"
    table = read_expression_table(write(tmp_path / "t.tsv", text))
    assert list(table.index) == ["ENSG1", "ENSG2"]
    assert np.isnan(table.loc["ENSG2", "A"])


def test_read_expression_table__missing_file(tmp_path):
    with pytest.raises(LabelError, match="nope.tsv: no such file"):
        read_expression_table(tmp_path / "nope.tsv")


def test_read_expression_table__duplicate_ids_after_version(tmp_path):
    text = "gene_id\tA\nENSG1.1\t1\nENSG2\t2\nENSG1.2\t3\nENSG2\t4\nENSG3\t5\n"
    path = write(tmp_path / "dup.tsv", text)
    with pytest.raises(LabelError, match=r"dup\.tsv: 2 gene ids .*'ENSG1', 'ENSG2'"):
        read_expression_table(path)


def test_read_expression_table__non_numeric_names_line_gene_column(tmp_path):
    # The blank line 3 must still count: the bad value is on file line 5.
    text = "gene_id\tA\tB\nENSG1\t1\t2\t\n\nENSG2\t3\t4\t\nENSG3\t5\tn/a?\t\n"
    path = write(tmp_path / "bad.tsv", text)
    with pytest.raises(
        LabelError, match=r"bad\.tsv, line 5: .*'n/a\?' for gene 'ENSG3' in column 'B'"
    ):
        read_expression_table(path)


def test_read_expression_table__header_without_gene_column(tmp_path):
    text = "E003\tE004\nENSG1\t1\t2\n"
    with pytest.raises(LabelError, match=r"line 1: .*'E003', not a gene column"):
        read_expression_table(write(tmp_path / "nohead.tsv", text))


def test_read_expression_table__rows_longer_than_header(tmp_path):
    text = "gene_id\tA\nENSG1\t1\t2\t3\n"
    with pytest.raises(LabelError, match="more fields than the header"):
        read_expression_table(write(tmp_path / "long.tsv", text))


def test_expression_labels__threshold_and_nan(tmp_path):
    text = "gene_id\tE003\nENSG1\t0.51\nENSG2\t0.5\nENSG3\t\nENSG4\t0\n"
    table = read_expression_table(write(tmp_path / "t.tsv", text))
    label, value = expression_labels(table, loci_for("ENSG1.3", "ENSG2", "ENSG3", "ENSG4"), "E003")
    assert label.dtype == np.float32 and value.dtype == np.float32
    np.testing.assert_array_equal(label, [1, 0, np.nan, 0])
    np.testing.assert_allclose(value, [0.51, 0.5, np.nan, 0])


def test_expression_labels__missing_cell_type(tmp_path):
    table = read_expression_table(write(tmp_path / "rpkm.tsv", ROADMAP_LIKE))
    with pytest.raises(
        LabelError, match=r"rpkm\.tsv: no column for cell type 'E999'.*'E003', 'E004'"
    ):
        expression_labels(table, loci_for("ENSG1"), "E999")


def test_match_genes__counts(tmp_path):
    table = read_expression_table(write(tmp_path / "rpkm.tsv", ROADMAP_LIKE))
    loci = loci_for("ENSG1.1", "ENSG3.4", "ENSG9.1")
    kept, summary = match_genes(loci, table)
    assert list(kept["gene_id"]) == ["ENSG1", "ENSG3"]
    assert summary == {
        "annotation": 3,
        "table": 3,
        "kept": 2,
        "dropped_from_annotation": 1,
        "dropped_from_table": 1,
    }


def test_match_genes__id_with_two_numeric_suffixes_stripped_once(tmp_path):
    # The table strips one version: X.1.2 -> X.1. The loci must match it, not X.
    text = "gene_id\tE003\nX.1.2\t3.5\nENSG2.4\t0.25\n"
    table = read_expression_table(write(tmp_path / "t.tsv", text))
    assert list(table.index) == ["X.1", "ENSG2"]
    genes = pd.DataFrame(
        {"chrom": ["chr1", "chr1"], "start": [1000, 5000], "end": [2000, 6000],
         "strand": ["+", "-"], "gene_id": ["X.1.2", "ENSG2.9"], "gene_name": ["", ""],
         "gene_type": ["", ""]}
    )  # fmt: skip
    loci = tss_windows(genes)
    kept, summary = match_genes(loci, table)
    assert list(kept["gene_id"]) == ["X.1", "ENSG2"] and summary["kept"] == 2
    label, value = expression_labels(table, kept, "E003")
    np.testing.assert_array_equal(value, np.float32([3.5, 0.25]))
    np.testing.assert_array_equal(label, [1, 0])


def test_locus_gene_ids__table_and_frame_agree():
    from pitfall import loci as loci_mod

    frame = loci_for("X.1.2", "ENSG5.3")  # gene_id: the ids before their first dot
    table = loci_mod.LocusTable.from_frame(frame)
    assert list(locus_gene_ids(frame)) == list(locus_gene_ids(table)) == ["X", "ENSG5"]
    # without gene_id, the name loses one version suffix
    no_id = frame.drop(columns="gene_id")
    want = ["X.1", "ENSG5"]
    assert (
        list(locus_gene_ids(no_id))
        == list(locus_gene_ids(loci_mod.LocusTable.from_frame(no_id)))
        == want
    )


# --------------------------------------------------------------------------------------
# Chromosome names


def test_check_chrom_names__bare_vs_chr():
    with pytest.raises(
        LabelError, match=r"f\.bed: the file uses '1', '2', .* loci use 'chr1', 'chr2'"
    ):
        check_chrom_names(["1", "2", "10"], ["chr1", "chr2", "chr10"], "f.bed")
    with pytest.raises(LabelError, match=r"uses 'chr1'.*loci use '1'"):
        check_chrom_names(["chr1"], ["1", "2"], "f.bed")


def test_check_chrom_names__matching_or_unrelated_pass():
    check_chrom_names(["chr1", "chrX"], ["chr1", "chr2"], "f")
    check_chrom_names(["chr1", "2"], ["chr1", "chr2"], "f")  # as many match as would
    check_chrom_names(["scaffold_7"], ["chr1"], "f")


# --------------------------------------------------------------------------------------
# Domains

SIZES = {"chr1": 250, "chr2": 130}  # 100 bp bins: chr1 = 3 bins (last 50 bp), chr2 = 2


def test_read_domains__header_crlf_extra_columns_unsorted(tmp_path):
    text = (
        "chr1\tx1\tx2\tchr2\ty1\ty2\r\nchr2\t10\t20\tz\r\nchr1\t100\t200\tz\r\nchr1\t0\t100\tz\r\n"
    )
    domains = read_domains(write(tmp_path / "rao.txt.gz", text))
    assert domains[["chrom", "start", "end"]].values.tolist() == [
        ["chr1", 0, 100],
        ["chr1", 100, 200],
        ["chr2", 10, 20],
    ]


def test_read_domains__bad_line_and_empty(tmp_path):
    with pytest.raises(LabelError, match=r"line 3: expected 'chrom<TAB>start<TAB>end'"):
        read_domains(write(tmp_path / "d.bed", "chr1\t0\t10\nchr1\t10\t20\nchr1\tten\t30\n"))
    with pytest.raises(LabelError, match="no domains"):
        read_domains(write(tmp_path / "e.bed", ""))
    with pytest.raises(LabelError, match="end 5 is not after its start 10"):
        read_domains(write(tmp_path / "r.bed", "chr1\t10\t5\n"))


def test_read_domains__renames_to_loci_chroms(tmp_path):
    path = write(tmp_path / "bare.bed", "1\t0\t100\n2\t0\t50\n")
    assert list(read_domains(path)["chrom"]) == ["1", "2"]
    assert list(read_domains(path, chroms=["chr1", "chr2"])["chrom"]) == ["chr1", "chr2"]


def test_domain_boundaries__end_on_bin_edge(tmp_path):
    # [0, 100) ends exactly on the edge 100: its last base 99 is in bin 0, so bin 1 is not
    # marked. chr2 [30, 130): bins [0, 100) [100, 130); last base 129 is in the short bin.
    # [100, 201) ends in bin 2 (its last base 200).
    bins = genome_bins(SIZES, 100)
    path = write(tmp_path / "d.bed", "chr1\t0\t100\nchr2\t30\t130\n")
    np.testing.assert_array_equal(domain_boundaries(read_domains(path), bins), [1, 0, 0, 1, 1])
    path = write(tmp_path / "d2.bed", "chr1\t100\t201\n")
    label = domain_boundaries(read_domains(path), bins)
    assert label.dtype == np.float32
    np.testing.assert_array_equal(label, [0, 1, 1, 0, 0])


def test_domain_boundaries__variable_bins_and_summary(tmp_path):
    # Hand-made uneven bins, unsorted within chr1, with a gap [300, 400) on chr1.
    bins = pd.DataFrame(
        {
            "chrom": ["chr1", "chr1", "chr1", "chr2", "chr3"],
            "start": [100, 0, 400, 0, 0],
            "end": [300, 100, 410, 1000, 10],
        }
    )
    text = "chr1\t50\t299\nchr1\t299\t401\nchr1\t350\t360\nchr2\t999\t1000\nchrX\t1\t5\n"
    label, summary = domain_boundaries(
        read_domains(write(tmp_path / "d.bed", text)), bins, return_summary=True
    )
    # 50 -> bin 1 (row 1); 298 -> row 0; 299 -> row 0; 400 -> row 2; 350/359 in the gap;
    # chr2 999 -> row 3; chr3 has none.
    np.testing.assert_array_equal(label, [1, 1, 1, 1, 0])
    assert summary["chroms_without"] == ["chr3"]
    assert summary["off_bins_chroms"] == {"chrX": 1}
    assert summary["points_outside_bins"] == 2
    label = domain_boundaries(read_domains(write(tmp_path / "d.bed", text)), bins, missing="nan")
    assert np.isnan(label[4]) and not np.isnan(label[:4]).any()


def test_domain_boundaries__chrom_naming_mismatch(tmp_path):
    path = write(tmp_path / "bare.bed", "1\t0\t100\n2\t0\t50\n")
    with pytest.raises(LabelError, match=r"bare\.bed: the file uses '1', '2' but the loci use"):
        domain_boundaries(read_domains(path), genome_bins(SIZES, 100))


def test_domain_boundaries__logs_chrom_without_domains(tmp_path, caplog):
    path = write(tmp_path / "d.bed", "chr1\t0\t100\n")
    with caplog.at_level(logging.WARNING, logger="pitfall.sources.labels"):
        domain_boundaries(read_domains(path), genome_bins(SIZES, 100))
    assert "no domains on 'chr2'" in caplog.text


# --------------------------------------------------------------------------------------
# Peaks


def test_read_peaks__narrowpeak_summit_vs_midpoint(tmp_path):
    text = (
        "chr1\t100\t200\t.\t0\t.\t1\t-1\t1\t30\n"  # summit 130
        "chr1\t300\t401\t.\t0\t.\t1\t-1\t1\t-1\n"  # no summit: midpoint 350
        "chr1\t500\t560\t.\t0\t.\t1\t-1\t1\t60\n"  # offset == width: clipped to 559
    )
    peaks = read_peaks(write(tmp_path / "p.narrowPeak.gz", text))
    assert list(peaks["summit_pos"]) == [130, 350, 559]
    bed = read_peaks(write(tmp_path / "p.bed", "track name=x\nchr2\t10\t21\tpeak1\n"))
    assert bed.values.tolist() == [["chr2", 10, 21, 15]]


def test_read_peaks__empty_file(tmp_path):
    for name, text in [("empty.narrowPeak", ""), ("empty.bed.gz", ""), ("t.bed", "track x\n")]:
        with pytest.raises(LabelError, match=rf"{name}: no peaks; an empty peak file usually"):
            read_peaks(write(tmp_path / name, text))


def test_peak_labels__summit_bins_and_last_short_bin(tmp_path):
    bins = genome_bins(SIZES, 100)  # chr1 [0,100) [100,200) [200,250); chr2 [0,100) [100,130)
    text = (
        "chr1\t150\t260\t.\t0\t.\t1\t-1\t1\t99\n"  # summit 249: last, short bin of chr1
        "chr2\t0\t300\t.\t0\t.\t1\t-1\t1\t-1\n"  # midpoint 150: past chr2's end, no bin
        "chr2\t90\t110\t.\t0\t.\t1\t-1\t1\t10\n"  # summit 100 on the edge: bin [100, 130)
    )
    label, summary = peak_labels(
        read_peaks(write(tmp_path / "p.narrowPeak", text)), bins, return_summary=True
    )
    assert label.dtype == np.float32
    np.testing.assert_array_equal(label, [0, 0, 1, 0, 1])
    assert summary["points_outside_bins"] == 1 and summary["chroms_without"] == []


def test_peak_labels__chrom_naming_mismatch(tmp_path):
    path = write(tmp_path / "p.bed", "chr1\t0\t10\nchr2\t0\t10\n")
    with pytest.raises(
        LabelError, match=r"p\.bed: the file uses 'chr1', 'chr2' but the loci use '1'"
    ):
        peak_labels(read_peaks(path), genome_bins({"1": 100, "2": 100}, 50))
    renamed = read_peaks(path, chroms=["1", "2"])
    np.testing.assert_array_equal(
        peak_labels(renamed, genome_bins({"1": 100, "2": 100}, 50)), [1, 0, 1, 0]
    )


# --------------------------------------------------------------------------------------
# Real data


@pytest.fixture(scope="module")
def roadmap(shared_data):
    return read_expression_table(shared_data / "roadmap" / "57epigenomes.RPKM.pc.gz")


def test_real_roadmap__genes_kept_and_h1_activity(shared_data, roadmap):
    genes = read_genes(shared_data / "roadmap" / "gencode_10_genes.gtf.gz")
    loci = tss_windows(genes, upstream=2000, downstream=0, chroms=AUTOSOMES)
    kept, summary = match_genes(loci, roadmap)
    assert len(kept) == summary["kept"] == 18_915  # the data README's figure
    assert summary["table"] == 19_795
    assert summary["kept"] + summary["dropped_from_table"] == summary["table"]
    label, value = expression_labels(roadmap, kept, "E003")
    assert not np.isnan(label).any()
    assert label.mean() == pytest.approx(0.674, abs=0.001)  # README: 67.4% active in H1


def test_real_roadmap__stray_tab_quirk_and_manual_parse(shared_data, roadmap):
    path = shared_data / "roadmap" / "57epigenomes.RPKM.pc.gz"
    with gzip.open(path, "rt") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        first = fh.readline().rstrip("\n").split("\t")
    assert first[-1] == ""  # the stray tab
    manual = dict(zip(header[1:], map(float, first[1:-1]), strict=True))
    gene = first[0]
    assert roadmap.shape == (19_795, 57)
    np.testing.assert_array_equal(
        roadmap.loc[gene].to_numpy(), [manual[c] for c in roadmap.columns]
    )
    naive = pd.read_csv(path, sep="\t", index_col=0)
    assert naive.loc[gene, "E003"] != roadmap.loc[gene, "E003"]  # the silent shift
    assert naive.loc[gene, "E003"] == roadmap.loc[gene, "E004"]


def naive_bins(sizes: dict[str, int], chroms: list[str], size: int):
    """Each chromosome's first bin index, and the labels of every bin, all 0."""
    offsets, total = {}, 0
    for c in chroms:
        offsets[c] = total
        total += math.ceil(sizes[c] / size)
    return offsets, np.zeros(total, dtype=np.float32)


def naive_boundaries(path: Path, sizes: dict[str, int], chroms: list[str], size: int) -> np.ndarray:
    offsets, label = naive_bins(sizes, chroms, size)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        for line in fh:
            chrom, start, end = line.split()[:3]
            if chrom in offsets:
                label[offsets[chrom] + int(start) // size] = 1
                label[offsets[chrom] + (int(end) - 1) // size] = 1
    return label


def test_real_tads__all_files_match_naive_loop(shared_data):
    sizes = read_chrom_sizes(shared_data / "ctcf" / "hg19.autoX.chrom.sizes")
    bins = genome_bins(sizes, 40_000, AUTOSOMES)
    files = sorted((shared_data / "tads").iterdir())
    assert len(files) == 7
    for path in files:
        domains = read_domains(path)
        label, summary = domain_boundaries(domains, bins, return_summary=True)
        expected = naive_boundaries(path, sizes, AUTOSOMES, 40_000)
        np.testing.assert_array_equal(label, expected, err_msg=path.name)
        assert summary["points_outside_bins"] == 0
        assert set(summary["off_bins_chroms"]) == {"chrX"}
        assert summary["chroms_without"] == (["chr9"] if path.name.startswith("K562") else [])
        if path.name.startswith("K562"):
            assert label[(bins["chrom"] == "chr9").to_numpy()].sum() == 0


def naive_peaks(path: Path, sizes: dict[str, int], chroms: list[str], size: int) -> np.ndarray:
    offsets, label = naive_bins(sizes, chroms, size)
    with gzip.open(path, "rt") as fh:
        for line in fh:
            f = line.split("\t")
            start, end, peak = int(f[1]), int(f[2]), int(f[9])
            summit = min(start + peak, end - 1) if peak >= 0 else (start + end) // 2
            if f[0] in offsets:
                label[offsets[f[0]] + summit // size] = 1
    return label


def test_real_ctcf__peak_labels_match_naive_loop(shared_data):
    sizes = read_chrom_sizes(shared_data / "ctcf" / "hg19.autoX.chrom.sizes")
    # chr21 has no peaks in these files (held out, like chr1 and chr8): chr20 and chr22 do.
    chroms = ["chr20", "chr21", "chr22"]
    path = shared_data / "ctcf" / "HepG2.CTCF.conservative.narrowPeak.gz"
    label, summary = peak_labels(
        read_peaks(path), genome_bins(sizes, 200, chroms), return_summary=True
    )
    expected = naive_peaks(path, sizes, chroms, 200)
    assert expected.sum() > 1000
    np.testing.assert_array_equal(label, expected)
    assert summary["chroms_without"] == ["chr21"]


def test_real_ctcf__genome_wide_200bp_length(shared_data):
    sizes = read_chrom_sizes(shared_data / "ctcf" / "hg19.autoX.chrom.sizes")
    n_bins = sum(math.ceil(sizes[c] / 200) for c in AUTOSOMES)
    assert n_bins == pytest.approx(14.4e6, rel=0.005)
    # Same layout as genome_bins (checked on chr21-22 below) without its per-bin names.
    parts = [np.arange(0, sizes[c], 200, dtype=np.int64) for c in AUTOSOMES]
    starts = np.concatenate(parts)
    ends = np.concatenate(
        [np.minimum(p + 200, sizes[c]) for p, c in zip(parts, AUTOSOMES, strict=True)]
    )
    chrom = pd.Categorical.from_codes(
        np.repeat(np.arange(22, dtype=np.int8), [len(p) for p in parts]), AUTOSOMES
    )
    bins = pd.DataFrame({"chrom": chrom, "start": starts, "end": ends})
    small = genome_bins(sizes, 200, ["chr21", "chr22"])
    tail = bins.iloc[-len(small) :]
    np.testing.assert_array_equal(tail["start"].to_numpy(), small["start"].to_numpy())
    np.testing.assert_array_equal(tail["end"].to_numpy(), small["end"].to_numpy())
    label, summary = peak_labels(
        read_peaks(shared_data / "ctcf" / "MCF-7.CTCF.conservative.narrowPeak.gz"),
        bins,
        missing="nan",
        return_summary=True,
    )
    assert len(label) == n_bins
    assert summary["chroms_without"] == ["chr1", "chr8", "chr21"]
    assert np.isnan(label).sum() == sum(
        math.ceil(sizes[c] / 200) for c in ["chr1", "chr8", "chr21"]
    )
