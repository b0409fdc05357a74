"""MFA from the CLI against the reference gateway over real sockets: TOTP, backup codes and security
keys (a software CTAP2 authenticator), at login and for step-up; wrong and reused codes, the
lock-out margin, runs without a terminal, API tokens, the browser racing the terminal, and
``test-auth mfa``.  Each test gets its own gateway, so TOTP codes start unused."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pyotp
import pytest

from rgw.cli import run
from rgw.cli.app import App, Options
from rgw.client import GatewayClient, parse_json
from rgw.login.mfa import MfaSettings, StepUpMfa
from rgw.testing import RunningGateway, ScriptedBrowser
from rgw.testing.authenticator import SoftAuthenticator
from rgw.testing.enrol import create_credential
from tests.integration.conftest import CliResult

pytestmark = pytest.mark.anyio

MFA_USER = "mfa@example.com"
KEY_USER = "key@example.com"
ADMIN = "admin@example.com"

Answer = str | Callable[[], str] | None


@dataclass
class ScriptedPrompter:
    """A user at a terminal: answers the prompts in turn, then (``block``) waits, or gives up (None).

    Everything it is asked and told goes to ``stream`` too, as the terminal prompter writes to stderr.
    """

    answers: list[Answer] = field(default_factory=list)
    block: bool = False
    stream: io.StringIO | None = None
    prompts: list[tuple[str, bool]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    waiting: anyio.Event | None = None
    cancelled: bool = False

    async def ask(self, prompt: str, hidden: bool = True) -> str | None:
        self.prompts.append((prompt, hidden))
        self._write(prompt)
        if self.answers:
            answer = self.answers.pop(0)
            return answer() if callable(answer) else answer
        if not self.block:
            return None
        if self.waiting is None:
            self.waiting = anyio.Event()
        self.waiting.set()
        try:
            await anyio.sleep_forever()
        finally:
            self.cancelled = True
        raise AssertionError("unreachable")

    async def wait_until_asked(self) -> None:
        if self.waiting is None:
            self.waiting = anyio.Event()
        await self.waiting.wait()

    def notify(self, text: str) -> None:
        self.notices.append(text)
        self._write(text)

    def _write(self, text: str) -> None:
        if self.stream is not None:
            print(text, file=self.stream)


class NeverAsk(ScriptedPrompter):
    async def ask(self, prompt: str, hidden: bool = True) -> str | None:
        raise AssertionError(f"prompted ({prompt!r}) where no prompt may appear")


@dataclass
class MfaCli:
    """``rack-gateway`` in-process with a scripted prompter and injected security keys."""

    config_dir: Path
    gw: RunningGateway

    async def __call__(
        self,
        *args: str,
        email: str = MFA_USER,
        prompter: ScriptedPrompter | None = None,
        devices: Sequence[Any] | None = None,
        browser: Any = None,
    ) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        if prompter is not None:
            prompter.stream = err
        app = App(
            options=Options(config_dir=self.config_dir),
            environ={},
            out=out,
            err=err,
            browser=browser or ScriptedBrowser(email=email),
            interactive=False,
            prompter=prompter,
            webauthn_devices=devices,
        )
        code = await run(list(args), obj=app)
        return CliResult(code, out.getvalue(), err.getvalue())

    async def login(self, *global_options: str, **kwargs: Any) -> CliResult:
        """``rack-gateway [--mfa-method M] [--mfa-code C] login dev URL``."""
        return await self(*global_options, "login", "dev", self.gw.url, "--timeout", "60", **kwargs)

    def token(self, rack: str = "dev") -> str:
        data = json.loads((self.config_dir / "config.json").read_text())
        return str(data["gateways"][rack]["token"])

    def entry(self, rack: str = "dev") -> dict[str, Any]:
        return dict(json.loads((self.config_dir / "config.json").read_text())["gateways"][rack])


@pytest.fixture
def mcli(tmp_path: Path, gateway: RunningGateway) -> MfaCli:
    return MfaCli(tmp_path / "config", gateway)


def totp(secret: str, later: int = 0) -> str:
    """The code of the current 30 s step, or of the step ``later`` steps on (the gateway takes +-1)."""
    return pyotp.TOTP(secret).at(int(time.time()) + 30 * later)


def wrong_code(secret: str) -> str:
    now = int(time.time())
    valid = {pyotp.TOTP(secret).at(now + 30 * k) for k in (-2, -1, 0, 1, 2)}
    return next(c for c in ("000000", "111111", "222222") if c not in valid)


def secret_of(gw: RunningGateway, email: str = MFA_USER) -> str:
    secret = gw.gateway.totp_secret(email)
    assert secret is not None
    return secret


def err_lines(result: CliResult) -> list[str]:
    return [line.strip() for line in result.err.splitlines() if line.strip()]


async def register_key(gw: RunningGateway, token: str, label: str = "soft key") -> SoftAuthenticator:
    """Register a software security key through the gateway's WebAuthn registration routes."""
    key = SoftAuthenticator()
    async with GatewayClient(gw.url, token=token) as client:
        started = parse_json(await client.request("POST", "/api/v1/auth/mfa/webauthn/register/start"))
        registration = await create_credential(started["options"], client.base_url, devices=[key])
        body = {"session_data": started["session_data"], "registration_response": registration, "label": label}
        await client.request("POST", "/api/v1/auth/mfa/webauthn/register/finish", json_body=body)
    return key


