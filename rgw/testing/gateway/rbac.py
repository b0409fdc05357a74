"""Roles and permissions of the reference gateway.

Permission strings are `<scope>:<resource>:<action>`.  Roles nest (viewer < ops < deployer < admin);
`cicd` is the deployer's set for API tokens, and `*` (admin) grants everything.  A denial names the
least role that would have been enough: `permission denied: convox:app:delete requires admin role`.
The permission catalogue (`GET /api/v1/api-tokens/permissions`) has the deployed gateway's shape, with
its role labels and descriptions (`internal/gateway/rbac/roles_config.go`, `handlers/admin_tokens.go`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

VIEWER = (
    "convox:app:list",
    "convox:app:read",
    "convox:build:list",
    "convox:instance:list",
    "convox:log:read",
    "convox:process:list",
    "convox:rack:read",
)
OPS = (
    "convox:app:restart",
    "convox:env:read",
    "convox:process:exec",
    "convox:process:start",
    "convox:process:terminate",
    "convox:release:list",
)
DEPLOYER = (
    "convox:app:create",
    "convox:app:update",
    "convox:build:create",
    "convox:env:set",
    "convox:release:create",
    "convox:release:promote",
    "convox:deploy-approval:request",
)
ADMIN_ONLY = (
    "convox:app:delete",
    "api-token:list",
    "api-token:read",
    "api-token:create",
    "api-token:delete",
    "admin:sessions:revoke",
    "admin:users:manage",
)

ROLE_ORDER = ("viewer", "ops", "deployer", "admin")
# The order, labels and descriptions of the deployed gateway's role catalogue.
CATALOGUE_ORDER = ("viewer", "ops", "deployer", "cicd", "admin")
ROLE_METADATA: dict[str, tuple[str, str]] = {
    "viewer": ("Viewer", "Read-only access to apps, builds, processes, and rack status"),
    "ops": ("Operations", "Restart apps, manage processes, and view environments"),
    "deployer": ("Deployer", "Full deployment permissions including env updates"),
    "cicd": ("CI/CD", "Recommended scope for automation tokens (not assignable to human users)"),
    "admin": ("Admin", "Complete access to all gateway operations"),
}
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "viewer": VIEWER,
    "ops": VIEWER + OPS,
    "deployer": VIEWER + OPS + DEPLOYER,
    "cicd": VIEWER + OPS + DEPLOYER,
    "admin": ("*",),
}
ALL_PERMISSIONS: tuple[str, ...] = VIEWER + OPS + DEPLOYER + ADMIN_ONLY

# Permissions that need a recent MFA verification when the user is enrolled.
STEP_UP = frozenset({"convox:app:delete", "convox:env:set", "convox:release:promote"})
# Gateway routes that need an MFA code with the request itself, from a session (API tokens pass):
# the deployed gateway's MFAAlways level for creating and deleting API tokens.
ALWAYS_MFA = frozenset({"api-token:create", "api-token:delete"})


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
    """The permission list an API token stores: the explicit list as given, else its role's set."""
    if permissions:
        return list(permissions)
    if role is not None:
        return list(ROLE_PERMISSIONS[role])
    return []


def unknown_permissions(permissions: Iterable[str]) -> list[str]:
    known = set(ALL_PERMISSIONS) | {"*"}
    return [p for p in permissions if p not in known and not (p.endswith(":*") and p.count(":") >= 1)]


def catalogue(user_roles: Iterable[str]) -> dict[str, Any]:
    """The body of `GET /api/v1/api-tokens/permissions` for a caller with `user_roles`.

    Like the deployed gateway: `roles` is a list of `{name, label, description, permissions}` in
    catalogue order with sorted permissions (admin's is its wildcard), `permissions` every permission
    sorted with the wildcard last, `user_roles`/`user_permissions` the caller's (sorted), and
    `default_permissions` the recommended set for automation tokens (cicd's).
    """
    roles = [
        {
            "name": role,
            "label": ROLE_METADATA[role][0],
            "description": ROLE_METADATA[role][1],
            "permissions": sorted(ROLE_PERMISSIONS[role]),
        }
        for role in CATALOGUE_ORDER
    ]
    mine = sorted(set(user_roles))
    return {
        "permissions": [*sorted(ALL_PERMISSIONS), "*"],
        "roles": roles,
        "user_roles": mine,
        "user_permissions": sorted(permissions_for_roles(mine)),
        "default_permissions": sorted(ROLE_PERMISSIONS["cicd"]),
    }
