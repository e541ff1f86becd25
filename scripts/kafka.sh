#!/usr/bin/env bash
# Run a real single-node Apache Kafka broker (KRaft, combined broker+controller)
# on 127.0.0.1 for local development and the integration tests.
#
# The jars come from Maven Central via scripts/kafka/pom.xml (there is no Docker
# and no apache.org tarball on our machines), resolved once into the state dir.
#
# Usage: scripts/kafka.sh start|stop|status|restart|wipe|logs [-f]
#        scripts/kafka.sh topics ARGS...   Kafka's own kafka-topics tool against this
#                                          broker (--bootstrap-server is added), e.g.
#                                          topics --create --topic users --partitions 3
#
# `start` prints the broker's bootstrap address as its last stdout line, and only
# for a broker this state dir started: its pid file names a live JVM running this
# state dir's server.properties, and the broker answering on the address reports
# this state dir's cluster id. A broker of another checkout (another state dir)
# on the same port is never adopted: without KAFKA_PORT, start moves on to the
# next free port pair (9094/9095, 9096/9097, ...); with KAFKA_PORT, it refuses.
# The port a running broker uses is the one in $KAFKA_STATE_DIR/server.properties.
#
# Exit status: 0 ok; 1 failure; 2 usage; 3 the requested port is taken (KAFKA_PORT
# given and in use, or the broker could not bind it), so a caller may retry with
# other ports.
#
# Environment:
#   KAFKA_STATE_DIR        state dir (default <repo>/.kafka): libs/, data/, config, log, pid
#   KAFKA_LIBS_DIR         the jars (default $KAFKA_STATE_DIR/libs); a second broker may share them
#   KAFKA_PORT             PLAINTEXT client listener port; exactly this one (default: 9092,
#                          or the first free one of 9094, 9096, ... if 9092 is taken)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener port (default: client port + 1)
#   KAFKA_HEAP_OPTS        JVM heap flags (default "-Xms256m -Xmx768m")
#   KAFKA_OPTS             extra JVM flags, word-split
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to answer clients (default 90)
#   KAFKA_PROBE_PYTHON     python with confluent_kafka to use for the readiness probe
#   JAVA_HOME              honoured if set; otherwise `java` from PATH
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"

STATE_DIR="${KAFKA_STATE_DIR:-$REPO_ROOT/.kafka}"
LIBS_DIR="${KAFKA_LIBS_DIR:-$STATE_DIR/libs}"
DATA_DIR="$STATE_DIR/data"
CONFIG="$STATE_DIR/server.properties"
LOG4J_BROKER="$STATE_DIR/log4j2.properties"
LOG4J_TOOLS="$STATE_DIR/log4j2-tools.properties"
LOG_FILE="$STATE_DIR/broker.log"
PID_FILE="$STATE_DIR/broker.pid"
CLUSTER_ID_FILE="$STATE_DIR/cluster.id"
LIBS_STAMP="$LIBS_DIR/.pom.sha256"

HOST=127.0.0.1
DEFAULT_PORT=9092
# Port pairs tried without KAFKA_PORT: 9092/9093, 9094/9095, ... (bounded).
PORT_PAIRS_TRIED=10
# Set by choose_ports / read from server.properties: the ports of this broker.
PORT=""
CONTROLLER_PORT=""
BOOTSTRAP=""
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT=30
EXIT_PORT_TAKEN=3

NAME=kafka.sh
# shellcheck source=lib/servers.sh
source "$SCRIPT_DIR/lib/servers.sh"
die_port_taken() { log "error: $*"; exit "$EXIT_PORT_TAKEN"; }

kafka_version() {
  sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1
}

# --- process bookkeeping -----------------------------------------------------

# The broker this state dir started (its pid file, or found by its command line).
broker_pid() { own_pid "kafka.Kafka $CONFIG" 'kafka\.Kafka'; }

# --- readiness probe ---------------------------------------------------------

PROBE_PY=""
find_probe_python() {
  local py
  for py in "${KAFKA_PROBE_PYTHON:-}" "$REPO_ROOT/.venv/bin/python" python3; do
    [[ -n "$py" ]] || continue
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import confluent_kafka' 2>/dev/null; then
      PROBE_PY="$py"
      return 0
    fi
  done
  return 1
}

# The cluster id of whatever answers on $BOOTSTRAP, printed; fails while nothing
# answers or the broker is not yet in the metadata (KRaft leaves a broker out of
# metadata until it is unfenced). A real client round-trip, not a port check.
answering_cluster_id() {
  if [[ -n "$PROBE_PY" ]] || find_probe_python; then
    "$PROBE_PY" - "$BOOTSTRAP" 2>/dev/null <<'PY'
import sys
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0})
md = admin.list_topics(timeout=5)
if not md.brokers or not md.cluster_id:
    sys.exit(1)
