"""Authenticated routes of the reference gateway: info, MFA, the rack proxy, API tokens, admin.

JSON routes answer `{"error": ...}`; the rack proxy answers text/plain errors like a Convox rack
behind the Go gateway.  Credentials, RBAC and step-up are checked by `web.authorize`.
"""

from __future__ import annotations

from typing import Any

import pyotp
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import rgw

from . import rbac
from .rack import RackError, route_permission
from .sessions import Principal
from .store import ApiTokenRow
from .timefmt import rfc3339, rfc3339_or_none
from .web import (
    Reply,
    authenticate,
    authorize,
    base_url,
    endpoint,
    gateway_of,
    json_error,
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
    session = None
    if p.session is not None:
        session = {"expires_at": rfc3339(p.session.expires_at), "id": p.session.id}
    return JSONResponse({
        "user": {"email": p.email, "name": p.name, "roles": p.roles, "mfa_enrolled": gw.mfa.enrolled(p.email),
                 "mfa_required": p.mfa_required},
        "rack": {"name": gw.settings.rack_name, "alias": gw.settings.rack_name, "host": request.url.netloc},
        "integrations": {},
        "version": {"version": rgw.__version__, "commit_hash": "reference"},
        "session": session,
    })


def _session_principal(request: Request) -> Principal:
    p = authenticate(request)
    require_session(p)
    return p


@endpoint
async def mfa_status(request: Request) -> Response:
    p = _session_principal(request)
    gw = gateway_of(request)
    methods = gw.store.mfa_methods(p.email)
    kinds = [m.type for m in methods]
    step_up = None
    if p.session is not None and p.session.mfa_verified_at is not None:
        until = p.session.mfa_verified_at + gw.settings.step_up_window
        step_up = rfc3339(until) if until > gw.settings.clock() else None
    return JSONResponse({
        "enrolled": bool(methods), "required": p.mfa_required,
        "methods": [{"id": m.id, "type": m.type, "label": m.label, "cli_capable": True,
                     "created_at": rfc3339(m.created_at), "last_used_at": rfc3339_or_none(m.last_used_at)}
                    for m in methods],
        "recent_step_up_expires_at": step_up,
        "preferred_method": "totp" if "totp" in kinds else ("webauthn" if kinds else None),
    })


def _verified(request: Request, p: Principal) -> Response:
    assert p.session is not None
    until = gateway_of(request).sessions.record_step_up(p.session.id)
    return JSONResponse({"verified": True, "step_up_expires_at": rfc3339(until)})


@endpoint
async def mfa_verify(request: Request) -> Response:
    p = _session_principal(request)
    body = await read_json(request)
    code = body.get("code")
    gateway_of(request).mfa.verify_code(p.email, code if isinstance(code, str) else None)
    return _verified(request, p)


@endpoint
async def assertion_start(request: Request) -> Response:
    p = _session_principal(request)
    return JSONResponse(gateway_of(request).mfa.assertion_start(p.email, base_url(request)))


@endpoint
async def assertion_verify(request: Request) -> Response:
    p = _session_principal(request)
    body = await read_json(request)
    gateway_of(request).mfa.assertion_verify(p.email, body.get("session_data"), body.get("assertion_response"))
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
        p.email, body.get("session_data"), body.get("registration_response"),
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


def _token_json(row: ApiTokenRow) -> dict[str, Any]:
    return {"id": row.id, "public_id": row.public_id, "name": row.name, "permissions": row.permissions,
            "user_email": row.user_email, "created_at": rfc3339(row.created_at),
            "last_used_at": rfc3339_or_none(row.last_used_at), "expires_at": rfc3339_or_none(row.expires_at)}


@endpoint
async def tokens_list(request: Request) -> Response:
    authorize(request, "api-token:list")
    return JSONResponse([_token_json(t) for t in gateway_of(request).sessions.tokens()])


@endpoint
async def token_permissions(request: Request) -> Response:
    authenticate(request)
    return JSONResponse(rbac.catalogue())


@endpoint
async def token_get(request: Request) -> Response:
    authorize(request, "api-token:read")
    row = gateway_of(request).sessions.token(request.path_params["public_id"])
    return json_error(404, "api token not found") if row is None else JSONResponse(_token_json(row))


@endpoint
async def token_delete(request: Request) -> Response:
    authorize(request, "api-token:delete")
    if not gateway_of(request).sessions.delete_token(request.path_params["public_id"]):
        return json_error(404, "api token not found")
    return Response(status_code=204)


@endpoint
async def token_create(request: Request) -> Response:
    p = authorize(request, "api-token:create")
    body = await read_json(request)
    gw = gateway_of(request)
    name = _str_field(body, "name")
    role, perms, owner = body.get("role"), body.get("permissions"), body.get("user_email") or p.email
    if (role is not None and not isinstance(role, str)) or not isinstance(owner, str) or (
            perms is not None and not (isinstance(perms, list) and all(isinstance(x, str) for x in perms))):
        return json_error(400, "invalid request")
    if gw.store.user(owner) is None:
        return json_error(400, f"unknown user: {owner}")
    try:
        token, row = gw.sessions.create_token(name, role=role, permissions=perms, user_email=owner)
    except ValueError as exc:
        return json_error(400, str(exc))
    return JSONResponse({"token": token, "id": row.id, "name": row.name, "permissions": row.permissions,
                         "api_token": _token_json(row)}, 201)


@endpoint
async def admin_revoke(request: Request) -> Response:
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
