"""Where a sign-in returns to (issue 20, item 2): the ``redirect_uri`` check's pieces.

``rgw.urls.sign_in_return`` reads the origin out of an ``auth_url``; ``host_matches`` compares the
user's ``--accept-redirect HOST`` with it; the walk offers a sign-in returning elsewhere as a link,
never a hop, and shows every sign-in's host; the terminal says where such a sign-in returns.
"""

from __future__ import annotations

import json
import re

import pytest

from rgw.cli.render import describe, sign_in_url
from rgw.login.events import SignInElsewhere
from rgw.urls import host_matches, origin_host, sign_in_return
from tests.unit.test_walk import A_URL, assert_hop_page, walking

CALLBACK = "https%3A%2F%2Fgw.example.com%2Fapi%2Fv1%2Fauth%2Fcli%2Fcallback"
GOOGLE = f"https://accounts.google.com/o/oauth2/auth?client_id=c&redirect_uri={CALLBACK}&state=s"


@pytest.mark.parametrize(
    ("auth_url", "returns_to"),
    [
        (GOOGLE, "https://gw.example.com:443"),
        ("https://idp/a?redirect_uri=HTTPS://GW.Example.COM:8443/cb", "https://gw.example.com:8443"),
        ("https://idp/a?redirect_uri=http://100.101.102.103:8080/cb", "http://100.101.102.103:8080"),
        ("http://127.0.0.1:8080/oauth/authorize?state=s&client_id=rack-gateway", None),
        ("https://idp/a?redirect_uri=https://a/x&redirect_uri=https://a/y", "https://a:443"),
        ("https://idp/a#redirect_uri=https://elsewhere/", None),  # a fragment goes to no server
    ],
)
def test_the_origin_a_sign_in_returns_to(auth_url: str, returns_to: str | None) -> None:
    assert sign_in_return(auth_url) == returns_to


@pytest.mark.parametrize(
    "auth_url",
    [
        "https://idp/a?redirect_uri=javascript:alert(1)",
        "https://idp/a?redirect_uri=/api/v1/auth/cli/callback",
        "https://idp/a?redirect_uri=",
        "https://idp/a?redirect_uri=https://gw.example.com:99999/cb",
        "https://idp/a?redirect_uri=https://user:pw@gw.example.com/cb",
        "https://idp/a?redirect_uri=https://a/cb&redirect_uri=https://b/cb",  # which one would the provider use?
    ],
)
def test_a_redirect_uri_that_names_no_single_place_is_refused(auth_url: str) -> None:
    with pytest.raises(ValueError, match="redirect_uri"):
        sign_in_return(auth_url)


@pytest.mark.parametrize(
    ("accepted", "where", "matches"),
    [
        ("gw.example.com", "https://gw.example.com:443", True),
        ("GW.example.com.", "https://gw.example.com:443", True),
        ("gw.example.com:443", "https://gw.example.com:443", True),
        ("gw.example.com:8443", "https://gw.example.com:443", False),
        ("https://gw.example.com/", "https://gw.example.com:443", True),
        ("http://gw.example.com", "https://gw.example.com:443", False),
        ("example.com", "https://gw.example.com:443", False),
        ("gw.example.com.evil", "https://gw.example.com:443", False),
        ("", "https://gw.example.com:443", False),
        ("gw.example.com:99999", "https://gw.example.com:443", False),
        ("[::1]:8080", "http://[::1]:8080", True),
    ],
)
def test_accept_redirect_names_one_host(accepted: str, where: str, matches: bool) -> None:
    assert host_matches(accepted, where) is matches


def test_hosts_are_shown_without_the_scheme_s_default_port() -> None:
    assert origin_host("https://gw.example.com:443") == "gw.example.com"
    assert origin_host("http://127.0.0.1:8080/x?y") == "127.0.0.1:8080"
    assert origin_host("http://[::1]:8080") == "[::1]:8080"


@pytest.mark.anyio
async def test_the_walk_never_hops_to_a_sign_in_returning_elsewhere_and_shows_every_host() -> None:
    async with walking(["ts", "a"]) as w:
        w.listener.expect("state-ts", "ts")
        # Its gateway claims to send the browser back: still a link, never a hop.
        w.walk.offer(
            "ts", auth_url=GOOGLE, state="state-ts", hop=True, returns_to="https://gw.example.com:443", elsewhere=True
        )
        w.offer("a", A_URL, "state-a")
        first = await w.get(w.page)
        assert (first.status_code, first.headers["location"]) == (302, A_URL)
        assert (await w.get(w.callback, params={"state": "state-ts", "result": "ok"})).status_code == 200
        hop = await w.get(w.callback, params={"state": "state-a", "result": "ok"})
        assert_hop_page(hop, w.walk.path)  # back to the page, not on to ts's sign-in
        page = (await w.get(w.page)).text
        listed = json.loads((await w.get(w.page + "/status")).text)
    ts, a = listed["racks"]
    assert ts["where"] == (
        "Sign-in at accounts.google.com, returns to gw.example.com, not to this rack's gateway: "
        "sign in there only if that is where you expect it"
    )
    assert (ts["url"], ts["new_tab"]) == (GOOGLE, True)
    assert a["where"] == "Sign-in at gw-a.example"
    assert "Sign-in at accounts.google.com, returns to gw.example.com, not to this rack&#x27;s gateway" in page
    assert "Sign-in at gw-a.example" in page


