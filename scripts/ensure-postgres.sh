#!/usr/bin/env bash
# Make sure a PostgreSQL server is running on 127.0.0.1 with the test role
# and database, installing Debian's `postgresql` package when it is missing
# and we are root. Prints the SQLAlchemy URL of the test database on stdout.
#
#   PG_URL set in the environment   -> used as is, nothing is installed
#   ONELOOP_PG_PORT (default 5432)  -> port of the cluster we start
set -euo pipefail

if [ -n "${PG_URL:-}" ]; then
  echo "$PG_URL"
  exit 0
fi

ROLE=oneloop
PASSWORD=oneloop-test-secret
DB=oneloop
log() { echo "ensure-postgres: $*" >&2; }

if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql/*/bin/postgres 2>/dev/null)" ]; then
  if [ "$(id -u)" != 0 ]; then
    log "PostgreSQL is not installed and we are not root: install Debian's 'postgresql' package, or set PG_URL"
    exit 1
  fi
  log "installing PostgreSQL from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi

cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $1, $2}')
if [ -z "$cluster" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -1)
  log "creating cluster $version main"
  pg_createcluster "$version" main >&2
  cluster="$version main"
fi
# shellcheck disable=SC2086
set -- $cluster
status=$(pg_lsclusters --no-header | awk -v v="$1" -v c="$2" '$1==v && $2==c {print $4}')
if [ "$status" != online ]; then
  if [ "$(id -u)" != 0 ]; then
    log "cluster $1/$2 is down and we are not root: start it, or set PG_URL"
    exit 1
  fi
  log "starting cluster $1/$2"
  pg_ctlcluster "$1" "$2" start >&2
fi
port=$(pg_lsclusters --no-header | awk -v v="$1" -v c="$2" '$1==v && $2==c {print $3}')

psql_admin() { su postgres -c "psql -p $port -v ON_ERROR_STOP=1 -qtA $*"; }
if [ "$(psql_admin "-c \"SELECT 1 FROM pg_roles WHERE rolname='$ROLE'\"")" != 1 ]; then
  log "creating role $ROLE"
  psql_admin "-c \"CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'\"" >&2
fi
# DROP DATABASE ... WITH (FORCE) ends the other sessions in the database, and
# an autovacuum worker that happens to be in it counts: before PostgreSQL 17,
# ending one takes membership of pg_signal_backend. Granting it again is a no-op.
psql_admin "-c \"GRANT pg_signal_backend TO $ROLE\"" >&2
if [ "$(psql_admin "-c \"SELECT 1 FROM pg_database WHERE datname='$DB'\"")" != 1 ]; then
  log "creating database $DB"
  psql_admin "-c \"CREATE DATABASE $DB OWNER $ROLE\"" >&2
fi
echo "postgresql+asyncpg://$ROLE:$PASSWORD@127.0.0.1:$port/$DB"
