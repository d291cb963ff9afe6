"""The driver of a build or append: submit blocks, merge the workers' forks, commit in order.

While cell type *k* is being written, workers with nothing left to do for it compute the
blocks of *k + 1* ahead (kept on the worker that computed them); they are written as soon as
*k* commits. A commit that loses a race with another writer (another machine appending to
the same object store) is started again at the new tip.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pitfall import loci as loci_mod
from pitfall import repository, transaction
from pitfall.cluster import n_threads
from pitfall.featurize.inputs import _lengths, read_input, sequence_length
from pitfall.featurize.tasks import (
    CellTypeJob,
    checksums,
    compute_block,
    compute_write_block,
    write_block,
    write_loci_block,
    write_sequence_block,
)
from pitfall.location import Location
from pitfall.manifest import Manifest
from pitfall.schema import CellTypeInfo, Schema
from pitfall.sources import annotation, labels

log = logging.getLogger(__name__)

#: Upper bound on the loci of one task's block (rounded down to whole chunks): keeps a
#: worker's memory (runs read from a bigWig, the block's arrays) independent of cube size.
MAX_BLOCK_LOCI = 1 << 20
#: Upper bound on the bytes of one block of ``sequence``.
MAX_SEQUENCE_BLOCK_BYTES = 32 << 20


def _block_size(schema: Schema, bytes_per_locus: int, max_bytes: int | None = None) -> int:
    """Loci per task: whole chunks, at most MAX_BLOCK_LOCI (and ``max_bytes``), at least one."""
    cap = MAX_BLOCK_LOCI
    if max_bytes is not None:
        cap = min(cap, max(1, max_bytes // max(1, bytes_per_locus)))
    return max(1, cap // schema.chunk) * schema.chunk


@dataclass
class _Item:
    """One block of one cell type, through compute (ahead) and write."""

    ct: int
    i0: int
    i1: int
    future: Any = None
    state: str = "pending"  # pending | computing | computed | writing | written


class Writer:
    """Drives the task graph: commit in order, bounded work in flight, compute ahead.

    Two budgets of ``limit`` tasks each: writes of the cell type being committed (the
    *head*), and blocks of later cell types computed ahead (running or done and waiting on
    their worker). Head tasks never wait for ahead tasks, so a commit is never starved.
    """

    def __init__(
        self,
        client: Any,
        loc: Location,
        m: Manifest,
        loci: loci_mod.LocusSet,
        cell_types: list[str],
        jobs: list[CellTypeJob],
        schema: Schema,
        *,
        create: bool,
        planned: list[str],
        repo: Any,
        progress: bool,
        writer_id: str = "",
    ) -> None:
        self.client, self.loc, self.m, self.schema = client, loc, m, schema
        self.cell_types, self.jobs, self.create, self.repo = cell_types, jobs, create, repo
        self.planned = planned
        self.writer_id = writer_id
        self.n_loci = len(loci)
        # Large locus tables travel to each worker once, not with every task.
        self.loci = (
            client.scatter(loci, broadcast=False)
            if isinstance(loci, loci_mod.LocusTable) and len(loci) > 100_000
            else loci
        )
        self.limit = max(2, 2 * n_threads(client))
        step = _block_size(schema, 4 * (2 + len(schema.marks)))
        self.items = [
            [_Item(k, a, b) for a, b in loci_mod.blocks(self.n_loci, step)]
            for k in range(len(cell_types))
        ]
        self.todo = [deque(items) for items in self.items]
        self.by_future: dict[Any, tuple[str, Any]] = {}
        self.n_head = 0
        self.n_ahead = 0
        self.notes: list[str] = []
        self.snapshots: list[str] = []
        self.retries = 0
        self.progress = progress
        self.sources = {ct: client.submit(checksums, m, ct, pure=False) for ct in cell_types}

    def _submit(self, kind: str, obj: Any, fn: Callable[..., Any], *args: Any) -> Any:
        fut = self.client.submit(fn, *args, pure=False)
        self.by_future[fut] = (kind, obj)
        self.ac.add(fut)
        return fut

    # -- transactions ------------------------------------------------------------------------

    def _begin(self, k: int) -> None:
        ct = self.cell_types[k]
        spec = self.m.cell_types.get(ct)
        info = CellTypeInfo(ct, spec.name if spec else ct, spec.group if spec else "")
        first = self.create and k == 0
        if first:
            self.txn = transaction.begin_create(
                self.loc, self.schema, [info], assembly=self.m.assembly, repo=self.repo
            )
        else:
            self.txn = transaction.begin_append(self.loc, info, repo=self.repo)
        self.txn.writer = self.writer_id
        self.head = k
        self.fork_bytes = _pickle(self.txn.fork)
        self.forks: list[Any] = []
        self.finished: list[tuple[str, Any]] = []
        self.extra: deque[tuple[str, int, int]] = deque()
        self.n_extra = 0
        self.digests: dict[int, str] = {}
        if first:
            step = _block_size(self.schema, 64)
            self.extra += [("loci", a, b) for a, b in loci_mod.blocks(self.n_loci, step)]
            if self.schema.sequence_length:
                step = _block_size(
                    self.schema, self.schema.sequence_length, MAX_SEQUENCE_BLOCK_BYTES
                )
                self.extra += [("sequence", a, b) for a, b in loci_mod.blocks(self.n_loci, step)]
        # Blocks of this cell type computed ahead are written now, where they lie.
        for it in self.items[k]:
            if it.state == "computed":
                self._write_computed(it)

    def _write_computed(self, it: _Item) -> None:
        computed = it.future
        it.future = self._submit(
            "write", it, write_block, self.fork_bytes, self.txn.index, computed
        )
        it.state = "writing"
        self.n_ahead -= 1
        self.n_head += 1
        computed.release()

    def _commit(self) -> None:
        import icechunk

        self._gather()
        k = self.head
        ct = self.cell_types[k]
        attrs = self.txn.attrs
        attrs["cell_type_sources"] = {
            **attrs.get("cell_type_sources", {}),
            ct: self.sources[ct].result(),
        }
        if self.planned:
            attrs["build"] = {
                "cell_types": self.planned,
                "complete": k == len(self.cell_types) - 1,
            }
        if self.create and k == 0:
            attrs["featurization"] = self.m.featurization()
            attrs["locus_fingerprint"] = loci_mod.combine_digests(
                [self.digests[a] for a in sorted(self.digests)], self.n_loci
            )
        try:
            message = f"create with {ct}" if self.create and k == 0 else None
            self.snapshots.append(self.txn.commit(self.forks, message=message))
        except icechunk.ConflictError as err:
            if self.create and k == 0:
                raise FileExistsError(
                    f"{self.loc}: another build committed a cube there first; this build "
                    "stops (choose another --store, or append to that cube)"
                ) from err
            # Another writer appended first: this cell type starts again at the new tip.
            self.retries += 1
            for it in self.items[k]:
                it.state, it.future = "pending", None
            self.todo[k] = deque(self.items[k])
            self._begin(k)
            return
        self.bar.set_postfix(committed=f"{len(self.snapshots)}/{len(self.cell_types)}", last=ct)
        log.info(
            "committed %s (%d of %d) at %.1f s", ct, len(self.snapshots), len(self.cell_types),
            time.perf_counter() - self.t0,
        )  # fmt: skip
        if k + 1 < len(self.cell_types):
            self._begin(k + 1)

    # -- the loop ----------------------------------------------------------------------------

    def _fill(self) -> None:
        k = self.head
        while self.extra and self.n_head < self.limit:
            kind, a, b = self.extra.popleft()
            if kind == "loci":
                self._submit(
                    kind, a, write_loci_block, self.fork_bytes, self.loci, a, b, self.schema
                )
            else:
                self._submit(
                    kind, a, write_sequence_block, self.fork_bytes, self.m.fasta, self.loci, a,
                    b, sequence_length(self.m),
                )  # fmt: skip
            self.n_head += 1
            self.n_extra += 1
        while self.todo[k] and self.n_head < self.limit:
            it = self.todo[k].popleft()
            it.future = self._submit(
                "write", it, compute_write_block, self.fork_bytes, self.txn.index,
                self.jobs[k], self.loci, it.i0, it.i1,
            )  # fmt: skip
            it.state = "writing"
            self.n_head += 1
        for later in range(k + 1, len(self.items)):
            while self.todo[later] and self.n_ahead < self.limit:
                it = self.todo[later].popleft()
                it.future = self._submit(
                    "compute", it, compute_block, self.jobs[later], self.loci, it.i0, it.i1
                )
                it.state = "computing"
                self.n_ahead += 1
            if self.n_ahead >= self.limit:
                break

    def _head_done(self) -> bool:
        return (
            not self.extra
            and self.n_extra == 0
            and all(it.state == "written" for it in self.items[self.head])
        )

    def _done(self, fut: Any) -> None:
        kind, obj = self.by_future.pop(fut)
        if fut.status == "error":
            fut.result()  # raises the task's error here, with its own message
        if kind == "compute":
            # The block stays on its worker until written: nothing travels to the driver.
            obj.state = "computed"
            if obj.ct == self.head:
                self._write_computed(obj)
            return
        # The forks come back in one batch at the commit, not one round trip each.
        self.finished.append((kind, fut))
        self.n_head -= 1
        if kind in ("loci", "sequence"):
            self.n_extra -= 1
        else:
            obj.state, obj.future = "written", None
            self.bar.update(1)
            repository.pause_point("during_write")

    def _gather(self) -> None:
        """Fetch the finished tasks' forks (and digests, notes) for the commit."""
        futures = [f for _, f in self.finished]
        for (kind, _), result in zip(self.finished, self.client.gather(futures), strict=True):
            if kind == "loci":
                fork, digests = result
                self.digests.update(digests)
            elif kind == "sequence":
                fork = result
            else:
                fork, notes = result
                self.notes += notes
            self.forks.append(fork)
        for f in futures:
            f.release()
        self.finished = []

    def run(self) -> None:
        from distributed import as_completed
        from tqdm.auto import tqdm

        n_blocks = sum(len(items) for items in self.items)
        self.bar = tqdm(total=n_blocks, desc="featurize", unit="block", disable=not self.progress)
        self.t0 = time.perf_counter()
        self.ac = as_completed([])
        try:
            self._begin(0)
            while True:
                self._fill()
                if self._head_done():
                    self._commit()
                    if len(self.snapshots) == len(self.cell_types):
                        break
                    continue
                self._done(next(self.ac))
        finally:
            self.bar.close()
            for f in list(self.by_future):
                f.cancel()