# -- at login ------------------------------------------------------------------------------------


async def test_totp_at_login_prints_the_seed_lines(mcli: MfaCli) -> None:
    code = totp(secret_of(mcli.gw))
    prompter = ScriptedPrompter([code])
    result = await mcli.login(prompter=prompter)
    assert result.code == 0, result.err
    assert result.out == f"Logged in as {MFA_USER}\n"
    lines = err_lines(result)
    seed = ["OAuth successful", "MFA verification required.", "Enter TOTP code:", "MFA verified"]
    assert [line for line in lines if line in seed] == seed
    assert prompter.prompts == [("Enter TOTP code:", True)]
    assert code not in result.out + result.err
    entry = mcli.entry()
    assert entry["email"] == MFA_USER
    assert entry["mfa_verified"] is True
    assert entry["token"] not in result.out + result.err


async def test_backup_code_at_login_and_its_reuse(mcli: MfaCli) -> None:
    first, second = mcli.gw.gateway.generate_backup_codes(MFA_USER, count=2)
    prompter = ScriptedPrompter([first])
    result = await mcli.login("--mfa-method", "backup_code", prompter=prompter)
    assert result.code == 0, result.err
    assert prompter.prompts == [("Enter backup code:", True)]
    assert "MFA verified" in err_lines(result)
    assert first not in result.err

    again = await mcli.login("--mfa-code", first, prompter=NeverAsk())
    assert again.code == 9
    assert "Error: MFA verification failed: invalid code" in again.err
    assert first not in again.err

    # a backup code typed at the TOTP prompt works too: the gateway recognises it
    prompter = ScriptedPrompter([second])
    result = await mcli.login(prompter=prompter)
    assert result.code == 0, result.err
    assert prompter.prompts == [("Enter TOTP code:", True)]


async def test_totp_code_is_single_use(mcli: MfaCli) -> None:
    code = totp(secret_of(mcli.gw))
    result = await mcli.login("--mfa-code", code, prompter=NeverAsk())
    assert result.code == 0, result.err
    assert "Enter TOTP code:" not in result.err
    assert "MFA verified" in err_lines(result)

    reused = await mcli.login("--mfa-code", code, prompter=NeverAsk())
    assert reused.code == 9
    assert "Error: MFA verification failed: invalid code" in reused.err
    assert "--mfa-code is used once" in reused.err


async def test_wrong_code_is_asked_again_with_the_gateways_message(mcli: MfaCli) -> None:
    secret = secret_of(mcli.gw)
    prompter = ScriptedPrompter([wrong_code(secret), lambda: totp(secret)])
    result = await mcli.login(prompter=prompter)
    assert result.code == 0, result.err
    lines = err_lines(result)
    assert lines.count("Enter TOTP code:") == 2
    assert "Invalid code (2 tries left)" in lines
    assert lines.index("Invalid code (2 tries left)") < lines.index("MFA verified")


