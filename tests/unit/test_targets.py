"""rgw.targets as a table: which rack, URL and credential each combination of config, flags and environment gives."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from rgw.config import ConfigData
from rgw.errors import EXIT_CODES, NoRackError, NotLoggedIn, RgwError, UsageError
from rgw.targets import Selection, command_target, login_target, login_targets, shell_word, stored_session

A = "https://a.example.com"
B = "https://b.example.com"
ENV_URL = "https://env.example.com"


def config(current: str | None = "a", **racks: dict[str, Any]) -> ConfigData:
    raw: dict[str, Any] = {"gateways": racks}
    if current:
        raw["current"] = current
    return ConfigData(raw=raw)


TWO = config(a={"url": A, "token": "sess-a"}, b={"url": B, "token": "sess-b"})
#: A config another tool wrote, with a name rgw would not accept for a new rack.
ODD = config(**{"my rack;x": {"url": A}})

# (config, --rack, --api-token, environment) -> (url, token, rack, api_token) or an error class
COMMAND_CASES: list[tuple[str, ConfigData, str | None, str | None, dict[str, str], Any]] = [
    ("current rack", TWO, None, None, {}, (A, "sess-a", "a", False)),
    ("--rack beats current", TWO, "b", None, {}, (B, "sess-b", "b", False)),
    ("RACK_GATEWAY_RACK beats current", TWO, None, None, {"RACK_GATEWAY_RACK": "b"}, (B, "sess-b", "b", False)),
    ("--rack beats RACK_GATEWAY_RACK", TWO, "a", None, {"RACK_GATEWAY_RACK": "b"}, (A, "sess-a", "a", False)),
    ("blank environment is ignored", TWO, None, None, {"RACK_GATEWAY_RACK": "  "}, (A, "sess-a", "a", False)),
    ("--api-token beats the session", TWO, None, "rgw_flag", {}, (A, "rgw_flag", "a", True)),
    (
        "RACK_GATEWAY_API_TOKEN beats the session",
        TWO,
        None,
        None,
        {"RACK_GATEWAY_API_TOKEN": "rgw_env"},
        (A, "rgw_env", "a", True),
    ),
    (
        "--api-token beats RACK_GATEWAY_API_TOKEN",
        TWO,
        None,
        "rgw_flag",
        {"RACK_GATEWAY_API_TOKEN": "rgw_env"},
        (A, "rgw_flag", "a", True),
    ),
    (
        "RACK_GATEWAY_URL overrides a stored rack for an API token",
        TWO,
        None,
        "rgw_flag",
        {"RACK_GATEWAY_URL": ENV_URL},
        (ENV_URL, "rgw_flag", "a", True),
    ),
    (
        "RACK_GATEWAY_URL never receives a stored session",
        TWO,
        None,
        None,
        {"RACK_GATEWAY_URL": ENV_URL},
        (A, "sess-a", "a", False),
    ),
    (
        "API token with no config at all",
        config(None),
        None,
        None,
        {"RACK_GATEWAY_API_TOKEN": "rgw_env", "RACK_GATEWAY_URL": "env.example.com/"},
        (ENV_URL, "rgw_env", None, True),
    ),
    (
        "RACK_GATEWAY_URL without a token is not logged in",
        config(None),
        None,
        None,
        {"RACK_GATEWAY_URL": ENV_URL},
        NotLoggedIn,
    ),
    ("unknown --rack", TWO, "nope", None, {}, NoRackError),
    ("a rack without a session", config(a={"url": A}), None, None, {}, NotLoggedIn),
    ("nothing configured is not logged in", config(None), None, None, {}, NotLoggedIn),
    ("racks but none current", config(None, a={"url": A, "token": "t"}), None, None, {}, NoRackError),
]


@pytest.mark.parametrize(
    ("case", "data", "rack", "token", "env", "expected"), COMMAND_CASES, ids=[c[0] for c in COMMAND_CASES]
)
def test_command_target(
    case: str, data: ConfigData, rack: str | None, token: str | None, env: dict[str, str], expected: Any
) -> None:
    selection = Selection(rack=rack, api_token=token, environ=env)
    if isinstance(expected, type):
        with pytest.raises(expected) as info:
            command_target(data, selection)
        assert info.value.hint
        assert info.value.hint.startswith("Please run: rack-gateway ")
        return
    target = command_target(data, selection)
    assert (target.url, target.token, target.rack_name, target.api_token) == expected


def test_not_logged_in_names_the_exact_login_command() -> None:
    with pytest.raises(NotLoggedIn) as info:
        command_target(config(a={"url": A}), Selection())
    assert info.value.hint == f"Please run: rack-gateway login a {A}"
    assert info.value.exit_code == 3


LOGIN_CASES: list[tuple[str, ConfigData, str | None, str | None, dict[str, str], Any]] = [
    ("new rack", config(None), "prod", "gw.example.com/", {}, ("prod", "https://gw.example.com")),
    ("stored rack", TWO, "b", None, {}, ("b", B)),
    ("current rack", TWO, None, None, {}, ("a", A)),
    ("RACK_GATEWAY_RACK", TWO, None, None, {"RACK_GATEWAY_RACK": "b"}, ("b", B)),
    ("a new rack at RACK_GATEWAY_URL", config(None), "new", None, {"RACK_GATEWAY_URL": ENV_URL}, ("new", ENV_URL)),
    ("new URL for a stored rack", TWO, "a", B, {}, ("a", B)),
    ("no rack at all", config(None), None, None, {}, UsageError),
    ("a URL given as the rack", config(None), "https://gw.example.com/x", None, {}, UsageError),
    ("unknown rack, no URL", TWO, "nope", None, {}, NoRackError),
    ("empty rack name", TWO, "", "http://127.0.0.1:1", {}, UsageError),
    ("control characters in the name", TWO, "a\x1b[2J", "https://x", {}, UsageError),
    ("a very long name", TWO, "x" * 5000, "https://x", {}, UsageError),
    ("shell syntax in a new name", TWO, "prod$(touch${IFS}/tmp/x)", "https://x", {}, UsageError),
    ("a space in a new name", TWO, "my rack", "https://x", {}, UsageError),
    ("a new name led by a dash", TWO, "-x", "https://x", {}, UsageError),
    ("a new name of other letters", TWO, "prød", "https://x", {}, UsageError),
    ("a new rack at RACK_GATEWAY_URL, odd name", TWO, "a;b", None, {"RACK_GATEWAY_URL": ENV_URL}, UsageError),
    ("every character of the safe set", TWO, "Eu-west_2.prod", "https://x", {}, ("Eu-west_2.prod", "https://x")),
    ("a stored odd name, new URL", ODD, "my rack;x", B, {}, ("my rack;x", B)),
    ("a stored odd name", ODD, "my rack;x", None, {}, ("my rack;x", A)),
]


@pytest.mark.parametrize(
    ("case", "data", "rack", "url", "env", "expected"), LOGIN_CASES, ids=[c[0] for c in LOGIN_CASES]
)
def test_login_target(
    case: str, data: ConfigData, rack: str | None, url: str | None, env: dict[str, str], expected: Any
) -> None:
    selection = Selection(environ=env)
    if isinstance(expected, type):
        with pytest.raises(expected) as info:
            login_target(data, selection, rack, url)
        assert info.value.hint
        assert "\x1b" not in info.value.message
        return
    request = login_target(data, selection, rack, url)
    assert (request.rack, request.url) == expected


def test_a_new_rack_name_outside_the_safe_set_says_which_characters_are_allowed() -> None:
    with pytest.raises(UsageError) as info:
        login_target(TWO, Selection(), "prod$(touch${IFS}/tmp/x)", "https://gw.example.com")
    assert info.value.message == (
        "the rack name 'prod$(touch${IFS}/tmp/x)' has characters a new rack name cannot have: "
        "use letters (a-z, A-Z), digits, '.', '_' and '-', starting with a letter or digit"
    )
    assert info.value.hint == (
        "Choose a name such as production or eu-staging (racks already in the config keep their names)."
    )


def test_login_targets_keep_order_drop_duplicates_and_refuse_unknown_racks() -> None:
    assert [r.rack for r in login_targets(TWO, ["b", "a", "b"], all_racks=False)] == ["b", "a"]
    assert [r.rack for r in login_targets(TWO, [], all_racks=True)] == ["a", "b"]
    with pytest.raises(NoRackError):
        login_targets(TWO, ["a", "zzz"], all_racks=False)


def test_stored_session() -> None:
    assert stored_session(TWO, Selection(rack="b")).token == "sess-b"
    for data, selection, error in [
        (config(None), Selection(), NoRackError),
        (TWO, Selection(rack="zzz"), NoRackError),
        (config(a={"url": A}), Selection(), NotLoggedIn),
    ]:
        with pytest.raises(error):
            stored_session(data, selection)


def tree(cls: type[RgwError]) -> list[type[RgwError]]:
    found: list[type[RgwError]] = []
    for sub in cls.__subclasses__():
        found += [sub, *tree(sub)]
    return found


def test_every_error_class_says_what_to_do_next() -> None:
    classes = tree(RgwError)
    assert len(classes) >= 18
    for cls in classes:
        assert cls.default_hint.strip(), f"{cls.__name__} has no hint"
        assert cls.default_hint != RgwError.default_hint, f"{cls.__name__} only has the generic hint"
        assert cls.exit_code in EXIT_CODES


def test_a_hint_names_the_rack_as_one_shell_word() -> None:
    from rgw.targets import login_hint

    assert login_hint("no such;rm", None) == "Please run: rack-gateway login 'no such;rm' <gateway-url>"
    assert login_hint("prod", "https://gw.example.com") == "Please run: rack-gateway login prod https://gw.example.com"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("value", ["prod", "my rack", "it's", "e\x1b]0;X\x07\nLogged in\\n\u202e\U0001f600x", "a\tb"])
def test_a_shell_word_stays_on_its_line_and_bash_reads_it_back_as_it_was(value: str) -> None:
    word = shell_word(value)
    assert word.isprintable()
    done = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, timeout=30, check=True)
    assert done.stdout.decode("utf-8", "surrogateescape") == value


def raised(call: Any) -> RgwError:
    with pytest.raises(RgwError) as info:
        call()
    return info.value


def test_a_rack_name_is_refused_with_why_and_what_to_type() -> None:
    from rgw.targets import check_rack_name

    for name in ("", "   "):
        error = raised(lambda name=name: check_rack_name(name))
        assert (error.message, error.hint) == (
            "the rack name is empty",
            "Give the rack a name, e.g.: rack-gateway login production URL",
        )
    assert check_rack_name("x" * 100) == "x" * 100
    error = raised(lambda: check_rack_name("x" * 101))
    assert (error.message, error.hint) == (
        "the rack name is longer than 100 characters",
        "Choose a shorter name for the rack.",
    )
    for name, shown in (("a\nb", "'a\\nb'"), ("ab ", "'ab '"), (" ab", "' ab'")):
        error = raised(lambda name=name: check_rack_name(name))
        assert error.message == f"the rack name {shown} has spaces or control characters at its ends or inside it"
        assert error.hint == "Use letters, digits and punctuation, e.g. production or eu-staging."
        assert error.exit_code == 2


def test_a_rack_name_in_a_message_is_quoted_and_cut_after_60_characters() -> None:
    from rgw.targets import quoted

    assert quoted("x" * 60) == repr("x" * 60)
    assert quoted("x" * 61) == repr("x" * 59 + "…")


def test_an_unknown_rack_lists_the_configured_ones_cut_short_and_how_to_add_it() -> None:
    from rgw.targets import unknown_rack

    error = unknown_rack("zz", TWO)
    assert (error.message, error.hint) == (
        "unknown rack 'zz' (configured: a, b)",
        "Please run: rack-gateway login zz <gateway-url>",
    )
    assert unknown_rack("zz", config(None)).message == "unknown rack 'zz' (configured: none)"
    long = config(None, **{"y" * 50: {"url": A}})
    assert unknown_rack("zz", long).message == "unknown rack 'zz' (configured: " + "y" * 39 + "…)"


def test_a_hint_names_no_rack_longer_than_the_longest_name() -> None:
    from rgw.targets import login_hint

    assert login_hint("x" * 100, None) == f"Please run: rack-gateway login {'x' * 100} <gateway-url>"
    assert login_hint("x" * 101, A) == f"Please run: rack-gateway login <rack> {A}"
    assert login_hint(None, None) == "Please run: rack-gateway login <rack> <gateway-url>"


def test_a_shell_word_escapes_each_control_character_at_its_width() -> None:
    assert shell_word("a'\\\x01\x7f\u0085\u2028\U000e0001") == "$'a\\'\\\\\\x01\\x7f\\x85\\u2028\\U000e0001'"
    assert shell_word("\u0100\u0378\U00010000\U0001fffe") == "$'\u0100\\u0378\U00010000\\U0001fffe'"


def test_a_stored_rack_a_hand_edit_broke_is_a_config_error_saying_how_to_store_a_new_url() -> None:
    from rgw.targets import usable_rack

    error = raised(lambda: command_target(config("my r", **{"my r": {"url": "ftp://x", "token": "t"}}), Selection()))
    assert error.message == "rack 'my r' in the config file has an unusable URL: not a gateway URL: 'ftp://x'"
    assert error.hint == "Store a new URL with: rack-gateway login 'my r' <gateway-url>"
    assert error.exit_code == 10
    for entry, problem in (({"token": "t"}, "it has no URL"), ("x", "its entry is text, not an object")):
        error = raised(lambda entry=entry: usable_rack(config(None, **{"p q": entry}), "p q"))
        assert error.message == f"the config's rack 'p q' cannot be used: {problem}"
        assert error.hint == "Store a new URL with: rack-gateway login 'p q' <gateway-url>"
        error = raised(lambda entry=entry: login_target(config(None, **{"p q": entry}), Selection(), "p q", None))
        assert error.message == f"the config's rack 'p q' cannot be used: {problem}"


def test_no_rack_selected_says_how_to_select_one_and_with_an_api_token_how_to_name_its_gateway() -> None:
    error = raised(lambda: command_target(config(None), Selection()))
    assert (error.message, error.hint, error.exit_code) == (
        "not logged in: no rack is configured yet",
        "Please run: rack-gateway login <rack> <gateway-url>",
        3,
    )
    error = raised(lambda: command_target(config(None), Selection(api_token="rgw_t")))
    assert (error.message, error.hint) == (
        "RACK_GATEWAY_URL is not set: no gateway for the API token",
        "Please run: RACK_GATEWAY_URL=https://gateway.example.com rack-gateway ...",
    )
    error = raised(lambda: command_target(config(None, a={"url": A}), Selection(api_token="rgw_t")))
    assert (error.message, error.hint) == (
        "no rack selected",
        "Please run: rack-gateway switch <rack>   (or set RACK_GATEWAY_RACK)\n"
        "or give the API token's gateway: RACK_GATEWAY_URL=https://gateway.example.com",
    )
    error = raised(lambda: command_target(config(None, a={"url": A}), Selection()))
    assert (error.message, error.hint) == (
        "no rack selected",
        "Please run: rack-gateway switch <rack>   (or set RACK_GATEWAY_RACK)",
    )


def test_an_unusable_token_is_refused_without_showing_it() -> None:
    error = raised(lambda: command_target(TWO, Selection(api_token="a b")))
    assert (error.message, error.hint, error.exit_code) == (
        "the API token has spaces, line breaks or non-ASCII characters in it",
        "Check --api-token / RACK_GATEWAY_API_TOKEN (a file saved with CRLF line endings?); "
        "the token is not shown here.",
        2,
    )
    error = raised(lambda: command_target(config(a={"url": A, "token": "a b"}), Selection()))
    assert (error.message, error.hint, error.exit_code) == (
        "the stored session of rack 'a' is not a valid token (edited by hand?)",
        f"Please run: rack-gateway login a {A}",
        10,
    )


def test_not_logged_in_at_a_gateway_url_names_the_url() -> None:
    error = raised(lambda: command_target(config(None), Selection(environ={"RACK_GATEWAY_URL": A})))
    assert (error.message, error.hint) == (f"not logged in to {A}", f"Please run: rack-gateway login <rack> {A}")
    error = raised(lambda: command_target(config(a={"url": A}), Selection()))
    assert error.message == "not logged in to a"


def test_the_target_carries_its_stored_rack_and_an_api_token_run_keeps_a_usable_one_only() -> None:
    assert command_target(TWO, Selection()).rack == TWO.rack("a")
    assert command_target(TWO, Selection(api_token="rgw_t")).rack == TWO.rack("a")
    env = {"RACK_GATEWAY_URL": ENV_URL}
    assert command_target(TWO, Selection(rack="b", api_token="rgw_t", environ=env)).rack == TWO.rack("b")
    broken = config(a={"token": "t"})
    target = command_target(broken, Selection(api_token="rgw_t", environ=env))
    assert (target.url, target.rack, target.rack_name) == (ENV_URL, None, "a")
    assert command_target(config(None), Selection(api_token="rgw_t", environ=env)).rack is None


def test_a_rack_not_stored_runs_at_rack_gateway_url_and_a_stored_one_at_its_own() -> None:
    env = {"RACK_GATEWAY_URL": ENV_URL}
    error = raised(lambda: command_target(TWO, Selection(rack="new", environ=env)))
    assert (error.message, error.hint) == ("not logged in to new", f"Please run: rack-gateway login new {ENV_URL}")
    assert command_target(TWO, Selection(rack="b", environ=env)).url == B


def test_a_refused_plain_http_link_names_the_rack_in_the_command_to_opt_in() -> None:
    plain = "http://gw.example.com"
    error = raised(lambda: command_target(config(a={"url": plain, "token": "t"}), Selection()))
    assert f"rack-gateway login a {plain} --insecure-http" in (error.hint or "")
    error = raised(lambda: login_target(config(None), Selection(), "prod", plain))
    assert f"rack-gateway login prod {plain} --insecure-http" in (error.hint or "")
    error = raised(
        lambda: command_target(config(None), Selection(api_token="rgw_t", environ={"RACK_GATEWAY_URL": plain}))
    )
    assert (
        error.message
        == f"refusing to send credentials in clear text to {plain} (plain HTTP to a host that is not this machine)"
    )
    assert error.hint == (
        "Use https://, or if this gateway really is plain HTTP on a network you trust,\n"
        "opt in for this run: RACK_GATEWAY_INSECURE_HTTP=1 rack-gateway ..."
    )


def test_login_without_a_rack_says_which_and_a_url_given_as_the_rack_is_told() -> None:
    error = raised(lambda: login_target(config(None), Selection(environ={"RACK_GATEWAY_URL": ENV_URL}), None, None))
    assert (error.message, error.hint) == (
        "which rack? no rack given and none is current",
        f"Please run: rack-gateway login <rack> {ENV_URL}",
    )
    error = raised(lambda: login_target(config(None), Selection(), "https://gw.x/y", None))
    assert (error.message, error.hint) == (
        "'https://gw.x/y' looks like a URL: give the rack a name first",
        "Please run: rack-gateway login production https://gw.x/y",
    )


def test_a_stored_rack_without_a_url_logs_in_at_rack_gateway_url() -> None:
    data = config(None, p={"token": "t"})
    request = login_target(data, Selection(environ={"RACK_GATEWAY_URL": ENV_URL}), "p", None)
    assert (request.rack, request.url) == ("p", ENV_URL)


def test_login_keeps_each_rack_s_plain_http_opt_in_and_the_one_given() -> None:
    plain = "http://gw.example.com"
    data = config(None, p={"url": plain, "insecure_http": True}, q={"url": "http://gw2.example.com"})
    assert [r.insecure_http for r in login_targets(data, ["p"], all_racks=False)] == [True]
    assert [r.insecure_http for r in login_targets(data, ["p", "q"], all_racks=False, insecure_http=True)] == [
        True,
        True,
    ]
    with pytest.raises(RgwError):
        login_targets(data, ["q"], all_racks=False)
    request = login_target(config(None), Selection(environ={"RACK_GATEWAY_URL": plain}), "n", None, insecure_http=True)
    assert request.insecure_http is True


def test_logout_without_a_session_says_what_to_run() -> None:
    error = raised(lambda: stored_session(config(None), Selection()))
    assert (error.message, error.hint) == ("no rack selected", "Please run: rack-gateway racks")
    error = raised(lambda: stored_session(config(a={"url": A}), Selection()))
    assert (error.message, error.hint) == ("not logged in to a", f"Please run: rack-gateway login a {A}")


def test_a_target_s_hint_says_to_check_an_api_token_or_to_log_in_again() -> None:
    from rgw.targets import Target

    assert (
        Target(A, "t", "a", None, True).login_hint() == "Check the API token (--api-token or RACK_GATEWAY_API_TOKEN)."
    )
    assert Target(A, "t", "a", None, False).login_hint() == f"Please run: rack-gateway login a {A}"


@pytest.mark.anyio
async def test_reading_the_target_uses_the_config_file_and_an_api_token_run_goes_on_without_an_unreadable_one(
    tmp_path: Any,
) -> None:
    import json

    from rgw.config import ConfigStore
    from rgw.errors import ConfigError
    from rgw.targets import read_command_target, read_stored_session

    (tmp_path / "config.json").write_text(
        json.dumps({"current": "a", "gateways": {"a": {"url": A, "token": "sess-a"}}})
    )
    (tmp_path / "config.json").chmod(0o600)
    store = ConfigStore(tmp_path)
    target = await read_command_target(store, Selection())
    assert (target.url, target.token, target.rack_name) == (A, "sess-a", "a")
    assert (await read_stored_session(store, Selection())).token == "sess-a"

    (tmp_path / "config.json").write_text("{not json")
    told: list[str] = []
    store = ConfigStore(tmp_path, on_warning=told.append)
    with pytest.raises(ConfigError):
        await read_command_target(store, Selection())
    with pytest.raises(ConfigError):
        await read_command_target(store, Selection(api_token="rgw_t"))
    with pytest.raises(ConfigError):
        await read_command_target(store, Selection(environ={"RACK_GATEWAY_URL": ENV_URL}))
    assert told == []
    target = await read_command_target(store, Selection(api_token="rgw_t", environ={"RACK_GATEWAY_URL": ENV_URL}))
    assert (target.url, target.token, target.rack_name, target.api_token) == (ENV_URL, "rgw_t", None, True)
    [warning] = told
    assert warning.startswith("Warning: ")
    assert warning.endswith("\n(this API-token run needs no config file: going on without it)")
    silent = ConfigStore(tmp_path)
    target = await read_command_target(silent, Selection(api_token="rgw_t", environ={"RACK_GATEWAY_URL": ENV_URL}))
    assert target.url == ENV_URL
