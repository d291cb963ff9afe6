"""The map-style dataset, layouts, ids, augmentation and predictions back to the cube, against
naive constructions from ``cube.<var>.values``; DataLoader workers and DistributedSampler."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pitfall import kernels, loaders, open_cube, splits
from pitfall.loaders import Loader, PairDataset, to_dataarray

BS = 8


@pytest.fixture(scope="module")
def cube(chunked_cube_path):
    return open_cube(chunked_cube_path)


@pytest.fixture(scope="module")
def split(hybrid_split) -> splits.Split:
    return hybrid_split


# ------------------------------------------------------------------------------ the oracles

COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)


def naive_augment(codes: np.ndarray, flip: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Row by row: position i takes base i + shift (N outside the window), then the row is
    reversed and complemented where flipped."""
    out = np.empty_like(codes)
    n, length = codes.shape
    for r in range(n):
        row = np.full(length, 4, dtype=np.uint8)
        for i in range(length):
            j = i + int(shift[r])
            if 0 <= j < length:
                row[i] = codes[r, j]
        out[r] = COMPLEMENT[np.minimum(row, 4)[::-1]] if flip[r] else row
    return out


def naive_pairs(cube, split, role: str = "train"):
    """Labelled (cell type, locus) pairs of a role: cell type by cell type, loci ascending."""
    names = [str(c) for c in cube["cell_type"].values]
    cts = [names.index(c) for c in getattr(split, f"{role}_cell_types")]
    loci = np.sort(split.loci(cube, role))
    labels = cube["label"].values
    out = [(ct, int(loc)) for ct in cts for loc in loci if not np.isnan(labels[ct, loc])]
    return np.array([p[0] for p in out]), np.array([p[1] for p in out])


def naive_x(cube, ct, loc, inputs: str, layout: str, codes=None) -> dict[str, np.ndarray]:
    x = {}
    if inputs in ("sequence", "both"):
        seq = kernels.naive_one_hot(cube["sequence"].values[loc] if codes is None else codes)
        x["sequence"] = seq.transpose(0, 2, 1) if layout == "NCL" else seq
    if inputs in ("signal", "both"):
        x["signal"] = np.nan_to_num(cube["signal"].values[ct, loc])
    return x


def by_pair(ct, loc, x, y) -> dict[tuple[int, int], tuple[dict[str, np.ndarray], float]]:
    """Examples keyed by (cell type, locus); a repeated pair must repeat its values."""
    out: dict[tuple[int, int], tuple[dict[str, np.ndarray], float]] = {}
    for r, key in enumerate(zip(np.asarray(ct).tolist(), np.asarray(loc).tolist(), strict=True)):
        row = ({k: np.asarray(v[r]) for k, v in x.items()}, float(y[r]))
        if key in out:
            for k in row[0]:
                np.testing.assert_array_equal(out[key][0][k], row[0][k])
        out[key] = row
    return out


def assert_same_examples(got, want) -> None:
    assert sorted(got) == sorted(want)
    for key, (gx, gy) in got.items():
        wx, wy = want[key]
        assert sorted(gx) == sorted(wx)
        for k in wx:
            np.testing.assert_array_equal(gx[k], wx[k], err_msg=f"{key} {k}")
        assert gy == wy or (np.isnan(gy) and np.isnan(wy))


def _dataset(cube, split, role: str = "train", **kw) -> PairDataset:
    return PairDataset(cube, getattr(split, role)(cube), **kw)


# ------------------------------------------------------------------------------ map-style


