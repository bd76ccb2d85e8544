-- The assets of the game economy and, per asset, its three system wallets.
-- depends: 0001.schema

INSERT INTO assets (code, name) VALUES
    ('GOLD_COINS', 'Gold Coins'),
    ('DIAMONDS', 'Diamonds'),
    ('LOYALTY_POINTS', 'Loyalty Points')
ON CONFLICT (code) DO NOTHING;

INSERT INTO wallets (asset_code, kind, name)
SELECT a.code, k.kind, a.name || ' ' || k.label
  FROM assets a
 CROSS JOIN (VALUES ('TREASURY'::wallet_kind, 'Treasury'),
                    ('BONUS_POOL'::wallet_kind, 'Bonus Pool'),
                    ('REVENUE'::wallet_kind, 'Revenue')) AS k (kind, label)
ON CONFLICT DO NOTHING;
