"""A boto3 client as the steps that call AWS make it: bounded timeouts and retries, and a
missing region turned into the step's own exit-2 message. boto3 is imported here, inside the
function, so that modules using it stay light to import.

Endpoint and credentials come from boto3's usual chain (AWS_ENDPOINT_URL(_<SERVICE>),
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a role).
"""

from __future__ import annotations

from typing import Any

from steps.core.errors import ConfigError


def client(service: str, *, no_region: str, read_timeout: float, attempts: int) -> Any:
    """boto3's client for `service`; no_region: the ConfigError's message when no region is
    set (it names the option that needs AWS, and which region to set)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import NoRegionError

    config = Config(
        connect_timeout=10,
        read_timeout=read_timeout,
        retries={"mode": "standard", "max_attempts": attempts},
    )
    try:
        return boto3.client(service, config=config)
    except NoRegionError:
        raise ConfigError(no_region) from None