@pytest.mark.parametrize(
    ("inputs", "layout"), [("signal", "NCL"), ("sequence", "NCL"), ("both", "NLC")]
)
def test_pair_dataset__examples_equal_naive_selection(cube, split, inputs, layout) -> None:
    data = _dataset(cube, split, inputs=inputs, layout=layout)
    ct, loc = naive_pairs(cube, split)
    assert len(data) == ct.size
    idx = np.arange(len(data))
    x, y, meta = data.batch(idx)
    np.testing.assert_array_equal(meta["cell_type_index"], ct)
    np.testing.assert_array_equal(meta["locus"], loc)
    want_x = naive_x(cube, ct, loc, inputs, layout)
    for k in want_x:
        np.testing.assert_array_equal(x[k], want_x[k], err_msg=k)
    np.testing.assert_array_equal(y, cube["label"].values[ct, loc])
    # one example is the same row, without the batch dim
    i = int(ct.size // 2)
    xi, yi, mi = data[i]
    for k in want_x:
        np.testing.assert_array_equal(xi[k], want_x[k][i])
    assert yi == y[i] and mi["index"] == i and data[-1][2]["index"] == len(data) - 1
    with pytest.raises(IndexError, match="out of range"):
        data[len(data)]


@pytest.mark.parametrize("augment", [False, True])
def test_pair_dataset__same_examples_as_the_batch_iterator(cube, split, augment) -> None:
    # The unbalanced loader's epoch holds every labelled pair once: the same set of
    # (cell type, locus, x, y) as the dataset, for the same seed, split and epoch.
    kw = {"inputs": "both", "seed": 5, "layout": "NCL"}
    if augment:
        kw.update(reverse_complement=True, max_shift=7)
    loader = Loader(cube, split.train(cube), balanced=False, batch_size=50, ids=True, **kw)
    data = _dataset(cube, split, **kw)
    for epoch in (0, 2):
        data.set_epoch(epoch)
        parts = list(loader.epoch(epoch))
        lx = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
        ly = np.concatenate([p[1] for p in parts])
        lct = np.concatenate([p[2]["cell_type_index"] for p in parts])
        lloc = np.concatenate([p[2]["locus"] for p in parts])
        x, y, meta = data.batch(np.arange(len(data)))
        got = by_pair(meta["cell_type_index"], meta["locus"], x, y)
        assert len(got) == len(data)
        assert_same_examples(got, by_pair(lct, lloc, lx, ly))
    # augmented examples differ from epoch to epoch (and from the plain ones)
    if augment:
        data.set_epoch(0)
        a = data.batch(np.arange(40))[0]["sequence"]
        data.set_epoch(1)
        b = data.batch(np.arange(40))[0]["sequence"]
        assert not np.array_equal(a, b)


def test_pair_dataset__meta_round_trips_to_cube_names(cube, split) -> None:
    data = _dataset(cube, split, role="test", inputs="signal", labelled_only=False)
    _, _, meta = data.batch(np.arange(len(data)))
    names = np.asarray(cube["name"].values).astype(object)
    np.testing.assert_array_equal(meta["name"], names[meta["locus"]])
    np.testing.assert_array_equal(
        meta["chrom"], np.asarray(cube["chrom"].values).astype(object)[meta["locus"]]
    )
    np.testing.assert_array_equal(meta["start"], cube["start"].values[meta["locus"]])
    np.testing.assert_array_equal(meta["end"], cube["end"].values[meta["locus"]])
    cts = np.asarray(cube["cell_type"].values).astype(object)
    np.testing.assert_array_equal(meta["cell_type"], cts[meta["cell_type_index"]])
    assert set(meta["cell_type"]) == set(split.test_cell_types)
    assert set(meta["chrom"]) == set(split.test_chroms)
    # every test pair, labelled or not
    assert len(data) == len(split.test_cell_types) * split.loci(cube, "test").size


def test_loader_ids__round_trip_to_cube_names(cube, split) -> None:
    loader = Loader(cube, split.train(cube), batch_size=BS, batches_per_epoch=6, ids=True, seed=2)
    labels = cube["label"].values
    pairs = loader.pairs(1)
    seen = []
    for _x, y, ids in loader.epoch(1):
        assert set(ids) == {"locus", "cell_type_index"} and ids["locus"].dtype == np.int64
        np.testing.assert_array_equal(y, labels[ids["cell_type_index"], ids["locus"]])
        seen.append(ids["locus"])
    np.testing.assert_array_equal(np.concatenate(seen), pairs["locus"])
    names = {str(c) for c in np.asarray(cube["cell_type"].values)[pairs["cell_type"]]}
    assert names <= set(split.train_cell_types)
    # the same batches without ids are (x, y)
    plain = Loader(cube, split.train(cube), batch_size=BS, batches_per_epoch=6, seed=2)
    assert all(len(b) == 2 for b in plain.epoch(1))


# ------------------------------------------------------------------------------ layouts


@settings(max_examples=60, deadline=None)
@given(codes=hnp.arrays(np.uint8, st.tuples(st.integers(0, 5), st.integers(0, 40)),
                        elements=st.integers(0, 7)))  # fmt: skip
def test_one_hot_layout__both_layouts_equal_naive(codes) -> None:
    want = kernels.naive_one_hot(codes)
    np.testing.assert_array_equal(loaders.one_hot_layout(codes, "NLC"), want)
    np.testing.assert_array_equal(loaders.one_hot_layout(codes, "NCL"), want.transpose(0, 2, 1))


def test_layout__adapters_default_to_their_framework(cube, split) -> None:
    loader = Loader(cube, split.train(cube), inputs="sequence", batch_size=BS, batches_per_epoch=2)
    length = cube.sizes["position"]
    assert loader.layout == "NLC" and loader.input_shapes()["sequence"] == (length, 4)
    ncl = loader.with_options(layout="NCL")
    assert ncl.input_shapes()["sequence"] == (4, length) and loader.layout == "NLC"
    for a, b in zip(loader.epoch(0), ncl.epoch(0), strict=True):
        np.testing.assert_array_equal(a[0]["sequence"].transpose(0, 2, 1), b[0]["sequence"])
    assert _dataset(cube, split, inputs="sequence").layout == "NCL"
    with pytest.raises(ValueError, match="NCL"):
        Loader(cube, split.train(cube), layout="CLN")


# ------------------------------------------------------------------------------ augmentation


@settings(max_examples=100, deadline=None)
@given(
    codes=hnp.arrays(
        np.uint8, st.tuples(st.integers(1, 6), st.integers(0, 30)), elements=st.integers(0, 4)
    ),  # fmt: skip
    data=st.data(),
)
def test_augment_codes__equals_naive(codes, data) -> None:
    n, length = codes.shape
    flip = data.draw(hnp.arrays(np.bool_, n))
    shift = data.draw(hnp.arrays(np.int64, n, elements=st.integers(-length - 2, length + 2)))
    np.testing.assert_array_equal(
        loaders.augment_codes(codes, flip, shift), naive_augment(codes, flip, shift)
    )


def test_augment__minus_strand_flipped_is_the_forward_genome_with_n_edges(
    cube, chunked_cube_path
) -> None:
    # The cube stores a minus-strand locus reverse-complemented; flipped and shifted by k it
    # is the forward genome over [start - k, end - k), N where that leaves the stored window.
    from pitfall.sources import fasta

    fa = chunked_cube_path.parent / "synth" / "genome.fa"
    strand = np.asarray(cube["strand"].values).astype(object)
    i = int(np.flatnonzero(strand == "-")[0])
    chrom, start, end = str(cube["chrom"].values[i]), int(cube["start"].values[i]), int(cube["end"].values[i])  # fmt: skip
    stored = cube["sequence"].values[i : i + 1]
    for k in (0, 3, -5):
        got = loaders.augment_codes(stored, np.array([True]), np.array([k]))[0]
        genome = fasta.window_codes(fa, chrom, np.array([start - k]), np.array([end - k]),
                                    np.array(["+"]))[0]  # fmt: skip
        inside = np.ones(stored.shape[1], dtype=bool)
        if k > 0:
            inside[:k] = False
        elif k < 0:
            inside[k:] = False
        np.testing.assert_array_equal(got[inside], genome[inside])
        assert (got[~inside] == 4).all()


def test_augment__draws_are_seeded_per_pair_and_epoch() -> None:
    aug = loaders.Augment(reverse_complement=True, max_shift=3, seed=1)
    cts = np.repeat(np.arange(4), 500)
    loci = np.tile(np.arange(500), 4)
    flip, shift = aug.draws(0, cts, loci)
    assert 0.45 < flip.mean() < 0.55 and set(shift.tolist()) == {-3, -2, -1, 0, 1, 2, 3}
    again = aug.draws(0, cts[::-1], loci[::-1])  # a draw is the pair's, whatever the order
    np.testing.assert_array_equal(again[0], flip[::-1])
    np.testing.assert_array_equal(again[1], shift[::-1])
    assert not np.array_equal(aug.draws(1, cts, loci)[1], shift)
    off = loaders.Augment(seed=1)
    codes = np.arange(20, dtype=np.uint8).reshape(2, 10) % 5
    assert not off.active and off.apply(codes, 0, cts[:2], loci[:2]) is codes
    only_shift = loaders.Augment(max_shift=2, seed=1).draws(0, cts, loci)
    assert not only_shift[0].any()
    with pytest.raises(ValueError, match="max_shift"):
        loaders.Augment(max_shift=-1)


def test_loader__augmented_batches_equal_naive(cube, split) -> None:
    loader = Loader(cube, split.train(cube), inputs="sequence", batch_size=BS,
                    batches_per_epoch=4, seed=3, reverse_complement=True, max_shift=50,
                    ids=True)  # fmt: skip
    plain = Loader(cube, split.train(cube), inputs="sequence", batch_size=BS,
                   batches_per_epoch=4, seed=3)  # fmt: skip
    for (x, y, ids), (_px, py) in zip(loader.epoch(1), plain.epoch(1), strict=True):
        ct, loc = ids["cell_type_index"], ids["locus"]
        flip, shift = loader.augment.draws(1, ct, loc)
        codes = naive_augment(cube["sequence"].values[loc], flip, shift)
        np.testing.assert_array_equal(x["sequence"], kernels.naive_one_hot(codes))
        np.testing.assert_array_equal(y, py)
    # the fixed sample is never augmented
    sx, _ = loader.sample(16, key=2)
    np.testing.assert_array_equal(sx["sequence"], plain.sample(16, key=2)[0]["sequence"])


# ------------------------------------------------------------------------------ torch


def test_dataloader__two_workers_cover_each_example_once(cube, split, chunked_cube_path) -> None:
    torch = pytest.importorskip("torch")
    data = _dataset(cube, split, inputs="both", store=chunked_cube_path, seed=1, max_shift=2)
    data.set_epoch(3)
    dl = torch.utils.data.DataLoader(data, batch_size=7, shuffle=True, num_workers=2,
                                     multiprocessing_context="spawn")  # fmt: skip
    index, seq, sig, ys, names = [], [], [], [], []
    for x, y, meta in dl:
        assert x["sequence"].shape[1:] == (4, cube.sizes["position"])
        assert x["sequence"].dtype == torch.float32 and y.dtype == torch.float32
        index.append(meta["index"].numpy())
        seq.append(x["sequence"].numpy())
        sig.append(x["signal"].numpy())
        ys.append(y.numpy())
        names.extend(meta["name"])
    index = np.concatenate(index)
    assert sorted(index.tolist()) == list(range(len(data)))  # each example exactly once
    assert not np.array_equal(index, np.arange(len(data)))  # shuffled
    want_x, want_y, want_meta = data.batch(index)  # epoch 3's augmentation, in this process
    np.testing.assert_array_equal(np.concatenate(seq), want_x["sequence"])
    np.testing.assert_array_equal(np.concatenate(sig), want_x["signal"])
    np.testing.assert_array_equal(np.concatenate(ys), want_y)
    assert names == want_meta["name"].tolist()


def test_dataloader__forked_worker_says_why_instead_of_hanging(cube, split) -> None:
    torch = pytest.importorskip("torch")
    data = _dataset(cube, split, inputs="signal")
    dl = torch.utils.data.DataLoader(data, batch_size=4, num_workers=1,
                                     multiprocessing_context="fork")  # fmt: skip
    with pytest.raises(RuntimeError, match="spawn"):
        next(iter(dl))
    mem = _dataset(cube, split, inputs="signal", in_memory=True)
    dl = torch.utils.data.DataLoader(mem, batch_size=100, num_workers=2,
                                     multiprocessing_context="fork")  # fmt: skip
    assert sorted(np.concatenate([m["index"].numpy() for _, _, m in dl]).tolist()) == list(
        range(len(mem))
    )


def test_distributed_sampler__two_replicas_cover_each_example_once(cube, split) -> None:
    torch = pytest.importorskip("torch")
    data = _dataset(cube, split, inputs="signal")
    assert len(data) % 2 == 0  # else the sampler pads one replica with a repeat
    for epoch in (0, 1):
        shares = []
        for rank in (0, 1):
            sampler = torch.utils.data.DistributedSampler(data, num_replicas=2, rank=rank,
                                                          shuffle=True, seed=4)  # fmt: skip
            sampler.set_epoch(epoch)
            dl = torch.utils.data.DataLoader(data, batch_size=16, sampler=sampler)
            shares.append(np.concatenate([m["index"].numpy() for _, _, m in dl]))
        assert not set(shares[0]) & set(shares[1])
        assert sorted(np.concatenate(shares).tolist()) == list(range(len(data)))
    # whole batches: a BatchSampler over each replica's share, data[indices] per batch
    shares = []
    for rank in (0, 1):
        sampler = torch.utils.data.DistributedSampler(data, num_replicas=2, rank=rank, seed=4)
        batches = torch.utils.data.BatchSampler(sampler, 16, drop_last=False)
        dl = torch.utils.data.DataLoader(data, batch_size=None, sampler=batches)
        for (x, y, meta), indices in zip(dl, batches, strict=True):
            want_x, want_y, want_meta = data.batch(indices)
            np.testing.assert_array_equal(x["signal"].numpy(), want_x["signal"])
            np.testing.assert_array_equal(y.numpy(), want_y)
            assert meta["index"].dtype == torch.int64  # as the per-example collation gives
            assert meta["index"].tolist() == indices
            assert meta["name"] == want_meta["name"].tolist()
            shares.append(meta["index"].numpy())
    assert sorted(np.concatenate(shares).tolist()) == list(range(len(data)))


def test_pair_dataset__pickles_with_its_epoch(cube, split) -> None:
    data = _dataset(cube, split, inputs="sequence", reverse_complement=True)
    data.set_epoch(4)
    data.batch([0, 1])  # a warm cache: it stays behind
    copy = pickle.loads(pickle.dumps(data))
    assert copy.epoch == 4
    np.testing.assert_array_equal(copy.batch([5, 9])[0]["sequence"], data.batch([5, 9])[0]["sequence"])  # fmt: skip


def test_to_torch__channels_first_with_ids(cube, split) -> None:
    torch = pytest.importorskip("torch")
    loader = Loader(cube, split.train(cube), inputs="sequence", batch_size=BS, batches_per_epoch=3)
    ds = loader.to_torch(ids=True)
    ds.set_epoch(0)
    got = list(torch.utils.data.DataLoader(ds, batch_size=None))
    want = list(loader.with_options(ids=True).epoch(0))
    assert len(got) == len(want) == 3
    for (x, y, ids), (wx, wy, wids) in zip(got, want, strict=True):
        np.testing.assert_array_equal(x["sequence"].numpy(), wx["sequence"].transpose(0, 2, 1))
        np.testing.assert_array_equal(ids["locus"].numpy(), wids["locus"])
        np.testing.assert_array_equal(y.numpy(), wy)


# ------------------------------------------------------------------------------ predictions


def naive_grid(cube, ct, loc, scores):
    """(cell type, locus) grid of the mean score of each pair, by loops."""
    sums: dict[tuple[int, int], list[float]] = {}
    for c, locus, s in zip(ct.tolist(), loc.tolist(), scores.tolist(), strict=True):
        sums.setdefault((c, locus), []).append(s)
    cts = sorted({c for c, _ in sums})
    loci = sorted({locus for _, locus in sums})
    grid = np.full((len(cts), len(loci)), np.nan)
    for (c, locus), values in sums.items():
        grid[cts.index(c), loci.index(locus)] = np.mean(values)
    return cts, loci, grid


def score_of(ct, loc):
    return np.sin(np.asarray(loc) * 0.37 + np.asarray(ct) * 1.3).astype(np.float32)


def test_to_dataarray__shuffled_dataloader_round_trips(cube, split) -> None:
    torch = pytest.importorskip("torch")
    data = _dataset(cube, split, role="test", inputs="signal", labelled_only=False)
    dl = torch.utils.data.DataLoader(data, batch_size=9, shuffle=True)
    ids, scores = [], []
    for _, _, meta in dl:
        scores.append(torch.from_numpy(score_of(meta["cell_type_index"].numpy(), meta["locus"].numpy())).requires_grad_())  # fmt: skip
        ids.append({"locus": meta["locus"], "cell_type": meta["cell_type"]})  # names
    da = to_dataarray(cube, ids, scores)
    ct, loc = naive_pairs(cube, split, "test")
    _, _, meta = data.batch(np.arange(len(data)))
    cts, loci, grid = naive_grid(cube, meta["cell_type_index"], meta["locus"],
                                 score_of(meta["cell_type_index"], meta["locus"]))  # fmt: skip
    assert da.dims == ("cell_type", "locus") and da.dtype == np.float32
    assert da["cell_type"].values.tolist() == [str(cube["cell_type"].values[c]) for c in cts]
    assert da["locus"].values.tolist() == loci
    np.testing.assert_array_equal(da.values, grid.astype(np.float32))
    names = np.asarray(cube["name"].values).astype(object)
    assert da["name"].values.tolist() == names[loci].tolist()
    np.testing.assert_array_equal(da["start"].values, cube["start"].values[loci])
    # the audit reads it as it is: its table holds each pair's score at its cube position
    from pitfall.audit import load_predictions

    table = load_predictions(da, cube).table.sort_values(["cell_type", "pos"])
    want = sorted(
        (str(cube["cell_type"].values[c]), locus, float(grid[i, j]))
        for i, c in enumerate(cts)
        for j, locus in enumerate(loci)
    )
    got = list(zip(table["cell_type"], table["pos"], table["score"], strict=True))
    assert [(c, int(p)) for c, p, _ in got] == [(c, p) for c, p, _ in want]
    np.testing.assert_allclose([s for *_, s in got], [s for *_, s in want], rtol=1e-6)


def test_to_dataarray__balanced_loader_repeats_get_their_mean(cube, split) -> None:
    loader = Loader(cube, split.train(cube), batch_size=BS, batches_per_epoch=40, ids=True)
    ids, scores = [], []
    rng = np.random.default_rng(0)
    for _, _, batch_ids in loader.epoch(0):
        ids.append(batch_ids)
        scores.append(rng.normal(size=(len(batch_ids["locus"]), 1)))  # (b, 1) float64
    ct = np.concatenate([i["cell_type_index"] for i in ids])
    loc = np.concatenate([i["locus"] for i in ids])
    assert len(set(zip(ct.tolist(), loc.tolist(), strict=True))) < ct.size  # repeats
    da = to_dataarray(cube, ids, scores)
    _, loci, grid = naive_grid(cube, ct, loc, np.concatenate(scores)[:, 0])
    assert da.dtype == np.float64 and da["locus"].values.tolist() == loci
    np.testing.assert_allclose(da.values, grid, rtol=1e-12)
    with pytest.raises(ValueError, match="one score per example"):
        to_dataarray(cube, ids[0], scores[0][:3])
    with pytest.raises(ValueError, match="cell_type"):
        to_dataarray(cube, {"locus": [1]}, [0.5])
    with pytest.raises(ValueError, match="not in the cube"):
        to_dataarray(cube, {"locus": [1], "cell_type": ["E999"]}, [0.5])
