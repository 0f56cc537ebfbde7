"""Sign-in log formats and the streaming reader (launcher/signins): no database needed."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from launcher.signins import entra, keycloak, okta, reader
from launcher.signins.record import FieldError, Record

T = "2025-03-03T09:00:00Z"
UTC9 = dt.datetime(2025, 3, 3, 9, tzinfo=dt.UTC)


def entra_record(**over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": "e-1",
        "createdDateTime": T,
        "userId": "oid-1",
        "userPrincipalName": "someone@example.org",
        "appId": "app-teams",
        "appDisplayName": "Microsoft Teams",
        "status": {"errorCode": 0, "failureReason": None},
        "isInteractive": True,
    }
    rec.update(over)
    return rec


def test_entra_reads_exactly_its_fields() -> None:
    assert entra.parse(entra_record()) == Record(
        "e-1", UTC9, None, user="oid-1", app="app-teams", app_name="Microsoft Teams"
    )
    assert entra.parse(entra_record(status={"errorCode": 50126})).skip == "failed"
    assert entra.parse(entra_record(isInteractive=False)).skip == "non-interactive"
    offset = entra.parse(entra_record(createdDateTime="2025-03-03T10:00:00+01:00"))
    assert offset.ts == UTC9


def test_keycloak_reads_exactly_its_fields() -> None:
    ms = int(UTC9.timestamp() * 1000)
    rec = {"id": "k-1", "time": ms, "type": "LOGIN", "clientId": "rooster", "userId": "u-1"}
    assert keycloak.parse(rec) == Record(
        "k-1", UTC9, None, user="u-1", app="rooster", app_name="rooster"
    )
    assert keycloak.parse({**rec, "type": "LOGIN_ERROR"}).skip == "failed"
    assert keycloak.parse({**rec, "type": "REFRESH_TOKEN"}).skip == "other event"
    no_id = {k: v for k, v in rec.items() if k != "id"}
    assert keycloak.parse(no_id).record_id is None  # the importer derives one
    failed_unknown_user = {"time": ms, "type": "LOGIN_ERROR", "clientId": "rooster"}
    assert keycloak.parse(failed_unknown_user).skip == "failed"


def test_okta_reads_exactly_its_fields() -> None:
    rec = {
        "uuid": "o-1",
        "published": "2025-03-03T09:00:00.000Z",
        "eventType": "user.authentication.sso",
        "actor": {"id": "00u1", "type": "User", "alternateId": "someone@example.org"},
        "target": [
            {"id": "x", "type": "AppUser"},
            {"id": "0oa-ehr", "type": "AppInstance", "displayName": "EHR"},
        ],
        "outcome": {"result": "SUCCESS"},
    }
    assert okta.parse(rec) == Record("o-1", UTC9, None, user="00u1", app="0oa-ehr", app_name="EHR")
    assert okta.parse({**rec, "outcome": {"result": "FAILURE"}}).skip == "failed"
    assert okta.parse({**rec, "eventType": "user.session.start"}).skip == "other event"


@pytest.mark.parametrize(
    ("module", "record", "field"),
    [
        pytest.param(entra, entra_record(id=None), "id", id="entra id missing"),
        pytest.param(entra, entra_record(createdDateTime=None), "createdDateTime", id="entra ts"),
        pytest.param(
            entra,
            entra_record(createdDateTime="2025-03-03T09:00:00"),
            "createdDateTime",
            id="entra timestamp without a zone",
        ),
        pytest.param(entra, entra_record(userId=None), "userId", id="entra user missing"),
        pytest.param(entra, entra_record(status={}), "status.errorCode", id="entra status"),
        pytest.param(entra, entra_record(isInteractive="yes"), "isInteractive", id="entra bool"),
        pytest.param(entra, [1, 2], "record", id="entra not an object"),
        pytest.param(keycloak, {"time": "soon", "type": "LOGIN"}, "time", id="keycloak time"),
        pytest.param(
            keycloak, {"time": 1, "type": "LOGIN", "userId": "u"}, "clientId", id="keycloak client"
        ),
        pytest.param(okta, {"uuid": "o", "published": T}, "eventType", id="okta event type"),
        pytest.param(
            okta,
            {
                "uuid": "o",
                "published": T,
                "eventType": "user.authentication.sso",
                "outcome": {"result": "SUCCESS"},
                "actor": {"id": "u"},
                "target": [{"type": "AppUser", "id": "x"}],
            },
            "target",
            id="okta without AppInstance",
        ),
        pytest.param(okta, entra_record(), "uuid", id="an Entra record read as Okta"),
    ],
)
def test_a_bad_record_names_its_field(module: Any, record: Any, field: str) -> None:
    with pytest.raises(FieldError) as caught:
        module.parse(record)
    assert caught.value.field == field
    assert "oid-1" not in str(caught.value) and "someone@" not in str(caught.value)


RECORDS = [{"id": str(i), "n": 12345678 + i, "pad": "x" * (i % 13)} for i in range(60)]
LAYOUTS = {
    "array": json.dumps(RECORDS),
    "array, pretty": json.dumps(RECORDS, indent=2),
    "graph page": json.dumps({"@odata.context": "c", "value": RECORDS, "@odata.nextLink": "n"}),
    "graph page, pretty": json.dumps({"@odata.count": 123456, "value": RECORDS}, indent=1),
    "json lines": "\n".join(json.dumps(r) for r in RECORDS) + "\n",
    # the fast path for lines hands over to the standard decoder where a line is not a record
    "json lines, a BOM and blank lines": "\ufeff"
    + "\n\n".join(json.dumps(r) for r in RECORDS)
    + "\n \n",
    "json lines, then pretty": "\n".join(json.dumps(r) for r in RECORDS[:30])
    + "\n"
    + "\n".join(json.dumps(r, indent=2) for r in RECORDS[30:]),
    "json lines, then two on a line": "\n".join(json.dumps(r) for r in RECORDS[:30])
    + "\n"
    + " ".join(json.dumps(r) for r in RECORDS[30:]),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_every_layout_streams_every_record(
    layout: str, gz: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "BLOCK", 7)  # tiny blocks: every record crosses a boundary
    path = tmp_path / "export.json"
    data = LAYOUTS[layout].encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    got = list(reader.records(path))
    assert [n for n, _ in got] == list(range(1, 61))
    assert [v for _, v in got] == RECORDS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "is empty", id="empty file"),
        pytest.param(" \n ", "is empty", id="only whitespace"),
        pytest.param(LAYOUTS["array"][:-25], "record 60: truncated JSON", id="truncated array"),
        pytest.param(LAYOUTS["json lines"][:-20], "record 60: truncated", id="truncated lines"),
        pytest.param(LAYOUTS["graph page"][:-60], "record 60: truncated", id="truncated page"),
        pytest.param("id,time\n1,2\n", "is not JSON", id="a CSV file"),
        pytest.param(LAYOUTS["array"] + "]", "after the end", id="text after the array"),
        pytest.param('[{"id": 1}, {"id": 2,}]', "record 2: malformed JSON", id="malformed"),
        pytest.param(
            '{"id": 1}\n{"id": 2}\n{"id": 3,}\n{"id": 4}\n',
            "record 3: malformed JSON",
            id="a malformed line",
        ),
    ],
)
def test_unreadable_files_are_refused_with_the_record_number(
    text: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "BLOCK", 64)
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(reader.ReadError, match=message):
        list(reader.records(path))


def test_an_empty_export_is_no_error(tmp_path: Path) -> None:
    for text in ("[]", '{"value": []}'):
        (tmp_path / "e.json").write_text(text)
        assert list(reader.records(tmp_path / "e.json")) == []


def test_a_malformed_record_does_not_read_the_rest_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "MAX_RECORD", 1000)
    monkeypatch.setattr(reader, "BLOCK", 100)
    path = tmp_path / "big.json"
    path.write_text('[{"id": 1, oops}, ' + ", ".join(['{"id": 2}'] * 5000) + "]")
    blocks: list[int] = []
    with pytest.raises(reader.ReadError, match="record 1: malformed"):
        list(reader.records(path, blocks.append))
    assert max(blocks) < path.stat().st_size  # gave up before the end