def elsewhere(then: str, *, trust: str = "first use", returns_to: str = "gw.example.com") -> SignInElsewhere:
    return SignInElsewhere("ts", GOOGLE, returns_to, "100.101.102.103:8080", trust, then)


def test_the_terminal_says_where_the_sign_in_returns_and_how_to_open_it() -> None:
    head = (
        "The sign-in returns to gw.example.com, not to this rack's gateway (100.101.102.103:8080): "
        "first use, remembered for this rack from now on."
    )
    assert describe(elsewhere("url")) == (
        f"{head}\nOpen this URL in your browser if gw.example.com is this rack's gateway: {GOOGLE}"
    )
    assert describe(elsewhere("enter")) == (
        f"{head}\nIt is not opened without a click: if gw.example.com is this rack's gateway, "
        f"press Enter to open it, or visit: {GOOGLE}"
    )
    assert describe(elsewhere("walk")) == (
        f"{head}\nIt is not opened without a click: if gw.example.com is this rack's gateway, "
        f"sign in with its link on the one-tab page, or visit: {GOOGLE}"
    )
    assert describe(elsewhere("shown", trust="remembered")) == (
        "The sign-in returns to gw.example.com (remembered for this rack), "
        "not to this rack's gateway (100.101.102.103:8080)."
    )
    assert describe(elsewhere("shown", trust="accepted")) == (
        "The sign-in returns to gw.example.com (accepted, remembered from now on), "
        "not to this rack's gateway (100.101.102.103:8080)."
    )
    # The URL is the one to show (--print-url-only, --qr) when no other line shows it.
    assert sign_in_url(elsewhere("url")) == sign_in_url(elsewhere("enter")) == GOOGLE
    assert sign_in_url(elsewhere("walk")) is None
    assert sign_in_url(elsewhere("shown")) is None
    hostile = describe(elsewhere("url", returns_to="gw\x1b]0;owned\x07\u202e.com"))
    assert hostile is not None
    assert "\x1b" not in hostile
    assert "\u202e" not in hostile


@pytest.mark.parametrize(
    ("auth_url", "message"),
    [
        ("https://idp/a?redirect_uri=javascript:alert(1)", "its redirect_uri is not an absolute web URL"),
        ("https://idp/a?redirect_uri=https:///cb", "its redirect_uri is not an absolute web URL"),
        ("https://idp/a?redirect_uri=ftp://gw.example.com/cb", "its redirect_uri is not an absolute web URL"),
        (
            "https://idp/a?redirect_uri=https://user@gw.example.com/cb",
            "its redirect_uri has a user name or password in it",
        ),
        (
            "https://idp/a?redirect_uri=https://:pw@gw.example.com/cb",
            "its redirect_uri has a user name or password in it",
        ),
        ("https://idp/a?redirect_uri=https://gw.example.com:99999/cb", "its redirect_uri is not a URL"),
        (
            "https://idp/a?redirect_uri=https://a/cb&redirect_uri=https://b/cb",
            "it names several redirect_uri that disagree",
        ),
    ],
)
def test_a_refused_redirect_uri_says_why(auth_url: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        sign_in_return(auth_url)


@pytest.mark.parametrize(
    ("accepted", "where", "matches"),
    [
        ("https://gw.example.com:99999", "https://gw.example.com:443", False),
        ("gw.example.com", "https://gw.example.com.:443", True),  # a redirect_uri whose host ends in a dot
        ("gw.example.com/", "https://gw.example.com:443", True),
        (" HTTPS://GW.Example.com/ ", "https://gw.example.com:443", True),
    ],
)
def test_accept_redirect_takes_a_host_as_a_user_writes_it(accepted: str, where: str, matches: bool) -> None:
    assert host_matches(accepted, where) is matches


def test_a_host_is_shown_without_http_s_default_port_and_without_a_port_out_of_range() -> None:
    assert origin_host("http://gw.example.com:80") == "gw.example.com"
    assert origin_host("http://gw.example.com:443") == "gw.example.com:443"
    assert origin_host("https://gw.example.com:99999") == "gw.example.com"
