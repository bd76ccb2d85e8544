-- wallet_topup: TREASURY -> player, opens the wallet on a first purchase, idempotent per reference id.
BEGIN;
SELECT plan(66);

SELECT has_function('wallet_topup', ARRAY['text', 'text', 'bigint', 'text', 'text', 'jsonb', 'text'], 'wallet_topup exists');
SELECT function_returns('wallet_topup', ARRAY['text', 'text', 'bigint', 'text', 'text', 'jsonb', 'text'], 'wallet_posting',
    'it returns one wallet_posting row');

-- ---------------------------------------------------------------- a top-up

CREATE TEMP TABLE first_topup AS
SELECT * FROM wallet_topup('user_alice', 'GOLD_COINS', 2500, 'topup_001', 'stripe', '{"order": 42}');

SELECT results_eq(
    $$SELECT user_id, asset_code, amount, balance, transaction_type, replayed FROM first_topup$$,
    $$VALUES ('user_alice', 'GOLD_COINS', 2500::bigint, 102500::bigint, 'TOPUP'::transaction_type, false)$$,
    'a top-up returns the player, asset, amount, new balance, type and replayed = false');
SELECT isnt((SELECT transaction_id FROM first_topup), NULL, 'it returns a transaction id');
SELECT ok((SELECT created_at > now() AND created_at < clock_timestamp() FROM first_topup),
    'created_at is the clock when the posting held its wallet (after the transaction began, before now)');
SELECT is((SELECT created_at FROM transactions WHERE reference_id = 'topup_001'), (SELECT created_at FROM first_topup),
    'the transaction row stores that time');
SELECT is((SELECT balance::bigint FROM wallets WHERE user_id = 'user_alice' AND asset_code = 'GOLD_COINS'), 102500::bigint,
    'the stored balance is raised by the amount');
SELECT is((SELECT updated_at FROM wallets WHERE user_id = 'user_alice' AND asset_code = 'GOLD_COINS'),
    (SELECT created_at FROM first_topup),
    'the wallet''s updated_at is the posting time');
SELECT results_eq(
    $$SELECT type, user_id::text, asset_code, amount::bigint, payment_method::text, metadata, description
        FROM transactions WHERE reference_id = 'topup_001'$$,
    $$VALUES ('TOPUP'::transaction_type, 'user_alice', 'GOLD_COINS', 2500::bigint, 'stripe', '{"order": 42}'::jsonb,
              'Top-up via stripe')$$,
    'the transaction row records the request, its metadata and a description');
SELECT is((SELECT id FROM transactions WHERE reference_id = 'topup_001'), (SELECT transaction_id FROM first_topup),
    'the returned transaction id is the stored one');
SELECT results_eq(
    $$SELECT w.kind, e.amount, e.balance_after::bigint FROM ledger_entries e JOIN wallets w ON w.id = e.wallet_id
       WHERE e.transaction_id = (SELECT transaction_id FROM first_topup) ORDER BY e.id$$,
    $$VALUES ('PLAYER'::wallet_kind, 2500::bigint, 102500::bigint), ('TREASURY'::wallet_kind, -2500::bigint, NULL::bigint)$$,
    'two legs: the player credited with balance_after, the GOLD_COINS treasury debited');
SELECT is((SELECT e.asset_code FROM ledger_entries e JOIN wallets w ON w.id = e.wallet_id
            WHERE e.transaction_id = (SELECT transaction_id FROM first_topup) AND w.kind = 'TREASURY'),
    'GOLD_COINS', 'the treasury leg is in the top-up''s asset');
SELECT is((SELECT balance FROM wallet_system_balances WHERE asset_code = 'GOLD_COINS' AND kind = 'TREASURY'),
    -177500::bigint, 'the treasury''s derived balance is minus everything it issued');
SELECT is((SELECT balance::bigint FROM wallets WHERE asset_code = 'GOLD_COINS' AND kind = 'TREASURY'), NULL::bigint,
    'the treasury row itself is not updated (no hot row)');

