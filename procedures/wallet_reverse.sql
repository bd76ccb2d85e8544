-- wallet_reverse: undo an earlier posting, in full or in part, with a new REVERSAL transaction.
--   spend, purchase:          REVENUE -> player (a refund; a purchase only whole, on every leg)
--   top-up, initial balance:  player -> TREASURY (a chargeback: the player must still have the credits)
--   bonus:                    player -> BONUS_POOL (a clawback)
-- Arguments: p_reference_id (the reversal's own idempotency key), p_original_reference_id (the posting to
--   undo), p_reason (why: stored, shown in history and lookups), p_amount (a part of a single-asset original;
--   default: all of it), p_metadata (JSON object, optional), p_actor (the API key's name when the service
--   calls; default: the calling role).
-- Returns: one row per leg, in asset order: (transaction_id, user_id, transaction_type, original_reference_id,
--   asset_code, amount, balance, created_at, replayed); replayed = true for the same request again (same
--   original, reason and amount).
-- Raises: WL001 a chargeback or clawback above what the player has available, WL004 idempotency conflict,
--   WL005 no posting has p_original_reference_id, WL006 invalid argument, WL007 a refund would pass the
--   balance limit, WL009 the reversals of the original would exceed it, WL010 not reversible (a reversal,
--   a hold or its capture, or a partial reversal of a purchase).
-- Locking: the key's advisory lock, then the original's player wallets in ascending id order; every
--   reversal of one original takes the same locks, so concurrent reversals never exceed it.
-- Example: SELECT * FROM wallet_reverse('refund_001', 'spend_001', 'item never delivered');
CREATE OR REPLACE FUNCTION wallet_reverse(
    p_reference_id text,
    p_original_reference_id text,
    p_reason text,
    p_amount bigint DEFAULT NULL,
    p_metadata jsonb DEFAULT NULL,
    p_actor text DEFAULT NULL)
RETURNS TABLE (transaction_id uuid, user_id text, transaction_type transaction_type,
               original_reference_id text, asset_code text, amount bigint, balance bigint,
               created_at timestamptz, replayed boolean)
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
SET lock_timeout = '2s'
AS $$
DECLARE
    v_original transactions;
    v_tx transactions;
    v_legs jsonb;          -- the reversal's legs [{asset_code, amount}], asset order
    v_sign bigint;         -- +1: the player is credited (a refund); -1: debited
    v_system_kind wallet_kind;
    v_wallet_ids bigint[];
    v_amounts bigint[];
    v_wallet record;
    v_reversed bigint;
    v_now timestamptz;
    v_held bigint;
    v_new boolean := false;
