-- wallet_history: a player's entries in one asset, newest first, paged by limit/offset or keyset.
BEGIN;
SELECT plan(29);

SELECT has_function('wallet_history', ARRAY['text', 'text', 'integer', 'integer', 'bigint'], 'wallet_history exists');

-- alice's gold: the opening balance, then four postings (and some noise in other wallets)
DO $$
BEGIN
    PERFORM wallet_topup('user_alice', 'GOLD_COINS', 100, 'h_topup', 'card');
    PERFORM wallet_spend('user_bob', 'GOLD_COINS', 5, 'h_noise_bob', 'hat');
    PERFORM wallet_spend('user_alice', 'GOLD_COINS', 30, 'h_spend', 'sword');
    PERFORM wallet_spend('user_alice', 'DIAMONDS', 10, 'h_noise_diamonds', 'gem');
    PERFORM wallet_bonus('user_alice', 'GOLD_COINS', 50, 'h_bonus', 'DAILY');
    PERFORM wallet_spend('user_alice', 'GOLD_COINS', 120, 'h_spend_2', 'shield');
END;
$$;

SELECT is(ARRAY(SELECT reference_id FROM wallet_history('user_alice', 'GOLD_COINS')),
    ARRAY['h_spend_2', 'h_bonus', 'h_spend', 'h_topup', 'init_alice_gold_001'],
    'newest first, only this player''s entries in this asset');
SELECT is(ARRAY(SELECT balance_after FROM wallet_history('user_alice', 'GOLD_COINS')),
    ARRAY[100000, 100120, 100070, 100100, 100000]::bigint[], 'the balance after each entry');
SELECT is(ARRAY(SELECT amount FROM wallet_history('user_alice', 'GOLD_COINS')),
    ARRAY[120, 50, 30, 100, 100000]::bigint[], 'amounts are the transactions'' positive amounts');
SELECT is(ARRAY(SELECT type::text FROM wallet_history('user_alice', 'GOLD_COINS')),
    ARRAY['SPEND', 'BONUS', 'SPEND', 'TOPUP', 'INITIAL_BALANCE'], 'the type tells the direction');
SELECT is(ARRAY(SELECT description FROM wallet_history('user_alice', 'GOLD_COINS')),
    ARRAY['Purchase: shield', 'Bonus: DAILY', 'Purchase: sword', 'Top-up via card', 'Initial balance'],
    'each with its description');
SELECT is((SELECT count(DISTINCT entry_id) FROM wallet_history('user_alice', 'GOLD_COINS'))::int, 5,
    'entry ids are distinct');
SELECT results_eq(
    $$SELECT transaction_id, created_at FROM wallet_history('user_alice', 'GOLD_COINS') WHERE reference_id = 'h_spend'$$,
    $$SELECT id, created_at FROM transactions WHERE reference_id = 'h_spend'$$,
    'rows carry the transaction id and time');
SELECT is((SELECT balance_after FROM wallet_history('user_alice', 'GOLD_COINS', 1)),
    (SELECT balance::bigint FROM wallets WHERE user_id = 'user_alice' AND asset_code = 'GOLD_COINS'),
    'the newest balance_after is the stored balance');

SELECT is(ARRAY(SELECT has_older FROM wallet_history('user_alice', 'GOLD_COINS')),
    ARRAY[true, true, true, true, false], 'has_older: every entry but the wallet''s first has an older one');

-- limit and offset
SELECT is(ARRAY(SELECT reference_id FROM wallet_history('user_alice', 'GOLD_COINS', 2)),
    ARRAY['h_spend_2', 'h_bonus'], 'limit 2: the two newest');
SELECT is(ARRAY(SELECT reference_id FROM wallet_history('user_alice', 'GOLD_COINS', 2, 2)),
    ARRAY['h_spend', 'h_topup'], 'limit 2 offset 2: the next two');