-- ---------------------------------------------------------------- replay

CREATE TEMP TABLE replay AS
SELECT * FROM wallet_topup('user_alice', 'GOLD_COINS', 2500, 'topup_001', 'stripe', '{"order": 42}');
SELECT is((SELECT transaction_id FROM replay), (SELECT transaction_id FROM first_topup),
    'same key, same request: the same transaction id');
SELECT is((SELECT replayed FROM replay), true, 'the answer is flagged as a replay');
SELECT results_eq('SELECT amount, balance, created_at FROM replay', 'SELECT amount, balance, created_at FROM first_topup',
    'the replay repeats the original amount, balance and time');
SELECT is((SELECT count(*) FROM transactions)::int, 5, 'a replay writes no transaction');
SELECT is((SELECT count(*) FROM ledger_entries)::int, 10, 'a replay writes no ledger entry');
SELECT is((SELECT balance::bigint FROM wallets WHERE user_id = 'user_alice' AND asset_code = 'GOLD_COINS'), 102500::bigint,
    'a replay does not move the balance');
SELECT is((SELECT replayed FROM wallet_topup('user_alice', 'GOLD_COINS', 2500, 'topup_001', 'stripe', '{"other": 1}')),
    true, 'metadata is not part of the request''s identity: different metadata still replays');

-- the replay reports the balance the original left, not today's
SELECT lives_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 100, 'topup_002', 'stripe')$$, 'a later top-up');
SELECT is((SELECT balance FROM wallet_topup('user_alice', 'GOLD_COINS', 2500, 'topup_001', 'stripe')), 102500::bigint,
    'a replay after a later posting still reports the original balance');

-- ---------------------------------------------------------------- conflict (WL004), one differing field at a time

SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 2501, 'topup_001', 'stripe')$$, 'WL004',
    format('reference id topup_001 already belongs to transaction %s (TOPUP of 2500 GOLD_COINS for user_alice), not to this TOPUP of 2501 GOLD_COINS for user_alice',
           (SELECT transaction_id FROM first_topup)),
    'same key, different amount: WL004 naming both requests');
SELECT throws_ok($$SELECT wallet_topup('user_bob', 'GOLD_COINS', 2500, 'topup_001', 'stripe')$$, 'WL004',
    format('reference id topup_001 already belongs to transaction %s (TOPUP of 2500 GOLD_COINS for user_alice), not to this TOPUP of 2500 GOLD_COINS for user_bob',
           (SELECT transaction_id FROM first_topup)),
    'same key, different player: WL004');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'DIAMONDS', 2500, 'topup_001', 'stripe')$$, 'WL004',
    format('reference id topup_001 already belongs to transaction %s (TOPUP of 2500 GOLD_COINS for user_alice), not to this TOPUP of 2500 DIAMONDS for user_alice',
           (SELECT transaction_id FROM first_topup)),
    'same key, different asset: WL004');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 2500, 'topup_001', 'paypal')$$, 'WL004', NULL,
    'same key, different payment_method: WL004');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 2500, 'topup_001')$$, 'WL004', NULL,
    'same key, payment_method left out: WL004');
SELECT throws_ok($$SELECT wallet_bonus('user_alice', 'GOLD_COINS', 2500, 'topup_001', 'stripe')$$, 'WL004',
    format('reference id topup_001 already belongs to transaction %s (TOPUP of 2500 GOLD_COINS for user_alice), not to this BONUS of 2500 GOLD_COINS for user_alice',
           (SELECT transaction_id FROM first_topup)),
    'same key, different operation type (bonus): WL004');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 100000, 'init_alice_gold_001')$$, 'WL004', NULL,
    'a seed reference id is taken too: keys are unique across operation types');
SELECT is(pg_temp.error_of($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 1, 'topup_001', 'stripe')$$) -> 'detail',
    to_jsonb(json_build_object('reference_id', 'topup_001', 'transaction_id', (SELECT transaction_id FROM first_topup))::text),
    'the WL004 detail carries the existing transaction id as JSON');