print(md.cluster_id)
PY
  else
    # No confluent_kafka: use Kafka's own CLI (slower: two JVMs per probe).
    local out
    out="$(timeout 30 "$JAVA" -Xmx128m -Dlog4j2.configurationFile="$LOG4J_TOOLS" \
      -cp "$LIBS_DIR/*" org.apache.kafka.tools.BrokerApiVersionsCommand \
      --bootstrap-server "$BOOTSTRAP" 2>/dev/null)" || return 1
    [[ "$out" == *"$BOOTSTRAP (id: 1"* && "$out" != *"isFenced: true"* ]] || return 1
    out="$(timeout 30 "$JAVA" -Xmx128m -Dlog4j2.configurationFile="$LOG4J_TOOLS" \
      -cp "$LIBS_DIR/*" org.apache.kafka.tools.ClusterTool cluster-id \
      --bootstrap-server "$BOOTSTRAP" 2>/dev/null)" || return 1
    out="$(sed -n 's/^Cluster ID: *//p' <<<"$out")"
    [[ -n "$out" ]] || return 1
    echo "$out"
  fi
}

# The cluster id this state dir's data was formatted with (what our broker reports).
own_cluster_id() {
  sed -n 's/^cluster\.id=//p' "$DATA_DIR/meta.properties" 2>/dev/null | head -n1
}

# Our broker answers on $BOOTSTRAP: something answers there with this state dir's
# cluster id. Another checkout's broker has another id (each state dir formats its
# own), so it never passes for ours, whatever port it holds. Sets ANSWERED_ID.
ANSWERED_ID=""
broker_answers() {
  local want
  ANSWERED_ID="$(answering_cluster_id)" || { ANSWERED_ID=""; return 1; }
  want="$(own_cluster_id)"
  [[ -n "$want" && "$ANSWERED_ID" == "$want" ]]
}

# The ports a running broker of ours was started with: server.properties is
# written just before each launch and only when none of ours is running.
read_running_ports() {
  local listeners
  listeners="$(sed -n 's/^listeners=//p' "$CONFIG" 2>/dev/null | head -n1)"
  PORT="$(sed -n 's/.*PLAINTEXT:\/\/[^,]*:\([0-9]*\).*/\1/p' <<<"$listeners")"
  CONTROLLER_PORT="$(sed -n 's/.*CONTROLLER:\/\/[^,]*:\([0-9]*\).*/\1/p' <<<"$listeners")"
  [[ -n "$PORT" && -n "$CONTROLLER_PORT" ]] || return 1
  BOOTSTRAP="$HOST:$PORT"
}

use_ports() {
  PORT="$1"
  CONTROLLER_PORT="$2"
  BOOTSTRAP="$HOST:$PORT"
}

# --- config ------------------------------------------------------------------

write_config() {
  cat >"$CONFIG" <<EOF
# Generated by scripts/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
# Static single-voter quorum: no --standalone/dynamic-quorum dance at format time.
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR

# Single node: every internal topic with replication factor 1.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Fast tests on 2 cores: few partitions for internal topics, no rebalance delay,
# topics only created explicitly (tests must not depend on auto-creation).
offsets.topic.num.partitions=4
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
# Kafka 4's consumer group protocol (KIP-848): its session timeout and heartbeat interval are
# the broker's (45 s / 5 s by default, and no group may go below 45 s / 5 s). Tests set a
# shorter one per group (the GROUP config consumer.session.timeout.ms), as the classic
# protocol's tests set session.timeout.ms on the client: allow it.
group.consumer.min.session.timeout.ms=6000
group.consumer.min.heartbeat.interval.ms=1000
auto.create.topics.enable=false
num.partitions=1
num.network.threads=2
num.io.threads=4
EOF

  # Console only: stdout is redirected into broker.log, so JVM errors land there too.
  cat >"$LOG4J_BROKER" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF

  cat >"$LOG4J_TOOLS" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
}

