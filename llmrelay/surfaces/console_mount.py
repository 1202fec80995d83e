"""Mounting the console (``/ui/``) and its admin endpoints on the app, or saying why not."""

from __future__ import annotations

import logging

from aiohttp import web

from ..config import Settings
from ..console.queries import ConsoleGateway, Queries
from .admin import AdminSurface
from .console import ConsoleSurface
from .console_api import ConsoleAPI

__all__ = ["mount_console"]

log = logging.getLogger("llmrelay.console")


def mount_console(
    app: web.Application, gw: ConsoleGateway, settings: Settings, admin: AdminSurface | None
) -> ConsoleSurface | None:
    """Add ``/admin/overview``, ``/admin/budgets``, ``/admin/models`` (with the admin API)
    and the console at ``/ui/`` (``console.enabled``, default on with an admin key). Logs
    one line when the console is not served, saying why; returns the console or None."""
    config = settings.console
    if settings.admin is None or admin is None:
        if config.enabled is not False:
            log.warning(
                "console not served at /ui/: no admin.key is set, so nobody could sign in"
                " (set admin.key, or console.enabled: false to silence this)"
            )
        return None
    queries = Queries(gw, settings.governance.admin_store_timeout_s)
    ConsoleAPI(queries).add_routes(app, admin)
    if config.enabled is False:
        log.info("console not served at /ui/: console.enabled is false")
        return None
    console = ConsoleSurface(
        gw, config, settings.admin.key, admin, queries, settings.server.body_timeout_s
    )
    console.add_routes(app)
    return console
