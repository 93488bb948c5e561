"""Dependencies between the vgpt packages point one way: no import cycle between them, and deployment
never depends on training. Read from the source with ast, so an import inside a function counts too."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Package -> its folder (pyproject.toml maps the subpackages onto top-level folders).
PACKAGES = {
    "vgpt": ROOT / "vgpt",
    "vgpt.export": ROOT / "export",
    "vgpt.engines": ROOT / "engines",
    "vgpt.runtime": ROOT / "runtime",
    "vgpt.training": ROOT / "training",
    "vgpt.calibration": ROOT / "calibration",
}
DEPLOYMENT = ("vgpt.export", "vgpt.engines", "vgpt.runtime", "vgpt.calibration")


def package_of(module: str) -> str | None:
    """The package (of PACKAGES) a dotted module name belongs to; None outside vgpt."""
    parts = module.split(".")
    if parts[0] != "vgpt":
        return None
    if len(parts) > 1 and f"vgpt.{parts[1]}" in PACKAGES:
        return f"vgpt.{parts[1]}"
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
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            for module in imported_modules(ast.parse(path.read_text(), str(path))):
                target = package_of(module)
                if target is not None and target != package:
                    graph[package].setdefault(target, set()).add(str(path.relative_to(ROOT)))
    return graph


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


# Commands are the roof of the house: a command module may import any package (vgpt-export's accuracy
# report runs the runtime; vgpt-bench exports quantized bundles; the GPU check runs every backend).
COMMANDS = {"cli.py", "bench.py", "cpp_bench.py", "gpu_check.py", "__main__.py"}


def library_graph() -> dict[str, set[str]]:
    """package -> packages its library modules (not its commands) import."""
    graph: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            if path.name in COMMANDS:
                continue
            for module in imported_modules(ast.parse(path.read_text(), str(path))):
                target = package_of(module)
                if target is not None and target != package:
                    graph[package].add(target)
    return graph


def test_library_packages_stand_in_one_order_below_the_commands():
    """core < export < engines < runtime < calibration, read from every import outside a command module:
    export runs the quantization it is handed (vgpt.export.quantizer), it never imports vgpt.calibration."""
    order = ["vgpt", "vgpt.export", "vgpt.engines", "vgpt.runtime", "vgpt.calibration"]
    graph = library_graph()
    upward = {(p, q) for p in order for q in graph[p] if q in order and order.index(q) > order.index(p)}
    assert upward == set(), upward


def test_no_import_cycle_between_library_packages():
    graph = library_graph()
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle between vgpt packages: {' -> '.join(cycle)}"


def test_deployment_never_imports_training():
    graph = import_graph()
    found = {p: sorted(graph[p]["vgpt.training"]) for p in DEPLOYMENT if "vgpt.training" in graph[p]}
    assert not found, f"deployment packages import vgpt.training: {found}"


def test_the_core_imports_no_package_above_it_and_export_never_imports_engines():
    graph = import_graph()
    assert graph["vgpt"] == {}, f"vgpt core imports {graph['vgpt']}"
    assert "vgpt.engines" not in graph["vgpt.export"], graph["vgpt.export"].get("vgpt.engines")


@pytest.mark.parametrize("module", ["contract.py", "spec.py", "manifest.py", "signing.py"])
def test_the_contract_stands_on_the_core_alone(module):
    """The manifest contract (and what it reads, its signature too) imports the core and vgpt.export.spec,
    nothing else of vgpt."""
    tree = ast.parse((PACKAGES["vgpt.export"] / module).read_text())
    allowed = {"vgpt.export.spec", "vgpt.export.contract", "vgpt.export.signing", "vgpt.export"}
    above = {m for m in imported_modules(tree)
             if package_of(m) not in (None, "vgpt") and ".".join(m.split(".")[:3]) not in allowed}  # fmt: skip
    assert not above, f"export/{module} imports {sorted(above)}"


def test_reading_a_manifest_or_the_defaults_loads_no_torch():
    """vgpt-build --help and manifest checks stay light: the contract and the defaults are torch-free."""
    code = "import sys, vgpt.export.contract, vgpt.export.manifest, vgpt.default_model; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
