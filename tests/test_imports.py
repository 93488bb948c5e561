"""Dependencies between the vgpt packages point one way, with no exemption: core < export < engines <
runtime < calibration < training < cli (the commands), no import cycle between packages or between modules,
and deployment never depends on training. Read from the source with ast, so an import inside a function
counts too."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Package -> its folder (pyproject.toml maps the subpackages onto top-level folders).
PACKAGES = {
    "vgpt": ROOT / "vgpt",
    "vgpt.cli": ROOT / "vgpt" / "cli",
    "vgpt.export": ROOT / "export",
    "vgpt.engines": ROOT / "engines",
    "vgpt.runtime": ROOT / "runtime",
    "vgpt.training": ROOT / "training",
    "vgpt.calibration": ROOT / "calibration",
}
DEPLOYMENT = ("vgpt.export", "vgpt.engines", "vgpt.runtime", "vgpt.calibration")
ORDER = ["vgpt", "vgpt.export", "vgpt.engines", "vgpt.runtime", "vgpt.calibration", "vgpt.training", "vgpt.cli"]


def files_of(package: str) -> list[Path]:
    """The package's own .py files: the core's are vgpt/ less vgpt/cli/, a package of its own."""
    paths = PACKAGES[package].rglob("*.py")
    if package == "vgpt":
        return sorted(p for p in paths if PACKAGES["vgpt.cli"] not in p.parents)
    return sorted(paths)


def package_of(module: str) -> str | None:
    """The package (of PACKAGES) a dotted module name belongs to; None outside vgpt."""
    parts = module.split(".")
    if parts[0] != "vgpt":
        return None
    if len(parts) > 1 and f"vgpt.{parts[1]}" in PACKAGES:
        return f"vgpt.{parts[1]}"  # vgpt.cli too: the commands' layer
    return "vgpt"


def imported_modules(tree: ast.AST) -> set[str]:
    """Every module an `import` or `from ... import` names, at any depth of the file."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from vgpt import runtime` imports the subpackage itself.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def import_graph() -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the files that import it."""
    graph: dict[str, dict[str, set[str]]] = {p: {} for p in PACKAGES}
    for package in PACKAGES:
        for path in files_of(package):
            for module in imported_modules(ast.parse(path.read_text(), str(path))):
                target = package_of(module)
                if target is not None and target != package:
                    graph[package].setdefault(target, set()).add(str(path.relative_to(ROOT)))
    return graph


def module_graph() -> dict[str, set[str]]:
    """Every vgpt module -> the vgpt modules it imports (a package's __init__ stands for the package)."""
    names = {}
    for package in PACKAGES:
        for path in files_of(package):
            parts = [p for p in path.relative_to(PACKAGES[package]).with_suffix("").parts if p != "__init__"]
            names[".".join([package, *parts])] = path
    return {name: {m for m in imported_modules(ast.parse(path.read_text(), str(path))) if m in names and m != name}
            for name, path in names.items()}  # fmt: skip


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph `edges`, as its nodes in order (first repeated last), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert package_of("vgpt.export.spec") == "vgpt.export" and package_of("vgpt.config") == "vgpt"
    assert package_of("torch") is None


def test_packages_stand_in_one_order():
    """core < export < engines < runtime < calibration < training < cli, read from every import of every
    file: export runs the quantization it is handed (vgpt.export.quantizer), it never imports
    vgpt.calibration; the commands (vgpt.cli) import any package and no package imports them."""
    graph = import_graph()
    upward = {(p, q, f) for p in ORDER for q, files in graph[p].items() if ORDER.index(q) > ORDER.index(p)
              for f in files}  # fmt: skip
    assert upward == set(), sorted(upward)


def test_no_import_cycle_between_packages():
    graph = {p: set(targets) for p, targets in import_graph().items()}
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle between vgpt packages: {' -> '.join(cycle)}"


def test_no_import_cycle_between_modules():
    """Within a package too (vgpt-bench's sections share vgpt.cli.bench.timing, not each other)."""
    cycle = find_cycle(module_graph())
    assert cycle is None, f"import cycle between vgpt modules: {' -> '.join(cycle)}"


def test_the_import_graph_sees_the_commands_layer():
    """The order test reads something: the commands import the packages below them."""
    graph = import_graph()
    assert {"vgpt.export", "vgpt.engines", "vgpt.runtime", "vgpt.calibration", "vgpt.training"} <= set(
        graph["vgpt.cli"]
    )
    assert "vgpt.cli.bench.timing" in module_graph()["vgpt.cli.bench.suite"]


def test_deployment_never_imports_training():
    graph = import_graph()
    found = {p: sorted(graph[p]["vgpt.training"]) for p in DEPLOYMENT if "vgpt.training" in graph[p]}
    assert not found, f"deployment packages import vgpt.training: {found}"


def test_the_core_imports_no_package_above_it_and_export_never_imports_engines():
    graph = import_graph()
    assert graph["vgpt"] == {}, f"vgpt core imports {graph['vgpt']}"
    assert "vgpt.engines" not in graph["vgpt.export"], graph["vgpt.export"].get("vgpt.engines")


@pytest.mark.parametrize("module", ["contract.py", "spec.py", "registry.py", "manifest.py", "signing.py"])
def test_the_contract_stands_on_the_core_alone(module):
    """The manifest contract (and what it reads: the graph registry and its binding plans, the signature)
    imports the core, vgpt.export.spec and vgpt.export.registry, nothing else of vgpt."""
    tree = ast.parse((PACKAGES["vgpt.export"] / module).read_text())
    allowed = {"vgpt.export.spec", "vgpt.export.registry", "vgpt.export.contract", "vgpt.export.signing", "vgpt.export"}
    above = {m for m in imported_modules(tree)
             if package_of(m) not in (None, "vgpt") and ".".join(m.split(".")[:3]) not in allowed}  # fmt: skip
    assert not above, f"export/{module} imports {sorted(above)}"


def test_reading_a_manifest_or_the_defaults_loads_no_torch():
    """vgpt-build --help and manifest checks stay light: the contract and the defaults are torch-free."""
    code = "import sys, vgpt.export.contract, vgpt.export.manifest, vgpt.default_model; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
