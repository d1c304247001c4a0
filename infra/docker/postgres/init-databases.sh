#!/bin/sh
# Runs once, on the first start of an empty data volume (the postgres image's /docker-entrypoint-initdb.d).
# One role and two databases for MLflow (tracking + its basic-auth user store), one role and database for Prefect.
# Passwords come from the container environment (compose reads them from .env); they are passed to psql as
# variables, never written into a file or a command line.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v mlflow_pw="$MLFLOW_DB_PASSWORD" -v prefect_pw="$PREFECT_DB_PASSWORD" <<'SQL'
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_pw';
CREATE ROLE prefect LOGIN PASSWORD :'prefect_pw';
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
CREATE DATABASE prefect OWNER prefect;
SQL
