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
