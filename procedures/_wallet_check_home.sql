-- _wallet_check_home: trigger function of wallets_player_at_home (sql/0008.shards.sql): a player wallet opens
-- only on the player's home shard (_wallet_home), so a player is never split over two shards, whoever posts.
-- Raises: WL008 (an internal error: through the proxy it cannot happen) naming the player and its partition.
CREATE OR REPLACE FUNCTION _wallet_check_home()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_shard shard_identity;
BEGIN
    IF NOT _wallet_home(NEW.user_id) THEN
        SELECT s.* INTO STRICT v_shard FROM shard_identity s;
        RAISE EXCEPTION 'player % does not live on shard % (partition % of %; this shard holds %)',
            NEW.user_id, v_shard.name, hashtext(NEW.user_id) & (v_shard.partition_count - 1),
            v_shard.partition_count, array_to_string(v_shard.partitions, ',')
            USING ERRCODE = 'WL008',
                  DETAIL = json_build_object('user_id', NEW.user_id, 'shard', v_shard.name,
                                             'partition', hashtext(NEW.user_id) & (v_shard.partition_count - 1))::text;
    END IF;
    RETURN NEW;
END;
$$;
