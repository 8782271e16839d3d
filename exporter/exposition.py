"""The /metrics fast path: the store-derived exposition, rendered once and kept until it changes.

Facts change only when a batch is applied, and series change without new facts only at time
boundaries (UTC midnight moves the web windows; an API window ending drops its calls to 0).
So the text of the store-derived families is cached and rebuilt only when the store's version
moves or the clock passes the next boundary.

The cache keeps each account's lines per family. When the batches applied since the last
render were all applied by this process (which notes the accounts each touched), only those
accounts are recomputed; a batch from another process (``sysnotify-exporter ingest`` on the
same file) or a boundary rebuilds everything. The bytes equal what ``generate_latest`` makes
of :class:`sysnotify.exporter.collector.StoreCollector` over the same facts (tests hold them to it).

One account whose facts cannot be published (see :func:`samples_or_skip`) is left out, logged
and counted in ``sysnotify_exporter_accounts_skipped``; every other account is published as
usual, and ``sysnotify_exporter_store_up`` stays 1.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client.utils import floatToGoString

from sysnotify.exporter.series import (
    FAMILIES,
    GLOBAL_FAMILIES,
    Family,
    Sample,
    UnpublishableFacts,
    account_boundary,
    next_midnight,
    publishable_samples,
    utc_day,
)
from sysnotify.exporter.store import AccountFacts, ApplyResult, FactStore

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_value(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def family_header(family: Family) -> str:
    return f"# HELP {family.name} {_escape_help(family.help)}\n# TYPE {family.name} {family.type}\n"


_HEADERS = [family_header(family).encode("utf-8") for family in FAMILIES]
_NAMES = [family.name for family in FAMILIES]
# prometheus_client writes labels sorted by name: keep (name, position) in that order.
_LABEL_ORDER = [
    sorted((name, position) for position, name in enumerate(family.labels)) for family in FAMILIES
]


def sample_line(index: int, labels: tuple[str, ...], value: float) -> str:
    """One exposition line, byte-identical to prometheus_client's generate_latest."""
    inner = ",".join(
        f'{name}="{_escape_value(labels[position])}"' for name, position in _LABEL_ORDER[index]
    )
    if inner:
        return f"{_NAMES[index]}{{{inner}}} {floatToGoString(value)}\n"
    return f"{_NAMES[index]} {floatToGoString(value)}\n"


def account_chunks(samples: Iterable[Sample]) -> list[bytes]:
    """One account's lines, grouped per family (empty where it has no series), as UTF-8."""
    chunks = [""] * len(FAMILIES)
    for index, labels, value in samples:
        chunks[index] += sample_line(index, labels, value)
    return [chunk.encode("utf-8") for chunk in chunks]


def global_text(accounts: int, skipped: int, last_event_at: float | None) -> str:
    count, skipped_family, last = GLOBAL_FAMILIES
    text = family_header(count) + f"{count.name} {floatToGoString(accounts)}\n"
    text += family_header(skipped_family)
    text += f"{skipped_family.name} {floatToGoString(skipped)}\n"
    text += family_header(last)
    if last_event_at is not None:
        text += f"{last.name} {floatToGoString(last_event_at)}\n"
    return text


def samples_or_skip(facts: AccountFacts, now: float) -> list[Sample] | None:
    """The account's series, or None (logged with the account id) when they cannot be made.

    Whatever goes wrong with one account's facts, the other accounts are published: one
    tenant's bad data must never blind the alerts of every tenant.
    """
    try:
        return publishable_samples(facts, now)
    except Exception as error:  # noqa: BLE001 - any failure is this account's alone
        log.warning(
            "account %r left out of /metrics: %s",
            facts.account,
            error,
            exc_info=not isinstance(error, UnpublishableFacts),
        )
        return None


_NOTHING = [b""] * len(FAMILIES)


