"""A self-contained HTML report: headings, findings, text, embedded PNG figures and tables."""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pitfall._atomic import atomic_write_text

__all__ = ["write_page"]


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def write_page(
    path: str | os.PathLike,
    *,
    title: str,
    sections: Sequence[Mapping[str, Any]],
    footer: Mapping[str, Any] | None = None,
) -> Path:
    """Write one self-contained HTML file: text, embedded PNG figures and tables.

    Parameters
    ----------
    path
        The HTML file to write.
    title
        Page title.
    sections
        Each a mapping with ``heading``, optional ``text`` (paragraphs, plain text),
        ``figures`` (PNG paths, embedded) and ``tables`` (DataFrames).
    footer
        Key-value facts shown at the end (cube snapshots, package versions, run time).
    """
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
        "padding:0 1em;color:#222;line-height:1.45}img{max-width:100%;border:1px solid #eee}"
        "table{border-collapse:collapse;font-size:0.85em;margin:0.6em 0}"
        "td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}"
        "th{background:#f4f4f4}.finding{background:#f6f9f4;border-left:4px solid #1b9e77;"
        "padding:0.5em 1em;margin:0.8em 0}code{background:#f4f4f4;padding:0 3px}</style>",
        f"</head><body><h1>{html.escape(title)}</h1>",
    ]
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec['heading'])}</h2>")
        for para in sec.get("findings", []):
            parts.append(f"<p class='finding'>{html.escape(para)}</p>")
        for para in sec.get("text", []):
            parts.append(f"<p>{html.escape(para)}</p>")
        for fig in sec.get("figures", []):
            parts.append(f"<p><img src='{_png_data_uri(Path(fig))}' alt='{Path(fig).stem}'></p>")
        for table in sec.get("tables", []):
            parts.append(table.to_html(index=False, float_format=lambda x: f"{x:.3f}", border=0))
    if footer:
        parts.append("<h2>Provenance</h2><table>")
        for key, value in footer.items():
            parts.append(
                f"<tr><th>{html.escape(str(key))}</th>"
                f"<td style='text-align:left'>{html.escape(str(value))}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return atomic_write_text(path, "\n".join(parts))
