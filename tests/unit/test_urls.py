"""Where a credential may travel (rgw.urls) and which tokens may be sent at all (rgw.text.is_token), as tables."""

from __future__ import annotations

import re
from typing import Any

import pytest

from rgw.config import ConfigData
from rgw.errors import ConfigError, InsecureGateway, UsageError
from rgw.targets import Selection, command_target, login_target
from rgw.text import MAX_TOKEN, is_token
from rgw.urls import browser_url, check_link, link_kind, normalize_url


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://gateway.example.com", "tls"),
        ("https://10.1.2.3", "tls"),
        ("http://127.0.0.1:8080", "loopback"),
        ("http://127.5.6.7", "loopback"),
        ("http://[::1]:9", "loopback"),
        ("http://[::ffff:127.0.0.1]", "loopback"),
        ("http://localhost:8080", "loopback"),
        ("http://LOCALHOST.", "loopback"),
        ("http://gw.localhost", "loopback"),
        ("http://100.64.0.1", "tailscale"),
        ("http://100.127.255.254:8080", "tailscale"),
        ("http://[fd7a:115c:a1e0::1]", "tailscale"),
        ("http://rack.tail1234.ts.net", "tailscale"),
        ("http://100.128.0.1", "plain"),
        ("http://100.63.255.255", "plain"),
        ("http://[fd7a:115c:a1e1::1]", "plain"),
        ("http://ts.net.evil.example.com", "plain"),
        ("http://localhost.evil.example.com", "plain"),
        ("http://10.1.2.3", "plain"),
        ("http://0.0.0.0:80", "plain"),
        ("http://example.com", "plain"),
    ],
)
def test_link_kind(url: str, kind: str) -> None:
    assert link_kind(url) == kind


def test_plain_http_to_another_host_is_refused_with_both_opt_ins_named() -> None:
    with pytest.raises(InsecureGateway) as caught:
        check_link("http://10.1.2.3", rack="prod")
    assert caught.value.exit_code == 2
    assert "rack-gateway login prod http://10.1.2.3 --insecure-http" in (caught.value.hint or "")
    assert "RACK_GATEWAY_INSECURE_HTTP=1" in (caught.value.hint or "")


def test_notices() -> None:
    assert check_link("https://gw") is None
    assert check_link("http://127.0.0.1:1") is None
    assert check_link("http://100.64.0.1") == (
        "Note: http://100.64.0.1 is plain HTTP over Tailscale (encrypted underneath by WireGuard)."
    )
    assert check_link("http://10.1.2.3", insecure_http=True) == (
        "Warning: http://10.1.2.3 is plain HTTP: anyone on the network path can read your session."
    )


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("gateway.example.com", "https://gateway.example.com"),
        ("https://gateway.example.com/", "https://gateway.example.com"),
        ("  http://127.0.0.1:8080  ", "http://127.0.0.1:8080"),
        ("https://gw.example.com/prefix", "https://gw.example.com/prefix"),
    ],
)
def test_normalize_url(url: str, normalized: str) -> None:
    assert normalize_url(url) == normalized


@pytest.mark.parametrize(
    "url",
    [
        "",
        "http://user:pass@gw.example.com",
        "https://token@gw.example.com",
        "http://[::1",
        "http://gw:99999",
        "ftp://gw.example.com",
        "https://gw.example.com/?next=evil",
        "https://gw.example.com/#x",
        "https://gw.exa mple.com",
        "https://gw.example.com/\x1b[2J",
        "https://" + "a" * 3000 + ".com",
    ],
)
def test_bad_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError) as caught:
        normalize_url(url)
    assert "user:pass" not in caught.value.message
    assert "token@" not in caught.value.message
    assert "\x1b" not in caught.value.message


@pytest.mark.parametrize(
    ("url", "gateway", "insecure", "ok"),
    [
        ("https://idp.example.com/authorize?state=s", "https://gw", False, True),
        ("http://127.0.0.1:8080/oauth/authorize?state=s", "http://127.0.0.1:8080", False, True),
        ("http://100.64.0.9/oauth", "http://100.64.0.9", False, True),
        ("http://10.1.2.3/oauth", "http://10.1.2.3", True, True),
        ("http://10.1.2.3/oauth", "http://10.1.2.3", False, False),
        ("http://evil.example.com/x", "https://gw", False, False),
        ("http://evil.example.com/x", "https://gw", True, False),  # the opt-in is for a plain gateway only
        ("--remote-debugging-port=9222", "https://gw", False, False),
        ("-https://idp.example.com", "https://gw", False, False),
        ("file:///etc/passwd", "https://gw", False, False),
        ("javascript:alert(1)", "https://gw", False, False),
        ("data:text/html,<script>", "https://gw", False, False),
        ("/oauth/authorize", "https://gw", False, False),
        ("https://idp.example.com/a b", "https://gw", False, False),
        ("https://idp.example.com/\n", "https://gw", False, False),
        ("https://u:p@idp.example.com/", "https://gw", False, False),
        ("https://[::1/", "https://gw", False, False),
        ("", "https://gw", False, False),
    ],
)
def test_browser_url(url: str, gateway: str, insecure: bool, ok: bool) -> None:
    if ok:
        assert browser_url(url, gateway=gateway, insecure_http=insecure) == url
    else:
        with pytest.raises(ValueError, match="URL"):
            browser_url(url, gateway=gateway, insecure_http=insecure)


