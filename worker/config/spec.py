"""The worker's settings, declared once: name, type, range or choices, default, secrecy, meaning.

``worker.config.settings`` reads its defaults, ranges and choices from here; the README's settings
table is printed from it (``scripts/settings_doc.py``), and
``tests/unit/config/test_settings_consistency.py`` holds the Helm chart's ``values.schema.json`` and
that table to it. A new setting is declared here first, then read in ``worker.config.settings``.

Kinds: ``int`` (within ``minimum..maximum``), ``str``, ``bool`` (true/false, 1/0, yes/no;
unset is false), ``enum`` (one of ``choices``, case-insensitive), ``url`` (http(s)), ``list``
(comma-separated ``item`` values, ``int`` items within ``minimum..maximum``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from worker.config.choices import OnDelete, PropertyTypes, SourceFormat

Kind = Literal["int", "str", "bool", "enum", "url", "list"]


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    kind: Kind
    description: str
    # None: unset (or, with ``required``, no default).
    default: int | str | bool | None = None
    required: bool = False
    secret: bool = False
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    item: Literal["str", "int"] = "str"  # the kind of a ``list``'s items


# A family of variables sharing a prefix (``KAFKA_CFG_<NAME>``), documented as one row.
@dataclass(frozen=True, slots=True)
class Prefix:
    prefix: str
    shown_as: str
    description: str


SETTINGS: tuple[Setting, ...] = (
    Setting("KAFKA_BOOTSTRAP_SERVERS", "str", "brokers", required=True),
    Setting("KAFKA_TOPICS", "list", "comma-separated source topics", required=True),
    Setting("KAFKA_GROUP_ID", "str", "consumer group (replicas share it)", "fullstory-user-sync"),
    Setting(
        "SCHEMA_REGISTRY_URL",
        "url",
        "set: values are Confluent wire format, writer schemas fetched by id and resolved "
        "against `schemas/user_change.avsc`; unset: plain Avro of that schema, without the "
        "5-byte header or with a header whose id is in `LOCAL_SCHEMA_IDS`",
    ),
    Setting(
        "LOCAL_SCHEMA_IDS",
        "list",
        "without a registry: the wire-format schema ids (comma-separated, 0..2147483647) "
        "written with the local schema; a value whose 5-byte header names another id is "
        "dead-lettered (`undeclared_schema_id`), never read with a schema it was not written "
        "with",
        item="int",
        minimum=0,
        maximum=2**31 - 1,
    ),
    Setting(
        "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
        "str",
        "`user:password` for the registry (secret). With credentials (here or as userinfo in "
        "the URL) a plain `http://` registry must be on loopback, or "
        "`SCHEMA_REGISTRY_ALLOW_INSECURE_HTTP=true`; without them plain http is fine (schemas "
        "are not secret)",
        secret=True,
    ),
    Setting(
        "SCHEMA_REGISTRY_ALLOW_INSECURE_HTTP",
        "bool",
        "allow registry credentials over plain `http://` to another host (logged once as "
        "`insecure_http_allowed`)",
        False,
    ),
    Setting(
        "FULLSTORY_API_KEY", "str", "FullStory server API key (secret)", required=True, secret=True
    ),
    Setting(
        "FULLSTORY_API_URL",
        "url",
        "point at the sandbox to try it without an account. An `http(s)://` URL with a valid "
        "host and port, no query; plain `http://` is refused (it would carry the API key in "
        "clear) unless the host is loopback (`127.0.0.0/8`, `::1`, `localhost`) or "
        "`FULLSTORY_ALLOW_INSECURE_HTTP=true`",
        "https://api.fullstory.com",
    ),
    Setting(
        "FULLSTORY_ALLOW_INSECURE_HTTP",
        "bool",
        "allow plain `http://` to a non-loopback FullStory URL (logged once at start as "
        "`insecure_http_allowed`). Booleans take `true`/`false`/`1`/`0`/`yes`/`no`; anything "
        "else exits 2",
        False,
    ),
    Setting(
        "DLQ_TOPIC",
        "str",
        "dead-letter topic: it must exist (`run` exits 2 naming the command that creates it); "
        "refused if it is one of `KAFKA_TOPICS` (dead letters would loop forever)",
        "fullstory-user-sync-dlq",
    ),
    Setting(
        "BATCH_MAX_USERS",
        "int",
        "users (after merging) per import job",
        10_000,
        minimum=1,
        maximum=50_000,
    ),
    Setting(
        "BATCH_MAX_WAIT_MS",
        "int",
        "how long a batch may wait to fill",
        1_000,
        minimum=0,
        maximum=3_600_000,
    ),
    Setting(
        "MAX_JOBS_IN_FLIGHT",
        "int",
        "import jobs this replica may keep open (its job threads): a ceiling on its share of "
        "`FULLSTORY_ORG_MAX_JOBS`, which the replicas share",
        10,
        minimum=1,
        maximum=100,
    ),
    Setting(
        "FULLSTORY_ORG_MAX_JOBS",
        "int",
        "import jobs the whole group may have in flight (FullStory's limits are per org: 429 "
        "for everyone at 200 in progress); each replica takes its share of the partitions' "
        "part, at least 1, at most `MAX_JOBS_IN_FLIGHT`, halved on a 429 and grown back",
        100,
        minimum=1,
        maximum=200,
    ),
    Setting(
        "FULLSTORY_ORG_MAX_OPERATIONS",
        "int",
        "users the whole group may have in import jobs in flight (FullStory answers 429 at "
        "500,000 in-flight operations per org); each replica's batches are cut to fit its "
        "share",
        400_000,
        minimum=1,
        maximum=500_000,
    ),
    Setting(
        "MAX_PENDING_USERS",
        "int",
        "users whose merged changes wait for an import job (about 0.5-1 KB each, plus 8 bytes "
        "per record merged); at the bound the partitions are paused (backpressure). Events are "
        "merged on arrival, so a backlog costs memory per user, not per record. "
        "(`MAX_BUFFERED_RECORDS` is refused: it counted records)",
        100_000,
        minimum=100,
        maximum=10_000_000,
    ),
    Setting("SHUTDOWN_TIMEOUT_S", "int", "drain deadline on SIGTERM", 30, minimum=1, maximum=3600),
    Setting(
        "HTTP_PORT",
        "int",
        "`/healthz` (liveness: the poll loop turns) and `/readyz` (joined the group, Kafka "
        "reachable, its topics exist, records decode, FullStory answering, no job overdue); "
        "`0` disables",
        8080,
        minimum=0,
        maximum=65535,
    ),
    Setting(
        "HTTP_HOST",
        "str",
        "address of the health server: an IP address (IPv6 such as `::` too) or a host name; "
        "one it cannot listen on exits 2",
        "0.0.0.0",
    ),
    Setting(
        "FULLSTORY_HTTP_TIMEOUT_S",
        "int",
        "the longest one call to FullStory may take, whole: waiting for a connection, "
        "connecting, sending, and reading the answer, however slowly it trickles in (past it "
        "the call is retried)",
        30,
        minimum=1,
        maximum=600,
    ),
    Setting(
        "JOB_POLL_MAX_INTERVAL_MS",
        "int",
        "longest pause between job-status polls",
        2_000,
        minimum=10,
        maximum=60_000,
    ),
    Setting(
        "JOB_MAX_WAIT_S",
        "int",
        "a FullStory job still unfinished this long after it was created (or, for a partition "
        "taken over, after the wait for the old owner's job began) is *overdue*: it is still "
        "followed and its records stay unacknowledged until it ends (never dead-lettered, "
        "never sent again beside it), but `/readyz` answers 503 naming it "
        "(`jobs_within_limit: false`) and `fsus_jobs_overdue` counts it, until it ends",
        3600,
        minimum=60,
        maximum=7 * 86_400,
    ),
    Setting(
        "LIVENESS_TIMEOUT_S",
        "int",
        "`/healthz` fails when the poll loop has not turned for this long",
        60,
        minimum=1,
        maximum=3600,
    ),
    Setting(
        "LOG_LEVEL", "enum", "log level", "info", choices=("debug", "info", "warning", "error")
    ),
    Setting("LOG_FORMAT", "enum", "`console` for people", "json", choices=("json", "console")),
    Setting(
        "PROPERTY_TYPES",
        "enum",
        "how property types reach FullStory: `v2` declares them in `schema` (a name with a v1 "
        "type suffix is sent without it); `suffixed` names every property with its suffix "
        "(`plan_str`, `visits_int`) and declares nothing. See [The event](#the-event)",
        PropertyTypes.V2,
        choices=tuple(PropertyTypes),
    ),
    Setting(
        "UID_ALLOW_FORMAT_CHARACTERS",
        "bool",
        "let new users' uids hold Unicode format characters (zero-width spaces and joiners, "
        "bidi controls, BOM) or characters shown as nothing (Hangul fillers, variation "
        "selectors); refused by default (`invalid_uid`), as they make distinct users look "
        "alike in FullStory; deletes are never refused for them. See [The event](#the-event)",
        False,
    ),
    Setting(
        "SOURCE_FORMAT",
        "enum",
        "what the topics carry: `canonical`, the worker's own event (a tombstone keyed by the "
        "uid is a delete); `debezium`, Debezium change events of a users table, raw envelopes "
        "or flattened by `ExtractNewRecordState`, mapped by `FIELD_MAPPING` (needs "
        "`SCHEMA_REGISTRY_URL`). See [Debezium sources](#debezium-sources)",
        SourceFormat.CANONICAL,
        choices=tuple(SourceFormat),
    ),
    Setting(
        "FIELD_MAPPING",
        "str",
        "path of the JSON field mapping (required with `SOURCE_FORMAT=debezium`): FullStory "
        'fields and property names to column names, `{"uid": "id", "email": '
        '"email", "properties": {"plan": "pricing_plan"}}`',
    ),
    Setting(
        "ON_DELETE",
        "enum",
        "a user deleted at the source: `ignore` acknowledges and counts it; `delete` deletes "
        "the user in FullStory (`DELETE /v2/users`, an Admin or Architect key, checked at "
        "start), in the uid's order. See [Deletes](#deletes)",
        OnDelete.IGNORE,
        choices=tuple(OnDelete),
    ),
)

PREFIXES: tuple[Prefix, ...] = (
    Prefix(
        "KAFKA_CFG_",
        "KAFKA_CFG_<NAME>",
        "any librdkafka property for the consumer and the DLQ producer: `<NAME>` lowercased, "
        "`_` -> `.`; values of names containing `password`, `secret`, `key`, `token`, "
        "`credential`, `jaas` or `oauthbearer.config` are treated as secrets. Refused: "
        "`ENABLE_AUTO_COMMIT` (or `AUTO_COMMIT_ENABLE`) other than false, "
        "`ISOLATION_LEVEL=read_uncommitted`, a `GROUP_ID` other than `KAFKA_GROUP_ID`'s "
        "(see below)",
    ),
)

SPEC: Mapping[str, Setting] = {s.name: s for s in SETTINGS}


def int_default(name: str) -> int:
    default = SPEC[name].default
    if not isinstance(default, int) or isinstance(default, bool):
        raise TypeError(f"{name} has no integer default")
    return default


def bounds(name: str) -> tuple[int, int]:
    """``(minimum, maximum)`` of an ``int`` setting or of an ``int`` list's items."""
    low, high = SPEC[name].minimum, SPEC[name].maximum
    if low is None or high is None:
        raise TypeError(f"{name} is declared without a range")
    return low, high


