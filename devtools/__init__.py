"""Development tools, not in the Docker image: a local Kafka broker (`broker`, `local_cluster`),
worker processes (`workers`), simulated orders (`simulator`, `demo`) and the run verifier
(`verify`). The `orderstream broker|run|demo` commands import them when run."""