async def test_the_cli_gives_up_before_the_gateway_locks_mfa(mcli: MfaCli) -> None:
    secret = secret_of(mcli.gw)
    bad = wrong_code(secret)
    prompter = ScriptedPrompter([bad, bad, bad, lambda: totp(secret)])
    result = await mcli.login(prompter=prompter)
    assert result.code == 9
    assert len(prompter.prompts) == 3  # never a fourth: 3 failures stay below the gateway's 5
    assert "Invalid code (2 tries left)" in result.err
    assert "Invalid code (1 try left)" in result.err
    assert "Error: MFA verification failed: invalid code" in result.err
    assert not (mcli.config_dir / "config.json").exists() or "dev" not in json.loads(
        (mcli.config_dir / "config.json").read_text()
    ).get("gateways", {})
    assert not mcli.gw.gateway.mfa.locked(MFA_USER)

    again = await mcli.login("--mfa-code", totp(secret), prompter=NeverAsk())
    assert again.code == 0, again.err  # the gateway still takes a correct code


async def test_no_terminal_and_no_code_fails_at_once(mcli: MfaCli) -> None:
    with anyio.fail_after(60):
        result = await mcli.login()  # interactive=False and no prompter: nobody can type a code
    assert result.code == 9
    assert "Error: MFA verification required, but there is no terminal to enter a code" in result.err
    assert "Pass --mfa-code CODE" in result.err
    assert "OAuth successful" in result.err
    assert "Traceback" not in result.err


async def test_mfa_code_without_a_terminal(mcli: MfaCli) -> None:
    result = await mcli.login("--mfa-code", totp(secret_of(mcli.gw)))
    assert result.code == 0, result.err
    assert result.out == f"Logged in as {MFA_USER}\n"
    assert "Enter TOTP code:" not in result.err


async def test_webauthn_at_login_with_a_software_key(mcli: MfaCli) -> None:
    mcli.gw.gateway.add_user(KEY_USER, "Key User", roles=("deployer",))
    first = await mcli.login(email=KEY_USER)  # no MFA yet
    assert first.code == 0, first.err
    key = await register_key(mcli.gw, mcli.token())

    touches = key.touch_requests  # the registration's
    prompter = NeverAsk()
    result = await mcli.login(email=KEY_USER, prompter=prompter, devices=[key])
    assert result.code == 0, result.err
    assert result.out == f"Logged in as {KEY_USER}\n"
    lines = err_lines(result)
    seed = ["OAuth successful", "MFA verification required.", "Touch your security key...", "MFA verified"]
    assert [line for line in lines if line in seed] == seed
    assert key.touch_requests == touches + 1
    assert mcli.entry()["mfa_verified"] is True


async def test_webauthn_chosen_explicitly_over_the_preferred_totp(mcli: MfaCli) -> None:
    secret = secret_of(mcli.gw)
    assert (await mcli.login("--mfa-code", totp(secret))).code == 0
    key = await register_key(mcli.gw, mcli.token())
    result = await mcli.login("--mfa-method", "webauthn", prompter=NeverAsk(), devices=[key])
    assert result.code == 0, result.err
    assert "Touch your security key..." in err_lines(result)


async def test_missing_security_key_falls_back_to_a_backup_code(mcli: MfaCli) -> None:
    mcli.gw.gateway.add_user(KEY_USER, "Key User", roles=("deployer",))
    assert (await mcli.login(email=KEY_USER)).code == 0
    await register_key(mcli.gw, mcli.token())
    (backup,) = mcli.gw.gateway.generate_backup_codes(KEY_USER, count=1)

    prompter = ScriptedPrompter([backup])
    result = await mcli.login(email=KEY_USER, prompter=prompter, devices=[])  # the key is not plugged in
    assert result.code == 0, result.err
    assert prompter.notices == ["No security key found; using a backup code instead."]
    assert prompter.prompts == [("Enter backup code:", True)]
    assert "MFA verified" in err_lines(result)


async def test_explicit_method_the_account_lacks_is_refused(mcli: MfaCli) -> None:
    result = await mcli.login("--mfa-method", "webauthn", prompter=NeverAsk())
    assert result.code == 9
    assert "Error: --mfa-method webauthn: your account has no security key (available: totp)" in result.err


async def test_browser_finishing_mfa_first_cancels_the_prompt(mcli: MfaCli) -> None:
    prompter = ScriptedPrompter(block=True)
    browser = ScriptedBrowser(email=MFA_USER, totp_secret=secret_of(mcli.gw), mfa_gate=prompter.wait_until_asked)
    result = await mcli.login(prompter=prompter, browser=browser)
    assert result.code == 0, result.err
    assert result.out == f"Logged in as {MFA_USER}\n"
    assert prompter.prompts == [("Enter TOTP code:", True)]
    assert prompter.cancelled  # the browser won; the prompt was cancelled
    assert "MFA verified" not in err_lines(result)
    assert mcli.entry()["mfa_verified"] is True


