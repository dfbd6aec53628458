from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pihub.readings import Reading
from pihub.senml import (
    Record,
    SenMLError,
    decode_pack,
    encode_pack,
    encode_packs,
    split_pack,
)

T0 = 1764070000.25


def test_encode_matches_contract_example() -> None:
    readings = [
        Reading("door", True, T0),
        Reading("climate/temperature", 21.43, T0 + 0.5, "Cel"),
    ]
    payload = encode_pack("livingroom", readings, 1041)
    assert json.loads(payload) == [
        {"bn": "livingroom/", "bt": 1764070000.25, "n": "door", "vb": True, "t": 0,
         "seq": 1041},
        {"n": "climate/temperature", "u": "Cel", "v": 21.43, "t": 0.5, "seq": 1042},
    ]
    # Compact: no spaces anywhere.
    assert b" " not in payload
    assert payload.startswith(b'[{"bn":"livingroom/","bt":1764070000.25,')


def test_decode_resolves_base_fields() -> None:
    readings = [
        Reading("door", False, T0),
        Reading("climate/temperature", 21.43, T0 + 1.5, "Cel"),
        Reading("mode", "auto", T0 - 2.0),
    ]
    records = decode_pack(encode_pack("hub", readings, 7))
    assert records == [
        Record("hub/door", T0, False, None, 7),
        Record("hub/climate/temperature", T0 + 1.5, 21.43, "Cel", 8),
        Record("hub/mode", T0 - 2.0, "auto", None, 9),
    ]


def test_decode_follows_rfc_8428_resolution() -> None:
    # bn/bt/bu/bv apply to every later record until replaced; u overrides bu; v adds to bv.
    pack = [
        {"bn": "a/", "bt": 1.7e9, "bu": "Cel", "bv": 20, "n": "x", "v": 1.5, "t": 1},
        {"n": "y", "u": "%RH", "v": -2},
        {"bn": "b/", "bt": 1.8e9, "n": "z", "vs": "on"},
        {"n": "w"},  # no value field: the base value
        {"bv": 0.5, "n": "q", "vb": True},
    ]
    records = decode_pack(json.dumps(pack).encode())
    assert records == [
        Record("a/x", 1.7e9 + 1, 21.5, "Cel", None),
        Record("a/y", 1.7e9, 18, "%RH", None),
        Record("b/z", 1.8e9, "on", "Cel", None),
        Record("b/w", 1.8e9, 20, "Cel", None),
        Record("b/q", 1.8e9, True, "Cel", None),
    ]


def test_decode_relative_time_is_from_now() -> None:
    # RFC 8428: a resolved time below 2**28 is relative to the current time.
    records = decode_pack(b'[{"n":"x","v":1,"t":-10}]', now=1.7e9)
    assert records[0].time == 1.7e9 - 10


@pytest.mark.parametrize("payload", [
    b"not json",
    b'{"n":"x","v":1}',
    b'[1]',
    b'[{"v":1}]',
    b'[{"n":"x"}]',
    b'[{"n":"x","v":1,"vb":true}]',
    b'[{"n":"x","v":"1"}]',
    b'[{"n":"x","vb":1}]',
    b'[{"n":"x","v":1,"seq":1.5}]',
    b'[{"n":"x","v":1,"foo_":1}]',
    b'[{"n":"x","bt":true,"v":1}]',
    b'[{"n":"x","v":NaN}]',
    b'[{"n":"x","v":1e400}]',
])
def test_decode_rejects_invalid_packs(payload: bytes) -> None:
    with pytest.raises(SenMLError):
        decode_pack(payload)


def test_value_fields_follow_python_type() -> None:
    readings = [
        Reading("a", True, T0),
        Reading("b", 1, T0),
        Reading("c", 2.5, T0),
        Reading("d", "text ✓ \"quoted\"", T0),
        Reading("e", False, T0),
    ]
    pack = json.loads(encode_pack("hub", readings, 1))
    assert [(k, r[k]) for r in pack for k in ("v", "vb", "vs") if k in r] == [
        ("vb", True), ("v", 1), ("v", 2.5), ("vs", "text ✓ \"quoted\""), ("vb", False),
    ]
    assert all(len({"v", "vb", "vs"} & set(r)) == 1 for r in pack)


def test_unit_only_when_given() -> None:
    pack = json.loads(encode_pack("hub", [Reading("a", 1.0, T0, "Cel"),
                                          Reading("b", 1.0, T0)], 1))
    assert pack[0]["u"] == "Cel"
    assert "u" not in pack[1]


def test_seq_is_consecutive_from_first_seq() -> None:
    readings = [Reading(f"s{i}", float(i), T0 + i) for i in range(50)]
    pack = json.loads(encode_pack("hub", readings, 10**15))
    assert [r["seq"] for r in pack] == list(range(10**15, 10**15 + 50))


def test_only_first_record_carries_bases() -> None:
    pack = json.loads(encode_pack("hub", [Reading("a", 1.0, T0)] * 3, 1))
    assert "bn" in pack[0] and "bt" in pack[0]
    assert not any(k.startswith("b") for r in pack[1:] for k in r)


