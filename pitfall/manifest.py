"""The manifest: a TOML file that describes a cube (loci, inputs, target, cell types).

Relative paths resolve against the manifest's folder. Shape::

    assembly = "hg19"
    chroms = ["chr1", "chr2"]        # optional; default every chromosome of the loci source
    locus_chunk = 4096               # optional; loci per chunk in the cube
    [loci]                           # exactly one of tss | bins | bed
    tss = "genes.gtf.gz"             # GTF gene records or BED6, window relative to the TSS
    upstream = 2000
    downstream = 0
    # bins = "hg19.chrom.sizes"  with  bin_size = 40000
    # bed = "regions.bed"
    [sequence]                       # optional
    fasta = "genome.fa"
    length = 2000                    # optional: a window of this length centred on each
                                     # locus (needed when loci differ in length, e.g. bins)
    [signal]                         # optional
    marks = ["H3K4me3", "H3K27me3"]
    [target]
    kind = "expression"              # expression | domains | peaks
    table = "rpkm.tsv.gz"            # expression: genes x cell types
    threshold = 0.5                  # label = value > threshold
    exclude = ["E000"]               # expression without [cell_types]: columns to leave out
    [cell_types.E003]
    name = "H1"
    group = "ES"
    signal = { H3K4me3 = "bw/E003-H3K4me3.bw" }
    target = "tads/E003.bed"         # domains and peaks: one file per cell type

An expression manifest without ``[cell_types]`` takes every column of the table (less
``exclude``) as a cell type with no signal.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pitfall.location import is_url

#: A manifest's input: a local path (absolute) or a URL (``https://``, ``s3://``, ...).
Source = Path | str

LOCI_KINDS = ("tss", "bins", "bed")


class ManifestError(ValueError):
    """A manifest that cannot describe a cube; the message names the file and the key."""


@dataclass
class CellTypeSpec:
    """One cell type of a manifest: display name, group, signal files per mark, target file."""

    id: str
    name: str
    group: str = ""
    signal: dict[str, Source] = field(default_factory=dict)
    target: Source | None = None


@dataclass
class Manifest:
    """A parsed manifest with absolute paths."""

    path: Path
    assembly: str
    loci_kind: str
    loci_path: Source
    target_kind: str
    chroms: list[str] | None = None
    upstream: int = 2000
    downstream: int = 0
    bin_size: int | None = None
    fasta: Source | None = None
    sequence_length: int | None = None
    marks: list[str] = field(default_factory=list)
    table: Source | None = None
    threshold: float = 0.5
    exclude: list[str] = field(default_factory=list)
    cell_types: dict[str, CellTypeSpec] = field(default_factory=dict)
    locus_chunk: int = 4096

    def featurization(self) -> dict[str, Any]:
        """The parameters that shaped the cube, for its root attributes."""
        return {
            "manifest": str(self.path),
            "loci": {
                "kind": self.loci_kind,
                "source": str(self.loci_path),
                "upstream": self.upstream,
                "downstream": self.downstream,
                "bin_size": self.bin_size,
            },
            "chroms": self.chroms,
            "sequence": str(self.fasta) if self.fasta else None,
            "sequence_length": self.sequence_length,
            "marks": self.marks,
            "target": {
                "kind": self.target_kind,
                "table": str(self.table) if self.table else None,
                "threshold": self.threshold,
            },
            "signal_transform": "mean over the window of arcsinh(value); no data counts as 0",
        }

    def input_files(self, cell_types: list[str] | None = None) -> list[Source]:
        """Every file the build of these cell types reads."""
        files = [self.loci_path]
        files += [p for p in (self.fasta, self.table) if p is not None]
        for ct in cell_types or list(self.cell_types):
            spec = self.cell_types[ct]
            files += list(spec.signal.values())
            if spec.target is not None:
                files.append(spec.target)
        return files


def closest(word: str, choices: Any) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""``."""
    import difflib

    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _fail(path: Path, msg: str) -> ManifestError:
    return ManifestError(f"{path}: {msg}")


