"""Schema serving: the writer and reader roles, the four tables and the indexes of their reads.

Reads (ARCHITECTURE.md, "Domain: serving"): one ticker's latest row (stock_latest's key), one
ticker's history over a date range (stock_daily_metrics' key, ticker first), one day across
tickers (the trade_date index).

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STOCK_DAILY_METRICS_COLUMNS = """
    trade_date date NOT NULL,
    ticker text NOT NULL,
    name text,
    market text NOT NULL,
    close bigint NOT NULL,
    volume bigint,
    market_cap bigint,
    daily_return double precision,
    ma_5 double precision,
    ma_20 double precision,
    ma_60 double precision,
    volatility_20 double precision,
    high_52w bigint,
    low_52w bigint,
    return_5d double precision,
    return_20d double precision,
    volume_ratio_20 double precision,
    ma_ratio_5_20 double precision,
    pct_from_52w_high double precision
"""


def upgrade() -> None:
    # Roles are cluster-wide: another database, or the admin (Cloud SQL: deploy/README.md), may
    # have created them, and made the migrating user a writer, already.
    op.execute("""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'serving_writer') THEN
                CREATE ROLE serving_writer NOLOGIN;
            END IF;
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'serving_reader') THEN
                CREATE ROLE serving_reader NOLOGIN;
            END IF;
            IF NOT pg_has_role(current_user, 'serving_writer', 'MEMBER') THEN
                GRANT serving_writer TO CURRENT_USER;
            END IF;
        END
        $$
    """)
    # Every member of the writer role (the publishing steps' users) reads and advances the revision.
    op.execute("ALTER TABLE serving_schema_version OWNER TO serving_writer")
    op.execute("CREATE SCHEMA serving AUTHORIZATION serving_writer")
    op.execute("GRANT USAGE ON SCHEMA serving TO serving_reader")
    # The tables belong to the writer role; the reader may only SELECT, also from later tables.
    op.execute("SET LOCAL ROLE serving_writer")
    op.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA serving GRANT SELECT ON TABLES TO serving_reader")
    op.execute(f"""
        CREATE TABLE serving.stock_daily_metrics ({STOCK_DAILY_METRICS_COLUMNS},
            PRIMARY KEY (ticker, trade_date)
        )
    """)
    op.execute("CREATE INDEX stock_daily_metrics_by_day ON serving.stock_daily_metrics (trade_date)")
    op.execute(f"""
        CREATE TABLE serving.stock_latest ({STOCK_DAILY_METRICS_COLUMNS},
            PRIMARY KEY (ticker)
        )
    """)
    op.execute("CREATE INDEX stock_latest_by_day ON serving.stock_latest (trade_date)")
    op.execute("""
        CREATE TABLE serving.market_daily_summary (
            trade_date date NOT NULL,
            market text NOT NULL,
            listings bigint,
            advancers bigint,
            decliners bigint,
            unchanged bigint,
            total_volume bigint,
            total_traded_value bigint,
            total_market_cap bigint,
            cap_weighted_return double precision,
            PRIMARY KEY (trade_date, market)
        )
    """)
    op.execute("""
        CREATE TABLE serving.web_daily_traffic (
            log_date date PRIMARY KEY,
            requests bigint,
            page_views bigint,
            unique_visitors bigint,
            sessions bigint,
            bounce_rate double precision,
            avg_session_duration_s double precision,
            bytes_sent bigint,
            share_4xx double precision,
            share_5xx double precision,
            bot_request_share double precision
        )
    """)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("DROP SCHEMA serving CASCADE")
