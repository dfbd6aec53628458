"""The markdown table of a run, and putting it into docs/PERFORMANCE.md."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.scenarios import Result, Size

BEGIN = "<!-- results:begin (written by python -m benchmarks) -->"
END = "<!-- results:end -->"


def markdown(info: dict[str, Any], size: Size, results: list[Result]) -> str:
    lines = [
        f"Run `{size.name}` of {info['date']}, {info['wall_s']} s: {info['cpu']}, "
        f"{info['cores']} cores, {info['ram_gib']} GiB RAM, Linux {info['kernel']}, "
        f"Python {info['python']}, paho-mqtt {info['paho']}, mosquitto {info['mosquitto']}. "
        f"Load average at start {_load(info['loadavg_at_start'])}, at end "
        f"{_load(info['loadavg_at_end'])}.",
        "",
        "| scenario | measure | pihub | baseline (same run) | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        for row in result.rows:
            met = "—" if row.met is None else ("yes" if row.met else "**no**")
            lines.append(f"| {row.scenario} | {row.measure} | {row.pihub} | {row.baseline} | "
                         f"{row.target} | {met} |")
    return "\n".join(lines) + "\n"


def _load(values: Any) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def replace_results(path: Path, table: str) -> None:
    """Put ``table`` between the markers in ``path`` (appended, with them, if absent)."""
    text = path.read_text() if path.exists() else "# Performance\n\n"
    block = f"{BEGIN}\n{table}{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
