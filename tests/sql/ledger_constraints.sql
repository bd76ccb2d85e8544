-- Table-level rules that hold even for a DBA who bypasses the wallet_* functions: an append-only
-- ledger (WL008), zero-sum inserts, the balance_after chain, stored balance = ledger at commit,
-- non-negative and limited player balances.
BEGIN;
SELECT plan(70);

-- ---------------------------------------------------------------- append-only (WL008)

SELECT throws_ok($$UPDATE ledger_entries SET amount = amount + 1$$, 'WL008',
    'ledger is append-only: UPDATE on ledger_entries is not allowed', 'UPDATE of ledger entries is WL008');
SELECT throws_ok($$DELETE FROM ledger_entries$$, 'WL008',
    'ledger is append-only: DELETE on ledger_entries is not allowed', 'DELETE of ledger entries is WL008');
SELECT throws_ok($$TRUNCATE ledger_entries$$, 'WL008',
    'ledger is append-only: TRUNCATE on ledger_entries is not allowed', 'TRUNCATE of ledger entries is WL008');
SELECT throws_ok($$UPDATE transactions SET amount = 1 WHERE reference_id = 'init_bob_gold_001'$$, 'WL008',
    'ledger is append-only: UPDATE on transactions is not allowed', 'UPDATE of a transaction is WL008');
SELECT throws_ok($$DELETE FROM transactions WHERE reference_id = 'init_bob_gold_001'$$, 'WL008',
    'ledger is append-only: DELETE on transactions is not allowed', 'DELETE of a transaction is WL008');
-- holds and the events (event_inbox, events) reference transactions: a TRUNCATE of transactions that leaves
-- them out is refused by the foreign key before any trigger runs; with them in the list, the triggers refuse it
SELECT throws_ok($$TRUNCATE ledger_entries, transactions$$, '0A000',
    'cannot truncate a table referenced in a foreign key constraint',
    'TRUNCATE of transactions (with its entries) but not holds: refused by the holds foreign key');
SELECT throws_ok($$TRUNCATE ledger_entries, transactions, holds, events, event_inbox$$, 'WL008', NULL,
    'TRUNCATE of transactions with its entries, holds and events is WL008');
SELECT throws_ok($$TRUNCATE holds$$, 'WL008',
    'ledger is append-only: TRUNCATE on holds is not allowed', 'TRUNCATE of holds is WL008');
SELECT throws_ok($$TRUNCATE transactions CASCADE$$, 'WL008',
    'ledger is append-only: TRUNCATE on transactions is not allowed', 'TRUNCATE ... CASCADE of transactions is WL008');
-- wallets and assets are permanent too (sql/0009; more below, where the rows they keep are named)
SELECT throws_ok($$TRUNCATE wallets CASCADE$$, 'WL008',
    'ledger is append-only: TRUNCATE on wallets is not allowed', 'TRUNCATE ... CASCADE of wallets is WL008');
SELECT throws_ok($$TRUNCATE assets CASCADE$$, 'WL008',
    'ledger is append-only: TRUNCATE on assets is not allowed', 'TRUNCATE ... CASCADE of assets is WL008');

-- rows written in this very transaction are just as immutable
SELECT lives_ok($$SELECT wallet_topup('user_bob', 'GOLD_COINS', 10, 'lc_topup_1', 'card')$$, 'a top-up posts');
SELECT throws_ok(
    $$UPDATE ledger_entries SET balance_after = 0
       WHERE transaction_id = (SELECT id FROM transactions WHERE reference_id = 'lc_topup_1')$$,
    'WL008', 'ledger is append-only: UPDATE on ledger_entries is not allowed',
    'a freshly written entry cannot be updated either');
SELECT is((SELECT count(*) FROM ledger_entries)::int, 10, 'the ledger still holds every entry (8 seed + 2)');

-- ---------------------------------------------------------------- zero-sum per INSERT