@pytest.mark.parametrize(
    ("token", "ok"),
    [
        ("rgw_abcDEF-123._~+/=", True),
        ("x" * MAX_TOKEN, True),
        ("x" * (MAX_TOKEN + 1), False),
        ("", False),
        ("abc\r\nX-Injected: 1", False),
        ("abc\n", False),
        ("a b", False),
        ("a\tb", False),
        ("tökén", False),
        ("a\x00b", False),
        ("a\x7fb", False),
        (None, False),
        (123, False),
    ],
)
def test_is_token(token: Any, ok: bool) -> None:
    assert is_token(token) is ok


def config(**racks: dict[str, Any]) -> ConfigData:
    return ConfigData(raw={"current": "prod", "gateways": racks})


def test_an_api_token_run_to_a_plain_host_needs_the_environment_opt_in() -> None:
    env = {"RACK_GATEWAY_API_TOKEN": "rgw_t", "RACK_GATEWAY_URL": "http://10.1.2.3"}
    with pytest.raises(InsecureGateway):
        command_target(config(), Selection(environ=env))
    target = command_target(config(), Selection(environ={**env, "RACK_GATEWAY_INSECURE_HTTP": "1"}))
    assert target.insecure_http is True
    assert target.url == "http://10.1.2.3"
    # Anything but "1" is not an opt-in.
    with pytest.raises(InsecureGateway):
        command_target(config(), Selection(environ={**env, "RACK_GATEWAY_INSECURE_HTTP": "yes"}))


def test_a_stored_opt_in_covers_that_rack_url_only() -> None:
    data = config(prod={"url": "http://10.1.2.3", "token": "sess", "insecure_http": True})
    target = command_target(data, Selection())
    assert (target.url, target.insecure_http) == ("http://10.1.2.3", True)
    # The same rack with an API token sent elsewhere over plain HTTP: no opt-in there.
    env = {"RACK_GATEWAY_API_TOKEN": "rgw_t", "RACK_GATEWAY_URL": "http://10.9.9.9"}
    with pytest.raises(InsecureGateway):
        command_target(data, Selection(environ=env))
    # An opt-in written as anything but true is not one.
    data = config(prod={"url": "http://10.1.2.3", "token": "sess", "insecure_http": "true"})
    with pytest.raises(InsecureGateway):
        command_target(data, Selection())


@pytest.mark.parametrize("token", ["abc\r\nX-Injected: 1", "tökén", "a b"])
def test_bad_credentials_are_refused_without_being_shown(token: str) -> None:
    with pytest.raises(UsageError) as flag:
        command_target(config(prod={"url": "https://gw"}), Selection(api_token=token))
    with pytest.raises(ConfigError) as stored:
        command_target(config(prod={"url": "https://gw", "token": token}), Selection())
    for error in (flag.value, stored.value):
        assert token not in f"{error.message} {error.hint}"


