"""The operator commands, each on the main thread of its own short process.

Owns ``status`` (lag and members; ``progress``: a replay's rate and ETA), ``replay`` (moves
the stopped group's offsets), ``dlq_inspect`` (reads the dead-letter topic; ``letters``
parses and counts the letters). Admin or group-less clients only: none joins the group or
commits, except ``replay --execute``.
"""
