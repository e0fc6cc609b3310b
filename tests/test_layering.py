"""The package's layers: every import points down, and no modules import each other in a circle.

Read from the source (the `ast` of every module), so that imports inside
functions count as much as those at the top: a function-level import that
points up is the same dependency, only discovered later. The layers, low
to high, are the README's "Architecture" table.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "se_keras"

# Low to high. A module may import its own package and anything lower.
LAYERS = (
    ("se_keras._constants", "se_keras._files", "se_keras._imagenet_classes", "se_keras._validation",
     "se_keras.version"),
    ("se_keras.layers", "se_keras.preprocessing"),
    ("se_keras.utils",),
    ("se_keras.weights", "se_keras.data"),
    ("se_keras.applications",),
    ("se_keras.export", "se_keras.excitations", "se_keras.gradcam"),
    ("se_keras.explain", "se_keras.benchmarking"),
    ("se_keras.training",),
    ("se_keras.commands",),
    ("se_keras.cli",),
    ("se_keras.__main__",),
)

# Upward imports that are allowed, each with its reason. Deprecated aliases
# resolve the moved name on first use and go when the alias goes.
ALLOWED_UPWARD = {
    ("se_keras.weights", "se_keras.applications.timm_names"):
        "deprecated alias se_keras.weights.from_timm / parse_timm_name, removed in 0.2",
}


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name):
    """The longest prefix of `name` that is a module of the package (None for others)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def imports_of(module):
    """The package modules `module` imports anywhere in its source, with line numbers."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import sub` imports the submodule `pkg.sub`.
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                found.append((target, node.lineno))
    return found


def layer_of(module):
    for level, owners in enumerate(LAYERS):
        for owner in owners:
            if module == owner or module.startswith(owner + "."):
                return level, owner
    return None


def test_every_module_has_a_layer():
    orphans = [m for m in MODULES if m != "se_keras" and layer_of(m) is None]
    assert not orphans, f"modules missing from LAYERS: {orphans}"


def test_imports_point_down():
    upward = []
    for module in MODULES:
        if module == "se_keras":
            continue  # the facade: lazy attributes for users, imported by nothing inside
        level, owner = layer_of(module)
        for target, line in imports_of(module):
            if target == "se_keras":
                upward.append(f"{module}:{line} imports the se_keras facade")
                continue
            target_level, target_owner = layer_of(target)
            if target_owner == owner or target_level < level:
                continue
            if (owner, target) in ALLOWED_UPWARD:
                continue
            upward.append(f"{module}:{line} -> {target} (layer {level} -> {target_level})")
    assert not upward, "imports that point up or sideways:\n" + "\n".join(upward)


def test_no_import_cycles():
    """No module reaches itself through imports (package __init__ re-exports count)."""
    graph = {m: {t for t, _ in imports_of(m)} for m in MODULES}
    for module, targets in graph.items():
        # A module inside a package implicitly runs its package's __init__
        # first; that edge is Python's, not the code's, so only the
        # explicit imports are followed.
        graph[module] = targets - {"se_keras"}
    cycles = []
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycle = stack[stack.index(target):] + [target]
                if not _allowed_cycle(cycle):
                    cycles.append(" -> ".join(cycle))
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _allowed_cycle(cycle):
    return any(
        (layer_of(a)[1], b) in ALLOWED_UPWARD for a, b in zip(cycle, cycle[1:])
    )


@pytest.mark.parametrize("module", ["se_keras.weights.loading", "se_keras.data.sources"])
def test_the_check_sees_function_level_imports(module, monkeypatch, tmp_path):
    """The check fails on an upward import hidden inside a function."""
    source = MODULES[module].read_text() + (
        "\n\ndef _late():\n    from se_keras.training import trainer\n"
    )
    fake = tmp_path / "fake.py"
    fake.write_text(source)
    monkeypatch.setitem(MODULES, module, fake)
    with pytest.raises(AssertionError, match=rf"{module}:\d+ -> se_keras.training.trainer"):
        test_imports_point_down()
