-- wallet_expire_holds: optional maintenance marking HELD holds past expires_at EXPIRED (closed at their expiry);
-- nothing depends on it: what is available is the same before and after.
BEGIN;
SELECT plan(12);

SELECT has_function('wallet_expire_holds', ARRAY[]::text[], 'wallet_expire_holds exists');
SELECT function_returns('wallet_expire_holds', ARRAY[]::text[], 'integer', 'it returns how many it marked');

SELECT is(wallet_expire_holds(), 0, 'no holds: nothing to mark');
SELECT lives_ok($$
    SELECT wallet_hold('user_bob', 'GOLD_COINS', 100, 'ex_short_1', 1),
           wallet_hold('user_charlie', 'GOLD_COINS', 200, 'ex_short_2', 1),
           wallet_hold('user_bob', 'GOLD_COINS', 300, 'ex_long', 600),
           wallet_hold('user_bob', 'GOLD_COINS', 400, 'ex_voided', 1),
           wallet_hold('user_alice', 'GOLD_COINS', 500, 'ex_captured', 1)$$,
    'five holds: two short ones, a long one, a short one voided, a short one captured');
SELECT lives_ok($$SELECT wallet_void('ex_voided'), wallet_capture('ex_captured')$$, 'one voided, one captured');
SELECT is(wallet_expire_holds(), 0, 'before any expiry: nothing to mark');
SELECT pg_sleep(1.1);
CREATE TEMP TABLE before AS
SELECT b.* FROM (VALUES ('user_bob'), ('user_charlie'), ('user_alice')) u (id), wallet_balances(u.id, 'GOLD_COINS') b;
SELECT is(wallet_expire_holds(), 2, 'the two short HELD holds past expires_at are marked');
SELECT results_eq(
    $$SELECT reference_id::text, status, closed_at = expires_at, closed_by FROM holds ORDER BY reference_id$$,
    $$VALUES ('ex_captured', 'CAPTURED'::hold_status, false, session_user::text COLLATE "default"),
             ('ex_long', 'HELD'::hold_status, NULL, NULL),
             ('ex_short_1', 'EXPIRED'::hold_status, true, NULL),
             ('ex_short_2', 'EXPIRED'::hold_status, true, NULL),
             ('ex_voided', 'VOIDED'::hold_status, false, session_user::text COLLATE "default")$$,
    'EXPIRED, closed at their expiry; the active, voided and captured holds untouched');
SELECT results_eq(
    $$SELECT b.* FROM (VALUES ('user_bob'), ('user_charlie'), ('user_alice')) u (id), wallet_balances(u.id, 'GOLD_COINS') b$$,
    'SELECT * FROM before', 'balances, held and available are the same before and after (expired holds stopped counting already)');
SELECT results_eq($$SELECT held, available FROM wallet_balances('user_bob', 'GOLD_COINS')$$,
    $$VALUES (300::bigint, 49700::bigint)$$, 'only the long hold counts');
SELECT is(wallet_expire_holds(), 0, 'a second run finds nothing');
SELECT is_empty('SELECT * FROM wallet_verify()', 'wallet_verify: healthy');

SELECT * FROM finish();
ROLLBACK;
