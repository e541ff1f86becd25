"""``fullstory-user-sync check``: whether ``run`` would work with these settings, before it
runs for real. Every setting is loaded as ``run`` loads it (a bad one: exit 2, one line), then
each peer is tried within ``TIMEOUT_S``: Kafka, each source topic, the DLQ topic, the group
(``check_kafka``), the schema registry, the FullStory key (and, with ``ON_DELETE=delete``,
that it may delete). Nothing is written anywhere, except the DLQ topic ``--create-dlq``
creates. A checklist, one line per item with what to do when it failed, or ``--json``; exit
0 only when every item passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid

from worker.bounded_http import Proxies, environment_proxies
from worker.config.choices import OnDelete
from worker.config.redact import redact_url
from worker.config.settings import Settings, load_settings
from worker.errors import AuthFailed, NotFound, RegistryUnavailable, WorkerError
from worker.events.registry import SchemaRegistry
from worker.fullstory.client import FullStoryClient
from worker.ops import checklist
from worker.ops.check_kafka import KafkaCheck
from worker.ops.checklist import Item

TIMEOUT_S = 10.0
_SHOWN_SUBJECTS = 5
# A job or a user no one has: looking either up writes nothing and touches no user.
_PROBE = "fullstory-user-sync-check"


def _settings_item(settings: Settings) -> Item:
    kafka = settings.kafka
    detail = (
        f"loaded as `run` loads them: {len(kafka.topics)} source topic(s), group "
        f"{kafka.group_id}, DLQ {settings.dlq_topic}, FullStory at "
        f"{redact_url(settings.fullstory_api_url)}, ON_DELETE={settings.on_delete.value}"
    )
    return Item("settings", True, detail)


def _registry_item(settings: Settings, proxies: Proxies) -> Item:
    url = settings.schema_registry_url
    if not url:
        return Item("schema registry", True, "not used (SCHEMA_REGISTRY_URL unset)")
    fix = (
        "check SCHEMA_REGISTRY_URL (and SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO), and that this "
        "host reaches it (HTTPS_PROXY, NO_PROXY)"
    )
    registry = SchemaRegistry(
        url, auth=settings.schema_registry_auth, timeout_s=TIMEOUT_S, proxies=proxies
    )
    try:
        subjects = registry.subjects()
    except RegistryUnavailable as exc:
        return Item("schema registry", False, f"{redact_url(url)}: {exc}", fix)
    finally:
        registry.close()
    named = ", ".join(sorted(subjects)[:_SHOWN_SUBJECTS])
    more = len(subjects) - _SHOWN_SUBJECTS
    named += f", and {more} more" if more > 0 else ""
    detail = f"{redact_url(url)} answered: {len(subjects)} subjects" + (
        f" ({named})" if subjects else ""
    )
    return Item("schema registry", True, detail)


def _fullstory_items(settings: Settings, proxies: Proxies) -> list[Item]:
    """The key, proven by looking up a job that does not exist (404 with FullStory's JSON
    error: the key was accepted; a 404 page that is not FullStory's proves nothing;
    401/403: refused); with ``ON_DELETE=delete``, the role, by looking up a user that does
    not exist (404: may delete; 403: may not), as ``run`` does at start-up."""
    api = FullStoryClient(
        settings.fullstory_api_url,
        settings.fullstory_api_key,
        timeout_s=min(settings.http_timeout_s, TIMEOUT_S),
        max_connections=2,
        proxies=proxies,
    )
    where = "check FULLSTORY_API_URL and that this host reaches it (HTTPS_PROXY, NO_PROXY)"
    probe = f"{_PROBE}-{uuid.uuid4().hex}"
    try:
        try:
            api.job_status(probe)
        except NotFound as exc:
            if exc.code:
                detail = "accepted (a look-up of a job that does not exist)"
                key = Item("fullstory key", True, detail)
            else:  # a 404 page of some web server: the key was never looked at
                detail = "a look-up answered 404 without FullStory's JSON error: not its API?"
                key = Item("fullstory key", False, detail, where)
        except AuthFailed as exc:
            fix = "set FULLSTORY_API_KEY to a server API key of this org (Settings > API Keys)"
            key = Item("fullstory key", False, f"refused (HTTP {exc.status})", fix)
        except WorkerError as exc:
            key = Item("fullstory key", False, f"not proven: {exc}", where)
        else:
            detail = "a look-up of a job that cannot exist answered 200: is this FullStory?"
            key = Item("fullstory key", False, detail, where)
        if settings.on_delete is not OnDelete.DELETE or not key.ok:
            return [key]
        return [key, _delete_role_item(api, probe, where)]
    finally:
        api.close()


def _delete_role_item(api: FullStoryClient, probe: str, where: str) -> Item:
    name = "fullstory delete role"
    try:
        api.user_presence(probe)
    except AuthFailed as exc:
        fix = "ON_DELETE=delete needs a key with the Admin or Architect role (or ON_DELETE=ignore)"
        return Item(name, False, f"a user look-up answered {exc.status}", fix)
    except WorkerError as exc:
        return Item(name, False, f"not proven: {exc}", where)
    return Item(name, True, "the key may look up and delete users (Admin or Architect)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--create-dlq",
        action="store_true",
        help="create DLQ_TOPIC when it does not exist (the source topics' partitions, 30 "
        "days' retention, the cluster's default replication)",
    )


def main(args: argparse.Namespace) -> int:
    settings = load_settings(os.environ)  # a bad setting: ConfigError, exit 2 (cli.main)
    proxies = environment_proxies()
    items = [
        _settings_item(settings),
        *KafkaCheck(settings, TIMEOUT_S).items(create=args.create_dlq),
        _registry_item(settings, proxies),
        *_fullstory_items(settings, proxies),
    ]
    if args.json:
        print(json.dumps(checklist.as_json(items), indent=2))
    else:
        print("\n".join(checklist.lines(items)))
    return checklist.exit_status(items)
