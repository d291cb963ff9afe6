"""``pitfall demo``: the main job on the embedded default, the synthetic compendium."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from pitfall import cube, featurize, synth


def run(out: Path, *, quick: bool = False, workers: int | None = None) -> dict[str, Path]:
    """Synthesize the compendium and build its expression and TAD cubes under ``out``.

    Returns
    -------
    dict
        Paths of what was written: ``compendium``, ``expression`` and ``tad`` cubes.
    """
    t0 = time.perf_counter()
    out = Path(out)
    preset = "tiny" if quick else "demo"
    comp_dir = out / "compendium"
    if comp_dir.exists():
        shutil.rmtree(comp_dir)
    comp = synth.synthesize(comp_dir, preset)
    print(
        f"[demo] synthesized the {preset!r} compendium: {comp.params.n_genes:,} genes, "
        f"{len(comp.cell_types)} cell types, {len(comp.marks)} marks ({comp_dir})"
    )
    paths = {"compendium": comp_dir}
    for task, manifest in (("expression", comp.manifest), ("tad", comp.manifest_tad)):
        store = out / "store" / task
        if store.exists():
            shutil.rmtree(store)
        summary = featurize.build(manifest, store, workers=workers)
        print(f"[demo] {task} cube:")
        print(summary)
        paths[task] = store
        info = cube.cube_info(store)
        print(f"[demo]   size on disk {info['bytes_on_disk'] / 2**20:.1f} MiB")
    print(f"[demo] done in {time.perf_counter() - t0:.0f} s; cubes under {out / 'store'}")
    return paths
