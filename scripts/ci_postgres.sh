#!/usr/bin/env bash
# Install and start a PostgreSQL server on localhost from Debian's packages, with a database for the tests.
# Writes .ci/postgres.env with HPSEARCH_TEST_POSTGRES_URL and HPSEARCH_TEST_POSTGRES_CTL. Idempotent; needs root (CI has it).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
if [ -z "$version" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  pg_createcluster "$version" main >/dev/null
fi
pg_ctlcluster "$version" main start 2>/dev/null || pg_ctlcluster "$version" main status >/dev/null
for _ in $(seq 1 30); do
  su postgres -c "psql -qtAc 'select 1'" >/dev/null 2>&1 && break
  sleep 1
done
su postgres -c "psql -qtAc \"select 1 from pg_roles where rolname='hpsearch'\"" | grep -q 1 ||
  su postgres -c "psql -qc \"create role hpsearch login password 'hpsearch'\""
su postgres -c "psql -qtAc \"select 1 from pg_database where datname='hpsearch'\"" | grep -q 1 ||
  su postgres -c "createdb -O hpsearch hpsearch"
{
  echo "HPSEARCH_TEST_POSTGRES_URL=postgresql://hpsearch:hpsearch@127.0.0.1:5432/hpsearch"
  # how the outage test stops and starts the server
  echo "HPSEARCH_TEST_POSTGRES_CTL='pg_ctlcluster $version main'"
} > .ci/postgres.env
echo "ci: PostgreSQL $version running on 127.0.0.1:5432" >&2
