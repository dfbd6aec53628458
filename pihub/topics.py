"""The MQTT topic names of one hub (see the Topics table of the contract)."""

from __future__ import annotations

from typing import NamedTuple


class Topics(NamedTuple):
    """``Topics("pihub", "livingroom").status == "pihub/livingroom/status"``."""

    prefix: str
    hub_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.hub_id}"

    @property
    def status(self) -> str:
        """Retained ``online``/``offline``; also the last will's topic."""
        return f"{self.base}/status"

    @property
    def readings(self) -> str:
        """SenML batches, QoS ``qos``, not retained."""
        return f"{self.base}/readings"

    @property
    def health(self) -> str:
        """Retained health JSON."""
        return f"{self.base}/health"

    def sensor(self, record_name: str) -> str:
        """Retained latest value of one record; ``climate/temperature`` keeps its ``/``."""
        return f"{self.base}/sensor/{record_name}"
