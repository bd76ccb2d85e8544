-- wallet_history: a player's transactions in one asset, newest first, with the balance after each.
-- Arguments: p_user_id, p_asset_code, p_limit (1 .. _wallet_max_page(), default 50), p_offset (>= 0, default 0),
--   p_before_entry_id (keyset cursor: only entries older than this entry id; pages stay cheap at any
--   depth, unlike p_offset).
-- Returns: rows (entry_id, transaction_id, type, amount, balance_after, reference_id, created_at,
--   description, original_reference_id, has_older); amount is the (positive) amount of this entry, type
--   tells its direction (for a REVERSAL, the opposite of its original's, whose reference id is
--   original_reference_id; NULL on other types); has_older is true when the wallet has entries older than
--   this one (on a page's last row: another page follows).
-- Raises: WL002 player has no wallet at all, WL003 asset not found, WL006 invalid argument.
-- Example: SELECT * FROM wallet_history('user_alice', 'GOLD_COINS', p_limit => 10);
CREATE OR REPLACE FUNCTION wallet_history(
    p_user_id text,
    p_asset_code text,
    p_limit integer DEFAULT 50,
    p_offset integer DEFAULT 0,
    p_before_entry_id bigint DEFAULT NULL)
RETURNS TABLE (entry_id bigint, transaction_id uuid, type transaction_type, amount bigint,
               balance_after bigint, reference_id text, created_at timestamptz, description text,
               original_reference_id text, has_older boolean)
LANGUAGE plpgsql STABLE
SECURITY DEFINER SET search_path = public, pg_temp
-- one generic plan per session: with custom plans, PostgreSQL re-planned the page query on every call for
-- a player with many entries (its statistics make a custom plan look cheaper), costing more than the read
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_wallet_id bigint;
    v_first_entry_id bigint;
BEGIN
    IF p_asset_code IS NULL THEN
        PERFORM _wallet_invalid_argument('asset_code', 'is required');
    END IF;
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND _wallet_max_page() THEN
        PERFORM _wallet_invalid_argument('limit', format('must be an integer from 1 to %s', _wallet_max_page()));
    END IF;
    IF p_offset IS NULL OR p_offset < 0 THEN
        PERFORM _wallet_invalid_argument('offset', 'must be a non-negative integer');
    END IF;
    PERFORM _wallet_check_id('user_id', p_user_id);
    PERFORM _wallet_require_asset(p_asset_code);
    PERFORM _wallet_require_player(p_user_id);
    -- the wallet first, as its own statement: with its id known, the page is read straight off the
    -- (wallet_id, id) index, newest first, and stops after offset + limit entries (joined with the
    -- wallet, the planner cannot tell a whale's 10^6 entries from a typical wallet's few and sorted them
    -- all). A player with no wallet in this asset simply has no entries.
    SELECT w.id INTO v_wallet_id FROM wallets w WHERE w.user_id = p_user_id AND w.asset_code = p_asset_code;
    -- the wallet's oldest entry (one probe of the same index): every row but that one has an older entry
    SELECT min(f.id) INTO v_first_entry_id FROM ledger_entries f WHERE f.wallet_id = v_wallet_id;
    -- coalesce rather than "IS NULL OR" keeps the cursor an index bound in the cached generic plan
    IF p_offset = 0 THEN
        -- first page, or any page by cursor: walk the index backwards from the cursor
        RETURN QUERY
            SELECT e.id, t.id, t.type, abs(e.amount), e.balance_after::bigint, t.reference_id::text, t.created_at,
                   t.description,
                   (SELECT o.reference_id::text FROM transactions o WHERE o.id = t.original_id),
                   e.id > v_first_entry_id
              FROM ledger_entries e
              JOIN transactions t ON t.id = e.transaction_id
             WHERE e.wallet_id = v_wallet_id
               AND e.id < coalesce(p_before_entry_id, 9223372036854775807)
             ORDER BY e.id DESC
             LIMIT p_limit;
    ELSE
        -- an offset: skip over the entries' ids alone (an index-only scan), then read the page's rows
        RETURN QUERY
            SELECT e.id, t.id, t.type, abs(e.amount), e.balance_after::bigint, t.reference_id::text, t.created_at,
                   t.description,
                   (SELECT o.reference_id::text FROM transactions o WHERE o.id = t.original_id),
                   e.id > v_first_entry_id
              FROM (SELECT p.id FROM ledger_entries p
                     WHERE p.wallet_id = v_wallet_id
                       AND p.id < coalesce(p_before_entry_id, 9223372036854775807)
                     ORDER BY p.id DESC
                     LIMIT p_limit OFFSET p_offset) page
              JOIN ledger_entries e ON e.id = page.id
              JOIN transactions t ON t.id = e.transaction_id
             ORDER BY e.id DESC;
    END IF;
END;
$$;
