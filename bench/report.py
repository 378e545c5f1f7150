"""Where benchmark results go: docs/benchmarks.md (bench/run.py starts it, the others append)."""

from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def _replace(current: list[str], lines: list[str]) -> list[str] | None:
    """``current`` with the section that has the same ``## `` heading as ``lines`` swapped for ``lines``;
    None if there is no such section. Re-running one benchmark must not duplicate its section."""
    heading = next((line for line in lines if line.startswith("## ")), None)
    if heading is None or heading not in current:
        return None
    start = current.index(heading)
    end = next(
        (i for i in range(start + 1, len(current)) if current[i].startswith(("## ", "# "))), len(current)
    )
    while start > 0 and not current[start - 1].strip():  # ``lines`` brings its own leading blank line
        start -= 1
    while end > start + 1 and not current[end - 1].strip():  # the next section keeps its own
        end -= 1
    tail = current[end:]
    return current[:start] + lines + ([""] if tail and tail[0].strip() else []) + tail


def write_section(lines: list[str], *, append: bool = True) -> None:
    """``append=False`` starts the file; otherwise a section whose heading is already there is replaced in
    place and a new one is appended."""
    text = "\n".join(lines) + "\n"
    OUT.parent.mkdir(exist_ok=True)
    if append and OUT.exists() and (merged := _replace(OUT.read_text().splitlines(), lines)) is not None:
        OUT.write_text("\n".join(merged) + "\n")
    else:
        with OUT.open("a" if append else "w") as fh:
            fh.write(text)
    print(text)
