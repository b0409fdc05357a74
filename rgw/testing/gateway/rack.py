"""A fake Convox rack behind `/api/v1/rack-proxy`: the system and a few apps, in memory.

Just enough of the Convox API for the CLI's `rack` and `apps` commands and for RBAC tests: each route
names the permission it needs; the app layer checks credentials and permissions first.
"""

from __future__ import annotations

import re
import secrets
import threading
from typing import Any

APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,29}$")


class RackError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class FakeRack:
    """The system and apps of one rack; thread-safe."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._apps: dict[str, dict[str, Any]] = {}
        for app in ("web", "api", "worker"):
            self._apps[app] = self._new_app(app, generation="3", status="running")

    @staticmethod
    def _new_app(name: str, *, generation: str = "3", status: str = "running") -> dict[str, Any]:
        release = "R" + secrets.token_hex(5).upper()
        return {
            "name": name,
            "generation": generation,
            "release": release,
            "status": status,
            "locked": False,
            "parameters": {},
            "router": f"router.{name}.convox",
        }

    def system(self) -> dict[str, Any]:
        with self._lock:
            count = len(self._apps)
        return {
            "name": self.name,
            "provider": "aws",
            "region": "us-east-1",
            "status": "running",
            "version": "3.19.7",
            "count": 3,
            "type": "t3.medium",
            "domain": f"{self.name}.convox",
            "apps": count,
        }

    def apps(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {k: app[k] for k in ("name", "generation", "release", "status")}
                for app in sorted(self._apps.values(), key=lambda a: str(a["name"]))
            ]

    def app(self, name: str) -> dict[str, Any]:
        with self._lock:
            found = self._apps.get(name)
            if found is None:
                raise RackError(404, f"app not found: {name}")
            return dict(found)

    def create_app(self, name: str) -> dict[str, Any]:
        if not APP_NAME.match(name):
            raise RackError(400, f"invalid app name: {name}")
        with self._lock:
            if name in self._apps:
                raise RackError(409, f"app already exists: {name}")
            app = self._new_app(name, status="running")
            self._apps[name] = app
            return dict(app)

    def delete_app(self, name: str) -> None:
        with self._lock:
            if self._apps.pop(name, None) is None:
                raise RackError(404, f"app not found: {name}")


def route_permission(method: str, path: str) -> tuple[str, str | None] | None:
    """(permission, app name) for a rack-proxy request, or None when the route does not exist."""
    parts = [p for p in path.split("/") if p]
    if method == "GET" and parts == ["system"]:
        return "convox:rack:read", None
    if parts == ["apps"]:
        return {"GET": ("convox:app:list", None), "POST": ("convox:app:create", None)}.get(method)
    if len(parts) == 2 and parts[0] == "apps":
        return {"GET": ("convox:app:read", parts[1]), "DELETE": ("convox:app:delete", parts[1])}.get(method)
    return None