INSERT INTO transactions (id, reference_id, type, user_id, asset_code, amount, description)
VALUES ('00000000-0000-0000-0000-0000000000a1', 'lc_manual_1', 'TOPUP', 'user_bob', 'GOLD_COINS', 10, 'manual');

SELECT throws_ok(
    format($$INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after)
             VALUES ('00000000-0000-0000-0000-0000000000a1', %s, 'GOLD_COINS', 10, 50020)$$,
           pg_temp.wallet_of('user_bob', 'GOLD_COINS')),
    '23514', 'unbalanced ledger entries: transaction 00000000-0000-0000-0000-0000000000a1 sums to 10 in GOLD_COINS',
    'a single credit leg without its debit is rejected');
SELECT throws_ok(
    format($$INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after)
             VALUES ('00000000-0000-0000-0000-0000000000a1', %s, 'GOLD_COINS', 10, 50020),
                    ('00000000-0000-0000-0000-0000000000a1', %s, 'GOLD_COINS', -9, NULL)$$,
           pg_temp.wallet_of('user_bob', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'TREASURY')),
    '23514', 'unbalanced ledger entries: transaction 00000000-0000-0000-0000-0000000000a1 sums to 1 in GOLD_COINS',
    'two legs that do not sum to zero are rejected');
SELECT throws_ok(
    format($$INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after)
             VALUES ('00000000-0000-0000-0000-0000000000a1', %s, 'DIAMONDS', 10, 50020)$$,
           pg_temp.wallet_of('user_bob', 'GOLD_COINS')),
    '23503', NULL, 'an entry whose asset is not its wallet''s asset violates the foreign key');
SELECT throws_ok(
    $$INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after)
      VALUES ('00000000-0000-0000-0000-0000000000a1', 1, 'GOLD_COINS', 0, NULL)$$,
    '23514', NULL, 'a zero amount entry is rejected');

-- ---------------------------------------------------------------- references, checked per statement (sql/0009)

-- each insert below is balanced and chained, so only the reference rule can refuse it
SELECT throws_ok(
    format($$INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after)
             VALUES ('00000000-0000-0000-0000-0000000000f1', %s, 'GOLD_COINS', -10, NULL),
                    ('00000000-0000-0000-0000-0000000000f1', %s, 'GOLD_COINS', 10, NULL)$$,
           pg_temp.system_wallet('GOLD_COINS', 'TREASURY'), pg_temp.system_wallet('GOLD_COINS', 'REVENUE')),
    '23503', NULL, 'entries naming a transaction that does not exist are rejected');
SELECT matches(
    pg_temp.error_of(format(
        $$INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after)
          VALUES ('00000000-0000-0000-0000-0000000000f1', %s, 'GOLD_COINS', -10, NULL),
                 ('00000000-0000-0000-0000-0000000000f1', %s, 'GOLD_COINS', 10, NULL)$$,
        pg_temp.system_wallet('GOLD_COINS', 'TREASURY'), pg_temp.system_wallet('GOLD_COINS', 'REVENUE')))->>'message',
    '^ledger entry \d+ names transaction 00000000-0000-0000-0000-0000000000f1, which does not exist$',
    'naming the entry and the missing transaction');
SELECT throws_ok(
    format($$INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after)
             VALUES ('00000000-0000-0000-0000-0000000000a1', %s, 'GOLD_COINS', -10, NULL),
                    ('00000000-0000-0000-0000-0000000000a1', 987654321, 'GOLD_COINS', 10, NULL)$$,
           pg_temp.system_wallet('GOLD_COINS', 'TREASURY')),
    '23503', NULL, 'an entry naming a wallet that does not exist is rejected');
SELECT matches(
    pg_temp.error_of(format(
        $$INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after)
          VALUES ('00000000-0000-0000-0000-0000000000a1', %s, 'GOLD_COINS', -10, NULL),
                 ('00000000-0000-0000-0000-0000000000a1', 987654321, 'GOLD_COINS', 10, NULL)$$,
        pg_temp.system_wallet('GOLD_COINS', 'TREASURY')))->>'message',
    '^ledger entry \d+ names wallet 987654321 in GOLD_COINS: no such wallet holds that asset$',
    'naming the entry, the wallet and the asset');
