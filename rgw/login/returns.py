"""Where a login's sign-in returns to: the check that keeps one rack's gateway from harvesting another's.

A gateway's ``auth_url`` sends the browser to a sign-in whose ``redirect_uri`` receives the
authorization code (``rgw.urls.sign_in_return``).  A hostile gateway can answer ``/auth/cli/start``
with the ``auth_url`` another gateway gave it and redeem that login itself: an identity-provider
session signs the user in without a click, and the hostile gateway holds a session for the other
rack.  So ``check_sign_in`` decides, before anything is shown or opened:

- returns to the rack's own gateway (or names no ``redirect_uri``): all is well;
- returns to, or is served by, another rack's gateway of the same command: refused;
- returns elsewhere (legitimate too: a gateway reached through a Tailscale address whose public
  DOMAIN differs): allowed with a click only, said in the terminal and on the walk's page, and
  remembered for the rack (``RETURN_FIELD``, trust on first use as ssh does with host keys); a later
  change is refused until the user accepts it (``login RACK --accept-redirect HOST``).
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from rgw.errors import GatewayError, LoginError
from rgw.models import RackConfig
from rgw.text import printable
from rgw.urls import host_matches, origin, origin_host, sign_in_return

__all__ = ["RETURN_FIELD", "SignInCheck", "check_sign_in", "remembered_return"]

#: A rack entry's note of the origin its sign-in returned to at its last login (the Go CLI ignores
#: unknown fields).
RETURN_FIELD = "sign_in_return"


@dataclass(frozen=True)
class SignInCheck:
    """Where a login's sign-in returns to, and what that means."""

    #: The origin its ``redirect_uri`` names (None: it names none).
    returns_to: str | None = None
    #: Not the rack's own gateway: the browser never goes there without the user's click.
    elsewhere: bool = False
    #: Not remembered for the rack yet (it is once the login succeeds).
    first_use: bool = False
    #: A change the user accepted (``--accept-redirect``; remembered once the login succeeds).
    accepted: bool = False

    @property
    def trust(self) -> str:
        return "first use" if self.first_use else "accepted" if self.accepted else "remembered"


def remembered_return(rack: RackConfig | None) -> str | None:
    """The origin ``rack``'s sign-in returned to at its last login (None: none remembered)."""
    value = rack.extra.get(RETURN_FIELD) if rack is not None else None
    return value if isinstance(value, str) and value else None


async def check_sign_in(
    rack: str,
    auth_url: str,
    *,
    gateway: str,
    others: Mapping[str, str],
    remembered: Callable[[], Awaitable[str | None]],
    accept: str | None = None,
) -> SignInCheck:
    """Check the sign-in ``auth_url`` that rack ``rack``'s gateway (at ``gateway``) gave.

    ``others``: the other racks' gateways of the command, origin -> rack; ``remembered``: the origin
    the rack's sign-in returned to before (asked only for a sign-in returning elsewhere, as it may
    read the config); ``accept``: the user's ``--accept-redirect HOST``.
    A ``LoginError`` refuses the rack; a ``GatewayError`` says the ``redirect_uri`` names no one place.
    """
    own = origin(gateway)
    try:
        returns_to = sign_in_return(auth_url)
    except ValueError as exc:
        raise GatewayError(
            f"the gateway's sign-in URL was refused: {exc} (it is not opened and not shown)",
            hint="A sign-in must say plainly where it returns to; check that this is a rack gateway.",
        ) from None
    # Without a redirect_uri, a sign-in page served by another rack's gateway is one of its logins too.
    for where, how in ((returns_to, "returns to"), (origin(auth_url), "is served by")):
        other = others.get(where) if where is not None and where != own else None
        if other is not None:
            raise _another_rack(rack, other, how, origin_host(where or ""))
    if returns_to is None or returns_to == own:
        return SignInCheck(returns_to)
    accepted = accept is not None and host_matches(accept, returns_to)
    before = await remembered()
    if before == returns_to:
        return SignInCheck(returns_to, elsewhere=True)
    if before is not None and not accepted:
        raise _changed(rack, gateway, origin_host(returns_to), origin_host(before))
    return SignInCheck(returns_to, elsewhere=True, first_use=not accepted, accepted=accepted)


def _another_rack(rack: str, other: str, how: str, host: str) -> LoginError:
    name, shown, theirs = shlex.quote(rack), printable(rack), printable(other)
    return LoginError(
        f"the sign-in {shown}'s gateway gave {how} rack {theirs}'s gateway ({host}): "
        f"it would log that gateway, not {shown}'s, in",
        hint=(
            f"Nothing was opened. Check rack {shown}'s URL: its gateway may be hostile. If {shown} and {theirs} "
            f"really are one gateway under two addresses, log in to {shown} on its own: rack-gateway login {name}"
        ),
    )


def _changed(rack: str, gateway: str, there: str, before: str) -> LoginError:
    return LoginError(
        f"the sign-in of rack {printable(rack)} now returns to {there}; it returned to {before} before",
        hint=(
            f"Nothing was opened. If {there} really is this rack's gateway now (its public address changed), "
            f"accept it once:\n  rack-gateway login {shlex.quote(rack)} --accept-redirect {shlex.quote(there)}\n"
            f"Otherwise do not sign in: the gateway at {gateway} may not be the one you know."
        ),
    )
