"""Authenticated routes of the reference gateway: info, MFA, the rack proxy, API tokens, admin.

JSON routes answer `{"error": ...}`; the rack proxy answers text/plain errors like a Convox rack
behind the Go gateway.  Credentials, MFA enrolment, RBAC and MFA are checked by `web.authorize`.
API tokens have the deployed gateway's shapes in both modes (`handlers/admin_tokens.go`,
`db/types.go`); the admin routes are reference-only and answer 404 in deployed mode.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pyotp
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import rgw

from . import ratelimit, rbac
from .core import Gateway
from .mfa import MfaError
from .rack import RackError, route_permission
from .sessions import Principal
from .store import ApiTokenRow
from .timefmt import rfc3339, rfc3339_or_none
from .web import (
    Reply,
    authenticate,
    authenticate_user,
    authorize,
    base_url,
    endpoint,
    enforce_rate_limit,
    gateway_of,
    json_error,
    not_found,
    read_form,
    read_json,
    require_session,
    text_error,
)


def _str_field(body: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = body.get(name)
    if isinstance(value, str) and (value or not required):
        return value
    if value is None and not required:
        return ""
    raise Reply(json_error(400, "invalid request", f"field {name!r} must be a non-empty string"))


@endpoint
async def info(request: Request) -> Response:
    p = authenticate(request)
    gw = gateway_of(request)
    if not gw.settings.extensions:
        return JSONResponse(_deployed_info(request, gw, p))
    session = None
    if p.session is not None:
        session = {"expires_at": rfc3339(p.session.expires_at), "id": p.session.id}
    return JSONResponse(
        {
            "user": {
                "email": p.email,
                "name": p.name,
                "roles": p.roles,
                "mfa_enrolled": gw.mfa.enrolled(p.email),
                "mfa_required": p.mfa_required,
            },
            "rack": {"name": gw.settings.rack_name, "alias": gw.settings.rack_name, "host": request.url.netloc},
            "integrations": {},
            "version": {"version": rgw.__version__, "commit_hash": "reference"},
            "session": session,
        }
    )


def _preferred_method(gw: Gateway, email: str) -> str | None:
    kinds = [m.type for m in gw.store.mfa_methods(email)]
    return "totp" if "totp" in kinds else ("webauthn" if kinds else None)


def _deployed_info(request: Request, gw: Gateway, p: Principal) -> dict[str, Any]:
    """`GET /info` as the Go server answers it (`handlers/api_handler_info.go`): no session object, the
    token owner's name and no roles for API tokens, optional fields left out when unset."""
    owner = gw.store.user(p.email)
    user: dict[str, Any] = {
        "email": p.email,
        "name": owner.name if owner is not None else p.name,
        "roles": [] if p.session is None else p.roles,
        "mfa_enrolled": gw.mfa.enrolled(p.email),
        "mfa_required": owner.mfa_required if owner is not None else False,
    }
    preferred = _preferred_method(gw, p.email)
    if preferred is not None:
        user["preferred_mfa_method"] = preferred
    if p.session is not None and p.session.mfa_verified_at is not None:
        user["recent_step_up_expires_at"] = rfc3339(p.session.mfa_verified_at + gw.settings.step_up_window)
    user["has_trusted_device"] = False
    return {
        "user": user,
        "rack": {"name": gw.settings.rack_name, "alias": gw.settings.rack_name, "host": request.url.netloc},
        "integrations": {"slack": False, "github": False, "circleci": False},
        "version": {"version": rgw.__version__, "commit_hash": "reference"},
    }


def _session_principal(request: Request) -> Principal:
    """The caller of an `/auth/mfa/*` route: authenticated, then rate-limited, then a session."""
    p = authenticate(request)
    enforce_rate_limit(request, ratelimit.MFA)
    require_session(p)
    return p


def _mfa_refused(request: Request, exc: MfaError) -> Response:
    """A refused code on `/auth/mfa/*`: the deployed gateway says `400 {"error": <its text>}`."""
    if gateway_of(request).settings.extensions:
        return json_error(exc.status, exc.code, exc.message)
    return json_error(400, exc.detail)


@endpoint
async def mfa_status(request: Request) -> Response:
    p = _session_principal(request)
    gw = gateway_of(request)
    methods = gw.store.mfa_methods(p.email)
    step_up = None
    if p.session is not None and p.session.mfa_verified_at is not None:
        until = p.session.mfa_verified_at + gw.settings.step_up_window
        step_up = rfc3339(until) if until > gw.settings.clock() else None
    preferred = _preferred_method(gw, p.email)
    if not gw.settings.extensions:
        return JSONResponse(_deployed_mfa_status(gw, p, step_up, preferred))
    return JSONResponse(
        {
            "enrolled": bool(methods),
            "required": p.mfa_required,
            "methods": [
                {
                    "id": m.id,
                    "type": m.type,
                    "label": m.label,
                    "cli_capable": True,
                    "created_at": rfc3339(m.created_at),
                    "last_used_at": rfc3339_or_none(m.last_used_at),
                }
                for m in methods
            ],
            "recent_step_up_expires_at": step_up,
            "preferred_method": preferred,
        }
    )


