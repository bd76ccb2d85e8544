-- _wallet_home: does the player live on this database? Always true on a database that is no shard (no
-- shard_identity row); on a shard, true when the player's partition (hashtext(user_id) & (partition_count - 1),
-- what PL/Proxy routes by) is one of this shard's.
-- Arguments: p_user_id. Returns: boolean.
CREATE OR REPLACE FUNCTION _wallet_home(p_user_id text)
RETURNS boolean
LANGUAGE sql STABLE
RETURN coalesce((SELECT (hashtext(p_user_id) & (s.partition_count - 1)) = ANY (s.partitions) FROM shard_identity s),
                true);