SELECT is(ARRAY(SELECT reference_id FROM wallet_history('user_alice', 'GOLD_COINS', 2, 4)),
    ARRAY['init_alice_gold_001'], 'the last page is short');
SELECT is_empty($$SELECT * FROM wallet_history('user_alice', 'GOLD_COINS', 2, 5)$$, 'past the end: no rows');
SELECT is(ARRAY(SELECT has_older FROM wallet_history('user_alice', 'GOLD_COINS', 2, 2)), ARRAY[true, true],
    'a page with more after it ends on a row that has older entries');

-- keyset: continue below the last entry id of the previous page
CREATE TEMP TABLE page1 AS SELECT * FROM wallet_history('user_alice', 'GOLD_COINS', p_limit => 2);
CREATE TEMP TABLE page2 AS
SELECT * FROM wallet_history('user_alice', 'GOLD_COINS', p_limit => 2, p_before_entry_id => (SELECT min(entry_id) FROM page1));
CREATE TEMP TABLE page3 AS
SELECT * FROM wallet_history('user_alice', 'GOLD_COINS', p_limit => 2, p_before_entry_id => (SELECT min(entry_id) FROM page2));
SELECT is(ARRAY(SELECT reference_id FROM page2), ARRAY['h_spend', 'h_topup'], 'keyset page 2 continues page 1');
SELECT is(ARRAY(SELECT reference_id FROM page3), ARRAY['init_alice_gold_001'], 'keyset page 3 ends the history');
SELECT is_empty(format($$SELECT * FROM wallet_history('user_alice', 'GOLD_COINS', p_before_entry_id => %s)$$,
                       (SELECT min(entry_id) FROM page3)), 'below the oldest entry: nothing');
-- a posting that lands between page requests does not shift a keyset page (it does shift an offset page)
SELECT lives_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 1, 'h_late', 'card')$$, 'a later posting');
SELECT is(ARRAY(SELECT reference_id FROM wallet_history('user_alice', 'GOLD_COINS', p_limit => 2,
                                                         p_before_entry_id => (SELECT min(entry_id) FROM page1))),
    ARRAY['h_spend', 'h_topup'], 'a keyset page is stable under new postings');

SELECT is_empty($$SELECT * FROM wallet_history('user_bob', 'DIAMONDS')$$,
    'a player with no wallet in that asset has an empty history');

-- errors
SELECT throws_ok($$SELECT * FROM wallet_history('user_nobody', 'GOLD_COINS')$$, 'WL002',
    'player user_nobody has no wallet', 'a player with no wallet at all is WL002');
SELECT throws_ok($$SELECT * FROM wallet_history('user_alice', 'SILVER')$$, 'WL003',
    'asset SILVER not found', 'an unknown asset is WL003');
SELECT throws_ok($$SELECT * FROM wallet_history('user_alice', NULL)$$, 'WL006',
    'invalid argument asset_code: is required', 'the asset is required');
SELECT throws_ok($$SELECT * FROM wallet_history('user_alice', 'GOLD_COINS', 0)$$, 'WL006',
    'invalid argument limit: must be an integer from 1 to 100', 'limit 0');
SELECT throws_ok($$SELECT * FROM wallet_history('user_alice', 'GOLD_COINS', 101)$$, 'WL006',
    'invalid argument limit: must be an integer from 1 to 100', 'limit 101: above _wallet_max_page()');
SELECT lives_ok($$SELECT * FROM wallet_history('user_alice', 'GOLD_COINS', 100)$$, 'limit 100 is the largest page');
SELECT throws_ok($$SELECT * FROM wallet_history('user_alice', 'GOLD_COINS', 10, -1)$$, 'WL006',
    'invalid argument offset: must be a non-negative integer', 'a negative offset');
SELECT throws_ok($$SELECT * FROM wallet_history('', 'GOLD_COINS')$$, 'WL006',
    'invalid argument user_id: must be a non-empty string of at most 128 characters', 'an empty user_id');

SELECT * FROM finish();
ROLLBACK;
