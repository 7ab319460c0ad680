"""The layout shows the architecture: packages are layers, imports point one way, files stay readable.

Every rule is read from the code itself (``ast``), never from a list of files kept here: a new module is
checked the moment it exists. The allowed directions come from the ``May import:`` line of each layer's
docstring (``explorer/text/__init__.py`` and its siblings, ``explorer/pipeline.py``, ...), so the
docstring a newcomer reads and the rule the suite enforces cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import ROOT

LIBRARY = ROOT / "explorer"
PAGES = ROOT / "pages"
MAX_TOP_LEVEL_MODULES = 8  # modules directly in explorer/: the entry points, not the layers' contents
MAX_MODULE_LINES = 450
MAX_PAGE_LINES = 300


def module_name(path: Path) -> str:
    """``explorer/text/brown.py`` -> ``explorer.text.brown``; a package's ``__init__.py`` -> the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def python_files() -> dict[str, Path]:
    """Every module of the library, the pages and the app router, by dotted name."""
    paths = [*LIBRARY.rglob("*.py"), *PAGES.rglob("*.py"), ROOT / "app.py"]
    return {module_name(p): p for p in paths if "__pycache__" not in p.parts}


@cache
def imports_of(name: str) -> frozenset[str]:
    """The project modules ``name`` imports, anywhere in the file (inside functions and ``TYPE_CHECKING``
    blocks too: an import deferred into a function still ties the two modules together).

    ``from package import name`` counts as importing the submodule when ``name`` is one, else the package.
    """
    modules = python_files()
    path = modules[name]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # ``import explorer.text.brown as b`` -> the module
                target = target.rpartition(".")[0]
            if target:
                found.add(target)
    found.discard(name)
    return frozenset(found)


def runs_on_import(name: str) -> frozenset[str]:
    """What importing ``name`` runs: the modules it imports and their packages' ``__init__`` (which Python
    runs first), except the packages ``name`` itself sits in, which are already running when it is."""
    own = {name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)}
    runs = set()
    for target in imports_of(name):
        parts = target.split(".")
        runs.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return frozenset(runs - own - {name})


def library_modules() -> list[str]:
    return sorted(m for m in python_files() if m == "explorer" or m.startswith("explorer."))


