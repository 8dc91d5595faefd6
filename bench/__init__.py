"""The benchmark harness: throughput, raw-client ceiling, Quix Streams peer, latency, recovery."""
