#!/usr/bin/env bash
# Make PostgreSQL (127.0.0.1:5432, trust auth, database `test`) and Redis (127.0.0.1:6379) answer.
# Where they already answer, nothing is touched; on a fresh Debian machine they are installed
# from Debian's packages and started.
set -euo pipefail

apt_install() {
  if [ -z "${_APT_UPDATED:-}" ]; then apt-get update -qq; _APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

pg_answers() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }
redis_answers() { command -v redis-cli >/dev/null && [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

if ! pg_answers; then
  echo "PostgreSQL is not answering on 127.0.0.1:5432: installing/starting it"
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  version=$(ls /etc/postgresql | sort -V | tail -1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  # The test machines use trust auth on loopback; a fresh install defaults to passwords.
  if ! grep -q "^host all all 127.0.0.1/32 trust" "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  for _ in $(seq 1 30); do pg_answers && break; sleep 1; done
fi
pg_answers || { echo "PostgreSQL did not come up" >&2; exit 1; }
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null

if ! redis_answers; then
  echo "Redis is not answering on 127.0.0.1:6379: installing/starting it"
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis_answers && break; sleep 1; done
fi
redis_answers || { echo "Redis did not come up" >&2; exit 1; }
echo "PostgreSQL and Redis answer on 127.0.0.1."
