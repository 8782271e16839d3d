"""The recipient registry: who receives which account's notifications.

Each account has at most one primary administrator, who receives every notification and can
be replaced (`set_primary`) but never removed; other recipients subscribe to categories. The
admin API and the `sysnotify-mailer recipients` CLI both use this module on the same store.
"""

from __future__ import annotations

import builtins
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from sysnotify.mailer.catalog import CATEGORIES
from sysnotify.mailer.store import RecipientRecord, Store

_ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class RecipientError(ValueError):
    """A registry request that cannot be applied; the message says what is wrong."""


class NotFound(RecipientError):
    """The account or address is not in the registry."""


@dataclass(frozen=True)
class RegisteredRecipient:
    account: str
    address: str
    role: str  # "primary" or "subscriber"
    categories: tuple[str, ...]  # all categories for the primary

    def as_dict(self) -> dict[str, object]:
        return {"address": self.address, "role": self.role, "categories": list(self.categories)}


def validate_account(account: str) -> str:
    """Account ids as the `account` label carries them (e.g. acc-0042)."""
    if not isinstance(account, str) or not _ACCOUNT.match(account):
        raise RecipientError(f"invalid account id {account!r}: use letters, digits, and . _ : -")
    return account


def validate_address(address: object) -> str:
    """A bare address (no display name), normalised; no DNS lookup.

    :raise RecipientError: naming why the address is refused.
    """
    if not isinstance(address, str) or not address:
        raise RecipientError("address: required (a string)")
    if any(ch in address for ch in "\r\n"):
        raise RecipientError("address: must not contain line breaks")
    if "<" in address or ">" in address or " " in address.strip():
        raise RecipientError(f"address {address!r}: give the bare address, without a display name")
    try:
        return validate_email(
            address.strip(), check_deliverability=False, allow_display_name=False
        ).normalized
    except EmailNotValidError as error:
        raise RecipientError(f"address {address!r} is not valid: {error}") from None


def validate_categories(categories: Iterable[object]) -> tuple[str, ...]:
    """Known categories, deduplicated in catalog order; at least one."""
    names = list(categories)
    unknown = [str(c) for c in names if c not in CATEGORIES]
    if unknown:
        raise RecipientError(
            f"unknown categories: {', '.join(unknown)} (known: {', '.join(CATEGORIES)})"
        )
    chosen = tuple(c for c in CATEGORIES if c in names)
    if not chosen:
        raise RecipientError(
            f"choose at least one category ({', '.join(CATEGORIES)}); "
            "a recipient without categories would receive nothing"
        )
    return chosen


def _registered(record: RecipientRecord) -> RegisteredRecipient:
    categories = CATEGORIES if record.role == "primary" else record.categories
    return RegisteredRecipient(record.account, record.address, record.role, categories)


class Registry:
    """Recipient reads and writes over the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def list(self, account: str) -> list[RegisteredRecipient]:
        """The account's recipients, primary first."""
        validate_account(account)
        return [_registered(record) for record in self.store.recipients(account)]

    def add(self, account: str, address: str, categories: Iterable[object]) -> RegisteredRecipient:
        """Adds a subscriber, or replaces an existing subscriber's categories."""
        validate_account(account)
        address = validate_address(address)
        chosen = validate_categories(categories)
        with self.store.change_recipients() as tx:
            if tx.role_of(account, address) == "primary":
                raise RecipientError(
                    f"{address} is the primary administrator of {account} and "
                    "already receives every notification"
                )
            tx.put_subscriber(account, address, chosen, time.time())
        return RegisteredRecipient(account, address, "subscriber", chosen)

    def remove(self, account: str, address: str) -> None:
        """Removes a subscriber. The primary administrator cannot be removed, only replaced."""
        validate_account(account)
        address = validate_address(address)
        with self.store.change_recipients() as tx:
            role = tx.role_of(account, address)
            if role is None:
                raise NotFound(f"{address} is not a recipient of {account}")
            if role == "primary":
                raise RecipientError(
                    f"{address} is the primary administrator of {account} and cannot be "
                    "removed; make someone else primary first (set-primary), then remove it"
                )
            tx.delete(account, address)

    def set_primary(self, account: str, address: str) -> RegisteredRecipient:
        """Makes `address` the primary administrator (adding it if needed).

        The previous primary stays a recipient, subscribed to every category, so replacing
        the primary never silently stops someone's mail; remove it afterwards if wanted.
        """
        validate_account(account)
        address = validate_address(address)
        with self.store.change_recipients() as tx:
            tx.make_primary(account, address, CATEGORIES, time.time())
        return RegisteredRecipient(account, address, "primary", CATEGORIES)

    def accounts(self) -> builtins.list[str]:
        return self.store.accounts()


def receives(recipient: RecipientRecord, category: str | None, primary_only: bool) -> bool:
    """Whether a recipient gets a notification of `category`: the primary administrator
    always; a subscriber of the category unless `primary_only` (the generic notification
    goes to the primary administrator only)."""
    if recipient.role == "primary":
        return True
    return not primary_only and category is not None and category in recipient.categories
