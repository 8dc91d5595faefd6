"""Periodic work in every worker, one module each: saga deadlines (`timeouts`), stuck-partition
checks (`partition_watchdog`), and the gauges read from state (`gauges`)."""
