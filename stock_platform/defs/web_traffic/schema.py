"""Where the domain's data lives: its lake datasets and the `web_raw.access_logs` contract."""

from __future__ import annotations

from stock_platform.defs.web_traffic.settings import web_settings
from stock_platform.platform.warehouse import Column, WarehouseTable

RAW = "raw/web_access_logs"  # the day's log files, byte for byte as delivered
CLEAN = "clean/web_access_logs"  # Parquet of the contract below
REJECTED = "rejected/web_access_logs"  # lines failing parsing, with their reasons (full IPs)

# (column, BigQuery type, DuckDB type, description)
_COLUMNS: list[tuple[str, str, str, str]] = [
    ("log_date", "DATE", "DATE", "The partition day in WEB_LOGS_TIMEZONE"),
    ("ts", "TIMESTAMP", "TIMESTAMP", "Request time in UTC; its date in WEB_LOGS_TIMEZONE is log_date"),
    ("client_prefix", "STRING", "VARCHAR", "Client network: IPv4 /24 or IPv6 /48 (never the full IP)"),
    ("visitor_id", "STRING", "VARCHAR", "HMAC-SHA256(WEB_IP_SALT, ip|user_agent), 32 hex digits"),
    ("method", "STRING", "VARCHAR", "Request method as written; NULL for a request of another shape"),
    ("path", "STRING", "VARCHAR", "Request target up to '?', not percent-decoded"),
    ("query", "STRING", "VARCHAR", "What follows '?' (NULL without '?')"),
    ("protocol", "STRING", "VARCHAR", "Protocol as written (NULL in the legacy format)"),
    ("status", "INT64", "BIGINT", "HTTP status, 100-599"),
    ("response_bytes", "INT64", "BIGINT", "Response size in bytes ('-' is 0)"),
    ("referrer", "STRING", "VARCHAR", "Referer header; NULL when absent or '-'"),
    ("user_agent", "STRING", "VARCHAR", "User-Agent header; NULL when absent or '-'"),
    ("browser_family", "STRING", "VARCHAR", "ua-parser (uap-core) browser family, 'Other' if unknown"),
    ("browser_major", "STRING", "VARCHAR", "ua-parser browser major version"),
    ("os_family", "STRING", "VARCHAR", "ua-parser OS family"),
    ("device_family", "STRING", "VARCHAR", "ua-parser device family"),
    ("is_bot", "BOOL", "BOOLEAN", "ua-parser's device family is 'Spider'"),
    ("source_file", "STRING", "VARCHAR", "The raw file's name in its day folder"),
    ("line_number", "INT64", "BIGINT", "Line in that file, from 1; (log_date, source_file, line_number) is the key"),
]
ACCESS_LOGS = WarehouseTable(
    dataset=web_settings().raw_dataset,
    name="access_logs",
    partition_column="log_date",
    columns=tuple(Column(*column) for column in _COLUMNS),
    # dbt reads a day at a time and groups by visitor (sessions) and by page.
    clustering=("visitor_id", "path"),
)

# The columns of a rejected line in rejected/ (it keeps the line as received: full IPs).
REJECTED_COLUMNS = ("source_file", "line_number", "reason", "line")
REJECT_REASONS = (
    "invalid_utf8",
    "unparseable_line",
    "bad_client",
    "bad_timestamp",
    "bad_status",
    "bad_size",
    "outside_partition_day",
)