def str_default(name: str) -> str:
    default = SPEC[name].default
    if not isinstance(default, str):
        raise TypeError(f"{name} has no string default")
    return default


def shown_default(setting: Setting) -> str:
    """The default as the README's table shows it."""
    if setting.required:
        return "required"
    if setting.default is None:
        return "unset"
    if isinstance(setting.default, bool):
        return f"`{str(setting.default).lower()}`"
    return f"`{setting.default}`"


def doc_table() -> str:
    """The README's settings table (markdown), one row per setting and prefix."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        meaning = s.description
        if s.kind == "int":
            meaning += f"; {s.minimum}..{s.maximum}"
        elif s.kind == "enum":
            meaning += "; one of " + ", ".join(f"`{c}`" for c in s.choices)
        rows.append(f"| `{s.name}` | {shown_default(s)} | {meaning} |")
    rows += [f"| `{p.shown_as}` | | {p.description} |" for p in PREFIXES]
    return "\n".join(rows) + "\n"


# Where the README's table (doc_table) stands, for help texts to point at.
README_SETTINGS = 'README.md, "Settings"'


def run_help() -> str:
    """``run --help``'s closing text: the settings it cannot start without, from this spec,
    and where the others are described."""
    required = [s for s in SETTINGS if s.required]
    width = max(len(s.name) for s in required)
    dlq = SPEC["DLQ_TOPIC"]
    lines = ["required settings (environment variables):"]
    lines += [f"  {s.name:<{width}}  {s.description.replace('`', '')}" for s in required]
    lines += [
        "",
        f"and the dead-letter topic, which must exist: {dlq.name} (default {dlq.default});",
        "  fullstory-user-sync check --create-dlq creates it.",
        "",
        f"every setting, with its default and range: {README_SETTINGS}",
    ]
    return "\n".join(lines)
