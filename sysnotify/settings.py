"""Configuration declared once per key, read with every problem named at once.

A service declares its configuration as a tree of :class:`Section` objects holding
:class:`Setting` objects. Each setting says, in one place, its YAML key, its kind (type,
bounds, choices), its default, whether it is required or secret, and what it means. From
that one declaration come:

- the reading: :class:`Reader` walks the YAML document, converts and checks each value, and
  collects every problem (each naming its key) instead of stopping at the first; unknown keys
  are problems too, because a typo must not silently fall back to a default;
- the defaults of the frozen dataclasses the service's code uses (:meth:`Section.field`);
- what the shipped example files and the documentation tables are checked against
  (:meth:`Section.documented_keys`).

Secrets never need to be written in the YAML file: each is read from an environment variable,
else from the file named by ``<VARIABLE>_FILE``, else from the file named by its ``*_file``
key (relative to the config file), and only for some services from the YAML value itself.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


class ConfigError(ValueError):
    """The configuration is invalid; `problems` lists every fault, each naming its key.

    Each service subclasses it to name itself in the message (`what`).
    """

    what = "configuration"

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"invalid {self.what}:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like "250ms", "90s", "15m", "1h", "7d", "1w"."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 15m, 1h, 7d)")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


def is_hex_colour(value: str) -> bool:
    """`#rgb` or `#rrggbb`: the only colours safe to put into CSS and HTML attributes."""
    return bool(_HEX_COLOUR.match(value))


def is_http_url(value: str) -> bool:
    """An absolute http(s) URL with a host, such as a link in an email must be."""
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unbalanced "[" in the host
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def read_yaml(path: Path, error: type[ConfigError]) -> Any:
    """The parsed YAML document at `path`.

    :raise error: naming the file when it cannot be read or is not YAML.
    """
    try:
        return yaml.safe_load(path.read_text())
    except OSError as failure:
        raise error([f"{path}: cannot read: {failure.strerror or failure}"]) from None
    except yaml.YAMLError as failure:
        raise error([f"{path}: not valid YAML: {failure}"]) from None


# -- kinds: what a value must look like, and what it becomes ------------------------------


class Invalid(Exception):
    """Raised by a kind for a value it refuses; the message says why (after "key: ")."""


class Kind:
    """The type of a setting: checks a YAML value and converts it for the dataclass."""

    # Whether an empty string means "not set" (for paths: "" would name the directory of
    # the config file, or an unnamed SQLite database).
    empty_is_unset = False

    def convert(self, value: Any, key: str, reader: Reader) -> Any:
        """The value as the service uses it.

        :raise Invalid: with the problem; kinds holding several values (maps, lists) report
            each bad entry to `reader` themselves, under its own key.
        """
        raise NotImplementedError

    def show(self, default: Any) -> str:
        """A default as the example files and documentation write it."""
        if default is None or default == "" or default == {} or default == []:
            return "none"
        if isinstance(default, bool):
            return "true" if default else "false"
        return str(default)


@dataclass(frozen=True)
class Text(Kind):
    """A string. `check` returns what is wrong with a string, or None when it is fine."""

    expected: str = "a string"
    check: Callable[[str], str | None] | None = None

    def convert(self, value: Any, key: str, reader: Reader) -> Any:
        if not isinstance(value, str):
            raise Invalid(f"must be {self.expected}")
        problem = self.check(value) if self.check else None
        if problem:
            raise Invalid(problem)
        return value


@dataclass(frozen=True)
class Colour(Text):
    """A hex colour (`#rgb` or `#rrggbb`): it goes into CSS and HTML attributes."""

    def convert(self, value: Any, key: str, reader: Reader) -> Any:
        value = super().convert(value, key, reader)
        if not is_hex_colour(value):
            raise Invalid(f"{value!r} is not a hex colour like #1f4e79 or #fff")
        return value


@dataclass(frozen=True)
class Url(Text):
    """An absolute http(s) URL with a host; the empty string too when `optional`."""

    optional: bool = False

    def convert(self, value: Any, key: str, reader: Reader) -> Any:
        value = super().convert(value, key, reader)
        if not (value == "" and self.optional) and not is_http_url(value):
            raise Invalid(f"{value!r} is not an absolute http(s) URL with a host")
        return value


@dataclass(frozen=True)
class Choice(Kind):
    """One string of a closed set."""

    choices: tuple[str, ...]

    def convert(self, value: Any, key: str, reader: Reader) -> Any:
        if not isinstance(value, str):
            raise Invalid("must be a string")
        if value not in self.choices:
            raise Invalid(f"must be one of {', '.join(self.choices)}")
        return value


@dataclass(frozen=True)
class Integer(Kind):
    """A whole number within bounds (true and false are not numbers, whatever YAML says).

    `expected` and `out_of_range` replace the standard wording where a service has its own.
    """

    minimum: int
    maximum: int | None = None
    expected: str = "an integer"
    out_of_range: str | None = None

    def convert(self, value: Any, key: str, reader: Reader) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"must be {self.expected}")
        if value < self.minimum or (self.maximum is not None and value > self.maximum):
            if self.out_of_range:
                raise Invalid(self.out_of_range)
            if self.maximum is None:
                raise Invalid(f"must be >= {self.minimum}")
            raise Invalid(f"must be between {self.minimum} and {self.maximum}")
        return value


@dataclass(frozen=True)
class Flag(Kind):
    """true or false."""

    def convert(self, value: Any, key: str, reader: Reader) -> Any:
        if not isinstance(value, bool):
            raise Invalid("must be true or false")
        return value


@dataclass(frozen=True)
class Duration(Kind):
    """Seconds (a float), written as a number or like "30s", "15m", "1h", "7d"."""

    minimum: float = 0.0
    out_of_range: str | None = None  # replaces the standard wording, as for Integer

    def convert(self, value: Any, key: str, reader: Reader) -> Any:
        try:
            seconds = parse_duration(value)
        except ValueError as error:
            raise Invalid(str(error)) from None
        if seconds < self.minimum:
            raise Invalid(self.out_of_range or f"must be at least {self.minimum:g}s")
        return seconds


@dataclass(frozen=True)
class FilePath(Kind):
    """A path (a pathlib.Path); a relative one is relative to the config file."""

    empty_is_unset = True

    def convert(self, value: Any, key: str, reader: Reader) -> Any:
        if not isinstance(value, str):
            raise Invalid("must be a string")
        return reader.resolve(value)


@dataclass(frozen=True)
class Directory(FilePath):
    """A directory that exists; relative to the config file."""

    def convert(self, value: Any, key: str, reader: Reader) -> Any:
        path = super().convert(value, key, reader)
        if not path.is_dir():
            raise Invalid(f"{path} is not a directory")
        return path


@dataclass(frozen=True)
class MapOf(Kind):
    """A mapping of names chosen by the operator to values of one kind (`key.name: ...`)."""

    values: Kind

    def convert(self, value: Any, key: str, reader: Reader) -> Any:
        if not isinstance(value, dict):
            raise Invalid("must be a mapping")
        converted = {}
        for name, entry in value.items():
            entry_value = reader.convert(self.values, entry, f"{key}.{name}")
            if entry_value is not _INVALID:
                converted[str(name)] = entry_value
        return converted


@dataclass(frozen=True)
class ListOf(Kind):
    """A list of values of one kind (`key[index]: ...`), kept as a tuple."""

    items: Kind

    def convert(self, value: Any, key: str, reader: Reader) -> Any:
        if not isinstance(value, list):
            raise Invalid("must be a list")
        converted = (
            reader.convert(self.items, item, f"{key}[{index}]") for index, item in enumerate(value)
        )
        return tuple(item for item in converted if item is not _INVALID)


@dataclass(frozen=True)
class Secret(Kind):
    """A secret: from the environment variable `env`, else the file `<env>_FILE` names, else
    the file the `file_key` setting names, else (when `inline`) the YAML value itself.

    `name` is how a missing secret is called in the problem ("webhook token"). Once the
    environment provides the secret, the config's keys for it are not read at all.
    """

    env: str
    file_key: str
    name: str
    inline: bool = False
    min_length: int = 0
    file_expected: str = "a string"

    def convert(self, value: Any, key: str, reader: Reader) -> Any:
        if not isinstance(value, str):
            raise Invalid("must be a string")
        if len(value) < self.min_length:
            raise Invalid(f"must be at least {self.min_length} characters")
        return value


_INVALID = object()  # what Reader.convert returns after reporting a problem


# -- the declaration ----------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One key of the configuration.

    :param key: the YAML key (for a secret: the name of the value; see `yaml_keys`).
    :param default: as it would be written in YAML (durations as "30s"); the kind converts it.
    :param attribute: the dataclass field it fills, when not named like the key.
    :param shown_default: how documentation writes a default that is not a plain value
        (e.g. "product_name" for a name that defaults to another setting).
    """

    key: str
    kind: Kind
    meaning: str
    default: Any = None
    required: bool = False
    attribute: str = ""
    shown_default: str | None = None

    @property
    def field_name(self) -> str:
        return self.attribute or self.key

    @property
    def secret(self) -> bool:
        return isinstance(self.kind, Secret)

    def yaml_keys(self) -> tuple[str, ...]:
        """The keys this setting may be written under in the YAML file."""
        if isinstance(self.kind, Secret):
            inline = (self.key,) if self.kind.inline else ()
            return (*inline, self.kind.file_key)
        return (self.key,)

    def default_value(self) -> Any:
        """The default as the service uses it (converted by the kind, so it obeys the bounds)."""
        if self.default is None:
            return None
        reader = Reader()
        value = reader.convert(self.kind, self.default, self.key)
        if reader.problems:
            raise ValueError(f"declared default of {self.key}: {'; '.join(reader.problems)}")
        return value

    def default_text(self) -> str:
        """The default as the example files and the documentation write it."""
        if self.shown_default is not None:
            return self.shown_default
        return self.kind.show(self.default)


