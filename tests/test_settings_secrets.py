"""Secrets that guard privacy are refused at start-up when they are too short to resist guessing."""

from __future__ import annotations

import pytest

from launcher.errors import ConfigError
from launcher.settings import load_settings


@pytest.mark.parametrize("key", ["x", "a" * 31], ids=["one character", "31 characters"])
def test_short_pseudonym_key_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv("LAUNCHER_PSEUDONYM_KEY", key)
    with pytest.raises(ConfigError, match="LAUNCHER_PSEUDONYM_KEY: must be at least 32"):
        load_settings()


def test_pseudonym_key_of_32_characters_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAUNCHER_PSEUDONYM_KEY", "k" * 32)
    assert load_settings().pseudonym_secret() == b"k" * 32
