#!/usr/bin/env bash
# Run a Kafka Connect worker (standalone mode) on 127.0.0.1 with Debezium's PostgreSQL
# connector and Apicurio's Avro converter, against this checkout's Kafka broker, for
# the Debezium integration tests.
#
# The jars come from Maven Central via scripts/connect/pom.xml (no Docker, no
# Confluent Hub here), resolved once into the state dir, as scripts/kafka.sh does.
#
# Usage: scripts/connect.sh start|stop|status|restart|logs [-f]
#
# `start` prints the REST address (http://127.0.0.1:PORT) as its last stdout line, and
# only for a worker this state dir started: its pid file names a live JVM running this
# state dir's worker.properties, and the REST API answers on that file's port with
# the PostgreSQL connector among its plugins. Connectors are created through the REST
# API and live only as long as the worker (standalone mode keeps them in memory); the
# source offsets are kept in $CONNECT_STATE_DIR/offsets.dat.
#
# Exit status: 0 ok; 1 failure; 2 usage; 3 the requested port is taken.
#
# Environment:
#   CONNECT_STATE_DIR          state dir (default <repo>/.connect): libs/, config, offsets, log, pid
#   CONNECT_BOOTSTRAP_SERVERS  the broker (default: what `scripts/kafka.sh start` prints)
#   CONNECT_REST_PORT          REST port; exactly this one (default: the first free of 8083..8102)
#   CONNECT_HEAP_OPTS          JVM heap flags (default "-Xms128m -Xmx512m")
#   CONNECT_START_TIMEOUT      seconds to wait for the REST API (default 120)
#   JAVA_HOME                  honoured if set; otherwise `java` from PATH
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
POM="$SCRIPT_DIR/connect/pom.xml"

STATE_DIR="${CONNECT_STATE_DIR:-$REPO_ROOT/.connect}"
LIBS_DIR="$STATE_DIR/libs"
CONFIG="$STATE_DIR/worker.properties"
LOG4J="$STATE_DIR/log4j2.properties"
LOG_FILE="$STATE_DIR/connect.log"
PID_FILE="$STATE_DIR/connect.pid"
OFFSETS_FILE="$STATE_DIR/offsets.dat"
LIBS_STAMP="$LIBS_DIR/.pom.sha256"
MAIN_CLASS=org.apache.kafka.connect.cli.ConnectStandalone
PLUGIN=io.debezium.connector.postgresql.PostgresConnector

HOST=127.0.0.1
DEFAULT_PORT=8083
PORTS_TRIED=20
PORT=""
START_TIMEOUT="${CONNECT_START_TIMEOUT:-120}"
STOP_TIMEOUT=30
EXIT_PORT_TAKEN=3

if [[ -n "${JAVA_HOME:-}" ]]; then
  JAVA="$JAVA_HOME/bin/java"
else
  JAVA=java
fi

log() { printf 'connect.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- jars -------------------------------------------------------------------

# Resolve only when libs/ is missing or was made from another pom.
ensure_libs() {
  local want have=""
  want="$(sha256sum "$POM" | cut -d' ' -f1)"
  [[ -f "$LIBS_STAMP" ]] && have="$(cat "$LIBS_STAMP")"
  if [[ "$want" == "$have" ]] && compgen -G "$LIBS_DIR/connect-runtime-*.jar" >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found; it is needed once to fetch the Connect jars"
  log "resolving the Kafka Connect, Debezium and Apicurio jars with Maven (first run only)..."
  local tmp="$STATE_DIR/libs.tmp"
  rm -rf "$tmp"
  if ! mvn -B -f "$POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$STATE_DIR/maven.log" 2>&1; then
    tail -n 40 "$STATE_DIR/maven.log" >&2
    die "Maven could not resolve the jars in $POM (full output: $STATE_DIR/maven.log)"
  fi
  echo "$want" >"$tmp/.pom.sha256"
  rm -rf "$LIBS_DIR"
  mv "$tmp" "$LIBS_DIR"
}

# The readiness probe asks the REST API with curl (Debian's, installed when missing).
ensure_curl() {
  command -v curl >/dev/null && return 0
  ((EUID == 0)) || die "curl not found; install it (apt-get install curl)"
  log "installing curl with apt-get..."
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl; } \
    >"$STATE_DIR/apt.log" 2>&1 || die "apt-get could not install curl (see $STATE_DIR/apt.log)"
}

