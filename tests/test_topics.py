from pihub.topics import Topics


def test_topics_follow_the_contract() -> None:
    topics = Topics("pihub", "livingroom")
    assert topics.status == "pihub/livingroom/status"
    assert topics.readings == "pihub/livingroom/readings"
    assert topics.health == "pihub/livingroom/health"
    assert topics.sensor("door") == "pihub/livingroom/sensor/door"


def test_record_names_with_a_slash_become_subtopics() -> None:
    topics = Topics("site/a", "hub-1")
    assert topics.sensor("climate/temperature") == "site/a/hub-1/sensor/climate/temperature"


def test_topics_compare_by_value() -> None:
    assert Topics("p", "h") == Topics("p", "h")
    assert Topics("p", "h") != Topics("p", "g")
