"""How a config section is declared: a frozen dataclass whose fields carry their rules.

Every section of ``config.ini`` — ``[hub]``, ``[mqtt]``, each sensor type's keys — is a
frozen dataclass. A field's annotation gives the value's type (``int``, ``float``,
``bool``, ``str``, or one of those ``| None``); its default is the key's default (none
means required); :func:`key` adds the checks. :mod:`pihub.config` reads these rules and
nothing else, so a new sensor type declares its keys here and needs no change there.
"""

from __future__ import annotations

import dataclasses
from typing import Any

MISSING: Any = dataclasses.MISSING


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
