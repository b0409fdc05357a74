"""``logout --all --timeout T``: one deadline for the whole command, not one per rack.

Twenty racks whose gateway takes connections and never answers, revoked eight at a time: with one
deadline the first eight hold the command until ``T`` and the other twelve are never contacted
(all twenty are reported as not revoked, and forgotten here all the same).  With a deadline per
rack, each batch of eight got ``T`` of its own and all twenty were contacted, one batch after
another.  The test counts connections, not seconds.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from rgw.models import DEFAULT_PARALLEL
from tests.integration.conftest import Cli

pytestmark = pytest.mark.anyio

RACKS = 20


@pytest.fixture
def mute_gateway() -> Iterator[socket.socket]:
    """Takes connections (the kernel's backlog) and never answers one."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    yield sock
    sock.close()


def connections(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


async def test_logout_all_ends_by_one_deadline_for_every_rack(cli: Cli, mute_gateway: socket.socket) -> None:
    url = f"http://127.0.0.1:{mute_gateway.getsockname()[1]}"
    cli.config_dir.mkdir(mode=0o700)
    gateways = {f"rack{i:02d}": {"url": url, "token": f"session-token-{i:02d}"} for i in range(RACKS)}
    (cli.config_dir / "config.json").write_text(json.dumps({"current": "rack00", "gateways": gateways}))
    (cli.config_dir / "config.json").chmod(0o600)

    result = await cli("logout", "--all", "--timeout", "1")

    assert result.code == 11, result.err
    assert connections(mute_gateway) == DEFAULT_PARALLEL  # the later batches never started
    assert result.out.count("no answer within --timeout 1 s") == RACKS
    assert all("token" not in entry for entry in cli.config()["gateways"].values())  # forgotten here all the same
