"""Reading ``apps.yaml``: YAML with the line of every key, then the schema and the cross-checks.

Every error names the file, the line and the field, so that an admin can fix a broken edit
from the message alone, and one run reports every problem of the file: the schema is checked
by pydantic, while the checks across items (duplicate ids, unknown categories, missing icon
files) run on the raw YAML data, so that they do not wait for the schema errors to be fixed.

The YAML is untrusted in the sense that a typo must not hurt the portal: a file over 1 MiB is
refused before it is read, and anchors and aliases (which expand without limit) are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from launcher.errors import RegistryError
from launcher.registry.schema import ICON_DIR, ICON_FILE, App, Document, Registry

MAX_BYTES = 1024 * 1024  # 1 MiB; the example registry is 6 KB, a large one some 100 KB
_TOO_LARGE = f"larger than {MAX_BYTES:,} bytes (1 MiB), the most a registry may be"
_NO_ALIASES = "YAML aliases are not allowed (no &anchor or *alias: write each value out)"

Path_ = tuple[str | int, ...]
_Problem = tuple[int, Path_, str]  # line, where, message
_MERGE = "tag:yaml.org,2002:merge"


class _AliasRefused(yaml.YAMLError):
    def __init__(self, line: int) -> None:
        super().__init__(_NO_ALIASES)
        self.line = line


class _LineLoader(yaml.SafeLoader):
    """Builds plain Python data and remembers the line of every key and item.

    Anchors and aliases are refused where the parser meets them: a few hundred bytes of
    nested aliases ("billion laughs") expand to gigabytes, and a registry has no use for them.
    """

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            mark = event.start_mark
            raise _AliasRefused(mark.line + 1 if mark is not None else 1)
        return super().compose_node(parent, index)


def _to_python(
    loader: _LineLoader,
    node: yaml.Node,
    path: Path_,
    lines: dict[Path_, int],
    problems: list[_Problem],
) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE:
                problems.append((line, path, "YAML merge keys (<<) are not supported"))
                continue
            key = _scalar(loader, key_node)
            if not isinstance(key, str | int):
                key = str(key)
            sub = (*path, key)
            if key in result:
                problems.append((line, sub, "duplicate key"))
            lines[sub] = line
            result[key] = _to_python(loader, value_node, sub, lines, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_python(loader, item, (*path, i), lines, problems)
            for i, item in enumerate(node.value)
        ]
    return _scalar(loader, node)


def _scalar(loader: _LineLoader, node: yaml.Node) -> Any:
    try:
        return loader.construct_object(node, deep=True)
    except ValueError:
        # 2026-13-45 looks like a date to YAML but is none; as text, the schema says why
        return node.value


def _load_yaml(text: str, source: str, lines: dict[Path_, int], problems: list[_Problem]) -> Any:
    loader: _LineLoader | None = None
    try:
        loader = _LineLoader(text)  # the reader refuses control characters already here
        node = loader.get_single_node()
        return _to_python(loader, node, (), lines, problems) if node is not None else None
    except _AliasRefused as exc:
        raise RegistryError([f"{source}:{exc.line}: (YAML): {_NO_ALIASES}"]) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character
        problem = f"{exc.reason} (U+{char:04X})" if isinstance(char, int) else str(exc.reason)
        raise RegistryError([f"{source}:{line}: (YAML): {problem}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RegistryError([f"{source}:{line}: (YAML): {problem}"]) from None
    except RecursionError:  # [[[[… a few hundred thousand deep
        raise RegistryError([f"{source}:1: (YAML): the document is nested too deeply"]) from None
    finally:
        if loader is not None:
            loader.dispose()


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


_NAME = re.compile(r"[a-z_]+\Z")  # every key of the format


def _problem(source: str, line: int, at: Path_, message: str, data: Any) -> str:
    """``file:line: field: message``. A key that is no name of the format (a typo with a
    space, a colon, a capital) ends the field path and is quoted in the message instead, so
    that the field is always a plain dotted path an editor can find."""
    for i, part in enumerate(at):
        if isinstance(part, str) and not _NAME.match(part):
            shown = part if len(part) <= 40 else part[:40] + "…"
            return f"{source}:{line}: {_field_name(at[:i], data)}: {message} ({shown!r})"
    return f"{source}:{line}: {_field_name(at, data)}: {message}"


def _line_for(lines: Mapping[Path_, int], path: Path_) -> int:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1


def _field_name(path: Path_, data: Any) -> str:
    """apps[3].url reads better as apps[3] (id: ehr).url"""
    name = _dotted(path)
    if len(path) >= 2 and path[0] in ("apps", "categories", "departments", "displays"):
        try:
            item_id = data[path[0]][path[1]].get("id")
        except (KeyError, IndexError, TypeError, AttributeError):
            item_id = None
        if isinstance(item_id, str):
            name = name.replace(f"{path[0]}[{path[1]}]", f"{path[0]}[{path[1]}] (id: {item_id})", 1)
    return name


def parse_registry(
    text: str, source: str = "apps.yaml", icon_dirs: Sequence[Path] = ()
) -> Registry:
    """Parse and validate registry text; raise :class:`RegistryError` listing every problem.

    The problems come in the order of their lines, each as ``file:line: field: message``.
    """
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise RegistryError([f"{source}:1: (file): {_TOO_LARGE}"])
    lines: dict[Path_, int] = {}
    problems: list[_Problem] = []
    data = _load_yaml(text, source, lines, problems)
    if not isinstance(data, dict):
        raise RegistryError([f"{source}:1: (top level): expected a mapping with an 'apps' list"])

    def report(path: Path_, message: str) -> None:
        problems.append((_line_for(lines, path), path, message))

    doc: Document | None = None
    try:
        doc = Document.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            report(err["loc"], _message(err))
    _cross_checks(data, lines, report, icon_dirs)
    if problems or doc is None:
        ordered = sorted(problems, key=lambda problem: problem[0])  # stable: same line, same order
        raise RegistryError(
            _unique([_problem(source, ln, at, msg, data) for ln, at, msg in ordered])
        )
    return Registry(
        portal=doc.portal,
        categories=doc.categories,
        departments=doc.departments,
        apps=_display_order(doc),
        displays=doc.displays,
        source=source,
        _by_id={app.id: app for app in doc.apps},
        _categories={c.id: c for c in doc.categories},
    )


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required field is missing"
    if kind == "model_type":
        if err.get("ctx", {}).get("class_name") == "Localized":
            return "expected text, or text per language as {en: …, nl: …}"
        return "expected a mapping (key: value)"
    if kind == "tuple_type":
        return "expected a list, e.g. [a, b]"
    return err["msg"].removeprefix("Value error, ")


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _items(data: Mapping[Any, Any], kind: str) -> list[tuple[int, Mapping[Any, Any]]]:
    items = data.get(kind)
    if not isinstance(items, list):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]


def _cross_checks(
    data: Mapping[Any, Any],
    lines: Mapping[Path_, int],
    report: Callable[[Path_, str], None],
    icon_dirs: Sequence[Path],
) -> None:
    """Checks across items, on the raw data: they hold whether or not each item is valid."""
    for kind in ("categories", "departments", "apps", "displays"):
        first_line: dict[str, int] = {}
        for i, item in _items(data, kind):
            item_id = item.get("id")
            if not isinstance(item_id, str):
                continue  # the schema reports it
            if item_id in first_line:
                first = first_line[item_id]
                report((kind, i, "id"), f"duplicate id {item_id!r} (first defined on line {first})")
            else:
                first_line[item_id] = _line_for(lines, (kind, i, "id"))
    signin_first: dict[str, tuple[int, str]] = {}  # signin id -> (line, app id) seen first
    for i, app in _items(data, "apps"):
        ids = app.get("signin_ids")
        for j, signin_id in enumerate(ids if isinstance(ids, list) else []):
            if not isinstance(signin_id, str):
                continue  # the schema reports it
            if signin_id in signin_first:
                line, owner = signin_first[signin_id]
                report(
                    ("apps", i, "signin_ids", j),
                    f"sign-in id {signin_id!r} already belongs to app {owner!r} (line {line})",
                )
            else:
                signin_first[signin_id] = (
                    _line_for(lines, ("apps", i, "signin_ids", j)),
                    str(app.get("id")),
                )
    _department_claims(data, lines, report)
    categories = {c.get("id") for _, c in _items(data, "categories")}
    for i, app in _items(data, "apps"):
        category, icon = app.get("category"), app.get("icon")
        if isinstance(category, str) and category not in categories:
            known = ", ".join(sorted(c for c in categories if isinstance(c, str))) or "none defined"
            report(("apps", i, "category"), f"unknown category {category!r} (known: {known})")
        folders = (*icon_dirs, ICON_DIR)
        if (
            isinstance(icon, str)
            and ICON_FILE.match(icon)  # other values are the schema's to report
            and not any((folder / icon).is_file() for folder in folders)
        ):
            places = "".join(f"{folder}/ or " for folder in icon_dirs)
            report(("apps", i, "icon"), f"no icon file {icon!r} in {places}the built-in icons")


def _department_claims(
    data: Mapping[Any, Any], lines: Mapping[Path_, int], report: Callable[[Path_, str], None]
) -> None:
    """A department claim value maps to one department: a value listed twice, or equal to
    another department's id, would make the stored department depend on the file's order."""
    owner: dict[str, tuple[int, str]] = {}  # value -> (line, department id)
    for i, dep in _items(data, "departments"):
        if isinstance(dep.get("id"), str):
            owner.setdefault(dep["id"], (_line_for(lines, ("departments", i, "id")), dep["id"]))
    for i, dep in _items(data, "departments"):
        values = dep.get("claim_values")
        for j, value in enumerate(values if isinstance(values, list) else []):
            if not isinstance(value, str):
                continue  # the schema reports it
            line, first = owner.get(value, (0, dep.get("id")))
            if first != dep.get("id"):
                report(
                    ("departments", i, "claim_values", j),
                    f"claim value {value!r} already belongs to department {first!r} (line {line})",
                )
            else:
                owner.setdefault(
                    value, (_line_for(lines, ("departments", i, "claim_values", j)), str(first))
                )


def _display_order(doc: Document) -> tuple[App, ...]:
    category_rank = {c.id: (c.order, i) for i, c in enumerate(doc.categories)}
    return tuple(
        sorted(
            doc.apps,
            key=lambda a: (
                category_rank.get(a.category or "", (10**9, 10**9)),
                a.order,
                a.name.get("en").casefold(),
            ),
        )
    )


def load_registry(path: Path) -> Registry:
    """Read and parse a registry file; a file over :data:`MAX_BYTES` is refused unread."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)  # never more: the file may be huge, or endless
    except OSError as exc:
        raise RegistryError([f"{path}:1: (file): cannot read it: {exc.strerror}"]) from None
    if len(data) > MAX_BYTES:
        raise RegistryError([f"{path}:1: (file): {_TOO_LARGE}"])
    try:
        text = data.decode("utf-8-sig")  # -sig: a BOM from a Windows editor is fine
    except UnicodeDecodeError:
        raise RegistryError([f"{path}:1: (file): not UTF-8 text"]) from None
    return parse_registry(text, source=str(path), icon_dirs=[path.parent / "icons"])
