"""The tracked sources and documents carry no leftover merge-conflict markers (one reached the README once)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^(<{7}|>{7}) ", re.MULTILINE)


def test_no_merge_conflict_markers():
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "src").rglob("*.py"),
             *(ROOT / "src").rglob("*.toml"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py"),
             ROOT / "pyproject.toml"]
    found = [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
             for path in files if path.is_file()
             for text in [path.read_text(encoding="utf-8", errors="replace")] for m in MARKER.finditer(text)]
    assert not found, f"merge-conflict markers left in: {', '.join(found)}"