@dataclass(frozen=True)
class Section:
    """A mapping in the YAML file: settings and nested sections.

    :param required: the whole section must be present (its required keys are listed).
    :param unknown: how unknown keys are reported; `{where}` is the section's path (or "top
        level"), `{unknown}` and `{known}` are comma-separated keys.
    """

    name: str
    entries: tuple[Setting | Section, ...]
    required: bool = False
    unknown: str = "{where}: unknown keys: {unknown}"

    def setting(self, field_name: str) -> Setting:
        for entry in self.entries:
            if isinstance(entry, Setting) and entry.field_name == field_name:
                return entry
        raise KeyError(f"{self.name or 'top level'} declares no {field_name}")

    def settings(self) -> tuple[Setting, ...]:
        return tuple(entry for entry in self.entries if isinstance(entry, Setting))

    def default(self, field_name: str) -> Any:
        """The declared default of a setting, converted, by its dataclass field name."""
        return self.setting(field_name).default_value()

    def field(self, field_name: str) -> Any:
        """A dataclass field with the declared default; secrets are kept out of repr()."""
        setting = self.setting(field_name)
        default = setting.default_value()
        if isinstance(default, dict | list):
            return dataclasses.field(
                default_factory=lambda: type(default)(default), repr=not setting.secret
            )
        return dataclasses.field(default=default, repr=not setting.secret)

    def yaml_keys(self) -> list[str]:
        keys: list[str] = []
        for entry in self.entries:
            keys.extend(entry.yaml_keys() if isinstance(entry, Setting) else (entry.name,))
        return keys

    def documented_keys(self, prefix: str = "") -> Iterator[DocumentedKey]:
        """Every YAML key under this section (dotted), as the documentation must describe it.

        The keys of a secret are never required themselves: the environment may hold it.
        """
        path = f"{prefix}.{self.name}" if prefix and self.name else prefix or self.name
        for entry in self.entries:
            if isinstance(entry, Section):
                yield from entry.documented_keys(path)
                continue
            for key in entry.yaml_keys():
                yield DocumentedKey(
                    key=f"{path}.{key}" if path else key,
                    required=entry.required and not entry.secret,
                    default=entry.default_text(),
                    meaning=entry.meaning,
                    setting=entry,
                )