BEGIN
    PERFORM _wallet_check_id('reference_id', p_reference_id);
    PERFORM _wallet_check_id('original_reference_id', p_original_reference_id);
    PERFORM _wallet_check_id('reason', p_reason);
    PERFORM _wallet_check_id('actor', p_actor, false);
    PERFORM _wallet_check_amount('amount', p_amount, p_required => false);
    IF p_metadata IS NOT NULL AND jsonb_typeof(p_metadata) <> 'object' THEN
        PERFORM _wallet_invalid_argument('metadata', 'must be a JSON object');
    END IF;

    -- the original, and what this request asks to reverse of it
    SELECT t.* INTO v_original FROM transactions t WHERE t.reference_id = p_original_reference_id;
    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM holds h WHERE h.reference_id = p_original_reference_id) THEN
            RAISE EXCEPTION 'hold % is not a posting and cannot be reversed: void it instead',
                p_original_reference_id
                USING ERRCODE = 'WL010',
                      DETAIL = json_build_object('original_reference_id', p_original_reference_id,
                                                 'reason', 'hold')::text;
        END IF;
        RAISE EXCEPTION 'transaction with reference id % not found', p_original_reference_id
            USING ERRCODE = 'WL005', DETAIL = json_build_object('reference_id', p_original_reference_id)::text;
    END IF;
    IF v_original.type = 'CAPTURE' THEN
        -- a capture posts under its hold's reference id, and a hold is settled by capture or void, not reversed
        RAISE EXCEPTION 'transaction % is the capture of hold %, and a hold''s capture cannot be reversed',
            p_original_reference_id, p_original_reference_id
            USING ERRCODE = 'WL010',
                  DETAIL = json_build_object('original_reference_id', p_original_reference_id,
                                             'reason', 'hold')::text;
    END IF;
    IF v_original.type = 'REVERSAL' THEN
        RAISE EXCEPTION 'transaction % is a reversal, and a reversal cannot be reversed', p_original_reference_id
            USING ERRCODE = 'WL010',
                  DETAIL = json_build_object('original_reference_id', p_original_reference_id,
                                             'reason', 'reversal')::text;
    END IF;
    IF v_original.legs IS NOT NULL THEN
        IF p_amount IS NOT NULL THEN
            RAISE EXCEPTION 'purchase % can only be reversed whole (on every leg): leave the amount out',
                p_original_reference_id
                USING ERRCODE = 'WL010',
                      DETAIL = json_build_object('original_reference_id', p_original_reference_id,
                                                 'reason', 'partial_purchase')::text;
        END IF;
        v_legs := v_original.legs;
    ELSE
        IF p_amount > v_original.amount THEN
            RAISE EXCEPTION 'cannot reverse % % of transaction %, which moved only %',
                p_amount, v_original.asset_code, p_original_reference_id, v_original.amount
                USING ERRCODE = 'WL009',
                      DETAIL = json_build_object('original_reference_id', p_original_reference_id,
                                                 'asset_code', v_original.asset_code,
                                                 'original_amount', v_original.amount,
                                                 'reversed', (SELECT coalesce(sum(r.amount), 0) FROM transactions r
                                                               WHERE r.original_id = v_original.id),
                                                 'requested', p_amount)::text;
        END IF;
        v_legs := jsonb_build_array(jsonb_build_object('asset_code', v_original.asset_code,
                                                       'amount', coalesce(p_amount, v_original.amount)));
    END IF;
    SELECT d.sign * -1, d.system_kind INTO v_sign, v_system_kind FROM _wallet_direction(v_original.type) d;

    -- a retried key is answered from the transaction that holds it
    SELECT t.* INTO v_tx FROM transactions t WHERE t.reference_id = p_reference_id;
    IF NOT FOUND THEN
        PERFORM _wallet_claim_key(p_reference_id);
        -- the original's player wallets, locked in ascending id order
        SELECT array_agg(w.id ORDER BY w.id) INTO v_wallet_ids
          FROM (SELECT w.id FROM wallets w
                 WHERE w.id IN (SELECT e.wallet_id FROM ledger_entries e
                                 WHERE e.transaction_id = v_original.id AND e.balance_after IS NOT NULL)
                 ORDER BY w.id
                   FOR UPDATE) w;
        v_now := clock_timestamp();
        INSERT INTO transactions AS t (reference_id, type, user_id, asset_code, amount, legs, original_id, reason,
                                       metadata, actor, description, created_at)
        VALUES (p_reference_id, 'REVERSAL', v_original.user_id,
                v_original.asset_code, CASE WHEN v_original.legs IS NULL THEN (v_legs->0->>'amount')::bigint END,
                v_original.legs, v_original.id, p_reason, p_metadata, coalesce(p_actor, session_user),
                format('Reversal of %s %s: %s', v_original.type, v_original.reference_id, p_reason), v_now)
        ON CONFLICT (reference_id) DO NOTHING
        RETURNING t.* INTO v_tx;
        v_new := FOUND;
        IF NOT v_new THEN
            SELECT t.* INTO STRICT v_tx FROM transactions t WHERE t.reference_id = p_reference_id;
        END IF;
    END IF;

    IF NOT v_new THEN
        -- the key was taken: the same reversal is replayed, anything else is a conflict
        IF v_tx.type <> 'REVERSAL' OR v_tx.original_id <> v_original.id OR v_tx.reason <> p_reason
           OR coalesce(v_tx.legs, jsonb_build_array(jsonb_build_object('asset_code', v_tx.asset_code,
                                                                       'amount', v_tx.amount))) <> v_legs THEN
            RAISE EXCEPTION 'reference id % already belongs to transaction % (% of % for %), not to this reversal of %',
                v_tx.reference_id, v_tx.id, v_tx.type, coalesce(v_tx.amount::text, 'several assets'), v_tx.user_id,
                p_original_reference_id
                USING ERRCODE = 'WL004',
                      DETAIL = json_build_object('reference_id', v_tx.reference_id, 'transaction_id', v_tx.id)::text;
        END IF;
        RETURN QUERY
            SELECT v_tx.id, v_tx.user_id::text, v_tx.type, v_original.reference_id::text, l.asset_code, l.amount,
                   l.balance, v_tx.created_at, true
              FROM _wallet_leg_rows(v_tx.id) l;
        RETURN;
    END IF;

    -- under the locks: what earlier reversals took back, then funds or limit, leg by leg
    v_wallet_ids := ARRAY[]::bigint[];
    v_amounts := ARRAY[]::bigint[];
    FOR v_wallet IN
        SELECT w.id, w.asset_code, w.balance, w.holds_until, (l->>'amount')::bigint AS amount,
               coalesce(o.amount, v_original.amount) AS original_amount
          FROM jsonb_array_elements(v_legs) l
          JOIN wallets w ON w.user_id = v_original.user_id AND w.asset_code = l->>'asset_code'
          LEFT JOIN LATERAL (SELECT (ol->>'amount')::bigint AS amount FROM jsonb_array_elements(v_original.legs) ol
                              WHERE ol->>'asset_code' = l->>'asset_code') o ON true
         ORDER BY w.asset_code
    LOOP
        SELECT coalesce(sum(abs(e.amount)), 0)::bigint INTO v_reversed
          FROM transactions r JOIN ledger_entries e ON e.transaction_id = r.id
         WHERE r.original_id = v_original.id AND r.id <> v_tx.id
           AND e.wallet_id = v_wallet.id AND e.balance_after IS NOT NULL;
        IF v_reversed + v_wallet.amount > v_wallet.original_amount THEN
            RAISE EXCEPTION 'cannot reverse % % of transaction %: % of its % are reversed already',
                v_wallet.amount, v_wallet.asset_code, p_original_reference_id, v_reversed, v_wallet.original_amount
                USING ERRCODE = 'WL009',
                      DETAIL = json_build_object('original_reference_id', p_original_reference_id,
                                                 'asset_code', v_wallet.asset_code,
                                                 'original_amount', v_wallet.original_amount,
                                                 'reversed', v_reversed, 'requested', v_wallet.amount)::text;
        END IF;
        IF v_sign < 0 THEN
            v_held := _wallet_held(v_wallet.id, v_wallet.holds_until, v_now);
            IF v_wallet.balance - v_held < v_wallet.amount THEN
                PERFORM _wallet_insufficient_funds(v_original.user_id, v_wallet.asset_code, v_wallet.amount,
                                                   v_wallet.balance - v_held, v_held, 'give back');
            END IF;
        ELSIF v_wallet.balance > _wallet_max_amount() - v_wallet.amount THEN
            PERFORM _wallet_balance_limit_exceeded(v_original.user_id, v_wallet.asset_code, v_wallet.balance,
                                                   v_wallet.amount);
        END IF;
        v_wallet_ids := v_wallet_ids || v_wallet.id;
        v_amounts := v_amounts || v_sign * v_wallet.amount;
    END LOOP;

    RETURN QUERY
        SELECT v_tx.id, v_tx.user_id::text, v_tx.type, v_original.reference_id::text, l.asset_code, l.amount,
               l.balance, v_tx.created_at, false
          FROM _wallet_post_legs(v_tx, v_wallet_ids, v_amounts, v_system_kind) l;
END;
$$;
