"""What crosses Kafka: the event models (`events`), the topic registry (`topics`), their JSON
Schema files (`schemas`, `schema_compat`) and the dead-letter header format (`dead_letters`).
Pure: no Faust, no I/O at import."""
