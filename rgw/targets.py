"""Which rack, which URL and which credential a command uses: the one place that decides.

Pure functions of the config (``ConfigData``), the options (``Selection``) and the environment, so
the rules are tested as a table (``tests/unit/test_targets.py``); the ``read_*`` ones read the config
first, fetching from the OS keyring only the token of the rack they resolve.  The rules, from PROTOCOL.md:

- rack: ``--rack/-r`` > ``RACK_GATEWAY_RACK`` > the config's ``current``;
- credential: ``--api-token`` > ``RACK_GATEWAY_API_TOKEN`` > the rack's stored session;
- URL: with an API token, ``RACK_GATEWAY_URL`` > the stored rack's URL ("Override gateway URL (used
  with API token)"); with a stored session, only that rack's own URL: a session is never sent to
  another URL.  Without a stored rack, ``RACK_GATEWAY_URL`` names the gateway.
- plain HTTP to another machine (``rgw.urls.check_link``): only with the rack's stored opt-in
  (``login --insecure-http``) for that rack's own URL, or ``RACK_GATEWAY_INSECURE_HTTP=1`` for an
  API-token run.  The decision is made here; the client enforces it again.

Every failure says what to run next, always as ``Please run: rack-gateway ...``.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rgw.config import ConfigData, ConfigStore
from rgw.errors import ConfigError, InsecureGateway, NoRackError, NotLoggedIn, UsageError
from rgw.models import LoginRequest, RackConfig
from rgw.text import is_plain_name, is_token, printable
from rgw.urls import check_link, link_kind, looks_like_url, normalize_url

#: Longest rack name accepted (the Go CLI stores any alias; this keeps tables and prompts sane).
MAX_RACK_NAME = 100


def quoted(name: str) -> str:
    """A rack name for a message: quoted, and cut short (a 5000-character ``--rack`` is not echoed whole)."""
    return repr(name if len(name) <= 60 else name[:59] + "…")


def shell_word(value: str) -> str:
    """``value`` as one word a shell reads back as it is: a hint's command is safe to paste.

    A value with a control character (a name another tool stored) is written ``$'...'`` with the
    character escaped (bash, zsh, ksh), so the hint stays on its line and shows no escape sequence.
    """
    if value.isprintable():
        return shlex.quote(value)
    return "$'" + "".join(_ansi_c(char) for char in value) + "'"


def _ansi_c(char: str) -> str:
    if char in "\\'":
        return "\\" + char
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def login_hint(rack: str | None, url: str | None) -> str:
    shown = shell_word(rack) if rack and len(rack) <= MAX_RACK_NAME else "<rack>"
    return f"Please run: rack-gateway login {shown} {shell_word(url) if url else '<gateway-url>'}"


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
            f"the rack name {quoted(name)} has spaces or control characters at its ends or inside it",
            hint="Use letters, digits and punctuation, e.g. production or eu-staging.",
        )
    return name


def check_new_rack_name(name: str, data: ConfigData) -> str:
    """``check_rack_name``, and for a rack the config does not have yet, a plain name (``rgw.text.is_plain_name``).

    A name lands in shell completion, in hints to paste and in prompts: one of letters, digits, ``.``,
    ``_`` and ``-`` needs no quoting anywhere.  A rack another tool stored under another name keeps it.
    """
    check_rack_name(name)
    if data.rack(name) is None and not is_plain_name(name):
        raise UsageError(
            f"the rack name {quoted(name)} has characters a new rack name cannot have: use letters (a-z, A-Z), "
            "digits, '.', '_' and '-', starting with a letter or digit",
            hint="Choose a name such as production or eu-staging (racks already in the config keep their names).",
        )
    return name


def stored_url(rack: RackConfig) -> str:
    """A stored rack's URL, normalized; one a hand edit broke is a config error that names the rack."""
    try:
        return normalize_url(rack.url)
    except UsageError as exc:
        raise ConfigError(
            f"rack {quoted(rack.name)} in the config file has an unusable URL: {exc.message}",
            hint=f"Store a new URL with: rack-gateway login {shell_word(rack.name)} <gateway-url>",
        ) from None


def unknown_rack(name: str, data: ConfigData) -> NoRackError:
    """The one way to say a rack is not in the config: which racks are, and how to add this one."""
    known = ", ".join(printable(n, limit=40) for n in data.rack_names()) or "none"
    return NoRackError(f"unknown rack {quoted(name)} (configured: {known})", hint=login_hint(name, None))


