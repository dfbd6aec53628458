"""Readings ↔ SenML JSON packs (RFC 8428), the payload of ``P/HUB/readings``.

A pack's first record carries the base name ``bn = "<hub>/"`` and the base time ``bt``
(the first reading's time); every record carries ``n`` (the record name), ``t`` relative
to ``bt``, one of ``v``/``vb``/``vs``, ``u`` when the reading has a unit, and the
extension field ``seq``::

    [{"bn":"livingroom/","bt":1764070000.25,"n":"door","vb":true,"t":0,"seq":1041},
     {"n":"climate/temperature","u":"Cel","v":21.43,"t":0.5,"seq":1042}]

A reading taken before the wall clock was synchronised (see :mod:`pihub.clock`) carries
the extension field ``"tsync":false``; the field is absent otherwise. Its name does not
end in ``_``, so by RFC 8428 §4.4 a receiver that does not know it ignores it and still
reads the record (whose time may then be wrong) rather than rejecting the pack.

Times are carried in whole microseconds: ``bt`` and ``t`` are both exact decimal numbers
of microseconds, so ``bt + t`` resolves to the reading's time within a microsecond (a
double near 1.7e9 s has a resolution of about 0.24 µs) while ``t`` stays short.

Encoding is the hot path: records are written as string fragments, with the name/unit
part of each record cached, rather than built as dicts for :func:`json.dumps`.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

from pihub.errors import PihubError
from pihub.readings import Reading, Value

__all__ = [
    "Record",
    "SenMLError",
    "decode_pack",
    "encode_pack",
    "encode_packs",
    "split_pack",
]

#: The extension field marking a record whose time was stamped by an unsynchronised clock.
TSYNC = "tsync"

#: RFC 8428 §4.5.3: a resolved time below 2**28 s is relative to "now", not to the epoch.
RELATIVE_TIME_LIMIT = 2**28

# RFC 8428 §4.5.1: the characters a resolved name may consist of.
_NAME_CHARS = re.compile(r"[A-Za-z0-9:./_-]+")

# The '{"n":…,"u":…,' start of a record, per (name, unit). Record names are few (one or
# a handful per sensor), so this stays small; it is cleared if a caller feeds it names
# without end.
_PREFIXES: dict[tuple[str, str | None], str] = {}
_PREFIXES_MAX = 4096


class SenMLError(PihubError, ValueError):
    """A reading cannot be encoded as SenML, or a payload is not a valid SenML pack."""


class Record(NamedTuple):
    """One resolved SenML record: absolute ``name`` (``hub/door``) and absolute ``time``."""

    name: str
    time: float
    value: Value
    unit: str | None = None
    seq: int | None = None
    #: False when the record carries ``"tsync":false`` (its time may be wrong).
    synced: bool = True


class _Item(NamedTuple):
    """A record to encode, its name relative to the pack's base name."""

    name: str
    value: Any
    time_us: int
    unit: str | None
    seq: int | None
    synced: bool = True


def encode_pack(hub_id: str, readings: Sequence[Reading], first_seq: int) -> bytes:
    """One SenML pack of ``readings``, numbered ``first_seq``, ``first_seq + 1``, …

    Raises :class:`SenMLError` for an empty sequence, a value that is not finite or not
    a bool/int/float/str, or a name with characters SenML does not allow.
    """
    packs = encode_packs(hub_id, readings, first_seq)
    return packs[0][2]


def encode_packs(
    hub_id: str,
    readings: Sequence[Reading],
    first_seq: int,
    max_bytes: int | None = None,
    max_count: int | None = None,
) -> list[tuple[int, int, bytes]]:
    """Like :func:`encode_pack`, split so each payload is at most ``max_bytes`` and holds
    at most ``max_count`` records.

    Returns ``(first_seq, count, payload)`` per pack, in seq order. Raises
    :class:`SenMLError` when one reading alone does not fit in ``max_bytes``.
    """
    if not readings:
        raise SenMLError("a SenML pack needs at least one reading")
    bn = f"{hub_id}/"
    _check_name(bn)

    def items() -> Iterable[_Item]:
        seq = first_seq
        for r in readings:
            try:
                time_us = round(r.time * 1e6)
            except (ValueError, OverflowError, TypeError):
                raise SenMLError(f"reading {r!r}: time is not a finite number") from None
            yield _Item(r.name, r.value, time_us, r.unit, seq, r.synced)
            seq += 1

    if max_bytes is None and (max_count is None or len(readings) <= max_count):
        return [(first_seq, len(readings), _encode_all(bn, items()))]
    return _encode_split(bn, items(), max_bytes if max_bytes is not None else sys.maxsize,
                         max_count=max_count)


