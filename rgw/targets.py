"""Which rack, which URL and which credential a command uses: the one place that decides.

Pure functions of the config (``ConfigData``), the options (``Selection``) and the environment, so
the rules are tested as a table (``tests/unit/test_targets.py``).  The rules, from PROTOCOL.md:

- rack: ``--rack/-r`` > ``RACK_GATEWAY_RACK`` > the config's ``current``;
- credential: ``--api-token`` > ``RACK_GATEWAY_API_TOKEN`` > the rack's stored session;
- URL: with an API token, ``RACK_GATEWAY_URL`` > the stored rack's URL ("Override gateway URL (used
  with API token)"); with a stored session, only that rack's own URL: a session is never sent to
  another URL.  Without a stored rack, ``RACK_GATEWAY_URL`` names the gateway.

Every failure says what to run next, always as ``Please run: rack-gateway ...``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rgw.config import ConfigData
from rgw.errors import NoRackError, NotLoggedIn, UsageError
from rgw.models import LoginRequest, RackConfig
from rgw.urls import looks_like_url, normalize_url

#: Longest rack name accepted (the Go CLI stores any alias; this keeps tables and prompts sane).
MAX_RACK_NAME = 100


def login_hint(rack: str | None, url: str | None) -> str:
    return f"Please run: rack-gateway login {rack or '<rack>'} {url or '<gateway-url>'}"


def check_rack_name(name: str) -> str:
    """A rack name as the user typed it, or a ``UsageError`` (empty, too long, control characters)."""
    if not name or not name.strip():
        raise UsageError("the rack name is empty", hint="Give the rack a name, e.g.: rack-gateway login production URL")
    if len(name) > MAX_RACK_NAME:
        raise UsageError(
            f"the rack name is longer than {MAX_RACK_NAME} characters", hint="Choose a shorter name for the rack."
        )
    if not name.isprintable() or name != name.strip():
        raise UsageError(
            f"the rack name {name!r} has spaces or control characters at its ends or inside it",
            hint="Use letters, digits and punctuation, e.g. production or eu-staging.",
        )
    return name


@dataclass(frozen=True)
class Selection:
    """What the command line and the environment ask for."""

    rack: str | None = None
    api_token: str | None = None
    environ: Mapping[str, str] = field(default_factory=dict)

    def env(self, name: str) -> str | None:
        value = self.environ.get(name)
        return value.strip() if value and value.strip() else None

    def rack_name(self, data: ConfigData) -> str | None:
        return self.rack or self.env("RACK_GATEWAY_RACK") or data.current

    def token(self) -> str | None:
        return self.api_token or self.env("RACK_GATEWAY_API_TOKEN")


@dataclass(frozen=True)
class Target:
    """Where a command goes and with which credential."""

    url: str
    token: str
    rack_name: str | None
    rack: RackConfig | None
    api_token: bool

    def login_hint(self) -> str:
        if self.api_token:
            return "Check the API token (--api-token or RACK_GATEWAY_API_TOKEN)."
        return login_hint(self.rack_name, self.url)


def command_target(data: ConfigData, selection: Selection) -> Target:
    """The gateway and credential of a command such as ``apps`` or ``test-auth``."""
    name = selection.rack_name(data)
    rack = data.rack(name) if name else None
    api_token = selection.token()
    env_url = selection.env("RACK_GATEWAY_URL")
    if api_token and env_url:
        url = normalize_url(env_url)  # the API token's gateway; a stored session stays where it is
    elif rack is not None and rack.url:
        url = normalize_url(rack.url)
    elif env_url:
        url, rack = normalize_url(env_url), None
    elif name:
        raise NoRackError(f"unknown rack {name!r}", hint=login_hint(name, None))
    elif not data.rack_names() and not api_token:
        raise NotLoggedIn("not logged in: no rack is configured yet", hint=login_hint(None, None))
    else:
        raise NoRackError(
            "no rack selected", hint="Please run: rack-gateway switch <rack>   (or set RACK_GATEWAY_RACK)"
        )
    if api_token:
        return Target(url=url, token=api_token, rack_name=name, rack=rack, api_token=True)
    if rack is None or not rack.token:
        raise NotLoggedIn(f"not logged in to {name or url}", hint=login_hint(name, url))
    return Target(url=url, token=rack.token, rack_name=name, rack=rack, api_token=False)


def login_target(data: ConfigData, selection: Selection, rack_arg: str | None, url_arg: str | None) -> LoginRequest:
    """``login RACK URL`` (a new rack) | ``login RACK`` (a stored one) | ``login`` (the selected one)."""
    if rack_arg is not None:
        check_rack_name(rack_arg)
    if rack_arg and url_arg:
        return LoginRequest(rack_arg, normalize_url(url_arg))
    env_url = selection.env("RACK_GATEWAY_URL")
    name = rack_arg or selection.rack_name(data)
    if name is None:
        raise UsageError("which rack? no rack given and none is current", hint=login_hint(None, env_url))
    rack = data.rack(name)
    if rack is not None and rack.url:
        return LoginRequest(name, normalize_url(rack.url))
    if rack_arg and looks_like_url(rack_arg):
        raise UsageError(
            f"{rack_arg!r} looks like a URL: give the rack a name first", hint=login_hint("production", rack_arg)
        )
    if env_url:
        return LoginRequest(name, normalize_url(env_url))
    raise NoRackError(f"unknown rack {name!r}", hint=login_hint(name, None))


def login_targets(data: ConfigData, racks: Sequence[str], *, all_racks: bool) -> list[LoginRequest]:
    """``login --rack A --rack B`` or ``login --all``: stored racks only, each once."""
    names = data.rack_names() if all_racks else list(dict.fromkeys(racks))
    requests: list[LoginRequest] = []
    for name in names:
        rack = data.rack(name)
        if rack is None or not rack.url:
            raise NoRackError(f"unknown rack {name!r}", hint=login_hint(name, None))
        requests.append(LoginRequest(name, normalize_url(rack.url)))
    return requests


def stored_session(data: ConfigData, selection: Selection) -> RackConfig:
    """The selected rack and its stored session (``logout``)."""
    name = selection.rack_name(data)
    rack = data.rack(name) if name else None
    if name is None:
        raise NoRackError("no rack selected", hint="Please run: rack-gateway racks")
    if rack is None:
        raise NoRackError(f"unknown rack {name!r}", hint="Please run: rack-gateway racks")
    if not rack.token:
        raise NotLoggedIn(f"not logged in to {name}", hint=login_hint(name, rack.url))
    return rack
