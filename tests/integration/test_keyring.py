"""``--token-storage keyring``: tokens in the OS keyring, never in config.json, with a time-boxed fallback.

Real CLI processes (keyring picks its backend once per process, from ``PYTHON_KEYRING_BACKEND``)
against the reference gateway; the keyring is rgw.testing.keyrings' JSON-file stand-in, a keyring
that never answers, or keyring's own "no keyring" backend.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

from rgw.testing import RunningGateway
from tests.integration.procs import cli_env, spawn


def run(config: Path, *args: str, backend: str, keyring_file: Path | None = None) -> tuple[int, str, str]:
    env = cli_env()
    env["PYTHON_KEYRING_BACKEND"] = backend
    if keyring_file is not None:
        env["RGW_TEST_KEYRING"] = str(keyring_file)
    proc = spawn(config, *args, env=env)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


FILE_KEYRING = "rgw.testing.keyrings.JsonFileKeyring"


def test_tokens_live_in_the_keyring_and_logout_removes_them(gateway: RunningGateway, tmp_path: Path) -> None:
    config, items = tmp_path / "cfg", tmp_path / "keyring.json"
    code, out, err = run(
        config, "login", "prod", gateway.url, "--token-storage", "keyring", backend=FILE_KEYRING, keyring_file=items
    )
    assert code == 0, err
    assert out == "Logged in as developer@example.com\n"
    data = json.loads((config / "config.json").read_text())
    entry = data["gateways"]["prod"]
    assert data["token_storage"] == "keyring"
    assert "token" not in entry
    assert entry["token_storage"] == "keyring"
    token = json.loads(items.read_text())[f"rack-gateway/prod {gateway.url}"]
    assert gateway.gateway.session_valid(token)
    assert token not in (config / "config.json").read_text()
    # Commands find it there.
    code, out, err = run(config, "test-auth", backend=FILE_KEYRING, keyring_file=items)
    assert code == 0, err
    assert out.startswith("Authenticated as developer@example.com")
    code, out, err = run(config, "racks", backend=FILE_KEYRING, keyring_file=items)
    assert code == 0, err
    assert "logged in" in out
    # logout revokes it and removes it from both places.
    code, out, err = run(config, "logout", backend=FILE_KEYRING, keyring_file=items)
    assert code == 0, err
    assert json.loads(items.read_text()) == {}
    entry = json.loads((config / "config.json").read_text())["gateways"]["prod"]
    assert "token" not in entry
    assert "token_storage" not in entry
    assert not gateway.gateway.session_valid(token)


def test_switching_back_to_file_moves_the_tokens_out_of_the_keyring(gateway: RunningGateway, tmp_path: Path) -> None:
    config, items = tmp_path / "cfg", tmp_path / "keyring.json"
    for rack in ("a", "b"):
        code, _, err = run(
            config, "login", rack, gateway.url, "--token-storage", "keyring", backend=FILE_KEYRING, keyring_file=items
        )
        assert code == 0, err
    assert len(json.loads(items.read_text())) == 2
    code, _, err = run(config, "login", "a", "--token-storage", "file", backend=FILE_KEYRING, keyring_file=items)
    assert code == 0, err
    data = json.loads((config / "config.json").read_text())
    assert data["token_storage"] == "file"
    assert json.loads(items.read_text()) == {}
    for rack in ("a", "b"):
        assert gateway.gateway.session_valid(data["gateways"][rack]["token"])
        assert "token_storage" not in data["gateways"][rack]
    assert stat.S_IMODE((config / "config.json").stat().st_mode) == 0o600


def test_without_a_keyring_the_token_stays_in_the_0600_file_with_a_warning(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    config = tmp_path / "cfg"
    code, out, err = run(
        config, "login", "prod", gateway.url, "--token-storage", "keyring", backend="keyring.backends.fail.Keyring"
    )
    assert code == 0, err
    assert out == "Logged in as developer@example.com\n"
    assert "Warning: the OS keyring failed (NoKeyringError); the session stays in config.json (mode 0600).\n" in err
    entry = json.loads((config / "config.json").read_text())["gateways"]["prod"]
    assert gateway.gateway.session_valid(entry["token"])
    assert "token_storage" not in entry
    assert entry["token"] not in err + out


def test_a_keyring_that_never_answers_is_given_three_seconds(gateway: RunningGateway, tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    code, _out, err = run(
        config,
        "login",
        "prod",
        gateway.url,
        "--token-storage",
        "keyring",
        backend="rgw.testing.keyrings.HangingKeyring",
    )
    assert code == 0, err
    assert "Warning: the OS keyring did not answer within 3 s; the session stays in config.json (mode 0600).\n" in err
    entry = json.loads((config / "config.json").read_text())["gateways"]["prod"]
    assert gateway.gateway.session_valid(entry["token"])
    # A later command with the session in the file does not touch the keyring at all.
    code, _out, err = run(config, "test-auth", backend="rgw.testing.keyrings.HangingKeyring")
    assert code == 0, err
    assert err == ""