SELECT is((SELECT count(*) FROM transactions)::int, 6, 'conflicts write nothing');

-- ---------------------------------------------------------------- a first purchase opens the wallet

SELECT results_eq(
    $$SELECT user_id, asset_code, amount, balance, replayed FROM wallet_topup('user_dave', 'GOLD_COINS', 500, 'topup_dave_1', 'card')$$,
    $$VALUES ('user_dave', 'GOLD_COINS', 500::bigint, 500::bigint, false)$$,
    'a top-up for an unknown player succeeds');
SELECT results_eq(
    $$SELECT kind, name, balance::bigint FROM wallets WHERE user_id = 'user_dave'$$,
    $$VALUES ('PLAYER'::wallet_kind, 'user_dave', 500::bigint)$$,
    'it opened one player wallet, named after the user id, holding the amount');
SELECT lives_ok($$SELECT wallet_topup('user_alice', 'LOYALTY_POINTS', 10, 'topup_alice_lp', 'card')$$,
    'a top-up in an asset the player never held');
SELECT results_eq(
    $$SELECT name, balance::bigint FROM wallets WHERE user_id = 'user_alice' AND asset_code = 'LOYALTY_POINTS'$$,
    $$VALUES ('Alice', 10::bigint)$$, 'opens that wallet under the player''s existing display name');

-- ---------------------------------------------------------------- named arguments

SELECT results_eq(
    $$SELECT amount, balance FROM wallet_topup(p_user_id => 'user_bob', p_asset_code => 'GOLD_COINS', p_amount => 5,
                                               p_reference_id => 'topup_named')$$,
    $$VALUES (5::bigint, 50005::bigint)$$, 'callable with named arguments, optional ones left out');
SELECT is((SELECT description FROM transactions WHERE reference_id = 'topup_named'), 'Top-up',
    'without a payment method the description is plain');

-- ---------------------------------------------------------------- unknown asset (WL003)

SELECT throws_ok($$SELECT wallet_topup('user_alice', 'RUBIES', 1, 'topup_rubies', 'card')$$, 'WL003',
    'asset RUBIES not found', 'an unknown asset is WL003');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'gold_coins', 1, 'topup_lower', 'card')$$, 'WL003',
    'asset gold_coins not found', 'asset codes are case-sensitive');

-- ---------------------------------------------------------------- balance limit (WL007)

SELECT is((SELECT balance FROM wallet_topup('user_rich', 'GOLD_COINS', 9007199254740991, 'topup_rich_1')),
    9007199254740991::bigint, 'a balance may reach exactly 2^53-1');
SELECT throws_ok($$SELECT wallet_topup('user_rich', 'GOLD_COINS', 1, 'topup_rich_2')$$, 'WL007',
    'balance limit exceeded: player user_rich has 9007199254740991 GOLD_COINS and cannot receive 1',
    'one more credit is WL007, naming player, asset and amounts');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 9007199254740991, 'topup_alice_max')$$, 'WL007',
    'balance limit exceeded: player user_alice has 102600 GOLD_COINS and cannot receive 9007199254740991',
    'a credit that would pass the limit is WL007');
SELECT is((SELECT count(*) FROM transactions WHERE reference_id IN ('topup_rich_2', 'topup_alice_max'))::int, 0,
    'a refused top-up writes nothing and leaves its key free');

-- ---------------------------------------------------------------- invalid arguments (WL006)

SELECT throws_ok($$SELECT wallet_topup(NULL, 'GOLD_COINS', 1, 'topup_bad')$$, 'WL006',
    'invalid argument user_id: is required', 'a null user_id');
SELECT throws_ok($$SELECT wallet_topup('', 'GOLD_COINS', 1, 'topup_bad')$$, 'WL006',
    'invalid argument user_id: must be a non-empty string of at most 128 characters', 'an empty user_id');
