-- wallet_post_batch: many top-ups, bonuses and spends in one call; each answered exactly as its single
-- function answers it when the operations are applied one after another.
BEGIN;
SELECT plan(27);

SELECT has_function('wallet_post_batch', ARRAY['jsonb', 'text'], 'wallet_post_batch exists');
SELECT function_returns('wallet_post_batch', ARRAY['jsonb', 'text'], 'setof record', 'it returns one row per operation');

-- one operation applied by its single function: the posting (without its transaction id and time) or the error
CREATE FUNCTION pg_temp.single(p_op jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_posting wallet_posting;
    v_state text; v_message text; v_detail text; v_column text;
BEGIN
    CASE p_op ->> 'operation'
        WHEN 'topup' THEN
            v_posting := wallet_topup(p_op ->> 'user_id', p_op ->> 'asset_code', (p_op ->> 'amount')::bigint,
                                      p_op ->> 'reference_id', p_op ->> 'payment_method', p_op -> 'metadata');
        WHEN 'bonus' THEN
            v_posting := wallet_bonus(p_op ->> 'user_id', p_op ->> 'asset_code', (p_op ->> 'amount')::bigint,
                                      p_op ->> 'reference_id', p_op ->> 'bonus_type', p_op -> 'metadata');
        ELSE
            v_posting := wallet_spend(p_op ->> 'user_id', p_op ->> 'asset_code', (p_op ->> 'amount')::bigint,
                                      p_op ->> 'reference_id', p_op ->> 'item_id', p_op -> 'metadata');
    END CASE;
    RETURN jsonb_build_object('user_id', v_posting.user_id, 'asset_code', v_posting.asset_code,
                              'amount', v_posting.amount, 'balance', v_posting.balance,
                              'type', v_posting.transaction_type, 'replayed', v_posting.replayed);
EXCEPTION WHEN SQLSTATE 'WL001' OR SQLSTATE 'WL002' OR SQLSTATE 'WL003' OR SQLSTATE 'WL004' OR SQLSTATE 'WL006'
            OR SQLSTATE 'WL007' THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_column = COLUMN_NAME;
    RETURN jsonb_build_object('sqlstate', v_state, 'message', v_message, 'detail', v_detail::jsonb,
                              'field', nullif(v_column, ''));
END;
$$;
-- the same shape for one row of wallet_post_batch
CREATE FUNCTION pg_temp.answer(r jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT CASE WHEN r ->> 'sqlstate' IS NULL
                THEN jsonb_build_object('user_id', r -> 'user_id', 'asset_code', r -> 'asset_code', 'amount', r -> 'amount',
                                        'balance', r -> 'balance', 'type', r -> 'transaction_type', 'replayed', r -> 'replayed')
                ELSE jsonb_build_object('sqlstate', r -> 'sqlstate', 'message', r -> 'message', 'detail', r -> 'detail',
                                        'field', r -> 'field') END
$$;
-- each run (the batch, then the single functions) has its own players and keys: the prefix p1- or p2- on every
-- user id and reference id; answers are compared with p2- read as p1- and transaction ids masked
CREATE FUNCTION pg_temp.normal(p_answer jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT regexp_replace(replace(p_answer::text, 'p2-', 'p1-'),
                          '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', 'UUID', 'g')::jsonb
$$;
-- the players of a run, as the seed's (alice, bob, charlie), and a posting, a hold and a player near the balance
-- limit whose keys the scenario reuses
CREATE FUNCTION pg_temp.setup(p text) RETURNS void LANGUAGE sql AS $$
    SELECT wallet_topup(p || 'alice', 'GOLD_COINS', 100000, p || 'init-1');
    SELECT wallet_topup(p || 'alice', 'DIAMONDS', 500, p || 'init-2');
    SELECT wallet_topup(p || 'bob', 'GOLD_COINS', 50000, p || 'init-3');
    SELECT wallet_topup(p || 'charlie', 'GOLD_COINS', 25000, p || 'init-4');
    SELECT wallet_topup(p || 'bob', 'DIAMONDS', 10, p || 'b-before', 'stripe');
    SELECT wallet_hold(p || 'charlie', 'GOLD_COINS', 1000, p || 'b-held', 600, 'sword');
    SELECT wallet_topup(p || 'rich', 'GOLD_COINS', _wallet_max_amount() - 5, p || 'b-rich', 'stripe');
$$;
CREATE TEMP TABLE scenario AS SELECT $$[
  {"operation": "topup", "user_id": "alice", "asset_code": "GOLD_COINS", "amount": 2500, "reference_id": "b-1", "payment_method": "stripe", "metadata": {"order": 1}},
  {"operation": "bonus", "user_id": "alice", "asset_code": "GOLD_COINS", "amount": 100, "reference_id": "b-2", "bonus_type": "DAILY"},
  {"operation": "spend", "user_id": "alice", "asset_code": "GOLD_COINS", "amount": 103000, "reference_id": "b-3", "item_id": "castle"},
  {"operation": "spend", "user_id": "alice", "asset_code": "GOLD_COINS", "amount": 1000, "reference_id": "b-4", "item_id": "tower"},
  {"operation": "topup", "user_id": "alice", "asset_code": "GOLD_COINS", "amount": 2500, "reference_id": "b-1", "payment_method": "stripe"},
  {"operation": "topup", "user_id": "alice", "asset_code": "GOLD_COINS", "amount": 2501, "reference_id": "b-1", "payment_method": "stripe"},
  {"operation": "topup", "user_id": "bob", "asset_code": "DIAMONDS", "amount": 10, "reference_id": "b-before", "payment_method": "stripe"},
  {"operation": "bonus", "user_id": "bob", "asset_code": "DIAMONDS", "amount": 10, "reference_id": "b-before", "bonus_type": "X"},
  {"operation": "bonus", "user_id": "bob", "asset_code": "GOLD_COINS", "amount": 5, "reference_id": "b-held", "bonus_type": "X"},
  {"operation": "spend", "user_id": "charlie", "asset_code": "GOLD_COINS", "amount": 24001, "reference_id": "b-5", "item_id": "held-back"},
  {"operation": "spend", "user_id": "charlie", "asset_code": "GOLD_COINS", "amount": 24000, "reference_id": "b-6", "item_id": "all-free"},
  {"operation": "topup", "user_id": "alice", "asset_code": "RUBIES", "amount": 1, "reference_id": "b-7"},
  {"operation": "spend", "user_id": "nobody", "asset_code": "GOLD_COINS", "amount": 1, "reference_id": "b-8", "item_id": "x"},
  {"operation": "spend", "user_id": "bob", "asset_code": "LOYALTY_POINTS", "amount": 1, "reference_id": "b-9", "item_id": "x"},
  {"operation": "spend", "user_id": "newbie", "asset_code": "DIAMONDS", "amount": 1, "reference_id": "b-10", "item_id": "x"},
  {"operation": "bonus", "user_id": "newbie", "asset_code": "GOLD_COINS", "amount": 50, "reference_id": "b-10", "bonus_type": "WELCOME"},
  {"operation": "spend", "user_id": "newbie", "asset_code": "DIAMONDS", "amount": 1, "reference_id": "b-11", "item_id": "x"},
  {"operation": "spend", "user_id": "newbie", "asset_code": "GOLD_COINS", "amount": 20, "reference_id": "b-12", "item_id": "x"},
  {"operation": "topup", "user_id": "rich", "asset_code": "GOLD_COINS", "amount": 6, "reference_id": "b-13"},
  {"operation": "topup", "user_id": "rich", "asset_code": "GOLD_COINS", "amount": 5, "reference_id": "b-14"},
  {"operation": "bonus", "user_id": "alice", "asset_code": "GOLD_COINS", "amount": 0, "reference_id": "b-15", "bonus_type": "X"},
  {"operation": "bonus", "user_id": "alice", "asset_code": "GOLD_COINS", "amount": 5, "reference_id": "b-16"},
  {"operation": "topup", "user_id": "alice\u200b", "asset_code": "GOLD_COINS", "amount": 5, "reference_id": "b-17"},
  {"operation": "topup", "user_id": "alice", "asset_code": "GOLD_COINS", "amount": 5, "reference_id": "b-18", "metadata": [1]},
  {"operation": "spend", "user_id": "alice", "asset_code": "DIAMONDS", "amount": 500, "reference_id": "b-19", "item_id": "gem"},
  {"operation": "spend", "user_id": "alice", "asset_code": "DIAMONDS", "amount": 1, "reference_id": "b-20", "item_id": "gem"}
]$$::jsonb AS ops;

-- the scenario's operations for a run: user ids and reference ids prefixed
CREATE FUNCTION pg_temp.operations(p text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_agg(e.op || jsonb_build_object('user_id', p || (e.op ->> 'user_id'),
                                                'reference_id', p || (e.op ->> 'reference_id')) ORDER BY e.n)
      FROM scenario s, jsonb_array_elements(s.ops) WITH ORDINALITY AS e (op, n)
$$;
-- what the ledger holds for a run's players: every wallet's balance, and the keys that posted
CREATE FUNCTION pg_temp.state(p text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT pg_temp.normal(jsonb_build_object(
        'wallets', (SELECT jsonb_object_agg(w.user_id || '/' || w.asset_code, w.balance) FROM wallets w
                     WHERE w.user_id LIKE p || '%'),
        'keys', (SELECT jsonb_agg(t.reference_id ORDER BY t.reference_id) FROM transactions t
                  WHERE t.reference_id LIKE p || '%')))
$$;


SELECT pg_temp.setup('p1-');
SELECT pg_temp.setup('p2-');
CREATE TEMP TABLE batch_answers AS
SELECT r.ordinal, pg_temp.normal(pg_temp.answer(to_jsonb(r))) AS answer, r.transaction_id, r.created_at
  FROM wallet_post_batch(pg_temp.operations('p1-')) r;
CREATE TEMP TABLE single_answers AS
SELECT e.n::integer AS ordinal, pg_temp.normal(pg_temp.single(e.op)) AS answer
  FROM jsonb_array_elements(pg_temp.operations('p2-')) WITH ORDINALITY AS e (op, n) ORDER BY e.n;
CREATE TEMP TABLE batch_tx AS
SELECT t.* FROM transactions t WHERE t.created_at = (SELECT max(created_at) FROM batch_answers);

SELECT is((SELECT count(*) FROM batch_answers), 26::bigint, 'one answer per operation');
SELECT results_eq('SELECT ordinal, answer FROM batch_answers ORDER BY ordinal',
                  'SELECT ordinal, answer FROM single_answers ORDER BY ordinal',
                  'each answer (posting, replay or error: SQLSTATE, message, detail, field) is the single function''s');
SELECT is(pg_temp.state('p1-'), pg_temp.state('p2-'),
          'the ledger ends where the single functions leave it: every balance, the same keys posted');
-- the scenario covers what it claims to (so the equality above compares something)
SELECT results_eq(
    $$SELECT coalesce(answer ->> 'sqlstate', CASE WHEN (answer ->> 'replayed')::boolean THEN 'replay' ELSE 'posted' END)
        FROM batch_answers ORDER BY ordinal$$,
    $$VALUES ('posted'), ('posted'), ('WL001'), ('posted'), ('replay'), ('WL004'), ('replay'), ('WL004'), ('WL004'),
             ('WL001'), ('posted'), ('WL003'), ('WL002'), ('WL001'), ('WL002'), ('posted'), ('WL001'), ('posted'),
             ('WL007'), ('posted'), ('WL006'), ('WL006'), ('WL006'), ('WL006'), ('posted'), ('WL001')$$,
    'the scenario: postings, replays (earlier in the batch; in the ledger), conflicts, each refusal');
SELECT is((SELECT answer ->> 'field' FROM batch_answers WHERE ordinal = 22), 'bonus_type', 'a missing field is named');
SELECT is_empty('SELECT * FROM wallet_verify()', 'wallet_verify finds nothing wrong after the batch (chains, hashes, events)');
SELECT is((SELECT array_agg(t.reference_id::text ORDER BY i.seq) FROM event_inbox i JOIN batch_tx t ON t.id = i.transaction_id),
          ARRAY['p1-b-1', 'p1-b-2', 'p1-b-4', 'p1-b-6', 'p1-b-10', 'p1-b-12', 'p1-b-14', 'p1-b-19'],
          'every posting of the batch is in the event inbox once, in request order');
SELECT is((SELECT count(*) FROM ledger_entries e JOIN batch_tx t ON t.id = e.transaction_id), 16::bigint,
          'two entries per posting');
SELECT is((SELECT array_agg(DISTINCT t.actor) FROM batch_tx t), ARRAY[session_user::text],
          'the actor is the calling role by default');
SELECT is((SELECT count(DISTINCT transaction_id) FROM batch_answers WHERE ordinal IN (1, 5)), 1::bigint,
          'a replay inside the batch answers with its first posting''s transaction');

-- ---------------------------------------------------------------- the posting rows themselves

CREATE TEMP TABLE one AS SELECT * FROM wallet_post_batch(
    '[{"operation": "bonus", "user_id": "user_bob", "asset_code": "GOLD_COINS", "amount": 7, "reference_id": "c-1",
       "bonus_type": "SEASON", "metadata": {"season": 7}}]', 'season-job');
SELECT results_eq(
    $$SELECT t.type, t.user_id::text, t.amount::bigint, t.bonus_type::text, t.metadata, t.actor, t.description, t.created_at
        FROM transactions t WHERE t.reference_id = 'c-1'$$,
    $$SELECT 'BONUS'::transaction_type, 'user_bob', 7::bigint, 'SEASON', '{"season": 7}'::jsonb, 'season-job', 'Bonus: SEASON',
             (SELECT created_at FROM one)$$,
    'the transaction records the request, metadata, actor and description like wallet_bonus');
SELECT results_eq(
    $$SELECT w.kind, e.amount, e.balance_after::bigint FROM ledger_entries e JOIN wallets w ON w.id = e.wallet_id
       WHERE e.transaction_id = pg_temp.tx('c-1') ORDER BY e.id$$,
    $$VALUES ('PLAYER'::wallet_kind, 7::bigint, 50007::bigint), ('BONUS_POOL'::wallet_kind, -7::bigint, NULL::bigint)$$,
    'two legs: the player credited, the bonus pool debited');
SELECT is((SELECT chain_head FROM wallets WHERE id = pg_temp.wallet_of('user_bob', 'GOLD_COINS')),
          (SELECT entry_hash FROM ledger_entries WHERE transaction_id = pg_temp.tx('c-1') AND balance_after IS NOT NULL),
          'the wallet''s chain head is its new entry''s hash');
SELECT is((SELECT transaction_id FROM one), pg_temp.tx('c-1'), 'the row returns the stored transaction id');

-- ---------------------------------------------------------------- a batch of one wallet, many times

SELECT is((SELECT max(balance) FILTER (WHERE ordinal = 300) FROM wallet_post_batch(
              (SELECT jsonb_agg(jsonb_build_object('operation', 'topup', 'user_id', 'many', 'asset_code', 'DIAMONDS',
                                                   'amount', g, 'reference_id', 'm-' || g) ORDER BY g)
                 FROM generate_series(1, 300) g))),
          45150::bigint, 'three hundred top-ups of one new wallet: each sees the one before (1 + ... + 300)');
SELECT is((SELECT count(*) FROM ledger_entries WHERE wallet_id = pg_temp.wallet_of('many', 'DIAMONDS')), 300::bigint,
          'one entry each');
SELECT is_empty('SELECT * FROM wallet_verify()', 'wallet_verify finds nothing wrong with their chain');

-- ---------------------------------------------------------------- the whole call refused

SELECT is(pg_temp.error_of($$SELECT * FROM wallet_post_batch('{"operation": "topup"}')$$) ->> 'column', 'operations',
          'not an array: WL006 operations');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_post_batch('[]')$$) ->> 'message',
          'invalid argument operations: must hold 1 to 10000 operations, not 0', 'an empty array: WL006');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_post_batch(NULL)$$) ->> 'sqlstate', 'WL006', 'NULL: WL006');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_post_batch((SELECT jsonb_agg(jsonb_build_object('operation', 'topup',
              'user_id', 'x', 'asset_code', 'GOLD_COINS', 'amount', 1, 'reference_id', 'big-' || g)) FROM generate_series(1, 10001) g))$$)
          ->> 'sqlstate', 'WL006', '10001 operations: WL006');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_post_batch('[{"operation": "topup", "user_id": "x", "asset_code": "GOLD_COINS",
              "amount": 1, "reference_id": "bad-actor"}]', '')$$) ->> 'column', 'actor', 'an invalid actor: WL006 actor');
