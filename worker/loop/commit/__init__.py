"""Committing: what may be committed, and what each commit must name.

Owns ``committer`` (the commit stage and its verbs: ``track``, ``ack``, ``job_started``,
``jobs_ended``, ``commit``, ``on_commit``), ``watermark`` (the acknowledged prefix per
partition, pure), ``ledger`` (FullStory jobs in flight per partition, written to the commit
metadata, pure) and ``fence`` (partitions held until a previous owner's jobs ended).
Only the poll loop's thread calls these.
"""
