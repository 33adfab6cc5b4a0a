"""Source-level guarantees over every module of ``src/blastscope``, checked on the syntax tree.

1. Nothing unpickles: no pickle-family import, ``torch.load`` only with ``weights_only=True``, no
   ``torch.jit.load``, no ``np.load(..., allow_pickle=True)``, no ``pd.read_pickle``, no unsafe YAML
   loader, no ``eval``/``exec``.
2. Every file a later stage reads is written atomically: a writing call (``open(..., "w")``,
   ``.to_csv(path)``, ``np.save``, ``cv2.imwrite``, ``save_file``, ``.write_text`` ...) appears only
   inside a function handed to ``atomic_write`` or in a place listed below with the reason it is safe.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "blastscope"
FILES = sorted(SRC.rglob("*.py"))

PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
# module -> why pickle is safe there (it never reads a file or a socket someone else wrote).
PICKLE_ALLOWED = {
    "engine/distributed.py": "pickles the function and arguments it hands to worker processes it spawns itself, in memory",
}

# (module path relative to src/blastscope, enclosing function) -> why a direct write is safe there.
WRITE_ALLOWED = {
    ("engine/atomic.py", "atomic_write"): "the implementation: writes the temporary file it renames",
    ("data/cache.py", "write"): "the body handed to atomic_write (memory-mapped build of the temporary file)",
    ("data/cache.py", "_reserve"): "allocates the blocks of that same temporary file (called from write)",
    ("engine/artefacts.py", "_savez"): "only called through atomic_write(out / 'dct_cells.npz', ...)",
    ("transforms/expand.py", "_write_png_atomic"): "its own temporary file + os.replace in the same folder",
    ("inference/export.py", "export_bundle"): "writes into a temporary folder that is renamed into place at once",
    ("inference/onnx_export.py", "export_onnx"): "only called inside export_bundle's temporary folder",
    ("inference/onnx_export.py", "_export"): "only called (via export_onnx) inside export_bundle's temporary folder",
    ("inference/onnx_export.py", "_set_metadata"): "only called (via export_onnx) inside export_bundle's temporary folder",
    ("inference/int8.py", "_copy_metadata"): "only called (via quantize_graph) on graphs in export_bundle's temporary "
                                             "folder or the benchmark's tempfile.TemporaryDirectory",
    ("bench/case.py", "run_case"): "copies the case's cells into the benchmark's temporary folder",
    ("bench/case_reference.py", "main"): "the benchmark's reference writes its CSV into the benchmark's temporary folder",
    ("bench/serve.py", "run_serve"): "writes the case's cells into a tempfile.TemporaryDirectory of the benchmark",
    ("cli/report.py", "compare_cmd"): "--csv copy of a printed table for the user; no stage reads it back",
}


def _name(node: ast.AST) -> str:
    """Dotted name of a call target: ``np.lib.format.open_memmap`` -> that string, else ''."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _name(node.value)
        return f"{base}.{node.attr}" if base else f"?.{node.attr}"
    if isinstance(node, ast.Call):
        return _name(node.func) + "()"
    return "?"


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def _is_const(node, value) -> bool:
    return isinstance(node, ast.Constant) and node.value == value


def _calls(tree: ast.AST):
    """(call, enclosing function name, inside an ``atomic_write(...)`` argument?) for every call."""
    def walk(node, func, in_atomic):
        for child in ast.iter_child_nodes(node):
            f = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            if isinstance(child, ast.Call):
                yield child, f, in_atomic
                atomic = _name(child.func).endswith("atomic_write")
                yield from walk(child.func, f, in_atomic)
                for arg in [*child.args, *(k.value for k in child.keywords)]:
                    yield from walk(arg, f, in_atomic or atomic)
                continue
            yield from walk(child, f, in_atomic)

    yield from walk(tree, "<module>", False)


def _unpickling(call: ast.Call) -> str | None:
    name = _name(call.func)
    last = name.rsplit(".", 1)[-1]
    if name == "torch.load" and not _is_const(_kw(call, "weights_only"), True):
        return "torch.load without weights_only=True"
    if name in ("torch.jit.load", "pd.read_pickle", "pandas.read_pickle", "yaml.unsafe_load", "yaml.full_load"):
        return name
    if name == "yaml.load" and not (_kw(call, "Loader") is not None and "Safe" in _name(_kw(call, "Loader"))):
        return "yaml.load without a safe loader"
    if last == "load" and name.split(".")[0] in ("np", "numpy") and _is_const(_kw(call, "allow_pickle"), True):
        return "np.load(allow_pickle=True)"
    if name in ("eval", "exec"):
        return f"builtin {name}"
    return None


