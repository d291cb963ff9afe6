"""The synthetic compendium's expression cube, built once under a work folder, for the
benchmarks that time reading it (``python benchmarks/<script>.py`` puts this folder on the
import path)."""

from __future__ import annotations

import time
from pathlib import Path


def build_cube(work: Path, preset: str) -> Path:
    """The ``preset`` compendium's expression cube under ``work`` (built once)."""
    store = work / f"{preset}_cube"
    if not store.exists():
        from pitfall import featurize, synth

        t0 = time.perf_counter()
        comp = synth.synthesize(work / preset, preset)
        featurize.build(comp.manifest, store, workers=1, processes=False, progress=False)
        print(f"built the {preset} cube in {time.perf_counter() - t0:.1f} s")
    return store
