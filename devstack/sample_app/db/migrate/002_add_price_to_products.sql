-- Expand: a new column with a default, safe while hosts still run the previous release.
ALTER TABLE products ADD COLUMN price_cents INTEGER NOT NULL DEFAULT 0;
UPDATE products SET price_cents = 1200 WHERE name = 'Teapot';
UPDATE products SET price_cents = 800 WHERE name = 'Mug';
