"""Hypothesis settings for the fuzzing tests: a reproducible ``ci`` profile and a ``thorough`` one.

``RGW_HYPOTHESIS_PROFILE=thorough`` (``scripts/dev test``, or pytest) runs twenty times the examples
with fresh randomness and the example database; the default ``ci`` profile is derandomized and keeps
no database, so a CI run tries the same examples every time and its run time stays small.  A test
asks for ``fuzz_settings(n)``: ``n`` examples under ``ci``, ``20 * n`` under ``thorough``.  Every
target does I/O (sockets, files, an event loop), so no deadline: hangs are caught by
``anyio.fail_after`` inside the tests, not by Hypothesis's timing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from hypothesis import HealthCheck, Phase, settings

from rgw.errors import RgwError

T = TypeVar("T")

PROFILE_VARIABLE = "RGW_HYPOTHESIS_PROFILE"
_SCALE = {"ci": 1, "thorough": 20}
#: Hypothesis's "explain" phase re-parses test sources and trips over deep recursion in some of them.
_PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    phases=_PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "thorough",
    deadline=None,
    print_blob=True,
    phases=_PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE = os.environ.get(PROFILE_VARIABLE, "ci")
if PROFILE not in _SCALE:
    raise RuntimeError(f"{PROFILE_VARIABLE} must be one of {', '.join(_SCALE)}, not {PROFILE!r}")
settings.load_profile(PROFILE)


def fuzz_settings(examples: int) -> settings:
    """The loaded profile with ``examples`` examples scaled to it (see the module docstring)."""
    return settings(max_examples=examples * _SCALE[PROFILE])


def attempt(call: Callable[[], T]) -> tuple[T | None, RgwError | None]:
    """``(result, None)`` or ``(None, the RgwError it raised)``: any other exception propagates."""
    try:
        return call(), None
    except RgwError as exc:
        return None, exc
