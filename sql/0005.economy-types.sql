-- Economy operations, part 1: the new transaction types. A value added to an enum cannot be used in the
-- transaction that adds it, so the tables and constraints that use them come in the next migration.
-- depends: 0004.trust

ALTER TYPE transaction_type ADD VALUE IF NOT EXISTS 'PURCHASE';  -- player -> REVENUE in 1 to 3 assets at once
ALTER TYPE transaction_type ADD VALUE IF NOT EXISTS 'REVERSAL';  -- undoes (part of) an earlier posting
ALTER TYPE transaction_type ADD VALUE IF NOT EXISTS 'CAPTURE';   -- player -> REVENUE: a hold made a spend