def _writing(call: ast.Call) -> str | None:
    name = _name(call.func)
    last = name.rsplit(".", 1)[-1]
    if name in ("open", "os.fdopen", "io.open"):
        mode = call.args[1] if len(call.args) > 1 else _kw(call, "mode")
        if isinstance(mode, ast.Constant) and isinstance(mode.value, str) and set(mode.value) & set("wax+"):
            return f"{name}(..., {mode.value!r})"
        return None
    if last == "to_csv" and (call.args or _kw(call, "path_or_buf") is not None):
        return ".to_csv(path)"
    if last in ("write_text", "write_bytes", "imwrite", "save_file", "savez", "savez_compressed", "open_memmap",
                "copyfile", "copy2", "copytree", "move", "savefig", "dump") or name in ("np.save", "numpy.save", "torch.save"):
        if last == "dump" and not (name.startswith("json.") and len(call.args) > 1):
            return None
        if last == "savefig" and call.args and isinstance(call.args[0], ast.Name) and call.args[0].id in ("buf", "buffer"):
            return None  # into memory
        return name
    if name.endswith("torch.onnx.export") or name == "onnx.save":
        return name
    return None


def _scan(check) -> list[str]:
    found = []
    for path in FILES:
        rel = path.relative_to(SRC).as_posix()
        tree = ast.parse(path.read_text(), filename=str(path))
        for call, func, in_atomic in _calls(tree):
            what = check(call)
            if what and not (check is _writing and (in_atomic or (rel, func) in WRITE_ALLOWED)):
                found.append(f"{rel}:{call.lineno} in {func}(): {what}")
    return found


def test_the_scan_sees_the_source():
    assert len(FILES) > 50 and (SRC / "engine" / "checkpoint.py") in FILES


def test_no_pickle_family_imports():
    found = []
    for path in FILES:
        if path.relative_to(SRC).as_posix() in PICKLE_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.relative_to(SRC)}:{node.lineno}: import {n}" for n in names if n.split(".")[0] in PICKLE_MODULES]
    assert found == []


def test_nothing_unpickles():
    assert _scan(_unpickling) == []


def test_every_write_is_atomic_or_justified():
    assert _scan(_writing) == []


@pytest.mark.parametrize("code,bad", [
    ("torch.load(p)", True), ("torch.load(p, weights_only=True)", False), ("torch.load(p, weights_only=False)", True),
    ("np.load(p, allow_pickle=True)", True), ("np.load(p, mmap_mode='r')", False), ("yaml.load(t)", True),
    ("yaml.load(t, Loader=yaml.SafeLoader)", False), ("yaml.safe_load(t)", False), ("eval(s)", True), ("model.eval()", False),
])
def test_unpickling_detector(code, bad):
    """The scan would catch each forbidden form (and lets the safe forms through)."""
    assert (_unpickling(ast.parse(code).body[0].value) is not None) == bad


@pytest.mark.parametrize("code,bad", [
    ("open(p, 'w')", True), ("open(p, 'rb')", False), ("open(p)", False), ("df.to_csv(p, index=False)", True),
    ("df.to_csv(index=False)", False), ("np.save(p, a)", True), ("cv2.imwrite(p, a)", True), ("p.write_text(t)", True),
    ("save_file(t, str(p))", True), ("json.dump(o, fh)", True), ("json.dumps(o)", False),
])
def test_write_detector(code, bad):
    assert (_writing(ast.parse(code).body[0].value) is not None) == bad


def test_writes_inside_atomic_write_are_allowed():
    tree = ast.parse("def f(p, t):\n    atomic_write(p, lambda q: save_file(t, str(q)))\n    save_file(t, str(p))\n")
    flagged = [(call.lineno, in_atomic) for call, _, in_atomic in _calls(tree) if _writing(call)]
    assert flagged == [(2, True), (3, False)]