-- a transaction row naming an unknown asset is accepted by its own statement (no foreign key), but neither can
-- its entries be written nor can it commit without them
SELECT is(
    pg_temp.error_of(format(
        $$INSERT INTO transactions (id, reference_id, type, user_id, asset_code, amount, description)
          VALUES ('00000000-0000-0000-0000-0000000000f2', 'lc_no_asset', 'TOPUP', 'user_bob', 'NO_SUCH_ASSET', 10, 'x');
          INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after)
          VALUES ('00000000-0000-0000-0000-0000000000f2', %s, 'GOLD_COINS', -10, NULL),
                 ('00000000-0000-0000-0000-0000000000f2', %s, 'GOLD_COINS', 10, NULL)$$,
        pg_temp.system_wallet('GOLD_COINS', 'TREASURY'), pg_temp.system_wallet('GOLD_COINS', 'REVENUE')))
      - 'detail' - 'column',
    jsonb_build_object('sqlstate', '23503', 'message',
        'transaction 00000000-0000-0000-0000-0000000000f2 names asset NO_SUCH_ASSET, which does not exist'),
    'entries of a transaction naming an asset that does not exist are rejected');

-- wallets and assets are permanent: nothing refers to a row that is gone (what the foreign keys also kept)
INSERT INTO assets (code, name) VALUES ('LC_TEMP', 'no wallet yet');
INSERT INTO wallets (asset_code, kind, user_id, name, balance) VALUES ('LC_TEMP', 'PLAYER', 'lc_new', 'lc_new', 0);
SELECT throws_ok($$DELETE FROM wallets WHERE user_id = 'lc_new'$$, 'WL008',
    'ledger is append-only: DELETE on wallets is not allowed', 'a wallet cannot be deleted, even one with no entry');
SELECT throws_ok($$UPDATE wallets SET asset_code = 'GOLD_COINS' WHERE user_id = 'lc_new'$$, 'WL008',
    'ledger is append-only: UPDATE on wallets is not allowed', 'nor moved to another asset');
SELECT throws_ok(format('UPDATE wallets SET id = DEFAULT WHERE id = %s', pg_temp.wallet_of('user_bob', 'GOLD_COINS')),
    'WL008', 'ledger is append-only: UPDATE on wallets is not allowed', 'nor renumbered');
SELECT lives_ok($$UPDATE wallets SET name = 'renamed' WHERE user_id = 'lc_new'$$, 'its display name may change');
SELECT throws_ok($$DELETE FROM assets WHERE code = 'LC_TEMP'$$, 'WL008',
    'ledger is append-only: DELETE on assets is not allowed', 'an asset cannot be deleted');
SELECT throws_ok($$UPDATE assets SET code = 'LC_OTHER' WHERE code = 'LC_TEMP'$$, 'WL008',
    'ledger is append-only: UPDATE on assets is not allowed', 'nor renamed');
SELECT lives_ok($$UPDATE assets SET name = 'renamed' WHERE code = 'LC_TEMP'$$, 'its name may change');

-- ---------------------------------------------------------------- balance_after chain

SELECT throws_ok(
    format($$INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after)
             VALUES ('00000000-0000-0000-0000-0000000000a1', %s, 'GOLD_COINS', 10, 50021),
                    ('00000000-0000-0000-0000-0000000000a1', %s, 'GOLD_COINS', -10, NULL)$$,
           pg_temp.wallet_of('user_bob', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'TREASURY')),
    '23514',
    format('ledger entry %s breaks the balance chain of wallet %s (PLAYER wallet): balance_after 50021 after 50010',
           (SELECT last_value + 1 FROM pg_sequences WHERE sequencename = 'ledger_entries_id_seq'),
           pg_temp.wallet_of('user_bob', 'GOLD_COINS')),
    'a balanced insert whose balance_after does not continue the chain is rejected');
