-- _wallet_post_legs: write the ledger entries of a transaction that moves one or more assets between a
-- player and one kind of system wallet (purchases, reversals, captures).
-- Arguments: p_tx (the transactions row, already inserted), p_wallet_ids (the player's wallets, one per asset,
--   locked by the caller), p_amounts (the signed amount for each of those wallets: < 0 debits the player),
--   p_system_kind (TREASURY, BONUS_POOL or REVENUE: receives or gives the opposite amount in each asset).
-- Returns: rows (asset_code, amount, balance): per leg the positive amount and the player's new balance.
-- Raises: nothing of its own; the caller has checked funds and limits (the wallet_balance domain refuses a
--   balance out of range regardless).
-- Each player wallet's balance and chain head are updated, then all entries go in with one INSERT (the
-- ledger's trigger requires each INSERT to sum to zero per transaction and asset).
CREATE OR REPLACE FUNCTION _wallet_post_legs(p_tx transactions, p_wallet_ids bigint[], p_amounts bigint[],
                                             p_system_kind wallet_kind)
RETURNS TABLE (asset_code text, amount bigint, balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_assets text[] := ARRAY[]::text[];
    v_balances bigint[] := ARRAY[]::bigint[];
    v_hashes bytea[] := ARRAY[]::bytea[];
    v_wallet wallets;
    v_new_balance bigint;
    v_hash bytea;
BEGIN
    FOR i IN 1 .. cardinality(p_wallet_ids) LOOP
        SELECT w.* INTO STRICT v_wallet FROM wallets w WHERE w.id = p_wallet_ids[i];
        v_new_balance := v_wallet.balance + p_amounts[i];
        v_hash := _wallet_entry_hash(v_wallet.chain_head, p_tx, v_wallet.id, p_amounts[i], v_new_balance);
        UPDATE wallets w SET balance = v_new_balance, updated_at = p_tx.created_at, chain_head = v_hash
         WHERE w.id = v_wallet.id;
        v_assets := v_assets || v_wallet.asset_code;
        v_balances := v_balances || v_new_balance;
        v_hashes := v_hashes || v_hash;
    END LOOP;

    INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after, created_at, entry_hash)
    SELECT p_tx.id, l.wallet_id, l.asset_code, l.amount, l.balance, p_tx.created_at, l.hash
      FROM unnest(p_wallet_ids, v_assets, p_amounts, v_balances, v_hashes) AS l (wallet_id, asset_code, amount, balance, hash)
    UNION ALL
    SELECT p_tx.id, s.id, l.asset_code, -l.amount, NULL, p_tx.created_at, NULL
      FROM unnest(v_assets, p_amounts) AS l (asset_code, amount)
      JOIN wallets s ON s.asset_code = l.asset_code AND s.kind = p_system_kind AND s.kind <> 'PLAYER';

    RETURN QUERY SELECT l.asset_code, abs(l.amount), l.balance
                   FROM unnest(v_assets, p_amounts, v_balances) AS l (asset_code, amount, balance)
                  ORDER BY l.asset_code;
END;
$$;
