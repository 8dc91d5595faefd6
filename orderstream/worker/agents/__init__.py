"""One module per agent. Each is a thin adapter: decode, read the table, decide, write, emit
(the saga, inventory and payment agents through `orderstream.worker.apply.apply_once`, which
reads the state, tells a redelivery from a new record, and writes the state)."""