SELECT throws_ok(
    format($$INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after)
             VALUES ('00000000-0000-0000-0000-0000000000a1', %s, 'GOLD_COINS', 10, NULL),
                    ('00000000-0000-0000-0000-0000000000a1', %s, 'GOLD_COINS', -10, NULL)$$,
           pg_temp.wallet_of('user_bob', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'TREASURY')),
    '23514', NULL, 'a player entry without balance_after is rejected');
-- the player leg is valid here (its wallet already stores 50020) and the system leg's balance_after is a
-- valid balance: only the rule "system entries carry no balance_after" can refuse this insert
UPDATE wallets SET balance = 50020 WHERE id = pg_temp.wallet_of('user_bob', 'GOLD_COINS');
SELECT throws_ok(
    format($$INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after)
             VALUES ('00000000-0000-0000-0000-0000000000a1', %s, 'GOLD_COINS', 10, 50020),
                    ('00000000-0000-0000-0000-0000000000a1', %s, 'GOLD_COINS', -10, 10)$$,
           pg_temp.wallet_of('user_bob', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'TREASURY')),
    '23514',
    format('ledger entry %s breaks the balance chain of wallet %s (TREASURY wallet): balance_after 10 after 0',
           (SELECT last_value + 2 FROM pg_sequences WHERE sequencename = 'ledger_entries_id_seq'),
           pg_temp.system_wallet('GOLD_COINS', 'TREASURY')),
    'a system entry with a balance_after is rejected');
UPDATE wallets SET balance = 50010 WHERE id = pg_temp.wallet_of('user_bob', 'GOLD_COINS');
SELECT throws_ok(
    format($$INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after)
             VALUES ('00000000-0000-0000-0000-0000000000a1', %s, 'GOLD_COINS', -50011, -1),
                    ('00000000-0000-0000-0000-0000000000a1', %s, 'GOLD_COINS', 50011, NULL)$$,
           pg_temp.wallet_of('user_bob', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'REVENUE')),
    '23514', 'value for domain wallet_balance violates check constraint "wallet_balance_range"',
    'an entry leaving a negative balance_after is rejected by its domain');

-- ---------------------------------------------------------------- stored balance = ledger, at commit

-- a correct manual posting (balance update + both legs, the player's chained) passes every check, deferred ones included
SELECT lives_ok(
    format($$UPDATE wallets SET balance = 50020 WHERE id = %1$s;
             INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after, entry_hash)
             VALUES ('00000000-0000-0000-0000-0000000000a1', %1$s, 'GOLD_COINS', 10, 50020,
                     pg_temp.chain('00000000-0000-0000-0000-0000000000a1', %1$s, 10, 50020)),
                    ('00000000-0000-0000-0000-0000000000a1', %2$s, 'GOLD_COINS', -10, NULL, NULL)$$,
           pg_temp.wallet_of('user_bob', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'TREASURY')),
    'a complete manual posting is accepted');
SELECT pg_temp.advance_head(pg_temp.wallet_of('user_bob', 'GOLD_COINS'));
SELECT lives_ok('SET CONSTRAINTS ALL IMMEDIATE', 'and its deferred balance checks pass');
SET CONSTRAINTS ALL DEFERRED;
SELECT is_empty('SELECT * FROM wallet_verify()', 'wallet_verify finds nothing wrong with it');

-- a direct balance update without an entry is accepted by the statement, then refused at commit
SELECT lives_ok(
    format('UPDATE wallets SET balance = balance + 1000 WHERE id = %s', pg_temp.wallet_of('user_charlie', 'GOLD_COINS')),
    'the stored balance check is deferred: the UPDATE itself passes');
