"""Where benchmark results go: docs/benchmarks.md (bench/run.py starts it, the others append)."""

from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_section(lines: list[str], *, append: bool = True) -> None:
    text = "\n".join(lines) + "\n"
    OUT.parent.mkdir(exist_ok=True)
    with OUT.open("a" if append else "w") as fh:
        fh.write(text)
    print(text)
