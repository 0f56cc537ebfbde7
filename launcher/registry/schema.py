"""The registry format: the pydantic models of ``apps.yaml`` and the validated :class:`Registry`.

The models check one item at a time (an https URL, a known placeholder, an icon file name);
checks across items and the file:line of each error are the loader's (``loader.py``).
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from launcher import assets

PLACEHOLDERS = ("email", "sub", "name", "upn", "domain")
ICON_DIR = assets.ICONS  # the built-in icon set
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
    # a drop in distinct users smaller than this (a share, 0.10 = 10 %) is not flagged as a
    # decline: every small dip in red would make the flag mean nothing
    decline_threshold: float = Field(default=0.10, gt=0, lt=1)
    # no sign-in for this many days: a leaver (left the organisation), not a dormant user;
    # more than the 30 days that make someone dormant
    leaver_days: int = Field(default=90, ge=31, le=3660, strict=True)

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


Headcount = Annotated[int, Field(ge=0, strict=True)]


class Department(_Strict):
    id: str = Field(pattern=_ID)
    name: Text
    # what the department claim may say for this department (HR codes, names); the stored
    # department is always the registry id (launcher/auth/user.py, department_of)
    claim_values: tuple[Annotated[str, Field(min_length=1, max_length=128)], ...] = ()
    # one number, or the number from each date on: {2025-01-01: 840, 2026-01-01: 810}
    headcount: Headcount | dict[dt.date, Headcount] | None = None

    @field_validator("headcount", mode="before")
    @classmethod
    def _headcount(cls, value: Any) -> Any:
        # checked here, so that an error says what is wrong rather than which branch of the
        # union it failed
        if not isinstance(value, dict):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError("expected a number, or {date: number, …}")
            if value is not None and value < 0:
                raise ValueError("a headcount cannot be negative")
            return value
        if not value:
            raise ValueError("give at least one date: number, or omit 'headcount'")
        out: dict[dt.date, int] = {}
        for day, count in value.items():
            try:
                date = day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day))
            except ValueError:
                raise ValueError(f"{str(day)[:40]!r} is not a date (YYYY-MM-DD)") from None
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"the headcount of {date} must be a whole number ≥ 0")
            out[date] = count
        return out

    def headcount_at(self, day: dt.date) -> int | None:
        """The headcount in force on ``day``: the last dated value on or before it (the
        first one for a day before every date)."""
        if not isinstance(self.headcount, dict):
            return self.headcount
        dates = sorted(self.headcount)
        in_force = [d for d in dates if d <= day] or dates[:1]
        return self.headcount[in_force[-1]]


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
    # the identity provider's ids for this app (Entra appId, Keycloak clientId, Okta app
    # instance id): imported sign-ins are matched to the app through them
    signin_ids: tuple[Annotated[str, Field(min_length=1, max_length=200)], ...] = ()
    # checked by the server in the background (launcher/status.py): "may be down" on the tile
    status_url: str | None = None

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

    @field_validator("status_url")
    @classmethod
    def _status_url(cls, value: str | None) -> str | None:
        # the server itself fetches this URL, so it is the admin's literal https URL: no
        # placeholder could ever let a claim choose what the server connects to
        if value is not None:
            _check_https(value)
            if _placeholders(value) or "{" in value or "}" in value:
                raise ValueError("status_url takes no placeholders")
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


class DisplayEntry(_Strict):
    """A hallway screen (``displays:``); its secret token is read from ``token_env``."""

    id: str = Field(pattern=_ID, max_length=64)
    name: Text
    token_env: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$", max_length=100)
    groups: tuple[str, ...] | None = None

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("an empty list shows no announcement; omit 'groups' instead")
        return value


class Document(_Strict):
    """The whole file, as the schema sees it (the loader adds the checks across items)."""

    portal: PortalSection = Field(default_factory=PortalSection)
    categories: tuple[Category, ...] = ()
    departments: tuple[Department, ...] = ()
    apps: tuple[App, ...]
    displays: tuple[DisplayEntry, ...] = ()


@dataclass(frozen=True)
class Registry:
    """A validated registry. Lookups are by id; the order of ``apps`` is the display order."""

    portal: PortalSection
    categories: tuple[Category, ...]
    departments: tuple[Department, ...]
    apps: tuple[App, ...]
    displays: tuple[DisplayEntry, ...] = ()
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

    def department_map(self) -> dict[str, str]:
        """What the department claim may say -> the registry's department id: each id maps
        to itself, and each of a department's ``claim_values`` to its id."""
        out = {d.id: d.id for d in self.departments}
        out.update((value, d.id) for d in self.departments for value in d.claim_values)
        return out

    def signin_map(self) -> dict[str, str]:
        """The identity provider's app ids (``signin_ids``) -> the registry's app ids."""
        return {signin_id: app.id for app in self.apps for signin_id in app.signin_ids}


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


def json_schema() -> dict[str, Any]:
    """A JSON Schema of the registry format, for editor completion (yaml-language-server)."""
    schema = Document.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Launcher app registry (apps.yaml)"
    return schema
