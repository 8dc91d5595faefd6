"""The worker: the Faust app (`app`), its agents, tables and timers, the payment gateway, and
the dead-letter handling around every agent. Importing `orderstream.worker.app`, or any module
that imports it (agents, tables, timers), builds the app."""
