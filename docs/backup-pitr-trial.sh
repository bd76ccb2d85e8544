#!/usr/bin/env bash
# Backup and point-in-time recovery of the ledger, tried once end to end (README, "Operating"; its output is
# docs/backup-pitr-trial.txt). A throwaway PostgreSQL 15 cluster in $DIR, run as the OS user postgres:
#   1. WAL archiving on; migrate + seed; a base backup with pg_basebackup;
#   2. good postings, the recovery target time noted, then a mistake (a bogus 1,000,000-credit top-up);
#   3. the cluster is lost; restore the base backup, replay the archived WAL up to the target time;
#   4. the restored ledger has the good postings, not the mistake, and wallet-service verify finds 0 violations.
# Run from a checkout as root: bash docs/backup-pitr-trial.sh
set -euo pipefail
BIN=${WALLET_PG_BINDIR:-/usr/lib/postgresql/15/bin}
DIR=${DIR:-/tmp/wallet-pitr}
PORT=${PORT:-55432}
WS=${WS:-$(dirname "$0")/../.venv/bin/wallet-service}
as_pg() { runuser -u postgres -- "$@"; }
psql_() { "$BIN/psql" -X -q -At -h 127.0.0.1 -p "$PORT" -U postgres -d wallet "$@"; }

trap '[ -f "$DIR/data/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null' EXIT
rm -rf "$DIR" && mkdir -p "$DIR/wal-archive" && chown -R postgres "$DIR"
as_pg "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust >/dev/null
cat >>"$DIR/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
wal_level = replica
archive_mode = on
# never overwrite an archived segment; the archive belongs on another machine (rsync/pgBackRest/WAL-G in real life)
archive_command = 'test ! -f $DIR/wal-archive/%f && cp %p $DIR/wal-archive/%f'
CONF
as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w start >/dev/null
"$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres wallet
export DATABASE_URL="postgresql://postgres@127.0.0.1:$PORT/wallet"
"$WS" migrate --seed >/dev/null 2>&1
echo "== 1. base backup (tar, compressed, with the WAL it needs)"
as_pg "$BIN/pg_basebackup" -h "$DIR" -p "$PORT" -U postgres -D "$DIR/base" -Ft -z -X stream -c fast
ls -1 "$DIR/base"

echo "== 2. good postings after the backup, then the target time, then the mistake"
psql_ -c "SELECT wallet_topup('user_alice', 'GOLD_COINS', 250, 'pitr-good-1', 'card', '{}')" >/dev/null
psql_ -c "SELECT wallet_spend('user_bob', 'GOLD_COINS', 40, 'pitr-good-2', 'sword', '{}')" >/dev/null
GOOD=$(psql_ -c "SELECT string_agg(user_id || ':' || asset_code || '=' || balance, ' ' ORDER BY user_id, asset_code) FROM wallets WHERE kind = 'PLAYER'")
sleep 1
TARGET=$(psql_ -c "SELECT now()")
sleep 1
psql_ -c "SELECT wallet_topup('user_alice', 'GOLD_COINS', 1000000, 'pitr-mistake', 'card', '{}')" >/dev/null
psql_ -c "SELECT pg_switch_wal()" >/dev/null   # close the segment holding the mistake so it is archived
sleep 2
echo "balances before the mistake: $GOOD"
echo "recovery target time:        $TARGET"
echo "alice GOLD after the mistake: $(psql_ -c "SELECT balance FROM wallets WHERE user_id='user_alice' AND asset_code='GOLD_COINS'")"
echo "archived WAL segments: $(ls "$DIR/wal-archive" | grep -c -v '\.')"

echo "== 3. the cluster is lost; restore the base backup and replay the archive up to the target"
as_pg "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null
rm -rf "$DIR/data"
as_pg mkdir -m 0700 "$DIR/data"
as_pg tar -xzf "$DIR/base/base.tar.gz" -C "$DIR/data"
as_pg tar -xzf "$DIR/base/pg_wal.tar.gz" -C "$DIR/data/pg_wal"
cat >>"$DIR/data/postgresql.conf" <<CONF
restore_command = 'cp $DIR/wal-archive/%f %p'
recovery_target_time = '$TARGET'
recovery_target_action = 'promote'
CONF
as_pg touch "$DIR/data/recovery.signal"
as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 120 start >/dev/null
until [ "$(psql_ -c 'SELECT pg_is_in_recovery()')" = "f" ]; do sleep 0.5; done
grep -E "recovery stopping|archive recovery complete|starting point-in-time recovery" "$DIR/server.log" | sed 's/^[^]]*] //; s/^.*LOG: */LOG: /'

echo "== 4. the restored ledger"
RESTORED=$(psql_ -c "SELECT string_agg(user_id || ':' || asset_code || '=' || balance, ' ' ORDER BY user_id, asset_code) FROM wallets WHERE kind = 'PLAYER'")
echo "balances restored:           $RESTORED"
echo "the mistake is gone: $(psql_ -c "SELECT count(*) = 0 FROM transactions WHERE reference_id = 'pitr-mistake'")"
[ "$RESTORED" = "$GOOD" ] && echo "restored balances == balances at the target time"
"$WS" verify | tail -1
