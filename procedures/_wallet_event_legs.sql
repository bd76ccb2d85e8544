-- _wallet_event_legs: the legs of a transaction's event: its player's entries, in asset order, as a JSON array
-- of {asset_code, amount, balance_after}; amount signed as the player sees it (credit > 0, debit < 0),
-- balance_after the player's balance right after. (A player's entries are those with a balance_after: the
-- ledger's trigger gives every player entry one and no system entry any.)
-- Arguments: p_transaction_id. Returns: jsonb (an empty array for a transaction without player entries).
CREATE OR REPLACE FUNCTION _wallet_event_legs(p_transaction_id uuid)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object('asset_code', l.asset_code, 'amount', l.amount,
                                                     'balance_after', l.balance_after::bigint)
                                  ORDER BY l.asset_code), '[]'::jsonb)
          FROM ledger_entries l
         WHERE l.transaction_id = p_transaction_id AND l.balance_after IS NOT NULL);
