"""The development provider's RS256 signing key, kept in a file so a demo restart reuses it.

A restart with a new key would invalidate the JWKS the portal has cached; a private JWK in a
file readable by its owner only (mode 0600) avoids that.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from joserfc.errors import JoseError
from joserfc.jwk import RSAKey


def new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True)


def load_key(path: Path) -> RSAKey | None:
    """The private key in ``path``, or None when there is no file yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        key = RSAKey.import_key(json.loads(text))
    except (ValueError, TypeError, JoseError) as exc:
        raise ValueError(f"devidp key file {path} is not an RSA JWK: {exc}") from None
    if not key.is_private:
        raise ValueError(f"devidp key file {path} holds no private key")
    key.ensure_kid()
    return key


def save_key(path: Path, key: RSAKey) -> None:
    """Write the private JWK atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # O_EXCL below: a leftover file would keep its old mode
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(key.as_dict(private=True), fh)
    os.replace(tmp, path)
