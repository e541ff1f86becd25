#!/usr/bin/env bash
# Run a real PostgreSQL 15 server (Debian's package) on 127.0.0.1 for the Debezium
# integration tests: logical decoding on, and one password role that may replicate.
#
# Usage: scripts/postgres.sh start|stop|status|wipe|logs
#
# `start` prints the server's DSN as its last stdout line,
# postgresql://debezium:PASSWORD@127.0.0.1:PORT/postgres, and only for a server this
# state dir started: its postmaster.pid names a live postgres on this state dir's
# data directory, and the server answering on the port reports that data directory
# when logged in with this state dir's password. A server of another checkout is
# never adopted: without PGSQL_PORT, start takes the first free port of 54320..54339;
# with it, exactly that one (or exit 3 when it is taken).
#
# The package (postgresql-15) is installed with apt-get when its server binary is
# missing (as root; otherwise the script says what to install). PostgreSQL refuses
# to run as root, so as root initdb and the server run as the `postgres` OS user,
# which owns $PGSQL_STATE_DIR/data.
#
# Exit status: 0 ok; 1 failure; 2 usage; 3 the requested port is taken.
#
# Environment:
#   PGSQL_STATE_DIR      state dir (default <repo>/.postgres): data/, password, log, run/
#   PGSQL_PORT           port; exactly this one (default: the first free of 54320..54339)
#   PGSQL_START_TIMEOUT  seconds to wait for the server to accept logins (default 60)
#   PGSQL_BIN            server binaries (default /usr/lib/postgresql/15/bin)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"

STATE_DIR="${PGSQL_STATE_DIR:-$REPO_ROOT/.postgres}"
DATA_DIR="$STATE_DIR/data"
RUN_DIR="$STATE_DIR/run"
LOG_FILE="$STATE_DIR/server.log"
PASSWORD_FILE="$STATE_DIR/password"
PORT_FILE="$STATE_DIR/port"
BIN="${PGSQL_BIN:-/usr/lib/postgresql/15/bin}"
PACKAGE=postgresql-15

HOST=127.0.0.1
ROLE=debezium
DATABASE=postgres
DEFAULT_PORT=54320
PORTS_TRIED=20
START_TIMEOUT="${PGSQL_START_TIMEOUT:-60}"
STOP_TIMEOUT=30
EXIT_PORT_TAKEN=3
PORT=""

NAME=postgres.sh
# shellcheck source=lib/servers.sh
source "$SCRIPT_DIR/lib/servers.sh"

# As root, every server-side command runs as the postgres OS user (initdb and the
# server refuse root); as anyone else, as that user.
as_owner() {
  if ((EUID == 0)); then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# --- the package ---------------------------------------------------------------

ensure_package() {
  [[ -x "$BIN/postgres" ]] && return 0
  ((EUID == 0)) || die "$BIN/postgres is missing; install Debian's $PACKAGE (apt-get install $PACKAGE)"
  log "installing $PACKAGE with apt-get (first run on this machine only)..."
  # Maintainer scripts must not start the distribution's own cluster service.
  local out
  out="$STATE_DIR/apt.log"
  if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "$PACKAGE" postgresql-client-15; } >"$out" 2>&1; then
    tail -n 30 "$out" >&2
    die "apt-get could not install $PACKAGE (full output: $out)"
  fi
  [[ -x "$BIN/postgres" ]] || die "$PACKAGE installed but $BIN/postgres is still missing"
}

# --- process bookkeeping ---------------------------------------------------------

# The postmaster of this state dir: the first line of postmaster.pid, if it is a
# live postgres started on our data dir (a stale pid file after a crash, or a
# reused pid, never counts).
server_pid() {
  local pid
  pid="$(head -n1 "$DATA_DIR/postmaster.pid" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && runs "$pid" "postgres -D $DATA_DIR " && echo "$pid"
}

password() { cat "$PASSWORD_FILE"; }

dsn() { echo "postgresql://$ROLE:$(password)@$HOST:$PORT/$DATABASE"; }

