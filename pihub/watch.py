"""``pihub watch``: the hubs on a broker, live in a terminal (rich) or as one snapshot.

It draws what a :class:`~pihub.board.Board` knows, fed by a
:class:`~pihub.board.Listener` (see :mod:`pihub.board`), at a calm rate.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

from pihub.board import Board, BrokerUnreachable, Listener, Source
from pihub.readings import Value

log = logging.getLogger("pihub.watch")

SPARK = "▁▂▃▄▅▆▇█"
#: How long ``--once`` waits for the broker to answer and its retained messages to arrive.
ONCE_TIMEOUT = 5.0


def format_value(value: Value | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 10_000 else f"{value:.4g}"
    return str(value)


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def sparkline(values: list[float], width: int = 24) -> str:
    values = values[-width:]
    if not values:
        return ""
    low, high = min(values), max(values)
    if high - low < 1e-12:
        return SPARK[3] * len(values)
    scale = (len(SPARK) - 1) / (high - low)
    return "".join(SPARK[round((v - low) * scale)] for v in values)


def _status_line(hub: dict[str, Any]) -> str:
    since = f" since {time.strftime('%H:%M:%S', time.localtime(hub['since']))}" \
        if hub["since"] else ""
    dash = "—"
    return (f"{hub['status']}{since}  connected={_yes(hub['connected'])} "
            f"backlog={hub['backlog'] if hub['backlog'] is not None else dash} "
            f"dropped={hub['dropped'] if hub['dropped'] is not None else dash}")


def _yes(value: object) -> str:
    return "—" if value is None else ("yes" if value else "no")


def render_text(snapshot: dict[str, Any], where: str) -> str:
    """The snapshot as plain text: a line per hub, an indented line per record."""
    if not snapshot["hubs"]:
        return f"waiting for hubs on {where}"
    lines: list[str] = []
    for hub in snapshot["hubs"]:
        lines.append(f"{hub['hub']}: {_status_line(hub)}")
        for rec in hub["records"]:
            value = f"{format_value(rec['value'])} {rec['unit']}".strip()
            lines.append(f"  {rec['name']:<24} {value:<14} {format_age(rec['age_s']):>7}  "
                         f"{rec['state'] or '—'}")
    return "\n".join(lines)


STATE_STYLES = {"ok": "green", "failing": "bold red", "stale": "yellow"}


def render_rich(board: Board, listener: Listener) -> Any:
    """The live view: a panel per hub with a row per record."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    snapshot = board.snapshot(history=True)
    where = listener.source.where
    parts: list[Any] = [Text(f"pihub watch — {where} — {time.strftime('%H:%M:%S')}",
                             style="bold")]
    if listener.problem:
        parts.append(Text(f"{listener.problem}; retrying", style="bold red"))
    if not snapshot["hubs"]:
        parts.append(Text(f"waiting for hubs on {where}", style="dim"))
    for hub in snapshot["hubs"]:
        online = hub["status"] == "online"
        table = Table(box=None, show_edge=False, padding=(0, 1))
        for column, justify in (("sensor", "left"), ("value", "right"), ("unit", "left"),
                                ("age", "right"), ("state", "left"), ("recent", "left")):
            table.add_column(column, justify=justify, no_wrap=True,  # type: ignore[arg-type]
                             min_width=24 if column == "recent" else None,
                             style="dim" if not online else None)
        for rec in hub["records"]:
            state = rec["state"] or "—"
            table.add_row(rec["name"], format_value(rec["value"]), rec["unit"],
                          format_age(rec["age_s"]),
                          Text(state, style=STATE_STYLES.get(state, "dim") if online else "dim"),
                          Text(sparkline([v for _, v in rec["history"]]), style="cyan"))
        title = Text.assemble((hub["hub"], "bold"), "  ",
                              (hub["status"], "green" if online else "bold red"))
        parts.append(Panel(table, title=title, title_align="left",
                           subtitle=_status_line(hub).split("  ", 1)[1],
                           subtitle_align="right", border_style="green" if online else "red"))
    return Group(*parts)


def main(source: Source, *, hub: str | None = None, once: bool = False, as_json: bool = False,
         stop: threading.Event | None = None) -> int:
    """``pihub watch``: draw until Ctrl-C (or ``stop``); with ``once``, one snapshot."""
    cfg = source.mqtt
    board = Board(cfg.topic_prefix, cfg.discovery_prefix, only=hub)
    listener = Listener(source, board)
    with listener:
        if once or as_json:
            try:
                listener.wait_settled(ONCE_TIMEOUT)
            except BrokerUnreachable as exc:
                print(f"pihub watch: {exc}", file=sys.stderr)
                return 1
            snapshot = board.snapshot()
            if as_json:
                print(json.dumps({"broker": source.where, **snapshot}, indent=2))
            else:
                print(render_text(snapshot, source.where))
            return 0
        return _live(board, listener, stop or threading.Event())


def _live(board: Board, listener: Listener, stop: threading.Event) -> int:
    from rich.console import Console
    from rich.live import Live

    console = Console()
    try:
        if not console.is_terminal:
            # No screen to redraw (a pipe, a log): a plain snapshot every few seconds.
            while not stop.wait(5.0):
                if listener.problem:
                    print(f"pihub watch: {listener.problem}; retrying", file=sys.stderr)
                print(render_text(board.snapshot(), listener.source.where), flush=True)
            return 0
        with Live(console=console, refresh_per_second=3, screen=False,
                  get_renderable=lambda: render_rich(board, listener)):
            stop.wait()
    except KeyboardInterrupt:
        pass
    return 0
