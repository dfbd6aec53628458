"""The ``pihub`` command: run, check, watch, dashboard, demo.

Exit codes: 0 clean stop; 78 (EX_CONFIG) bad config, one line per problem on stderr and
no traceback; 1 anything unexpected, with its traceback logged.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import threading
from collections.abc import Callable, Sequence

from pihub import __version__
from pihub.config import Config, load_config, resolve_config_path
from pihub.errors import ConfigError, PihubError

EX_OK = 0
EX_SOFTWARE = 1
EX_CONFIG = 78

log = logging.getLogger("pihub")


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="config file (default: $PIHUB_CONFIG, ./config.ini, "
                             "/etc/pihub/config.ini)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pihub", description="A Raspberry Pi sensor hub: GPIO sensors to MQTT.")
    parser.add_argument("--version", action="version", version=f"pihub {__version__}")
    parser.add_argument("--log-level", default="INFO",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="how much to log on stderr (default: INFO)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="run the hub until SIGTERM/SIGINT",
                              description="Run the hub: sensors → queue → batches → spool → "
                                          "MQTT, until SIGTERM or SIGINT.")
    _add_config(run)
    run.add_argument("--simulate", action="store_true",
                     help="simulated sensors on mock pins (no hardware needed)")
    run.set_defaults(func=cmd_run)

    check = commands.add_parser("check", help="validate the config and show what would run",
                                description="Validate the config and print what would run. "
                                            "Exit 0 if valid, 78 if not.")
    _add_config(check)
    check.set_defaults(func=cmd_check)

    watch = commands.add_parser(
        "watch", help="live terminal view of the hubs on a broker",
        description="Live terminal view of the hubs on a broker: the config's, or "
                    "--host/--port (then no config is read). --once/--json print one "
                    "snapshot and exit (1 if the broker cannot be reached).")
    _add_config(watch)
    watch.add_argument("--host", help="the broker's host (default: the config's)")
    watch.add_argument("--port", type=int, help="the broker's port (default: the config's)")
    watch.add_argument("--hub", metavar="ID", help="show only this hub")
    watch.add_argument("--once", action="store_true", help="print one snapshot as plain text")
    watch.add_argument("--json", action="store_true", help="print one snapshot as JSON")
    watch.set_defaults(func=cmd_watch)

    dashboard = commands.add_parser(
        "dashboard", help="live web page of the hubs",
        description="A live web page of the hubs on the config's broker, served on "
                    "--bind:--port (default 127.0.0.1:8080).")
    _add_config(dashboard)
    dashboard.add_argument("--port", type=int, default=8080, help="default: 8080")
    dashboard.add_argument("--bind", default="127.0.0.1",
                           help="the address to serve on (default: 127.0.0.1, this machine only)")
    dashboard.set_defaults(func=cmd_dashboard)

    demo = commands.add_parser(
        "demo", help="the whole system on one desktop",
        description="A private mosquitto on a free port, a simulated hub with one sensor "
                    "of every type and the dashboard, until Ctrl-C.")
    demo.add_argument("--port", type=int, default=8080,
                      help="the dashboard's port (default: 8080, or a free one if taken)")
    demo.set_defaults(func=cmd_demo)
    return parser


def setup_logging(level: str) -> None:
    # stderr only: under systemd the journal adds its own timestamps, but a terminal
    # user wants them too, so keep a short one.
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    threading.excepthook = _log_thread_crash


def _log_thread_crash(args: threading.ExceptHookArgs) -> None:
    """A thread that is not ours (gpiozero's, paho's) dying goes to the log too, with its
    traceback, instead of a bare print on stderr the journal may split."""
    name = args.thread.name if args.thread is not None else "?"
    log.critical("uncaught exception in thread %s", name,
                 exc_info=args.exc_value if args.exc_value is not None else True)


def _load(args: argparse.Namespace) -> Config:
    return load_config(resolve_config_path(args.config))


def cmd_check(args: argparse.Namespace) -> int:
    from pihub.check import describe

    print(describe(_load(args)))
    return EX_OK


def cmd_run(args: argparse.Namespace) -> int:
    from pihub.supervisor import run

    path = resolve_config_path(args.config)

    def load() -> Config:
        # Also what SIGHUP re-reads: the same file, with the same command-line overrides.
        config = load_config(path)
        if args.simulate:
            config = dataclasses.replace(config,
                                         hub=dataclasses.replace(config.hub, simulate=True))
        return config

    return run(load(), loader=load)


def cmd_watch(args: argparse.Namespace) -> int:
    from pihub.board import Source
    from pihub.watch import main as watch_main

    if args.config is None and (args.host is not None or args.port is not None):
        source = Source()  # a bare broker: no config, the default prefixes, no credentials
    else:
        config = _load(args)
        source = Source(config.mqtt, config.password)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    source = dataclasses.replace(source, mqtt=dataclasses.replace(source.mqtt, **overrides))
    return watch_main(source, hub=args.hub, once=args.once, as_json=args.json)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from pihub.board import Source
    from pihub.dashboard import main as dashboard_main

    config = _load(args)
    return dashboard_main(Source(config.mqtt, config.password), port=args.port, bind=args.bind)


def cmd_demo(args: argparse.Namespace) -> int:
    from pihub.demo import main as demo_main

    return demo_main(port=args.port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EX_CONFIG
    except PihubError as exc:
        log.error("%s", exc)
        return EX_SOFTWARE
    except KeyboardInterrupt:
        return EX_OK
    except Exception:
        log.critical("unexpected error", exc_info=True)
        return EX_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
