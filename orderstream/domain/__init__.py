"""Pure domain rules: no Faust, no Kafka, no I/O. Each step is decide(state, event) -> Decision."""
