"""The benchmark harness: throughput, raw-client ceiling and bare Faust loop, Quix Streams peer,
latency, recovery."""