class ExpositionCache:
    """Cached exposition of the store-derived families; see the module docstring."""

    def __init__(self, store: FactStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._notes_lock = threading.Lock()
        self._notes: dict[int, frozenset[str]] = {}
        self._chunks: dict[str, list[bytes]] = {}
        self._boundaries: dict[str, float] = {}
        self._skipped: set[str] = set()  # accounts left out of the exposition
        # Per family: every account's lines in account order, and their join.
        self._position: dict[str, int] = {}
        self._columns: list[list[bytes]] = []
        self._joined: list[bytes] = []
        self._version: int | None = None
        self._day: int | None = None
        self._valid_until = 0.0
        self._bytes: bytes | None = None
        self.store_up = True
        self.last_duration = 0.0
        self.full_rebuilds = 0
        self.partial_rebuilds = 0

    def note_applied(self, result: ApplyResult) -> None:
        """Called after this process applied a batch: its accounts need recomputing."""
        with self._notes_lock:
            self._notes[result.version] = result.accounts

    def invalidate(self) -> None:
        with self._lock:
            self._bytes = None
            self._version = None

    def render(self) -> bytes:
        """The store-derived exposition; empty (and store_up False) when the store fails."""
        with self._lock:
            started = time.perf_counter()
            try:
                body = self._render()
                self.store_up = True
            except Exception:
                log.exception("reading the fact store for /metrics failed")
                self.store_up = False
                self._bytes = None
                self._version = None
                body = b""
            self.last_duration = time.perf_counter() - started
            return body

    def _render(self) -> bytes:
        now = self.clock()
        today = utc_day(now)
        version = self.store.version()
        fresh = self._version is not None and now < self._valid_until
        if fresh and self._bytes is not None and version == self._version:
            return self._bytes
        dirty = None
        if self._version is not None and today == self._day:
            dirty = self._dirty_since(self._version, version)
            if dirty is not None and not fresh:
                # An API window ended: recompute the accounts whose boundary passed.
                dirty.update(a for a, boundary in self._boundaries.items() if boundary <= now)
        with self._notes_lock:  # notes up to `version` are now accounted for
            for noted in [v for v in self._notes if v <= version]:
                del self._notes[noted]
        if dirty is None or len(dirty) > max(1000, len(self._chunks) // 2):
            facts = self.store.facts(today)
            self._chunks = {}
            self._boundaries = {}
            self._skipped = set()
            for one in facts.values():
                self._compute(one, now)
            self._reorder()
            self.full_rebuilds += 1
        else:
            facts = self.store.facts(today, dirty)
            changed: set[int] = set()
            added = False
            for account, one in facts.items():
                old = self._chunks.get(account)
                chunks = self._compute(one, now)
                if old is None:
                    added = True
                else:
                    changed.update(
                        i for i, (a, b) in enumerate(zip(old, chunks, strict=True)) if a != b
                    )
            if added:
                self._reorder()
            else:
                for index in changed:
                    column = self._columns[index]
                    for account in facts:
                        column[self._position[account]] = self._chunks[account][index]
                    self._joined[index] = b"".join(column)
            self.partial_rebuilds += 1
        self._valid_until = min([next_midnight(now), *self._boundaries.values()])
        self._version = version
        self._day = today
        self._bytes = self._assemble()
        return self._bytes

    def _compute(self, facts: AccountFacts, now: float) -> list[bytes]:
        """Renders one account's lines into the cache (none when it is skipped)."""
        account = facts.account
        samples = samples_or_skip(facts, now)
        if samples is None:
            self._skipped.add(account)
            chunks = _NOTHING
            # Its facts change only with a batch; look again at the next midnight anyway.
            self._boundaries[account] = next_midnight(now)
        else:
            self._skipped.discard(account)
            chunks = account_chunks(samples)
            self._boundaries[account] = account_boundary(facts, now)
        self._chunks[account] = chunks
        return chunks

    def _reorder(self) -> None:
        order = sorted(self._chunks)
        self._position = {account: i for i, account in enumerate(order)}
        self._columns = [
            [self._chunks[account][index] for account in order] for index in range(len(FAMILIES))
        ]
        self._joined = [b"".join(column) for column in self._columns]

    def _dirty_since(self, rendered: int, version: int) -> set[str] | None:
        """Accounts touched by batches rendered+1 .. version, if this process applied them all."""
        if version < rendered:
            return None
        dirty: set[str] = set()
        with self._notes_lock:
            for applied in range(rendered + 1, version + 1):
                accounts = self._notes.get(applied)
                if accounts is None:
                    return None
                dirty.update(accounts)
        return dirty

    def _assemble(self) -> bytes:
        parts: list[bytes] = []
        for header, joined in zip(_HEADERS, self._joined, strict=True):
            parts.append(header)
            parts.append(joined)
        last_event_at = self.store.last_event_at()
        parts.append(
            global_text(len(self._chunks), len(self._skipped), last_event_at).encode("utf-8")
        )
        return b"".join(parts)