SELECT throws_ok('SET CONSTRAINTS ALL IMMEDIATE', '23514',
    format('stored balance 26000 of wallet %s (user_charlie, GOLD_COINS) does not match its ledger (25000)',
           pg_temp.wallet_of('user_charlie', 'GOLD_COINS')),
    'a stored balance changed without a ledger entry cannot commit');
UPDATE wallets SET balance = 25000 WHERE user_id = 'user_charlie' AND asset_code = 'GOLD_COINS';
SET CONSTRAINTS ALL DEFERRED;

-- a player entry written without updating the stored balance first is refused by the INSERT
INSERT INTO transactions (id, reference_id, type, user_id, asset_code, amount, description)
VALUES ('00000000-0000-0000-0000-0000000000a2', 'lc_manual_2', 'TOPUP', 'user_charlie', 'GOLD_COINS', 5, 'manual');
SELECT throws_ok(
    format($$INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after)
             VALUES ('00000000-0000-0000-0000-0000000000a2', %s, 'GOLD_COINS', 5, 25005),
                    ('00000000-0000-0000-0000-0000000000a2', %s, 'GOLD_COINS', -5, NULL)$$,
           pg_temp.wallet_of('user_charlie', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'TREASURY')),
    '23514',
    format('ledger entry %s records balance_after 25005 but wallet %s (user_charlie, GOLD_COINS) stores 25000',
           (SELECT last_value + 1 FROM ledger_entries_id_seq), pg_temp.wallet_of('user_charlie', 'GOLD_COINS')),
    'an entry without the matching stored balance update is refused');
UPDATE wallets SET balance = 25005 WHERE user_id = 'user_charlie' AND asset_code = 'GOLD_COINS';
SELECT lives_ok(
    format($$INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after, entry_hash)
             VALUES ('00000000-0000-0000-0000-0000000000a2', %1$s, 'GOLD_COINS', 5, 25005,
                     pg_temp.chain('00000000-0000-0000-0000-0000000000a2', %1$s, 5, 25005)),
                    ('00000000-0000-0000-0000-0000000000a2', %2$s, 'GOLD_COINS', -5, NULL, NULL)$$,
           pg_temp.wallet_of('user_charlie', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'TREASURY')),
    'the same entries pass once the stored balance was updated first');
SELECT pg_temp.advance_head(pg_temp.wallet_of('user_charlie', 'GOLD_COINS'));
SELECT lives_ok('SET CONSTRAINTS ALL IMMEDIATE', 'and every deferred check passes at commit');
SET CONSTRAINTS ALL DEFERRED;

-- a player wallet opened directly with a balance but no entries
SELECT lives_ok($$INSERT INTO wallets (asset_code, kind, user_id, name, balance)
                  VALUES ('DIAMONDS', 'PLAYER', 'user_bob', 'Bob', 7)$$, 'the INSERT of a funded wallet passes the statement');
SELECT throws_ok('SET CONSTRAINTS ALL IMMEDIATE', '23514',
    format('stored balance 7 of wallet %s (user_bob, DIAMONDS) does not match its ledger (0)',
           pg_temp.wallet_of('user_bob', 'DIAMONDS')),
    'a wallet cannot be opened with money that is not in the ledger');
UPDATE wallets SET balance = 0 WHERE user_id = 'user_bob' AND asset_code = 'DIAMONDS';
SET CONSTRAINTS ALL DEFERRED;

-- ---------------------------------------------------------------- wallet row constraints

SELECT throws_ok($$UPDATE wallets SET balance = -1 WHERE user_id = 'user_alice' AND asset_code = 'GOLD_COINS'$$,
    '23514', 'value for domain wallet_balance violates check constraint "wallet_balance_range"',
    'a player balance cannot be negative (domain)');
SELECT throws_ok($$UPDATE wallets SET balance = 9007199254740992 WHERE user_id = 'user_alice' AND asset_code = 'GOLD_COINS'$$,
    '23514', 'value for domain wallet_balance violates check constraint "wallet_balance_range"',
    'a player balance cannot exceed 2^53-1 (domain)');
