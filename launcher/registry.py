"""The app registry: ``apps.yaml`` -> a validated, immutable :class:`Registry`.

Every error names the file, the line and the field, so that an admin can fix a broken edit
from the message alone. :class:`RegistryHolder` keeps the last good registry while a newer,
broken edit of the file is on disk.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from launcher.errors import RegistryError

log = logging.getLogger(__name__)

PLACEHOLDERS = ("email", "sub", "name", "upn", "domain")
LANGUAGES = ("en", "nl")
ICON_DIR = Path(__file__).parent / "static" / "icons"
_ID = r"^[a-z0-9][a-z0-9-]*$"
ICON_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.(svg|png|webp)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Localized(_Strict):
    """A string users read, in English and/or Dutch."""

    en: str | None = None
    nl: str | None = None

    def get(self, lang: str) -> str:
        return getattr(self, lang, None) or self.en or self.nl or ""


def _localize(value: Any) -> Any:
    if isinstance(value, str):
        return {"en": value, "nl": value}
    return value


Text = Annotated[Localized, Field()]


class Portal(_Strict):
    title: str = "Launcher"
    go_live: dt.date | None = None
    default_language: Literal["en", "nl"] = "nl"


class Category(_Strict):
    id: str = Field(pattern=_ID)
    name: Text
    order: int = 0

    _loc = field_validator("name", mode="before")(_localize)


class Department(_Strict):
    id: str = Field(pattern=_ID)
    name: Text
    headcount: int | None = Field(default=None, ge=0)

    _loc = field_validator("name", mode="before")(_localize)


def _check_https(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        raise ValueError(f"must be an https:// URL, got {value!r}")
    return value


class App(_Strict):
    id: str = Field(pattern=_ID, max_length=64)
    name: Text
    url: str
    description: Text | None = None
    icon: str | None = None
    category: str | None = None
    groups: tuple[str, ...] | None = None
    keywords: tuple[str, ...] = ()
    order: int = 0
    hidden: bool = False
    new_until: dt.date | None = None
    initiate_login_uri: str | None = None

    _loc = field_validator("name", "description", mode="before")(_localize)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        fields = _placeholders(value)
        unknown = sorted(set(fields) - set(PLACEHOLDERS))
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{unknown[0]}}}; known: "
                + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            )
        # the scheme and host must be literal so that a claim can never choose the target
        _check_https(_fill_for_check(value))
        if "{" in urlsplit(value.replace("{{", "").replace("}}", "")).netloc:
            raise ValueError("placeholders may not appear in the host name")
        return value

    @field_validator("initiate_login_uri")
    @classmethod
    def _initiate(cls, value: str | None) -> str | None:
        if value is not None:
            _check_https(value)
            if _placeholders(value):
                raise ValueError("initiate_login_uri takes no placeholders")
        return value

    @field_validator("icon")
    @classmethod
    def _icon(cls, value: str | None) -> str | None:
        if value is None or value.startswith("https://"):
            return value
        if value.startswith("http://"):
            raise ValueError("an icon URL must be https://")
        if not ICON_FILE.match(value):
            raise ValueError(f"must be an https URL or a file name like teams.svg, got {value!r}")
        return value

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("an empty list hides the app from everyone; omit 'groups' instead")
        return value

    def visible_to(self, groups: Iterable[str]) -> bool:
        return self.groups is None or not set(self.groups).isdisjoint(groups)

    def is_new(self, today: dt.date) -> bool:
        return self.new_until is not None and today <= self.new_until

    @property
    def monogram(self) -> str:
        words = [w for w in re.split(r"[\s_-]+", self.name.get("en")) if w]
        return "".join(w[0] for w in words[:2]).upper() or self.id[:2].upper()


class _Document(_Strict):
    portal: Portal = Field(default_factory=Portal)
    categories: tuple[Category, ...] = ()
    departments: tuple[Department, ...] = ()
    apps: tuple[App, ...]


@dataclass(frozen=True)
class Registry:
    """A validated registry. Lookups are by id; the order of ``apps`` is the display order."""

    portal: Portal
    categories: tuple[Category, ...]
    departments: tuple[Department, ...]
    apps: tuple[App, ...]
    source: str = ""
    _by_id: Mapping[str, App] = field(default_factory=dict, repr=False)
    _categories: Mapping[str, Category] = field(default_factory=dict, repr=False)

    def app(self, app_id: str) -> App | None:
        return self._by_id.get(app_id)

    def category(self, category_id: str | None) -> Category | None:
        return self._categories.get(category_id) if category_id else None

    def visible_apps(self, groups: Iterable[str]) -> list[App]:
        groups = frozenset(groups)
        return [app for app in self.apps if app.visible_to(groups)]

    def known_groups(self) -> set[str]:
        return {g for app in self.apps for g in (app.groups or ())}


def _placeholders(template: str) -> list[str]:
    try:
        return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"unbalanced braces in {template!r}: {exc}") from None


def _fill_for_check(template: str) -> str:
    return template.format(**{p: "x" for p in PLACEHOLDERS})


# --- YAML with line numbers -------------------------------------------------------------

Path_ = tuple[str | int, ...]


class _LineLoader(yaml.SafeLoader):
    """Builds plain Python data and remembers the line of every key and item."""


def _to_python(
    loader: _LineLoader, node: yaml.Node, path: Path_, lines: dict[Path_, int], errors: list[str]
) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int):
                key = str(key)
            sub = (*path, key)
            if key in result:
                errors.append(
                    f"{{file}}:{key_node.start_mark.line + 1}: {_dotted(sub)}: duplicate key"
                )
            lines[sub] = key_node.start_mark.line + 1
            result[key] = _to_python(loader, value_node, sub, lines, errors)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_python(loader, item, (*path, i), lines, errors) for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_for(lines: Mapping[Path_, int], path: Path_) -> int:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1


def _field_name(path: Path_, data: Any) -> str:
    """apps[3].url reads better as apps[3] (id: ehr).url"""
    name = _dotted(path)
    if len(path) >= 2 and path[0] in ("apps", "categories", "departments"):
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
    """Parse and validate registry text; raise :class:`RegistryError` listing every problem."""
    loader = _LineLoader(text)
    lines: dict[Path_, int] = {}
    errors: list[str] = []
    try:
        node = loader.get_single_node()
        data = _to_python(loader, node, (), lines, errors) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise RegistryError([f"{source}:{line}: (YAML) {problem}"]) from None
    finally:
        loader.dispose()
    errors = [e.replace("{file}", source) for e in errors]
    if not isinstance(data, dict):
        raise RegistryError([f"{source}:1: (top level): expected a mapping with an 'apps' list"])

    try:
        doc = _Document.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            path = _clean_loc(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif err["type"] == "missing":
                msg = "required field is missing"
            errors.append(f"{source}:{_line_for(lines, path)}: {_field_name(path, data)}: {msg}")
        raise RegistryError(_unique(errors)) from None

    errors += _cross_checks(doc, source, lines, data, icon_dirs)
    if errors:
        raise RegistryError(_unique(errors))
    return Registry(
        portal=doc.portal,
        categories=doc.categories,
        departments=doc.departments,
        apps=_display_order(doc),
        source=source,
        _by_id={app.id: app for app in doc.apps},
        _categories={c.id: c for c in doc.categories},
    )


def _clean_loc(loc: tuple[str | int, ...]) -> Path_:
    # pydantic adds union-member tags to some locations; they are not keys of the file
    return tuple(p for p in loc if p not in ("Localized", "str", "function-before[_localize()]"))


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _cross_checks(
    doc: _Document, source: str, lines: Mapping[Path_, int], data: Any, icon_dirs: Sequence[Path]
) -> list[str]:
    errors: list[str] = []

    def err(path: Path_, msg: str) -> None:
        errors.append(f"{source}:{_line_for(lines, path)}: {_field_name(path, data)}: {msg}")

    for kind, items in (
        ("categories", doc.categories),
        ("departments", doc.departments),
        ("apps", doc.apps),
    ):
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            if item.id in seen:
                first = _line_for(lines, (kind, seen[item.id]))
                err((kind, i, "id"), f"duplicate id {item.id!r} (first defined on line {first})")
            seen.setdefault(item.id, i)
    categories = {c.id for c in doc.categories}
    for i, app in enumerate(doc.apps):
        if app.category is not None and app.category not in categories:
            known = ", ".join(sorted(categories)) or "none defined"
            err(("apps", i, "category"), f"unknown category {app.category!r} (known: {known})")
        if app.icon and not app.icon.startswith("https://"):
            if not any((d / app.icon).is_file() for d in (*icon_dirs, ICON_DIR)):
                err(("apps", i, "icon"), f"no icon file {app.icon!r} under static/icons/ or icons/")
    return errors


def _display_order(doc: _Document) -> tuple[App, ...]:
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
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError([f"{path}:0: cannot read the registry: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise RegistryError([f"{path}:0: the registry is not UTF-8 text"]) from None
    return parse_registry(text, source=str(path), icon_dirs=[path.parent / "icons"])


def json_schema() -> dict[str, Any]:
    """A JSON Schema of the registry format, for editor completion (yaml-language-server)."""
    schema = _Document.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Launcher app registry (apps.yaml)"
    return schema


class RegistryHolder:
    """The registry in use, reloaded when the file changes; a broken edit keeps the last good one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.errors: list[str] = []
        self.loaded_at: dt.datetime | None = None
        self._signature: object = object()  # matches no stat result: the first call loads
        self._current: Registry | None = None

    @property
    def current(self) -> Registry:
        if self._current is None:
            raise RegistryError(self.errors or [f"{self.path}: no registry loaded"])
        return self._current

    @property
    def ready(self) -> bool:
        return self._current is not None

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def reload_if_changed(self) -> bool:
        """Reload when the file's mtime or size changed. Returns True when a new registry is in use."""
        signature = self._stat()
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            registry = load_registry(self.path)
        except RegistryError as exc:
            self.errors = exc.problems
            if self._current is None:
                log.error("app registry %s is invalid:\n%s", self.path, exc)
            else:
                log.error(
                    "app registry %s is invalid; keeping the last good one:\n%s", self.path, exc
                )
            return False
        self._current = registry
        self.errors = []
        self.loaded_at = dt.datetime.now(dt.UTC)
        log.info("app registry loaded from %s: %d apps", self.path, len(registry.apps))
        return True


def launch_url(app: App, values: Mapping[str, str], issuer: str) -> str:
    """Where a launch of ``app`` goes for a user with these placeholder values.

    Each value is percent-encoded with nothing left unescaped (``+`` -> ``%2B``, ``@`` ->
    ``%40``). With ``initiate_login_uri`` the launch is an OIDC third-party-initiated login:
    the app receives our issuer, a login hint and the target, and signs the user in without
    asking for a second login.
    """
    from urllib.parse import quote, urlencode

    target = app.url.format(**{k: quote(v, safe="") for k, v in values.items()})
    if app.initiate_login_uri is None:
        return target
    params = {"iss": issuer, "target_link_uri": target}
    hint = values.get("email") or values.get("upn")
    if hint:
        params["login_hint"] = hint
    separator = "&" if "?" in app.initiate_login_uri else "?"
    return app.initiate_login_uri + separator + urlencode(params, quote_via=quote, safe="")
