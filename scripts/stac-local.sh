#!/usr/bin/env bash
# A real STAC API on this one machine, for the STAC source's tests: a private PostgreSQL cluster
# with PostGIS and the pgstac schema, stac-fastapi-pgstac under uvicorn (Transactions extension
# on, so tests create collections and items with POST), and nginx serving a folder of assets
# with HTTP Range and a one-line-per-request access log. All run in the foreground under setsid,
# without systemd. Needs root for the apt packages and to run postgres as the postgres user.
#
#   scripts/stac-local.sh start   # prints `export LULC_TEST_...=...` lines once all answer
#   scripts/stac-local.sh stop    # stops exactly the daemons `start` recorded
#   scripts/stac-local.sh status
#
# State (database, config, assets, logs, PIDs) lives in $LULC_STAC_STATE (default
# /tmp/lulc-stac); the Python venv in $LULC_STAC_VENV (default ~/.cache/lulc-stac-venv), kept
# across runs since it is the slow part of a cold start.
set -euo pipefail
DIR=${LULC_STAC_STATE:-/tmp/lulc-stac}
VENV=${LULC_STAC_VENV:-$HOME/.cache/lulc-stac-venv}
# postgresql-15-postgis-3 is built for this server version, so use its binaries by full path
# (the Debian wrappers in /usr/bin pick clusters from /etc/postgresql instead).
PGBIN=${LULC_STAC_PGBIN:-/usr/lib/postgresql/15/bin}
DB=lulc_stac

# stac-fastapi-pgstac 7.2 supports the pgstac schema >=0.9.2,<0.11 (its README's version table),
# and pypgstac's version is the schema version `pypgstac migrate` installs, so 0.10.0 fits.
# uvicorn 0.38.0 is what stac-fastapi-pgstac's own `server` extra pins. The stac-fastapi
# libraries, FastAPI, Starlette and pydantic are pinned to what pip resolved with those, since
# their requirements leave them unbounded above and a new release is the usual breakage.
PINS=(
  stac-fastapi-pgstac==7.2.0
  'pypgstac[psycopg]==0.10.0'
  uvicorn==0.38.0
  stac-fastapi-api==7.0.0
  stac-fastapi-types==7.0.0
  stac-fastapi-extensions==7.0.0
  stac-pydantic==3.7.1
  fastapi==0.165.0
  starlette==1.10.0
  pydantic==2.14.4
  pydantic-settings==2.16.3
  psycopg==3.3.9
  psycopg-binary==3.3.9
  asyncpg==0.32.0
)

log() { echo "stac-local: $*" >&2; }
fail() { log "$*"; exit 1; }

