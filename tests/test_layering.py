"""The import rules of DESIGN.md, checked with ast: each layer imports only from layers above it.

ops -> (numpy only); autograd -> ops; tensor & eager API -> ops, autograd; nn/optim -> the
eager API; ir -> ops; codegen -> ir, ops; jit -> everything. llvmlite/numba are imported lazily
(inside functions) and only under codegen/.
"""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "tracejit"

EAGER = {"tensor", "factories", "methods", "movement", "indexing", "inplace", "printing",
         "autograd", "ops", "serialization", "utils", "cuda"}
ALLOWED = {
    "ops": {"ops"},
    "ir": {"ops", "ir"},
    "codegen": {"ops", "ir", "codegen"},
    "nn": EAGER | {"nn"},
    "optim": EAGER | {"optim", "nn"},
}


def _layer(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py")


def _imports(path: pathlib.Path):
    tree = ast.parse(path.read_text())
    pkg = path.relative_to(ROOT.parent).with_suffix("").parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(pkg[: len(pkg) - node.level + 1])
                mod = base + (node.module.split(".") if node.module else [])
                names = [mod + [a.name] for a in node.names] if not node.module else [mod]
                for m in names:
                    yield node, ".".join(m)
            elif node.module:
                yield node, node.module
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield node, a.name


def _toplevel_heavy(tree):
    """Module-level imports of llvmlite/numba (they must be lazy)."""
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""]
            for m in mods:
                if m.split(".")[0] in ("llvmlite", "numba"):
                    yield node, m


def test_layers_import_only_from_above():
    bad = []
    for path in ROOT.rglob("*.py"):
        layer = _layer(path)
        allowed = ALLOWED.get(layer)
        if allowed is None:
            continue
        for node, mod in _imports(path):
            parts = mod.split(".")
            if parts[0] != "tracejit" or len(parts) < 2:
                continue
            target = parts[1]
            if target not in allowed and target != "__version__":  # the version is fine
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {mod}")
    assert not bad, "layering violations:\n" + "\n".join(bad)


def test_ir_and_codegen_never_import_tensor():
    for sub in ("ir", "codegen", "ops"):
        for path in (ROOT / sub).rglob("*.py"):
            for node, mod in _imports(path):
                assert not mod.startswith("tracejit.tensor"), f"{path}:{node.lineno}"


def test_heavy_dependencies_are_confined_to_backend_packages():
    # module-level llvmlite/numba imports may only sit in codegen/llvm and codegen/cuda, which
    # are themselves imported lazily (the subprocess test below checks that)
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).parts
        tree = ast.parse(path.read_text())
        for node, mod in _toplevel_heavy(tree):
            assert rel[:2] in (("codegen", "llvm"), ("codegen", "cuda")), \
                f"{path.relative_to(ROOT)}:{node.lineno} imports {mod} at module level"


def test_importing_tracejit_does_not_import_llvmlite_or_numba():
    import subprocess
    import sys
    code = ("import sys, tracejit as tj; x = tj.ones(3) * 2; "
            "print([m for m in ('llvmlite', 'numba') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                         cwd=ROOT.parent, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
