-- wallet_shard_verify: wallet_verify() of this shard for the PL/Proxy database (which runs it on every shard),
-- each violation's subject prefixed with the shard's name ("s1:user_alice/GOLD_COINS"), plus this shard's own
-- invariants:
--   shard_identity_missing  the database holds no shard_identity row (it was never set up as a shard)
--   player_not_home         a player wallet whose partition (hashtext(user_id) & (partition_count - 1)) is not
--                           one of this shard's: the proxy would never route its player here
-- Arguments: none. Returns: (invariant, subject, detail) per violation. Raises: nothing.
CREATE OR REPLACE FUNCTION wallet_shard_verify()
RETURNS TABLE (invariant text, subject text, detail text)
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_shard shard_identity;
BEGIN
    SELECT s.* INTO v_shard FROM shard_identity s;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'shard_identity_missing'::text, current_database()::text,
                            'this database was never set up as a shard (wallet-service shards init)';
        v_shard.name := current_database()::text;
    END IF;
    RETURN QUERY
        SELECT v.invariant, v_shard.name || ':' || v.subject, v.detail FROM wallet_verify() v;
    RETURN QUERY
        SELECT 'player_not_home', v_shard.name || ':' || w.user_id || '/' || w.asset_code,
               format('partition %s of %s is not one of this shard''s (%s)',
                      hashtext(w.user_id) & (v_shard.partition_count - 1), v_shard.partition_count,
                      array_to_string(v_shard.partitions, ','))
          FROM wallets w
         WHERE w.kind = 'PLAYER' AND v_shard.partition_count IS NOT NULL AND NOT _wallet_home(w.user_id)
         ORDER BY w.user_id, w.asset_code;
END;
$$;
