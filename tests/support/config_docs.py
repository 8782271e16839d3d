"""Reading what the example config files and the documentation say about each config key, to
compare it with the services' declarations (sysnotify/settings.py).

An example file documents each key in a comment right above it, starting with `Required` or
`Optional (default: X).`; optional keys without a value worth showing are commented out
(`# token_file: /etc/...`). A documentation table has one key per row (`key | required |
default | ...`), or in the README's summary tables several keys per row, separated by ` / `,
with their defaults in the same order.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from sysnotify.settings import DocumentedKey, Section

_DOC = re.compile(r"^(?:(?P<required>Required)\b|Optional \(default: (?P<default>.*?)\)\.)")
_KEY = re.compile(r"^(?P<key>[a-z_]+):(?: |$)")
_KEY_TOKEN = re.compile(r"^[a-z_]+(?:\.[a-z_]+)*(?:\.<[a-z_]+>)?$")


@dataclass(frozen=True)
class ExampleKey:
    key: str  # dotted path
    required: bool | None  # None: no Required/Optional comment right above it
    default: str | None  # the text after "default: ", for optional keys
    commented_out: bool
    line: int


def example_keys(text: str, sections: Collection[str]) -> list[ExampleKey]:
    """Every key of an example config file, set or commented out, with its comment.

    :param sections: the dotted paths of the declared sections, whose keys are nested; any
        other key's nested lines are its value (map entries, list items) and are skipped.
    """
    keys: list[ExampleKey] = []
    open_sections: list[tuple[int, str]] = []  # (indent, name) of the sections around a line
    doc: tuple[bool, str | None] | None = None
    value_indent: int | None = None  # the lines deeper than this are a key's value
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        if value_indent is not None and indent > value_indent:
            continue
        value_indent = None
        body = line.strip()
        commented_out = body.startswith("#")
        if commented_out:
            body = body[1:].strip()
            found = _DOC.match(body)
            if found:
                doc = (bool(found["required"]), found["default"])
                continue
        key = _KEY.match(body)
        if not key:
            continue  # a comment's prose
        while open_sections and open_sections[-1][0] >= indent:
            open_sections.pop()
        path = ".".join([name for _, name in open_sections] + [key["key"]])
        if path in sections and not commented_out:
            open_sections.append((indent, key["key"]))
            continue
        keys.append(
            ExampleKey(
                key=path,
                required=doc[0] if doc else None,
                default=doc[1] if doc else None,
                commented_out=commented_out,
                line=number,
            )
        )
        doc = None
        value_indent = indent
    return keys


def section_paths(section: Section, prefix: str = "") -> Iterator[str]:
    """The dotted paths of `section`'s nested sections (not of itself when it is the root)."""
    for entry in section.entries:
        if isinstance(entry, Section):
            path = f"{prefix}.{entry.name}" if prefix else entry.name
            yield path
            yield from section_paths(entry, path)


def example_mismatches(text: str, declaration: Section) -> list[str]:
    """How an example file disagrees with the declaration: keys missing, unknown, shown
    twice or without their comment; required-ness and defaults other than declared."""
    declared = {key.key: key for key in declaration.documented_keys()}
    found = example_keys(text, set(section_paths(declaration)))
    problems = []
    seen: set[str] = set()
    for example in found:
        where = f"line {example.line}: {example.key}"
        if example.key in seen:
            problems.append(f"{where}: shown twice")
        seen.add(example.key)
        expected = declared.get(example.key)
        if expected is None:
            problems.append(f"{where}: not a declared key")
        elif example.required is None:
            problems.append(f"{where}: no 'Required.' or 'Optional (default: X).' comment above")
        elif example.required != expected.required:
            problems.append(
                f"{where}: documented as {_required(example.required)}, declared "
                f"{_required(expected.required)}"
            )
        elif not example.required and example.default != expected.default:
            problems.append(
                f"{where}: documented default {example.default!r}, declared {expected.default!r}"
            )
        elif example.required and example.commented_out:
            problems.append(f"{where}: required but commented out")
    for key in declared:
        if key not in seen:
            problems.append(f"{key}: declared but not in the example")
    return problems


def _required(required: bool) -> str:
    return "required" if required else "optional"


# -- Markdown tables ----------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    heading: str  # the nearest heading above the table
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def markdown_tables(text: str) -> list[Table]:
    tables: list[Table] = []
    heading = ""
    lines: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            lines.append(line)
            continue
        if lines:
            cells = [_cells(row) for row in lines]
            tables.append(Table(heading, tuple(cells[0]), tuple(tuple(c) for c in cells[2:])))
            lines = []
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
    return tables


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip()[1:-1])]


def config_table(text: str, heading: str | None = None) -> Table:
    """The one table with `key`/`setting`, `required` and `default` columns (under `heading`)."""
    [table] = [
        t
        for t in markdown_tables(text)
        if t.columns[:3] in (("key", "required", "default"), ("setting", "required", "default"))
        and (heading is None or t.heading == heading)
    ]
    return table


def table_mismatches(
    table: Table, declaration: Section, complete: bool, check_required: bool = True
) -> list[str]:
    """How a documentation table disagrees with the declaration.

    Its first column names keys in backquotes (`smtp.timeout`, `dedup.receiver_windows.<name>`;
    other backquoted words such as variables and flags are ignored), several separated by
    ` / `; its default column gives their defaults in the same order, or nothing when none
    has one. `complete`: every declared key must have a row.
    """
    declared = {key.key: key for key in declaration.documented_keys()}
    problems = []
    seen: set[str] = set()
    for row in table.rows:
        keys = [
            _declared_name(token)
            for token in re.findall(r"`([^`]+)`", row[0])
            if _KEY_TOKEN.match(token)
        ]
        if not keys:
            problems.append(f"row {row[0]!r}: names no key")
            continue
        defaults = [part.replace("`", "").strip() for part in row[2].split(" / ")]
        if defaults == [""]:
            defaults = [""] * len(keys)
        if len(defaults) != len(keys):
            problems.append(f"row {row[0]!r}: {len(keys)} keys but {len(defaults)} defaults")
            continue
        for key, default in zip(keys, defaults, strict=True):
            seen.add(key)
            expected = declared.get(key)
            if expected is None:
                problems.append(f"{key}: not a declared key")
                continue
            if check_required and (row[1] == "yes") != expected.required:
                problems.append(
                    f"{key}: required is {row[1]!r}, declared {_required(expected.required)}"
                )
            if not expected.required and (default or "none") != expected.default:
                problems.append(f"{key}: default {default!r}, declared {_shown(expected)!r}")
    if complete:
        problems.extend(
            f"{key}: declared but not in the table" for key in declared if key not in seen
        )
    return problems


def _declared_name(token: str) -> str:
    return re.sub(r"\.<[a-z_]+>$", "", token)


def _shown(key: DocumentedKey) -> str:
    return "" if key.default == "none" else key.default