SELECT is((SELECT count(*) FROM transactions WHERE reference_id LIKE 'big-%' OR reference_id = 'bad-actor'), 0::bigint,
          'a refused call writes nothing');

-- ---------------------------------------------------------------- shapes a psql caller can get wrong

SELECT results_eq(
    $$SELECT field, message FROM wallet_post_batch('[
        "topup",
        {"operation": "refund", "user_id": "x", "asset_code": "GOLD_COINS", "amount": 1, "reference_id": "s-2"},
        {"operation": "topup", "user_id": "x", "asset_code": "GOLD_COINS", "amount": 1, "reference_id": "s-3", "item_id": "x"},
        {"operation": "topup", "user_id": 7, "asset_code": "GOLD_COINS", "amount": 1, "reference_id": "s-4"},
        {"operation": "topup", "user_id": "x", "asset_code": "GOLD_COINS", "amount": "1", "reference_id": "s-5"},
        {"operation": "topup", "user_id": "x", "asset_code": "GOLD_COINS", "amount": 1.5, "reference_id": "s-6"},
        {"operation": "topup", "user_id": "x", "asset_code": "GOLD_COINS", "amount": 1e30, "reference_id": "s-7"},
        {"operation": "topup", "user_id": "x", "asset_code": "GOLD_COINS", "amount": 1, "reference_id": "s-8", "payment_method": null, "metadata": null}
      ]') ORDER BY ordinal$$,
    $$VALUES ('operation', 'invalid argument operation: each operation must be a JSON object'),
             ('operation', 'invalid argument operation: must be one of topup, bonus, spend'),
             ('item_id', 'invalid argument item_id: is not a field of a topup'),
             ('user_id', 'invalid argument user_id: must be a string'),
             ('amount', 'invalid argument amount: must be an integer from 1 to 9007199254740991, not "1"'),
             ('amount', 'invalid argument amount: must be an integer from 1 to 9007199254740991, not 1.5'),
             ('amount', 'invalid argument amount: must be an integer from 1 to 9007199254740991, not 1000000000000000000000000000000'),
             (NULL, NULL)$$,
    'each wrong shape is named (JSON nulls are absent fields)');
SELECT is((SELECT count(*) FROM transactions WHERE reference_id LIKE 's-%'), 1::bigint,
          'only the valid operation posted');

SELECT * FROM finish();
ROLLBACK;
