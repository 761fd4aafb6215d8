"""The LPR quotes contracts are priced on: the shipped table plus the announcements the province's
administrators enter each month (and correct), with every entry in the organisation's change trail."""

from __future__ import annotations

from typing import Any

import pytest

from engine.container import CreditFlow
from tests.conftest import ApiClient, login
from tests.test_org_changes import changes

QUOTES = "/api/v1/lpr-quotes"
PROBLEM = "application/problem+json"
NOVEMBER = {"LPR_1Y": "3.05", "LPR_5Y": "3.55"}


def newest(client: ApiClient) -> dict[str, Any]:
    response = client.get(QUOTES)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"][0]


def test_everyone_reads_the_quotes_newest_first_and_the_province_enters_each_announcement(app: Any) -> None:
    officer, admin = login(app, "ly_officer"), login(app, "admin")
    items = officer.get(QUOTES).get_json()["items"]
    assert [q["effective"] for q in items] == sorted((q["effective"] for q in items), reverse=True)
    assert (items[0]["effective"], items[0]["LPR_1Y"], items[0]["LPR_5Y"], items[0]["source"]) == (
        "2025-05-20",
        "3.00",
        "3.50",
        "shipped",
    )

    entered = admin.put(f"{QUOTES}/2026-11-20", json=NOVEMBER)
    assert entered.status_code == 200, entered.get_json()
    body = entered.get_json()
    assert (body["effective"], body["LPR_1Y"], body["LPR_5Y"]) == ("2026-11-20", "3.05", "3.55")
    assert (body["source"], body["entered_by"]) == ("entered", "admin")
    assert newest(officer) == body  # every bank reads the province's entry

    corrected = admin.put(f"{QUOTES}/2026-11-20", json={"LPR_1Y": 3.1, "LPR_5Y": "3.55"})
    assert corrected.status_code == 200 and newest(officer)["LPR_1Y"] == "3.10"
    fixed, first = changes(admin, "?subject=2026-11-20")
    assert fixed["action"] == first["action"] == "lpr.quote_set"
    assert first["details"] == {"changes": [{"path": "/LPR_1Y", "new": "3.05"}, {"path": "/LPR_5Y", "new": "3.55"}]}
    assert fixed["details"] == {"changes": [{"path": "/LPR_1Y", "old": "3.05", "new": "3.10"}]}

    shipped = admin.put(f"{QUOTES}/2025-05-20", json={"LPR_1Y": "3.00", "LPR_5Y": "3.45"})  # a shipped typo
    assert shipped.status_code == 200
    (correction,) = changes(admin, "?subject=2025-05-20")
    assert correction["details"] == {"changes": [{"path": "/LPR_5Y", "old": "3.50", "new": "3.45"}]}


@pytest.mark.parametrize(
    ("path", "body", "fields"),
    [
        ("2026-11-20", {"LPR_1Y": "310", "LPR_5Y": "3.60"}, {"LPR_1Y"}),  # basis points typed as percent
        ("2026-11-20", {"LPR_1Y": "3.105", "LPR_5Y": "0"}, {"LPR_1Y", "LPR_5Y"}),
        ("2026-11-20", {"LPR_1Y": "NaN", "LPR_5Y": "Infinity"}, {"LPR_1Y", "LPR_5Y"}),
        ("2026-11-20", {"LPR_1Y": "三点一", "LPR_5Y": True}, {"LPR_1Y", "LPR_5Y"}),
        ("2026-11-20", {"LPR_1Y": "3.10"}, {"LPR_5Y"}),
        ("2026-12-20", NOVEMBER, {"effective"}),  # not announced yet (the clock is at 2026-12-01)
        ("2026-13-01", NOVEMBER, {"effective"}),
    ],
)
def test_a_wrong_quote_is_refused_naming_the_field_and_nothing_is_stored(
    app: Any, path: str, body: dict[str, Any], fields: set[str]
) -> None:
    admin = login(app, "admin")
    response = admin.put(f"{QUOTES}/{path}", json=body)
    assert (response.status_code, response.mimetype) == (422, PROBLEM), response.get_json()
    named = {p["field"] for p in response.get_json()["errors"]}
    assert fields <= named, response.get_json()
    assert newest(admin)["effective"] == "2025-05-20"
    assert changes(admin, "?action=lpr.quote_set") == []


def test_only_the_provinces_administrators_enter_the_lpr(seeded: CreditFlow, app: Any) -> None:
    for username in ("ly_admin", "ly_pm", "pm", "ly_officer"):  # a bank's administrator included: it is national
        refused = login(app, username).put(f"{QUOTES}/2026-11-20", json=NOVEMBER)
        assert (refused.status_code, refused.mimetype) == (403, PROBLEM), username
    assert app.test_client().get(QUOTES).status_code == 401
    assert newest(login(app, "admin"))["effective"] == "2025-05-20"
