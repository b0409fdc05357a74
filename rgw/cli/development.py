"""``dev``: the reference gateway's commands, apart from the user's (``dev gateway|demo|admin``).

``rack-gateway --help`` lists them in a section of their own; their old top-level names
(``dev-gateway``, ``demo``, ``admin``) keep working and are not listed (``rgw.cli.COMMANDS``).
"""

from __future__ import annotations

import asyncclick as click

from rgw.cli.lazy import LazyCommand, LazyGroup
from rgw.cli.options import add_global_options

GATEWAY = LazyCommand(
    "rgw.cli.dev:dev_gateway", "Serve the reference gateway (a stand-in for a deployed rack gateway) until Ctrl-C."
)
DEMO = LazyCommand(
    "rgw.cli.dev:demo", "Run a complete login on a built-in reference gateway: login, test-auth, apps, rack, logout."
)
ADMIN = LazyCommand("rgw.cli.admin:admin", "Administrator actions on a reference gateway (needs the admin role).")
#: ``dev``'s commands: name -> where it lives and its help line (``tests/unit/test_lazy.py`` checks them).
DEV_COMMANDS = {"gateway": GATEWAY, "demo": DEMO, "admin": ADMIN}


@click.group(
    "dev",
    cls=LazyGroup,
    lazy=DEV_COMMANDS,
    prepare=add_global_options,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="The old names rack-gateway dev-gateway, demo and admin work as well.",
)
async def dev() -> None:
    """Serve the reference gateway, run its demo, its admin actions."""