@dataclass(frozen=True)
class DocumentedKey:
    key: str  # dotted path, e.g. "smtp.timeout"
    required: bool
    default: str  # as `Setting.default_text`
    meaning: str
    setting: Setting


def dataclass_mismatches(section: Section, cls: type, extra: Collection[str] = ()) -> list[str]:
    """How the dataclass `cls` differs from `section`'s settings: fields missing on either
    side, and defaults that are not the declared ones. `extra` names fields that are
    not settings of the section (e.g. nested sections)."""
    problems = []
    fields = {f.name: f for f in dataclasses.fields(cls)}
    declared = {setting.field_name: setting for setting in section.settings()}
    for name in sorted(set(declared) - set(fields)):
        problems.append(f"{cls.__name__} has no field {name}")
    for name in sorted(set(fields) - set(declared) - set(extra)):
        problems.append(f"{section.name or 'top level'} declares no {name}")
    for name in sorted(set(fields) & set(declared)):
        field, setting = fields[name], declared[name]
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = dataclasses.MISSING
        # A required setting has no default, or None where its service checks it later.
        allowed = (dataclasses.MISSING, None) if setting.required else (setting.default_value(),)
        if default not in allowed:
            problems.append(
                f"{cls.__name__}.{name} defaults to {default!r}, declared {allowed[0]!r}"
            )
        if field.repr == setting.secret:
            problems.append(f"{cls.__name__}.{name}: repr must be {not setting.secret}")
    return problems


