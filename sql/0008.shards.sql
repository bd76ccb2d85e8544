-- Scale-out: what a database needs to be one shard of several behind a PL/Proxy database (service/shards.py,
-- README "Scaling out"). On a single server both tables stay empty and nothing changes.
-- depends: 0007.events

-- Which players this database holds. Players are spread by hashtext(user_id) over partition_count
-- partitions (a power of two: PL/Proxy takes hashtext(user_id) & (partition_count - 1)); this shard holds the
-- partitions listed. One row, written by `wallet-service shards init`; none on a database that is no shard.
CREATE TABLE shard_identity (
    singleton       boolean PRIMARY KEY DEFAULT true CONSTRAINT shard_identity_one_row CHECK (singleton),
    name            text NOT NULL CONSTRAINT shard_identity_name CHECK (name ~ '^[a-z0-9_]{1,32}$'),
    partition_count integer NOT NULL
        CONSTRAINT shard_identity_power_of_two CHECK (partition_count > 0 AND partition_count & (partition_count - 1) = 0),
    partitions      integer[] NOT NULL CONSTRAINT shard_identity_some_partition CHECK (cardinality(partitions) > 0)
);

-- The global key directory: which player a reference id belongs to, kept on the shard of the reference id's
-- own partition (hashtext(reference_id)), not the player's. The proxy claims a key here before it posts on the
-- player's shard, so one key can never be posted for two players on two shards, and a lookup by reference id
-- (GET /transactions/{reference_id}, captures, voids, reversals) is one routed call to find the player, then
-- one to the player's shard. A claim is never released: a key stays the first player's it was presented for.
CREATE TABLE reference_directory (
    reference_id wallet_ref PRIMARY KEY,
    user_id      wallet_ref NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- A player wallet opens only on the player's home shard (_wallet_home: always true on a database that is no
-- shard), whoever calls: the proxy routes by player, and a DBA posting on the wrong shard directly, or a
-- caller of the proxy's routing helpers who picks a partition, is refused (WL008) instead of splitting a
-- player over two shards. The function's body is procedures/_wallet_check_home.sql, applied right after the
-- migrations; until then this placeholder refuses every new player wallet (fail closed).
CREATE FUNCTION _wallet_check_home() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'no player wallet opens before the wallet functions are installed (wallet-service migrate)';
END;
$$;
CREATE TRIGGER wallets_player_at_home BEFORE INSERT ON wallets
    FOR EACH ROW WHEN (NEW.kind = 'PLAYER')
    EXECUTE FUNCTION _wallet_check_home();
