"""The package's imports run one way: every part imports only what `docs/design.md` ("Layers") allows, lazy
imports inside functions included, and no two files import each other, directly or around a circle."""
import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "timesformer_jax"


def module_files() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict) -> set[str]:
    """The package's modules that `name` imports anywhere in its file (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "timesformer_jax"


def allowed_imports() -> dict[str, set[str]]:
    text = (ROOT / "docs" / "design.md").read_text()
    allowed = {}
    for part, rest in re.findall(r"^- `(\w+)`[^\n]*? may import: ([^\n]*)$", text, re.M):
        allowed[part] = set(re.findall(r"`(\w+)`", rest.split("(")[0]))
    return allowed


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_part_imports_only_the_layers_below_it():
    modules = module_files()
    allowed = allowed_imports()
    parts = {part_of(m) for m in modules}
    assert parts <= set(allowed), f"parts missing from docs/design.md Layers: {sorted(parts - set(allowed))}"
    wrong = []
    for name, path in sorted(modules.items()):
        for target in sorted(imported_modules(name, path, modules)):
            source, destination = part_of(name), part_of(target)
            if source != destination and destination not in allowed[source]:
                wrong.append(f"{name} imports {target} ({source} may import {sorted(allowed[source])})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_between_files_or_parts():
    modules = module_files()
    graph = {name: {t for t in imported_modules(name, path, modules) if not t.startswith(name + ".")}
             for name, path in modules.items()}
    assert not cycles(graph), cycles(graph)
    parts = {}
    for name, targets in graph.items():
        parts.setdefault(part_of(name), set()).update(part_of(t) for t in targets if part_of(t) != part_of(name))
    assert not cycles(parts), cycles(parts)


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_loading_a_model_needs_no_tensorflow():
    script = ("import sys, timesformer_jax, timesformer_jax.pretrained, timesformer_jax.train.workdir; "
              "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; print('OK')")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr
