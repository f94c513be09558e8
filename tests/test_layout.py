"""The package layout is the architecture: each folder imports only the folders below it.

atomic, sam3_ops (leaf modules that import no pgat_hf) < data < models < evaluation < training < hub < commands (and pgat_hf/train.py, the launch
script). A module that imports from a folder above its own is an arrow back up the data flow.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pgat_hf"
LAYERS = ["leaf", "data", "models", "evaluation", "training", "hub", "commands"]
LAYER_OF_TOP_MODULE = {"train": "commands", "atomic": "leaf", "sam3_ops": "leaf"}


def layer(parts: tuple[str, ...]) -> str | None:
    head = parts[0] if parts else None
    return LAYER_OF_TOP_MODULE.get(head, head if head in LAYERS else None)


def imported_modules(path: Path) -> list[tuple[str, ...]]:
    """pgat_hf module paths (without the `pgat_hf.` prefix) that a file imports."""
    own = path.relative_to(PACKAGE).with_suffix("").parts
    package = own[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                found.append(base + tuple((node.module or "").split(".")) if node.module else base)
            elif node.module and node.module.split(".")[0] == "pgat_hf":
                found.append(tuple(node.module.split(".")[1:]))
        elif isinstance(node, ast.Import):
            found += [tuple(a.name.split(".")[1:]) for a in node.names if a.name.split(".")[0] == "pgat_hf"]
    return found


def test_every_import_goes_down_the_layers():
    backwards = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = layer(path.relative_to(PACKAGE).with_suffix("").parts)
        if own is None:  # pgat_hf/__init__.py: the public names, from every layer
            continue
        for target in imported_modules(path):
            other = layer(target)
            if other is not None and LAYERS.index(other) > LAYERS.index(own):
                backwards.append(f"{path.relative_to(PACKAGE)} ({own}) imports pgat_hf.{'.'.join(target)} ({other})")
    assert backwards == []


def test_the_check_sees_a_backward_import(tmp_path):
    """The AST reading resolves relative imports: hub/pipeline.py's `..models.sam3_ops` is models."""
    assert ("sam3_ops",) in imported_modules(PACKAGE / "hub" / "pipeline.py")
    assert layer(("training", "trainer")) == "training" and layer(("train",)) == "commands"
