"""The app registry: ``apps.yaml`` -> a validated, immutable :class:`Registry`.

Every error names the file, the line and the field, so that an admin can fix a broken edit
from the message alone, and one run reports every problem of the file: the schema is checked
by pydantic, while the checks across items (duplicate ids, unknown categories, missing icon
files) run on the raw YAML data, so that they do not wait for the schema errors to be fixed.
:class:`RegistryHolder` keeps the last good registry while a newer, broken edit is on disk.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from launcher.auth.user import User
from launcher.errors import RegistryError

log = logging.getLogger(__name__)

PLACEHOLDERS = ("email", "sub", "name", "upn", "domain")
ICON_DIR = Path(__file__).parent / "static" / "icons"
_ID = r"^[a-z0-9][a-z0-9-]*$"
ICON_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.(svg|png|webp)\Z")
# a browser would strip or reinterpret these (a backslash reads as "/"), so a URL that holds
# them does not go where it seems to
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Localized(_Strict):
    """A string users read, in English and/or Dutch."""

    en: str | None = None
    nl: str | None = None

    @model_validator(mode="after")
    def _some_text(self) -> Localized:
        if not any(text and text.strip() for text in (self.en, self.nl)):
            raise ValueError("needs a text (in en, nl or both)")
        return self

    def get(self, lang: str) -> str:
        wanted = self.nl if lang == "nl" else self.en if lang == "en" else None
        return wanted or self.en or self.nl or ""


def _localize(value: Any) -> Any:
    if isinstance(value, str):
        return {"en": value, "nl": value}
    return value


# plain text, or {en: …, nl: …}; the schema says so too, for editors that complete apps.yaml
Text = Annotated[Localized, BeforeValidator(_localize, json_schema_input_type=str | Localized)]


class PortalSection(_Strict):
    """The registry's ``portal:`` section."""

    title: str = "Launcher"
    go_live: dt.date | None = None
    default_language: Literal["en", "nl"] = "nl"
    # reports show hours and weekdays in this time zone (the heatmap); dates stay UTC
    timezone: str = "Europe/Amsterdam"

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value


class Category(_Strict):
    id: str = Field(pattern=_ID)
    name: Text
    order: int = Field(default=0, strict=True)  # strict: `order: true` is a mistake, not 1


class Department(_Strict):
    id: str = Field(pattern=_ID)
    name: Text
    headcount: int | None = Field(default=None, ge=0, strict=True)


def _check_https(value: str) -> str:
    if _URL_UNSAFE.search(value):
        raise ValueError(f"a URL may not contain spaces, control characters or '\\', got {value!r}")
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
    order: int = Field(default=0, strict=True)
    hidden: bool = Field(default=False, strict=True)  # strict: only true/false, not "maybe"
    new_until: dt.date | None = None
    initiate_login_uri: str | None = None

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
        if value is None:
            return value
        if value.startswith("http://"):
            raise ValueError("an icon URL must be https://")
        if value.startswith("https://"):
            return _check_https(value)
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
    portal: PortalSection = Field(default_factory=PortalSection)
    categories: tuple[Category, ...] = ()
    departments: tuple[Department, ...] = ()
    apps: tuple[App, ...]


@dataclass(frozen=True)
class Registry:
    """A validated registry. Lookups are by id; the order of ``apps`` is the display order."""

    portal: PortalSection
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
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"unbalanced braces in {template!r}: {exc}") from None
    fields = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion:
            # {email!r} or {email:>20} would put quotes or padding into the URL
            raise ValueError(f"write a placeholder as {{{name}}}, without '!' or ':'")
        fields.append(name)
    return fields


def _fill_for_check(template: str) -> str:
    return template.format(**{p: "x" for p in PLACEHOLDERS})


# --- YAML with line numbers -------------------------------------------------------------

Path_ = tuple[str | int, ...]
_Problem = tuple[int, Path_, str]  # line, where, message
_MERGE = "tag:yaml.org,2002:merge"


