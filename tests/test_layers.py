"""The layering written in docs/CONTRACT.md holds: no forbidden import between parts, no cycle."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "labkit"


def read_layers(text: str) -> tuple[dict, dict]:
    """(part -> module prefixes, part -> parts it may import) from the markdown table under '## Layers'."""
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    modules, allowed = {}, {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("part", "") or set(cells[0]) <= set("-"):
            continue
        modules[cells[0]] = re.findall(r"`([\w.*]+)`", cells[1])
        allowed[cells[0]] = {p.strip() for p in cells[2].split(",") if p.strip()}
    return modules, allowed


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path) -> set[str]:
    """Every labkit module ``path`` imports, lazily or not; ``from pkg import sub`` counts as importing pkg.sub."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{target}.{alias.name}".replace(".", "/")
                is_module = (root.parent / f"{sub}.py").exists() or (root.parent / sub / "__init__.py").exists()
                found.add(f"{target}.{alias.name}" if is_module else target)
    return {m for m in found if m == "labkit" or m.startswith("labkit.")}


def part_of(module: str, modules: dict) -> str:
    """The part a module belongs to (the longest matching prefix); each chapter package is its own part."""
    if module == "labkit.chapters" or module.startswith("labkit.chapters."):
        return "chapters:" + (module.split(".") + [""])[2]
    best = ""
    for part, prefixes in modules.items():
        for prefix in prefixes:
            inside = module == prefix or (prefix != "labkit" and module.startswith(prefix + "."))  # labkit: __init__
            if "*" not in prefix and inside and len(prefix) > len(best.partition("=")[2]):
                best = f"{part}={prefix}"
    if not best:
        raise AssertionError(f"{module} is in no part of docs/CONTRACT.md's layer table: add it to a row")
    return best.partition("=")[0]


def violations(root: Path, text: str) -> list[str]:
    """Forbidden imports and cycles between parts, one sentence each."""
    modules, allowed = read_layers(text)
    edges, problems = {}, []
    for path in sorted(root.rglob("*.py")):
        source = part_of(module_name(path, root), modules)
        for target_module in sorted(imports(path, root)):
            target = part_of(target_module, modules)
            if target == source:
                continue
            edges.setdefault(source, set()).add(target)
            may = allowed["chapters" if source.startswith("chapters:") else source]
            if target.startswith("chapters:"):
                problems.append(f"{module_name(path, root)} imports {target_module}: "
                                + ("a chapter never imports another chapter" if source.startswith("chapters:")
                                   else "a shared part never imports a chapter"))
            elif target not in may:
                problems.append(f"{module_name(path, root)} imports {target_module}: {source} may import only "
                                f"{', '.join(sorted(may)) or 'nothing in labkit'}")
    problems += [f"import cycle between parts: {' -> '.join(cycle)}" for cycle in _cycles(edges)]
    return problems


def _cycles(edges: dict) -> list[list[str]]:
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return cycles


def test_the_package_keeps_its_layers():
    assert violations(PACKAGE, (ROOT / "docs" / "CONTRACT.md").read_text(encoding="utf-8")) == []


@pytest.fixture
def copy_of_the_package(tmp_path):
    import shutil

    shutil.copytree(PACKAGE, tmp_path / "labkit", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "labkit", (ROOT / "docs" / "CONTRACT.md").read_text(encoding="utf-8")


def _plant(path: Path, line: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + f"\n\ndef _planted():\n    {line}\n", encoding="utf-8")


def test_a_planted_forbidden_import_fails(copy_of_the_package):
    root, table = copy_of_the_package
    _plant(root / "meters" / "memory.py", "from ..widgets import method_explorer")
    problems = violations(root, table)
    assert problems[0] == "labkit.meters.memory imports labkit.widgets: meters may import only core, loading, methods"
    assert "import cycle between parts: meters -> widgets -> meters" in problems


def test_a_shared_part_importing_a_chapter_fails(copy_of_the_package):
    root, table = copy_of_the_package
    _plant(root / "plots" / "__init__.py", "from ..chapters.ch01a_paradigms import compare")
    problems = violations(root, table)
    assert problems[0] == ("labkit.plots imports labkit.chapters.ch01a_paradigms.compare: a shared part never "
                           "imports a chapter")


def test_a_chapter_importing_another_chapter_fails(copy_of_the_package):
    root, table = copy_of_the_package
    _plant(root / "chapters" / "ch12_qlora" / "quant.py", "from ..ch01a_paradigms import compare")
    assert violations(root, table) == [("labkit.chapters.ch12_qlora.quant imports labkit.chapters.ch01a_paradigms."
                                        "compare: a chapter never imports another chapter")]


def test_a_planted_cycle_fails_even_where_each_import_is_allowed(copy_of_the_package):
    root, table = copy_of_the_package
    table = table.replace("| plots | `labkit.plots` | core |", "| plots | `labkit.plots` | core, loading |")
    table = table.replace("| loading | `labkit.models`, `labkit.data`, `labkit.metrics`, `labkit.fourbit` | core |",
                          "| loading | `labkit.models`, `labkit.data`, `labkit.metrics`, `labkit.fourbit` | core, plots |")
    _plant(root / "plots" / "__init__.py", "from ..models import load_model")
    _plant(root / "models.py", "from . import plots")
    assert violations(root, table) == ["import cycle between parts: loading -> plots -> loading"]


def test_a_module_outside_the_table_is_named(copy_of_the_package):
    root, table = copy_of_the_package
    (root / "stray.py").write_text('"""A new top-level module nobody placed."""\n', encoding="utf-8")
    with pytest.raises(AssertionError, match="labkit.stray is in no part"):
        violations(root, table)
