"""The object every experiment returns: its figure, its findings and its tables."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pitfall._atomic import atomic_write_text
from pitfall._plotting import save

__all__ = ["Result"]


@dataclass
class Result:
    """One figure of the paper (or one extra experiment), computed.

    Attributes
    ----------
    name : str
        File stem of its outputs (``figure1_def_expression``).
    title : str
        What it shows, as a heading.
    figure : matplotlib.figure.Figure or None
        The figure (``None`` when there is nothing to draw).
    findings : dict
        The numbers behind the sentences, JSON-serialisable (``findings.json``).
    sentences : list of str
        The findings in words, each derived from ``findings``.
    tables : dict of str to pandas.DataFrame
        The tables the figure is drawn from.
    caption : list of str
        How to read the figure (paragraphs).
    """

    name: str
    title: str
    figure: Any = None
    findings: dict[str, Any] = field(default_factory=dict)
    sentences: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    caption: list[str] = field(default_factory=list)

    def save_figure(self, folder: str | Path) -> Path | None:
        """Write the figure as ``folder/<name>.png`` (and close it); its path, or None."""
        if self.figure is None:
            return None
        path = save(self.figure, Path(folder) / f"{self.name}.png")
        self.figure = None
        self._png = path
        return path

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Write the figure (``figures/``), the findings and the tables (``results/``).

        Returns
        -------
        dict
            ``{"figure": path, "findings": path, <table name>: path, ...}`` of what was
            written (tables as tab-separated text).
        """
        folder = Path(folder)
        out: dict[str, Path] = {}
        png = self.save_figure(folder / "figures")
        if png is not None:
            out["figure"] = png
        results = folder / "results"
        out["findings"] = atomic_write_text(
            results / f"{self.name}.json",
            json.dumps(
                {"findings": self.findings, "sentences": self.sentences}, indent=2, default=str
            ),
        )
        for key, table in self.tables.items():
            out[key] = atomic_write_text(
                results / f"{self.name}_{key}.tsv", table.to_csv(sep="\t", index=False)
            )
        return out

    def section(self, tables: list[str] | None = None) -> dict[str, Any]:
        """A section of :func:`pitfall._html_page.write_page` (save the figure first).

        Parameters
        ----------
        tables
            Names of the tables shown (default: all).
        """
        png = getattr(self, "_png", None)
        return {
            "heading": self.title,
            "findings": list(self.sentences),
            "text": list(self.caption),
            "figures": [png] if png is not None else [],
            "tables": [self.tables[k] for k in (self.tables if tables is None else tables)],
        }

    def __str__(self) -> str:
        return "\n".join([self.title, *self.sentences])

    def _repr_html_(self) -> str:
        parts = [f"<h3>{html.escape(self.title)}</h3>"]
        parts += [f"<p>{html.escape(s)}</p>" for s in self.sentences]
        png = self._figure_png()
        if png:
            uri = "data:image/png;base64," + base64.b64encode(png).decode()
            parts.append(f"<img src='{uri}' style='max-width:100%'>")
        return "\n".join(parts)

    def _figure_png(self) -> bytes | None:
        png = getattr(self, "_png", None)
        if png is not None and Path(png).exists():
            return Path(png).read_bytes()
        if self.figure is None:
            return None
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=100)
        return buf.getvalue()


def findings_json(experiments: Mapping[str, Result]) -> str:
    """``{key: experiment.findings}`` as JSON text."""
    return json.dumps({k: e.findings for k, e in experiments.items()}, indent=2, default=float)
