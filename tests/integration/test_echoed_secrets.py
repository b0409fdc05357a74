"""A gateway that echoes what it was sent never gets a secret onto the terminal (issue 20, item 9).

The hostile gateway below answers errors (503, 400, 500) whose text repeats the request it got
(its JSON body and every header) and every secret it has been sent before in this run: the login
``state`` and ``code_verifier``, an MFA code (in a body or an ``X-Mfa-Totp`` header), the session
token, and the run's own secrets (``--api-token``, ``--mfa-code``).  Whichever request carried
them, and whichever phase fails (``/start``, ``/complete``, ``/mfa``, a command), none of them
appears in stdout, stderr or the ``-v`` trace.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from rgw.cli import run
from rgw.cli.app import App, Options
from rgw.testing.server import running_app
from tests.integration.conftest import Cli

pytestmark = pytest.mark.anyio

STATE = "STATE-SECRET-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
VERIFIER = "VERIFIER-SECRET-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
SESSION = "rgw_sess_SESSION-SECRET-cccccccccccccccccccccccc"
API_TOKEN = "rgw_token_API-SECRET-dddddddddddddddddddddd"
CODE = "246813"
#: Every secret above, and the marker each carries: none may be seen, whole or in part.
SECRETS = (STATE, VERIFIER, SESSION, API_TOKEN, CODE)
MARKERS = ("SECRET", CODE)


class EchoingGateway:
    """Answers each route as ``script`` says; every error repeats the request and all it was ever sent.

    ``script`` maps a path to a list of statuses, used in turn (the last one repeats): 200 gives the
    route's success answer, anything else an error that echoes (JSON, or text for ``/complete``).
    """

    def __init__(self, script: dict[str, list[int]], known: tuple[str, ...] = ()) -> None:
        self.script = script
        #: What the gateway has been sent so far (it repeats all of it), and what it knows besides.
        self.seen: list[str] = list(known)
        self.calls: list[str] = []
        self.app = Starlette(routes=[Route("/{path:path}", self.answer, methods=["GET", "POST", "DELETE"])])

    async def answer(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        self.calls.append(path)
        raw = await request.body()
        body: Any = json.loads(raw) if raw else {}
        headers = {k: v for k, v in request.headers.items() if k not in ("host", "content-length")}
        # Remembered: the secrets among them (all of it would not fit in the 300 characters shown).
        fields = body.items() if isinstance(body, dict) else []
        self.seen.extend(
            str(v) for k, v in fields if k in ("state", "code_verifier", "code") and str(v) not in self.seen
        )
        self.seen.extend(v for k, v in headers.items() if k in ("authorization", "x-mfa-totp") and v not in self.seen)
        statuses = self.script.get(path, [500])
        status = statuses[min(self.calls.count(path) - 1, len(statuses) - 1)]
        if status == 200:
            return self.success(path, request)
        if status == 401:
            return JSONResponse({"error": "mfa_required"}, status_code=401, headers={"X-MFA-Required": "step-up"})
        # The secrets lead the echo: a cut at 300 characters would otherwise hide a leak.
        echo = f"seen: {' '.join(self.seen)} request: {json.dumps(body)} headers: {json.dumps(headers)}"
        if path == "/api/v1/auth/cli/complete":
            return PlainTextResponse(echo, status_code=status)
        return JSONResponse({"error": "echo " + echo, "message": echo}, status_code=status)

    def success(self, path: str, request: Request) -> Response:
        if path == "/api/v1/auth/cli/start":
            base = str(request.base_url).rstrip("/")
            return JSONResponse({"auth_url": f"{base}/sign-in/page", "state": STATE, "code_verifier": VERIFIER})
        if path == "/api/v1/auth/cli/complete":
            return JSONResponse({"status": "pending", "stage": "mfa", "mfa_methods": ["totp"]}, status_code=202)
        return JSONResponse({})


def assert_no_secret(text: str) -> None:
    for marker in MARKERS:
        assert marker not in text, f"{marker} reached the output:\n{text}"


class TypedCode:
    """The MFA prompt, answered with ``CODE`` as if typed (so only the request that sends it knows it)."""

    def __init__(self, err: io.StringIO) -> None:
        self.err = err
        self.asked = 0

    async def ask(self, prompt: str, hidden: bool = True) -> str | None:
        self.asked += 1
        return CODE

    def notify(self, text: str) -> None:
        print(text, file=self.err)


async def run_against(cli: Cli, gateway: EchoingGateway, *args: str, typed: bool = False) -> str:
    with running_app(gateway.app) as url:
        if args[0] == "login":
            args = (*args[:2], url, *args[2:])
        else:
            cli.config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            config = {"current": "prod", "gateways": {"prod": {"url": url, "token": SESSION}}}
            (cli.config_dir / "config.json").write_text(json.dumps(config))
            (cli.config_dir / "config.json").chmod(0o600)
        out, err = io.StringIO(), io.StringIO()
        prompter = TypedCode(err) if typed else None
        app = App(options=Options(config_dir=cli.config_dir), environ={}, out=out, err=err, prompter=prompter)
        code = await run(["-v", *args], obj=app)
    assert prompter is None or prompter.asked == 1
    assert code != 0, err.getvalue()
    assert "Error: " in err.getvalue()
    return out.getvalue() + err.getvalue()


LOGIN = ("login", "prod", "--no-browser", "--no-loopback", "--timeout", "2", "--mfa-code", CODE)
START = "/api/v1/auth/cli/start"
COMPLETE = "/api/v1/auth/cli/complete"
MFA = "/api/v1/auth/cli/mfa"


async def test_a_start_answer_echoing_the_runs_secrets_shows_none(cli: Cli) -> None:
    # The gateway repeats the run's own secrets (as if it had learnt them): --api-token, --mfa-code.
    gateway = EchoingGateway({START: [503, 400]}, known=(API_TOKEN, CODE))
    text = await run_against(cli, gateway, *LOGIN, "--api-token", API_TOKEN)
    assert gateway.calls[0] == START
    assert_no_secret(text)
    assert "seen: <redacted> <redacted> " in text


async def test_a_complete_answer_echoing_the_state_and_code_verifier_shows_neither(cli: Cli) -> None:
    gateway = EchoingGateway({START: [200], COMPLETE: [503]})
    text = await run_against(cli, gateway, *LOGIN)
    assert gateway.calls.count(COMPLETE) >= 1
    assert "gateway error (HTTP 503): seen: " in text  # the echo itself is shown, redacted
    assert_no_secret(text)


async def test_an_mfa_answer_echoing_the_code_and_state_shows_neither(cli: Cli) -> None:
    gateway = EchoingGateway({START: [200], COMPLETE: [200], MFA: [400]})
    text = await run_against(cli, gateway, *LOGIN)
    assert MFA in gateway.calls
    assert_no_secret(text)


async def test_a_later_answer_echoing_the_code_an_earlier_request_carried_shows_it_not(cli: Cli) -> None:
    # The code is typed at the prompt (no --mfa-code): /mfa takes it, and the next /complete (which
    # does not carry it) echoes it back with a 503.
    gateway = EchoingGateway({START: [200], COMPLETE: [200, 503], MFA: [200]})
    text = await run_against(cli, gateway, *LOGIN[:-2], typed=True)
    assert gateway.calls.index(MFA) < len(gateway.calls) - 1
    assert CODE in gateway.seen
    assert_no_secret(text)


async def test_a_command_answer_echoing_the_session_and_step_up_code_shows_neither(cli: Cli) -> None:
    apps = "/api/v1/rack-proxy/apps"
    gateway = EchoingGateway({apps: [401, 400]})
    text = await run_against(cli, gateway, "apps", "--mfa-code", CODE, "--timeout", "2")
    assert gateway.calls.count(apps) == 2  # the step-up retry carried X-Mfa-Totp ...
    assert CODE in gateway.seen  # ... which the 400 repeats
    assert_no_secret(text)
