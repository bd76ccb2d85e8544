-- wallet_shard_seed: wallet_seed() of this shard for the PL/Proxy database (which runs it on every shard and
-- then claims the keys in its directory): the opening balances of the demo players at home here, each with
-- its reference id and player. Like wallet_seed, not for wallet_app (_wallet_secure).
-- Arguments: none. Returns: (reference_id, user_id, posting) per opening balance, posting being the
-- wallet_posting row as JSON. Raises: WL004 as wallet_seed.
CREATE OR REPLACE FUNCTION wallet_shard_seed()
RETURNS TABLE (reference_id text, user_id text, posting jsonb)
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM _wallet_seed_rows() s WHERE _wallet_home(s.user_id) ORDER BY s.n LOOP
        reference_id := r.reference_id;
        user_id := r.user_id;
        posting := to_jsonb(_wallet_post('INITIAL_BALANCE', r.user_id, r.asset_code, r.amount, r.reference_id,
                                         p_display_name => r.display_name));
        RETURN NEXT;
    END LOOP;
END;
$$;
