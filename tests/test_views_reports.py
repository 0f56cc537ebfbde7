"""Access to the reports (launcher/views/reports.py): reviewers only; JSON errors on the API.
In process."""

from __future__ import annotations

from tests.helpers import REVIEWER, STAFF, InProcess
from tests.web import API


def test_report_api_wants_a_reviewer_and_answers_json(portal: InProcess) -> None:
    answers = {
        401: portal.get(API),
        403: portal.get(API, STAFF),
        200: portal.get(API, REVIEWER),
    }
    for status, resp in answers.items():
        assert resp.status_code == status
        assert resp.headers["content-type"].startswith("application/json")
        body = resp.json()
        if status != 200:
            assert body["status"] == status
            assert isinstance(body["message"], str) and body["message"]
            assert set(body) == {"error", "status", "message"}
