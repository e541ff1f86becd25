"""fullstory-user-sync: Kafka user-change events -> FullStory batch user import.

Packages, by the thread that runs them and the outside service they talk to:

- ``loop``: the poll loop and its stages (``loop.commit``: the watermark, the job ledger, the
  hand-over fences); it imports no adapter, only its ``ports``;
- ``events``: decoding, FullStory's rules and merging (the schema registry's client too);
- ``fullstory``: the import API, its retry policy and jobs, on job threads;
- ``kafka``: the consumer, the DLQ producer, the read-back and librdkafka's statistics;
- ``config``: settings from the environment; ``runtime``: health, metrics, logs, clock;
- ``ops``: the operator commands (``status``, ``replay``, ``dlq inspect``).

Beside them: ``cli`` (wiring and signals), ``errors`` (the error tree), ``records`` (Kafka
records as the stages pass them) and ``bounded_http`` (every HTTP answer read within a cap
and a deadline). ARCHITECTURE.md draws how they fit.
"""

__version__ = "0.1.0"