def usable_rack(data: ConfigData, name: str) -> RackConfig:
    """The stored rack ``name`` with a URL fit to use; an unknown one is ``unknown_rack``, an entry a
    hand edit broke (not an object, no URL, a URL that is not text or not a URL) a config error
    naming the rack, the same one ``racks`` shows beside it."""
    rack = data.rack(name)
    if rack is None:
        raise unknown_rack(name, data)
    if rack.url:
        stored_url(rack)  # a URL that is text but not a gateway's: says so in its own words
    problem = data.rack_problem(name)
    if problem is not None:
        raise ConfigError(
            f"the config's rack {quoted(name)} cannot be used: {problem}",
            hint=f"Store a new URL with: rack-gateway login {shell_word(name)} <gateway-url>",
        )
    return rack


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

    def insecure_http(self) -> bool:
        """``RACK_GATEWAY_INSECURE_HTTP=1``: this run's explicit opt-in to plain HTTP (API tokens)."""
        return self.env("RACK_GATEWAY_INSECURE_HTTP") == "1"


@dataclass(frozen=True)
class Target:
    """Where a command goes and with which credential."""

    url: str
    token: str
    rack_name: str | None
    rack: RackConfig | None
    api_token: bool
    #: Plain HTTP to another machine allowed (the rack's stored opt-in, or the run's).
    insecure_http: bool = False

    def login_hint(self) -> str:
        if self.api_token:
            return "Check the API token (--api-token or RACK_GATEWAY_API_TOKEN)."
        return login_hint(self.rack_name, self.url)


def command_target(data: ConfigData, selection: Selection) -> Target:
    """The gateway and credential of a command such as ``apps`` or ``test-auth``."""
    name = selection.rack_name(data)
    api_token = selection.token()
    env_url = selection.env("RACK_GATEWAY_URL")
    if api_token and env_url:
        # The API token's gateway; a stored session stays where it is.  The rack's entry (if any,
        # and usable) only names the run and carries its plain-HTTP opt-in.
        url = normalize_url(env_url)
        rack = data.rack(name) if name and data.rack_problem(name) is None else None
    elif name and (data.rack(name) is not None or not env_url):
        rack = usable_rack(data, name)
        url = stored_url(rack)
    elif env_url:
        url, rack = normalize_url(env_url), None
    elif not data.rack_names() and not api_token:
        raise NotLoggedIn("not logged in: no rack is configured yet", hint=login_hint(None, None))
    else:
        raise no_rack_selected(data, api_token=bool(api_token))
    if api_token is not None and not is_token(api_token):
        raise UsageError(
            "the API token has spaces, line breaks or non-ASCII characters in it",
            hint="Check --api-token / RACK_GATEWAY_API_TOKEN (a file saved with CRLF line endings?); "
            "the token is not shown here.",
        )
    stored_opt_in = bool(rack is not None and rack.insecure_http and rack.url and stored_url(rack) == url)
    if api_token:
        insecure = stored_opt_in or selection.insecure_http()
        check_token_link(url, insecure)
        return Target(url=url, token=api_token, rack_name=name, rack=rack, api_token=True, insecure_http=insecure)
    if rack is None or not rack.token:
        raise NotLoggedIn(f"not logged in to {printable(name or url)}", hint=login_hint(name, url))
    if not is_token(rack.token):
        raise ConfigError(
            f"the stored session of rack {rack.name!r} is not a valid token (edited by hand?)",
            hint=login_hint(rack.name, url),
        )
    check_link(url, insecure_http=stored_opt_in, rack=name)
    return Target(url=url, token=rack.token, rack_name=name, rack=rack, api_token=False, insecure_http=stored_opt_in)


def no_rack_selected(data: ConfigData, *, api_token: bool) -> NoRackError:
    """No ``--rack``, no ``RACK_GATEWAY_RACK``, no current rack; with an API token, no gateway URL either."""
    if api_token and not data.rack_names():
        return NoRackError(
            "RACK_GATEWAY_URL is not set: no gateway for the API token",
            hint="Please run: RACK_GATEWAY_URL=https://gateway.example.com rack-gateway ...",
        )
    hint = "Please run: rack-gateway switch <rack>   (or set RACK_GATEWAY_RACK)"
    if api_token:
        hint += "\nor give the API token's gateway: RACK_GATEWAY_URL=https://gateway.example.com"
    return NoRackError("no rack selected", hint=hint)


