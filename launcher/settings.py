"""Settings: every ``LAUNCHER_*`` environment variable, validated once and passed in.

Nothing here is read at import time; :func:`load_settings` builds a :class:`Settings` and
``create_app`` receives it. A ``.env`` file in the working directory may supply values too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from launcher.errors import ConfigError

CommaList = Annotated[list[str], NoDecode]


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """The portal's configuration. Field names map to ``LAUNCHER_<NAME>`` variables."""

    model_config = SettingsConfigDict(
        env_prefix="LAUNCHER_", env_file=".env", extra="ignore", frozen=True
    )

    base_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr | None = None
    # Earlier secret keys, still accepted on cookies and CSRF tokens while they age out; new
    # ones are signed with secret_key only (docs/SECURITY.md, "Rotating the secret key").
    secret_key_fallbacks: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = "openid profile email"
    # ID-token signature algorithms we accept; "none" is refused whatever this says.
    oidc_algorithms: CommaList = Field(default_factory=lambda: ["RS256"])
    groups_claim: str = "groups"
    department_claim: str = "department"
    # The claim whose value (with the issuer) becomes the stored pseudonymous user id. It must
    # be the id the provider's sign-in logs carry, or imported sign-ins never meet the
    # portal's launches: Entra ID logs the object id (``oid``); its ``sub`` differs per app.
    subject_claim: str = Field(default="sub", min_length=1)
    reviewer_groups: CommaList = Field(default_factory=lambda: ["launcher-reviewers"])
    admin_groups: CommaList = Field(default_factory=lambda: ["launcher-admins"])
    # members write announcements (admins may too)
    editor_groups: CommaList = Field(default_factory=lambda: ["launcher-editors"])
    database_url: str = "sqlite:///var/launcher.db"
    apps_file: Path = Path("config/apps.yaml")
    report_min_group: int = Field(default=5, ge=1)
    raw_retention_days: int = Field(default=400, ge=1)
    session_idle_timeout: int = Field(default=8 * 60 * 60, ge=60)  # seconds; 8 h
    session_absolute_timeout: int = Field(default=24 * 60 * 60, ge=60)  # seconds; 24 h
    # Key for pseudonymous user ids; defaults to one derived from the secret key. Set it
    # explicitly if you ever rotate the secret key, or pseudonyms (and reports) will split.
    pseudonym_key: SecretStr | None = None
    # Bearer token Prometheus sends to /metrics; unset, /metrics answers 404 (the figures are
    # live launch counts per app, group-restricted apps included: not for anonymous eyes).
    metrics_token: SecretStr | None = None
    spool_dir: Path = Path("var/spool")
    # One line per request (client address, path, status) from uvicorn. Off by default: for a
    # launch portal it is a trail of who opened which app when, outside the pseudonymised
    # event store (docs/PRIVACY.md), and the reverse proxy in front usually logs requests.
    access_log: bool = False
    # the weekly digest (launcher/engage/mail.py); unset = no digest. A secret: it may hold
    # the SMTP password.
    smtp_url: SecretStr | None = None
    mail_from: str | None = None
    # "json": one JSON object per log line, for log shippers (launcher/logs.py)
    log_format: Literal["text", "json"] = "text"

    @field_validator(
        "oidc_algorithms", "reviewer_groups", "admin_groups", "editor_groups", mode="before"
    )
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("secret_key_fallbacks", mode="before")
    @classmethod
    def _fallback_list(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("secret_key_fallbacks")
    @classmethod
    def _fallback_length(cls, value: list[SecretStr]) -> list[SecretStr]:
        # a fallback verifies cookies as well as the current key does: it must be as strong
        if any(len(key.get_secret_value()) < 32 for key in value):
            raise ValueError("each key must be at least 32 characters long")
        return value

    @field_validator("oidc_algorithms")
    @classmethod
    def _no_alg_none(cls, value: list[str]) -> list[str]:
        if any(alg.lower() == "none" for alg in value):
            raise ValueError("'none' is never an acceptable ID-token algorithm")
        if not value:
            raise ValueError("at least one algorithm is needed, e.g. RS256")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"must be an absolute http(s) URL, got {value!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"must be scheme://host[:port] without a path, got {value!r}")
        if parts.username or parts.password or not parts.hostname:
            raise ValueError(f"must be scheme://host[:port] without credentials, got {value!r}")
        # the browser's Origin header is the normalised form: lower case, no default port
        scheme, host = parts.scheme.lower(), parts.hostname.lower()
        if ":" in host:
            host = f"[{host}]"  # IPv6
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"has an invalid port: {value!r}") from None
        default = {"http": 80, "https": 443}[scheme]
        return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")

    @field_validator("oidc_scopes")
    @classmethod
    def _openid_scope(cls, value: str) -> str:
        if "openid" not in value.split():
            raise ValueError(f"must include 'openid' (OpenID Connect needs it), got {value!r}")
        return value

    @field_validator("oidc_issuer")
    @classmethod
    def _issuer(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            # the URL may hold a password: name the shape, never echo the value
            raise ValueError(
                "must be smtp://[user:pass@]host:port or smtps://[user:pass@]host:port"
            )
        try:
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            raise ValueError("has an invalid port") from None
        return value

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, value: str | None) -> str | None:
        if value is not None and ("@" not in value or any(c in value for c in "\r\n")):
            raise ValueError(f"must be an e-mail address, got {value!r}")
        return value

    @field_validator("pseudonym_key", "metrics_token")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # A short key can be guessed offline: from the database (pseudonyms) or by trying
        # tokens against /metrics. Same bar as LAUNCHER_SECRET_KEY.
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters long")
        return value

    @model_validator(mode="after")
    def _timeouts(self) -> Settings:
        if self.session_idle_timeout > self.session_absolute_timeout:
            raise ValueError(
                "LAUNCHER_SESSION_IDLE_TIMEOUT must not exceed LAUNCHER_SESSION_ABSOLUTE_TIMEOUT"
            )
        return self

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/auth/callback"

    @property
    def session_cookie(self) -> str:
        # __Host- binds the cookie to this exact origin; browsers accept it only over https.
        return "__Host-launcher" if self.https else "launcher_session"

    @property
    def login_cookie(self) -> str:
        return "__Host-launcher-login" if self.https else "launcher_login"

    def secret(self) -> str:
        if self.secret_key is None:
            raise ConfigError("LAUNCHER_SECRET_KEY is not set")
        return self.secret_key.get_secret_value()

    def secret_keys(self) -> list[str]:
        """Every key a signature may be checked with, oldest first: itsdangerous signs with
        the last (the current key) and accepts any."""
        return [key.get_secret_value() for key in self.secret_key_fallbacks] + [self.secret()]

    def pseudonym_secret(self) -> bytes:
        if self.pseudonym_key is not None:
            return self.pseudonym_key.get_secret_value().encode()
        return hashlib.sha256(b"launcher-pseudonym:" + self.secret().encode()).digest()

    def require_production(self) -> None:
        """Fail loudly, naming each missing variable, when the portal cannot run for real."""
        missing = [
            name
            for name, value in (
                ("LAUNCHER_SECRET_KEY", self.secret_key),
                ("LAUNCHER_OIDC_ISSUER", self.oidc_issuer),
                ("LAUNCHER_OIDC_CLIENT_ID", self.oidc_client_id),
                ("LAUNCHER_OIDC_CLIENT_SECRET", self.oidc_client_secret),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                "cannot start: missing " + ", ".join(missing) + " (see README, 'Settings')"
            )
        if len(self.secret()) < 32:
            raise ConfigError("LAUNCHER_SECRET_KEY must be at least 32 characters long")


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (and ``.env``), turning validation errors into a ConfigError."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            # loc[0] is the field; a list setting adds the item's index, which is no variable
            (f"LAUNCHER_{str(err['loc'][0]).upper()}: " if err["loc"] else "")
            + err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
