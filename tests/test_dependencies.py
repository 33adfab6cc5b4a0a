"""Every third-party package the source imports is declared in pyproject.toml, core or extra.

A package imported at module level must be a core dependency (installing blastscope without
extras must give importable modules); packages of an optional extra (plots, ONNX, statistics)
may only be imported inside functions, where the feature that needs them is used.
"""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "blastscope"

# import name -> distribution name where they differ
DISTRIBUTION = {"cv2": "opencv-python-headless", "PIL": "pillow", "yaml": "pyyaml", "sklearn": "scikit-learn",
                "skimage": "scikit-image"}


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].strip().lower() for r in requirements}


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = set()
    for name, reqs in project["optional-dependencies"].items():
        if name != "all":
            extras |= _names(reqs)
    return _names(project["dependencies"]), extras


def _imports() -> list[tuple[Path, int, str, bool]]:
    """(file, line, top-level package, at module level) of every absolute import in the package."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = [node.module.split(".")[0]]
            else:
                continue
            found += [(path, node.lineno, root, id(node) in top_level) for root in roots]
    return found


def _third_party(root: str) -> bool:
    return root != "blastscope" and root != "__future__" and root not in sys.stdlib_module_names


def test_the_scan_sees_the_imports():
    roots = {root for *_, root, _ in _imports()}
    assert {"torch", "numpy", "cv2", "PIL", "matplotlib"} <= roots


def test_every_imported_package_is_declared():
    core, extras = _declared()
    missing = sorted({f"{root} ({path.relative_to(ROOT)}:{line})" for path, line, root, _ in _imports()
                      if _third_party(root) and DISTRIBUTION.get(root, root).lower() not in core | extras})
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_module_level_imports_are_core_dependencies():
    core, _ = _declared()
    wrong = sorted({f"{root} ({path.relative_to(ROOT)}:{line})" for path, line, root, module_level in _imports()
                    if module_level and _third_party(root) and DISTRIBUTION.get(root, root).lower() not in core})
    assert not wrong, f"optional packages imported at module level (import them where used): {wrong}"