def check_token_link(url: str, insecure: bool) -> None:
    """``check_link`` for an API-token run, whose opt-in to plain HTTP is the run's, not a stored rack's."""
    try:
        check_link(url, insecure_http=insecure)
    except InsecureGateway as exc:
        raise InsecureGateway(
            exc.message,
            hint="Use https://, or if this gateway really is plain HTTP on a network you trust,\n"
            "opt in for this run: RACK_GATEWAY_INSECURE_HTTP=1 rack-gateway ...",
        ) from None


async def read_command_target(store: ConfigStore, selection: Selection) -> Target:
    """``command_target`` over the config as it is now; of the OS keyring, only the selected rack's token.

    An API token with ``RACK_GATEWAY_URL`` needs no config file: one that cannot be read (corrupt,
    another user's) is said in a warning and the run goes on without it.
    """
    try:
        data = await store.read(tokens=())
    except ConfigError as exc:
        if not (selection.token() and selection.env("RACK_GATEWAY_URL")):
            raise
        if store.on_warning is not None:
            store.on_warning(f"Warning: {exc.message}\n(this API-token run needs no config file: going on without it)")
        return command_target(ConfigData(), selection)
    await store.fetch_tokens(data, [selection.rack_name(data)])
    return command_target(data, selection)


def login_target(
    data: ConfigData,
    selection: Selection,
    rack_arg: str | None,
    url_arg: str | None,
    *,
    insecure_http: bool = False,
) -> LoginRequest:
    """``login RACK URL`` (a new rack) | ``login RACK`` (a stored one) | ``login`` (the selected one).

    ``insecure_http`` is ``login --insecure-http``; a stored rack keeps the opt-in it was given.
    """
    if rack_arg is not None:
        check_rack_name(rack_arg)
    if rack_arg is not None and url_arg is not None:
        check_new_rack_name(rack_arg, data)
        return _login_request(rack_arg, url_arg, insecure_http)
    env_url = selection.env("RACK_GATEWAY_URL")
    name = rack_arg or selection.rack_name(data)
    if name is None:
        raise UsageError("which rack? no rack given and none is current", hint=login_hint(None, env_url))
    rack = data.rack(name)
    if rack is not None and rack.url:
        return _login_request(name, stored_url(rack), insecure_http or bool(rack.insecure_http))
    if rack is not None and not env_url:
        usable_rack(data, name)  # says why its entry cannot be used
    if rack_arg and looks_like_url(rack_arg):
        raise UsageError(
            f"{quoted(rack_arg)} looks like a URL: give the rack a name first", hint=login_hint("production", rack_arg)
        )
    if env_url:
        check_new_rack_name(name, data)
        return _login_request(name, env_url, insecure_http)
    raise unknown_rack(name, data)


def login_targets(
    data: ConfigData, racks: Sequence[str], *, all_racks: bool, insecure_http: bool = False
) -> list[LoginRequest]:
    """``login --rack A --rack B`` or ``login --all``: stored racks only, each once."""
    names = data.rack_names() if all_racks else list(dict.fromkeys(racks))
    requests: list[LoginRequest] = []
    for name in names:
        rack = usable_rack(data, name)
        requests.append(_login_request(name, stored_url(rack), insecure_http or bool(rack.insecure_http)))
    return requests


def _login_request(name: str, url: str, insecure_http: bool) -> LoginRequest:
    normalized = normalize_url(url)
    check_link(normalized, insecure_http=insecure_http, rack=name)
    return LoginRequest(name, normalized, insecure_http=insecure_http and link_kind(normalized) == "plain")


async def read_stored_session(store: ConfigStore, selection: Selection) -> RackConfig:
    """``stored_session`` over the config as it is now; of the OS keyring, only the selected rack's token."""
    data = await store.read(tokens=())
    await store.fetch_tokens(data, [selection.rack_name(data)])
    return stored_session(data, selection)


def stored_session(data: ConfigData, selection: Selection) -> RackConfig:
    """The selected rack and its stored session (``logout``)."""
    name = selection.rack_name(data)
    rack = data.rack(name) if name else None
    if name is None:
        raise NoRackError("no rack selected", hint="Please run: rack-gateway racks")
    if rack is None:
        raise unknown_rack(name, data)
    if not rack.token:
        raise NotLoggedIn(f"not logged in to {printable(name)}", hint=login_hint(name, rack.url))
    return rack
