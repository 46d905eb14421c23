#!/usr/bin/env bash
# Makes the tests' real services available: installs PostgreSQL, Redis, Slurm and Quantum
# ESPRESSO with apt when absent; starts PostgreSQL and Redis when down (the Slurm tests start
# their own single-node Slurm with scripts/start_slurm.sh).
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Real components the tests talk to: PostgreSQL, Redis, a single-node Slurm, Quantum ESPRESSO.
missing=()
command -v pg_ctlcluster >/dev/null 2>&1 || { missing+=(postgresql); fresh_postgres=1; }
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v slurmctld >/dev/null 2>&1 || missing+=(slurm-wlm munge)
command -v pw.x >/dev/null 2>&1 || missing+=(quantum-espresso)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  for version in $(ls /etc/postgresql); do
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
if [ "${fresh_postgres:-0}" = 1 ]; then
  # A fresh Debian cluster asks for a password on TCP: give the postgres role the one the tests use.
  as_root runuser -u postgres -- psql -q -c "ALTER USER postgres PASSWORD 'postgres'"
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432
redis-cli -h 127.0.0.1 -p 6379 ping