def decode_pack(payload: bytes | str, *, now: float | None = None) -> list[Record]:
    """The resolved records of a SenML JSON pack (RFC 8428 §4.6).

    Base fields (``bn``, ``bt``, ``bu``, ``bv``) apply to their record and every later
    one until replaced; name = bn + n, time = bt + t, unit = u or bu, v = bv + v. A
    resolved time below 2**28 is relative to ``now`` (default: the current time).
    Base and record fields are added exactly (as decimals), then made floats.
    Raises :class:`SenMLError` for anything that is not a valid pack.
    """
    return _resolve(_load(payload), now)[0]


def split_pack(payload: bytes | str, max_bytes: int, *, oversize_alone: bool = False,
               ) -> list[bytes]:
    """Re-encode a pack as several valid packs, each at most ``max_bytes``, in order.

    Used when a broker refuses a batch as too large. Raises :class:`SenMLError` if one
    record alone does not fit, unless ``oversize_alone``: then such a record gets a pack
    of its own (for splitting "smaller" rather than "below a hard limit").
    """
    records, bn = _resolve(_load(payload), None)
    if not all(rec.name.startswith(bn) for rec in records):
        bn = ""
    cut = len(bn)
    items = (
        _Item(rec.name[cut:], rec.value, round(rec.time * 1e6), rec.unit, rec.seq, rec.synced)
        for rec in records
    )
    return [payload for _, _, payload in _encode_split(bn, items, max_bytes,
                                                         oversize_alone=oversize_alone)]


# -- encoding ---------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not _NAME_CHARS.fullmatch(name):
        raise SenMLError(
            f"name {name!r}: SenML names allow only letters, digits and - : . / _"
        )


def _prefix(name: str, unit: str | None) -> str:
    """The cached '{"n":…,"u":…,' start of a record."""
    key = (name, unit)
    prefix = _PREFIXES.get(key)
    if prefix is None:
        if not isinstance(name, str) or (name and not _NAME_CHARS.fullmatch(name)):
            raise SenMLError(
                f"record name {name!r}: SenML names allow only letters, digits and - : . / _"
            )
        prefix = '{"n":' + json.dumps(name)
        if unit is not None:
            if not isinstance(unit, str):
                raise SenMLError(f"record {name!r}: unit {unit!r} is not a string")
            prefix += ',"u":' + json.dumps(unit, ensure_ascii=False)
        prefix += ","
        if len(_PREFIXES) >= _PREFIXES_MAX:
            _PREFIXES.clear()
        _PREFIXES[key] = prefix
    return prefix


def _value(name: str, value: Any) -> str:
    """The '"v":…' / '"vb":…' / '"vs":…' field of a record."""
    kind = type(value)
    # Exact type checks first: they are the common case and cheaper than isinstance.
    # bool is tested before int because bool is a subclass of int.
    if kind is float:
        if not math.isfinite(value):
            raise SenMLError(
                f"record {name!r}: value {value!r} is not finite; JSON cannot carry it")
        return f'"v":{value!r}'
    if kind is bool:
        return '"vb":true' if value else '"vb":false'
    if kind is int:
        return f'"v":{value}'
    if kind is str:
        return '"vs":' + json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):  # pragma: no cover - bool cannot be subclassed
        return '"vb":true' if value else '"vb":false'
    if isinstance(value, int):
        return _value(name, int(value))
    if isinstance(value, float):
        return _value(name, float(value))
    if isinstance(value, str):
        return _value(name, str(value))
    raise SenMLError(
        f"record {name!r}: value {value!r} is a {kind.__name__}, not a bool, number or str"
    )


def _head(bn: str, bt_us: int) -> str:
    """What the first record carries before its own fields."""
    return '{"bn":' + json.dumps(bn) + ',"bt":' + repr(bt_us / 1e6) + ","


def _fragment(item: _Item, bt_us: int) -> str:
    """One record without its leading '{' (the caller supplies the start)."""
    d = item.time_us - bt_us
    # d/1e6 is the double nearest the exact decimal, so repr() prints that decimal.
    t = "0" if d == 0 else repr(d / 1e6)
    tail = f'"t":{t}}}' if item.seq is None else f'"t":{t},"seq":{item.seq}}}'
    if not item.synced:
        tail = '"tsync":false,' + tail
    return _prefix(item.name, item.unit)[1:] + _value(item.name, item.value) + "," + tail


def _encode_all(bn: str, items: Iterable[_Item]) -> bytes:
    it = iter(items)
    first = next(it)
    bt_us = first.time_us
    head = _head(bn, bt_us)
    parts = [head + _fragment(first, bt_us)]
    append = parts.append
    for item in it:
        append("{" + _fragment(item, bt_us))
    return _utf8("[" + ",".join(parts) + "]")


