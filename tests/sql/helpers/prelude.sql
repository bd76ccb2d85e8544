-- Helpers for every pgTAP file in tests/sql/: tests/test_pgtap.py runs this on the file's own
-- connection first, so these session-temporary functions are there for the whole file.

-- the error a statement raises, as JSON (sqlstate, message, detail, column); NULL when it raises none
CREATE FUNCTION pg_temp.error_of(p_sql text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_state text; v_message text; v_detail text; v_column text;
BEGIN
    EXECUTE p_sql;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_column = COLUMN_NAME;
    RETURN jsonb_build_object('sqlstate', v_state, 'message', v_message, 'detail', v_detail, 'column', v_column);
END;
$$;

-- a player's wallet id
CREATE FUNCTION pg_temp.wallet_of(p_user_id text, p_asset_code text) RETURNS bigint
LANGUAGE sql AS $$ SELECT id FROM wallets WHERE user_id = p_user_id AND asset_code = p_asset_code $$;
-- a system wallet's id
CREATE FUNCTION pg_temp.system_wallet(p_asset_code text, p_kind wallet_kind) RETURNS bigint
LANGUAGE sql AS $$ SELECT id FROM wallets WHERE asset_code = p_asset_code AND kind = p_kind $$;
-- the id of the transaction holding a reference id
CREATE FUNCTION pg_temp.tx(p_reference_id text) RETURNS uuid
LANGUAGE sql AS $$ SELECT id FROM transactions WHERE reference_id = p_reference_id $$;
-- the entry_hash a player entry about to be inserted needs: chained to its wallet's newest entry and
-- covering the (already inserted) transaction, as _wallet_post computes it
CREATE FUNCTION pg_temp.chain(p_transaction_id uuid, p_wallet_id bigint, p_amount bigint, p_balance_after bigint)
RETURNS bytea LANGUAGE sql AS $$
    SELECT _wallet_entry_hash(
        (SELECT e.entry_hash FROM ledger_entries e WHERE e.wallet_id = p_wallet_id ORDER BY e.id DESC LIMIT 1),
        (SELECT t FROM transactions t WHERE t.id = p_transaction_id), p_wallet_id, p_amount, p_balance_after)
$$;
-- after a manual posting: the wallet's chain_head becomes its newest entry's hash, as _wallet_post keeps it
CREATE FUNCTION pg_temp.advance_head(p_wallet_id bigint) RETURNS void
LANGUAGE sql AS $$
    UPDATE wallets SET chain_head = (SELECT e.entry_hash FROM ledger_entries e
                                      WHERE e.wallet_id = p_wallet_id ORDER BY e.id DESC LIMIT 1)
     WHERE id = p_wallet_id
$$;
-- a manual posting's entries for a transaction row already inserted, as the functions write them: the player's
-- wallet moves by p_amount (stored balance, entry with balance_after chained to the wallet's newest, chain
-- head) and p_system_wallet_id by the opposite amount; every trigger accepts it
CREATE FUNCTION pg_temp.post_entries(p_transaction_id uuid, p_wallet_id bigint, p_amount bigint,
                                     p_system_wallet_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_balance bigint;
    v_asset text;
BEGIN
    UPDATE wallets SET balance = balance + p_amount WHERE id = p_wallet_id RETURNING balance, asset_code
      INTO v_balance, v_asset;
    INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after, entry_hash)
    VALUES (p_transaction_id, p_wallet_id, v_asset, p_amount, v_balance,
            pg_temp.chain(p_transaction_id, p_wallet_id, p_amount, v_balance)),
           (p_transaction_id, p_system_wallet_id, v_asset, -p_amount, NULL, NULL);
    PERFORM pg_temp.advance_head(p_wallet_id);
END;
$$;