SELECT throws_ok($$INSERT INTO wallets (asset_code, kind, user_id, name, balance)
                   VALUES ('GOLD_COINS', 'PLAYER', 'user_alice', 'Alice again', 0)$$,
    '23505', NULL, 'one wallet per player and asset');
SELECT throws_ok($$INSERT INTO wallets (asset_code, kind, name) VALUES ('GOLD_COINS', 'TREASURY', 'second treasury')$$,
    '23505', NULL, 'one system wallet per asset and kind');
SELECT throws_ok($$INSERT INTO wallets (asset_code, kind, user_id, name, balance)
                   VALUES ('GOLD_COINS', 'PLAYER', 'user_zed', 'Zed', NULL)$$,
    '23514', NULL, 'a player wallet must store a balance');

-- ---------------------------------------------------------------- economy columns of transactions

SELECT throws_ok($$INSERT INTO transactions (reference_id, type, user_id, asset_code, amount, legs, item_id, description)
                   VALUES ('lc_p1', 'PURCHASE', 'user_bob', 'GOLD_COINS', 5,
                           '[{"asset_code": "GOLD_COINS", "amount": 5}]', 'x', 'x')$$,
    '23514', NULL, 'a transaction has either one asset and amount or legs, not both');
SELECT throws_ok($$INSERT INTO transactions (reference_id, type, user_id, item_id, description)
                   VALUES ('lc_p2', 'PURCHASE', 'user_bob', 'x', 'x')$$,
    '23514', NULL, 'a transaction has at least one of them');
SELECT throws_ok($$INSERT INTO transactions (reference_id, type, user_id, legs, item_id, description)
                   VALUES ('lc_p3', 'PURCHASE', 'user_bob', '{"asset_code": "GOLD_COINS", "amount": 5}', 'x', 'x')$$,
    '23514', NULL, 'legs are a JSON array');
SELECT throws_ok($$INSERT INTO transactions (reference_id, type, user_id, legs, item_id, description)
                   VALUES ('lc_p4', 'SPEND', 'user_bob', '[{"asset_code": "GOLD_COINS", "amount": 5}]', 'x', 'x')$$,
    '23514', NULL, 'only purchases and their reversals have legs');
SELECT throws_ok($$INSERT INTO transactions (reference_id, type, user_id, legs, description)
                   VALUES ('lc_p5', 'PURCHASE', 'user_bob', '[{"asset_code": "GOLD_COINS", "amount": 5}]', 'x')$$,
    '23514', NULL, 'a purchase names its item');
SELECT throws_ok($$INSERT INTO transactions (reference_id, type, user_id, asset_code, amount, description)
                   VALUES ('lc_r1', 'REVERSAL', 'user_bob', 'GOLD_COINS', 5, 'x')$$,
    '23514', NULL, 'a reversal names its original and reason');
SELECT throws_ok($$INSERT INTO transactions (reference_id, type, user_id, asset_code, amount, original_id, reason,
                                             description)
                   VALUES ('lc_r2', 'TOPUP', 'user_bob', 'GOLD_COINS', 5, pg_temp.tx('init_bob_gold_001'), 'why', 'x')$$,
    '23514', NULL, 'only a reversal names an original');

-- ---------------------------------------------------------------- holds: kept, changed once

SELECT lives_ok($$SELECT wallet_hold('user_charlie', 'GOLD_COINS', 100, 'lc_hold_1')$$, 'a hold is placed');
SELECT throws_ok($$DELETE FROM holds WHERE reference_id = 'lc_hold_1'$$, 'WL008',
    'holds are kept: DELETE of hold lc_hold_1 is not allowed', 'a hold cannot be deleted');
SELECT throws_ok($$UPDATE holds SET amount = 1 WHERE reference_id = 'lc_hold_1'$$, 'WL008',
    'hold lc_hold_1 is HELD and cannot change this way', 'a hold''s amount cannot change');