def layer_of(module: str) -> str:
    """The layer a library module belongs to: its package under ``explorer`` (``text``, ``model``, ...), or
    the top-level module's own name (``pipeline``); ``explorer`` for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "explorer"


def layer_file(layer: str) -> Path:
    package = LIBRARY / layer / "__init__.py"
    return package if package.exists() else LIBRARY / f"{layer}.py"


@cache
def allowed_imports(layer: str) -> frozenset[str]:
    """What the ``May import:`` line of a layer's docstring allows: layers (``text``) or single modules
    (``interpret.analysis``); ``nothing``, or ``any layer``. Every layer may import ``explorer`` itself (the
    package's few shared names) and its own modules."""
    docstring = ast.get_docstring(ast.parse(layer_file(layer).read_text(encoding="utf-8"))) or ""
    lines = [line for line in docstring.splitlines() if line.startswith("May import:")]
    assert len(lines) == 1, f"{layer_file(layer).relative_to(ROOT)}: the docstring needs one 'May import:' line"
    text = lines[0].removeprefix("May import:").strip().rstrip(".")
    if text == "any layer":
        return frozenset({"*"})
    return frozenset() if text == "nothing" else frozenset(item.strip() for item in text.split(","))


def import_allowed(source_layer: str, target: str) -> bool:
    target_layer = layer_of(target)
    if target == "explorer" or target_layer == source_layer:
        return True
    allowed = allowed_imports(source_layer)
    relative = target.removeprefix("explorer.")
    return "*" in allowed or target_layer in allowed or relative in allowed


def strongly_connected(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """Tarjan's algorithm: every group of nodes that can reach each other (a cycle when larger than one)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                group.append(other)
                if other == node:
                    break
            groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_only_the_entry_points_sit_directly_in_explorer():
    top = sorted(p.name for p in LIBRARY.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"{len(top)} modules directly in explorer/: {top}; put them in a layer"


def longer_than(folder: Path, limit: int) -> dict[str, int]:
    lengths = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in folder.rglob("*.py")}
    return {path: count for path, count in lengths.items() if count > limit}


def test_no_library_module_is_longer_than_one_sitting():
    long = longer_than(LIBRARY, MAX_MODULE_LINES)
    assert not long, f"split these along their seams (more than {MAX_MODULE_LINES} lines): {long}"


def test_no_page_module_is_longer_than_a_page():
    long = longer_than(PAGES, MAX_PAGE_LINES)
    assert not long, f"pages stay thin (at most {MAX_PAGE_LINES} lines): {long}"


def test_there_are_no_import_cycles():
    graph = {name: runs_on_import(name) for name in python_files()}
    cycles = [group for group in strongly_connected(graph) if len(group) > 1]
    assert not cycles, f"modules that import each other, directly or around a loop: {cycles}"


def test_layers_do_not_import_each_other_in_a_loop():
    graph: dict[str, set[str]] = {}
    for module in library_modules():
        graph.setdefault(layer_of(module), set()).update(
            layer_of(t) for t in imports_of(module) if t.startswith("explorer.")
        )
    frozen = {layer: frozenset(targets - {layer}) for layer, targets in graph.items()}
    cycles = [group for group in strongly_connected(frozen) if len(group) > 1]
    assert not cycles, f"layers that import each other: {cycles}"


@pytest.mark.parametrize("module", library_modules())
def test_imports_point_down_the_layers(module):
    layer = layer_of(module)
    wrong = sorted(t for t in imports_of(module) if t.startswith("explorer") and not import_allowed(layer, t))
    assert not wrong, (
        f"{module} (layer {layer!r}, may import {sorted(allowed_imports(layer))}) imports {wrong}: move the piece "
        f"to the layer it belongs to, or pass its data in"
    )


def test_every_layer_says_what_it_is_for_and_what_it_may_import():
    layers = {layer_of(m) for m in library_modules()} - {"explorer", "__main__"}
    for layer in sorted(layers):
        docstring = ast.get_docstring(ast.parse(layer_file(layer).read_text(encoding="utf-8")))
        assert docstring and len(docstring.split()) > 8, f"{layer}: say what this layer is for"
        allowed_imports(layer)  # one "May import:" line
        unknown = {item.split(".")[0] for item in allowed_imports(layer)} - layers - {"*"}
        assert not unknown, f"{layer} may import unknown layers {unknown}"


def test_the_library_never_imports_streamlit():
    for module in library_modules():
        tree = ast.parse(python_files()[module].read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "streamlit" for n in names), f"{module} imports streamlit"


def test_importing_every_library_module_loads_no_streamlit():
    """The house rule at run time: maths and figures are a pure library; only pages touch Streamlit."""
    import subprocess
    import sys

    code = (
        "import sys, pkgutil, importlib, explorer, explorer.figures\n"
        "for m in pkgutil.walk_packages(explorer.__path__, 'explorer.'):\n"
        "    if m.name not in ('explorer.__main__',):\n"
        "        importlib.import_module(m.name)\n"
        "print('streamlit' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


def imported_names(module: str, source: str) -> set[str]:
    """The names ``module`` imports from ``source`` (``from source import a, b``), anywhere in the file."""
    tree = ast.parse(python_files()[module].read_text(encoding="utf-8"))
    return {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == source
        for alias in node.names
    }


def test_the_app_and_the_command_line_share_one_text_to_model_path():
    entry = {"pipeline.prepare_text", "pipeline.run_text"}
    for side in ("pages", "explorer.cli"):
        modules = [m for m in python_files() if m == side or m.startswith(side + ".")]
        used = {f"pipeline.{name}" for m in modules for name in imported_names(m, "explorer.pipeline")}
        assert entry <= used, f"{side} must take text to the model through {sorted(entry)}; it imports {sorted(used)}"
        # Turning tokens into model ids is the pipeline's step: nobody on top of it does it again.
        for m in modules:
            source = python_files()[m].read_text(encoding="utf-8")
            assert not re.search(r"\.to_model_ids\(", source), f"{m} maps tokens to model ids itself"


def test_pages_common_exports_only_what_the_pages_import():
    tree = ast.parse((PAGES / "common" / "__init__.py").read_text(encoding="utf-8"))
    exported = {
        alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom) for alias in node.names
    }
    users = [m for m in python_files() if m == "app" or (m.startswith("pages.") and not m.startswith("pages.common"))]
    wanted = {name for m in users for name in imported_names(m, "pages.common")}
    submodules = {p.stem for p in (PAGES / "common").glob("*.py")}
    assert exported == wanted - submodules, (
        f"exported but no page imports it: {sorted(exported - wanted)}; "
        f"imported by a page but not exported: {sorted(wanted - submodules - exported)}"
    )
    inside = [m for m in python_files() if m.startswith("pages.common.")]
    through_init = {m: sorted(imported_names(m, "pages.common") - submodules) for m in inside}
    assert not any(through_init.values()), f"modules of pages/common import siblings directly: {through_init}"
