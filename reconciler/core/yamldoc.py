"""Load YAML safely with limits, keeping the line and column of every value by JSON pointer."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml

MAX_BYTES = 256 * 1024
MAX_NODES = 20_000  # counted after alias expansion: stops "billion laughs" documents

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"


@cache
def _yaml() -> tuple[Any, Any, Any]:
    """PyYAML, its fastest safe loader and a constructor; imported on first parse (warm plans skip it)."""
    import yaml

    try:  # the C parser is ~10x faster; the pure one gives identical nodes and marks
        loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = yaml.CSafeLoader
    except AttributeError:  # pragma: no cover
        loader = yaml.SafeLoader
    return yaml, loader, yaml.constructor.SafeConstructor()


@dataclass(frozen=True)
class YamlProblem(Exception):
    """The document is not loadable YAML (or breaks a limit); line/column are 1-based."""

    message: str
    line: int
    column: int
    remediation: str


@dataclass(frozen=True)
class YamlDoc:
    value: Any
    marks: dict[str, tuple[int, int]]  # JSON pointer -> (line, column), 1-based

    def position(self, pointer: str) -> tuple[int, int]:
        """Position of the pointer, or of its nearest ancestor present in the document."""
        while True:
            if pointer in self.marks:
                return self.marks[pointer]
            if not pointer:
                return (1, 1)
            pointer = pointer.rsplit("/", 1)[0]


def escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def load(text: bytes | str) -> YamlDoc:
    """Parse one YAML document into plain JSON-like values with positions; raise YamlProblem."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) > MAX_BYTES:
        raise YamlProblem(
            f"file is {len(raw)} bytes; the limit is {MAX_BYTES}", 1, 1,
            "keep .odooops.yaml small: move long lists (modules, masking rules) into fewer entries",
        )
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlProblem(f"file is not UTF-8 ({exc.reason} at byte {exc.start})", 1, 1,
                          "save the file as UTF-8") from exc
    yaml, loader, _ = _yaml()
    try:
        node = yaml.compose(decoded, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(x for x in (exc.context, exc.problem) if x)
        raise YamlProblem(f"invalid YAML: {what}", line, col,
                          "fix the YAML syntax at that position (indentation, quotes, colons)") from exc
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {exc}", 1, 1, "fix the YAML syntax") from exc
    marks: dict[str, tuple[int, int]] = {}
    if node is None:
        return YamlDoc(None, {"": (1, 1)})
    budget = [MAX_NODES]
    value = _convert(node, "", marks, budget)
    return YamlDoc(value, marks)


def _convert(node: yaml.Node, pointer: str, marks: dict[str, tuple[int, int]], budget: list[int]) -> Any:
    yaml = _yaml()[0]
    budget[0] -= 1
    if budget[0] < 0:
        raise YamlProblem(
            f"document expands to more than {MAX_NODES} values (aliases?)",
            node.start_mark.line + 1, node.start_mark.column + 1,
            "remove YAML anchors/aliases that expand recursively; write the values out",
        )
    marks.setdefault(pointer, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlProblem("mapping keys must be plain strings",
                                  key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                                  "use a plain word as the key")
            key = key_node.value
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlProblem("merge keys (<<) are not supported",
                                  key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                                  "write the keys out instead of merging an anchor")
            child = f"{pointer}/{escape_pointer(key)}"
            if key in out:
                raise YamlProblem(
                    f'duplicate key "{key}"', key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                    f'keep one "{key}" entry: YAML would silently drop the first one',
                )
            marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _convert(value_node, child, marks, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, f"{pointer}/{i}", marks, budget) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    if node.tag in (_STR, _NULL, _BOOL, _INT, _FLOAT):
        return _yaml()[2].construct_object(node, deep=True)
    # timestamps, binary and custom tags stay the text the user wrote
    return str(node.value)
