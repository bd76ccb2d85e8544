-- wallet_post_batch: apply many top-ups, bonuses and spends in one call and one commit, each exactly as its
-- single function (wallet_topup, wallet_bonus, wallet_spend) would have applied it, one after another in the
-- order given: each idempotent by its own reference id, each with its own result or error (one refusal never
-- fails the rest; a reference id used twice in the batch is a replay of its first posting, or WL004).
-- Arguments: p_operations: a JSON array of 1 .. _wallet_max_batch() objects {operation: "topup" | "bonus" |
--   "spend", user_id, asset_code, amount (a JSON integer), reference_id, payment_method (topup, optional) |
--   bonus_type (bonus) | item_id (spend), metadata (a JSON object, optional)}; p_actor (as the single functions').
-- Returns: one row per operation, in order (ordinal 1..n): the wallet_posting columns (replayed = true when
--   the key had already posted this same request) and sqlstate NULL; or, for a refused operation, NULL
--   posting columns and the error its single function raises: sqlstate (WL001..WL007), message, detail
--   (the DETAIL JSON) and field (the COLUMN of a WL006).
-- Raises: WL006 (field operations or actor) when p_operations is not such an array or p_actor is invalid;
--   lock_not_available (55P03) when a wallet stays locked past lock_timeout, serialization_failure (40001)
--   when a wallet the batch opens was opened by a concurrent call at the same moment: nothing is written,
--   and the same call again is safe.
-- Locking: one advisory lock per new reference id (_wallet_claim_key's, in ascending lock order), then every
-- player wallet the batch touches, in ascending id order; inserts are set-based (one statement per table).
-- Example: SELECT * FROM wallet_post_batch('[{"operation": "bonus", "user_id": "user_alice",
--   "asset_code": "GOLD_COINS", "amount": 100, "reference_id": "season-7-alice", "bonus_type": "SEASON"}]');
CREATE OR REPLACE FUNCTION wallet_post_batch(p_operations jsonb, p_actor text DEFAULT NULL)
RETURNS TABLE (ordinal integer, transaction_id uuid, user_id text, asset_code text, amount bigint,
               balance bigint, transaction_type transaction_type, created_at timestamptz, replayed boolean,
               sqlstate text, message text, detail jsonb, field text)
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
SET lock_timeout = '2s'
AS $$
DECLARE
    v_count integer;
    -- per operation, indexed by ordinal
    v_type transaction_type[];
    v_user text[];
    v_asset text[];
    v_amount bigint[];
    v_ref text[];
    v_pm text[];
    v_bt text[];
    v_item text[];
    v_meta jsonb[];
    v_valid boolean[];
    v_state text[];          -- NULL pending, 'ok' posted here, 'replay' (the key has a transaction), 'error'
    v_err_state text[];      -- the error of an 'error' operation: SQLSTATE, message, DETAIL, COLUMN
    v_err_message text[];
    v_err_detail jsonb[];
    v_err_field text[];
    v_after bigint[];        -- the balance an 'ok' operation leaves
    v_slot integer[];        -- the operation's wallet: an index into the per-wallet arrays
    v_player integer[];      -- the operation's player: an index into v_known
    v_key integer[];         -- the operation's reference id: an index into v_key_owner
    -- per wallet (user_id, asset_code) of the pending operations, in (user_id, asset_code) order
    w_user text[];
    w_asset text[];
    w_id bigint[];
    w_balance bigint[];
    w_head bytea[];
    w_held bigint[];
    w_holds_until timestamptz[];
    w_used boolean[];        -- posted to by this batch
    -- per player, and per reference id
    v_known boolean[];       -- the player has a wallet (in the ledger, or opened by an earlier operation)
    v_key_owner integer[];   -- the operation that posted the reference id in this batch
    -- the postings, in order
    v_ok integer[];
    v_ok_at integer[];       -- per operation: its index in v_ok
    o_type transaction_type[];  -- per posting (index into v_ok): its fields, wallet, signed amount, system side
    o_ref text[];
    o_user text[];
    o_asset text[];
    o_pm text[];
    o_bt text[];
    o_item text[];
    o_meta jsonb[];
    o_amount bigint[];
    o_signed bigint[];
    o_after bigint[];
    o_wallet bigint[];
    o_kind wallet_kind[];
    v_txs transactions[];
    e_hash bytea[];          -- per posting: its transaction id, its player entry's hash
    e_tx uuid[];
    v_now timestamptz;
    v_s integer;
    v_tx transactions;
    v_posting wallet_posting;
    c_state text;            -- an error caught by _wallet_refusal (c_state NULL: none)
    c_message text;
    c_detail jsonb;
    c_field text;
    v_opened bigint;
BEGIN
    v_count := _wallet_check_batch_call(p_operations, p_actor);

    -- 1. every operation's fields, and whether all of them are valid (one expression per operation)
    SELECT array_agg(o.type ORDER BY o.n), array_agg(o.user_id ORDER BY o.n), array_agg(o.asset_code ORDER BY o.n),
           array_agg(o.amount ORDER BY o.n), array_agg(o.reference_id ORDER BY o.n),
           array_agg(o.payment_method ORDER BY o.n), array_agg(o.bonus_type ORDER BY o.n),
           array_agg(o.item_id ORDER BY o.n), array_agg(o.metadata ORDER BY o.n),
           array_agg(o.shape_ok AND _wallet_posting_valid(o.type, o.user_id, o.asset_code, o.amount, o.reference_id,
                                                          o.payment_method, o.bonus_type, o.item_id, o.metadata,
                                                          p_actor) ORDER BY o.n)
      INTO v_type, v_user, v_asset, v_amount, v_ref, v_pm, v_bt, v_item, v_meta, v_valid
      FROM (SELECT e.n, t.type,
                   CASE WHEN jsonb_typeof(e.item -> 'user_id') = 'string' THEN e.item ->> 'user_id' END AS user_id,
                   CASE WHEN jsonb_typeof(e.item -> 'asset_code') = 'string' THEN e.item ->> 'asset_code' END AS asset_code,
                   CASE WHEN jsonb_typeof(e.item -> 'amount') = 'number' AND (e.item ->> 'amount') ~ '^-?[0-9]{1,18}$'
                        THEN (e.item ->> 'amount')::bigint END AS amount,
                   CASE WHEN jsonb_typeof(e.item -> 'reference_id') = 'string' THEN e.item ->> 'reference_id' END AS reference_id,
                   CASE WHEN t.type = 'TOPUP' THEN e.item ->> 'payment_method' END AS payment_method,
                   CASE WHEN t.type = 'BONUS' THEN e.item ->> 'bonus_type' END AS bonus_type,
                   CASE WHEN t.type = 'SPEND' THEN e.item ->> 'item_id' END AS item_id,
                   CASE WHEN jsonb_typeof(e.item) = 'object' THEN nullif(e.item -> 'metadata', 'null'::jsonb) END AS metadata,
                   -- no field but the operation's, each of its JSON type (or null)
                   CASE WHEN jsonb_typeof(e.item) = 'object' AND t.type IS NOT NULL
                        THEN (e.item - ARRAY['operation', 'user_id', 'asset_code', 'amount', 'reference_id', 'metadata',
                                             t.own_field]) = '{}'::jsonb
                             AND coalesce(jsonb_typeof(e.item -> 'user_id'), 'null') IN ('string', 'null')
                             AND coalesce(jsonb_typeof(e.item -> 'asset_code'), 'null') IN ('string', 'null')
                             AND coalesce(jsonb_typeof(e.item -> 'reference_id'), 'null') IN ('string', 'null')
                             AND coalesce(jsonb_typeof(e.item -> t.own_field), 'null') IN ('string', 'null')
                             AND coalesce(jsonb_typeof(e.item -> 'amount'), 'null') IN ('number', 'null')
                        ELSE false END AS shape_ok
              FROM jsonb_array_elements(p_operations) WITH ORDINALITY AS e (item, n)
              CROSS JOIN LATERAL (
                    SELECT CASE WHEN jsonb_typeof(e.item) = 'object' THEN
                               CASE e.item ->> 'operation' WHEN 'topup' THEN 'TOPUP'::transaction_type
                                                           WHEN 'bonus' THEN 'BONUS'::transaction_type
                                                           WHEN 'spend' THEN 'SPEND'::transaction_type END
                           END AS type) tt
              CROSS JOIN LATERAL (
                    SELECT tt.type,
                           CASE tt.type WHEN 'TOPUP' THEN 'payment_method' WHEN 'BONUS' THEN 'bonus_type'
                                        WHEN 'SPEND' THEN 'item_id' END AS own_field) t) o;

    v_state := array_fill(NULL::text, ARRAY[v_count]);
    v_err_state := array_fill(NULL::text, ARRAY[v_count]);
    v_err_message := v_err_state;
    v_err_detail := array_fill(NULL::jsonb, ARRAY[v_count]);
    v_err_field := v_err_state;
    v_ok_at := array_fill(NULL::integer, ARRAY[v_count]);
    v_after := array_fill(NULL::bigint, ARRAY[v_count]);

    -- 2. an invalid operation: its precise error (the slow path, one statement per invalid operation)
    FOR i IN 1 .. v_count LOOP
        IF NOT v_valid[i] THEN
            SELECT * INTO c_state, c_message, c_detail, c_field
              FROM _wallet_refusal('check_item', jsonb_build_object('item', p_operations -> (i - 1)));
            IF c_state IS NULL THEN
                RAISE EXCEPTION 'wallet_post_batch: operation % failed the batch check but passed the single one', i;
            END IF;
            v_state[i] := 'error';
            v_err_state[i] := c_state; v_err_message[i] := c_message; v_err_detail[i] := c_detail; v_err_field[i] := c_field;
        END IF;
    END LOOP;

    -- 3. a key that already has a transaction is answered from it (step 11), without a lock, like the single
    --    functions do
    FOR v_s IN
        SELECT k.i::integer FROM unnest(v_ref, v_state) WITH ORDINALITY AS k (ref, s, i)
         WHERE k.s IS NULL AND EXISTS (SELECT 1 FROM transactions t WHERE t.reference_id = k.ref)
    LOOP
        v_state[v_s] := 'replay';
    END LOOP;

    -- 4. the other keys: their advisory locks (_wallet_claim_key's), in ascending order so that two batches
    --    never wait for each other crosswise; then, under the locks, keys a concurrent call has just posted
    --    are replays too, and a key a hold has is refused (WL004, _wallet_claim_key's error)
    PERFORM pg_advisory_xact_lock(1464615748, l.h)
       FROM (SELECT DISTINCT hashtext(k.ref) AS h
               FROM unnest(v_ref, v_state) AS k (ref, s)
              WHERE k.s IS NULL
              ORDER BY 1) l;
    FOR v_s IN
        SELECT k.i::integer FROM unnest(v_ref, v_state) WITH ORDINALITY AS k (ref, s, i)
         WHERE k.s IS NULL
           AND (EXISTS (SELECT 1 FROM transactions t WHERE t.reference_id = k.ref)
                OR EXISTS (SELECT 1 FROM holds h WHERE h.reference_id = k.ref))
    LOOP
        SELECT * INTO c_state, c_message, c_detail, c_field
          FROM _wallet_refusal('claim_key', jsonb_build_object('reference_id', v_ref[v_s]));
        IF c_state IS NULL THEN
            v_state[v_s] := 'replay';
        ELSE
            v_state[v_s] := 'error';
            v_err_state[v_s] := c_state; v_err_message[v_s] := c_message; v_err_detail[v_s] := c_detail;
            v_err_field[v_s] := c_field;
        END IF;
    END LOOP;

    -- 5. an unknown asset (WL003, _wallet_require_asset's error)
    FOR v_s IN
        SELECT k.i::integer FROM unnest(v_asset, v_state) WITH ORDINALITY AS k (asset_code, s, i)
         WHERE k.s IS NULL AND NOT EXISTS (SELECT 1 FROM assets a WHERE a.code = k.asset_code)
    LOOP
        SELECT * INTO c_state, c_message, c_detail, c_field
          FROM _wallet_refusal('require_asset', jsonb_build_object('asset_code', v_asset[v_s]));
        v_state[v_s] := 'error';
        v_err_state[v_s] := c_state; v_err_message[v_s] := c_message; v_err_detail[v_s] := c_detail;
        v_err_field[v_s] := c_field;
    END LOOP;

    -- 6. the wallets of the pending operations: lock those that exist, in ascending id order, and read them
    --    (a row locked FOR UPDATE is read as the latest commit left it)
    WITH locked AS (
        SELECT w.id, w.user_id, w.asset_code, w.balance, w.chain_head, w.holds_until
          FROM wallets w
         WHERE (w.user_id, w.asset_code) IN (SELECT k.u, k.a FROM unnest(v_user, v_asset, v_state) AS k (u, a, s)
                                              WHERE k.s IS NULL)
         ORDER BY w.id
           FOR UPDATE)
    SELECT coalesce(array_agg(k.u ORDER BY k.u, k.a), '{}'), coalesce(array_agg(k.a ORDER BY k.u, k.a), '{}'),
           coalesce(array_agg(w.id ORDER BY k.u, k.a), '{}'),
           coalesce(array_agg(coalesce(w.balance, 0) ORDER BY k.u, k.a), '{}'),
           coalesce(array_agg(w.chain_head ORDER BY k.u, k.a), '{}'),
           coalesce(array_agg(w.holds_until ORDER BY k.u, k.a), '{}')
      INTO w_user, w_asset, w_id, w_balance, w_head, w_holds_until
      FROM (SELECT DISTINCT o.u, o.a FROM unnest(v_user, v_asset, v_state) AS o (u, a, s) WHERE o.s IS NULL) k
      LEFT JOIN locked w ON w.user_id = k.u AND w.asset_code = k.a;
    w_used := array_fill(false, ARRAY[cardinality(w_id)]);
    -- the postings' time, read under the locks (within a wallet, later entries never have earlier times), and
    -- what active holds reserve of each wallet then
    v_now := clock_timestamp();
    w_held := array_fill(0::bigint, ARRAY[cardinality(w_id)]);
    FOR s IN 1 .. cardinality(w_id) LOOP
        IF w_holds_until[s] > v_now THEN
            w_held[s] := _wallet_held(w_id[s], w_holds_until[s], v_now);
        END IF;
    END LOOP;

    -- each pending operation's wallet, player and key as indexes; whether each player has a wallet
    SELECT array_agg(s.slot::integer ORDER BY o.i), array_agg(o.player::integer ORDER BY o.i),
           array_agg(o.key::integer ORDER BY o.i)
      INTO v_slot, v_player, v_key
      FROM (SELECT k.i, k.u, k.a, dense_rank() OVER (ORDER BY k.u) AS player, dense_rank() OVER (ORDER BY k.r) AS key
              FROM unnest(v_user, v_asset, v_ref) WITH ORDINALITY AS k (u, a, r, i)) o
      LEFT JOIN unnest(w_user, w_asset) WITH ORDINALITY AS s (u, a, slot) ON s.u = o.u AND s.a = o.a;
    SELECT array_agg(EXISTS (SELECT 1 FROM wallets w WHERE w.user_id = p.u) ORDER BY p.player)
      INTO v_known
      FROM (SELECT DISTINCT k.u, k.player FROM unnest(v_user, v_player) AS k (u, player)) p;
    v_key_owner := array_fill(NULL::integer, ARRAY[v_count]);

    -- 7. the operations one after another, against the locked balances
    FOR i IN 1 .. v_count LOOP
        CONTINUE WHEN v_state[i] IS NOT NULL;
        IF v_key_owner[v_key[i]] IS NOT NULL THEN
            v_state[i] := 'replay';  -- of the earlier operation of this batch that posted the key
            CONTINUE;
        END IF;
        v_s := v_slot[i];
        IF v_type[i] = 'SPEND' THEN
            IF w_id[v_s] IS NULL AND NOT w_used[v_s] AND NOT v_known[v_player[i]] THEN
                SELECT * INTO c_state, c_message, c_detail, c_field
                  FROM _wallet_refusal('require_player', jsonb_build_object('user_id', v_user[i]));
            ELSIF w_balance[v_s] - w_held[v_s] < v_amount[i] THEN
                SELECT * INTO c_state, c_message, c_detail, c_field
                  FROM _wallet_refusal('insufficient_funds', jsonb_build_object(
                           'user_id', v_user[i], 'asset_code', v_asset[i], 'required', v_amount[i],
                           'available', w_balance[v_s] - w_held[v_s], 'held', w_held[v_s]));
            ELSE
                c_state := NULL;
            END IF;
        ELSIF w_balance[v_s] > _wallet_max_amount() - v_amount[i] THEN
            SELECT * INTO c_state, c_message, c_detail, c_field
              FROM _wallet_refusal('balance_limit_exceeded', jsonb_build_object(
                       'user_id', v_user[i], 'asset_code', v_asset[i], 'balance', w_balance[v_s],
                       'amount', v_amount[i]));
        ELSE
            c_state := NULL;
        END IF;
        IF c_state IS NOT NULL THEN
            v_state[i] := 'error';
            v_err_state[i] := c_state; v_err_message[i] := c_message; v_err_detail[i] := c_detail;
            v_err_field[i] := c_field;
            CONTINUE;
        END IF;
        w_balance[v_s] := w_balance[v_s] + CASE v_type[i] WHEN 'SPEND' THEN -v_amount[i] ELSE v_amount[i] END;
        w_used[v_s] := true;
        v_known[v_player[i]] := true;
        v_key_owner[v_key[i]] := i;
        v_after[i] := w_balance[v_s];
        v_state[i] := 'ok';
    END LOOP;

    -- the postings, in order, as arrays of their own (SQL reads an array by subscript in time linear in its
    -- length: the statements below read these with unnest instead)
    SELECT coalesce(array_agg(k.i::integer ORDER BY k.i), '{}') INTO v_ok
      FROM unnest(v_state) WITH ORDINALITY AS k (s, i) WHERE k.s = 'ok';
    IF cardinality(v_ok) > 0 THEN
        o_type := array_fill(NULL::transaction_type, ARRAY[cardinality(v_ok)]);
        o_ref := array_fill(NULL::text, ARRAY[cardinality(v_ok)]);
        o_user := o_ref; o_asset := o_ref; o_pm := o_ref; o_bt := o_ref; o_item := o_ref;
        o_meta := array_fill(NULL::jsonb, ARRAY[cardinality(v_ok)]);
        o_amount := array_fill(NULL::bigint, ARRAY[cardinality(v_ok)]);
        o_signed := o_amount; o_after := o_amount; o_wallet := o_amount;
        o_kind := array_fill(NULL::wallet_kind, ARRAY[cardinality(v_ok)]);
        FOR n IN 1 .. cardinality(v_ok) LOOP
            v_s := v_ok[n];
            v_ok_at[v_s] := n;
            o_type[n] := v_type[v_s]; o_ref[n] := v_ref[v_s]; o_user[n] := v_user[v_s]; o_asset[n] := v_asset[v_s];
            o_pm[n] := v_pm[v_s]; o_bt[n] := v_bt[v_s]; o_item[n] := v_item[v_s]; o_meta[n] := v_meta[v_s];
            o_amount[n] := v_amount[v_s]; o_after[n] := v_after[v_s];
            o_signed[n] := CASE v_type[v_s] WHEN 'SPEND' THEN -v_amount[v_s] ELSE v_amount[v_s] END;
            o_kind[n] := CASE v_type[v_s] WHEN 'TOPUP' THEN 'TREASURY'::wallet_kind
                                          WHEN 'BONUS' THEN 'BONUS_POOL'::wallet_kind
                                          ELSE 'REVENUE'::wallet_kind END;
        END LOOP;

        -- 8. open the wallets a first credit needs (a concurrent opener of the same wallet: retry the batch)
        WITH opened AS (
            INSERT INTO wallets AS w (asset_code, kind, user_id, name, balance)
            SELECT k.a, 'PLAYER', k.u, coalesce((SELECT o.name FROM wallets o WHERE o.user_id = k.u LIMIT 1), k.u), 0
              FROM unnest(w_user, w_asset, w_id, w_used) AS k (u, a, id, used)
             WHERE k.id IS NULL AND k.used
             ORDER BY k.u, k.a
            ON CONFLICT ON CONSTRAINT wallets_player_asset_key DO NOTHING
            RETURNING w.id, w.user_id, w.asset_code)
        SELECT count(*) INTO v_opened FROM opened;
        IF v_opened <> (SELECT count(*) FROM unnest(w_id, w_used) AS k (id, used) WHERE k.id IS NULL AND k.used) THEN
            RAISE EXCEPTION 'a wallet this batch opens was opened by a concurrent call; the same batch again is safe'
                USING ERRCODE = 'serialization_failure';
        END IF;
        SELECT array_agg(coalesce(k.id, w.id) ORDER BY k.slot) INTO w_id
          FROM unnest(w_user, w_asset, w_id) WITH ORDINALITY AS k (u, a, id, slot)
          LEFT JOIN wallets w ON k.id IS NULL AND w.user_id = k.u AND w.asset_code = k.a;
        FOR n IN 1 .. cardinality(v_ok) LOOP
            o_wallet[n] := w_id[v_slot[v_ok[n]]];
        END LOOP;

        -- 9. the transactions, in order (their event inbox rows follow the same order); their ids are drawn
        --    here so that each posting finds its row by primary key
        e_tx := ARRAY(SELECT gen_random_uuid() FROM generate_series(1, cardinality(v_ok)));
        INSERT INTO transactions AS t (id, reference_id, type, user_id, asset_code, amount, payment_method, bonus_type,
                                       item_id, metadata, actor, description, created_at)
        SELECT k.id, k.ref, k.type, k.u, k.a, k.amount, k.pm, k.bt, k.item, k.meta, coalesce(p_actor, session_user),
               _wallet_posting_description(k.type, k.pm, k.bt, k.item), v_now
          FROM unnest(e_tx, o_ref, o_type, o_user, o_asset, o_amount, o_pm, o_bt, o_item, o_meta) WITH ORDINALITY
               AS k (id, ref, type, u, a, amount, pm, bt, item, meta, n)
         ORDER BY k.n;
        v_txs := ARRAY(SELECT t FROM unnest(e_tx) WITH ORDINALITY AS k (id, n) JOIN transactions t ON t.id = k.id
                        ORDER BY k.n);

        -- 10. each player entry's hash, chained to its wallet's head; then the wallets, then all entries at once
        --     (player leg, then system leg, operation by operation: entry ids follow each wallet's chain)
        w_balance := array_fill(NULL::bigint, ARRAY[cardinality(w_id)]);
        e_hash := array_fill(NULL::bytea, ARRAY[cardinality(v_ok)]);
        FOR n IN 1 .. cardinality(v_ok) LOOP
            v_s := v_slot[v_ok[n]];
            w_head[v_s] := _wallet_entry_hash(w_head[v_s], v_txs[n], o_wallet[n], o_signed[n], o_after[n]);
            w_balance[v_s] := o_after[n];
            e_hash[n] := w_head[v_s];
        END LOOP;
        UPDATE wallets w SET balance = k.balance, updated_at = v_now, chain_head = k.head
          FROM unnest(w_id, w_balance, w_head) AS k (id, balance, head)
         WHERE w.id = k.id AND k.balance IS NOT NULL;
        INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after, created_at, entry_hash)
        SELECT l.transaction_id, l.wallet_id, l.asset_code, l.amount, l.balance_after, v_now, l.entry_hash
          FROM (SELECT k.n, 1 AS leg, k.tx AS transaction_id, k.wallet AS wallet_id, k.a AS asset_code,
                       k.signed AS amount, k.after AS balance_after, k.hash AS entry_hash
                  FROM unnest(e_tx, o_wallet, o_asset, o_signed, o_after, e_hash) WITH ORDINALITY
                       AS k (tx, wallet, a, signed, after, hash, n)
                UNION ALL
                SELECT k.n, 2, k.tx, s.id, k.a, -k.signed, NULL, NULL
                  FROM unnest(e_tx, o_asset, o_signed, o_kind) WITH ORDINALITY AS k (tx, a, signed, kind, n)
                  JOIN wallets s ON s.asset_code = k.a AND s.kind = k.kind AND s.kind <> 'PLAYER') l
         ORDER BY l.n, l.leg;
    END IF;

    -- 11. the answers, in order; a replay is answered from the transaction that holds its key
    --     (_wallet_replay: the same request, or WL004)
    FOR i IN 1 .. v_count LOOP
        ordinal := i;
        transaction_id := NULL; user_id := NULL; asset_code := NULL; amount := NULL; balance := NULL;
        transaction_type := NULL; created_at := NULL; replayed := NULL;
        sqlstate := NULL; message := NULL; detail := NULL; field := NULL;
        IF v_state[i] = 'ok' THEN
            v_tx := v_txs[v_ok_at[i]];
            transaction_id := v_tx.id; user_id := v_user[i]; asset_code := v_asset[i]; amount := v_amount[i];
            balance := v_after[i]; transaction_type := v_type[i]; created_at := v_now; replayed := false;
        ELSIF v_state[i] = 'replay' THEN
            SELECT t.* INTO STRICT v_tx FROM transactions t WHERE t.reference_id = v_ref[i];
            BEGIN
                v_posting := _wallet_replay(v_tx, v_type[i], v_user[i], v_asset[i], v_amount[i], v_pm[i], v_bt[i],
                                            v_item[i]);
                transaction_id := v_posting.transaction_id; user_id := v_posting.user_id;
                asset_code := v_posting.asset_code; amount := v_posting.amount; balance := v_posting.balance;
                transaction_type := v_posting.transaction_type; created_at := v_posting.created_at;
                replayed := true;
            EXCEPTION WHEN SQLSTATE 'WL004' THEN
                -- (in here SQLSTATE is the handler's constant: the output columns are set below)
                GET STACKED DIAGNOSTICS c_state = RETURNED_SQLSTATE, c_message = MESSAGE_TEXT,
                                        c_field = PG_EXCEPTION_DETAIL;
            END;
            IF replayed IS NULL THEN
                sqlstate := c_state; message := c_message; detail := c_field::jsonb;
            END IF;
        ELSE
            sqlstate := v_err_state[i]; message := v_err_message[i]; detail := v_err_detail[i];
            field := v_err_field[i];
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;