SELECT throws_ok($$UPDATE holds SET expires_at = expires_at + interval '1 hour' WHERE reference_id = 'lc_hold_1'$$,
    'WL008', 'hold lc_hold_1 is HELD and cannot change this way', 'a hold cannot be extended');
SELECT lives_ok($$SELECT wallet_void('lc_hold_1')$$, 'it is voided');
SELECT throws_ok($$UPDATE holds SET status = 'EXPIRED' WHERE reference_id = 'lc_hold_1'$$, 'WL008',
    'hold lc_hold_1 is VOIDED and cannot change this way', 'a hold changes only once');
SELECT throws_ok($$INSERT INTO holds (reference_id, wallet_id, user_id, asset_code, amount, created_at, expires_at)
                   VALUES ('lc_hold_2', pg_temp.wallet_of('user_charlie', 'GOLD_COINS'), 'user_charlie', 'DIAMONDS',
                           1, now(), now() + interval '1 minute')$$,
    '23503', NULL, 'a hold''s asset is its wallet''s');
SELECT throws_ok($$INSERT INTO holds (reference_id, wallet_id, user_id, asset_code, amount, created_at, expires_at)
                   VALUES ('lc_hold_2', pg_temp.wallet_of('user_charlie', 'GOLD_COINS'), 'user_charlie', 'GOLD_COINS',
                           1, now(), now())$$,
    '23514', NULL, 'a hold expires after it was made');
SELECT throws_ok($$INSERT INTO holds (reference_id, wallet_id, user_id, asset_code, amount, created_at, expires_at,
                                      status, closed_at)
                   VALUES ('lc_hold_2', pg_temp.wallet_of('user_charlie', 'GOLD_COINS'), 'user_charlie', 'GOLD_COINS',
                           1, now(), now() + interval '1 minute', 'CAPTURED', now())$$,
    '23514', NULL, 'a captured hold names its posting and captured amount');
SELECT throws_ok($$INSERT INTO holds (reference_id, wallet_id, user_id, asset_code, amount, created_at, expires_at,
                                      status, captured_amount, capture_transaction_id, closed_at)
                   VALUES ('lc_hold_2', pg_temp.wallet_of('user_charlie', 'GOLD_COINS'), 'user_charlie', 'GOLD_COINS',
                           1, now(), now() + interval '1 minute', 'CAPTURED', 2, pg_temp.tx('init_charlie_gold_001'),
                           now())$$,
    '23514', NULL, 'a capture takes no more than the hold');
SELECT throws_ok($$INSERT INTO holds (reference_id, wallet_id, user_id, asset_code, amount, created_at, expires_at,
                                      status)
                   VALUES ('lc_hold_2', pg_temp.wallet_of('user_charlie', 'GOLD_COINS'), 'user_charlie', 'GOLD_COINS',
                           1, now(), now() + interval '1 minute', 'VOIDED')$$,
    '23514', NULL, 'a closed hold has closed_at');

SELECT is_empty('SELECT * FROM wallet_verify()', 'the ledger is healthy after every refused change');

-- (last: the bare transaction stays in this rolled-back transaction, where wallet_verify would see it)
-- ---------------------------------------------------------------- a transaction has entries, at commit

SELECT lives_ok($$INSERT INTO transactions (id, reference_id, type, user_id, asset_code, amount, description)
                  VALUES ('00000000-0000-0000-0000-0000000000e0', 'bare_tx', 'TOPUP', 'user_bob', 'GOLD_COINS',
                          5, 'no entries')$$,
    'the has-entries check is deferred: a bare transaction row is accepted by the statement');
SELECT throws_ok('SET CONSTRAINTS ALL IMMEDIATE', '23514',
    'transaction 00000000-0000-0000-0000-0000000000e0 (reference id bare_tx) has no ledger entries',
    'a transaction without ledger entries cannot commit');
SET CONSTRAINTS ALL DEFERRED;

SELECT * FROM finish();
ROLLBACK;
