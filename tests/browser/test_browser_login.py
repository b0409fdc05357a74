"""Logging in as a person does: headless Chromium, a real OpenID Connect provider, the CLI as a subprocess.

The CLI's ``$BROWSER`` hands its sign-in URL to the test's Chromium (``rgw.testing.handoff``); the test
signs in on oidc-provider-mock's page as a user would (types the account, presses Authorize or Deny),
passes the gateway's MFA page when the user has MFA, and waits for the page the browser ends on (the
CLI's loopback page with extensions, the gateway's own page without them).  Each test checks what the
CLI printed, its exit code and the config it wrote, and saves screenshots of every page it passed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import urlsplit

import pexpect
import pyotp
from selenium.webdriver.common.by import By

from rgw.testing import GatewaySettings, RunningGateway, running_gateway
from tests.browser.chrome import Page
from tests.browser.conftest import Cli
from tests.oidc_provider import Provider, running_provider

HANDOFF_WAIT = 30.0
TIMEOUT_HINT = (
    "Likely causes: the browser sign-in was not finished, your email domain is not allowed on this "
    "gateway, or the consent page was cancelled. Run the login again."
)


@contextmanager
def oidc_gateway(provider: Provider, **settings: Any) -> Iterator[RunningGateway]:
    with running_gateway(GatewaySettings(oidc_issuer=provider.url, oidc_client_secret="gw-secret", **settings)) as gw:
        yield gw


def sign_in_at_provider(page: Page, provider: Provider, account: str, shot: str | None = None) -> None:
    """On the provider's page: type the account and press Authorize."""
    page.wait_for_url(provider.url + "/oauth2/authorize", "the provider's sign-in page")
    if shot:
        page.screenshot(shot)
    page.fill("sub", account)
    page.press("form button[type=submit]:not([name])")  # Authorize (the other buttons name an action)


def config_of(cli: Cli) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((cli.config / "config.json").read_text())
    return data


def error_lines(err: str) -> list[str]:
    lines = err.splitlines()
    return lines[next(i for i, line in enumerate(lines) if line.startswith("Error: ")) :]


def test_plain_login_with_extensions(oidc_provider: Provider, page: Page, cli: Cli) -> None:
    with oidc_gateway(oidc_provider) as gw:
        login = cli.start("login", "production", gw.url, "--timeout", "60")
        page.open(cli.inbox.next_url(HANDOFF_WAIT))
        sign_in_at_provider(page, oidc_provider, "developer@example.com", shot="provider-sign-in")
        page.wait_for_text("You can close this tab.")
        page.screenshot("loopback-logged-in")
        assert page.url.startswith("http://127.0.0.1:")  # the CLI's own listener
        assert page.text.splitlines()[:2] == ["rack-gateway", "Logged in to rack production"]
        assert "The terminal running rack-gateway login on " in page.text
        code, out, err = login.finish()
        assert code == 0, err
        assert out == "Logged in as developer@example.com\n"
        assert "Opening browser for authentication..." in err
        entry = config_of(cli)["gateways"]["production"]
        assert (entry["email"], entry["url"]) == ("developer@example.com", gw.url)
        assert gw.gateway.session_valid(entry["token"])
        assert entry["token"] not in out + err
        auth = cli.run("test-auth")
        assert auth.returncode == 0, auth.stderr
        assert auth.stdout.splitlines()[:2] == ["Authenticated as developer@example.com", "Role: deployer"]


def test_plain_login_without_extensions(oidc_provider: Provider, page: Page, cli: Cli) -> None:
    with oidc_gateway(oidc_provider, extensions=False, rate_limit=None) as gw:
        login = cli.start("login", "dev", gw.url, "--timeout", "60")
        url = cli.inbox.next_url(HANDOFF_WAIT)
        assert url.startswith(oidc_provider.url + "/oauth2/authorize?")  # as a deployed gateway: straight there
        page.open(url)
        sign_in_at_provider(page, oidc_provider, "viewer@example.com")
        # The deployed callback keeps the code and sends the browser on to GET /auth/cli/mfa, which signs in.
        page.wait_for_url(gw.url + "/api/v1/auth/cli/mfa?state=", "the gateway's sign-in step")
        page.wait_for_text("You can close this tab.")
        page.screenshot("gateway-login-complete")
        assert "Login complete, return to your terminal" in page.text
        assert "Signed in as viewer@example.com." in page.text
        assert "Rack gateway · rack dev" in page.text
        code, out, err = login.finish()
        assert code == 0, err
        assert out == "Logged in as viewer@example.com\n"
        assert gw.gateway.session_valid(config_of(cli)["gateways"]["dev"]["token"])


