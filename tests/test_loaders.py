"""Loaders: batches against a naive selection of the cube, sharding, seeds, and the adapters."""

from __future__ import annotations

import gc
import os
import pickle
import subprocess
import sys
import weakref

import numpy as np
import pytest

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

from pitfall import kernels, loaders, open_cube, splits  # noqa: E402
from pitfall.loaders import Loader  # noqa: E402

LOCUS_CHUNK = 64  # of the cube: conftest's chunked_cube_path (CHUNKED_LOCUS_CHUNK)
BS, NB = 8, 6


@pytest.fixture(scope="module")
def cube(chunked_cube_path):
    return open_cube(chunked_cube_path)


@pytest.fixture(scope="module")
def plain(cube):
    """The cube without a store in its encoding: what a reader can only read through Dask."""
    out = cube.copy()
    out.encoding = {}
    return out


@pytest.fixture(scope="module")
def split(hybrid_split) -> splits.Split:
    return hybrid_split


# ------------------------------------------------------------------------------ the oracle


def naive_pairs(cube, split, *, seed: int, epoch: int, bs: int = BS, nb: int = NB):
    """The balanced epoch's (cell type, locus) pairs, from ``cube.label.values`` directly.

    The documented draw: per class, a multinomial over (cell type, locus chunk) blocks
    weighted by their counts of that class, then uniform picks inside each block; then each
    class permuted and batch b laid out as positives then negatives.
    """
    labels = cube["label"].values
    cts = [list(cube["cell_type"].values).index(c) for c in split.train_cell_types]
    loci = np.sort(split.loci(cube, "train"))
    chunk_ids = np.unique(loci // LOCUS_CHUNK)
    in_chunk = [loci[loci // LOCUS_CHUNK == k] for k in chunk_ids]
    rng = np.random.default_rng([seed, 1, epoch])
    half = bs // 2
    out_ct, out_loc = [], []
    for value in (1.0, 0.0):
        counts = np.array([[np.sum(labels[ct, loc] == value) for loc in in_chunk] for ct in cts])
        per_block = rng.multinomial(half * nb, counts.ravel() / counts.sum()).reshape(counts.shape)
        for j, b in zip(*np.nonzero(per_block), strict=True):
            candidates = in_chunk[b][labels[cts[j], in_chunk[b]] == value]
            pick = candidates[rng.integers(0, candidates.size, per_block[j, b])]
            out_loc.extend(pick)
            out_ct.extend([cts[j]] * pick.size)
    pos = rng.permutation(half * nb)
    neg = half * nb + rng.permutation(half * nb)
    order = np.concatenate([pos.reshape(nb, half), neg.reshape(nb, half)], axis=1).ravel()
    return np.array(out_ct)[order], np.array(out_loc)[order]


def naive_batch(cube, ct, loc, inputs: str, seed: int = 0, n_random: int = 100):
    x = {}
    if inputs in ("sequence", "both"):
        x["sequence"] = kernels.naive_one_hot(cube["sequence"].values[loc])
    if inputs in ("signal", "both"):
        x["signal"] = np.nan_to_num(cube["signal"].values[ct, loc])
    if inputs == "random":
        x["random"] = loaders.random_inputs(loc, seed, n_random)
    return x, cube["label"].values[ct, loc].astype(np.float32)


def naive_epoch(cube, split, inputs: str, *, seed: int, epoch: int):
    ct, loc = naive_pairs(cube, split, seed=seed, epoch=epoch)
    return [
        naive_batch(cube, ct[s : s + BS], loc[s : s + BS], inputs, seed)
        for s in range(0, ct.size, BS)
    ]


def assert_batches_equal(got, want) -> None:
    got = list(got)
    assert len(got) == len(want)
    for (gx, gy), (wx, wy) in zip(got, want, strict=True):
        gx = {k: np.asarray(v) for k, v in gx.items()}
        assert sorted(gx) == sorted(wx)
        for k in wx:
            np.testing.assert_array_equal(gx[k], wx[k], err_msg=k)
        np.testing.assert_array_equal(np.asarray(gy), wy)


def _loader(cube, split, **kw) -> Loader:
    kw = {"batch_size": BS, "batches_per_epoch": NB, **kw}
    return Loader(cube, split.train(cube), **kw)


# ------------------------------------------------------------------------------ numpy batches


@pytest.mark.parametrize("inputs", ["signal", "sequence", "both", "random"])
@pytest.mark.parametrize("mode", ["streamed", "direct", "in memory"])
def test_loader__batches_equal_naive_selection(
    cube, plain, chunked_cube_path, split, inputs, mode
) -> None:
    opts = {
        "streamed": {},
        "direct": {"store": chunked_cube_path},
        "in memory": {"in_memory": True},
    }
    loader = _loader(plain, split, inputs=inputs, seed=3, **opts[mode])
    assert loader.reader.direct == (mode == "direct")
    for epoch in (0, 1):
        assert_batches_equal(loader, naive_epoch(cube, split, inputs, seed=3, epoch=epoch))
    assert all(y.sum() == BS // 2 for _, y in loader.epoch(5))  # balanced


def test_loader__unbalanced_every_labelled_pair_once_in_seeded_order(cube, split) -> None:
    loader = _loader(cube, split, balanced=False, batch_size=50, seed=2)
    labels = cube["label"].values
    cts = [list(cube["cell_type"].values).index(c) for c in split.train_cell_types]
    loci = np.sort(split.loci(cube, "train"))
    sub = labels[np.ix_(cts, loci)]
    j, i = np.nonzero(~np.isnan(sub))  # row-major: cell type, then locus
    ct, loc = np.asarray(cts)[j], loci[i]
    perm = np.random.default_rng([2, 4, 0]).permutation(ct.size)
    ct, loc = ct[perm], loc[perm]
    want = [
        naive_batch(cube, ct[s : s + 50], loc[s : s + 50], "signal") for s in range(0, ct.size, 50)
    ]
    assert_batches_equal(loader.epoch(0), want)
    assert len(loader) == -(-ct.size // 50)
    assert want[-1][1].size == (ct.size % 50 or 50)
    ordered = _loader(cube, split, balanced=False, batch_size=50, shuffle=False)
    np.testing.assert_array_equal(ordered.pairs(0)["locus"], loci[i])
    np.testing.assert_array_equal(ordered.pairs(7)["cell_type"], np.asarray(cts)[j])


@pytest.mark.parametrize("balanced", [True, False])
def test_loader__shards_are_disjoint_and_cover_the_epoch(cube, split, balanced) -> None:
    kw = {"balanced": balanced, "inputs": "both", "seed": 1}
    if not balanced:
        kw["batch_size"] = 40
    whole = _loader(cube, split, **kw)
    full = list(whole.epoch(2))
    n = 4
    shards = [_loader(cube, split, shard=(k, n), **kw) for k in range(n)]
    assert sum(len(s) for s in shards) == len(whole)
    ids = np.concatenate([s.batch_ids for s in shards])
    assert sorted(ids.tolist()) == list(range(len(whole)))  # disjoint, covering
    for s in shards:
        assert_batches_equal(s.epoch(2), [full[b] for b in s.batch_ids])
    # round-robin interleaving of the shards is the whole epoch, in order
    pairs = [s.pairs(2) for s in shards]
    bs = whole.batch_size
    inter = [pairs[b % n]["locus"][(b // n) * bs : (b // n + 1) * bs] for b in range(len(whole))]
    np.testing.assert_array_equal(np.concatenate(inter), whole.pairs(2)["locus"])
    # shards compose: shard (1, 2) of shard (1, 2) is shard (3, 4)
    nested = whole.with_shard(1, 2).with_shard(1, 2)
    np.testing.assert_array_equal(nested.batch_ids, shards[3].batch_ids)


def test_loader__deterministic_per_seed(cube, split) -> None:
    a = _loader(cube, split, inputs="both", seed=7)
    b = _loader(cube, split, inputs="both", seed=7, prefetch=False, cache_bytes=0)
    c = _loader(cube, split, inputs="both", seed=8)
    assert_batches_equal(a.epoch(4), [(x, y) for x, y in b.epoch(4)])
    assert not np.array_equal(a.pairs(4)["locus"], c.pairs(4)["locus"])
    assert not np.array_equal(a.pairs(4)["locus"], a.pairs(5)["locus"])
    # iteration walks the epochs; set_epoch goes back
    first, second = list(a), list(a)
    assert_batches_equal(first, list(b.epoch(0)))
    assert_batches_equal(second, list(b.epoch(1)))
    a.set_epoch(0)
    assert_batches_equal(list(a), list(b.epoch(0)))


def test_loader__target_and_fixed_sample(cube, split) -> None:
    avg = np.linspace(0, 1, cube.sizes["locus"], dtype=np.float32)
    loader = _loader(cube, split, target=lambda y, loc: y - avg[loc], seed=4)
    pairs = loader.pairs(0)
    y = np.concatenate([y for _, y in loader.epoch(0)])
    np.testing.assert_allclose(y, pairs["y"] - avg[pairs["locus"]])
    x, ys = loader.sample(100, key=2)
    assert x["signal"].shape == (100, cube.sizes["mark"]) and ys.shape == (100,)
    x2, _ = _loader(cube, split, seed=4).sample(100, key=2)
    np.testing.assert_array_equal(x["signal"], x2["signal"])


def naive_loo_average(cube, members: list[str], ct: np.ndarray, loc: np.ndarray) -> np.ndarray:
    """Per pair: mean label at its locus over ``members`` other than the pair's own cell
    type, straight from ``cube.label.values``; the members' prevalence where none has one."""
    labels = cube["label"].values.astype(np.float64)
    names = list(map(str, cube["cell_type"].values))
    idx = [names.index(c) for c in members]
    block = labels[idx]
    fill = np.nansum(block) / np.sum(~np.isnan(block))
    out = np.empty(loc.size)
    for r, (c, locus) in enumerate(zip(ct, loc, strict=True)):
        vals = [labels[m, locus] for m in idx if m != c and not np.isnan(labels[m, locus])]
        out[r] = np.mean(vals) if vals else fill
    return out.astype(np.float32)


def test_locus_average__each_pair_without_its_own_label(cube, split) -> None:
    members = [*split.train_cell_types, *split.valid_cell_types]
    avg = loaders.LocusAverage.from_cube(cube, members)
    n_ct, n_loci = cube.sizes["cell_type"], cube.sizes["locus"]
    ct = np.repeat(np.arange(n_ct), n_loci)
    loc = np.tile(np.arange(n_loci), n_ct)
    y = cube["label"].values[ct, loc]
    np.testing.assert_allclose(
        avg.values(loc, ct, y), naive_loo_average(cube, members, ct, loc), rtol=1e-6
    )
    # a member's rows need their labels; a cell type outside the set gets the plain mean
    with pytest.raises(ValueError, match="labels"):
        avg.values(loc, ct)
    target = list(map(str, cube["cell_type"].values)).index("E003")
    plain = np.nanmean(cube["label"].sel(cell_type=members).values, axis=0)
    got = avg.values(np.arange(n_loci), np.full(n_loci, target))
    known = ~np.isnan(plain)
    np.testing.assert_allclose(got[known], plain[known], rtol=1e-6)
    np.testing.assert_allclose(avg.mean()[known], plain[known], rtol=1e-6)
    with pytest.raises(ValueError, match="average_cell_types"):
        avg.without(cube, members)


@pytest.mark.parametrize("inputs", ["signal", "sequence"])
def test_loader__average_input_is_each_pairs_leave_one_out_mean(cube, split, inputs) -> None:
    members = [*split.train_cell_types, *split.valid_cell_types]
    avg = loaders.LocusAverage.from_cube(cube, members)
    loader = _loader(cube, split, inputs=inputs, seed=3, average=avg)
    ct, loc = naive_pairs(cube, split, seed=3, epoch=0)
    got = list(loader.epoch(0))
    want = [
        naive_batch(cube, ct[s : s + BS], loc[s : s + BS], inputs, 3) for s in range(0, ct.size, BS)
    ]
    loo = naive_loo_average(cube, members, ct, loc)
    for b, (x, _) in enumerate(want):
        x["average"] = loo[b * BS : (b + 1) * BS, None]
    assert_batches_equal(got, want)
    assert loader.input_shapes()["average"] == (1,)
    # the fixed sample carries it too, and a three-argument target sees the cell types
    seen = {}

    def target(y, locus, cell_type):
        seen.update(ct=cell_type, loc=locus)
        return y

    x, _ = _loader(cube, split, inputs=inputs, seed=3, average=avg, target=target).sample(40, key=2)
    assert set(seen["ct"]) <= set(loaders.cell_type_index(cube, split.train_cell_types))
    np.testing.assert_allclose(
        x["average"][:, 0], naive_loo_average(cube, members, seen["ct"], seen["loc"]), rtol=1e-6
    )


def test_loader__pickles_and_refuses_bad_shards(cube, split) -> None:
    loader = _loader(cube, split, inputs="sequence", seed=5)
    list(loader.epoch(0))  # a prefetch thread and a warm cache: neither travels
    copy = pickle.loads(pickle.dumps(loader))
    assert_batches_equal(copy.epoch(1), list(loader.epoch(1)))
    with pytest.raises(ValueError, match="shard"):
        _loader(cube, split, shard=(2, 2))


# ------------------------------------------------------------------------------ readers


def test_chunk_reader__reads_the_store_directly_and_falls_back_to_dask(
    cube, plain, chunked_cube_path
) -> None:
    direct = loaders.ChunkReader(cube, store=chunked_cube_path, cache_bytes=0)
    assert direct.direct and set(direct.stored) == {"label", "signal", "sequence"}
    dask = loaders.ChunkReader(plain, cache_bytes=0)
    assert not dask.direct
    for var, ct in (("label", 2), ("signal", 4), ("sequence", None)):
        np.testing.assert_array_equal(direct.read(var, 1, ct), dask.read(var, 1, ct))
    labels = cube["label"].values
    np.testing.assert_array_equal(direct.read("label", 1, 2), labels[2, 64:128])
    # a cube that carries its store (cube.encoding["store"]) reads it directly
    carried = plain.copy()
    carried.encoding = {"store": loaders.open_store(chunked_cube_path, cube.attrs["snapshot"])}
    assert loaders.ChunkReader(carried).direct
    # a selection of the cube is not the stored array: read through Dask, right values
    sub = cube.isel(locus=slice(10, 200))
    reader = loaders.ChunkReader(sub, store=chunked_cube_path, cache_bytes=0)
    assert not reader.direct
    np.testing.assert_array_equal(reader.read("label", 1, 2), sub["label"].values[2, 64:128])
    # cell types in another order: not this cube's layout either
    flipped = cube.isel(cell_type=slice(None, None, -1))
    assert not loaders.ChunkReader(flipped, store=chunked_cube_path).direct


# ------------------------------------------------------------------------------ adapters


def test_import__loaders_import_no_framework() -> None:
    code = (
        "import sys, pitfall.loaders;"
        "assert not {'tensorflow', 'keras', 'torch', 'xgboost'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tf_dataset__batches_equal_naive_selection(cube, split) -> None:
    pytest.importorskip("tensorflow")
    loader = _loader(cube, split, inputs="both", seed=3)
    ds = loader.to_tf(epochs=2)
    want = naive_epoch(cube, split, "both", seed=3, epoch=0)
    want += naive_epoch(cube, split, "both", seed=3, epoch=1)
    assert_batches_equal(((x, y) for x, y in ds.as_numpy_iterator()), want)
    spec = ds.element_spec
    assert spec[0]["sequence"].shape.as_list() == [BS, cube.sizes["position"], 4]
    # an unbalanced epoch ends on a short batch: the batch size is left open
    tail = _loader(cube, split, balanced=False, batch_size=50).to_tf()
    assert tail.element_spec[1].shape.as_list() == [None]
    assert [len(y) for _, y in tail.as_numpy_iterator()][-1] <= 50
    # endless, for model.fit(steps_per_epoch=len(loader)): epoch 1 follows epoch 0
    endless = iter(loader.to_tf(epochs=None))
    got = [next(endless) for _ in range(2 * NB)]
    assert_batches_equal([(x, y) for x, y in got], want)


def test_tf_dataset__lets_its_loader_go_once_dropped(cube, split) -> None:
    # TensorFlow keeps each from_generator generator in a process-wide registry after its
    # dataset is gone: what the generator holds strongly stays for the life of the process.
    pytest.importorskip("tensorflow")
    loader = _loader(cube, split, inputs="signal", seed=3)
    ds = loader.to_tf(epochs=1)
    assert sum(1 for _ in ds.as_numpy_iterator()) == NB
    gone = weakref.ref(loader)
    del loader, ds
    gc.collect()
    assert gone() is None


def test_keras_pydataset__batches_equal_naive_selection(cube, split) -> None:
    keras = pytest.importorskip("keras")
    loader = _loader(cube, split, inputs="signal", seed=3)
    py = loader.to_keras()
    assert isinstance(py, keras.utils.PyDataset) and len(py) == NB
    for epoch in (0, 1):
        py.on_epoch_begin()
        assert_batches_equal(
            [py[b] for b in range(len(py))], naive_epoch(cube, split, "signal", seed=3, epoch=epoch)
        )
        py.on_epoch_end()
    # Keras drives it: each fit epoch calls on_epoch_begin once
    py2 = _loader(cube, split, inputs="signal", seed=3).to_keras()
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(py2.current)

    x_in = keras.Input((cube.sizes["mark"],), name="signal")
    model = keras.Model([x_in], keras.layers.Dense(1, activation="sigmoid")(x_in))
    model.compile("adam", "binary_crossentropy")
    model.fit(py2, epochs=3, verbose=0, callbacks=[Spy()], shuffle=False)
    assert seen == [0, 1, 2]


def test_torch_dataset__batches_equal_naive_selection_with_workers(cube, split) -> None:
    torch = pytest.importorskip("torch")
    loader = _loader(cube, split, inputs="both", seed=3)
    ds = loader.to_torch()
    assert isinstance(ds, torch.utils.data.IterableDataset)
    for workers in (0, 2):
        kw = {"multiprocessing_context": "spawn", "persistent_workers": True} if workers else {}
        dl = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, **kw)
        for epoch in (0, 1):
            ds.set_epoch(epoch)
            got = [({k: v.numpy() for k, v in x.items()}, y.numpy()) for x, y in dl]
            assert all(isinstance(y, np.ndarray) for _, y in got)
            # torch's layout: the sequence channels first, (b, 4, L)
            want = naive_epoch(cube, split, "both", seed=3, epoch=epoch)
            for x, _ in want:
                x["sequence"] = x["sequence"].transpose(0, 2, 1)
            assert_batches_equal(got, want)


def test_torch_dataset__forked_worker_says_why_instead_of_hanging(cube, split) -> None:
    torch = pytest.importorskip("torch")
    ds = _loader(cube, split, inputs="signal").to_torch()
    dl = torch.utils.data.DataLoader(
        ds, batch_size=None, num_workers=1, multiprocessing_context="fork"
    )
    with pytest.raises(RuntimeError, match="spawn"):
        next(iter(dl))
    # in memory, nothing is read after the fork: forked workers are fine
    mem = _loader(cube, split, inputs="signal", seed=3, in_memory=True).to_torch()
    dl = torch.utils.data.DataLoader(
        mem, batch_size=None, num_workers=2, multiprocessing_context="fork"
    )
    got = [({k: v.numpy() for k, v in x.items()}, y.numpy()) for x, y in dl]
    assert_batches_equal(got, naive_epoch(cube, split, "signal", seed=3, epoch=0))


def test_torch_readme_loop__trains_two_steps(cube, split) -> None:
    torch = pytest.importorskip("torch")
    # --- the README's PyTorch loop (pitfall.loaders) ---
    train = Loader(cube, split.train(cube), inputs="signal", seed=0)
    batches = train.to_torch()
    data = torch.utils.data.DataLoader(
        batches, batch_size=None, num_workers=2, multiprocessing_context="spawn"
    )
    net = torch.nn.Sequential(
        torch.nn.Linear(cube.sizes["mark"], 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
    )
    opt = torch.optim.Adam(net.parameters())
    losses = []
    for epoch in range(1):
        batches.set_epoch(epoch)
        for step, (x, y) in enumerate(data):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x["signal"])[:, 0], y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if step == 1:
                break
    # --- end ---
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert x["signal"].shape == (32, cube.sizes["mark"]) and float(y.sum()) == 16
