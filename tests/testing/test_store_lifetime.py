"""The reference gateway's SQLite store, left unclosed, closes its database when it is collected."""

from __future__ import annotations

import gc
import warnings

from rgw.testing.gateway.store import Store


def test_a_store_nobody_closed_leaves_no_open_database_behind() -> None:
    store = Store()
    assert store.rows("SELECT 1 AS one")[0]["one"] == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del store
        gc.collect()
    # Python 3.13 warns of an sqlite3 connection collected while open (ResourceWarning).
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
