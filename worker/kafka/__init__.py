"""Kafka adapters (confluent-kafka), and the one place librdkafka's answers are translated.

Owns ``source`` (the consumer-group member, the loop's ``Source``), ``dlq`` (the dead-letter
producer, its ``DeadLetterSink``), ``readback`` (records read again by offset, its
``RecordReader``), ``stats`` and ``reachability`` (librdkafka's statistics and errors turned
into readiness, the lag gauge and one log line per state change), and ``clients`` (quiet
clients for the operator commands). The consumer's and the producer's callbacks run on the
poll loop's thread; the read-back runs on job threads.
"""
