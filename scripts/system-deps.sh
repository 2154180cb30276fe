#!/usr/bin/env bash
# Install the Debian packages the tests need, only when they are missing: PostgreSQL and Redis
# (the tests start throwaway copies), Chromium (the browser tests drive it headless through
# Playwright's Python package; `playwright install` downloads its own browsers and is never used)
# docker-compose (tests/deploy validates docker-compose.yaml with `docker-compose config`,
# which needs no Docker engine), and FreeTDS's ODBC driver with unixODBC (the TDS endpoint's tests
# drive pyodbc and arrow-odbc over it; `make bench` measures arrow-odbc as a SQL Server reader).
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium fonts-dejavu-core)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
[ -e /usr/lib/x86_64-linux-gnu/odbc/libtdsodbc.so ] || need+=(tdsodbc unixodbc)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