SELECT throws_ok(format($$SELECT wallet_topup(%L, 'GOLD_COINS', 1, 'topup_bad')$$, repeat('u', 129)), 'WL006',
    'invalid argument user_id: must be a non-empty string of at most 128 characters', 'a 129-character user_id');
SELECT lives_ok(format($$SELECT wallet_topup(%L, 'GOLD_COINS', 1, 'topup_long_user')$$, repeat('u', 128)),
    'a 128-character user_id is fine');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 1, NULL)$$, 'WL006',
    'invalid argument reference_id: is required', 'a null reference_id');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 1, '')$$, 'WL006',
    'invalid argument reference_id: must be a non-empty string of at most 128 characters', 'an empty reference_id');
SELECT throws_ok(format($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 1, %L)$$, repeat('r', 129)), 'WL006',
    'invalid argument reference_id: must be a non-empty string of at most 128 characters', 'a 129-character reference_id');
SELECT throws_ok($$SELECT wallet_topup('user_alice', NULL, 1, 'topup_bad')$$, 'WL006',
    'invalid argument asset_code: is required', 'a null asset_code');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 0, 'topup_bad')$$, 'WL006',
    'invalid argument amount: must be an integer from 1 to 9007199254740991, not 0', 'amount 0');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', -1, 'topup_bad')$$, 'WL006',
    'invalid argument amount: must be an integer from 1 to 9007199254740991, not -1', 'amount -1');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 9007199254740992, 'topup_bad')$$, 'WL006',
    'invalid argument amount: must be an integer from 1 to 9007199254740991, not 9007199254740992', 'amount 2^53');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', NULL, 'topup_bad')$$, 'WL006',
    'invalid argument amount: must be an integer from 1 to 9007199254740991, not null', 'a null amount');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 1, 'topup_bad', '')$$, 'WL006',
    'invalid argument payment_method: must be a non-empty string of at most 128 characters', 'an empty payment_method');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 1, 'topup_bad', 'card', '[1, 2]')$$, 'WL006',
    'invalid argument metadata: must be a JSON object', 'metadata that is an array');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 1, 'topup_bad', 'card', '"text"')$$, 'WL006',
    'invalid argument metadata: must be a JSON object', 'metadata that is a string');
SELECT is(pg_temp.error_of($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 0, 'topup_bad')$$) - 'message',
    '{"sqlstate": "WL006", "column": "amount", "detail": "{\"field\" : \"amount\", \"message\" : \"must be an integer from 1 to 9007199254740991, not 0\"}"}'::jsonb,
    'WL006 names the field in COLUMN and in a JSON DETAIL');
SELECT is((SELECT count(*) FROM transactions WHERE reference_id = 'topup_bad')::int, 0, 'invalid calls write nothing');

SELECT is_empty('SELECT * FROM wallet_verify()', 'the ledger is healthy after every top-up');

-- ids must be printable: no control, bidi or zero-width characters (one can hide what an id says)
SELECT throws_ok($$SELECT wallet_topup(E'user_\u202Ealice', 'GOLD_COINS', 1, 'topup_bidi')$$, 'WL006',
    'invalid argument user_id: must not contain control, invisible formatting (zero-width, bidi) or private-use characters',
    'a bidi override in a user id');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 1, E'ref\u200B1')$$, 'WL006',
    'invalid argument reference_id: must not contain control, invisible formatting (zero-width, bidi) or private-use characters',
    'a zero-width space in a reference id');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 1, 'topup_ctl', E'card\n')$$, 'WL006',
    'invalid argument payment_method: must not contain control, invisible formatting (zero-width, bidi) or private-use characters',
    'a newline in an operation field');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 1, 'topup_actor', p_actor => E'key\u0007')$$, 'WL006',
    'invalid argument actor: must not contain control, invisible formatting (zero-width, bidi) or private-use characters',
    'a control character in the actor');

SELECT * FROM finish();
ROLLBACK;
