"""One module per agent. Each is a thin adapter: decode, read the table, decide, write, emit."""
