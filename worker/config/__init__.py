"""Configuration: the environment read once, at start-up, into frozen settings.

Owns ``settings`` (``load_settings``: every variable, checked, one ``ConfigError`` naming the
variable), ``spec`` (each setting's type, range, default and documentation, which README and
the chart are held to), ``kafka`` (the ``KAFKA_CFG_*`` pass-through and what it refuses) and
``redact`` (secrets and URL credentials kept out of repr, logs and errors).
Runs on the main thread before anything connects; imports nothing of the worker but its errors.
"""
