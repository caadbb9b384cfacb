-- Recreates the catalog of RisingWave meta snapshot 1001 (data as of 2026-11-20 09:59:05 UTC).
-- Written by `rwsnap meta inspect --ddl` from the stored definitions, each relation
-- after everything it depends on. It recreates the catalog, not the data: sources
-- and tables with connectors read from upstream again.
--
-- Credentials are redacted and replaced by psql variables; set each one:
--   psql -v password_analyst=... -v source_src_payments_properties_sasl_mechanism=... -v source_src_payments_properties_sasl_username=... -v source_src_payments_properties_sasl_password=... -v sink_sink_top_customers_pg_jdbc_url=... -f THIS_FILE
--   password_analyst                         password of user analyst
--   source_src_payments_properties_sasl_mechanism properties.sasl.mechanism of source src_payments
--   source_src_payments_properties_sasl_username properties.sasl.username of source src_payments
--   source_src_payments_properties_sasl_password properties.sasl.password of source src_payments
--   sink_sink_top_customers_pg_jdbc_url      jdbc.url of sink sink_top_customers_pg
\set ON_ERROR_STOP on

-- Users (built-in root and postgres exist already).
CREATE USER analyst WITH NOSUPERUSER NOCREATEDB NOCREATEUSER LOGIN PASSWORD :'password_analyst';

-- Database dev.
CREATE DATABASE IF NOT EXISTS dev;
\connect dev

-- connection conn_msk (id 0)
CREATE CONNECTION conn_msk WITH (provider = 'aws', service.name = 'com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0', type = 'privatelink');

-- function fn_discount (id 0)
CREATE FUNCTION fn_discount(price double precision, pct double precision) RETURNS double precision LANGUAGE python AS 'fn_discount' USING LINK 'http://udf:8815';

-- source src_events (id 1001)
CREATE SOURCE src_events (event_id BIGINT, user_id BIGINT, payload VARCHAR, ts TIMESTAMPTZ) WITH (connector = 'kafka', topic = 'src_events', properties.bootstrap.server = 'kafka:9092') FORMAT PLAIN ENCODE JSON;

-- source src_payments (id 1021)
CREATE SOURCE src_payments (payment_id BIGINT, order_id BIGINT, amount DOUBLE PRECISION, paid_at TIMESTAMPTZ) WITH (connector = 'kafka', topic = 'src_payments', properties.bootstrap.server = 'kafka:9092', properties.security.protocol = 'SASL_SSL', properties.sasl.mechanism = :'source_src_payments_properties_sasl_mechanism', properties.sasl.username = :'source_src_payments_properties_sasl_username', properties.sasl.password = :'source_src_payments_properties_sasl_password') FORMAT PLAIN ENCODE JSON;

-- table orders (id 1002)
CREATE TABLE orders (id BIGINT, name VARCHAR, amount DOUBLE PRECISION, created_at TIMESTAMPTZ);

-- table customers (id 1010)
CREATE TABLE customers (id BIGINT, name VARCHAR, amount DOUBLE PRECISION, created_at TIMESTAMPTZ);

-- materialized_view mv_revenue_by_day (id 1003)
CREATE MATERIALIZED VIEW mv_revenue_by_day AS SELECT name AS k, count(*) AS cnt, sum(amount) AS total, window_start FROM TUMBLE(orders, created_at, INTERVAL '1 MINUTE') GROUP BY name, window_start;

-- materialized_view mv_top_customers (id 1006)
CREATE MATERIALIZED VIEW mv_top_customers AS SELECT name AS k, count(*) AS cnt, sum(amount) AS total, window_start FROM TUMBLE(orders, created_at, INTERVAL '1 MINUTE') GROUP BY name, window_start;

-- materialized_view mv_orders_per_minute (id 1011)
CREATE MATERIALIZED VIEW mv_orders_per_minute AS SELECT name AS k, count(*) AS cnt, sum(amount) AS total, window_start FROM TUMBLE(orders, created_at, INTERVAL '1 MINUTE') GROUP BY name, window_start;

-- materialized_view mv_orders_per_minute (id 1013)
CREATE MATERIALIZED VIEW mv_orders_per_minute AS SELECT name AS k, count(*) AS cnt, sum(amount) AS total, window_start FROM TUMBLE(orders, created_at, INTERVAL '1 MINUTE') GROUP BY name, window_start;

-- materialized_view mv_paid_orders (id 1022)
CREATE MATERIALIZED VIEW mv_paid_orders AS SELECT o.name AS k, count(*) AS cnt, sum(p.amount) AS total, window_start FROM TUMBLE(src_payments, paid_at, INTERVAL '1 MINUTE') AS p JOIN orders AS o ON p.order_id = o.id GROUP BY o.name, window_start;

-- materialized_view mv_paid_by_customer (id 1024)
CREATE MATERIALIZED VIEW mv_paid_by_customer AS SELECT k, sum(cnt) AS cnt, sum(total) AS total, max(window_start) AS window_start FROM mv_paid_orders GROUP BY k;

-- materialized_view mv_top_customers_paid (id 1026)
CREATE MATERIALIZED VIEW mv_top_customers_paid AS SELECT * FROM mv_paid_by_customer ORDER BY total DESC LIMIT 10;

-- materialized_view mv_live_metrics (id 1032)
CREATE MATERIALIZED VIEW mv_live_metrics AS SELECT name AS k, count(*) AS cnt, sum(amount) AS total, window_start FROM TUMBLE(orders, created_at, INTERVAL '1 MINUTE') GROUP BY name, window_start;

-- index idx_orders_id (id 1016)
CREATE INDEX idx_orders_id ON orders(id);

-- view v_recent_orders (id 1020)
CREATE VIEW v_recent_orders AS SELECT * FROM orders WHERE created_at > now() - INTERVAL '1 hour';

-- view v_top_customers_paid (id 1027)
CREATE VIEW v_top_customers_paid AS SELECT k, total FROM mv_top_customers_paid WHERE total > 100;

-- view v_top_customers_paid_names (id 1028)
CREATE VIEW v_top_customers_paid_names AS SELECT k FROM v_top_customers_paid;

-- view v_recent_big_orders (id 1029)
CREATE VIEW v_recent_big_orders AS SELECT * FROM v_recent_orders WHERE amount > 1000;

-- sink sink_mv_revenue_by_day (id 1018)
CREATE SINK sink_mv_revenue_by_day FROM mv_revenue_by_day WITH (connector = 'blackhole');

-- sink sink_top_customers_pg (id 1030)
CREATE SINK sink_top_customers_pg FROM mv_top_customers_paid WITH (connector = 'jdbc', jdbc.url = :'sink_sink_top_customers_pg_jdbc_url', table.name = 'top_customers', type = 'upsert', primary_key = 'k');

-- Privileges.
GRANT CONNECT ON DATABASE dev TO analyst;
GRANT USAGE ON SCHEMA public TO analyst;
GRANT SELECT ON MATERIALIZED VIEW mv_top_customers_paid TO analyst;
GRANT SELECT ON VIEW v_top_customers_paid TO analyst;
GRANT SELECT ON SOURCE src_payments TO analyst;
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO analyst WITH GRANT OPTION;
