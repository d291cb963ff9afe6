"""The README's audit section, run as written: the binary command, the imputed track and
the function on arrays, in a folder holding the files they name (a tiny synthetic cube at
``store/mycube``, predictions, an imputed bigWig, gene annotation, arrays)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest

from pitfall.audit import json_schema
from pitfall.cube import open_cube
from pitfall.featurize import build
from pitfall.synth import synthesize

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(tag: str) -> str:
    """The fenced block after ``<!-- tag -->`` in the README."""
    text = README.read_text()
    m = re.search(rf"<!-- {re.escape(tag)} -->\n```\w*\n(.*?)```", text, re.S)
    assert m, f"README lacks the block {tag}"
    return m.group(1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("readme_audit")
    comp = synthesize(root / "synth", "tiny")
    build(comp.manifest, root / "store" / "mycube", workers=0, progress=False)
    ds = open_cube(root / "store" / "mycube")
    cts = [str(c) for c in ds["cell_type"].values]
    labels = ds["label"].values
    others = [cts.index(c) for c in cts if c != "E003"]
    rng = np.random.default_rng(0)
    memoriser = labels[others].mean(axis=0) + rng.normal(0, 0.01, labels.shape[1])
    pd.DataFrame(
        {"locus": np.asarray(ds["name"].values).astype(object), "cell_type": "E003",
         "score": memoriser}
    ).to_csv(root / "predictions.tsv", sep="\t", index=False)  # fmt: skip
    # the imputed track: the other cell types' H3K4me3 bigWigs averaged, base by base
    shutil.copy(comp.root / "genes.gtf.gz", root / "genes.gtf.gz")
    bigwigs = sorted(comp.root.glob("**/*H3K4me3*.bw"))
    assert bigwigs, "the synthetic compendium has no H3K4me3 bigWig"
    _mean_bigwig([b for b in bigwigs if "E003" not in b.name], root / "imputed.bw")
    np.save(root / "labels.npy", labels)
    np.save(root / "scores.npy", memoriser)
    np.save(root / "chroms.npy", np.asarray(ds["chrom"].values).astype(object))
    np.save(root / "starts.npy", ds["start"].values)
    assert cts == ["E003", "E004", "E037", "E106", "E113", "E116"]
    return root


def _mean_bigwig(sources: list[Path], out: Path) -> None:
    import pyBigWig

    handles = [pyBigWig.open(str(p)) for p in sources]
    chroms = handles[0].chroms()
    with pyBigWig.open(str(out), "w") as bw:
        bw.addHeader(list(chroms.items()))
        for chrom, size in chroms.items():
            values = np.mean([np.nan_to_num(h.values(chrom, 0, size, numpy=True)) for h in handles],
                             axis=0)  # fmt: skip
            bw.addEntries(chrom, 0, values=values.astype(float).tolist(), span=1, step=1)
    for h in handles:
        h.close()


def _run_shell(block: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=cwd, env=env,
                          capture_output=True, text=True)  # fmt: skip


def test_readme__binary_audit_command(folder: Path) -> None:
    block = _block("audit:binary")
    assert "pitfall audit predictions.tsv store/mycube" in block
    out = _run_shell(block, folder)
    assert out.returncode == 0, out.stderr
    assert "likely memorising locus activity" in out.stdout
    doc = json.loads((folder / "audit.json").read_text())
    jsonschema.validate(doc, json_schema())
    # the scored loci on the training chromosomes, labelled there in training cell types
    ds = open_cube(folder / "store" / "mycube")
    chrom = np.asarray(ds["chrom"].values).astype(object)
    on_train = np.isin(chrom, ["chr2", "chr3"])
    assert doc["leakage_declared"] and doc["leakage"] == pytest.approx(on_train.mean())
    assert (folder / "audit.png").stat().st_size > 10_000
    assert "data:image/png;base64," in (folder / "audit.html").read_text()
    for word in shlex.split(block.replace("\\\n", " ")):
        if word.startswith("--") and word != "--":
            assert word in subprocess.run(["pitfall", "audit", "--help"], capture_output=True,
                                          text=True, env=_env()).stdout  # fmt: skip


def _env() -> dict[str, str]:
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def test_readme__imputed_track_command(folder: Path) -> None:
    out = _run_shell(_block("audit:track"), folder)
    assert out.returncode == 0, out.stderr
    doc = json.loads((folder / "track.json").read_text())
    jsonschema.validate(doc, json_schema())
    assert doc["kind"] == "continuous" and doc["summary"][0]["mark"] == "H3K4me3"
    # the imputed bigWig featurized by hand, the cube's recipe: each locus window's mean of
    # arcsinh(value), bases without data as 0, windows clipped to the chromosome
    import pyBigWig

    ds = open_cube(folder / "store" / "mycube")
    obs = ds["signal"].sel(cell_type="E003", mark="H3K4me3").values.astype(float)
    with pyBigWig.open(str(folder / "imputed.bw")) as bw:
        sizes = bw.chroms()
        pred = []
        for c, a, b in zip(np.asarray(ds["chrom"].values).astype(object), ds["start"].values,
                           ds["end"].values, strict=True):  # fmt: skip
            a, b = max(int(a), 0), min(int(b), sizes[c])
            pred.append(np.mean(np.arcsinh(np.nan_to_num(bw.values(c, a, b, numpy=True)))))
    pred = np.asarray(pred)
    mse = doc["summary"][0]["metrics"]["mse"]
    assert mse["model"] == pytest.approx(np.mean((pred - obs) ** 2), rel=1e-4)
    others = ds["signal"].sel(mark="H3K4me3").drop_sel(cell_type="E003").mean("cell_type").values
    assert mse["average"] == pytest.approx(np.mean((others - obs) ** 2), rel=1e-4)


def test_readme__audit_arrays_example(folder: Path) -> None:
    code = _block("audit:arrays")
    out = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True,
                         text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "likely memorising locus activity" in out.stdout
    doc = json.loads((folder / "audit.json").read_text())
    jsonschema.validate(doc, json_schema())
    assert doc["summary"][0]["cell_type"] == "E003" and doc["leakage_declared"]
