"""The event: Kafka value bytes -> a checked ``UserChange`` -> one merged ``UserUpdate`` a user.

Owns ``change`` (the ``UserChange`` model), ``decode`` (the ``Decoder``: Confluent wire
format or plain Avro, the compiled reader ``_user_change.c`` or fastavro), ``registry``
(writer schemas by id, over HTTP), ``rules`` (FullStory's rules each event is checked
against) and ``merge`` (folding a user's changes into the request FullStory takes).
Runs on the poll loop's thread (``merge.UserUpdate.to_request`` on job threads too). Pure but
for the registry's fetch; a bad event raises ``InvalidRecord`` with its ``code``.
"""
