-- wallet_transaction: one transaction by its reference id, one row per ledger entry.
-- Arguments: p_reference_id.
-- Returns: rows (transaction_id, reference_id, status, type, user_id, asset_code, amount, legs, created_at,
--   metadata, description, actor, db_role, item_id, original_reference_id, reason, entry_id, wallet_id,
--   wallet_name, entry_asset_code, entry_type, entry_amount), entry_type DEBIT or CREDIT and entry_amount
--   positive; the transaction's columns repeat on every row.
--   asset_code and amount are NULL for a purchase (and a purchase's reversal), which moves several assets:
--   legs lists [{asset_code, amount}] for every transaction (one leg for the others).
--   original_reference_id and reason: a reversal's original and why. A capture's reference id is its hold's.
--   actor: the API key's name, or the database role of a psql caller; db_role: the role that called.
-- Raises: WL005 transaction not found, WL006 invalid argument.
-- Example: SELECT * FROM wallet_transaction('init_alice_gold_001');
CREATE OR REPLACE FUNCTION wallet_transaction(p_reference_id text)
RETURNS TABLE (transaction_id uuid, reference_id text, status text, type transaction_type,
               user_id text, asset_code text, amount bigint, legs jsonb, created_at timestamptz, metadata jsonb,
               description text, actor text, db_role text, item_id text, original_reference_id text, reason text,
               entry_id bigint, wallet_id bigint, wallet_name text, entry_asset_code text, entry_type text,
               entry_amount bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM _wallet_check_id('reference_id', p_reference_id);
    RETURN QUERY
        SELECT t.id, t.reference_id::text, 'COMPLETED'::text, t.type, t.user_id::text, t.asset_code, t.amount::bigint,
               coalesce(t.legs, jsonb_build_array(jsonb_build_object('asset_code', t.asset_code, 'amount', t.amount))),
               t.created_at, t.metadata, t.description, t.actor, t.db_role, t.item_id::text,
               o.reference_id::text, t.reason::text,
               e.id, w.id, w.name, e.asset_code,
               CASE WHEN e.amount < 0 THEN 'DEBIT' ELSE 'CREDIT' END, abs(e.amount)
          FROM transactions t
          JOIN ledger_entries e ON e.transaction_id = t.id
          JOIN wallets w ON w.id = e.wallet_id
          LEFT JOIN transactions o ON o.id = t.original_id
         WHERE t.reference_id = p_reference_id
         ORDER BY e.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'transaction with reference id % not found', p_reference_id
            USING ERRCODE = 'WL005', DETAIL = json_build_object('reference_id', p_reference_id)::text;
    END IF;
END;
$$;
