#!/bin/sh
# Run once by the postgres container on an empty data volume, after
# postgres-init.sql created the databases: the services' own roles
# (deploy/postgres-roles.sql explains who may do what).
set -eu
psql --username "$POSTGRES_USER" --dbname postgres \
    -v prefix=supportbot_ -v owner="$POSTGRES_USER" \
    -v tracker_db=supportbot_tracker -v accounts_db=supportbot_accounts \
    -v rasa_password="$RASA_DB_PASSWORD" -v actions_password="$ACTIONS_DB_PASSWORD" \
    -v chatpage_password="$CHATPAGE_DB_PASSWORD" -v console_password="$CONSOLE_DB_PASSWORD" \
    -v mail_password="$MAIL_DB_PASSWORD" -v helpdesk_password="$HELPDESK_DB_PASSWORD" \
    -v scheduler_password="$SCHEDULER_DB_PASSWORD" \
    -f /supportbot/postgres-roles.sql