async def test_deployed_gateway_waits_for_mfa_in_the_browser(deployed_gateway: RunningGateway, tmp_path: Path) -> None:
    cli = MfaCli(tmp_path / "config", deployed_gateway)
    browser = ScriptedBrowser(email=MFA_USER, totp_secret=secret_of(deployed_gateway))
    result = await cli.login(prompter=NeverAsk(), browser=browser)
    assert result.code == 0, result.err
    assert "Waiting for the browser sign-in to finish (and for MFA there, if your account requires it)..." in (
        err_lines(result)
    )
    assert "MFA verification required." not in result.err  # no stage: the CLI cannot know, it just waits


# -- step-up -------------------------------------------------------------------------------------


async def admin_session(mcli: MfaCli) -> str:
    """admin@ with TOTP, logged in with MFA: a gateway's "always" operations (API tokens) need a
    session that verified MFA at login.  The login spends the previous step's code, so the current
    and the next step stay free for the step-ups that follow (each step is accepted once)."""
    secret = mcli.gw.gateway.enroll_totp(ADMIN)
    result = await mcli.login("--mfa-code", mcli.gw.gateway.unused_totp_code(ADMIN), email=ADMIN)
    assert result.code == 0, result.err
    assert mcli.entry()["mfa_verified"] is True
    return secret


_names = iter(f"ci-{n}" for n in range(1000))


async def create_token(mcli: MfaCli, *extra: str, **kwargs: Any) -> CliResult:
    name = next(_names)  # token names are unique on the gateway
    return await mcli(*extra, "api-token", "create", "--name", name, "--role", "viewer", "--output", "json", **kwargs)


async def test_step_up_with_totp(mcli: MfaCli) -> None:
    await admin_session(mcli)
    code = mcli.gw.gateway.unused_totp_code(ADMIN)
    prompter = ScriptedPrompter([code])
    result = await create_token(mcli, prompter=prompter)
    assert result.code == 0, result.err
    assert json.loads(result.out)["name"].startswith("ci-")
    assert prompter.notices == ["Step-up MFA required for this operation."]
    assert prompter.prompts == [("Enter TOTP code:", True)]
    assert code not in result.err

    # API tokens are "always" MFA: a verification opens no window, the next one asks again
    again = ScriptedPrompter([lambda: mcli.gw.gateway.unused_totp_code(ADMIN)])
    result = await create_token(mcli, prompter=again)
    assert result.code == 0, result.err
    assert again.prompts == [("Enter TOTP code:", True)]


async def test_always_mfa_with_a_session_that_never_verified_mfa(mcli: MfaCli) -> None:
    result = await mcli.login(email=ADMIN)  # no MFA at login
    assert result.code == 0, result.err
    secret = mcli.gw.gateway.enroll_totp(ADMIN)  # enrolled afterwards
    prompter = ScriptedPrompter([totp(secret)])
    refused = await create_token(mcli, prompter=prompter)
    assert refused.code == 9
    assert prompter.prompts == []  # no code is asked for: none could satisfy the gateway
    assert refused.err.splitlines() == [
        "Error: this operation needs a session that verified MFA when it logged in; this one did not",
        f"Please run: rack-gateway login dev {mcli.gw.url}   (and answer the MFA prompt), then run it again.",
    ]


async def test_step_up_wrong_code_is_asked_again(mcli: MfaCli) -> None:
    secret = await admin_session(mcli)
    prompter = ScriptedPrompter([wrong_code(secret), lambda: totp(secret)])
    result = await create_token(mcli, prompter=prompter)
    assert result.code == 0, result.err
    assert len(prompter.prompts) == 2
    assert prompter.notices[0] == "Step-up MFA required for this operation."
    assert prompter.notices[1].startswith("Invalid MFA code")
    assert prompter.notices[1].endswith("(2 tries left)")


