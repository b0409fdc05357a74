"""Roles and permissions of the reference gateway.

Permission strings are `<scope>:<resource>:<action>`.  Roles nest (viewer < ops < deployer < admin);
`cicd` is the deployer's set for API tokens, and `*` (admin) grants everything.  A denial names the
least role that would have been enough: `permission denied: convox:app:delete requires admin role`.
"""

from __future__ import annotations

from collections.abc import Iterable

VIEWER = (
    "convox:app:list", "convox:app:read", "convox:build:list", "convox:instance:list",
    "convox:log:read", "convox:process:list", "convox:rack:read",
)
OPS = (
    "convox:app:restart", "convox:env:read", "convox:process:exec", "convox:process:start",
    "convox:process:terminate", "convox:release:list",
)
DEPLOYER = (
    "convox:app:create", "convox:app:update", "convox:build:create", "convox:env:set",
    "convox:release:create", "convox:release:promote", "convox:deploy-approval:request",
)
ADMIN_ONLY = (
    "convox:app:delete", "api-token:list", "api-token:read", "api-token:create", "api-token:delete",
    "admin:sessions:revoke", "admin:users:manage",
)

ROLE_ORDER = ("viewer", "ops", "deployer", "admin")
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "viewer": VIEWER,
    "ops": VIEWER + OPS,
    "deployer": VIEWER + OPS + DEPLOYER,
    "cicd": VIEWER + OPS + DEPLOYER,
    "admin": ("*",),
}
ALL_PERMISSIONS: tuple[str, ...] = VIEWER + OPS + DEPLOYER + ADMIN_ONLY

# Permissions that need a recent MFA verification when the user is enrolled.
STEP_UP = frozenset({"convox:app:delete", "convox:env:set", "convox:release:promote", "api-token:create"})


def permissions_for_roles(roles: Iterable[str]) -> set[str]:
    granted: set[str] = set()
    for role in roles:
        granted.update(ROLE_PERMISSIONS.get(role, ()))
    return granted


def allows(granted: Iterable[str], permission: str) -> bool:
    granted_set = set(granted)
    if "*" in granted_set or permission in granted_set:
        return True
    scope, _, _ = permission.rpartition(":")
    return f"{scope}:*" in granted_set


def required_role(permission: str) -> str:
    """The least role that grants `permission`."""
    for role in ROLE_ORDER:
        if allows(ROLE_PERMISSIONS[role], permission):
            return role
    return "admin"


def denial(permission: str) -> str:
    return f"permission denied: {permission} requires {required_role(permission)} role"


def expand(role: str | None, permissions: Iterable[str] | None) -> list[str]:
    """The permission list an API token stores: its role's set, or the explicit list."""
    if permissions:
        return sorted(set(permissions))
    if role is not None:
        return list(ROLE_PERMISSIONS[role])
    return []


def unknown_permissions(permissions: Iterable[str]) -> list[str]:
    known = set(ALL_PERMISSIONS) | {"*"}
    return [p for p in permissions if p not in known and not (p.endswith(":*") and p.count(":") >= 1)]


def catalogue() -> dict[str, object]:
    """The body of `GET /api/v1/api-tokens/permissions`."""
    roles = {role: sorted(ALL_PERMISSIONS) if perms == ("*",) else list(perms)
             for role, perms in ROLE_PERMISSIONS.items()}
    return {"roles": roles, "permissions": list(ALL_PERMISSIONS)}
