"""orderstream: event-driven order processing on Faust and Apache Kafka.

Importing this package, or any of its modules outside `orderstream.worker` and `orderstream.web`,
builds no Faust app and changes nothing in the process: the worker's app is built by
`orderstream.worker.app` (`faust -A orderstream.worker.app worker`, `orderstream worker`).
The README's "Layout" section says what lives where."""