# -- reading ------------------------------------------------------------------------------


class Reader:
    """Reads a YAML document against a declaration, collecting every problem.

    :param env: where secrets are looked up.
    :param base_dir: what relative paths are relative to (the config file's directory);
        None leaves them as written.
    :param waived: dotted keys whose `required` is not enforced here (a caller checks them
        later, or does not need them).
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        base_dir: Path | None = None,
        waived: Collection[str] = (),
    ) -> None:
        self.env: Mapping[str, str] = env or {}
        self.base_dir = base_dir
        self.waived = frozenset(waived)
        self.problems: list[str] = []

    def problem(self, key: str, text: str) -> None:
        self.problems.append(f"{key}: {text}" if key else text)

    def resolve(self, path: str) -> Path:
        resolved = Path(path)
        if self.base_dir is None or resolved.is_absolute():
            return resolved
        return self.base_dir / resolved

    def convert(self, kind: Kind, value: Any, key: str) -> Any:
        """`value` converted by `kind`, or _INVALID after reporting why under `key`."""
        try:
            return kind.convert(value, key, self)
        except Invalid as error:
            self.problem(key, str(error))
            return _INVALID

    def read(self, section: Section, raw: Any, prefix: str = "") -> dict[str, Any]:
        """The section's values by dataclass field name (nested sections by their name).

        A missing or invalid value reads as its default, so checks across settings still
        see sane values; the problems say what was wrong.
        """
        path = f"{prefix}.{section.name}" if prefix and section.name else prefix or section.name
        if raw is None:
            if section.required:
                required = [s.key for s in section.settings() if s.required]
                self.problem(path, f"required ({', '.join(required)})")
            raw = {}
        if not isinstance(raw, dict):
            self.problem(path or "top level", "must be a mapping")
            raw = {}
        values: dict[str, Any] = {}
        for entry in section.entries:
            if isinstance(entry, Section):
                values[entry.name] = self.read(entry, raw.get(entry.name), path)
            elif isinstance(entry.kind, Secret):
                values[entry.field_name] = self._secret(entry, entry.kind, raw, path)
            else:
                values[entry.field_name] = self._setting(entry, raw.get(entry.key), path)
        known = section.yaml_keys()
        unknown = sorted(set(map(str, raw)) - set(known))
        if unknown:
            self.problems.append(
                section.unknown.format(
                    where=path or "top level",
                    unknown=", ".join(unknown),
                    known=", ".join(sorted(known)),
                )
            )
        return values

    def _setting(self, setting: Setting, value: Any, path: str) -> Any:
        key = _join(path, setting.key)
        if value is None or (value == "" and setting.kind.empty_is_unset):
            if setting.required and key not in self.waived:
                self.problem(key, "required")
            return setting.default_value()
        converted = self.convert(setting.kind, value, key)
        return setting.default_value() if converted is _INVALID else converted

    def _secret(
        self, setting: Setting, secret: Secret, raw: Mapping[str, Any], path: str
    ) -> str | None:
        key, file_key = _join(path, setting.key), _join(path, secret.file_key)
        file_env = f"{secret.env}_FILE"
        value: Any = None
        if self.env.get(secret.env):
            value = self.env[secret.env]
        elif self.env.get(file_env):
            value = self._secret_file(Path(self.env[file_env]), file_env)
            if value is _INVALID:
                return None
        else:
            inline = raw.get(setting.key) if secret.inline else None
            named = raw.get(secret.file_key)
            if inline is not None and named is not None:
                self.problems.append(f"set {key} or {file_key}, not both")
                return None
            if named is not None and not isinstance(named, str):
                self.problem(file_key, f"must be {secret.file_expected}")
                return None
            if named:
                value = self._secret_file(self.resolve(named), file_key)
                if value is _INVALID:
                    return None
            else:
                value = inline
        if value is None:
            if setting.required and key not in self.waived:
                origins = ", ".join((secret.env, file_env))
                self.problems.append(f"{secret.name}: set {origins} or {file_key}")
            return None
        converted = self.convert(secret, value, key)
        return None if converted is _INVALID else converted

    def _secret_file(self, path: Path, origin: str) -> Any:
        try:
            secret = path.read_text().strip()
        except OSError as error:
            self.problem(origin, f"cannot read {path}: {error.strerror or error}")
            return _INVALID
        if not secret:
            self.problem(origin, f"{path} is empty")
            return _INVALID
        return secret


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
