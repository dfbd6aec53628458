"""``pihub dashboard``: a live web page of the hubs on the config's broker.

The server (:mod:`pihub.dashboard.server`) subscribes to the broker itself, so the
broker's credentials never leave this machine, and pushes changes to the page as
server-sent events. The page is three static files in ``static/``, vanilla JavaScript
and SVG: nothing is fetched from the internet and there is no library to pin.
"""

from __future__ import annotations

from pihub.dashboard.server import Dashboard, main

__all__ = ["Dashboard", "main"]