def _encode_split(bn: str, items: Iterable[_Item], max_bytes: int, *,
                  max_count: int | None = None,
                  oversize_alone: bool = False) -> list[tuple[int, int, bytes]]:
    packs: list[tuple[int, int, bytes]] = []
    parts: list[str] = []
    size = 0
    bt_us = 0
    first_seq = 0

    def flush() -> None:
        packs.append((first_seq, len(parts), _utf8("[" + ",".join(parts) + "]")))

    for item in items:
        if parts:
            if len(parts) != max_count:
                frag = "{" + _fragment(item, bt_us)
                n = len(frag) if frag.isascii() else len(_utf8(frag))
                if size + 1 + n <= max_bytes:  # +1 for the comma
                    parts.append(frag)
                    size += 1 + n
                    continue
            flush()
        # A new pack starts here, with this record carrying the base fields.
        bt_us = item.time_us
        first_seq = item.seq if item.seq is not None else 0
        frag = _head(bn, bt_us) + _fragment(item, bt_us)
        n = len(frag) if frag.isascii() else len(_utf8(frag))
        if n + 2 > max_bytes and not oversize_alone:  # +2 for the brackets
            raise SenMLError(
                f"record {item.name!r} (seq {item.seq}) alone needs {n + 2} bytes, "
                f"more than the {max_bytes} a pack may have"
            )
        parts = [frag]
        size = n + 2
    if not parts:
        raise SenMLError("a SenML pack needs at least one record")
    flush()
    return packs


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SenMLError(f"a string is not valid Unicode (lone surrogate?): {exc}") from None


# -- decoding ---------------------------------------------------------------------------


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _load(payload: bytes | str) -> list[Any]:
    try:
        # Decimal: bt + t is then exact, whatever the two's magnitudes.
        pack = json.loads(payload, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, TypeError) as exc:
        raise SenMLError(f"not a SenML JSON pack: {exc}") from None
    if not isinstance(pack, list):
        raise SenMLError(f"not a SenML JSON pack: a {type(pack).__name__}, not an array")
    return pack


def _number(obj: dict[str, Any], key: str, index: int) -> Decimal | int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise SenMLError(f"record {index}: {key!r} is {value!r}, not a number")
    return value


def _py(number: Decimal | int, index: int) -> float | int:
    """A JSON number as Python has it: an int stays an int."""
    if isinstance(number, int):
        return number
    value = float(number)
    if not math.isfinite(value):
        raise SenMLError(f"record {index}: {number} is too large for a double")
    return value


def _string(obj: dict[str, Any], key: str, index: int) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise SenMLError(f"record {index}: {key!r} is {value!r}, not a string")
    return value


def _resolve(pack: list[Any], now: float | None) -> tuple[list[Record], str]:
    """The resolved records of ``pack``, and the base name its first record sets."""
    records: list[Record] = []
    bn, bu = "", None
    bt: Decimal | int = 0
    bv: Decimal | int | None = None
    first_bn = ""
    for index, obj in enumerate(pack):
        if not isinstance(obj, dict):
            raise SenMLError(f"record {index}: {obj!r} is not an object")
        for key in obj:
            # RFC 8428 §4.4: a label ending in "_" must be understood, and we don't.
            if key.endswith("_"):
                raise SenMLError(f"record {index}: unknown must-understand field {key!r}")
        if "bn" in obj:
            bn = _string(obj, "bn", index) or ""
            if index == 0:
                first_bn = bn
        if "bt" in obj:
            bt = _number(obj, "bt", index) or 0
        if "bu" in obj:
            bu = _string(obj, "bu", index)
        if "bv" in obj:
            bv = _number(obj, "bv", index)
        name = bn + (_string(obj, "n", index) or "")
        if not name:
            raise SenMLError(f"record {index}: no name (neither bn nor n)")
        when = float(bt + (_number(obj, "t", index) or 0))
        if when < RELATIVE_TIME_LIMIT:
            when += time.time() if now is None else now
        unit = _string(obj, "u", index) or bu
        value = _record_value(obj, bv, index)
        seq = obj.get("seq")
        if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int)):
            raise SenMLError(f"record {index}: 'seq' is {seq!r}, not an integer")
        tsync = obj.get(TSYNC, True)
        if not isinstance(tsync, bool):
            raise SenMLError(f"record {index}: {TSYNC!r} is {tsync!r}, not true or false")
        records.append(Record(name, when, value, unit, seq, tsync))
    return records, first_bn


def _record_value(obj: dict[str, Any], bv: Decimal | int | None, index: int) -> Value:
    present = [key for key in ("v", "vb", "vs", "vd") if key in obj]
    if len(present) > 1:
        raise SenMLError(f"record {index}: more than one value field ({', '.join(present)})")
    if not present:
        if bv is None:
            raise SenMLError(f"record {index}: no value (v, vb, vs or vd)")
        return _py(bv, index)
    key = present[0]
    if key == "v":
        v = _number(obj, "v", index)
        assert v is not None
        return _py(v if bv is None else bv + v, index)
    if key == "vb":
        vb = obj["vb"]
        if not isinstance(vb, bool):
            raise SenMLError(f"record {index}: 'vb' is {vb!r}, not true or false")
        return vb
    s = _string(obj, key, index)
    if s is None:
        raise SenMLError(f"record {index}: {key!r} is null, not a string")
    return s