install_apt() {
  local missing=()
  [ -x "$PGBIN/postgres" ] || missing+=(postgresql)
  [ -e "${PGBIN%/bin}/lib/postgis-3.so" ] || missing+=(postgresql-15-postgis-3)
  command -v nginx >/dev/null || missing+=(nginx-light)
  command -v curl >/dev/null || missing+=(curl)
  python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
  [ ${#missing[@]} = 0 ] && return
  log "installing ${missing[*]}"
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  # Installing postgresql or nginx starts their system services through invoke-rc.d (a cluster
  # on 5432, nginx on 80). Container images usually forbid that with a policy-rc.d; add one for
  # the install where there is none, so nothing is left running that `stop` does not know of.
  local policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee $policy >/dev/null
    $SUDO chmod +x $policy
  fi
  local rc=0
  { $SUDO apt-get update -qq &&
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } || rc=$?
  [ -z "$policy" ] || $SUDO rm -f "$policy"
  [ $rc = 0 ] || fail "apt-get could not install ${missing[*]}"
}

install_venv() {
  # The stamp records the pins the venv was built with, so changing PINS rebuilds it.
  if [ -x "$VENV/bin/uvicorn" ] && [ "$(cat "$VENV/.lulc-pins" 2>/dev/null)" = "${PINS[*]}" ]; then
    return
  fi
  log "creating the Python venv $VENV (${PINS[0]}, ${PINS[1]}, ${PINS[2]})"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV" || fail "python3 -m venv failed (python3-venv missing?)"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}" >&2 ||
    fail "pip could not install ${PINS[*]}"
  echo "${PINS[*]}" >"$VENV/.lulc-pins"
}

free_port() { # a port nobody listens on now, picked by the kernel
  "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# postgres refuses to run as root: as root, run it (and initdb) as the postgres user.
AS_POSTGRES=()
[ "$(id -u)" != 0 ] || AS_POSTGRES=(setpriv --reuid=postgres --regid=postgres --init-groups)

start_bg() { # name, command...: starts it under setsid, records its PID
  local name=$1
  shift
  setsid "$@" >"$DIR/log/$name.out" 2>&1 </dev/null &
  echo $! >"$DIR/run/$name.pidrec"
}

alive() { [ -f "$DIR/run/$1.pidrec" ] && kill -0 "$(cat "$DIR/run/$1.pidrec")" 2>/dev/null; }

wait_http() { # name, url, seconds: until the URL answers with any HTTP status
  local name=$1 url=$2 secs=$3
  for _ in $(seq $((secs * 4))); do
    alive "$name" || { tail -n 30 "$DIR/log/$name.out" >&2 || true; fail "$name exited"; }
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" != 000 ] && return 0
    sleep 0.25
  done
  tail -n 30 "$DIR/log/$name.out" >&2 || true
  fail "$name did not answer at $url within ${secs}s"
}

start_postgres() {
  local port=$1
  mkdir -p "$DIR/pgdata"
  chown postgres:postgres "$DIR/pgdata" 2>/dev/null || true
  chmod 700 "$DIR/pgdata"
  # A throwaway cluster for tests, thrown away by the next start: trust auth, reachable on
  # 127.0.0.1 alone; no fsync (initdb's sync alone took seconds). No Unix socket, so it cannot
  # clash with a system cluster's.
  "${AS_POSTGRES[@]}" "$PGBIN/initdb" -D "$DIR/pgdata" -U postgres --auth=trust -E UTF8 \
    --locale=C.UTF-8 --no-sync >"$DIR/log/initdb.out" 2>&1 ||
    { cat "$DIR/log/initdb.out" >&2; fail "initdb failed"; }
  start_bg postgres "${AS_POSTGRES[@]}" "$PGBIN/postgres" -D "$DIR/pgdata" -p "$port" \
    -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off
  for _ in $(seq 120); do
    alive postgres || { cat "$DIR/log/postgres.out" >&2; fail "postgres exited"; }
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    sleep 0.25
  done
  "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" || fail "postgres did not accept connections"
  local psql=("$PGBIN/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres)
  "${psql[@]}" -d postgres -c "CREATE DATABASE $DB" >&2 || fail "CREATE DATABASE failed"
  "${psql[@]}" -d $DB -c 'CREATE EXTENSION postgis' >&2 || fail "CREATE EXTENSION postgis failed"
  "$VENV/bin/pypgstac" migrate --dsn "postgresql://postgres@127.0.0.1:$port/$DB" \
    >"$DIR/log/migrate.out" 2>&1 || { cat "$DIR/log/migrate.out" >&2; fail "pypgstac migrate failed"; }
}

start_api() {
  local pgport=$1 port=$2
  # The settings come from the environment (pydantic-settings, see stac_fastapi/pgstac/config.py
  # and stac_fastapi/types/config.py), read case-blind under generic names such as ROOT_PATH or
  # DEBUG, and from a .env in the working directory: hence an emptied environment (env -i) and
  # the state dir as working directory. The password is required by the settings but unused
  # (trust auth). The title and landing id are set since the defaults log a warning.
  start_bg uvicorn env -i -C "$DIR" PATH="$PATH" HOME="$HOME" \
    PGUSER=postgres PGPASSWORD=unused PGHOST=127.0.0.1 PGPORT="$pgport" PGDATABASE=$DB \
    ENABLE_TRANSACTIONS_EXTENSIONS=TRUE \
    STAC_FASTAPI_TITLE="lulc test STAC API" STAC_FASTAPI_DESCRIPTION="lulc test STAC API" \
    STAC_FASTAPI_LANDING_ID=lulc-test STAC_FASTAPI_VERSION="${PINS[0]#*==}" \
    "$VENV/bin/uvicorn" stac_fastapi.pgstac.app:create_app --factory \
    --host 127.0.0.1 --port "$port" --log-level warning
  wait_http uvicorn "http://127.0.0.1:$port/" 60
}

start_nginx() {
  local port=$1
  mkdir -p "$DIR/nginx-tmp"
  local mime=
  [ -e /etc/nginx/mime.types ] && mime="include /etc/nginx/mime.types;"
  cat >"$DIR/nginx.conf" <<EOF
daemon off;
user root;
worker_processes 1;
pid $DIR/run/nginx.pid;
error_log $DIR/log/nginx-error.log warn;
events { worker_connections 256; }
http {
  $mime
  default_type application/octet-stream;
  # One line a request, written at once (no buffer=), so a test counts requests right after.
  log_format lulc '\$request_method \$uri \$status "\$http_range"';
  access_log $DIR/nginx-access.log lulc;
  client_body_temp_path $DIR/nginx-tmp/body;
  proxy_temp_path $DIR/nginx-tmp/proxy;
  fastcgi_temp_path $DIR/nginx-tmp/fastcgi;
  uwsgi_temp_path $DIR/nginx-tmp/uwsgi;
  scgi_temp_path $DIR/nginx-tmp/scgi;
  sendfile on;
  server {
    listen 127.0.0.1:$port;
    root $DIR/assets;
    # Range requests on static files are on by default; max_ranges left unset means no limit.
    location / { }
  }
}
EOF
  # -e: the error log before the config is read, instead of /var/log/nginx/error.log.
  start_bg nginx nginx -e "$DIR/log/nginx-error.log" -p "$DIR" -c "$DIR/nginx.conf"
  wait_http nginx "http://127.0.0.1:$port/" 20
  : >"$DIR/nginx-access.log" # that probe is no request of the tests
}

start() {
  if alive uvicorn && [ -f "$DIR/env" ]; then
    log "already running"
    cat "$DIR/env"
    return 0
  fi
  # Whatever fails from here on, stop what was started, since the caller only sets its trap
  # to stop us after a successful start.
  trap 'rc=$?; if [ $rc != 0 ]; then log "start failed, stopping what it started"; stop; fi' EXIT
  install_apt
  install_venv
  stop # daemons of an earlier start whose state is about to go
  # A fresh server: no catalog, assets or request log of an earlier one.
  rm -rf "$DIR/pgdata" "$DIR/assets" "$DIR/nginx-access.log" "$DIR/env" "$DIR/log"
  mkdir -p "$DIR"/{run,log,assets}
  chmod 755 "$DIR"
  local pgport apiport assetport
  pgport=$(free_port)
  start_postgres "$pgport"
  apiport=$(free_port)
  start_api "$pgport" "$apiport"
  assetport=$(free_port)
  start_nginx "$assetport"
  cat >"$DIR/env" <<EOF
export LULC_TEST_STAC_API=http://127.0.0.1:$apiport
export LULC_TEST_ASSET_DIR=$DIR/assets
export LULC_TEST_ASSET_URL=http://127.0.0.1:$assetport
export LULC_TEST_ASSET_LOG=$DIR/nginx-access.log
EOF
  log "up: postgres on $pgport, STAC API on $apiport, assets on $assetport"
  trap - EXIT
  cat "$DIR/env"
}

stop_one() { # name, signal: signals the recorded PID, waits up to 10 s for it to exit
  local rec=$DIR/run/$1.pidrec
  [ -f "$rec" ] || return 0
  kill -s "$2" "$(cat "$rec")" 2>/dev/null || true
  for _ in $(seq 40); do
    alive "$1" || break
    sleep 0.25
  done
  if alive "$1"; then
    log "$1 did not stop on SIG$2, killing it"
    kill -9 "$(cat "$rec")" 2>/dev/null || true
  fi
  rm -f "$rec"
}

stop() {
  # The API first, so its connection pool does not reconnect to a postgres shutting down.
  # SIGTERM is a graceful stop for uvicorn and nginx; SIGINT is postgres's fast shutdown.
  stop_one uvicorn TERM
  stop_one nginx TERM
  stop_one postgres INT
}

status() {
  local name rc=0
  for name in postgres uvicorn nginx; do
    if alive $name; then
      echo "$name: running (pid $(cat "$DIR/run/$name.pidrec"))"
    else
      echo "$name: not running"
      rc=1
    fi
  done
  [ $rc != 0 ] || cat "$DIR/env"
  return $rc
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
