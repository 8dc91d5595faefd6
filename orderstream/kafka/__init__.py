"""Plain Kafka clients (aiokafka) outside Faust: credentials (`auth`), topic creation (`admin`),
the partitioner (`partitioner`) and reading a topic from start to end (`reader`)."""
