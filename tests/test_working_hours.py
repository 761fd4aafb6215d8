"""Working hours per tenant: a bank's own hours, the province's default, the package's default, and who
may set them (API and CLI)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from engine.container import CreditFlow
from engine.services.principal import Principal
from engine.store.models import Tenant
from tests.conftest import login
from tests.test_cli import invoke
from tests.test_products import catalog, local_application  # noqa: F401 - fixture

URL = "/api/v1/admin/calendar/hours"
STRAIGHT = [["09:00", "17:00"]]
DEFAULT = [["08:30", "12:00"], ["13:30", "17:30"]]
# Tuesday 2026-12-01, 10:00 in Beijing
TUESDAY_TEN = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def beijing(day: int, hour: int, minute: int = 0) -> datetime:
    """A December 2026 wall-clock time in Beijing, as the UTC instant the calendar returns."""
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


def tenant_id(platform: CreditFlow, code: str) -> int:
    with platform.db.transaction() as session:
        return session.scalars(select(Tenant.id).where(Tenant.code == code)).one()


def four_hours_from_tuesday_ten(platform: CreditFlow, code: str) -> datetime:
    """When four working hours from Tuesday 10:00 run out on the tenant's calendar."""
    with platform.db.transaction() as session:
        calendar = platform.calendars.for_tenant(session, tenant_id(platform, code))
        return calendar.add_working_time(TUESDAY_TEN, timedelta(hours=4))


def test_a_bank_open_straight_through_gets_its_own_calendar(catalog: CreditFlow, app: Any) -> None:  # noqa: F811
    bank_admin = login(app, "ly_admin")
    assert bank_admin.get(URL).get_json() == {"periods": DEFAULT, "source": "default", "minutes_per_day": 450}

    changed = bank_admin.put(URL, json={"periods": STRAIGHT})
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json() == {"periods": STRAIGHT, "source": "bank", "minutes_per_day": 480}
    assert bank_admin.get(URL).get_json()["periods"] == STRAIGHT

    # no lunch break: 10:00 + 4 h is 14:00; the other bank still closes 12:00-13:30 and gets 15:30
    assert four_hours_from_tuesday_ten(catalog, "bank-lingyuan") == beijing(1, 14)
    assert four_hours_from_tuesday_ten(catalog, "bank-qinghe") == beijing(1, 15, 30)
    assert login(app, "qh_admin").get(URL).get_json()["source"] == "default"

    # and an application of the bank runs its time limit on them: started 09:00, PT4H is due 13:00, not 14:30
    view = local_application(catalog, {"time_limits": {"process": "PT4H"}})
    assert view.instance.due_at == beijing(1, 13)


def test_the_bank_s_own_hours_win_over_the_province_default(seeded: CreditFlow, app: Any) -> None:
    province, ly_admin, qh_admin = (login(app, u) for u in ("admin", "ly_admin", "qh_admin"))
    winter = [["08:00", "12:00"], ["14:00", "18:00"]]
    set_default = province.put(URL, json={"periods": winter})
    assert set_default.get_json() == {"periods": winter, "source": "province", "minutes_per_day": 480}
    assert province.get(URL).get_json()["source"] == "province"
    assert qh_admin.get(URL).get_json() == {"periods": winter, "source": "province", "minutes_per_day": 480}

    assert ly_admin.put(URL, json={"periods": STRAIGHT}).status_code == 200
    assert ly_admin.get(URL).get_json()["source"] == "bank"
    assert four_hours_from_tuesday_ten(seeded, "bank-lingyuan") == beijing(1, 14)
    assert four_hours_from_tuesday_ten(seeded, "bank-qinghe") == beijing(1, 16)  # 10-12, then 14-16

    # the province changing its default later still leaves the bank's own hours alone
    assert province.put(URL, json={"periods": DEFAULT}).status_code == 200
    assert ly_admin.get(URL).get_json()["periods"] == STRAIGHT
    assert four_hours_from_tuesday_ten(seeded, "bank-qinghe") == beijing(1, 15, 30)


