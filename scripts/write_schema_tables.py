"""Write src/perfsage/graph/schema_tables.py from the installed TFLite schema.

    .venv/bin/python scripts/write_schema_tables.py

Run after upgrading ai-edge-litert; tests/graph/test_schema_tables.py fails until then.
"""

from __future__ import annotations

import pprint
from pathlib import Path

from perfsage.graph.schema import derive_tables

OUT = Path(__file__).resolve().parents[1] / "src" / "perfsage" / "graph" / "schema_tables.py"


def main() -> None:
    lines = ['"""The TFLite schema\'s names and builtin-options layouts.', "",
             "Derived from ai-edge-litert's generated schema by scripts/write_schema_tables.py",
             "(see :mod:`perfsage.graph.schema`). Generated: do not edit.", '"""', "",
             "# fmt: off"]
    for name, value in derive_tables().items():
        lines.append(f"{name} = {pprint.pformat(value, width=96, sort_dicts=False)}")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
