-- _wallet_claim_key: serialize every writer of one reference id, and refuse a key a hold already has.
-- Postings keep their keys unique through transactions' unique index, holds through holds'; this advisory
-- lock (held until commit, taken by every posting and hold before it locks any wallet) makes "unique across
-- both tables" hold too: whoever takes it second sees the first one's committed row.
-- Arguments: p_reference_id; p_for_hold (true when a hold claims it: then a transaction holding it conflicts).
-- Returns: nothing. Raises: WL004 when the key is the other table's.
CREATE OR REPLACE FUNCTION _wallet_claim_key(p_reference_id text, p_for_hold boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_tx_id uuid;
    v_hold holds;
BEGIN
    -- (1464615748: 'WALL', the advisory lock namespace of reference ids)
    PERFORM pg_advisory_xact_lock(1464615748, hashtext(p_reference_id));
    IF p_for_hold THEN
        SELECT t.id INTO v_tx_id FROM transactions t WHERE t.reference_id = p_reference_id;
        IF FOUND THEN
            RAISE EXCEPTION 'reference id % already belongs to transaction %, not to a new hold', p_reference_id, v_tx_id
                USING ERRCODE = 'WL004',
                      DETAIL = json_build_object('reference_id', p_reference_id, 'transaction_id', v_tx_id)::text;
        END IF;
    ELSE
        SELECT h.* INTO v_hold FROM holds h WHERE h.reference_id = p_reference_id;
        IF FOUND THEN
            RAISE EXCEPTION 'reference id % already belongs to a hold of % % for %',
                p_reference_id, v_hold.amount, v_hold.asset_code, v_hold.user_id
                USING ERRCODE = 'WL004',
                      DETAIL = json_build_object('reference_id', p_reference_id,
                                                 'hold_reference_id', v_hold.reference_id)::text;
        END IF;
    END IF;
END;
$$;