NOT_HOURS = [
    [["08:30", "12:00"], ["11:00", "17:00"]],  # overlapping
    [["13:30", "17:30"], ["08:30", "12:00"]],  # out of order
    [["12:00", "08:30"]],  # ends before it starts
    [["08:30", "08:30"]],  # empty
    [["8am", "noon"]],
    [["25:00", "26:00"]],
    [["08:30"]],
    [["08:30", "12:00", "13:30"]],
    [[830, 1200]],
    [],
    "08:30-17:30",
    None,
]


def test_periods_that_are_no_working_hours_are_a_422_naming_periods(app: Any) -> None:
    bank_admin = login(app, "ly_admin")
    for periods in NOT_HOURS:
        refused = bank_admin.put(URL, json={"periods": periods})
        assert refused.status_code == 422, (periods, refused.get_json())
        assert refused.content_type == "application/problem+json"
        assert {error["field"].split("[")[0] for error in refused.get_json()["errors"]} == {"periods"}, periods
    assert bank_admin.put(URL, json={}).get_json()["errors"][0]["field"] == "periods"
    assert bank_admin.get(URL).get_json()["source"] == "default"  # nothing was written


def test_only_administrators_set_hours_and_only_for_their_own_bank(seeded: CreditFlow, app: Any) -> None:
    for username in ("ly_officer", "ly_branch_head", "ly_risk"):
        staff = login(app, username)
        assert staff.get(URL).status_code == 403, username
        assert staff.put(URL, json={"periods": STRAIGHT}).status_code == 403, username

    assert login(app, "qh_admin").put(URL, json={"periods": STRAIGHT}).status_code == 200
    assert login(app, "qh_admin").get(URL).get_json()["source"] == "bank"
    assert login(app, "ly_admin").get(URL).get_json()["source"] == "default"
    assert login(app, "admin").get(URL).get_json()["source"] == "default"  # the province default is untouched
    assert four_hours_from_tuesday_ten(seeded, "bank-lingyuan") == beijing(1, 15, 30)


def test_the_command_line_sets_the_province_default_or_one_bank_s_hours(
    seeded: CreditFlow, app: Any, settings: Any, monkeypatch: Any
) -> None:
    default = invoke(settings, monkeypatch, "calendar", "hours", "08:00-12:00", "14:00-18:00")
    assert default.exit_code == 0, default.output
    assert "every bank: 08:00-12:00 14:00-18:00 (480 minutes a day)" in default.output
    bank = invoke(settings, monkeypatch, "calendar", "hours", "9:00-17:00", "--tenant", "bank-lingyuan")
    assert bank.exit_code == 0, bank.output
    assert "bank-lingyuan: 09:00-17:00" in bank.output

    assert login(app, "ly_admin").get(URL).get_json()["periods"] == STRAIGHT
    assert login(app, "qh_admin").get(URL).get_json()["source"] == "province"

    overlapping = invoke(settings, monkeypatch, "calendar", "hours", "08:30-12:00", "11:00-17:00")
    assert overlapping.exit_code == 1 and "periods" in overlapping.output
    garbage = invoke(settings, monkeypatch, "calendar", "hours", "0830")
    assert garbage.exit_code == 1 and "['0830'] is not a [start, end] pair" in garbage.output
    unknown = invoke(settings, monkeypatch, "calendar", "hours", "09:00-17:00", "--tenant", "bank-nowhere")
    assert unknown.exit_code == 1 and "tenant" in unknown.output


def test_a_change_another_node_makes_reaches_this_one_within_a_minute(
    seeded: CreditFlow, settings: Any, clock: Any, connectors: Any
) -> None:
    """The CLI beside the server, or another node, changes the database: the cache must not keep the
    old hours (or a year not yet entered) until a restart."""
    assert four_hours_from_tuesday_ten(seeded, "bank-lingyuan") == beijing(1, 15, 30)  # cached here
    other_node = CreditFlow(settings, clock=clock, connectors=connectors)
    try:
        other_node.calendars.set_hours(Principal.system(), STRAIGHT, "bank-lingyuan")
    finally:
        other_node.close()
    clock.advance(timedelta(seconds=59))
    assert four_hours_from_tuesday_ten(seeded, "bank-lingyuan") == beijing(1, 15, 30)  # still the cached one
    clock.advance(timedelta(seconds=1))
    assert four_hours_from_tuesday_ten(seeded, "bank-lingyuan") == beijing(1, 14)
