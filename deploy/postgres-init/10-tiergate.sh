#!/bin/sh
# tiergate's shared store beside Temporal's databases, on the stack's one PostgreSQL, and
# the support demo's own database (a team's backend keeps its own). Run once, when the
# volume is new. Workers and the page get roles of their own, not the owner's: the `store`
# service migrates as the owner and grants each role only its part (`tiergate store
# access`), so a worker cannot mint sign-in links, lift a pause or roll the registry back.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v worker_password="$TIERGATE_WORKER_DB_PASSWORD" \
  -v web_password="$TIERGATE_WEB_DB_PASSWORD" <<'SQL'
CREATE DATABASE tiergate;
CREATE ROLE tiergate_worker LOGIN PASSWORD :'worker_password';
CREATE ROLE tiergate_web LOGIN PASSWORD :'web_password';
CREATE DATABASE support OWNER tiergate_worker;
SQL
