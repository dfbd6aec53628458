"""pihub: a Raspberry Pi sensor hub that never loses a reading it accepted."""

__version__ = "0.1.0"