# --- process bookkeeping -----------------------------------------------------

alive() {
  local st
  st="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ "$st" != Z* ]]
}

is_our_worker() {
  local cmdline
  [[ -r "/proc/$1/cmdline" ]] || return 1
  cmdline="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *"$MAIN_CLASS $CONFIG"* ]] && alive "$1"
}

# The worker this state dir started: the pid file, or a search by command line in
# case the pid file was lost (so stop never misses a running worker).
worker_pid() {
  local pid=""
  [[ -f "$PID_FILE" ]] && pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  if [[ "$pid" =~ ^[0-9]+$ ]] && is_our_worker "$pid"; then
    echo "$pid"
    return 0
  fi
  for pid in $(pgrep -f "$MAIN_CLASS" || true); do
    if is_our_worker "$pid"; then
      echo "$pid" >"$PID_FILE"
      echo "$pid"
      return 0
    fi
  done
  return 1
}

port_open() {
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

rest_url() { echo "http://$HOST:$PORT"; }

# The REST API on $PORT answers and offers the PostgreSQL connector (a worker that
# answers before its plugins are scanned would refuse a connector).
worker_answers() {
  curl -sf --max-time 3 "$(rest_url)/connector-plugins" 2>/dev/null | grep -q "\"$PLUGIN\""
}

read_running_port() {
  PORT="$(sed -n 's/^listeners=http:\/\/[^:]*:\([0-9]*\)$/\1/p' "$CONFIG" 2>/dev/null | head -n1)"
  [[ -n "$PORT" ]]
}

running_bootstrap() { sed -n 's/^bootstrap\.servers=//p' "$CONFIG" 2>/dev/null | head -n1; }

# --- config ------------------------------------------------------------------

write_config() {
  local bootstrap="$1"
  cat >"$CONFIG" <<EOF
# Generated by scripts/connect.sh on every start; edit the script, not this file.
bootstrap.servers=$bootstrap
listeners=http://$HOST:$PORT
rest.advertised.host.name=$HOST
rest.advertised.port=$PORT
offset.storage.file.filename=$OFFSETS_FILE
offset.flush.interval.ms=1000
# Each connector names its own converters (the tests' Avro one); these are the fallback.
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
# Every plugin is on the classpath and declares itself in META-INF/services: no scan.
plugin.discovery=service_load
# The broker creates no topic on its own (auto.create.topics.enable=false): connectors
# create theirs through topic.creation.default.* in their config.
topic.creation.enable=true
EOF

  cat >"$LOG4J" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
EOF
}

# --- commands ------------------------------------------------------------------

wanted_bootstrap() {
  if [[ -n "${CONNECT_BOOTSTRAP_SERVERS:-}" ]]; then
    echo "$CONNECT_BOOTSTRAP_SERVERS"
    return 0
  fi
  local out
  out="$(bash "$SCRIPT_DIR/kafka.sh" start)" || die "scripts/kafka.sh start failed"
  tail -n1 <<<"$out"
}

cmd_start() {
  mkdir -p "$STATE_DIR"
  exec 9>"$STATE_DIR/.lock"
  flock -w 300 9 || die "another connect.sh holds $STATE_DIR/.lock"

  local bootstrap pid
  bootstrap="$(wanted_bootstrap)"
  if pid="$(worker_pid)"; then
    read_running_port || die "worker (pid $pid) is running but $CONFIG names no listener"
    [[ -z "${CONNECT_REST_PORT:-}" || "$CONNECT_REST_PORT" == "$PORT" ]] \
      || die "this state dir's worker (pid $pid) listens on $PORT, not $CONNECT_REST_PORT; stop it first"
    [[ "$(running_bootstrap)" == "$bootstrap" ]] \
      || die "this state dir's worker (pid $pid) uses the broker $(running_bootstrap), not $bootstrap; stop it first"
    wait_ready "$pid"
    return 0
  fi
  rm -f "$PID_FILE"

  command -v "$JAVA" >/dev/null || die "java not found (set JAVA_HOME or put Java 17 on PATH)"
  ensure_curl
  ensure_libs

  local ports=() p i
  if [[ -n "${CONNECT_REST_PORT:-}" ]]; then
    ports=("$CONNECT_REST_PORT")
  else
    for ((i = 0; i < PORTS_TRIED; i++)); do ports+=($((DEFAULT_PORT + i))); done
  fi
  for p in "${ports[@]}"; do
    PORT="$p"
    if port_open "$PORT"; then
      [[ -z "${CONNECT_REST_PORT:-}" ]] || {
        log "error: port $PORT on $HOST is in use by a process this state dir did not start"
        exit "$EXIT_PORT_TAKEN"
      }
      continue
    fi
    launch "$bootstrap"
    [[ -n "$BIND_FAILED" ]] || return 0
    [[ -z "${CONNECT_REST_PORT:-}" ]] || exit "$EXIT_PORT_TAKEN"
    log "another process took port $PORT while the worker started; trying the next port"
  done
  log "error: no free port on $HOST among ${ports[*]}"
  exit "$EXIT_PORT_TAKEN"
}

launch() {
  write_config "$1"
  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
  local heap_arr=()
  read -r -a heap_arr <<<"${CONNECT_HEAP_OPTS:--Xms128m -Xmx512m}"
  local launcher=()
  command -v setsid >/dev/null && launcher=(setsid)
  # As kafka.sh: the inner shell writes its PID and execs java; 9>&- so the worker
  # never holds the lock.
  # shellcheck disable=SC2016 # $$ and $1 are for the inner shell
  "${launcher[@]}" nohup bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PID_FILE" \
    "$JAVA" "${heap_arr[@]}" -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J" \
    -cp "$LIBS_DIR/*" "$MAIN_CLASS" "$CONFIG" \
    >>"$LOG_FILE" 2>&1 </dev/null 9>&- &

  local pid=""
  for ((i = 0; i < 50; i++)); do
    pid="$(worker_pid)" && break
    sleep 0.1
  done
  [[ -n "${pid:-}" ]] || fail_start "worker process did not start"
  log "worker pid $pid, waiting up to ${START_TIMEOUT}s for its REST API on $(rest_url)"
  wait_ready "$pid"
}

BIND_FAILED=""
wait_ready() {
  local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
  BIND_FAILED=""
  while ((SECONDS < deadline)); do
    if ! alive "$pid"; then
      rm -f "$PID_FILE"
      if grep -q "Address already in use" "$LOG_FILE" 2>/dev/null; then
        BIND_FAILED=1
        return 0
      fi
      fail_start "worker process $pid exited during startup"
    fi
    if worker_answers; then
      rest_url
      return 0
    fi
    sleep 0.5
  done
  log "error: the worker's REST API did not answer on $(rest_url) within ${START_TIMEOUT}s; stopping it"
  stop_pid "$pid"
  fail_start "worker did not come up"
}

fail_start() {
  log "error: $1"
  if [[ -f "$LOG_FILE" ]]; then
    log "last 40 lines of $LOG_FILE:"
    tail -n 40 "$LOG_FILE" >&2
  fi
  exit 1
}

stop_pid() {
  local pid="$1"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if alive "$pid"; then
    log "worker (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
  fi
  rm -f "$PID_FILE"
  log "stopped (pid $pid)"
}

cmd_stop() {
  mkdir -p "$STATE_DIR"
  exec 9>"$STATE_DIR/.lock"
  flock -w 300 9 || die "another connect.sh holds $STATE_DIR/.lock"
  local pid
  if ! pid="$(worker_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  stop_pid "$pid"
}

cmd_status() {
  local pid
  if ! pid="$(worker_pid)"; then
    echo "not running"
    return 1
  fi
  if read_running_port && worker_answers; then
    echo "running: pid $pid, $(rest_url), broker $(running_bootstrap)"
    return 0
  fi
  echo "not answering: pid $pid is running but its REST API does not answer on port ${PORT:-?}"
  return 1
}

cmd_logs() {
  [[ -f "$LOG_FILE" ]] || die "no log yet at $LOG_FILE"
  if [[ "${1:-}" == "-f" ]]; then
    exec tail -n 200 -F "$LOG_FILE"
  fi
  tail -n 200 "$LOG_FILE"
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  restart) cmd_stop && cmd_start ;;
  logs) shift; cmd_logs "$@" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