def _deployed_mfa_status(gw: Gateway, p: Principal, step_up: str | None, preferred: str | None) -> dict[str, Any]:
    """`GET /auth/mfa/status` in the Go server's shape (`MFAStatusResponse`): unset optional fields
    are left out, and it reports trusted devices (none here), backup codes and WebAuthn availability."""
    methods = []
    for m in gw.store.mfa_methods(p.email):
        method: dict[str, Any] = {
            "id": m.id,
            "type": m.type,
            "label": m.label,
            "cli_capable": True,
            "created_at": rfc3339(m.created_at),
            "confirmed_at": rfc3339(m.created_at),
        }
        if m.last_used_at is not None:
            method["last_used_at"] = rfc3339(m.last_used_at)
        methods.append(method)
    codes = gw.store.row(
        "SELECT COUNT(*), SUM(used_at IS NULL), MAX(used_at) FROM backup_codes WHERE email = ?", (p.email,)
    )
    total, unused, last_used = (int(codes[0]), int(codes[1] or 0), codes[2]) if codes is not None else (0, 0, None)
    backup: dict[str, Any] = {"total": total, "unused": unused}
    if last_used is not None:
        backup["last_used_at"] = rfc3339(last_used)
    body: dict[str, Any] = {
        "enrolled": bool(methods),
        "required": p.mfa_required,
        "methods": methods,
        "trusted_devices": [],
        "backup_codes": backup,
    }
    if step_up is not None:
        body["recent_step_up_expires_at"] = step_up
    if preferred is not None:
        body["preferred_method"] = preferred
    body["webauthn_available"] = True
    return body


def _verified(request: Request, p: Principal) -> Response:
    """The deployed gateway's answer to a verification (plus the older fields, with extensions)."""
    assert p.session is not None
    gw = gateway_of(request)
    until = gw.sessions.record_step_up(p.session.id)
    body: dict[str, Any] = {
        "mfa_verified_at": rfc3339(gw.settings.clock()),
        "recent_step_up_expires_at": rfc3339(until),
        "trusted_device_cookie": False,
    }
    if gw.settings.extensions:
        body.update({"verified": True, "step_up_expires_at": rfc3339(until)})
    return JSONResponse(body)


@endpoint
async def mfa_verify(request: Request) -> Response:
    p = _session_principal(request)
    body = await read_json(request)
    code = body.get("code")
    if not gateway_of(request).settings.extensions and not (isinstance(code, str) and code):
        return json_error(400, "invalid request")  # the Go server's `binding:"required"`
    try:
        gateway_of(request).mfa.verify_code(p.email, code if isinstance(code, str) else None)
    except MfaError as exc:
        return _mfa_refused(request, exc)
    return _verified(request, p)


@endpoint
async def assertion_start(request: Request) -> Response:
    p = _session_principal(request)
    return JSONResponse(gateway_of(request).mfa.assertion_start(p.email, base_url(request)))


@endpoint
async def assertion_verify(request: Request) -> Response:
    p = _session_principal(request)
    body = await read_json(request)
    session_data, assertion = body.get("session_data"), body.get("assertion_response")
    if not gateway_of(request).settings.extensions and not (
        isinstance(session_data, str) and session_data and isinstance(assertion, str) and assertion
    ):
        # The Go server binds both as required strings: an assertion sent as a JSON object is refused.
        return json_error(400, "invalid request")
    try:
        gateway_of(request).mfa.assertion_verify(p.email, session_data, assertion)
    except MfaError as exc:
        return _mfa_refused(request, exc)
    return _verified(request, p)


@endpoint
async def register_start(request: Request) -> Response:
    p = _session_principal(request)
    return JSONResponse(gateway_of(request).mfa.registration_start(p.email, p.name, base_url(request)))


@endpoint
async def register_finish(request: Request) -> Response:
    p = _session_principal(request)
    body = await read_json(request)
    label = body.get("label")
    method_id = gateway_of(request).mfa.registration_finish(
        p.email,
        body.get("session_data"),
        body.get("registration_response"),
        label if isinstance(label, str) else "",
    )
    return JSONResponse({"id": method_id, "type": "webauthn"})


