"""fullstory-user-sync: Kafka user-change events -> FullStory batch user import.

The pipeline, one module per stage:
``source`` (consume) -> ``decode`` -> ``batch`` (merge by uid) -> ``importer`` (POST the
batch) -> ``jobs`` (await the job, read its errors) -> ``dlq`` (what could not be delivered)
-> ``offsets`` (commit the acknowledged prefix). ``pipeline`` runs the loop that ties them.
"""

__version__ = "0.1.0"
