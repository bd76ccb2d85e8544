-- wallet_transaction: one transaction by its reference id, one row per ledger entry.
-- Arguments: p_reference_id.
-- Returns: rows (transaction_id, reference_id, status, type, user_id, asset_code, amount, created_at,
--   metadata, description, actor, db_role, entry_id, wallet_id, wallet_name, entry_type, entry_amount),
--   entry_type DEBIT or CREDIT and entry_amount positive; the transaction's columns repeat on every row.
--   actor: the API key's name, or the database role of a psql caller; db_role: the role that called.
-- Raises: WL005 transaction not found, WL006 invalid argument.
-- Example: SELECT * FROM wallet_transaction('init_alice_gold_001');
CREATE OR REPLACE FUNCTION wallet_transaction(p_reference_id text)
RETURNS TABLE (transaction_id uuid, reference_id text, status text, type transaction_type,
               user_id text, asset_code text, amount bigint, created_at timestamptz, metadata jsonb,
               description text, actor text, db_role text, entry_id bigint, wallet_id bigint, wallet_name text,
               entry_type text, entry_amount bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM _wallet_check_id('reference_id', p_reference_id);
    RETURN QUERY
        SELECT t.id, t.reference_id::text, 'COMPLETED'::text, t.type, t.user_id::text, t.asset_code, t.amount::bigint,
               t.created_at, t.metadata, t.description, t.actor, t.db_role, e.id, w.id, w.name,
               CASE WHEN e.amount < 0 THEN 'DEBIT' ELSE 'CREDIT' END, abs(e.amount)
          FROM transactions t
          JOIN ledger_entries e ON e.transaction_id = t.id
          JOIN wallets w ON w.id = e.wallet_id
         WHERE t.reference_id = p_reference_id
         ORDER BY e.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'transaction with reference id % not found', p_reference_id
            USING ERRCODE = 'WL005', DETAIL = json_build_object('reference_id', p_reference_id)::text;
    END IF;
END;
$$;
