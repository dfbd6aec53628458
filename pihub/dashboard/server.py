"""The dashboard's HTTP server: the static page, a JSON snapshot and an event stream.

``GET /`` and ``/static/…`` serve the page; ``GET /api/state`` is the whole board with
each record's last hour; ``GET /events`` is a server-sent event stream: a ``state`` event
(as ``/api/state``) when the page connects, then an ``update`` event with what changed,
at most every :data:`PUSH_EVERY` seconds and at least every :data:`HEARTBEAT` seconds.
The standard library's threading HTTP server is enough for a page a handful of people
look at; one thread per open page waits on the board's condition.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from types import FrameType
from typing import Any

from pihub.board import Board, Listener, Source
from pihub.errors import PihubError

log = logging.getLogger("pihub.dashboard")

#: The chart of a record covers the last hour, in at most this many points.
HISTORY_SPAN = 3600.0
HISTORY_POINTS = 1800
#: Changes go out at most this often (a hub going offline greys out well within 1 s)…
PUSH_EVERY = 0.25
#: …and an update goes out at least this often, so the page knows the server is there.
HEARTBEAT = 2.0

STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


class DashboardError(PihubError, OSError):
    """The dashboard cannot serve on the address it was given."""


class Dashboard:
    """A board fed from the broker and served over HTTP on ``bind:port`` (0: a free one)."""

    def __init__(self, source: Source, *, port: int = 8080, bind: str = "127.0.0.1") -> None:
        self.source = source
        self.board = Board(source.mqtt.topic_prefix, source.mqtt.discovery_prefix,
                           history_span=HISTORY_SPAN, history_points=HISTORY_POINTS)
        self.listener = Listener(source, self.board)
        self.stopping = threading.Event()
        try:
            self.server = ThreadingHTTPServer((bind, port), _Handler)
        except OSError as exc:
            raise DashboardError(f"cannot serve the dashboard on {bind}:{port}: "
                                 f"{exc.strerror or exc} (try another --port)") from exc
        self.server.daemon_threads = True
        self.server.dashboard = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        name="dashboard-http", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        shown = host if isinstance(host, str) else host.decode()
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{port}/"

    def __repr__(self) -> str:
        return f"<Dashboard {self.url} broker {self.source.where}>"

    def start(self) -> None:
        self.listener.start()
        self._thread.start()

    def stop(self) -> None:
        """Close every event stream, the server and the broker connection. Idempotent."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        with self.board.changed:
            self.board.changed.notify_all()  # event streams wake up and see `stopping`
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()
        self.listener.stop()

    def __enter__(self) -> Dashboard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def state(self, *, history: bool, since: int = 0) -> dict[str, Any]:
        return {"broker": self.source.where, "problem": self.listener.problem,
                **self.board.snapshot(history=history, since=since)}


class _Handler(BaseHTTPRequestHandler):
    server_version = "pihub-dashboard"

    @property
    def dashboard(self) -> Dashboard:
        dashboard: Dashboard = self.server.dashboard  # type: ignore[attr-defined]
        return dashboard

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            path = "/static/index.html"
        if path.startswith("/static/") and path[len("/static/"):] in STATIC:
            name = path[len("/static/"):]
            body = resources.files("pihub.dashboard").joinpath("static", name).read_bytes()
            self._send(body, STATIC[name])
        elif path == "/api/state":
            self._send(json.dumps(self.dashboard.state(history=True)).encode(),
                       "application/json")
        elif path == "/events":
            self._events()
        else:
            self.send_error(HTTPStatus.NOT_FOUND)

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _events(self) -> None:
        dashboard = self.dashboard
        board = dashboard.board
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        try:
            state = dashboard.state(history=True)
            self._event("state", state)
            cursor: int = state["version"]
            while not dashboard.stopping.is_set():
                with board.changed:
                    # paho's thread notifies on every message; stop() notifies too.
                    board.changed.wait_for(
                        lambda seen=cursor: board.version != seen  # type: ignore[misc]
                        or dashboard.stopping.is_set(), timeout=HEARTBEAT)
                if dashboard.stopping.is_set():
                    break
                update = dashboard.state(history=False, since=cursor)
                cursor = update["version"]
                self._event("update", update)
                dashboard.stopping.wait(PUSH_EVERY)  # let changes gather: a calm rate
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the page went away

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        self.wfile.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()


def main(source: Source, *, port: int = 8080, bind: str = "127.0.0.1",
         stop: threading.Event | None = None) -> int:
    """``pihub dashboard``: serve until SIGTERM, Ctrl-C or ``stop``."""
    stop = stop if stop is not None else threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    with Dashboard(source, port=port, bind=bind) as dashboard:
        print(f"pihub dashboard: {dashboard.url} (hubs on {source.where}); Ctrl-C stops it",
              flush=True)
        stop.wait()
    return 0
