-- _wallet_check_new_entries: trigger function: every INSERT into ledger_entries is balanced by itself.
-- Every entry names an existing transaction and a wallet of the entry's own asset, and the transaction's asset
-- (when it names one) exists: the foreign keys of these columns until sql/0009, checked here once per statement.
-- Per (transaction, asset) the statement's rows sum to zero, so no committed transaction can hold an
-- unbalanced set of entries. Player entries continue their wallet's balance_after chain, and a wallet's
-- newest entry records the balance the wallet stores (so the wallet is updated first, then its entry
-- inserted, as _wallet_post does); system entries carry no balance_after.
-- Fires: AFTER INSERT on ledger_entries, once per statement, with the transition table new_entries.
-- Returns: NULL. Raises: foreign_key_violation (23503) naming the entry and what it names that does not exist,
--   checked first; check_violation (23514) naming the entry, wallet and amounts.
-- Runs as wallet_owner (SECURITY DEFINER), whoever inserts: its checks read wallets and ledger_entries.
CREATE OR REPLACE FUNCTION _wallet_check_new_entries() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_bad record;
BEGIN
    -- references: plain reads, no row lock, are enough: transactions are append-only, wallets and assets
    -- permanent (sql/0009), so nothing found here can be gone at commit
    SELECT n.id, n.transaction_id, n.wallet_id, n.asset_code, t.id IS NULL AS no_transaction,
           w.id IS NULL AS no_wallet, t.asset_code AS transaction_asset
      INTO v_bad
      FROM new_entries n
      LEFT JOIN transactions t ON t.id = n.transaction_id
      LEFT JOIN wallets w ON w.id = n.wallet_id AND w.asset_code = n.asset_code
     WHERE t.id IS NULL OR w.id IS NULL
        OR (t.asset_code IS NOT NULL AND NOT EXISTS (SELECT FROM assets a WHERE a.code = t.asset_code))
     LIMIT 1;
    IF FOUND AND v_bad.no_transaction THEN
        RAISE EXCEPTION 'ledger entry % names transaction %, which does not exist', v_bad.id, v_bad.transaction_id
            USING ERRCODE = 'foreign_key_violation';
    ELSIF FOUND AND v_bad.no_wallet THEN
        RAISE EXCEPTION 'ledger entry % names wallet % in %: no such wallet holds that asset',
            v_bad.id, v_bad.wallet_id, v_bad.asset_code
            USING ERRCODE = 'foreign_key_violation';
    ELSIF FOUND THEN
        RAISE EXCEPTION 'transaction % names asset %, which does not exist', v_bad.transaction_id,
            v_bad.transaction_asset
            USING ERRCODE = 'foreign_key_violation';
    END IF;

    -- zero-sum per transaction and asset within the statement
    SELECT n.transaction_id, n.asset_code, sum(n.amount) AS total INTO v_bad
      FROM new_entries n
     GROUP BY n.transaction_id, n.asset_code
    HAVING sum(n.amount) <> 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unbalanced ledger entries: transaction % sums to % in %',
            v_bad.transaction_id, v_bad.total, v_bad.asset_code
            USING ERRCODE = 'check_violation';
    END IF;

    -- balance_after continues the wallet's previous entry (player wallets only)
    SELECT n.id, n.wallet_id, n.balance_after, prev.balance_after AS previous, w.kind, w.balance,
           w.user_id, w.asset_code,
           n.balance_after IS NOT DISTINCT FROM coalesce(prev.balance_after, 0) + n.amount AS chained
      INTO v_bad
      FROM (SELECT e.*, e.id = max(e.id) OVER (PARTITION BY e.wallet_id) AS newest FROM new_entries e) n
      JOIN wallets w ON w.id = n.wallet_id
      LEFT JOIN LATERAL (
            SELECT p.balance_after FROM ledger_entries p
             WHERE p.wallet_id = n.wallet_id AND p.id < n.id
             ORDER BY p.id DESC LIMIT 1) prev ON true
     WHERE CASE WHEN w.kind = 'PLAYER'
                THEN n.balance_after IS DISTINCT FROM coalesce(prev.balance_after, 0) + n.amount
                     -- the wallet's newest entry of this statement records its stored balance
                     -- (newest: a window over the statement's rows, not a scan of them per row: a batch
                     -- inserts thousands)
                     OR (n.balance_after IS DISTINCT FROM w.balance AND n.newest)
                ELSE n.balance_after IS NOT NULL END
     LIMIT 1;
    IF FOUND AND v_bad.chained AND v_bad.kind = 'PLAYER' THEN
        RAISE EXCEPTION 'ledger entry % records balance_after % but wallet % (%, %) stores %',
            v_bad.id, v_bad.balance_after, v_bad.wallet_id, v_bad.user_id, v_bad.asset_code, v_bad.balance
            USING ERRCODE = 'check_violation',
                  HINT = 'update the wallet''s balance first, then insert its entry';
    ELSIF FOUND THEN
        RAISE EXCEPTION 'ledger entry % breaks the balance chain of wallet % (% wallet): balance_after % after %',
            v_bad.id, v_bad.wallet_id, v_bad.kind, v_bad.balance_after, coalesce(v_bad.previous, 0)
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