@pytest.mark.parametrize("when", [1764070000.000001, 1764070000.999999, 1764070123.456789,
                                  2**31 + 0.123457, 1e9 + 1e-6])
def test_times_exact_to_the_microsecond(when: float) -> None:
    readings = [Reading("a", 1.0, T0), Reading("b", 2.0, when), Reading("c", 3.0, when + 1e-6)]
    records = decode_pack(encode_pack("hub", readings, 1))
    for reading, record in zip(readings, records, strict=True):
        assert round(record.time * 1e6) == round(reading.time * 1e6)
        assert abs(record.time - reading.time) < 1e-6


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_rejected(bad: float) -> None:
    with pytest.raises(SenMLError, match="not finite"):
        encode_pack("hub", [Reading("a", 1.0, T0), Reading("temp", bad, T0)], 1)


@pytest.mark.parametrize("reading", [
    Reading("a", None, T0),  # type: ignore[arg-type]
    Reading("a", b"bytes", T0),  # type: ignore[arg-type]
    Reading("a", 1.0, math.nan),
    Reading("bad name", 1.0, T0),
    Reading("a", "\ud800", T0),
])
def test_unencodable_readings_rejected(reading: Reading) -> None:
    with pytest.raises(SenMLError):
        encode_pack("hub", [reading], 1)


def test_empty_pack_rejected() -> None:
    with pytest.raises(SenMLError):
        encode_pack("hub", [], 1)


def test_senml_error_is_a_value_error() -> None:
    assert issubclass(SenMLError, ValueError)


def _readings(n: int) -> list[Reading]:
    return [Reading(f"sensor{i % 7}/x", i * 0.37, T0 + i * 0.013, "Cel" if i % 2 else None)
            for i in range(n)]


@pytest.mark.parametrize("max_bytes", [120, 300, 1000, 4096])
def test_split_respects_max_bytes_and_order(max_bytes: int) -> None:
    readings = _readings(200)
    whole = encode_pack("hub", readings, 500)
    parts = split_pack(whole, max_bytes)
    assert len(parts) > 1
    assert all(len(p) <= max_bytes for p in parts)
    assert [r for p in parts for r in decode_pack(p)] == decode_pack(whole)
    seqs = [r.seq for p in parts for r in decode_pack(p)]
    assert seqs == list(range(500, 700))
    # Each part is a pack on its own: its first record carries the bases.
    assert all(json.loads(p)[0]["bn"] == "hub/" for p in parts)


def test_split_of_a_small_pack_is_itself() -> None:
    whole = encode_pack("hub", _readings(3), 1)
    assert split_pack(whole, 10_000) == [whole]


def test_split_raises_when_one_record_is_too_big() -> None:
    whole = encode_pack("hub", [Reading("a", "x" * 500, T0)], 1)
    with pytest.raises(SenMLError, match="alone"):
        split_pack(whole, 200)


def test_encode_packs_counts_and_seqs() -> None:
    readings = _readings(100)
    packs = encode_packs("hub", readings, 1, max_bytes=1000)
    assert sum(count for _, count, _ in packs) == 100
    assert [first for first, _, _ in packs] == [
        1 + sum(c for _, c, _ in packs[:i]) for i in range(len(packs))]
    assert all(len(p) <= 1000 for _, _, p in packs)
    assert [r for _, _, p in packs for r in decode_pack(p)] == decode_pack(
        encode_pack("hub", readings, 1))


def test_split_multibyte_strings_counted_in_bytes() -> None:
    readings = [Reading("a", "é" * 40, T0 + i) for i in range(10)]
    parts = split_pack(encode_pack("hub", readings, 1), 200)
    assert all(len(p) <= 200 for p in parts)
    assert sum(len(decode_pack(p)) for p in parts) == 10


names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_/-]{0,20}", fullmatch=True)
values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)),
)
times = st.floats(min_value=1e9, max_value=4e9, allow_nan=False)
units = st.one_of(st.none(), st.sampled_from(["Cel", "%RH", "Pa", "m", "/", "%", "V"]))
reading_lists = st.lists(st.builds(Reading, names, values, times, units), min_size=1,
                         max_size=30)


@given(reading_lists, st.integers(min_value=0, max_value=2**53))
def test_round_trip(readings: list[Reading], first_seq: int) -> None:
    records = decode_pack(encode_pack("hub-1", readings, first_seq))
    assert len(records) == len(readings)
    for i, (reading, record) in enumerate(zip(readings, records, strict=True)):
        assert record.name == "hub-1/" + reading.name
        assert type(record.value) is type(reading.value)
        assert record.value == reading.value
        assert record.unit == reading.unit
        assert record.seq == first_seq + i
        assert abs(record.time - reading.time) < 1e-6


@given(reading_lists, st.integers(min_value=150, max_value=2000))
def test_split_round_trip(readings: list[Reading], max_bytes: int) -> None:
    whole = encode_pack("hub", readings, 1)
    try:
        parts = split_pack(whole, max_bytes)
    except SenMLError:
        return  # a record alone is bigger than max_bytes
    assert all(len(p) <= max_bytes for p in parts)
    assert [r for p in parts for r in decode_pack(p)] == decode_pack(whole)
