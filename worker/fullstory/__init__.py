"""FullStory's batch user import API, as the worker calls it.

Owns ``client`` (one HTTP call, one answer, every answer mapped to an error class once),
``calls`` (the retry policy every job thread shares: Retry-After, backoff, the prober),
``importer`` (``Importer.run``: plain users in, an ``ImportOutcome`` out, splitting refused
requests), ``jobs`` (following a job to its end and reading its per-user errors) and
``idempotency`` (the key derived from a body and a digest of the records it carries). Runs
on the loop's job threads; knows nothing of Kafka or of the loop's batches.
"""