async def test_step_up_gives_up_before_the_lock_out(mcli: MfaCli) -> None:
    secret = await admin_session(mcli)
    bad = wrong_code(secret)
    prompter = ScriptedPrompter([bad, bad, bad, bad])
    result = await create_token(mcli, prompter=prompter)
    assert result.code == 9
    assert len(prompter.prompts) == 3
    assert "Error: MFA verification failed: Invalid MFA code" in result.err
    assert not mcli.gw.gateway.user_locked(ADMIN)
    assert (await create_token(mcli, "--mfa-code", totp(secret))).code == 0


async def test_the_ledger_stops_before_a_fifth_failure_locks_the_account(mcli: MfaCli) -> None:
    secret = await admin_session(mcli)
    bad = wrong_code(secret)
    first = await create_token(mcli, prompter=ScriptedPrompter([bad, bad, bad]))
    assert first.code == 9
    second = ScriptedPrompter([bad, bad, bad])
    result = await create_token(mcli, prompter=second)
    assert result.code == 9
    assert len(second.prompts) == 1  # a 4th failure is sent, never a 5th
    assert "a 5th locks your account until an administrator unlocks it" in result.err
    assert "Wait until " in result.err
    assert not mcli.gw.gateway.user_locked(ADMIN)
    # another process on the same machine (same config directory) is held back too
    third = await create_token(mcli, "--mfa-code", totp(secret), prompter=NeverAsk())
    assert third.code == 9
    assert "not sending another MFA code" in third.err


async def test_step_up_with_a_backup_code(mcli: MfaCli) -> None:
    await admin_session(mcli)
    (backup,) = mcli.gw.gateway.generate_backup_codes(ADMIN, count=1)
    prompter = ScriptedPrompter([backup])
    result = await create_token(mcli, "--mfa-method", "backup_code", prompter=prompter)
    assert result.code == 0, result.err
    assert prompter.prompts == [("Enter backup code:", True)]


async def test_step_up_with_a_security_key(mcli: MfaCli) -> None:
    await admin_session(mcli)
    key = await register_key(mcli.gw, mcli.token())
    touches = key.touch_requests
    prompter = NeverAsk()
    result = await create_token(mcli, "--mfa-method", "webauthn", prompter=prompter, devices=[key])
    assert result.code == 0, result.err
    assert prompter.notices == ["Step-up MFA required for this operation.", "Touch your security key..."]
    assert key.touch_requests == touches + 1


async def test_step_up_with_mfa_code_and_without_a_terminal(mcli: MfaCli) -> None:
    secret = await admin_session(mcli)

    refused = await create_token(mcli)  # no terminal, no code
    assert refused.code == 9
    assert "Error: this operation needs MFA, but there is no terminal to enter a code" in refused.err
    assert "Pass --mfa-code CODE" in refused.err

    result = await create_token(mcli, "--mfa-code", totp(secret))
    assert result.code == 0, result.err
    assert "Step-up MFA required for this operation." in result.err


async def test_step_up_for_a_user_without_mfa_says_to_enrol(mcli: MfaCli) -> None:
    mcli.gw.gateway.add_user("nomfa@example.com", roles=("admin",))
    assert (await mcli.login(email="nomfa@example.com")).code == 0
    prompter = ScriptedPrompter(["123456"])
    result = await create_token(mcli, prompter=prompter)
    assert result.code == 9
    assert prompter.prompts == []
    assert result.err.splitlines() == [
        "Error: this operation needs MFA, but your account has no MFA method enrolled",
        "Enrol MFA (an authenticator app or a security key) in the gateway's web UI, then run it again.",
    ]


async def test_step_up_on_the_rack_proxy(gateway: RunningGateway, mcli: MfaCli) -> None:
    """``DELETE rack-proxy/apps/<name>`` answers step-up in text/plain; the provider handles it too."""
    await plain_admin_session(mcli)  # no MFA at login, so no step-up window is open
    secret = gateway.gateway.enroll_totp(ADMIN)
    prompter = ScriptedPrompter([wrong_code(secret), lambda: totp(secret)])
    step_up = lambda client: StepUpMfa(client, prompter=prompter, settings=MfaSettings())  # noqa: E731
    async with GatewayClient(gateway.url, token=mcli.token(), step_up=step_up) as client:
        await client.request("DELETE", "/api/v1/rack-proxy/apps/web")
        names = [app["name"] for app in await client.apps()]
    assert "web" not in names
    assert len(prompter.prompts) == 2
    assert prompter.notices[1].startswith("mfa step-up required: The MFA code was not accepted.")