@endpoint
async def totp_enroll(request: Request) -> Response:
    p = _session_principal(request)
    gw = gateway_of(request)
    secret = gw.mfa.enroll_totp(p.email)
    codes = gw.mfa.generate_backup_codes(p.email)
    uri = pyotp.TOTP(secret).provisioning_uri(name=p.email, issuer_name="Rack Gateway")
    return JSONResponse({"secret": secret, "uri": uri, "backup_codes": codes})


@endpoint
async def rack_proxy(request: Request) -> Response:
    authenticate(request, text=True)
    path = request.path_params.get("path", "")
    route = route_permission(request.method, path)
    if route is None:
        return text_error(404, f"not found: {request.method} /{path}")
    permission, app_name = route
    authorize(request, permission, text=True)
    rack = gateway_of(request).rack
    try:
        if app_name is None and path.strip("/") == "system":
            return JSONResponse(rack.system())
        if app_name is None and request.method == "GET":
            return JSONResponse(rack.apps())
        if app_name is None:
            name = await _app_name(request)
            return JSONResponse(rack.create_app(name))
        if request.method == "DELETE":
            rack.delete_app(app_name)
            return JSONResponse({"success": True})
        return JSONResponse(rack.app(app_name))
    except RackError as exc:
        return text_error(exc.status, exc.text)


async def _app_name(request: Request) -> str:
    if "json" in request.headers.get("content-type", ""):
        try:
            body = await read_json(request)
        except Reply:
            raise Reply(text_error(400, "invalid request")) from None
        name = body.get("name")
    else:
        name = (await read_form(request)).get("name")
    if not isinstance(name, str) or not name:
        raise Reply(text_error(400, "name required"))
    return name


def _token_json(gw: Gateway, row: ApiTokenRow, *, creator_details: bool = True) -> dict[str, Any]:
    """A token record as the deployed gateway sends it (`db.APIToken`); the creator's email and name
    come from a join in lists and look-ups, not in the create answer."""
    record: dict[str, Any] = {
        "id": row.id,
        "public_id": row.public_id,
        "name": row.name,
        "user_id": gw.store.user_id(row.user_email) or 0,
    }
    creator = gw.store.user(row.created_by) if row.created_by else None
    if creator is not None:
        record["created_by_user_id"] = creator.id
        if creator_details:
            record["created_by_email"] = creator.email
            if creator.name:
                record["created_by_name"] = creator.name
    record.update(
        {
            "permissions": row.permissions,
            "created_at": rfc3339(row.created_at),
            "expires_at": rfc3339_or_none(row.expires_at),
            "last_used_at": rfc3339_or_none(row.last_used_at),
        }
    )
    return record


def _public_id(request: Request) -> str | None:
    """The path's token id as the database's UUID column reads it, or None when it is not a UUID."""
    try:
        return str(uuid.UUID(request.path_params["public_id"].strip()))
    except ValueError:
        return None


@endpoint
async def tokens_list(request: Request) -> Response:
    authorize(request, "api-token:list")
    gw = gateway_of(request)
    rows = sorted(gw.sessions.tokens(), key=lambda t: (t.created_at, t.id), reverse=True)
    # newest first, and JSON null (a nil Go slice) when there are none
    return JSONResponse([_token_json(gw, t) for t in rows] or None)


@endpoint
async def token_permissions(request: Request) -> Response:
    p = authenticate_user(request)
    gw = gateway_of(request)
    owner = gw.store.user(p.email)
    return JSONResponse(rbac.catalogue(owner.roles if owner is not None else []))


@endpoint
async def token_get(request: Request) -> Response:
    authorize(request, "api-token:read")
    gw = gateway_of(request)
    public_id = _public_id(request)
    if public_id is None:
        return json_error(404, "token not found")  # the UUID column refuses the query
    row = gw.sessions.token(public_id)
    return JSONResponse(None if row is None else _token_json(gw, row))  # unknown: 200 null


@endpoint
async def token_delete(request: Request) -> Response:
    authorize(request, "api-token:delete")
    public_id = _public_id(request)
    if public_id is None:
        return json_error(500, "failed to load token")
    if not gateway_of(request).sessions.delete_token(public_id):
        return json_error(404, "token not found")
    return Response(status_code=204)


