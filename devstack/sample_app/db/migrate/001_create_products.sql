-- The first catalogue table; legacy_sku is dropped again by 003 (expand/contract).
CREATE TABLE products (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  legacy_sku TEXT
);
INSERT INTO products (name, legacy_sku) VALUES ('Teapot', 'TP-1'), ('Mug', 'MG-2');