def test_mfa_in_the_browser_while_the_terminal_asks(oidc_provider: Provider, page: Page, cli: Cli) -> None:
    with oidc_gateway(oidc_provider) as gw:
        secret = gw.gateway.totp_secret("mfa@example.com")
        assert secret is not None
        transcript = io.StringIO()
        child = pexpect.spawn(
            cli.argv("login", "production", gw.url, "--timeout", "60")[0],
            cli.argv("login", "production", gw.url, "--timeout", "60")[1:],
            env=cli.env(),
            encoding="utf-8",
            timeout=60,
            dimensions=(24, 200),
        )
        child.logfile_read = transcript
        try:
            page.open(cli.inbox.next_url(HANDOFF_WAIT))
            sign_in_at_provider(page, oidc_provider, "mfa@example.com")
            page.wait_for_url(gw.url + "/auth/mfa?state=", "the gateway's MFA page")
            child.expect_exact("Enter TOTP code:")  # the terminal asks too; the browser answers first
            page.screenshot("gateway-mfa")
            assert "Signed in as mfa@example.com." in page.text
            page.fill("code", "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
            page.press("form button[type=submit]")
            page.wait_for_text("That code is not valid.")
            page.screenshot("gateway-mfa-wrong-code")
            page.fill("code", pyotp.TOTP(secret).now())
            page.press("form button[type=submit]")
            page.wait_for_text("You can close this tab.")
            page.screenshot("loopback-logged-in")
            assert "Logged in to rack production" in page.text
            child.expect_exact("Logged in as mfa@example.com")
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        assert child.exitstatus == 0, transcript.getvalue()
        entry = config_of(cli)["gateways"]["production"]
        assert (entry["email"], entry["mfa_verified"]) == ("mfa@example.com", True)
        assert gw.gateway.session_valid(entry["token"])


def test_email_domain_not_allowed_is_said_at_once_with_extensions(
    oidc_provider: Provider, page: Page, cli: Cli
) -> None:
    with oidc_gateway(oidc_provider) as gw:
        # A deadline the test could never wait for: only the gateway's early failure ends this login.
        login = cli.start("login", "production", gw.url, "--timeout", "600")
        page.open(cli.inbox.next_url(HANDOFF_WAIT))
        sign_in_at_provider(page, oidc_provider, "mallory@evil.com")
        page.wait_for_text("You can close this tab.")
        page.screenshot("loopback-domain-not-allowed")
        assert page.text.splitlines()[1:3] == [
            "Login to rack production failed",
            "email domain not allowed: mallory@evil.com",
        ]
        code, out, err = login.finish()
    assert code == 7, err
    assert out == ""
    assert error_lines(err) == [
        "Error: email domain not allowed",
        "Signed in as mallory@evil.com. Your Google Workspace domain isn't configured in the gateway. "
        "Contact your administrator to add your domain to GOOGLE_ALLOWED_DOMAIN.",
    ]
    assert not (cli.config / "config.json").exists()


def test_email_domain_not_allowed_on_a_deployed_gateway(oidc_provider: Provider, page: Page, cli: Cli) -> None:
    with oidc_gateway(oidc_provider, extensions=False, rate_limit=None) as gw:
        login = cli.start("login", "dev", gw.url, "--timeout", "10")
        page.open(cli.inbox.next_url(HANDOFF_WAIT))
        sign_in_at_provider(page, oidc_provider, "mallory@evil.com")
        page.wait_for_text("You can close this tab.")
        page.screenshot("gateway-domain-not-allowed")
        assert "email domain not allowed: mallory@evil.com" in page.text
        assert "is still waiting: press Ctrl-C there, then run it again." in page.text
        assert login.proc.poll() is None  # the deployed gateway tells the CLI nothing: it waits on
        code, _out, err = login.finish()
    assert code == 8, err
    assert error_lines(err) == ["Error: login to dev timed out after 10 s without a completed sign-in", TIMEOUT_HINT]


def test_consent_denied(oidc_provider: Provider, page: Page, cli: Cli) -> None:
    with oidc_gateway(oidc_provider) as gw:
        login = cli.start("login", "production", gw.url, "--timeout", "600")
        page.open(cli.inbox.next_url(HANDOFF_WAIT))
        page.wait_for_url(oidc_provider.url + "/oauth2/authorize", "the provider's sign-in page")
        page.press("button[value=deny]")
        page.wait_for_text("You can close this tab.")
        page.screenshot("loopback-consent-cancelled")
        assert page.text.splitlines()[1:3] == ["Login to rack production failed", "consent cancelled"]
        code, _out, err = login.finish()
    assert code == 7, err
    assert error_lines(err) == ["Error: consent cancelled", "Run the login again and allow access on the consent page."]
    assert not (cli.config / "config.json").exists()


def seed_config(cli: Cli, racks: dict[str, str]) -> None:
    cli.config.mkdir(mode=0o700)
    (cli.config / "config.json").write_text(
        json.dumps({"gateways": {name: {"url": url} for name, url in racks.items()}})
    )
    (cli.config / "config.json").chmod(0o600)


def walk_until_done(page: Page, provider: Provider, accounts: list[str], expected: str) -> list[str]:
    """Sign in at the provider each time the one tab comes to it, until the page says ``expected``;
    the accounts used, in order (the provider may also remember the session and ask nothing)."""
    used: list[str] = []
    for _ in range(len(accounts) + 1):
        page.wait_for(
            lambda d: str(d.current_url).startswith(provider.url + "/oauth2/authorize") or expected in page.text,
            "the provider's page or the end of the walk",
        )
        if expected in page.text:
            return used
        account, at = accounts[len(used)], page.url
        page.screenshot(f"provider-for-{account}")
        sign_in_at_provider(page, provider, account)
        # Past this sign-in (the next rack's may be the provider's page again, for another state).
        page.wait_for(lambda d, at=at: str(d.current_url) != at, "the page after this sign-in")
        used.append(account)
    raise AssertionError(f"the walk did not end after {len(accounts)} sign-ins; the page says:\n{page.text}")


def test_one_tab_walks_through_three_racks(oidc_provider: Provider, page: Page, cli: Cli) -> None:
    racks = ("alpha", "beta", "gamma")
    with ExitStack() as stack:
        gws = {rack: stack.enter_context(oidc_gateway(oidc_provider, rack_name=rack)) for rack in racks}
        seed_config(cli, {rack: gw.url for rack, gw in gws.items()})
        login = cli.start("login", "--rack", "alpha", "--rack", "beta", "--rack", "gamma", "--timeout", "90")
        walk = cli.inbox.next_url(HANDOFF_WAIT)
        assert walk.startswith("http://127.0.0.1:")  # the listener's page, not a gateway's
        page.open(walk)
        used = walk_until_done(page, oidc_provider, ["developer@example.com"] * 3, "Logged in to all 3 racks.")
        page.screenshot("walk-done")
        assert page.url == walk  # back on the page after the last rack
        lines = page.text.splitlines()
        assert lines[:2] == ["rack-gateway", "Signing in to 3 racks"]
        assert "Logged in to all 3 racks. You can close this tab." in lines
        for rack in racks:
            assert f"{rack} logged in developer@example.com" in lines
        code, _out, err = login.finish()
        assert code == 0, err
        assert cli.inbox.received == [walk]  # one browser launch in all
        assert 1 <= len(used) <= 3
        gateways = config_of(cli)["gateways"]
        for rack, gw in gws.items():
            assert gateways[rack]["email"] == "developer@example.com"
            assert gw.gateway.session_valid(gateways[rack]["token"])
        assert "Opening one browser tab to sign in to 3 racks..." in err
        assert "3 of 3 racks finished." in err.splitlines()


def test_ten_racks_in_one_tab_with_a_provider_that_signs_in_without_a_click(page: Page, cli: Cli) -> None:
    """Issue 22: once signed in, the provider answers every rack's sign-in with a redirect at once, so
    a walk of 302s was one chain of redirects (four a rack) and Chromium stopped it at 20 with
    ERR_TOO_MANY_REDIRECTS around the fifth rack; the listener's hop pages start a new navigation."""
    racks = [f"rack{i}" for i in range(10)]
    with running_provider(remember=True) as provider, ExitStack() as stack:
        gws = {rack: stack.enter_context(oidc_gateway(provider, rack_name=rack)) for rack in racks}
        seed_config(cli, {rack: gw.url for rack, gw in gws.items()})
        login = cli.start("login", "--all", "--timeout", "120")
        walk = cli.inbox.next_url(HANDOFF_WAIT)
        page.open(walk)
        sign_in_at_provider(page, provider, "developer@example.com", shot="the-only-sign-in")  # the one click
        page.wait_for_text("Logged in to all 10 racks. You can close this tab.", timeout=90)
        page.screenshot("walk-done")
        assert page.url == walk
        lines = page.text.splitlines()
        for rack in racks:
            assert f"{rack} logged in developer@example.com" in lines
        code, _out, err = login.finish()
        assert code == 0, err
        assert cli.inbox.received == [walk]  # one browser launch in all
        gateways = config_of(cli)["gateways"]
        for rack, gw in gws.items():
            assert gateways[rack]["email"] == "developer@example.com"
            assert gw.gateway.session_valid(gateways[rack]["token"])
    # Ten codes issued, the form posted once: the other nine were sign-ins without a click.
    assert provider.log.text().count("issued authorization code") == 10
    assert "10 of 10 racks finished." in err.splitlines()
    assert "has not come back" not in err


def test_the_list_follows_a_deployed_rack_without_reloading(oidc_provider: Provider, page: Page, cli: Cli) -> None:
    """A deployed gateway cannot send the tab back: the page links to it and its script updates the list."""
    with (
        oidc_gateway(oidc_provider, rack_name="ext") as ext,
        oidc_gateway(oidc_provider, rack_name="dep", extensions=False, rate_limit=None) as dep,
    ):
        seed_config(cli, {"ext": ext.url, "dep": dep.url})
        login = cli.start("login", "--all", "--timeout", "90")
        walk = cli.inbox.next_url(HANDOFF_WAIT)
        page.open(walk)
        walk_until_done(page, oidc_provider, ["developer@example.com"], "1 of 2 racks finished.")
        page.screenshot("walk-waiting-for-the-deployed-rack")
        assert page.url == walk
        # The row says where the sign-in is and where it returns to (issue 20, item 2).
        provider, gateway = urlsplit(oidc_provider.url).netloc, urlsplit(dep.url).netloc
        assert (
            f"dep sign in with the link Sign-in at {provider}, returns to {gateway} Sign in" in page.text.splitlines()
        )
        page.driver.execute_script("document.title = 'not reloaded'")  # gone if the page reloads
        rows = page.driver.find_elements(By.CSS_SELECTOR, "tbody tr")
        row = next(r for r in rows if r.find_element(By.CSS_SELECTOR, "td.rack").text == "dep")
        row.find_element(By.CSS_SELECTOR, "a.go").click()  # the deployed rack's link opens a tab of its own
        page.wait_for(lambda d: len(d.window_handles) == 2, "a second tab")
        list_tab, sign_in_tab = page.driver.window_handles
        page.driver.switch_to.window(sign_in_tab)
        sign_in_at_provider(page, oidc_provider, "ops@example.com")
        page.wait_for_text("You can close this tab.")
        assert "Signed in as ops@example.com." in page.text  # the deployed gateway's own page
        page.driver.switch_to.window(list_tab)
        page.wait_for_text("Logged in to all 2 racks. You can close this tab.")
        page.screenshot("walk-updated-by-its-script")
        assert page.driver.title == "not reloaded"  # the script updated the list in place
        assert "dep logged in ops@example.com" in page.text.splitlines()
        code, _out, err = login.finish()
        assert code == 0, err
        assert config_of(cli)["gateways"]["dep"]["email"] == "ops@example.com"
        assert cli.inbox.received == [walk]


def test_rate_limited_deployed_mode(oidc_provider: Provider, page: Page, cli: Cli) -> None:
    """The deployed gateway's limit (10/s, burst 20, per IP) covers the browser's requests too: none is refused."""
    with oidc_gateway(oidc_provider, extensions=False) as gw:
        assert gw.gateway.rate_limiter is not None
        secret = gw.gateway.totp_secret("mfa@example.com")
        assert secret is not None
        # No terminal: against a gateway that reports no MFA stage the CLI waits while MFA is done in the browser.
        login = cli.start("login", "dev", gw.url, "--timeout", "60")
        page.open(cli.inbox.next_url(HANDOFF_WAIT))
        sign_in_at_provider(page, oidc_provider, "mfa@example.com")
        page.wait_for_url(gw.url + "/auth/mfa?state=", "the gateway's MFA page")
        page.fill("code", pyotp.TOTP(secret).now())
        page.press("form button[type=submit]")
        page.wait_for_text("You can close this tab.")
        page.screenshot("gateway-login-complete")
        assert "Signed in as mfa@example.com." in page.text
        code, out, err = login.finish()
        assert code == 0, err
        assert out == "Logged in as mfa@example.com\n"
        assert gw.gateway.browser_refusals() == 0
        assert gw.gateway.rate_limited_count("/auth/mfa") == 0
        assert gw.gateway.request_count("/api/v1/auth/cli/complete") >= 1
        entry = config_of(cli)["gateways"]["dev"]
        assert (entry["email"], entry["mfa_verified"]) == ("mfa@example.com", True)


def test_the_built_in_sign_in_page(page: Page, cli: Cli) -> None:
    """Without a provider the reference gateway's own page stands in for Google."""
    with running_gateway(GatewaySettings()) as gw:
        login = cli.start("login", "staging", gw.url, "--timeout", "60")
        page.open(cli.inbox.next_url(HANDOFF_WAIT))
        page.wait_for_url(gw.url + "/oauth/authorize?state=", "the built-in sign-in page")
        page.screenshot("gateway-sign-in")
        assert page.text.splitlines()[:3] == [
            "Rack gateway · rack dev",
            "Sign in",
            "Choose an account to continue to rack dev.",
        ]
        assert "For the rack-gateway login on " in page.text  # the CLI's host, sent with /start [ext]
        page.press("button[value='ops@example.com']")
        page.wait_for_text("You can close this tab.")
        assert "Logged in to rack staging" in page.text.splitlines()
        code, out, err = login.finish()
        assert code == 0, err
        assert out == "Logged in as ops@example.com\n"


def test_totp_typed_in_the_terminal_while_the_browser_shows_a_deployed_gateway_s_mfa_page(
    oidc_provider: Provider, page: Page, cli: Cli
) -> None:
    """Issue 21: Chromium signs in at the provider and stays on the deployed-mode gateway's MFA page
    (its own ``GET /auth/cli/mfa`` exchanged the code); the code is typed in the CLI's pty, which
    sends it with ``POST /auth/cli/mfa``.  The browser's page is left as it was, not broken."""
    with oidc_gateway(oidc_provider, extensions=False, rate_limit=None) as gw:
        secret = gw.gateway.totp_secret("mfa@example.com")
        assert secret is not None
        argv = cli.argv("login", "dev", gw.url, "--timeout", "60")
        transcript = io.StringIO()
        child = pexpect.spawn(argv[0], argv[1:], env=cli.env(), encoding="utf-8", timeout=30, dimensions=(24, 200))
        child.logfile_read = transcript
        try:
            page.open(cli.inbox.next_url(HANDOFF_WAIT))
            sign_in_at_provider(page, oidc_provider, "mfa@example.com")
            page.wait_for_url(gw.url + "/auth/mfa?state=", "the gateway's MFA page")
            page.screenshot("gateway-mfa-before-the-terminal")
            assert "Signed in as mfa@example.com." in page.text
            state = urlsplit(page.url).query.removeprefix("state=")
            found = gw.gateway.login.state(state)
            assert found is not None
            assert found.stage == "mfa"  # the browser's own step signed the user in
            gw.gateway.reset_counts()
            child.sendline(pyotp.TOTP(secret).now())  # typed in the terminal, not in the browser
            child.expect_exact("MFA verified", timeout=20)
            child.expect_exact("Logged in as mfa@example.com", timeout=20)
            child.expect(pexpect.EOF, timeout=20)
        finally:
            child.close(force=True)
        assert child.exitstatus == 0, transcript.getvalue()
        assert gw.gateway.request_count("/api/v1/auth/cli/mfa") >= 1  # the CLI sent the code
        # The browser's page is not broken: still the MFA page, no error from a taken exchange.
        page.screenshot("gateway-mfa-after-the-terminal")
        assert page.url.startswith(gw.url + "/auth/mfa?state=")
        assert "Multi-factor authentication" in page.text
        assert "session_incomplete" not in page.text
        assert "Sign-in failed" not in page.text
        entry = config_of(cli)["gateways"]["dev"]
        assert (entry["email"], entry["mfa_verified"]) == ("mfa@example.com", True)
        assert gw.gateway.session_valid(entry["token"])
        assert entry["token"] not in transcript.getvalue()