# The server on $PORT is ours: it takes this state dir's password and reports this
# data directory (another checkout's server on the port has neither).
server_answers() {
  local dir
  dir="$(PGPASSWORD="$(password)" PGCONNECT_TIMEOUT=3 psql -X -q -At -w \
    -h "$HOST" -p "$PORT" -U "$ROLE" -d "$DATABASE" -c 'SHOW data_directory' 2>/dev/null)" \
    || return 1
  [[ "$dir" == "$DATA_DIR" ]]
}

# --- the cluster -------------------------------------------------------------------

init_once() {
  [[ -f "$DATA_DIR/PG_VERSION" ]] && return 0
  rm -rf "$DATA_DIR"
  mkdir -p "$DATA_DIR"
  if ((EUID == 0)); then
    chown postgres:postgres "$DATA_DIR"
    runuser -u postgres -- test -x "$STATE_DIR" \
      || die "the postgres OS user cannot reach $STATE_DIR (a parent directory is closed to it)"
  fi
  chmod 700 "$DATA_DIR"
  # The password only leaves this file for the DSN `start` prints; 0600, root's (or
  # the caller's): initdb reads it once through a pipe, as the postgres user.
  (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$PASSWORD_FILE")
  log "initialising $DATA_DIR (superuser $ROLE)"
  # initdb (as the postgres OS user) cannot open root's 0600 file: it gets a copy it
  # owns, removed as soon as initdb has read it.
  local out pwfile
  pwfile="$(mktemp "$STATE_DIR/.pwfile.XXXXXX")"
  cat "$PASSWORD_FILE" >"$pwfile"
  ((EUID == 0)) && chown postgres:postgres "$pwfile"
  # The bootstrap superuser is the Debezium role itself: superuser implies REPLICATION,
  # and the connector may create its publication and slot.
  if ! out="$(as_owner "$BIN/initdb" -D "$DATA_DIR" -U "$ROLE" --pwfile="$pwfile" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 2>&1)"; then
    rm -f "$pwfile"
    printf '%s\n' "$out" >&2
    rm -rf "$DATA_DIR"
    die "initdb failed"
  fi
  rm -f "$pwfile"
  # Only loopback, password logins, replication connections included.
  cat >"$DATA_DIR/pg_hba.conf" <<EOF
# Generated by scripts/postgres.sh.
local   all          all                    scram-sha-256
host    all          all   127.0.0.1/32     scram-sha-256
host    replication  all   127.0.0.1/32     scram-sha-256
EOF
  ((EUID == 0)) && chown postgres:postgres "$DATA_DIR/pg_hba.conf"
  return 0
}

# Settings are given on the command line on every start (postgresql.conf stays
# initdb's): the port may change between starts, the rest is what Debezium needs.
launch() {
  mkdir -p "$RUN_DIR"
  ((EUID == 0)) && chown postgres:postgres "$RUN_DIR"
  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
  : >"$LOG_FILE"
  ((EUID == 0)) && chown postgres:postgres "$LOG_FILE"
  echo "$PORT" >"$PORT_FILE"
  local opts
  opts="-c listen_addresses=$HOST -c port=$PORT -c unix_socket_directories=$RUN_DIR"
  opts+=" -c wal_level=logical -c max_replication_slots=20 -c max_wal_senders=20"
  # A slot a test forgot must not fill the disk; fsync off: a test server, rebuilt on demand.
  opts+=" -c max_slot_wal_keep_size=1GB -c fsync=off -c synchronous_commit=off"
  opts+=" -c full_page_writes=off -c shared_buffers=64MB -c max_connections=60"
  # pg_ctl -w: waits (bounded by -t) until postmaster.pid says ready, or the server exits.
  # setsid: a Ctrl-C on a test run must not reach the server. 9>&-: the server must not
  # inherit the lock, or it would hold it for its whole life.
  if ! as_owner setsid "$BIN/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -o "$opts" \
    -w -t "$START_TIMEOUT" start >/dev/null 2>>"$LOG_FILE" 9>&-; then
    if grep -q "could not bind\|Address already in use" "$LOG_FILE" 2>/dev/null; then
      BIND_FAILED=1
      return 0
    fi
    fail_start "pg_ctl could not start the server"
  fi
  local deadline=$((SECONDS + START_TIMEOUT))
  until server_answers; do
    ((SECONDS < deadline)) || { stop_server; fail_start "the server did not accept logins within ${START_TIMEOUT}s"; }
    sleep 0.2
  done
  dsn
}

stop_server() {
  [[ -f "$DATA_DIR/postmaster.pid" ]] || return 0
  # fast: roll back open transactions, disconnect walsenders (Debezium's too).
  as_owner "$BIN/pg_ctl" -D "$DATA_DIR" -m fast -w -t "$STOP_TIMEOUT" stop >/dev/null 2>&1 || {
    local pid
    if pid="$(server_pid)"; then
      log "server (pid $pid) did not stop in ${STOP_TIMEOUT}s; sending SIGQUIT"
      kill -QUIT "$pid" 2>/dev/null || true
      local deadline=$((SECONDS + 10))
      while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    fi
  }
}

# --- commands ------------------------------------------------------------------------

BIND_FAILED=""
cmd_start() {
  mkdir -p "$STATE_DIR"
  exec 9>"$STATE_DIR/.lock"
  flock -w 180 9 || die "another postgres.sh holds $STATE_DIR/.lock"

  local pid
  if pid="$(server_pid)"; then
    PORT="$(cat "$PORT_FILE" 2>/dev/null || true)"
    [[ "$PORT" =~ ^[0-9]+$ ]] || die "server (pid $pid) is running but $PORT_FILE names no port"
    if [[ -n "${PGSQL_PORT:-}" && "$PGSQL_PORT" != "$PORT" ]]; then
      die "this state dir's server (pid $pid) runs on port $PORT, not $PGSQL_PORT; stop it first to move it"
    fi
    local deadline=$((SECONDS + START_TIMEOUT))
    until server_answers; do
      ((SECONDS < deadline)) || die "server (pid $pid) is running but does not accept logins on $HOST:$PORT"
      sleep 0.2
    done
    dsn
    return 0
  fi

  ensure_package
  init_once

  local ports=() p i
  if [[ -n "${PGSQL_PORT:-}" ]]; then
    ports=("$PGSQL_PORT")
  else
    for ((i = 0; i < PORTS_TRIED; i++)); do ports+=($((DEFAULT_PORT + i))); done
  fi
  for p in "${ports[@]}"; do
    PORT="$p"
    if port_open "$PORT"; then
      if [[ -n "${PGSQL_PORT:-}" ]]; then
        log "error: port $PORT on $HOST is in use by a process this state dir did not start"
        exit "$EXIT_PORT_TAKEN"
      fi
      continue
    fi
    BIND_FAILED=""
    launch
    [[ -n "$BIND_FAILED" ]] || return 0
    log "another process took port $PORT while the server started; trying the next port"
    [[ -z "${PGSQL_PORT:-}" ]] || exit "$EXIT_PORT_TAKEN"
  done
  log "error: no free port on $HOST among ${ports[*]}"
  exit "$EXIT_PORT_TAKEN"
}

cmd_stop() {
  mkdir -p "$STATE_DIR"
  exec 9>"$STATE_DIR/.lock"
  flock -w 180 9 || die "another postgres.sh holds $STATE_DIR/.lock"
  local pid
  if ! pid="$(server_pid)"; then
    log "not running"
    return 0
  fi
  stop_server
  log "stopped (pid $pid)"
}

cmd_status() {
  local pid
  if ! pid="$(server_pid)"; then
    echo "not running"
    return 1
  fi
  PORT="$(cat "$PORT_FILE" 2>/dev/null || true)"
  if [[ "$PORT" =~ ^[0-9]+$ ]] && server_answers; then
    echo "running: pid $pid, $HOST:$PORT, data $DATA_DIR"
    return 0
  fi
  echo "not answering: pid $pid is running but does not accept logins on $HOST:${PORT:-?}"
  return 1
}

cmd_wipe() {
  cmd_stop
  rm -rf "$DATA_DIR" "$PASSWORD_FILE" "$PORT_FILE"
  log "wiped $DATA_DIR"
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
  logs) tail -n 200 "$LOG_FILE" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
