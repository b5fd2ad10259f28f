"""One folder per domain, autoloaded by dg (`dg list defs`). A domain imports the platform
(stock_platform.platform), never another domain."""
