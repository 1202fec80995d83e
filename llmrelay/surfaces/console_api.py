"""The admin API's endpoints for what the console shows (docs/admin-api.md):

    GET /admin/overview?range=24h|7d|30d|custom&since=&until=&bucket=hour|day&by=key&top=8
        series, breakdown (top N + other), live state -> see llmrelay.console.data.overview
    GET /admin/budgets   each key's and team's spend against its budget, with the forecast
    GET /admin/models    public and virtual models: targets, cooldowns, speed, prices

Behind the admin key like the rest of ``/admin/*``; reads run off the event loop within
``governance.admin_store_timeout_s`` (:class:`llmrelay.console.queries.Queries`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..console.queries import Queries
from .admin import AdminSurface

__all__ = ["ConsoleAPI"]


class ConsoleAPI:
    def __init__(self, queries: Queries) -> None:
        self._q = queries

    def add_routes(self, app: web.Application, admin: AdminSurface) -> None:
        app.router.add_get("/admin/overview", admin.guarded(self.overview))
        app.router.add_get("/admin/budgets", admin.guarded(self.budgets))
        app.router.add_get("/admin/models", admin.guarded(self.models))

    async def overview(self, request: web.Request) -> tuple[int, Any]:
        return 200, await self._q.overview(request.query)

    async def budgets(self, request: web.Request) -> tuple[int, Any]:
        return 200, await self._q.budgets()

    async def models(self, request: web.Request) -> tuple[int, Any]:
        return 200, self._q.models()
