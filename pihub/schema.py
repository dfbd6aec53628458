"""How a config section is declared: a frozen dataclass whose fields carry their rules.

Every section of ``config.ini`` — ``[hub]``, ``[mqtt]``, each sensor type's keys — is a
frozen dataclass. A field's annotation gives the value's type (``int``, ``float``,
``bool``, ``str``, or one of those ``| None``); its default is the key's default (none
means required); :func:`key` adds the checks. :mod:`pihub.config` reads these rules and
nothing else, so a new sensor type declares its keys here and needs no change there.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any

from pihub.errors import PihubError

MISSING: Any = dataclasses.MISSING

#: A key whose name holds one of these words has a value that is never shown.
SECRET_WORDS = ("password", "secret", "token")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_INT_LIMIT = 2**63 - 1  # what SQLite and most C libraries can hold


@dataclasses.dataclass(frozen=True)
class Rule:
    """The checks for one key beyond its type. ``None`` means no such check."""

    min: float | None = None
    max: float | None = None
    #: The value must be one of these (compared after ``str.lower()`` for strings).
    choices: tuple[str, ...] | None = None
    #: A full-match regular expression for strings.
    pattern: str | None = None
    #: Words for the error message when ``pattern`` fails, e.g. "letters, digits, _ and -".
    pattern_help: str | None = None
    #: Exclusive lower bound (``min`` is inclusive).
    above: float | None = None
    help: str = ""


def key(default: Any = MISSING, **rule: Any) -> Any:
    """A dataclass field for a config key: ``interval: float = key(10.0, above=0)``."""
    return dataclasses.field(default=default, metadata={"rule": Rule(**rule)})


def rule_of(field: dataclasses.Field[Any]) -> Rule:
    """The :class:`Rule` of a field declared with :func:`key` (an empty one otherwise)."""
    rule = field.metadata.get("rule")
    return rule if isinstance(rule, Rule) else Rule()


# -- reading a value as its field's type ---------------------------------------------


def is_secret(key_name: str) -> bool:
    """Whether values of ``key_name`` must never be shown."""
    return any(word in key_name.lower() for word in SECRET_WORDS)


def show(key_name: str, raw: str) -> str:
    if is_secret(key_name):
        return "the value"
    return repr(raw if len(raw) <= 60 else raw[:57] + "...")


class BadValue(PihubError, ValueError):
    """One value is wrong; the message says how."""


def hints(cls: type[Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: read it as text below
        return {f.name: f.type for f in dataclasses.fields(cls)}


def base_type(tp: Any) -> tuple[Any, bool]:
    """``int | None`` → ``(int, True)``; string annotations are read by name."""
    if isinstance(tp, str):
        optional = tp.startswith("Optional[")
        if optional:
            tp = tp.removeprefix("Optional[").removesuffix("]")
        parts = [p.strip() for p in tp.split("|")]
        named = [p for p in parts if p != "None"]
        known = {"int": int, "float": float, "bool": bool, "str": str}
        return known.get(named[0] if len(named) == 1 else "str", str), optional or "None" in parts
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), len(args) < len(typing.get_args(tp))
    return tp, False


def convert(key_name: str, raw: str, base_type: Any) -> Any:
    shown = show(key_name, raw)
    if base_type is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise BadValue(f"{shown} is not true or false "
                             "(say true/false, yes/no, on/off or 1/0)")
    if base_type is int:
        if len(raw) > 40:
            raise BadValue(f"{shown} is too long to be a whole number")
        try:
            value = int(raw, 10)
        except ValueError:
            try:
                value = int(raw, 0)  # 0x76, 0o17, 0b101
            except ValueError:
                raise BadValue(f"{shown} is not a whole number") from None
        if abs(value) > _INT_LIMIT:
            raise BadValue(f"{shown} is too large")
        return value
    if base_type is float:
        try:
            number = float(raw)
        except ValueError:
            raise BadValue(f"{shown} is not a number") from None
        if not math.isfinite(number):
            raise BadValue(f"{shown} is not a finite number")
        return number
    if base_type is str:
        return raw
    try:
        return base_type(raw)
    except Exception:
        kind = getattr(base_type, "__name__", "value")
        raise BadValue(f"{shown} is not a valid {kind}") from None


def check(rule: Any, value: Any, key_name: str, raw: str) -> Any:
    shown = show(key_name, raw)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and (
            (rule.min is not None and value < rule.min)
            or (rule.above is not None and value <= rule.above)
            or (rule.max is not None and value > rule.max)):
            raise BadValue(f"{shown} is out of range ({_range_text(rule)})")
    if rule.choices is not None:
        matches = [c for c in rule.choices if c.lower() == str(value).lower()]
        if not matches:
            raise BadValue(f"{shown} is not one of {', '.join(rule.choices)}")
        value = matches[0] if isinstance(value, str) else value
    if (rule.pattern is not None and isinstance(value, str)
            and not re.fullmatch(rule.pattern, value)):
        allowed = rule.pattern_help or f"text matching {rule.pattern}"
        raise BadValue(f"{shown} is not valid (allowed: {allowed})")
    return value


def _range_text(rule: Any) -> str:
    def num(x: float) -> str:
        return f"{x:g}" if isinstance(x, float) else str(x)

    if rule.min is not None and rule.max is not None:
        return f"must be {num(rule.min)}..{num(rule.max)}"
    parts = []
    if rule.min is not None:
        parts.append(f"at least {num(rule.min)}")
    if rule.above is not None:
        parts.append(f"above {num(rule.above)}")
    if rule.max is not None:
        parts.append(f"at most {num(rule.max)}")
    return "must be " + " and ".join(parts)
