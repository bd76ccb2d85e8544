-- _wallet_max_batch: the most operations one call of wallet_post_batch takes (the HTTP route takes fewer:
-- service/limits.py). Each new reference id of a batch takes one advisory lock until the batch commits, so a
-- server's lock table (max_locks_per_transaction x max_connections) must hold the batches that run at once.
CREATE OR REPLACE FUNCTION _wallet_max_batch() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 10000;
