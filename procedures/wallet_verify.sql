-- wallet_verify: check every ledger invariant over the whole ledger.
-- Arguments: none.
-- Returns: one row per violation (invariant, subject, detail); no rows when the ledger is healthy.
--   transaction_unbalanced   a transaction's entries do not sum to zero in an asset
--   asset_unbalanced         an asset's entries do not sum to zero over the whole ledger
--   transaction_legs         a transaction lacks, in one of its assets, its player leg (the type's direction,
--                            the leg's amount, the player's wallet) or its system leg (TREASURY /
--                            BONUS_POOL / REVENUE), or has other entries; a reversal goes the opposite
--                            way of its original
--   reversal_invalid         a reversal of a reversal, of a hold's capture, of another player's posting, or of
--                            part of a purchase
--   reversal_exceeds_original  the reversals of a posting took back more than it moved in an asset
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
--   available_negative       a player wallet's active holds reserve more than its balance
--   holds_until_stale        an active hold outlasts its wallet's holds_until (spends would not see it)
--   hold_capture_mismatch    a captured hold whose CAPTURE transaction is missing, differs from it (player,
--                            asset, reference id, captured amount), captured more than it held, or was
--                            posted at or after the hold's expiry
--   capture_without_hold     a CAPTURE transaction no captured hold points to
--   event_missing            a transaction neither numbered (events) nor waiting to be (event_inbox): no event
--                            reader would ever see it
--   event_duplicated         a transaction both numbered and still in the event inbox (it would get a second event)
--   event_mismatch           an event or inbox row whose transaction does not exist, or an event naming another
--                            player than its transaction (a per-player reader would miss it)
--   event_gap                event ids are not 1..n: readers resuming after an id would skip or wait forever
--   event_order              a player wallet's events are not in the order of its entries (a reader would see its
--                            balance_after go back)
-- Raises: nothing. Reads the whole ledger: run it off-peak on a large ledger, and ANALYZE first when the
-- planner's statistics may be old (after a bulk load, or a crash recovery, which resets the counters that
-- make autovacuum analyze): planned with statistics taken when the ledger was small, it ran for over 5 minutes
-- on 550,000 entries that it checks in 8 s once analyzed.
-- Not caught here: a rewrite that also recomputes every later hash, or the removal of a wallet's newest
-- entries; keep the chain heads outside the database (wallet_chain_heads) and check them with
-- wallet_verify_anchor.
-- Example: SELECT * FROM wallet_verify();
CREATE OR REPLACE FUNCTION wallet_verify()
RETURNS TABLE (invariant text, subject text, detail text)
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
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
               format('%s of %s for %s (reference %s): %s player leg(s) as expected, %s system leg(s) as expected, %s entries',
                      t.type, (SELECT string_agg(format('%s %s', l->>'amount', l->>'asset_code'), ' + '
                                                 ORDER BY l->>'asset_code')
                                 FROM jsonb_array_elements(x.legs) l),
                      t.user_id, t.reference_id, coalesce(c.player_ok, 0), coalesce(c.system_ok, 0),
                      coalesce(c.total, 0))
          FROM transactions t
          LEFT JOIN transactions o ON o.id = t.original_id
          CROSS JOIN LATERAL (
                SELECT coalesce(t.legs, jsonb_build_array(jsonb_build_object('asset_code', t.asset_code,
                                                                             'amount', t.amount))) AS legs,
                       coalesce((SELECT d.sign FROM _wallet_direction(t.type) d),
                                -(SELECT d.sign FROM _wallet_direction(o.type) d)) AS sign,
                       coalesce((SELECT d.system_kind FROM _wallet_direction(t.type) d),
                                (SELECT d.system_kind FROM _wallet_direction(o.type) d)) AS kind) x
          LEFT JOIN LATERAL (
                SELECT count(*) AS total,
                       count(DISTINCT e.asset_code) FILTER (
                           WHERE w.kind = 'PLAYER' AND w.user_id = t.user_id
                             AND EXISTS (SELECT 1 FROM jsonb_array_elements(x.legs) l
                                          WHERE l->>'asset_code' = w.asset_code
                                            AND e.amount = x.sign * (l->>'amount')::bigint)) AS player_ok,
                       count(DISTINCT e.asset_code) FILTER (
                           WHERE w.kind = x.kind
                             AND EXISTS (SELECT 1 FROM jsonb_array_elements(x.legs) l
                                          WHERE l->>'asset_code' = w.asset_code
                                            AND e.amount = -x.sign * (l->>'amount')::bigint)) AS system_ok
                  FROM ledger_entries e JOIN wallets w ON w.id = e.wallet_id
                 WHERE e.transaction_id = t.id) c ON true
         WHERE c.total IS DISTINCT FROM 2 * jsonb_array_length(x.legs)
            OR c.player_ok IS DISTINCT FROM jsonb_array_length(x.legs)::bigint
            OR c.system_ok IS DISTINCT FROM jsonb_array_length(x.legs)::bigint;

    RETURN QUERY
        SELECT 'reversal_invalid', r.id::text,
               format('reversal %s of %s (%s for %s): %s', r.reference_id, o.reference_id, o.type, o.user_id,
                      CASE WHEN o.type = 'REVERSAL' THEN 'reverses a reversal'
                           WHEN o.type = 'CAPTURE' THEN 'reverses the capture of a hold'
                           WHEN r.user_id <> o.user_id THEN format('is for player %s', r.user_id)
                           ELSE 'reverses part of a purchase' END)
          FROM transactions r JOIN transactions o ON o.id = r.original_id
         WHERE o.type IN ('REVERSAL', 'CAPTURE') OR r.user_id <> o.user_id
            OR (o.legs IS NOT NULL AND r.legs IS DISTINCT FROM o.legs);

    RETURN QUERY
        SELECT 'reversal_exceeds_original', o.id::text,
               format('%s %s (reference %s) moved %s %s; its reversals took back %s',
                      o.type, o.id, o.reference_id, l->>'amount', l->>'asset_code', s.reversed)
          FROM transactions o
          CROSS JOIN LATERAL jsonb_array_elements(coalesce(o.legs, jsonb_build_array(
                    jsonb_build_object('asset_code', o.asset_code, 'amount', o.amount)))) l
          CROSS JOIN LATERAL (
                SELECT sum(abs(e.amount)) AS reversed
                  FROM transactions r
                  JOIN ledger_entries e ON e.transaction_id = r.id AND e.balance_after IS NOT NULL
                 WHERE r.original_id = o.id AND e.asset_code = l->>'asset_code') s
         WHERE o.id IN (SELECT r.original_id FROM transactions r WHERE r.original_id IS NOT NULL)
           AND s.reversed > (l->>'amount')::bigint;

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

    RETURN QUERY
        SELECT 'available_negative', w.id::text,
               format('wallet of %s in %s has balance %s but active holds of %s', w.user_id, w.asset_code, w.balance,
                      a.held)
          FROM (SELECT h.wallet_id, sum(h.amount) AS held FROM holds h
                 WHERE h.status = 'HELD' AND h.expires_at > v_now GROUP BY h.wallet_id) a
          JOIN wallets w ON w.id = a.wallet_id
         WHERE w.balance < a.held;

    RETURN QUERY
        SELECT 'holds_until_stale', h.id::text,
               format('hold %s of %s is active until %s but its wallet says no hold lasts past %s',
                      h.reference_id, h.user_id, h.expires_at, coalesce(w.holds_until::text, 'none'))
          FROM holds h JOIN wallets w ON w.id = h.wallet_id
         WHERE h.status = 'HELD' AND h.expires_at > v_now
           AND (w.holds_until IS NULL OR w.holds_until < h.expires_at);

    RETURN QUERY
        SELECT 'hold_capture_mismatch', h.id::text,
               format('hold %s (%s %s for %s, expires %s) captured %s: %s', h.reference_id, h.amount, h.asset_code,
                      h.user_id, h.expires_at, h.captured_amount,
                      CASE WHEN t.id IS NULL THEN 'no capture transaction'
                           WHEN t.created_at >= h.expires_at THEN format('captured after expiry, at %s', t.created_at)
                           ELSE format('its transaction is %s of %s %s for %s under %s',
                                       t.type, t.amount, t.asset_code, t.user_id, t.reference_id) END)
          FROM holds h
          LEFT JOIN transactions t ON t.id = h.capture_transaction_id
         WHERE h.status = 'CAPTURED'
           AND (t.id IS NULL OR t.type <> 'CAPTURE' OR t.reference_id <> h.reference_id OR t.user_id <> h.user_id
                OR t.asset_code <> h.asset_code OR t.amount IS DISTINCT FROM h.captured_amount
                OR h.captured_amount > h.amount OR t.created_at >= h.expires_at);

    RETURN QUERY
        SELECT 'capture_without_hold', t.id::text,
               format('CAPTURE %s of %s %s for %s has no captured hold', t.reference_id, t.amount, t.asset_code,
                      t.user_id)
          FROM transactions t
         WHERE t.type = 'CAPTURE'
           AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.capture_transaction_id = t.id AND h.status = 'CAPTURED');

    -- (one statement: a posting enters the inbox and the sequencer moves it to events atomically, so a single
    -- snapshot finds every transaction in exactly one of the two even while both run)
    RETURN QUERY
        SELECT CASE WHEN e.id IS NULL THEN 'event_missing' ELSE 'event_duplicated' END, t.id::text,
               format('%s %s of %s: %s', t.type, t.reference_id, t.user_id,
                      CASE WHEN e.id IS NULL THEN 'neither numbered as an event nor in the event inbox'
                           ELSE format('numbered as event %s and still in the event inbox', e.id) END)
          FROM transactions t
          LEFT JOIN events e ON e.transaction_id = t.id
          LEFT JOIN event_inbox i ON i.transaction_id = t.id
         WHERE (e.id IS NULL) = (i.seq IS NULL);

    RETURN QUERY
        SELECT 'event_mismatch', e.id::text,
               CASE WHEN t.id IS NULL THEN format('event of transaction %s, which does not exist', e.transaction_id)
                    ELSE format('event of %s %s names player %s, its transaction %s', t.type, t.reference_id,
                                e.user_id, t.user_id) END
          FROM events e
          LEFT JOIN transactions t ON t.id = e.transaction_id
         WHERE t.id IS NULL OR t.user_id::text <> e.user_id
        UNION ALL
        SELECT 'event_mismatch', format('inbox %s', i.seq),
               format('inbox row of transaction %s, which does not exist', i.transaction_id)
          FROM event_inbox i
         WHERE NOT EXISTS (SELECT 1 FROM transactions t WHERE t.id = i.transaction_id);

    RETURN QUERY
        SELECT 'event_gap', g.id::text, format('event %s comes after %s: %s to %s are missing', g.id,
                                               coalesce(g.previous::text, 'none'), coalesce(g.previous, 0) + 1, g.id - 1)
          FROM (SELECT e.id, lag(e.id) OVER (ORDER BY e.id) AS previous FROM events e) g
         WHERE g.id <> coalesce(g.previous, 0) + 1;

    RETURN QUERY
        SELECT 'event_order', o.event_id::text,
               format('event %s (%s %s) moves wallet %s with entry %s, but the earlier event %s moved it with the later entry %s',
                      o.event_id, o.type, o.reference_id, o.wallet_id, o.entry_id, o.previous_event, o.previous_entry)
          FROM (SELECT ev.id AS event_id, t.type, t.reference_id, l.wallet_id, l.id AS entry_id,
                       lag(ev.id) OVER w AS previous_event, lag(l.id) OVER w AS previous_entry
                  FROM events ev
                  JOIN transactions t ON t.id = ev.transaction_id
                  JOIN ledger_entries l ON l.transaction_id = ev.transaction_id AND l.balance_after IS NOT NULL
                WINDOW w AS (PARTITION BY l.wallet_id ORDER BY ev.id)) o
         WHERE o.entry_id < o.previous_entry;
END;
$$;