# Format on first start only: data/ (and its cluster id) survive stop/start.
format_storage_once() {
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  local cluster_id
  cluster_id="$("$JAVA" -Dlog4j2.configurationFile="$LOG4J_TOOLS" -cp "$LIBS_DIR/*" \
    kafka.tools.StorageTool random-uuid)"
  echo "$cluster_id" >"$CLUSTER_ID_FILE"
  log "formatting $DATA_DIR with cluster id $cluster_id"
  local out
  out="$("$JAVA" -Dlog4j2.configurationFile="$LOG4J_TOOLS" -cp "$LIBS_DIR/*" \
    kafka.tools.StorageTool format -t "$cluster_id" -c "$CONFIG" 2>&1)" \
    || { printf '%s\n' "$out" >&2; die "storage format failed"; }
}

# --- commands ------------------------------------------------------------------

cmd_start() {
  mkdir -p "$STATE_DIR"
  # Serialise concurrent starts/stops (e.g. parallel test sessions).
  exec 9>"$STATE_DIR/.lock"
  flock -w 180 9 || die "another kafka.sh holds $STATE_DIR/.lock"

  local pid
  if pid="$(broker_pid)"; then
    read_running_ports || die "broker (pid $pid) is running but $CONFIG names no listeners"
    if [[ -n "${KAFKA_PORT:-}" && "$KAFKA_PORT" != "$PORT" ]]; then
      die "this state dir's broker (pid $pid) runs on $BOOTSTRAP, not on port $KAFKA_PORT; stop it first to move it"
    fi
    if broker_answers; then
      echo "$BOOTSTRAP"
      return 0
    fi
    # Ours but not answering (still starting, or wedged): give it the same grace
    # as a fresh start instead of spawning a second one.
    log "broker (pid $pid) is running but not answering on $BOOTSTRAP yet; waiting"
    wait_ready "$pid"
    [[ -z "$BIND_FAILED" ]] || fail_start "broker (pid $pid) could not bind its ports"
    return 0
  fi
  rm -f "$PID_FILE"

  command -v "$JAVA" >/dev/null || die "java not found (set JAVA_HOME or put Java 17 on PATH)"
  ensure_libs 'kafka_2.13-*.jar' "Kafka $(kafka_version)"

  # KAFKA_PORT given: exactly that port (a caller that must know the address up
  # front, e.g. a test's private broker, retries on exit 3). Otherwise 9092, or the
  # next free pair, so a broker of another checkout on 9092 is stepped around.
  local pairs=() pair taken i p
  if [[ -n "${KAFKA_PORT:-}" ]]; then
    pairs=("$KAFKA_PORT:${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}")
  else
    for ((i = 0; i < PORT_PAIRS_TRIED; i++)); do
      p=$((DEFAULT_PORT + 2 * i))
      pairs+=("$p:${KAFKA_CONTROLLER_PORT:-$((p + 1))}")
    done
  fi
  for pair in "${pairs[@]}"; do
    use_ports "${pair%%:*}" "${pair##*:}"
    if taken="$(taken_port)"; then
      [[ -z "${KAFKA_PORT:-}" ]] \
        || die_port_taken "port $taken on $HOST is in use by a process this state dir did not start" \
          "(unset KAFKA_PORT to take the next free port)"
      log "port $taken on $HOST is in use by a process this state dir did not start; trying the next ports"
      continue
    fi
    launch
    [[ -n "$BIND_FAILED" ]] || return 0
    [[ -z "${KAFKA_PORT:-}" ]] \
      || die_port_taken "another process took port $PORT or $CONTROLLER_PORT on $HOST while the broker started"
    log "another process took port $PORT or $CONTROLLER_PORT while the broker started; trying the next ports"
  done
  die_port_taken "no free port pair on $HOST among ${pairs[*]}"
}

# The first of $PORT / $CONTROLLER_PORT something already listens on, printed.
taken_port() {
  local p
  for p in "$PORT" "$CONTROLLER_PORT"; do
    if port_open "$p"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# Start a broker on $PORT / $CONTROLLER_PORT and wait for it to answer; prints
# the address once it does. BIND_FAILED is set (and no broker left running) when
# another process holds one of the ports; any other failure exits.
launch() {
  write_config
  format_storage_once

  # Keep one previous log so a failed start can still be compared with the last good one.
  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"

  local heap_opts heap_arr=() extra_opts=()
  heap_opts="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
  read -r -a heap_arr <<<"$heap_opts"
  read -r -a extra_opts <<<"${KAFKA_OPTS:-}"

  # 9>&-: the broker must not inherit the lock fd, or it would hold the lock forever.
  # The inner shell writes its own PID and then execs java, so the pid file holds
  # the JVM's PID whether or not setsid forks. setsid keeps the broker out of the
  # caller's process group (a Ctrl-C on a test run should not kill it).
  local launcher=()
  command -v setsid >/dev/null && launcher=(setsid)
  # shellcheck disable=SC2016 # $$ and $1 are for the inner shell
  "${launcher[@]}" nohup bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PID_FILE" \
    "$JAVA" "${heap_arr[@]}" \
    -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J_BROKER" \
    ${extra_opts[@]+"${extra_opts[@]}"} \
    -cp "$LIBS_DIR/*" kafka.Kafka "$CONFIG" \
    >>"$LOG_FILE" 2>&1 </dev/null 9>&- &

  local i pid=""
  for ((i = 0; i < 50; i++)); do
    pid="$(broker_pid)" && break
    sleep 0.1
  done
  [[ -n "${pid:-}" ]] || fail_start "broker process did not start"
  log "broker pid $pid, waiting up to ${START_TIMEOUT}s for it to answer on $BOOTSTRAP"
  wait_ready "$pid"
}

# Wait until our broker answers (prints the address), or it exits: on a bind
# failure BIND_FAILED is set, anything else fails the start.
BIND_FAILED=""
wait_ready() {
  local pid="$1" deadline=$((SECONDS + START_TIMEOUT)) noted=""
  BIND_FAILED=""
  while ((SECONDS < deadline)); do
    if ! alive "$pid"; then
      rm -f "$PID_FILE"
      if grep -q "Address already in use" "$LOG_FILE" 2>/dev/null; then
        log "broker process $pid exited: port $PORT or $CONTROLLER_PORT on $HOST is already in use"
        BIND_FAILED=1
        return 0
      fi
      fail_start "broker process $pid exited during startup"
    fi
    if broker_answers; then
      echo "$BOOTSTRAP"
      return 0
    fi
    if [[ -n "$ANSWERED_ID" && -z "$noted" ]]; then
      log "$BOOTSTRAP answers with cluster id $ANSWERED_ID, not this state dir's" \
        "$(own_cluster_id): another broker holds the port; not using it"
      noted=1
    fi
    sleep 0.5
  done
  # Don't leave a half-started JVM behind a failed start; the next start retries cleanly.
  log "error: broker did not answer clients on $BOOTSTRAP within ${START_TIMEOUT}s; stopping it"
  stop_pid "$pid" broker
  fail_start "broker did not come up"
}

cmd_stop() {
  mkdir -p "$STATE_DIR"
  exec 9>"$STATE_DIR/.lock"
  flock -w 180 9 || die "another kafka.sh holds $STATE_DIR/.lock"

  local pid
  if ! pid="$(broker_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  stop_pid "$pid" broker
}

cmd_status() {
  local pid
  if ! pid="$(broker_pid)"; then
    echo "not running"
    return 1
  fi
  if ! read_running_ports; then
    echo "not answering: pid $pid is running but $CONFIG names no listeners"
    return 1
  fi
  if broker_answers; then
    echo "running: pid $pid, $BOOTSTRAP, cluster id $ANSWERED_ID, Kafka $(kafka_version)"
    return 0
  fi
  if [[ -n "$ANSWERED_ID" ]]; then
    echo "not ours: pid $pid is running, but $BOOTSTRAP answers with cluster id" \
      "$ANSWERED_ID, not this state dir's $(own_cluster_id)"
  else
    echo "not answering: pid $pid is running but $BOOTSTRAP does not answer"
  fi
  return 1
}

cmd_wipe() {
  cmd_stop
  # Keep libs/ so the next start needs no Maven; a new cluster id comes with new data.
  rm -rf "$DATA_DIR" "$CLUSTER_ID_FILE"
  log "wiped $DATA_DIR"
}

cmd_logs() {
  [[ -f "$LOG_FILE" ]] || die "no log yet at $LOG_FILE"
  if [[ "${1:-}" == "-f" ]]; then
    exec tail -n 200 -F "$LOG_FILE"
  fi
  tail -n 200 "$LOG_FILE"
}

# The standard kafka-topics tool (org.apache.kafka.tools.TopicCommand) from the broker's own
# jars: the local broker has no bin/ directory, and creating a topic is the first step
# towards running the worker on one's own topic.
cmd_topics() {
  broker_pid >/dev/null || die "the broker is not running: scripts/kafka.sh start"
  read_running_ports || die "the broker's $CONFIG names no listeners"
  local target=(--bootstrap-server "$BOOTSTRAP")
  [[ " $* " == *" --bootstrap-server "* ]] && target=()  # given: a command copied as it is
  exec "$JAVA" -Xmx256m -Dlog4j2.configurationFile="$LOG4J_TOOLS" -cp "$LIBS_DIR/*" \
    org.apache.kafka.tools.TopicCommand "${target[@]}" "$@"
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  restart) cmd_stop && cmd_start ;;
  wipe) cmd_wipe ;;
  logs) shift; cmd_logs "$@" ;;
  topics) shift; cmd_topics "$@" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
