"""A simulated ABM platform: plausible events for N accounts, reproducible from a seed.

Each account gets a name, one or two connected systems with their credential checks, API-usage
snapshots per platform, daily per-page web-tag visits over the history (a weekday/weekend
rhythm, a few popular pages and a long tail), daily sync runs and privacy opt-out requests.
About one account in eight is in one trouble state, so every customer alert has something to
fire on: a password about to expire or expired, a failed validation, an API allowance used up,
web visits dropped, few pages tracked, a sync running too long or failing, opt-outs waiting.

The output depends only on (seed, accounts, days, now); each account is drawn from its own
random stream, so ``account_events(i)`` is the same whatever else is generated.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sysnotify.exporter.events import EXPIRING_SYSTEMS, day_to_iso
from sysnotify.exporter.series import utc_day
from sysnotify.exporter.store import DAY

# Monday .. Sunday: business sites see far fewer visits at the weekend.
WEEKDAY_FACTOR = (1.1, 1.15, 1.12, 1.05, 0.95, 0.38, 0.32)
TROUBLES = (
    "credential_expiring",
    "credential_expired",
    "validation_failed",
    "api_limit",
    "visits_dropped",
    "tag_stopped",
    "few_pages",
    "sync_running_long",
    "sync_failing",
    "privacy_pending",
)
TROUBLE_SHARE = 0.125
MAX_PAGES = 40
SYNC_HISTORY_DAYS = 7

_ADJECTIVES = (
    "Blue",
    "Bright",
    "North",
    "Summit",
    "Silver",
    "Iron",
    "Clear",
    "Rapid",
    "Prime",
    "Atlas",
    "Harbor",
    "Cedar",
    "Polar",
    "Vivid",
    "Solid",
    "Nimble",
    "Lucid",
    "Amber",
)
_NOUNS = (
    "Analytics",
    "Logistics",
    "Robotics",
    "Health",
    "Software",
    "Energy",
    "Finance",
    "Networks",
    "Foods",
    "Labs",
    "Systems",
    "Media",
    "Capital",
    "Devices",
    "Cloud",
)
_SUFFIXES = ("Inc.", "GmbH", "Ltd", "S.A.", "LLC", "AG", "B.V.", "Corp.")
_SECTIONS = (
    "product",
    "solutions",
    "pricing",
    "blog",
    "customers",
    "resources",
    "docs",
    "careers",
    "about",
    "events",
    "partners",
    "webinars",
    "integrations",
    "security",
)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Simulator:
    """Events of `accounts` simulated accounts over `days` days of history before `now`."""

    seed: int = 1
    accounts: int = 100
    days: int = 35
    now: float = 0.0

    def account_id(self, index: int) -> str:
        return f"acc-{index:05d}"

    def trouble(self, index: int) -> str | None:
        """The account's trouble state, if any (also the demo's way to find one)."""
        rng = random.Random(f"{self.seed}:trouble:{index}")
        return rng.choice(TROUBLES) if rng.random() < TROUBLE_SHARE else None

    def events(self) -> Iterator[dict[str, Any]]:
        for index in range(1, self.accounts + 1):
            yield from self.account_events(index)

    def account_events(self, index: int) -> Iterator[dict[str, Any]]:
        rng = random.Random(f"{self.seed}:account:{index}")
        account = self.account_id(index)
        trouble = self.trouble(index)
        now = self.now
        today = utc_day(now)
        name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {rng.choice(_SUFFIXES)}"
        yield {"type": "account", "account": account, "name": name}

        systems = self._systems(rng, trouble)
        yield from self._credentials(rng, account, systems, trouble)
        yield from self._api_usage(rng, account, systems, trouble)
        yield from self._web_visits(rng, account, today, trouble)
        yield from self._syncs(rng, account, today, trouble)
        yield from self._privacy(rng, account, trouble)

    # -- the parts -------------------------------------------------------------------------

    @staticmethod
    def _systems(rng: random.Random, trouble: str | None) -> list[str]:
        crm = "salesforce" if rng.random() < 0.7 else "hubspot"
        systems = [crm]
        if rng.random() < 0.65:
            systems.append(rng.choice(("marketo", "eloqua", "pardot")))
        if trouble in ("credential_expiring", "credential_expired") and not (
            set(EXPIRING_SYSTEMS) & set(systems)
        ):
            systems[0] = "salesforce"
        return systems

    def _credentials(
        self, rng: random.Random, account: str, systems: list[str], trouble: str | None
    ) -> Iterator[dict[str, Any]]:
        now = self.now
        troubled = next((s for s in systems if s in EXPIRING_SYSTEMS), systems[0])
        for system in systems:
            event: dict[str, Any] = {"type": "credential", "account": account, "system": system}
            changed_days = rng.uniform(1, 75)
            valid = True
            if system in EXPIRING_SYSTEMS:
                policy = "expire_90_days" if rng.random() < 0.6 else "never_expire"
                if system == troubled and trouble == "credential_expiring":
                    policy, changed_days = "expire_90_days", rng.uniform(77, 89.5)
                elif system == troubled and trouble == "credential_expired":
                    policy, changed_days, valid = "expire_90_days", rng.uniform(91, 110), False
                event["policy"] = policy
                event["password_changed_at"] = iso(now - changed_days * DAY)
            else:
                event["policy"] = "no_rotation"
            if system == troubled and trouble == "validation_failed":
                valid = False
            event["valid"] = valid
            event["checked_at"] = iso(now - rng.uniform(60, 3600))
            yield event

    def _api_usage(
        self, rng: random.Random, account: str, systems: list[str], trouble: str | None
    ) -> Iterator[dict[str, Any]]:
        now = self.now
        for position, platform in enumerate(systems):
            limit = rng.choice((5_000, 15_000, 25_000, 50_000, 100_000))
            # Each platform's window starts at its own hour; the current one began before now.
            offset = rng.randrange(24) * 3600
            window_start = ((now - offset) // DAY) * DAY + offset
            elapsed = (now - window_start) / DAY
            yesterday = int(limit * rng.uniform(0.2, 0.8))
            yield {
                "type": "api_usage",
                "account": account,
                "platform": platform,
                "used": yesterday,
                "limit": limit,
                "window_start": iso(window_start - DAY),
            }
            used = int(limit * rng.uniform(0.05, 0.7) * max(elapsed, 0.05))
            if trouble == "api_limit" and position == 0:
                used = limit + rng.randrange(0, limit // 50 + 1)
            yield {
                "type": "api_usage",
                "account": account,
                "platform": platform,
                "used": used,
                "limit": limit,
                "window_start": iso(window_start),
            }

    def _web_visits(
        self, rng: random.Random, account: str, today: int, trouble: str | None
    ) -> Iterator[dict[str, Any]]:
        if rng.random() < 0.04 and trouble not in ("visits_dropped", "tag_stopped", "few_pages"):
            return  # no web tag installed
        pages = 3 + int((MAX_PAGES - 3) * rng.random() ** 2)
        daily = math.exp(rng.gauss(math.log(120), 0.9))  # visits per weekday, all pages
        weights = [1.0 / (rank + 1) ** 1.1 for rank in range(pages)]
        total = sum(weights)
        shares = [w / total for w in weights]
        paths = ["/"] + [
            f"/{rng.choice(_SECTIONS)}/{rng.randrange(1000)}" for _ in range(pages - 1)
        ]
        paths = list(dict.fromkeys(paths))  # a repeated path is one page
        if trouble == "few_pages":
            active_pages_recently = rng.randint(1, 3)
        first = today - self.days
        stop_day = today - rng.randint(2, 5) if trouble == "tag_stopped" else None
        hour_fraction = (self.now % DAY) / DAY
        for day in range(first, today + 1):
            factor = WEEKDAY_FACTOR[(day + 3) % 7]  # 1970-01-01 was a Thursday
            if day == today:
                factor *= hour_fraction
            if day >= today - 7:
                if trouble == "visits_dropped":
                    factor *= 0.2
                if stop_day is not None and day >= stop_day:
                    continue
            iso_day = day_to_iso(day)
            for rank, path in enumerate(paths):
                if trouble == "few_pages" and day >= today - 7 and rank >= active_pages_recently:
                    continue
                mean = daily * factor * shares[rank]
                visits = int(max(0.0, rng.gauss(mean, math.sqrt(mean)) if mean > 0 else 0) + 0.5)
                if visits:
                    yield {
                        "type": "web_visits",
                        "account": account,
                        "day": iso_day,
                        "page": path,
                        "visits": visits,
                    }

    def _syncs(
        self, rng: random.Random, account: str, today: int, trouble: str | None
    ) -> Iterator[dict[str, Any]]:
        now = self.now
        hour = rng.randrange(24) * 3600 + rng.randrange(60) * 60
        if trouble == "sync_running_long":  # the latest run began 3 to 6 hours ago
            hour = int(now - rng.uniform(3, 6) * 3600) % DAY
        typical = rng.uniform(8, 45) * 60
        history = min(self.days, SYNC_HISTORY_DAYS)
        for day in range(today - history, today + 1):
            started = day * DAY + hour
            if started > now:
                break
            run_id = f"{account}-sync-{day_to_iso(day)}"
            yield {"type": "sync_started", "account": account, "run_id": run_id, "at": iso(started)}
            latest = day == today or started + DAY > now
            if latest and trouble == "sync_running_long":
                continue  # still running, hours past its usual duration
            finished = started + typical * rng.uniform(0.8, 1.3)
            if finished > now:
                continue  # the run of today is under way
            failing = trouble == "sync_failing" and day >= today - 2
            status = "failed" if failing or rng.random() < 0.01 else "success"
            yield {
                "type": "sync_finished",
                "account": account,
                "run_id": run_id,
                "at": iso(finished),
                "status": status,
            }

    def _privacy(
        self, rng: random.Random, account: str, trouble: str | None
    ) -> Iterator[dict[str, Any]]:
        now = self.now
        requests = rng.choice((0, 0, 1, 1, 2, 3))
        for number in range(requests):
            received = now - rng.uniform(1, self.days) * DAY
            request_id = f"{account}-optout-{number + 1}"
            yield {
                "type": "privacy_optout",
                "account": account,
                "request_id": request_id,
                "received_at": iso(received),
                "status": "pending",
            }
            if received < now - 2 * DAY:
                yield {
                    "type": "privacy_optout",
                    "account": account,
                    "request_id": request_id,
                    "received_at": iso(received),
                    "status": "completed",
                }
        if trouble == "privacy_pending":
            for number in range(rng.randint(1, 4)):
                received = now - rng.uniform(8, 20) * DAY
                yield {
                    "type": "privacy_optout",
                    "account": account,
                    "request_id": f"{account}-optout-open-{number + 1}",
                    "received_at": iso(received),
                    "status": "pending",
                }
