"""docs/results.md is shared by several benchmark scripts; each owns one marked section.

A script replaces only the text between ``<!-- section: NAME -->`` and
``<!-- end: NAME -->``, so regenerating one table never drops another. A new section is
appended at the end.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results.md"
HEADER = ["# PerfSAGE results", "",
          "Every table and plot here is written by a script in `benchmarks/`; each section "
          "names the command that regenerates it.", ""]


def replace_section(name: str, lines: list[str], path: Path = RESULTS) -> Path:
    """Put ``lines`` into section ``name`` of ``path`` (created with a header if missing)."""
    begin, end = f"<!-- section: {name} -->", f"<!-- end: {name} -->"
    text = path.read_text() if path.exists() else "\n".join(HEADER) + "\n"
    block = "\n".join([begin, *lines, end])
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
