"""ds18b20 on a fake 1-Wire folder."""

from __future__ import annotations

import re

import pytest

from pihub.errors import SensorError, SensorRangeError
from pihub.hardware import Hardware
from pihub.readings import RecordSpec
from pihub.schema import rule_of
from pihub.sensors.onewire import DS18B20, DS18B20Options, parse_w1_slave

DEVICE = "28-00000a1b2c3d"
GOOD = ("72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n"
        "72 01 4b 46 7f ff 0e 10 57 t=23125\n")


def put(hardware: Hardware, text: str, device: str = DEVICE) -> None:
    folder = hardware.path(f"/sys/bus/w1/devices/{device}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "w1_slave").write_text(text)


def test_reads_the_temperature(mock_hardware: Hardware) -> None:
    put(mock_hardware, GOOD)
    with DS18B20("water", DS18B20Options(device=DEVICE), mock_hardware) as water:
        assert water.records() == (RecordSpec("water", "v", "Cel", "temperature"),)
        [reading] = water.read()
        assert (reading.name, reading.value, reading.unit) == ("water", 23.125, "Cel")


def test_negative_temperatures() -> None:
    assert parse_w1_slave("5e ff : crc=6a YES\n5e ff t=-10125\n") == -10.125


def test_a_crc_no_line_is_an_error(mock_hardware: Hardware) -> None:
    put(mock_hardware, GOOD)
    with DS18B20("water", DS18B20Options(device=DEVICE), mock_hardware) as water:
        put(mock_hardware, GOOD.replace("YES", "NO"))
        with pytest.raises(SensorError, match="CRC"):
            water.read()


@pytest.mark.parametrize("milli", ["125001", "-55001"])
def test_out_of_range_is_a_range_error(mock_hardware: Hardware, milli: str) -> None:
    put(mock_hardware, GOOD.replace("t=23125", f"t={milli}"))
    with DS18B20("water", DS18B20Options(device=DEVICE), mock_hardware) as water, \
            pytest.raises(SensorRangeError):
        water.read()


@pytest.mark.parametrize("text", ["", "garbage\n", "72 01 : crc=57 YES\n72 01 t=\n",
                                  "72 01 : crc=57 YES\n72 01 no temperature\n"])
def test_garbage_is_an_error(text: str) -> None:
    with pytest.raises(SensorError):
        parse_w1_slave(text)


def test_a_missing_device_fails_to_open(mock_hardware: Hardware) -> None:
    put(mock_hardware, GOOD, device="28-ffffffffffff")
    with pytest.raises(SensorError, match=f"{DEVICE} not found"):
        DS18B20("water", DS18B20Options(device=DEVICE), mock_hardware)


def test_no_w1_bus_says_how_to_enable_it(mock_hardware: Hardware) -> None:
    with pytest.raises(SensorError, match="dtoverlay=w1-gpio"):
        DS18B20("water", DS18B20Options(device=DEVICE), mock_hardware)


def test_a_device_that_drops_off_is_a_read_error(mock_hardware: Hardware) -> None:
    put(mock_hardware, GOOD)
    with DS18B20("water", DS18B20Options(device=DEVICE), mock_hardware) as water:
        mock_hardware.path(f"/sys/bus/w1/devices/{DEVICE}/w1_slave").unlink()
        with pytest.raises(SensorError, match="cannot be read"):
            water.read()


def test_device_names_are_checked_by_the_config_rule() -> None:
    pattern = rule_of(DS18B20Options.__dataclass_fields__["device"]).pattern
    assert pattern is not None
    assert re.fullmatch(pattern, DEVICE)
    assert re.fullmatch(pattern, "28-00000A1B2C3D")
    for bad in ("10-00000a1b2c3d", "28-00000a1b2c3", "28-00000a1b2c3dd", "28-00000a1b2c3g",
                "../../etc/passwd"):
        assert not re.fullmatch(pattern, bad), bad
