"""Export the Entra ID sign-in log for ``launcher import-signins --format entra``.

The import-signins CronJob (cronjob-import-signins.yaml) runs this in an init container; the
main container then runs ``launcher import-signins --format entra /exports/signins.jsonl``.

It pages through Microsoft Graph's sign-in log (``GET /v1.0/auditLogs/signIns``, application
permission AuditLog.Read.All, which needs Entra ID P1 or P2) from SIGNINS_SINCE_HOURS hours ago
up to now (``$filter`` on createdDateTime, ``$top`` 1000, then ``@odata.nextLink`` until there
is none) and writes one signIn object per line (JSON lines). Windows that overlap the previous
run's are fine: the import counts a record it has seen once. When Graph throttles (429) or
stumbles (5xx) it waits as ``Retry-After`` says and asks again, a few times. The credentials
come from the Secret launcher-graph (tenant-id, client-id, client-secret). For Keycloak (the
admin API's event list) or Okta (the System Log), write that format instead and change
``--format`` in the CronJob (README, "Is the portal still the front door?"). Standard library
only: it runs in the portal's image.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

LOGIN = os.environ.get("GRAPH_LOGIN_URL", "https://login.microsoftonline.com")
GRAPH = os.environ.get("GRAPH_API_URL", "https://graph.microsoft.com")
ATTEMPTS = 5


def _post_form(url: str, form: dict[str, str]) -> dict[str, object]:
    form_data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=form_data)  # noqa: S310 (our https URLs)
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return dict(json.load(response))


def _get(url: str, token: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (Graph's own links)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                return dict(json.load(response))
        except urllib.error.HTTPError as exc:
            if exc.code != 429 and exc.code < 500 or attempt == ATTEMPTS:
                raise
            wait = exc.headers.get("Retry-After", "")
            time.sleep(min(int(wait) if wait.isdigit() else 2**attempt, 120))
    raise AssertionError("unreachable")


def main() -> int:
    out = os.environ.get("SIGNINS_FILE", "/exports/signins.jsonl")
    hours = int(os.environ.get("SIGNINS_SINCE_HOURS", "26"))
    tenant = os.environ["GRAPH_TENANT_ID"]
    token = _post_form(
        f"{LOGIN}/{urllib.parse.quote(tenant)}/oauth2/v2.0/token",
        {
            "grant_type": "client_credentials",
            "client_id": os.environ["GRAPH_CLIENT_ID"],
            "client_secret": os.environ["GRAPH_CLIENT_SECRET"],
            "scope": f"{GRAPH}/.default",
        },
    )["access_token"]
    until = dt.datetime.now(dt.timezone.utc)  # noqa: UP017 (runs on older Pythons too)
    since = until - dt.timedelta(hours=hours)
    window = (
        f"createdDateTime ge {since:%Y-%m-%dT%H:%M:%SZ} "
        f"and createdDateTime lt {until:%Y-%m-%dT%H:%M:%SZ}"
    )
    query = urllib.parse.urlencode({"$filter": window, "$top": "1000"})
    url: object = f"{GRAPH}/v1.0/auditLogs/signIns?{query}"
    count = 0
    # written aside and renamed: the import never reads half an export
    with open(out + ".part", "w", encoding="utf-8") as fh:
        while isinstance(url, str):
            page = _get(url, str(token))
            records = page.get("value")
            if not isinstance(records, list):
                print(f"fetch-signins: no 'value' list in the page from {url}", file=sys.stderr)
                return 1
            for record in records:
                fh.write(json.dumps(record) + "\n")
            count += len(records)
            url = page.get("@odata.nextLink")  # absent on the last page
    os.replace(out + ".part", out)
    print(f"fetch-signins: {count} sign-ins since {since:%Y-%m-%dT%H:%M:%SZ} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
