"""Integrations disconnected and accounts offboarded: their series stop, their facts go, and
starting again publishes only facts from after that."""

from __future__ import annotations

from datetime import timedelta

from sysnotify.exporter.series import utc_day
from sysnotify.exporter.store import DAY
from sysnotify.exporter.store.sqlite import SqliteFactStore
from tests.support.exporter import (
    AUTH,
    NOW,
    NOW_DT,
    account,
    ago,
    api_usage,
    connected,
    credential,
    disconnected,
    offboarded,
    onboarded,
    ordinary,
    privacy,
    sync_finished,
    sync_started,
    ts,
    web_visits,
)

LATER = ts(NOW_DT + timedelta(minutes=5))


def series(store: SqliteFactStore, clock, account: str = "acc-1") -> list[str]:
    """The account's sample lines, without their values."""
    return [
        line.rsplit(" ", 1)[0]
        for line in ordinary(store, clock).decode().splitlines()
        if f'account="{account}"' in line
    ]


def seed(apply, acc: str = "acc-1") -> None:
    apply(
        account(acc),
        credential(acc),
        credential(acc, system="eloqua"),
        api_usage(acc),
        api_usage(acc, platform="hubspot"),
        web_visits(acc),
        sync_started(acc),
        privacy(acc),
    )


def test_a_disconnected_integration_stops_its_series_only(store, apply, clock) -> None:
    seed(apply)
    seed(apply, "acc-2")
    before = series(store, clock)
    apply(disconnected(system="salesforce"))
    after = series(store, clock)
    assert {line for line in before if "salesforce" in line} != set()
    assert [line for line in after if "salesforce" in line] == []
    assert after == [line for line in before if "salesforce" not in line]
    assert any('system="eloqua"' in line for line in after)
    assert any('platform="hubspot"' in line for line in after)
    assert any("salesforce" in line for line in series(store, clock, "acc-2"))


def test_facts_of_a_disconnected_integration_are_dropped_until_it_is_connected(
    store, apply, clock
) -> None:
    seed(apply)
    apply(disconnected())
    result = apply(credential(valid=False), api_usage(used=999))
    assert result.applied == 2
    assert not [line for line in series(store, clock) if "salesforce" in line]
    apply(connected(at=LATER))
    # A check made before the integration was connected again is old news ...
    apply(credential(valid=False, checked_at=ago(minutes=1)))
    assert not [line for line in series(store, clock) if "salesforce" in line]
    # ... one made afterwards is published.
    clock.now = NOW + 600
    apply(credential(valid=False, checked_at=ts(NOW_DT + timedelta(minutes=6))))
    assert 'abm_credential_valid{account="acc-1",system="salesforce"}' in series(store, clock)


def test_an_older_lifecycle_event_arriving_late_changes_nothing(store, apply, clock) -> None:
    seed(apply)
    apply(disconnected(at=ago(minutes=10)), connected(at=ago(minutes=5)))
    apply(disconnected(at=ago(minutes=10)))  # a replay of the first batch
    apply(credential(checked_at=ago(minutes=1)))
    assert 'abm_credential_valid{account="acc-1",system="salesforce"}' in series(store, clock)


def test_an_offboarded_account_publishes_nothing_but_its_last_event(store, apply, clock) -> None:
    seed(apply)
    seed(apply, "acc-2")
    others = series(store, clock, "acc-2")
    apply(offboarded())
    assert series(store, clock) == [
        'sysnotify_exporter_account_last_event_timestamp_seconds{account="acc-1"}'
    ]
    # Late facts are accepted and dropped, even a run's end whose start went with the account.
    result = apply(credential(valid=False), sync_finished(), web_visits(visits=5), privacy())
    assert result.applied == 4
    assert len(series(store, clock)) == 1
    assert series(store, clock, "acc-2") == others


def test_an_onboarded_account_starts_fresh(store, apply, clock) -> None:
    seed(apply)
    apply(offboarded(), onboarded(at=LATER))
    apply(account(), credential(checked_at=ago(hours=2)), web_visits(offset=-1))
    assert series(store, clock) == [
        'abm_account_info{account="acc-1",account_name="Acme Corp"}',
        'abm_privacy_optout_pending_requests{account="acc-1"}',
        'sysnotify_exporter_account_last_event_timestamp_seconds{account="acc-1"}',
    ]
    clock.now = NOW + 600
    apply(credential(checked_at=ts(NOW_DT + timedelta(minutes=6))))
    assert 'abm_credential_valid{account="acc-1",system="salesforce"}' in series(store, clock)


def test_an_offboarded_account_ages_out_and_does_not_come_back(store, apply, clock) -> None:
    seed(apply)
    apply(offboarded())
    today = utc_day(NOW) * DAY
    assert store.prune_offboarded_accounts(today, 100) == 0  # offboarded today: not yet
    # The next day: the account row; its facts went at once.
    assert store.prune_offboarded_accounts(today + DAY, 100) == 1
    assert series(store, clock) == []
    apply(credential(checked_at=ago(days=3)))  # a very late report of an old check
    assert not [line for line in series(store, clock) if line.startswith("abm_")]


def test_lifecycle_events_through_the_api(client) -> None:
    answer = client.post(
        "/api/v1/events",
        json={"events": [account(), credential(), disconnected(), offboarded("acc-2")]},
        headers=AUTH,
    )
    assert answer.status_code == 200
    assert answer.json["by_type"] == {
        "account": 1,
        "credential": 1,
        "integration_disconnected": 1,
        "account_offboarded": 1,
    }
