"""RegistryHolder (launcher/registry/holder.py): reload on change, keep the last good registry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from launcher.errors import RegistryError
from launcher.registry import RegistryHolder


def _write(path: Path, text: str, mtime: int) -> None:
    path.write_text(text)
    os.utime(path, (mtime, mtime))


GOOD = "apps:\n  - {id: a, name: A, url: 'https://a.example/'}\n"
GOOD_2 = "apps:\n  - {id: a, name: A, url: 'https://a.example/'}\n  - {id: b, name: B, url: 'https://b.example/'}\n"
BROKEN = "apps:\n  - {id: a, name: A, url: 'http://a.example/'}\n"


def test_holder_loads_and_picks_up_an_edit(tmp_path: Path) -> None:
    path = tmp_path / "apps.yaml"
    _write(path, GOOD, 1_700_000_000)
    holder = RegistryHolder(path)
    assert not holder.ready
    assert holder.reload_if_changed() is True
    assert holder.ready and holder.errors == [] and holder.loaded_at is not None
    assert holder.reload_if_changed() is False  # unchanged: not read again

    _write(path, GOOD_2, 1_700_000_100)
    assert holder.reload_if_changed() is True
    assert [app.id for app in holder.current.apps] == ["a", "b"]


def test_holder_sees_an_edit_that_keeps_size_and_mtime(tmp_path: Path) -> None:
    path = tmp_path / "apps.yaml"
    _write(path, GOOD, 1_700_000_000)
    holder = RegistryHolder(path)
    holder.reload_if_changed()
    # same length, same mtime (as `cp -p` or a fast second save leaves it): ctime still moves
    _write(path, GOOD.replace("name: A", "name: X"), 1_700_000_000)
    assert holder.reload_if_changed() is True
    assert holder.current.apps[0].name.get("en") == "X"


def test_holder_keeps_the_last_good_registry_on_a_broken_edit(tmp_path: Path) -> None:
    path = tmp_path / "apps.yaml"
    _write(path, GOOD_2, 1_700_000_000)
    holder = RegistryHolder(path)
    holder.reload_if_changed()

    _write(path, BROKEN, 1_700_000_100)
    assert holder.reload_if_changed() is False
    assert [app.id for app in holder.current.apps] == ["a", "b"]
    assert holder.errors == [
        f"{path}:2: apps[0] (id: a).url: must be an https:// URL, got 'http://a.example/'"
    ]

    path.unlink()
    assert holder.reload_if_changed() is False
    assert holder.ready and holder.errors[0].startswith(f"{path}:1: (file): cannot read it")

    _write(path, GOOD, 1_700_000_200)
    assert holder.reload_if_changed() is True
    assert holder.errors == []
    assert [app.id for app in holder.current.apps] == ["a"]


def test_holder_without_a_file_at_start_is_not_ready(tmp_path: Path) -> None:
    path = tmp_path / "apps.yaml"
    holder = RegistryHolder(path)
    assert holder.reload_if_changed() is False
    assert not holder.ready
    assert len(holder.errors) == 1 and str(path) in holder.errors[0]
    with pytest.raises(RegistryError):
        _ = holder.current

    _write(path, GOOD, 1_700_000_000)
    assert holder.reload_if_changed() is True
    assert holder.ready and holder.errors == []


def test_holder_follows_a_configmap_update(tmp_path: Path) -> None:
    """Kubernetes mounts a ConfigMap as ``apps.yaml -> ..data/apps.yaml`` and updates it by
    writing a new timestamped folder and swapping the ``..data`` symlink atomically."""
    mount = tmp_path / "config"
    mount.mkdir()

    def publish(version: str, text: str) -> None:
        folder = mount / f"..2026_12_01_{version}"
        folder.mkdir()
        _write(folder / "apps.yaml", text, 1_700_000_000)  # the same mtime every time
        link = mount / "..data_tmp"
        link.symlink_to(folder.name)
        link.rename(mount / "..data")  # rename(2) over the old link: the atomic swap

    publish("1", GOOD)
    (mount / "apps.yaml").symlink_to("..data/apps.yaml")
    holder = RegistryHolder(mount / "apps.yaml")
    assert holder.reload_if_changed() is True
    assert holder.reload_if_changed() is False

    publish("2", GOOD.replace("id: a, name: A", "id: c, name: C"))  # same size, same mtime
    assert holder.reload_if_changed() is True
    assert [app.id for app in holder.current.apps] == ["c"]

    publish("3", BROKEN)
    assert holder.reload_if_changed() is False
    assert [app.id for app in holder.current.apps] == ["c"] and holder.errors
