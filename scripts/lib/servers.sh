# shellcheck shell=bash
# What scripts/kafka.sh, connect.sh and postgres.sh share: their log lines, the process
# bookkeeping that tells their own server from another checkout's, the jars they resolve
# with Maven, a failed start's report and a stop that ends with SIGKILL if it must.
#
# Sourced after the script sets NAME (its name in log lines), HOST and, as each function
# below says, STATE_DIR, LOG_FILE, PID_FILE, POM, LIBS_DIR, LIBS_STAMP and STOP_TIMEOUT.

# JAVA_HOME's java when it is set, else java from PATH (the broker's and Connect's JVM).
if [[ -n "${JAVA_HOME:-}" ]]; then
  JAVA="$JAVA_HOME/bin/java"
else
  JAVA=java
fi

log() { printf '%s: %s\n' "$NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Alive and not a zombie (a zombie answers kill -0 until its parent reaps it).
alive() {
  local st
  st="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ "$st" != Z* ]]
}

# Is $1 a live process whose command line holds $2? Reads /proc/PID/cmdline: `ps -o args=`
# is cut to $COLUMNS when that is set (as under some test runners), which made a running
# server look foreign.
runs() {
  local cmdline
  [[ -r "/proc/$1/cmdline" ]] || return 1
  cmdline="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *"$2"* ]] && alive "$1"
}

# The pid of the process this state dir started, whose command line holds $1: the pid file
# if it still names that process (never a reused number), else a search by command line
# (pgrep -f $2) in case the pid file was lost, so stop never misses a running server.
own_pid() {
  local pid=""
  [[ -f "$PID_FILE" ]] && pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  if [[ "$pid" =~ ^[0-9]+$ ]] && runs "$pid" "$1"; then
    echo "$pid"
    return 0
  fi
  for pid in $(pgrep -f "$2" || true); do
    if runs "$pid" "$1"; then
      echo "$pid" >"$PID_FILE"
      echo "$pid"
      return 0
    fi
  done
  return 1
}

# Only to detect someone else holding a port; readiness is always a real client call.
port_open() {
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# Resolve the jars of $POM into $LIBS_DIR only when it is missing (no jar matching $1) or
# was made from another pom, so a version bump re-resolves and later starts need no Maven.
# $2 names the jars in the log line.
ensure_libs() {
  local want have=""
  want="$(sha256sum "$POM" | cut -d' ' -f1)"
  [[ -f "$LIBS_STAMP" ]] && have="$(cat "$LIBS_STAMP")"
  if [[ "$want" == "$have" ]] && compgen -G "$LIBS_DIR/$1" >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found; it is needed once to fetch the $2 jars"
  log "resolving the $2 jars with Maven (first run only)..."
  # Copy into a temp dir and swap, so an interrupted run never leaves half a libs/.
  local tmp="$STATE_DIR/libs.tmp"
  rm -rf "$tmp"
  # Maven's output goes to a file (its -q mode still prints colour codes) and is shown
  # only on failure.
  if ! mvn -B -f "$POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$STATE_DIR/maven.log" 2>&1; then
    tail -n 40 "$STATE_DIR/maven.log" >&2
    die "Maven could not resolve the jars in $POM (full output: $STATE_DIR/maven.log)"
  fi
  echo "$want" >"$tmp/.pom.sha256"
  rm -rf "$LIBS_DIR"
  mv "$tmp" "$LIBS_DIR"
}

# A start that failed: $1, then the end of the server's log, then exit 1.
fail_start() {
  log "error: $1"
  if [[ -f "$LOG_FILE" ]]; then
    log "last 40 lines of $LOG_FILE:"
    tail -n 40 "$LOG_FILE" >&2
  fi
  exit 1
}

# SIGTERM to $1 (a controlled shutdown), SIGKILL if it is still alive after STOP_TIMEOUT
# seconds; $2 names it in the log line.
stop_pid() {
  local pid="$1"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if alive "$pid"; then
    log "$2 (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
  fi
  rm -f "$PID_FILE"
  log "stopped (pid $pid)"
}
