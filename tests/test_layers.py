"""The layer rules of docs/architecture.md, checked on every ``lambdalytics.*`` import (AST, every scope).

    schemas  ← infra (the floor)  ← batch, speed  ← serving  ← cli (the roof)

``schemas`` imports no other layer; the floor imports only ``schemas``; ``batch`` and ``speed`` never
import each other, ``serving`` or the roof; nothing imports the roof; no cycle between top folders.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("schemas", "infra", "batch", "speed", "serving", "cli")
FORBIDDEN: dict[str, set[str]] = {
    "schemas": set(LAYERS) - {"schemas"},
    "infra": set(LAYERS) - {"schemas", "infra"},
    "batch": {"speed", "serving", "cli"},
    "speed": {"batch", "serving", "cli"},
    "serving": {"cli"},
    "cli": set(),
}


def imported_layers(path: Path, layer: str, root: Path) -> list[tuple[int, str]]:
    """(line, layer) of every lambdalytics import in one file, relative imports resolved."""
    package = path.relative_to(root).parent.parts  # e.g. ("serving", "api")
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names = [".".join(("lambdalytics", *base, *([node.module] if node.module else [])))]
            else:
                names = [node.module or ""]
        for name in names:
            parts = name.split(".")
            if parts[0] == "lambdalytics" and len(parts) > 1 and parts[1] in LAYERS:
                out.append((node.lineno, parts[1]))
    return out


def violations(root: Path) -> list[str]:
    """Every import that breaks a rule, plus every cycle between top folders."""
    problems: list[str] = []
    edges: dict[str, set[str]] = {layer: set() for layer in LAYERS}
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            for line, target in imported_layers(path, layer, root):
                if target == layer:
                    continue
                edges[layer].add(target)
                if target in FORBIDDEN[layer]:
                    problems.append(f"{path.relative_to(root)}:{line}: {layer} imports {target}")
    for a, b in itertools.combinations(LAYERS, 2):
        if _reaches(edges, a, b) and _reaches(edges, b, a):
            problems.append(f"cycle between {a} and {b}")
    return problems


def _reaches(edges: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(edges[node])
    return False


def test_the_repository_keeps_its_layer_rules():
    assert violations(REPO) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for layer in LAYERS:
        (tmp_path / layer).mkdir()
        (tmp_path / layer / "__init__.py").write_text("")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # a back-import hidden inside a function: the floor reaching up into the roof
        (
            {"infra/kafka_io.py": "def f():\n    from lambdalytics.cli.up import run_up\n"},
            ["infra/kafka_io.py:2: infra imports cli"],
        ),
        (
            {"schemas/events.py": "import lambdalytics.batch.job\n"},
            ["schemas/events.py:1: schemas imports batch"],
        ),
        (
            {"speed/embedded.py": "from lambdalytics.batch import writer\n"},
            ["speed/embedded.py:1: speed imports batch"],
        ),
        # a relative import that climbs out of its folder is resolved before it is judged
        (
            {"batch/sub/x.py": "from ...serving.merge import Merger\n"},
            ["batch/sub/x.py:1: batch imports serving"],
        ),
        (
            {"serving/loader.py": "from lambdalytics.cli import serve\n"},
            ["serving/loader.py:1: serving imports cli"],
        ),
    ],
)
def test_a_planted_back_import_is_caught(tmp_path, files, expected):
    assert violations(_tree(tmp_path, files)) == expected


def test_a_cycle_between_top_folders_is_caught(tmp_path, monkeypatch):
    # batch → serving is refused by name already; allow it to see the cycle rule itself at work
    monkeypatch.setitem(FORBIDDEN, "batch", set())
    root = _tree(
        tmp_path,
        {"batch/a.py": "import lambdalytics.serving.x\n", "serving/b.py": "import lambdalytics.batch.a\n"},
    )
    assert violations(root) == ["cycle between batch and serving"]


def test_allowed_imports_pass(tmp_path):
    root = _tree(
        tmp_path,
        {
            "serving/a.py": "from lambdalytics.batch import writer\nfrom lambdalytics.speed import store\n",
            "cli/b.py": "from lambdalytics.serving import main\nfrom . import up\n",
            "batch/c.py": "from lambdalytics.infra.settings import Settings\nfrom .writer import x\n",
        },
    )
    assert violations(root) == []
