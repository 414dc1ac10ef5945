#!/usr/bin/env bash
# The replicated layout on one machine: one Chroma server, one PostgreSQL, N app replicas.
#
#   deploy/run-layout.sh [N]        # N replicas (default 2) on ports BASE_PORT, BASE_PORT+1, ...
#
# It starts `chroma run` and a PostgreSQL cluster (both keeping their data in LAYOUT_DIR), ingests
# knowledge/ once into the Chroma server, brings the feedback database to the newest schema, then
# starts N `python app.py` replicas with the same settings. Ctrl-C (or SIGTERM) stops them all.
# There is no load balancer: put nginx (or any) in front of the replicas' ports, with sticky
# sessions per client (README.md, "Replicas behind a load balancer").
#
# Already running a Chroma server or a PostgreSQL? Export ASSISTANT_CHROMA_URL or
# ASSISTANT_FEEDBACK_DB_URL and that part is not started. Any other ASSISTANT_* setting (e.g.
# ASSISTANT_ANSWER_BACKEND and ASSISTANT_LLM_* for a model server) is passed to every replica.
#
# Environment: LAYOUT_DIR (default .layout/), BASE_PORT (7860), CHROMA_PORT (8000), PG_PORT (5432),
# ASSISTANT_SESSION_SECRET (default: made once and kept in LAYOUT_DIR/session-secret).
# PostgreSQL here trusts every local connection on 127.0.0.1: a demonstration, not a production
# database (use a managed one, with a password in ASSISTANT_FEEDBACK_DB_URL).
set -euo pipefail
cd "$(dirname "$0")/.."

REPLICAS=${1:-${REPLICAS:-2}}
BASE_PORT=${BASE_PORT:-7860}
CHROMA_PORT=${CHROMA_PORT:-8000}
PG_PORT=${PG_PORT:-5432}
LAYOUT_DIR=$(mkdir -p "${LAYOUT_DIR:-.layout}" && cd "${LAYOUT_DIR:-.layout}" && pwd)
PY=.venv/bin/python
LOGS=$LAYOUT_DIR/logs
mkdir -p "$LOGS"
[ -x "$PY" ] || { echo "no .venv: run 'make setup' first" >&2; exit 1; }

PIDS=()
PG_CTL=""
stop_all() {
  trap - EXIT INT TERM
  echo "stopping the layout"
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$PG_CTL" ]; then as_pg "$PG_CTL" -D "$PG_DIR/data" -m fast -w stop >/dev/null || true; fi
}
trap stop_all EXIT
trap 'stop_all; exit 130' INT TERM

wait_for() {  # wait_for URL WHAT PID: until URL answers 200, or the process exits
  for _ in $(seq 1 600); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { echo "$2 exited; see $LOGS" >&2; exit 1; }
    sleep 0.2
  done
  echo "$2 did not answer at $1 in 120 s; see $LOGS" >&2
  exit 1
}

# -- one Chroma server ------------------------------------------------------------------------
if [ -z "${ASSISTANT_CHROMA_URL:-}" ]; then
  .venv/bin/chroma run --path "$LAYOUT_DIR/chroma" --host 127.0.0.1 --port "$CHROMA_PORT" \
    >"$LOGS/chroma.log" 2>&1 &
  PIDS+=($!)
  export ASSISTANT_CHROMA_URL=http://127.0.0.1:$CHROMA_PORT
  wait_for "$ASSISTANT_CHROMA_URL/api/v2/heartbeat" "chroma run" "$!"
  echo "Chroma server:  $ASSISTANT_CHROMA_URL (data in $LAYOUT_DIR/chroma)"
fi

# -- one PostgreSQL (Debian's package: apt-get install postgresql) -----------------------------
if [ -z "${ASSISTANT_FEEDBACK_DB_URL:-}" ]; then
  BIN=$(dirname "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)")
  [ -x "$BIN/initdb" ] || { echo "PostgreSQL is not installed: apt-get install postgresql" >&2; exit 1; }
  PG_DIR=$LAYOUT_DIR/postgres
  mkdir -p "$PG_DIR"
  if [ "$(id -u)" = 0 ]; then  # initdb refuses root: the cluster belongs to the postgres user
    chown postgres "$PG_DIR"
    as_pg() { runuser -u postgres -- "$@"; }
  else
    as_pg() { "$@"; }
  fi
  if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    as_pg "$BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --no-instructions >"$LOGS/initdb.log"
  fi
  as_pg mkdir -p -m 700 "$PG_DIR/run"
  PG_CTL=$BIN/pg_ctl
  as_pg "$PG_CTL" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_DIR/run" >/dev/null
  "$PY" - "$PG_PORT" <<'EOF'
import sys, psycopg
with psycopg.connect(f"postgresql://postgres@127.0.0.1:{sys.argv[1]}/postgres", autocommit=True) as db:
    if not db.execute("SELECT 1 FROM pg_database WHERE datname = 'feedback'").fetchone():
        db.execute("CREATE DATABASE feedback")
EOF
  export ASSISTANT_FEEDBACK_DB_URL=postgresql://postgres@127.0.0.1:$PG_PORT/feedback
  echo "PostgreSQL:     127.0.0.1:$PG_PORT, database feedback (cluster in $PG_DIR)"
fi

# -- once, before the replicas: the index on the server, the feedback schema --------------------
"$PY" -m assistant ingest --quiet
"$PY" -m assistant feedback migrate >/dev/null

# -- the replicas: the same settings, one port each ---------------------------------------------
if [ -z "${ASSISTANT_SESSION_SECRET:-}" ]; then  # the same on every replica, kept across restarts
  [ -s "$LAYOUT_DIR/session-secret" ] || (umask 077 && "$PY" -c "import secrets; print(secrets.token_urlsafe(32))" >"$LAYOUT_DIR/session-secret")
  ASSISTANT_SESSION_SECRET=$(cat "$LAYOUT_DIR/session-secret")
  export ASSISTANT_SESSION_SECRET
fi
export ASSISTANT_INGEST_ON_START=false  # the replicas serve the index ingested above, never ingest
for k in $(seq 0 $((REPLICAS - 1))); do
  port=$((BASE_PORT + k))
  ASSISTANT_HOST=127.0.0.1 ASSISTANT_PORT=$port ASSISTANT_DATA_DIR=$LAYOUT_DIR/replica-$k \
    "$PY" app.py >"$LOGS/replica-$k.log" 2>&1 &
  PIDS+=($!)
  REPLICA_PIDS+=("$!:$port")
done
for entry in "${REPLICA_PIDS[@]}"; do
  wait_for "http://127.0.0.1:${entry#*:}/gradio_api/info" "replica on port ${entry#*:}" "${entry%%:*}"
  echo "replica:        http://127.0.0.1:${entry#*:}"
done
echo "all up; logs in $LOGS. Ctrl-C stops the layout."
wait -n "${PIDS[@]}" || true
echo "a process of the layout stopped, so the rest stop too; logs in $LOGS" >&2
