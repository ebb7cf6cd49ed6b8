"""The house rule of the README's table "Where each idea lives": every module sits in one layer, and imports only
from its own layer or the layers before it (losses and metrics know no model; the tasks know no loop)."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "minift"


def readme_layers() -> dict[str, int]:
    """{"losses.py": 1, "metrics/": 1, ...} from the table's rows `| N | `a.py`, `b/` | ... |`."""
    layers = {}
    for n, cell in re.findall(r"^\| (\d) \| (.+?) \|", (ROOT / "README.md").read_text(), re.M):
        for name in re.findall(r"`([^`]+)`", cell):
            layers[name] = int(n)
    return layers


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    """The layer of a dotted module inside minift ("tasks.qa", "metrics", "train"): its folder's, else its file's."""
    top = module.split(".")[0]
    return layers.get(top + "/", layers.get(top + ".py"))


def minift_imports(source: str, package: tuple[str, ...]) -> set[str]:
    """The minift modules a file's source imports, dotted below minift, `package` the file's folder below minift
    (() for minift/x.py): `from minift import cli` -> cli, `from minift.tasks import TASKS` -> tasks, `from .qa
    import x` (in minift/metrics) -> metrics.qa, `from .. import encoder` (in minift/metrics) -> encoder."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name[len("minift."):] for a in node.names if a.name.startswith("minift.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the file's own package, or one above per extra dot
                base = ".".join((*package[:len(package) - node.level + 1], *filter(None, [node.module])))
            elif node.module == "minift" or (node.module or "").startswith("minift."):
                base = node.module[len("minift."):]
            else:
                continue
            if node.module in (None, "minift"):  # `from . import cli`, `from minift import cli`: names are modules
                found |= {".".join(filter(None, [base, a.name])) for a in node.names}
            else:
                found.add(base)
    return {m for m in found if m}


def file_imports(path: Path) -> set[str]:
    return minift_imports(path.read_text(), path.relative_to(PACKAGE).parent.parts)


def library_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def test_the_table_places_every_module_once():
    layers = readme_layers()
    missing = [str(p.relative_to(PACKAGE)) for p in library_files()
               if layer_of(".".join(p.relative_to(PACKAGE).with_suffix("").parts), layers) is None]
    assert not missing, f"modules the README's layer table does not place: {missing}"
    stale = [name for name in layers if not (PACKAGE / name.rstrip("/")).exists()]
    assert not stale, f"the README's layer table names modules that do not exist: {stale}"


@pytest.mark.parametrize("path", library_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_from_its_layer_or_those_before(path):
    layers = readme_layers()
    own = layer_of(".".join(path.relative_to(PACKAGE).with_suffix("").parts), layers)
    later = {m: layer_of(m, layers) for m in file_imports(path) if (layer_of(m, layers) or 0) > own}
    assert not later, f"{path.relative_to(ROOT)} (layer {own}) imports from later layers: {later}"


def test_the_import_reader_sees_each_form():
    """The reader above on every form of import (so that an import it cannot see does not pass the rule)."""
    source = ("import minift.train\nfrom minift import cli, lora as l\nfrom minift.tasks.qa import x\n"
              "from .tagging import y\nfrom .. import encoder\nfrom . import rouge\nimport torch\nfrom os import path\n")
    assert minift_imports(source, ("metrics",)) == {"train", "cli", "lora", "tasks.qa", "metrics.tagging", "encoder",
                                                    "metrics.rouge"}
    assert minift_imports("from . import cli\nfrom .tasks import TASKS\n", ()) == {"cli", "tasks"}
