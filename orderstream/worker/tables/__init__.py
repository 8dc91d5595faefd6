"""One module per table. Values are JSON of the domain models; keys are the Kafka keys."""
