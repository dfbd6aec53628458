import json
import re
from pathlib import Path
from typing import Any

from pihub import __version__
from pihub.config import BatchConfig, Config, HubConfig, MqttConfig, SpoolConfig
from pihub.discovery import discovery_messages, object_id
from pihub.readings import RecordSpec

TOPIC = re.compile(r"[^/#+]+/(sensor|binary_sensor)/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/config")


def make_config(**mqtt: Any) -> Config:
    return Config(path=Path("t.ini"), hub=HubConfig(id="livingroom"), mqtt=MqttConfig(**mqtt),
                  batch=BatchConfig(), spool=SpoolConfig(), sensors=())


def configs(records: list[RecordSpec], **mqtt: Any) -> dict[str, dict[str, Any]]:
    return {topic: json.loads(payload)
            for topic, payload in discovery_messages(make_config(**mqtt), records)}


def test_a_numeric_record_is_a_measurement_sensor() -> None:
    found = configs([RecordSpec("climate/temperature", "v", "Cel")])
    entity = found["homeassistant/sensor/livingroom/climate_temperature/config"]
    assert entity["state_topic"] == "pihub/livingroom/sensor/climate/temperature"
    assert entity["unit_of_measurement"] == "°C"
    assert entity["device_class"] == "temperature"
    assert entity["state_class"] == "measurement"
    assert entity["name"] == "climate/temperature"


def test_a_boolean_record_is_a_binary_sensor() -> None:
    found = configs([RecordSpec("door", "vb", None, "door")])
    entity = found["homeassistant/binary_sensor/livingroom/door/config"]
    assert entity["payload_on"] == "ON"
    assert entity["payload_off"] == "OFF"
    assert entity["device_class"] == "door"
    assert entity["state_topic"] == "pihub/livingroom/sensor/door"
    assert "state_class" not in entity


def test_units_map_to_home_assistant() -> None:
    found = configs([RecordSpec("h", "v", "%RH"), RecordSpec("light", "v", "/"),
                     RecordSpec("load", "v", None), RecordSpec("odd", "v", "ppm"),
                     RecordSpec("adc", "v", "V", "voltage")])
    by_name = {entity["name"]: entity for entity in found.values()}
    assert (by_name["h"]["unit_of_measurement"], by_name["h"]["device_class"]) == ("%", "humidity")
    assert "unit_of_measurement" not in by_name["light"]
    assert "unit_of_measurement" not in by_name["load"]
    assert "device_class" not in by_name["load"]
    assert by_name["odd"]["unit_of_measurement"] == "ppm"
    assert by_name["adc"]["device_class"] == "voltage"


def test_every_entity_has_device_availability_and_a_unique_id() -> None:
    found = configs([RecordSpec("door", "vb"), RecordSpec("cpu", "v", "Cel")])
    unique_ids = [entity["unique_id"] for entity in found.values()]
    assert len(unique_ids) == len(set(unique_ids)) == 2 + 5
    for topic, entity in found.items():
        assert TOPIC.fullmatch(topic), topic
        assert entity["device"] == {"identifiers": ["pihub_livingroom"], "name": "livingroom",
                                    "model": "pihub", "manufacturer": "pihub",
                                    "sw_version": __version__}
        assert entity["availability"] == [{"topic": "pihub/livingroom/status",
                                           "payload_available": "online",
                                           "payload_not_available": "offline"}]
        assert entity["unique_id"].startswith("pihub_livingroom_")


def test_the_hub_health_has_diagnostic_entities() -> None:
    found = configs([])
    assert len(found) == 5
    for entity in found.values():
        assert entity["state_topic"] == "pihub/livingroom/health"
        assert entity["entity_category"] == "diagnostic"
        assert entity["value_template"].startswith("{{")
    connected = found["homeassistant/binary_sensor/livingroom/hub_connected/config"]
    assert connected["device_class"] == "connectivity"
    backlog = found["homeassistant/sensor/livingroom/hub_spool_depth/config"]
    assert "spool_depth" in backlog["value_template"]
    dropped = found["homeassistant/sensor/livingroom/hub_dropped/config"]
    assert dropped["state_class"] == "total_increasing"


def test_object_ids_that_would_collide_are_made_distinct() -> None:
    found = configs([RecordSpec("a/b", "v"), RecordSpec("a_b", "v"),
                     RecordSpec("hub_connected", "v")])
    topics = list(found)
    assert len(topics) == len(set(topics)) == 3 + 5
    assert len({entity["unique_id"] for entity in found.values()}) == 8
    assert "homeassistant/sensor/livingroom/a_b/config" in found


def test_prefixes_come_from_the_config() -> None:
    found = configs([RecordSpec("door", "vb")], discovery_prefix="ha", topic_prefix="site/x")
    entity = found["ha/binary_sensor/livingroom/door/config"]
    assert entity["state_topic"] == "site/x/livingroom/sensor/door"
    assert entity["availability"][0]["topic"] == "site/x/livingroom/status"


def test_object_id() -> None:
    assert object_id("climate/temperature") == "climate_temperature"
    assert object_id("ok-name_1") == "ok-name_1"
    assert object_id("a b.c") == "a_b_c"
