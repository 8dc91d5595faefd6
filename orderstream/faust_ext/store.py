"""Faust's RocksDB store (entry point `faust.stores`, URL `orderstream://`), without a full
garbage collection where nothing was closed.

Faust's `Store.revoke_partitions` runs `gc.collect()` at every rebalance, for every table, even
when it revoked nothing (a worker's first assignment): 55-80 ms each on this machine, ~0.4 s of
an empty worker's start with its six tables, and as long again at each rebalance, with the
event loop stopped. The collection is there for the databases of revoked partitions (Faust
drops them without closing them): one held in a reference cycle would keep its directory's lock
until the next collection, and opening the partition again would wait for it. It still runs
whenever a database was dropped."""

from __future__ import annotations

import gc
from typing import Any

from faust.stores import rocksdb


class Store(rocksdb.Store):
    def revoke_partitions(self, table: Any, tps: Any) -> None:
        """Faust 0.15.3's, with `gc.collect()` only when a database was dropped."""
        dropped = False
        for tp in tps:
            if tp.topic in table.changelog_topic.topics:
                db = self._dbs.pop(tp.partition, None)
                if db is not None:
                    self.logger.info(f"closing db {tp.topic} partition {tp.partition}")
                    dropped = True
        if dropped:
            gc.collect()
