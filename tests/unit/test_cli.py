import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
from functools import partial
from pathlib import Path

import fastavro
import pytest
import structlog

from worker.cli import _health_server, _report_local_reader, _report_reader, main
from worker.config.settings import load_settings
from worker.config.spec import SETTINGS, SPEC, doc_table
from worker.errors import ConfigError, InvalidRecord
from worker.events.decode import Decoder, load_reader_schema, without_logical_types
from worker.runtime.health import Health
from worker.runtime.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
BASE = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    "KAFKA_TOPICS": "t",
    "FULLSTORY_API_KEY": "top-secret-key",
}


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "FULLSTORY_"))}
    return subprocess.run(
        [sys.executable, "-m", "worker", "run"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("missing", "extra"),
    [
        ("KAFKA_TOPICS", {}),
        ("FULLSTORY_API_KEY", {}),
        ("BATCH_MAX_USERS", {"BATCH_MAX_USERS": "0"}),
        ("KAFKA_CFG_SECURITY_PROTOCOL", {"KAFKA_CFG_SECURITY_PROTOCOL": "SASL_SSLX"}),
        ("KAFKA_CFG_FOO_BAR", {"KAFKA_CFG_FOO_BAR": "1"}),
        ("HTTP_HOST", {"HTTP_HOST": "192.0.2.1", "HTTP_PORT": "8080"}),
    ],
    ids=[
        "no-topics",
        "no-api-key",
        "bad-batch-size",
        "bad-librdkafka-value",
        "unknown-librdkafka-property",
        "http-host-not-ours",
    ],
)
def test_bad_configuration_exits_2_with_one_line_naming_the_variable(missing, extra):
    """Operators see exactly which variable is wrong, before anything connects."""
    env = {k: v for k, v in BASE.items() if k != missing} | {"HTTP_PORT": "0"} | extra
    done = _run(env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and missing in lines[0]
    assert "top-secret-key" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    "url", ["http://[::1", "https://user:hunter2@h:abc"], ids=["bad-ipv6", "bad-port"]
)
def test_a_malformed_url_exits_2_with_one_line_and_no_traceback(url):
    """It used to pass the check, crash in httpx with a traceback and exit 1."""
    done = _run(BASE | {"FULLSTORY_API_URL": url, "HTTP_PORT": "0"})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "FULLSTORY_API_URL" in lines[0]
    assert "hunter2" not in done.stderr + done.stdout


def test_a_taken_health_port_is_a_configuration_error_naming_http_port():
    """Binding a port another process holds is reported as HTTP_PORT, not a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings(BASE | {"HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port)})
        with pytest.raises(ConfigError) as info:
            _health_server(settings, Health(60), Metrics())
    assert info.value.variable == "HTTP_PORT"
    assert "Address already in use" in str(info.value)  # the integration fixture retries on it


@pytest.mark.parametrize(
    ("command", "env", "named"),
    [
        (["status"], {"KAFKA_TOPICS": ""}, "KAFKA_TOPICS"),
        (["status", "--watch", "--count", "0"], {}, "--count"),
        (["dlq", "inspect"], {"KAFKA_BOOTSTRAP_SERVERS": ""}, "KAFKA_BOOTSTRAP_SERVERS"),
        (["dlq", "inspect"], {"DLQ_TOPIC": "t"}, "DLQ_TOPIC"),
        (["dlq", "inspect", "--limit", "-1"], {}, "--limit"),
        *(
            (command, {"KAFKA_CFG_FETCH_MAX_BYTES": "abc"}, "KAFKA_CFG_FETCH_MAX_BYTES")
            for command in (["replay", "--to-earliest"], ["status"], ["dlq", "inspect"])
        ),
    ],
    ids=[
        "status-no-topics",
        "status-count-0",
        "dlq-no-bootstrap",
        "dlq-is-a-source",
        "limit",
        "replay-kafka-cfg-refused",
        "status-kafka-cfg-refused",
        "dlq-kafka-cfg-refused",
    ],
)
def test_operator_commands_refuse_bad_settings_with_exit_2(command, env, named):
    """``status``, ``dlq inspect`` and ``replay`` check their settings like ``run``: one line,
    exit 2, before connecting; none needs the FullStory key. (``replay`` printed librdkafka's
    traceback for a ``KAFKA_CFG_*`` value it refuses.)"""
    base = {k: v for k, v in BASE.items() if k != "FULLSTORY_API_KEY"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "FULLSTORY_"))}
    done = subprocess.run(
        [sys.executable, "-m", "worker", *command],
        cwd=ROOT,
        env={**clean, **base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], done.stderr


def _wire(schema: object, schema_id: int) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, {"uid": "u1", "changed_at": 5, "properties": {}})
    return b"\x00" + struct.pack(">I", schema_id) + out.getvalue()


@pytest.mark.parametrize(
    ("environ", "local", "registry_3", "counts"),
    [
        (
            {},
            ("compiled", "the compiled reader's schema"),
            ("compiled", "writer schema is the reader schema"),
            (2, 1),
        ),
        (
            {"FSUS_NO_EXTENSIONS": "1"},
            ("fastavro", "disabled by FSUS_NO_EXTENSIONS"),
            ("fastavro", "disabled by FSUS_NO_EXTENSIONS"),
            (0, 3),
        ),
    ],
    ids=["compiled", "no-extensions"],
)
def test_the_log_and_metrics_say_which_reader_reads_each_schema(environ, local, registry_3, counts):
    """An operator sees in the start-up log which reader reads the local schema and why (and
    the avro_reader_not_compiled warning when it is fastavro), then each registry schema id's
    once, when its first record arrives (a writer schema that is not the reader schema is
    resolved by fastavro); fsus_avro_schemas counts them by reader."""
    reader_schema = load_reader_schema()
    extended = json.loads(json.dumps(reader_schema))
    extended["fields"].append({"name": "tier", "type": "string", "default": "free"})
    by_id = {
        3: fastavro.parse_schema(without_logical_types(reader_schema)),
        4: fastavro.parse_schema(without_logical_types(extended)),
    }
    metrics = Metrics()
    with structlog.testing.capture_logs() as logs:
        decoder = Decoder(
            reader_schema,
            by_id.__getitem__,
            environ=environ,
            on_reader=partial(_report_reader, metrics),
        )
        _report_local_reader(decoder, metrics)
        for schema_id in (3, 4, 3, 4):
            decoder.decode(_wire(by_id[schema_id], schema_id))
    told = [
        (e.get("schema"), e.get("schema_id"), e["reader"], e["why"])
        for e in logs
        if e["event"] == "avro_reader"
    ]
    assert told == [
        ("local", None, *local),
        ("registry", 3, *registry_3),
        ("registry", 4, "fastavro", "writer schema differs from the reader schema"),
    ]
    warned = [(e["reader"], e["why"]) for e in logs if e["event"] == "avro_reader_not_compiled"]
    assert warned == ([] if local[0] == "compiled" else [local])
    exposition = metrics.exposition().decode()
    assert f'fsus_avro_schemas{{reader="compiled"}} {counts[0]}.0' in exposition
    assert f'fsus_avro_schemas{{reader="fastavro"}} {counts[1]}.0' in exposition


@pytest.mark.parametrize(("flag", "imported"), [("", False), ("true", True)], ids=["unset", "true"])
def test_the_uid_opt_in_reaches_the_decoder(flag, imported):
    """`UID_ALLOW_FORMAT_CHARACTERS` decides whether `u\u200b1` (shown as `u1`) is a user the
    worker imports: refused (`invalid_uid`) by default, imported once the operator opts in."""
    from tests.fakes.avro import encode, event
    from worker.cli import _decoder

    settings = load_settings({**BASE, "UID_ALLOW_FORMAT_CHARACTERS": flag})
    decoder = _decoder(settings, None, Health(60), Metrics())
    value = encode(event("u\u200b1"))
    if imported:
        assert decoder.decode(value)["uid"] == "u\u200b1"  # type: ignore[union-attr]
    else:
        with pytest.raises(InvalidRecord) as refused:
            decoder.decode(value)  # type: ignore[union-attr]
        assert refused.value.code == "invalid_uid"


def _help(capsys, *command: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_run_help_lists_the_required_settings_and_points_to_the_settings_table(capsys):
    """`run --help` is where a new user looks first: it names each setting `run` cannot start
    without (from the spec, so a new required setting shows up), the dead-letter topic that
    must exist and how to create it, and the README section holding every other setting."""
    text = _help(capsys, "run")
    for setting in SETTINGS:
        if setting.required:
            assert re.search(rf"^  {setting.name} +{re.escape(setting.description)}$", text, re.M)
    assert f"DLQ_TOPIC (default {SPEC['DLQ_TOPIC'].default})" in text
    assert "fullstory-user-sync check --create-dlq" in text
    readme = (ROOT / "README.md").read_text()
    section = re.search(r'README\.md, "([^"]+)"', text)
    assert section, text
    heading = readme.index(f"\n### {section.group(1)}\n")
    assert readme.index(doc_table()) > heading
    assert "\n#" not in readme[heading + 1 : readme.index(doc_table())]  # the table is its own


@pytest.mark.parametrize("command", [(), ("run",), ("check",), ("status",), ("replay",), ("dlq",)])
def test_help_shows_no_restructured_text_markup(capsys, command):
    """The help is read in a terminal: ``run`` is printed as run, not with the docstring's
    reStructuredText backticks."""
    assert "`" not in _help(capsys, *command)