def _pickle(obj: Any) -> bytes:
    import pickle

    return pickle.dumps(obj)


def jobs_for(m: Manifest, loci: loci_mod.LocusSet, cell_types: list[str]) -> list[CellTypeJob]:
    table = read_input(m.target_kind, m.table) if labels.label_kind(m).table else None
    ids = None
    if table is not None:
        t = loci.block(0, len(loci))
        ids = annotation.strip_version(
            pd.Series((t.extra or {}).get("gene_id", t.names()).astype(object))
        ).to_numpy()
    jobs = []
    for ct in cell_types:
        spec = m.cell_types.get(ct)
        values = None
        if table is not None:
            values = table[ct].reindex(ids).to_numpy(dtype=np.float32)
        jobs.append(
            CellTypeJob(
                id=ct,
                kind=m.target_kind,
                marks=tuple(m.marks),
                signal=tuple(spec.signal[mk] for mk in m.marks) if spec else (),
                target=spec.target if spec else None,
                values=values,
                threshold=m.threshold,
                window=m.feature_window,
            )
        )
    return jobs


def cube_schema(m: Manifest, loci: loci_mod.LocusSet) -> Schema:
    seq_len = None
    if m.fasta is not None:
        seq_len = sequence_length(m) or int(_lengths(loci)[0])
    bins = isinstance(loci, loci_mod.GenomeBins)
    return Schema(
        n_loci=len(loci),
        locus_chunk=m.locus_chunk,
        marks=tuple(m.marks),
        value=labels.label_kind(m).table,
        sequence_length=seq_len,
        strand=not bins,
        name=not bins,
    )
