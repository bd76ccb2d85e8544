-- wallet_verify: check every ledger invariant over the whole ledger.
-- Arguments: none.
-- Returns: one row per violation (invariant, subject, detail); no rows when the ledger is healthy.
--   transaction_unbalanced   a transaction's entries do not sum to zero in an asset
--   asset_unbalanced         an asset's entries do not sum to zero over the whole ledger
--   transaction_legs         a transaction lacks its player leg (type's direction, its amount, the
--                            player's wallet) or its system leg (TREASURY / BONUS_POOL / REVENUE)
--   stored_balance_mismatch  a player wallet's stored balance differs from the sum of its entries
--   balance_chain_broken     an entry's balance_after differs from the running sum of its wallet
--   negative_balance         a player balance (stored or after an entry) is below zero
--   balance_limit            a player balance exceeds 2^53-1
--   entry_hash_mismatch      a player entry's hash is not the hash of its wallet's previous entry, its
--                            transaction and itself: the entry or its transaction was changed, or an entry
--                            before it in the wallet was removed (what no rule above notices when someone who
--                            bypassed the triggers rewrote history consistently)
--   chain_head_mismatch      a player wallet's chain_head is not its newest entry's hash (the next posting
--                            would chain to the wrong entry)
-- Raises: nothing. Reads the whole ledger: run it off-peak on a large ledger.
-- Not caught here: a rewrite that also recomputes every later hash, or the removal of a wallet's newest
-- entries; keep the chain heads outside the database (wallet_chain_heads) and check them with
-- wallet_verify_anchor.
-- Example: SELECT * FROM wallet_verify();
CREATE OR REPLACE FUNCTION wallet_verify()
RETURNS TABLE (invariant text, subject text, detail text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    RETURN QUERY
        SELECT 'transaction_unbalanced', e.transaction_id::text,
               format('entries sum to %s %s', sum(e.amount), e.asset_code)
          FROM ledger_entries e
         GROUP BY e.transaction_id, e.asset_code
        HAVING sum(e.amount) <> 0;

    RETURN QUERY
        SELECT 'asset_unbalanced', e.asset_code, format('all entries sum to %s', sum(e.amount))
          FROM ledger_entries e
         GROUP BY e.asset_code
        HAVING sum(e.amount) <> 0;

    RETURN QUERY
        SELECT 'transaction_legs', t.id::text,
               format('%s of %s %s for %s (reference %s): %s player leg(s) as expected, %s system leg(s) as expected, %s entries',
                      t.type, t.amount, t.asset_code, t.user_id, t.reference_id,
                      coalesce(legs.player_ok, 0), coalesce(legs.system_ok, 0), coalesce(legs.total, 0))
          FROM transactions t
          LEFT JOIN LATERAL (
                SELECT count(*) AS total,
                       count(*) FILTER (WHERE w.kind = 'PLAYER' AND w.user_id = t.user_id
                                          AND w.asset_code = t.asset_code
                                          AND e.amount = CASE WHEN t.type = 'SPEND' THEN -t.amount ELSE t.amount END)
                           AS player_ok,
                       count(*) FILTER (WHERE w.asset_code = t.asset_code
                                          AND w.kind = CASE t.type WHEN 'SPEND' THEN 'REVENUE'::wallet_kind
                                                                   WHEN 'BONUS' THEN 'BONUS_POOL'::wallet_kind
                                                                   ELSE 'TREASURY'::wallet_kind END
                                          AND e.amount = CASE WHEN t.type = 'SPEND' THEN t.amount ELSE -t.amount END)
                           AS system_ok
                  FROM ledger_entries e JOIN wallets w ON w.id = e.wallet_id
                 WHERE e.transaction_id = t.id) legs ON true
         WHERE legs.total IS DISTINCT FROM 2 OR legs.player_ok IS DISTINCT FROM 1
            OR legs.system_ok IS DISTINCT FROM 1;

    RETURN QUERY
        SELECT 'stored_balance_mismatch', w.id::text,
               format('wallet of %s in %s stores %s, its entries sum to %s',
                      w.user_id, w.asset_code, w.balance, coalesce(s.total, 0))
          FROM wallets w
          LEFT JOIN (SELECT e.wallet_id, sum(e.amount) AS total FROM ledger_entries e GROUP BY e.wallet_id) s
            ON s.wallet_id = w.id
         WHERE w.kind = 'PLAYER' AND w.balance IS DISTINCT FROM coalesce(s.total, 0);

    RETURN QUERY
        SELECT 'balance_chain_broken', c.id::text,
               format('entry of wallet %s records balance_after %s, the running sum is %s',
                      c.wallet_id, c.balance_after, c.running)
          FROM (SELECT e.id, e.wallet_id, e.balance_after,
                       sum(e.amount) OVER (PARTITION BY e.wallet_id ORDER BY e.id) AS running
                  FROM ledger_entries e JOIN wallets w ON w.id = e.wallet_id
                 WHERE w.kind = 'PLAYER') c
         WHERE c.balance_after IS DISTINCT FROM c.running;

    RETURN QUERY
        SELECT 'negative_balance', w.id::text,
               format('wallet of %s in %s has balance %s', w.user_id, w.asset_code, w.balance)
          FROM wallets w
         WHERE w.kind = 'PLAYER' AND w.balance < 0
        UNION ALL
        SELECT 'negative_balance', e.id::text, format('entry records balance_after %s', e.balance_after)
          FROM ledger_entries e
         WHERE e.balance_after < 0;

    RETURN QUERY
        SELECT 'balance_limit', w.id::text,
               format('wallet of %s in %s has balance %s', w.user_id, w.asset_code, w.balance)
          FROM wallets w
         WHERE w.kind = 'PLAYER' AND w.balance > _wallet_max_amount();

    RETURN QUERY
        SELECT 'entry_hash_mismatch', c.id::text,
               format('entry of wallet %s (%s, %s) in transaction %s (reference %s) does not match its hash chain',
                      c.wallet_id, c.user_id, c.asset_code, c.transaction_id, c.reference_id)
          FROM (SELECT e.id, e.wallet_id, w.user_id, w.asset_code, e.transaction_id, t.reference_id, e.entry_hash,
                       _wallet_entry_hash(lag(e.entry_hash) OVER (PARTITION BY e.wallet_id ORDER BY e.id),
                                          t, e.wallet_id, e.amount, e.balance_after) AS expected
                  FROM ledger_entries e
                  JOIN wallets w ON w.id = e.wallet_id AND w.kind = 'PLAYER'
                  JOIN transactions t ON t.id = e.transaction_id) c
         WHERE c.entry_hash IS DISTINCT FROM c.expected;

    RETURN QUERY
        SELECT 'chain_head_mismatch', w.id::text,
               format('wallet of %s in %s: chain_head is not the hash of its newest entry', w.user_id, w.asset_code)
          FROM wallets w
         WHERE w.kind = 'PLAYER'
           AND w.chain_head IS DISTINCT FROM (SELECT e.entry_hash FROM ledger_entries e
                                               WHERE e.wallet_id = w.id ORDER BY e.id DESC LIMIT 1);
END;
$$;