class _LineLoader(yaml.SafeLoader):
    """Builds plain Python data and remembers the line of every key and item."""


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
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        return _to_python(loader, node, (), lines, problems) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise RegistryError([f"{source}:{line}: (YAML): {problem}"]) from None
    except RecursionError:
        raise RegistryError([f"{source}:1: (YAML): an alias refers to itself"]) from None
    finally:
        loader.dispose()


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
    """Parse and validate registry text; raise :class:`RegistryError` listing every problem.

    The problems come in the order of their lines, each as ``file:line: field: message``.
    """
    lines: dict[Path_, int] = {}
    problems: list[_Problem] = []
    data = _load_yaml(text, source, lines, problems)
    if not isinstance(data, dict):
        raise RegistryError([f"{source}:1: (top level): expected a mapping with an 'apps' list"])

    def report(path: Path_, message: str) -> None:
        problems.append((_line_for(lines, path), path, message))

    doc: _Document | None = None
    try:
        doc = _Document.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            report(err["loc"], _message(err))
    _cross_checks(data, lines, report, icon_dirs)
    if problems or doc is None:
        ordered = sorted(problems, key=lambda problem: problem[0])  # stable: same line, same order
        raise RegistryError(
            _unique([f"{source}:{ln}: {_field_name(at, data)}: {msg}" for ln, at, msg in ordered])
        )
    return Registry(
        portal=doc.portal,
        categories=doc.categories,
        departments=doc.departments,
        apps=_display_order(doc),
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
    for kind in ("categories", "departments", "apps"):
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
        text = path.read_text(encoding="utf-8-sig")  # -sig: a BOM from a Windows editor is fine
    except OSError as exc:
        raise RegistryError([f"{path}:1: (file): cannot read it: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise RegistryError([f"{path}:1: (file): not UTF-8 text"]) from None
    return parse_registry(text, source=str(path), icon_dirs=[path.parent / "icons"])


def json_schema() -> dict[str, Any]:
    """A JSON Schema of the registry format, for editor completion (yaml-language-server)."""
    schema = _Document.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Launcher app registry (apps.yaml)"
    return schema


class RegistryHolder:
    """The registry in use, reloaded when the file changes; a broken edit keeps the last good."""

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

    def timezone(self) -> ZoneInfo:
        """The portal's time zone (the default until a registry is loaded)."""
        return ZoneInfo(self._current.portal.timezone if self._current else "Europe/Amsterdam")

    def _stat(self) -> tuple[int, int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        # ctime and inode as well: `cp -p` keeps the mtime, and a rename swaps the inode
        return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)

    def reload_if_changed(self) -> bool:
        """Reload when the file changed on disk. Returns True when a new registry is in use."""
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
    ``%40``); a missing value fills in as an empty string. With ``initiate_login_uri`` the
    launch is an OIDC third-party-initiated login: the app receives our issuer, a login hint
    and the target, and signs the user in without asking for a second login.
    """
    used = [p for p in PLACEHOLDERS if "{" + p + "}" in app.url]  # quote() is the costly part
    target = app.url.format(**{p: quote(values.get(p) or "", safe="") for p in used})
    if app.initiate_login_uri is None:
        return target
    params = {"iss": issuer, "target_link_uri": target}
    hint = values.get("email") or values.get("upn")
    if hint:
        params["login_hint"] = hint
    parts = urlsplit(app.initiate_login_uri)
    query = "&".join(q for q in (parts.query, urlencode(params, quote_via=quote, safe="")) if q)
    return urlunsplit(parts._replace(query=query))


class LaunchTargets:
    """Launch URLs already built, per registry, app and user: a click costs a dict lookup.

    Values are the ``Location`` header, ready to send (URL-quoted as Starlette's
    RedirectResponse would). A new registry starts a new cache; the size is bounded.
    """

    MAX = 4096

    def __init__(self) -> None:
        self._registry: Registry | None = None
        self._cache: dict[tuple[str, str, str, str, str | None, str | None], bytes] = {}

    def get(self, registry: Registry, app: App, user: User, issuer: str) -> bytes:
        if registry is not self._registry:
            self._registry, self._cache = registry, {}
        key = (app.id, issuer, user.sub, user.name, user.email, user.upn)
        target = self._cache.get(key)
        if target is None:
            url = launch_url(app, user.placeholders(), issuer)
            target = quote(url, safe=":/%#?=@[]!$&'()*+,;").encode("latin-1")
            if len(self._cache) >= self.MAX:
                self._cache.clear()
            self._cache[key] = target
        return target
