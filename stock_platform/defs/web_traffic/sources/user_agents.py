"""User agent families from ua-parser (the uap-core rules), cached by distinct user agent."""

from __future__ import annotations

from functools import lru_cache

from ua_parser import parse

UserAgentFields = tuple[str | None, str | None, str | None, str | None, bool | None]


@lru_cache(maxsize=65536)
def user_agent_fields(user_agent: str | None) -> UserAgentFields:
    """(browser_family, browser_major, os_family, device_family, is_bot); families are 'Other'
    when no rule matches, and everything is NULL without a user agent. A bot is what ua-parser
    calls the device family 'Spider'."""
    if user_agent is None:
        return None, None, None, None, None
    result = parse(user_agent).with_defaults()
    device = result.device.family
    return result.user_agent.family, result.user_agent.major, result.os.family, device, device == "Spider"