async def test_api_tokens_never_prompt(mcli: MfaCli) -> None:
    await admin_session(mcli)
    api_token = mcli.gw.gateway.create_api_token("automation", role="admin")
    result = await create_token(mcli, "--api-token", api_token, prompter=NeverAsk())
    assert result.code == 0, result.err
    assert "Step-up MFA" not in result.err

    status = await mcli("--api-token", api_token, "test-auth", "mfa", prompter=NeverAsk())
    assert status.code == 9
    assert "Error: MFA status belongs to a user session; API tokens have no MFA" in status.err
    assert api_token not in status.err


# -- test-auth mfa | otp | webauthn ----------------------------------------------------------------


async def test_test_auth_mfa_status(mcli: MfaCli) -> None:
    assert (await mcli.login("--mfa-code", totp(secret_of(mcli.gw)))).code == 0

    result = await mcli("test-auth", "mfa")
    assert result.code == 0, result.err
    lines = result.lines
    assert lines[:3] == ["MFA enrolled: yes", "MFA required: yes", "Preferred method: totp"]
    assert lines[3].startswith("Last verification: 20")
    assert lines[3].endswith(" UTC")
    assert lines[4].startswith("Step-up window: open until ")
    assert lines[5] == "Methods:"
    assert lines[6].split() == ["ID", "TYPE", "LABEL", "CLI", "LAST", "USED"]
    assert lines[7].split()[1:5] == ["totp", "Authenticator", "app", "yes"]

    as_json = await mcli("test-auth", "mfa", "--json")
    data = json.loads(as_json.out)
    assert data["enrolled"] is True
    assert data["required"] is True
    assert data["preferred_method"] == "totp"
    assert data["recent_step_up_expires_at"]
    assert [(m["type"], m["cli_capable"]) for m in data["methods"]] == [("totp", True)]

    otp = await mcli("test-auth", "otp", "--json")
    assert [m["type"] for m in json.loads(otp.out)["methods"]] == ["totp"]

    webauthn = await mcli("test-auth", "webauthn")
    assert webauthn.code == 0, webauthn.err
    assert webauthn.lines[0] == "WebAuthn enrolled: no"
    assert webauthn.lines[-1] == "Methods: none"


async def plain_admin_session(mcli: MfaCli) -> None:
    """admin@ logged in without MFA (no step-up window open)."""
    result = await mcli.login(email=ADMIN)
    assert result.code == 0, result.err


async def test_test_auth_mfa_closed_window(mcli: MfaCli) -> None:
    await plain_admin_session(mcli)
    await register_key(mcli.gw, mcli.token(), label="desk key")
    result = await mcli("test-auth", "webauthn")
    assert result.code == 0, result.err
    assert result.lines[0] == "WebAuthn enrolled: yes"
    assert "Step-up window: closed (protected commands will ask for MFA)" in result.lines
    assert result.lines[-1].split()[1:4] == ["webauthn", "desk", "key"]


async def test_parallel_logins_name_the_rack_in_each_question(mcli: MfaCli) -> None:
    mcli.config_dir.mkdir(parents=True, mode=0o700)
    (mcli.config_dir / "config.json").write_text(
        json.dumps({"gateways": {"a": {"url": mcli.gw.url}, "b": {"url": mcli.gw.url}}})
    )
    secret = mcli.gw.gateway.totp_secret(MFA_USER)
    assert secret is not None
    fresh = mcli.gw.gateway.unused_totp_code
    prompter = ScriptedPrompter(answers=[lambda: fresh(MFA_USER), lambda: fresh(MFA_USER)])
    # Without the loopback listener there is no one-tab walk: each rack's browser stops on its MFA page
    # while the terminal asks (with the walk, MFA is done in the tab: see test_one_tab).
    result = await mcli("login", "--all", "--timeout", "60", "--no-loopback", prompter=prompter)
    assert result.code == 0, result.err
    assert sorted(prompt for prompt, _ in prompter.prompts) == ["[a] Enter TOTP code:", "[b] Enter TOTP code:"]
    assert all(hidden for _, hidden in prompter.prompts)
    assert mcli.entry("a")["mfa_verified"] is True
    assert mcli.entry("b")["mfa_verified"] is True
