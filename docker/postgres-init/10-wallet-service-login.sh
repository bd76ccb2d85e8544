#!/bin/sh
# Run once by the postgres image when it creates the cluster: the login the service connects as, with the
# password of wallet-service.env. It has no right yet: `wallet-service migrate --app-login wallet_service`
# (the compose file's migrate one-shot) grants it wallet_app once the roles exist.
set -eu
: "${WALLET_SERVICE_PASSWORD:?set it in wallet-service.env}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v password="$WALLET_SERVICE_PASSWORD" <<'SQL'
CREATE ROLE wallet_service LOGIN PASSWORD :'password';
SQL