def test_login_targets_carry_the_opt_in() -> None:
    data = config(prod={"url": "http://10.1.2.3", "insecure_http": True}, dev={"url": "http://127.0.0.1:1"})
    assert login_target(data, Selection(), "prod", None).insecure_http is True
    assert login_target(data, Selection(), "dev", None).insecure_http is False
    new = login_target(data, Selection(), "new", "http://10.4.4.4", insecure_http=True)
    assert (new.url, new.insecure_http) == ("http://10.4.4.4", True)
    # --insecure-http with an https or loopback gateway stores nothing: there is nothing to opt in to.
    assert login_target(data, Selection(), "s", "https://gw", insecure_http=True).insecure_http is False
    with pytest.raises(InsecureGateway):
        login_target(data, Selection(), "new", "http://10.4.4.4")
    with pytest.raises(UsageError, match="the rack name is empty"):
        login_target(data, Selection(), "", "http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="rack 'bad' in the config file has an unusable URL"):
        login_target(config(bad={"url": "http://[::1"}), Selection(), "bad", None)


def test_origin_is_scheme_host_and_port_with_the_default_filled_in() -> None:
    from rgw.urls import origin

    assert origin("https://GW.example.com/api") == origin("HTTPS://gw.example.com:443") == "https://gw.example.com:443"
    assert origin("http://gw.example.com") == "http://gw.example.com:80"
    assert origin("http://127.0.0.1:8080") != origin("http://127.0.0.1:8081")
    assert origin("https://gw.example.com") != origin("http://gw.example.com:443")
    with pytest.raises(ValueError, match="out of range"):
        origin("https://gw.example.com:99999")


EXAMPLE = "Example: rack-gateway login production https://gateway.example.com"


@pytest.mark.parametrize(
    ("url", "message", "hint"),
    [
        ("  ", "the gateway URL is empty", EXAMPLE),
        ("https://" + "a" * 3000, "the gateway URL is longer than 2048 characters", EXAMPLE),
        (
            "https://gw.exa mple.com",
            "not a gateway URL: 'https://gw.exa mple.com' (spaces or control characters)",
            EXAMPLE,
        ),
        ("ftp://gw.example.com", "not a gateway URL: 'ftp://gw.example.com'", EXAMPLE),
        (
            "https://gw.example.com/?next=evil",
            "not a gateway URL: 'https://gw.example.com/?next=evil' (it has a query or fragment)",
            EXAMPLE,
        ),
        (
            "http://user:pass@gw.example.com",
            "the gateway URL has a user name or password in it",
            "Give the URL without 'user:password@': the gateway signs you in through the browser.",
        ),
    ],
)
def test_a_refused_gateway_url_says_why_and_how_to_give_one(url: str, message: str, hint: str) -> None:
    with pytest.raises(UsageError) as caught:
        normalize_url(url)
    assert (caught.value.message, caught.value.hint) == (message, hint)


def test_a_gateway_url_with_a_bad_port_is_refused_with_the_example() -> None:
    with pytest.raises(UsageError) as caught:
        normalize_url("http://gw:99999")
    assert caught.value.message.startswith("not a gateway URL: 'http://gw:99999' (")
    assert caught.value.hint == EXAMPLE


def test_a_gateway_url_of_exactly_the_longest_length_is_taken() -> None:
    from rgw.urls import MAX_URL

    url = "https://gw.example.com/" + "p" * (MAX_URL - len("https://gw.example.com/"))
    assert len(url) == MAX_URL == 2048
    assert normalize_url(url) == url


def test_plain_http_refusal_names_the_rack_or_a_placeholder_in_the_command_to_opt_in() -> None:
    with pytest.raises(InsecureGateway) as caught:
        check_link("http://10.1.2.3")
    assert caught.value.message == (
        "refusing to send credentials in clear text to http://10.1.2.3 (plain HTTP to a host that is not this machine)"
    )
    assert caught.value.hint == (
        "Use https://.  If this gateway really is plain HTTP on a network you trust, opt in:\n"
        "  rack-gateway login <rack> http://10.1.2.3 --insecure-http\n"
        "(stored for that rack), or for one API-token run: RACK_GATEWAY_INSECURE_HTTP=1"
    )
    with pytest.raises(InsecureGateway) as quoted:
        check_link("http://10.1.2.3", rack="my rack")
    assert "  rack-gateway login 'my rack' http://10.1.2.3 --insecure-http\n" in (quoted.value.hint or "")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("--remote-debugging-port=9222", "not a URL a browser should open"),
        ("https://idp.example.com/\x1b[2J", "not a URL a browser should open"),
        ("https://idp.example.com/\u202eevil", "not a URL a browser should open"),
        ("https://idp.example.com/" + "p" * 8169, "not a URL a browser should open"),  # 8193 characters
        ("-https://idp.example.com", "not a URL a browser should open"),
        ("-", "not a URL a browser should open"),
        ("https://[::1/", "not a URL a browser should open"),
        ("/oauth/authorize", "not an absolute web URL"),
        ("https://u@idp.example.com/", "not an absolute web URL"),
        ("https://:p@idp.example.com/", "not an absolute web URL"),
        ("http://evil.example.com/x", "a plain-HTTP sign-in URL to another machine"),
        ("ftp://idp.example.com/x", "a ftp URL, not https"),
        ("//idp.example.com/x", "a relative URL, not https"),
    ],
)
def test_a_sign_in_url_kept_from_the_browser_says_why(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        browser_url(url, gateway="https://gw")


def test_a_sign_in_url_of_the_longest_length_goes_to_the_browser() -> None:
    url = "https://idp.example.com/" + "p" * 8168
    assert len(url) == 8192
    assert browser_url(url, gateway="https://gw") == url


def test_a_plain_http_sign_in_url_needs_the_opt_in_given_explicitly() -> None:
    with pytest.raises(ValueError, match="plain-HTTP"):
        browser_url("http://10.1.2.3/oauth", gateway="http://10.1.2.3")


@pytest.mark.parametrize(
    ("text", "url_like"),
    [
        ("https://gw.example.com", True),
        ("gw://x", True),
        ("localhost:8080", True),
        ("127.0.0.1", True),
        ("gw.example.com/login", True),
        ("gw.example.com", False),  # a dotted rack name
        ("racks/prod", False),
        ("production", False),
    ],
)
def test_a_rack_argument_that_looks_like_a_url_is_told_apart_from_a_rack_name(text: str, url_like: bool) -> None:
    from rgw.urls import looks_like_url

    assert looks_like_url(text) is url_like
