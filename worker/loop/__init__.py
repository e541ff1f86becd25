"""The poll loop: consume -> decode and merge -> batch -> import -> dead-letter -> commit.

Owns ``pipeline`` (the loop alone: a turn, the drain, the rebalance callbacks), ``stages``
(the factory that builds its stages whole), ``ports`` (the ``Source``, ``DeadLetterSink`` and
``RecordReader`` it needs, implemented by ``worker.kafka`` and by the test fakes), and one
module per stage: ``intake``, ``batch``, ``flow`` (backpressure, the backlog hold),
``dispatch`` (job threads), ``acknowledge``, ``assignment`` (which partitions are ours) and
``commit`` (the watermark, the job ledger, the hand-over fences, the commit stage).
One thread, the poll loop's, runs all of it but ``dispatch``'s job threads, which see only
what they are handed. Imports no Kafka or HTTP adapter.
"""