NAME_REQUIRED = "Key: 'CreateAPITokenRequest.Name' Error:Field validation for 'Name' failed on the 'required' tag"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@endpoint
async def token_create(request: Request) -> Response:
    """`POST /api-tokens` as the deployed gateway answers it.

    A `role` is accepted as there: its permissions are used when no `permissions` are given (an
    unknown role is a 400), and it is ignored when they are.
    """
    p = authorize(request, "api-token:create")
    enforce_rate_limit(request, ratelimit.TOKEN_CREATE)
    body = await read_json(request)
    gw = gateway_of(request)
    name, role, perms, owner = body.get("name"), body.get("role"), body.get("permissions"), body.get("user_email")
    if not isinstance(name, str) or not name:
        return json_error(400, NAME_REQUIRED)
    if (
        (role is not None and not isinstance(role, str))
        or (owner is not None and not isinstance(owner, str))
        or (perms is not None and not (isinstance(perms, list) and all(isinstance(x, str) for x in perms)))
    ):
        return json_error(400, "invalid request")
    name = name.strip()
    role = (role or "").strip().lower()
    permissions = list(perms or [])
    if role and not permissions:
        if role not in rbac.ROLE_PERMISSIONS:
            return json_error(400, f"invalid role: {role} (valid roles: viewer, ops, deployer, cicd, admin)")
        permissions = sorted(rbac.ROLE_PERMISSIONS[role])
    if not permissions:
        return json_error(400, "permissions required - specify --role or --permission")
    owner_email = (owner or "").strip().lower() or p.email
    if gw.store.user(owner_email) is None:
        return json_error(404, "user not found")
    if not name:
        return json_error(400, "token name is required")
    if _CONTROL.search(name):
        return json_error(400, "token name must not contain control characters")
    if gw.sessions.token_name_taken(name):
        return json_error(400, "token name already exists")
    unknown = rbac.unknown_permissions(permissions)
    if unknown:
        return json_error(400, f"unknown permission: {unknown[0]}")
    token, row = gw.sessions.create_token(
        name, role=None, permissions=permissions, user_email=owner_email, created_by=p.email
    )
    return JSONResponse(
        {
            "token": token,
            "id": row.id,
            "name": row.name,
            "permissions": row.permissions,
            "api_token": _token_json(gw, row, creator_details=False),
        }
    )


@endpoint
async def admin_revoke(request: Request) -> Response:
    if not gateway_of(request).settings.extensions:
        return not_found()  # reference-only: the Go server has no such route
    authorize(request, "admin:sessions:revoke")
    body = await read_json(request)
    gw = gateway_of(request)
    email, session_id = body.get("email"), body.get("session_id")
    if isinstance(session_id, int) and not isinstance(session_id, bool):
        return JSONResponse({"revoked": gw.sessions.revoke(session_id, "revoked")})
    if isinstance(email, str) and email:
        return JSONResponse({"revoked": gw.sessions.revoke_user(email, "revoked")})
    return json_error(400, "invalid request")


@endpoint
async def admin_user_mfa(request: Request) -> Response:
    if not gateway_of(request).settings.extensions:
        return not_found()
    authorize(request, "admin:users:manage")
    body = await read_json(request)
    gw = gateway_of(request)
    email, required = body.get("email"), body.get("required")
    if not isinstance(email, str) or not isinstance(required, bool):
        return json_error(400, "invalid request")
    if gw.store.user(email) is None:
        return json_error(404, "user not found")
    gw.set_mfa_required(email, required)
    return JSONResponse({"email": email.lower(), "mfa_required": required})


ROUTES = [
    Route("/api/v1/info", info),
    Route("/api/v1/auth/mfa/status", mfa_status),
    Route("/api/v1/auth/mfa/verify", mfa_verify, methods=["POST"]),
    Route("/api/v1/auth/mfa/webauthn/assertion/start", assertion_start, methods=["POST"]),
    Route("/api/v1/auth/mfa/webauthn/assertion/verify", assertion_verify, methods=["POST"]),
    Route("/api/v1/auth/mfa/webauthn/register/start", register_start, methods=["POST"]),
    Route("/api/v1/auth/mfa/webauthn/register/finish", register_finish, methods=["POST"]),
    Route("/api/v1/auth/mfa/totp/enroll", totp_enroll, methods=["POST"]),
    Route("/api/v1/rack-proxy/{path:path}", rack_proxy, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    Route("/api/v1/api-tokens", tokens_list, methods=["GET"]),
    Route("/api/v1/api-tokens", token_create, methods=["POST"]),
    Route("/api/v1/api-tokens/permissions", token_permissions, methods=["GET"]),
    Route("/api/v1/api-tokens/{public_id}", token_get, methods=["GET"]),
    Route("/api/v1/api-tokens/{public_id}", token_delete, methods=["DELETE"]),
    Route("/api/v1/admin/sessions/revoke", admin_revoke, methods=["POST"]),
    Route("/api/v1/admin/users/mfa", admin_user_mfa, methods=["POST"]),
]
