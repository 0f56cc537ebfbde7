"""The pre-rendered grid (launcher/grid.py): built once per registry, language and day, and
shared by every page after that. In process."""

from __future__ import annotations

from typing import Any

import pytest

from launcher import grid
from launcher.registry import load_registry
from tests.conftest import EXAMPLE_APPS
from tests.helpers import CLINICIAN, STAFF, InProcess


def test_the_pieces_are_built_once_per_language_not_per_page(
    portal: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    real = grid.build

    def counting(*args: Any, **kwargs: Any) -> grid.Pieces:
        built.append(args[2])  # the language
        return real(*args, **kwargs)

    monkeypatch.setattr(grid, "build", counting)
    for _ in range(3):
        assert portal.get("/", STAFF, headers={"Accept-Language": "nl"}).status_code == 200
    assert built == ["nl"]
    for who in (STAFF, CLINICIAN):
        assert portal.get("/", who, headers={"Accept-Language": "en"}).status_code == 200
    assert built == ["nl", "en"]


def test_the_tiles_a_group_sees_are_worked_out_once_per_registry() -> None:
    registry = load_registry(EXAMPLE_APPS)
    cache = grid.PiecesCache()
    staff = cache.allowed(registry, ["staff"])
    assert staff == {a.id for a in registry.visible_apps(["staff"]) if not a.hidden}
    assert cache.allowed(registry, ("staff",)) is staff
    clinicians = cache.allowed(registry, ["staff", "clinicians"])
    assert "ehr" in clinicians and "ehr" not in staff
    reloaded = load_registry(EXAMPLE_APPS)  # a reload: worked out afresh
    assert cache.allowed(reloaded, ["staff"]) is not staff