def _get(table: dict, key: str, kind: type | tuple[type, ...], path: Path, where: str) -> Any:
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _fail(path, f"{where}{key} must be {names}, got {value!r}")
    return value


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read and check a manifest; paths become absolute (relative to the manifest's folder).

    Inputs may also be URLs (``https://``, ``s3://``, ``gs://``, ``az://``), kept as strings.

    Raises
    ------
    ManifestError
        Naming the file and the key for a missing, unknown or mistyped key.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise _fail(path, f"not valid TOML ({err})") from err
    root = path.parent

    def resolve(p: str) -> Source:
        # URLs stay as written: workers read them where they run.
        return p if is_url(p) else (root / Path(p).expanduser()).resolve()

    known = {"assembly", "chroms", "locus_chunk", "loci", "sequence", "signal", "target",
             "cell_types"}  # fmt: skip
    unknown = sorted(set(raw) - known)
    if unknown:
        raise _fail(path, f"unknown top-level keys {unknown}; known: {sorted(known)}")
    for key in ("assembly", "loci", "target"):
        if key not in raw:
            raise _fail(path, f"missing required key {key!r}")
    assembly = _get(raw, "assembly", str, path, "")

    loci = _get(raw, "loci", dict, path, "")
    kinds = [k for k in LOCI_KINDS if k in loci]
    if len(kinds) != 1:
        raise _fail(path, f"[loci] needs exactly one of tss, bins, bed; found {kinds or 'none'}")
    loci_kind = kinds[0]
    m = Manifest(
        path=path,
        assembly=assembly,
        loci_kind=loci_kind,
        loci_path=resolve(_get(loci, loci_kind, str, path, "[loci] ")),
        target_kind="",
    )
    if "chroms" in raw:
        m.chroms = [str(c) for c in _get(raw, "chroms", list, path, "")]
    if "locus_chunk" in raw:
        m.locus_chunk = _get(raw, "locus_chunk", int, path, "")
    if loci_kind == "tss":
        m.upstream = _get(loci, "upstream", int, path, "[loci] ") if "upstream" in loci else 2000
        m.downstream = _get(loci, "downstream", int, path, "[loci] ") if "downstream" in loci else 0
        if m.upstream + m.downstream <= 0:
            raise _fail(path, "[loci] upstream + downstream must be positive")
    if loci_kind == "bins":
        if "bin_size" not in loci:
            raise _fail(path, "[loci] bins needs bin_size (e.g. 40000)")
        m.bin_size = _get(loci, "bin_size", int, path, "[loci] ")
        if m.bin_size <= 0:
            raise _fail(path, f"[loci] bin_size must be positive, got {m.bin_size}")

    if "sequence" in raw:
        seq = _get(raw, "sequence", dict, path, "")
        if "fasta" not in seq:
            raise _fail(path, "[sequence] needs fasta = 'genome.fa'")
        m.fasta = resolve(_get(seq, "fasta", str, path, "[sequence] "))
        if "length" in seq:
            m.sequence_length = _get(seq, "length", int, path, "[sequence] ")
            if m.sequence_length <= 0:
                raise _fail(path, f"[sequence] length must be positive, got {m.sequence_length}")
    if "signal" in raw:
        sig = _get(raw, "signal", dict, path, "")
        m.marks = [str(x) for x in _get(sig, "marks", list, path, "[signal] ")]
        if len(set(m.marks)) != len(m.marks):
            raise _fail(path, f"[signal] marks has duplicates: {m.marks}")

    target = _get(raw, "target", dict, path, "")
    if "kind" not in target:
        raise _fail(path, "[target] needs kind (e.g. expression, domains, peaks)")
    # Which kinds exist, and what each needs, is the label-kind registry's business
    # (pitfall.sources.labels.LABEL_KINDS), checked before any work by the featurizer.
    m.target_kind = _get(target, "kind", str, path, "[target] ")
    if "table" in target:
        m.table = resolve(_get(target, "table", str, path, "[target] "))
    if "threshold" in target:
        m.threshold = float(_get(target, "threshold", (int, float), path, "[target] "))
    if "exclude" in target:
        m.exclude = [str(x) for x in _get(target, "exclude", list, path, "[target] ")]

    cell_types = _get(raw, "cell_types", dict, path, "") if "cell_types" in raw else {}
    for ct, spec in cell_types.items():
        where = f"[cell_types.{ct}] "
        if not isinstance(spec, dict):
            raise _fail(path, f"{where}must be a table")
        extra = sorted(set(spec) - {"name", "group", "signal", "target"})
        if extra:
            raise _fail(path, f"{where}unknown keys {extra}")
        signal = spec.get("signal", {})
        if not isinstance(signal, dict):
            raise _fail(path, f"{where}signal must be a table of mark = path")
        unknown_marks = sorted(set(signal) - set(m.marks))
        if unknown_marks:
            raise _fail(path, f"{where}signal names marks {unknown_marks} not in [signal] marks")
        missing_marks = [mk for mk in m.marks if mk not in signal]
        if missing_marks:
            raise _fail(
                path,
                f"{where}has no signal file for marks {missing_marks} (every cell type needs "
                "every mark of [signal] marks)",
            )
        target_file = spec.get("target")
        m.cell_types[ct] = CellTypeSpec(
            id=ct,
            name=str(spec.get("name", ct)),
            group=str(spec.get("group", "")),
            signal={mk: resolve(str(p)) for mk, p in signal.items()},
            target=resolve(str(target_file)) if target_file is not None else None,
        )
    if not m.cell_types and m.marks:
        raise _fail(path, "[signal] marks are set but no [cell_types.<id>] names the files")
    return m


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
        )
    raise TypeError(f"cannot write {type(value).__name__} to a manifest")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _toml_value(key)


def dumps_manifest(data: dict[str, Any]) -> str:
    """TOML text of a manifest given as nested dicts (the shape :func:`load_manifest` reads).

    Top-level scalars first, then one table per section, and ``cell_types`` as one
    ``[cell_types.ID]`` table per cell type (its ``signal`` an inline table).
    """
    lines = [
        f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)
    ]
    for section, table in data.items():
        if not isinstance(table, dict) or section == "cell_types":
            continue
        lines += ["", f"[{section}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    for ct, spec in data.get("cell_types", {}).items():
        lines += ["", f"[cell_types.{_toml_key(ct)}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in spec.items()]
    return "\n".join(lines) + "\n"


def dump_manifest(data: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a manifest (see :func:`dumps_manifest`) and check that it loads; return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps_manifest(data))
    load_manifest(path)
    return path
