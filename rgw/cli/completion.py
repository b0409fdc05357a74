"""``completion bash|zsh|fish``: the shell script that makes the shell ask ``rack-gateway`` for completions.

The scripts and the protocol are click's own (``asyncclick.shell_completion``): the shell runs
``rack-gateway`` with ``_RACK_GATEWAY_COMPLETE=<shell>_complete`` and the words typed so far, and
click answers with the commands, options and values that fit.  Rack names (``--rack``, ``switch``,
``login``) come from the config file (``rgw.cli.options.complete_racks``), plain names only: a shell
puts a completion on the command line as it is, so a name another tool stored with ``$(...)``, a
line break or a comma in it is never offered.  Answering runs without an
event loop and imports no command module to list commands (``rgw.cli.lazy``), so a Tab is quick.
"""

from __future__ import annotations

import asyncclick as click

from rgw import aio
from rgw.cli.app import App
from rgw.cli.options import pass_app

PROG_NAME = "rack-gateway"
#: The variable the scripts set when they ask for completions (click's ``_<PROG>_COMPLETE``).
COMPLETE_VAR = "_RACK_GATEWAY_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


def script(shell: str) -> str:
    """The completion script for ``shell`` (blocking: bash's needs ``bash --version``)."""
    from asyncclick.shell_completion import get_completion_class

    from rgw.cli import cli

    complete = get_completion_class(shell)
    assert complete is not None, shell
    return complete(cli, {}, PROG_NAME, COMPLETE_VAR).source()


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@pass_app
async def completion(app: App, shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish (see the README for where it goes).

    \b
    bash:  eval "$(rack-gateway completion bash)"       in ~/.bashrc
    zsh:   eval "$(rack-gateway completion zsh)"        in ~/.zshrc (after compinit)
    fish:  rack-gateway completion fish > ~/.config/fish/completions/rack-gateway.fish
    """
    text = await aio.call(script, shell)
    app.out.write(text if text.endswith("\n") else text + "\n")
    app.out.flush()
