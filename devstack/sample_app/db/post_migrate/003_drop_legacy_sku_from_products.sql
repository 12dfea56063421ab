-- Contract: only once every host runs code that no longer reads legacy_sku (SQLite >= 3.35).
ALTER TABLE products DROP COLUMN legacy_sku;
