"""The manifest: a TOML file that describes a cube (loci, inputs, target, cell types).

Relative paths resolve against the manifest's folder. Shape::

    assembly = "hg19"
    chroms = ["chr1", "chr2"]        # optional; default every chromosome of the loci source
    locus_chunk = 4096               # optional; loci per chunk in the cube
    [loci]                           # exactly one of tss | bins | bed
    tss = "genes.gtf.gz"             # GTF gene records or BED6, window relative to the TSS
    upstream = 2000
    downstream = 0
    # bins = "hg19.chrom.sizes"  with  bin_size = 40000 (and optionally stride = 50:
    #   a bin every 50 bp, overlapping when smaller than bin_size)
    # bed = "regions.bed"
    [features]                       # optional
    window = 2000                    # signal and sequence over this many bp centred on each
                                     # locus, not the locus itself (the paper's TAD inputs:
                                     # the 2 kbp at the middle of each 40 kb bin)
    [sequence]                       # optional
    fasta = "genome.fa"
    length = 2000                    # optional: sequence only, this many bp centred on each
                                     # locus (default: the feature window, else the locus)
    [signal]                         # optional
    marks = ["H3K4me3", "H3K27me3"]
    [target]
    kind = "expression"              # expression | domains | peaks
    table = "rpkm.tsv.gz"            # expression: genes x cell types
    threshold = 0.5                  # label = value > threshold
    exclude = ["E000"]               # expression without [cell_types]: columns to leave out
    rule = "summit"                  # peaks: "summit" (a summit in the bin) or "overlap"
    min_overlap = 1                  # peaks, rule "overlap": bp a peak must share with a bin
    blacklist = "blacklist.bed.gz"   # peaks: bins overlapping these regions are NaN everywhere
    [cell_types.E003]
    name = "H1"
    group = "ES"
    signal = { H3K4me3 = "bw/E003-H3K4me3.bw" }
    target = "tads/E003.bed"         # domains and peaks: one file per cell type
    ambiguous = "relaxed.narrowPeak.gz"  # peaks: bins this marks but target does not are NaN

Peak labels (``kind = "peaks"``) follow the ENCODE-DREAM challenge when asked: with
``stride = 50``, ``bin_size = 200``, ``rule = "overlap"``, each cell type's conservative peaks
as ``target`` and its relaxed peaks as ``ambiguous``, and the challenge's blacklist, a bin is
bound (1) when it shares at least ``min_overlap`` bp with a conservative peak, ambiguous
(NaN) when only a relaxed peak marks it, unbound (0) otherwise, and NaN in every cell type
when it overlaps a blacklisted region. NaN labels take part in no average precision.

A cell type's ``signal`` names the marks it has, any subset of ``[signal] marks``: a missing
experiment is NaN in the cube's ``signal`` and False in its ``observed`` (and may be added
later: ``pitfall append STORE MANIFEST --cell-type ID --mark MARK``).

An expression manifest without ``[cell_types]`` takes every column of the table (less
``exclude``) as a cell type with no signal.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pitfall._atomic import atomic_write_text
from pitfall._config_schema import ConfigError, Key, Table, check
from pitfall.storage import is_url

__all__ = [
    "CellTypeSpec",
    "LOCI_KINDS",
    "Manifest",
    "ManifestError",
    "PEAK_RULES",
    "SCHEMA",
    "dump_manifest",
    "dumps_manifest",
    "load_manifest",
]

#: A manifest's input: a local path (absolute) or a URL (``https://``, ``s3://``, ...).
Source = Path | str

LOCI_KINDS = ("tss", "bins", "bed")


class ManifestError(ConfigError):
    """A manifest that cannot describe a cube; the message names the file and the key."""


_PATH = Key(str, help="a path (relative to the manifest) or a URL")
_BP = 100_000_000  # no window, bin or sequence is longer than a chromosome arm

#: The manifest's declared schema (:mod:`pitfall._config_schema`): every key, its type and range.
SCHEMA = Table(
    {
        "assembly": Key(str, required=True, help="the genome assembly, e.g. 'hg19'"),
        "chroms": Key(list, items=str, unique=True),
        "locus_chunk": Key(int, low=1, high=1 << 24),
        "loci": Table(
            {
                "tss": _PATH,
                "bins": _PATH,
                "bed": _PATH,
                "upstream": Key(int, low=0, high=1_000_000),
                "downstream": Key(int, low=0, high=1_000_000),
                "bin_size": Key(int, low=1, high=_BP),
                "stride": Key(int, low=1, high=_BP, help="bp between bin starts"),
            },
            required=True,
            help="exactly one of tss, bins, bed",
        ),
        "features": Table(
            {"window": Key(int, low=1, high=1_000_000, help="bp centred on each locus")}
        ),
        "sequence": Table(
            {"fasta": Key(str, required=True), "length": Key(int, low=1, high=1_000_000)}
        ),
        "signal": Table({"marks": Key(list, required=True, items=str, unique=True)}),
        "target": Table(
            {
                "kind": Key(str, required=True, help="e.g. expression, domains, peaks"),
                "table": _PATH,
                "threshold": Key(float),
                "exclude": Key(list, items=str),
                "rule": Key(str, help="peaks: 'summit' or 'overlap'"),
                "min_overlap": Key(int, low=1, high=_BP, help="peaks, rule 'overlap': bp"),
                "blacklist": _PATH,
            },
            required=True,
        ),
        "cell_types": Table(
            any_key=Table(
                {
                    "name": Key(str),
                    "group": Key(str),
                    "signal": Table(any_key=_PATH),
                    "target": _PATH,
                    "ambiguous": _PATH,
                }
            )
        ),
    }
)


@dataclass
class CellTypeSpec:
    """One cell type of a manifest: display name, group, signal files per mark, target file.

    ``signal`` holds the marks the cell type has (a subset of the manifest's marks).
    """

    id: str
    name: str
    group: str = ""
    signal: dict[str, Source] = field(default_factory=dict)
    target: Source | None = None
    ambiguous: Source | None = None


#: How peaks become bin labels (``[target] rule``): a summit in the bin, or an overlap.
PEAK_RULES = ("summit", "overlap")


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
    stride: int | None = None
    fasta: Source | None = None
    sequence_length: int | None = None
    feature_window: int | None = None
    marks: list[str] = field(default_factory=list)
    table: Source | None = None
    threshold: float = 0.5
    exclude: list[str] = field(default_factory=list)
    rule: str = "summit"
    min_overlap: int = 1
    blacklist: Source | None = None
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
                "stride": self.stride,
            },
            "chroms": self.chroms,
            "sequence": str(self.fasta) if self.fasta else None,
            "sequence_length": self.sequence_length,
            "feature_window": self.feature_window,
            "marks": self.marks,
            "target": {
                "kind": self.target_kind,
                "table": str(self.table) if self.table else None,
                "threshold": self.threshold,
                **(self.peak_options() if self.target_kind == "peaks" else {}),
            },
            "signal_transform": "mean over the window of arcsinh(value); no data counts as 0",
        }

    def peak_options(self) -> dict[str, Any]:
        """How peaks become labels: ``rule``, ``min_overlap`` and the ``blacklist`` file."""
        return {
            "rule": self.rule,
            "min_overlap": self.min_overlap,
            "blacklist": str(self.blacklist) if self.blacklist else None,
        }

    def observed(self) -> dict[str, list[str]]:
        """Cell type -> the marks it has, in ``[signal] marks`` order."""
        return {
            ct: [mk for mk in self.marks if mk in spec.signal]
            for ct, spec in self.cell_types.items()
        }

    def input_files(self, cell_types: list[str] | None = None) -> list[Source]:
        """Every file the build of these cell types reads."""
        files = [self.loci_path]
        files += [p for p in (self.fasta, self.table, self.blacklist) if p is not None]
        for ct in cell_types or list(self.cell_types):
            spec = self.cell_types[ct]
            files += list(spec.signal.values())
            files += [p for p in (spec.target, spec.ambiguous) if p is not None]
        return files


def _fail(path: Path, msg: str) -> ManifestError:
    return ManifestError(f"{path}: {msg}")


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

    try:
        check(raw, SCHEMA, path)
    except ConfigError as err:
        raise ManifestError(str(err)) from None
    assembly = raw["assembly"]

    loci = raw["loci"]
    kinds = [k for k in LOCI_KINDS if k in loci]
    if len(kinds) != 1:
        raise _fail(path, f"[loci] needs exactly one of tss, bins, bed; found {kinds or 'none'}")
    loci_kind = kinds[0]
    m = Manifest(
        path=path,
        assembly=assembly,
        loci_kind=loci_kind,
        loci_path=resolve(loci[loci_kind]),
        target_kind="",
    )
    if "chroms" in raw:
        m.chroms = [str(c) for c in raw["chroms"]]
    if "locus_chunk" in raw:
        m.locus_chunk = raw["locus_chunk"]
    if loci_kind == "tss":
        m.upstream = loci["upstream"] if "upstream" in loci else 2000
        m.downstream = loci["downstream"] if "downstream" in loci else 0
        if m.upstream + m.downstream <= 0:
            raise _fail(path, "[loci] upstream + downstream must be positive")
    if loci_kind == "bins":
        if "bin_size" not in loci:
            raise _fail(path, "[loci] bins needs bin_size (e.g. 40000)")
        m.bin_size = loci["bin_size"]
        if "stride" in loci:
            if loci["stride"] > m.bin_size:
                raise _fail(
                    path,
                    f"[loci] stride {loci['stride']} is larger than bin_size {m.bin_size}: "
                    "bins would leave gaps; use a stride of at most bin_size",
                )
            m.stride = None if loci["stride"] == m.bin_size else loci["stride"]
    elif "bin_size" in loci or "stride" in loci:
        key = "bin_size" if "bin_size" in loci else "stride"
        raise _fail(path, f"[loci] {key} goes with bins, not with {loci_kind}")
    if loci_kind != "tss":
        for key in ("upstream", "downstream"):
            if key in loci:
                raise _fail(path, f"[loci] {key} goes with tss (TSS windows), not with {loci_kind}")

    if "features" in raw and "window" in raw["features"]:
        m.feature_window = raw["features"]["window"]
    if "sequence" in raw:
        seq = raw["sequence"]
        m.fasta = resolve(seq["fasta"])
        if "length" in seq:
            m.sequence_length = seq["length"]
    if "signal" in raw:
        sig = raw["signal"]
        m.marks = [str(x) for x in sig["marks"]]

    target = raw["target"]
    # Which kinds exist, and what each needs, is the label-kind registry's business
    # (pitfall.sources.labels.LABEL_KINDS), checked before any work by the featurizer.
    m.target_kind = target["kind"]
    if "table" in target:
        m.table = resolve(target["table"])
    if "threshold" in target:
        m.threshold = float(target["threshold"])
    if "exclude" in target:
        m.exclude = [str(x) for x in target["exclude"]]
    peak_keys = [k for k in ("rule", "min_overlap", "blacklist") if k in target]
    if peak_keys and m.target_kind != "peaks":
        raise _fail(
            path, f"[target] {peak_keys[0]} goes with kind = 'peaks', not {m.target_kind!r}"
        )
    if "rule" in target:
        if target["rule"] not in PEAK_RULES:
            raise _fail(
                path, f"[target] rule is {target['rule']!r}; use one of {', '.join(PEAK_RULES)}"
            )
        m.rule = target["rule"]
    if "min_overlap" in target:
        if m.rule != "overlap":
            raise _fail(path, "[target] min_overlap goes with rule = 'overlap'")
        m.min_overlap = target["min_overlap"]
    if "blacklist" in target:
        m.blacklist = resolve(target["blacklist"])

    cell_types = raw["cell_types"] if "cell_types" in raw else {}
    for ct, spec in cell_types.items():
        where = f"[cell_types.{ct}] "
        signal = spec.get("signal", {})
        unknown_marks = sorted(set(signal) - set(m.marks))
        if unknown_marks:
            raise _fail(path, f"{where}signal names marks {unknown_marks} not in [signal] marks")
        target_file = spec.get("target")
        ambiguous = spec.get("ambiguous")
        if ambiguous is not None and m.target_kind != "peaks":
            raise _fail(path, f"{where}ambiguous goes with [target] kind = 'peaks'")
        m.cell_types[ct] = CellTypeSpec(
            id=ct,
            name=str(spec.get("name", ct)),
            group=str(spec.get("group", "")),
            signal={mk: resolve(str(p)) for mk, p in signal.items()},
            target=resolve(str(target_file)) if target_file is not None else None,
            ambiguous=resolve(str(ambiguous)) if ambiguous is not None else None,
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
    path = atomic_write_text(path, dumps_manifest(data))
    load_manifest(path)
    return path
