"""``DynamoDbLock``: a conditional PutItem (absent or expired) to take the lock, a conditional
DeleteItem (still ours) to release it, in a table keyed like Terraform's lock tables. Separate
because it is the only backend on AWS: boto3 is imported inside its methods, only when a
DynamoDB lock is used.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from steps.core.errors import ConfigError, StepFailed
from steps.locks.base import Attempt, Lock, Record

DYNAMODB_KEY = "LockID"  # the partition key Terraform's lock tables use: one table serves both


class DynamoDbLock(Lock):
    kind = "dynamodb"

    def __init__(self, table: str, item: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.item = item
        self._client: Any = None

    @property
    def where(self) -> str:
        return f"DynamoDB table {self.table} item {DYNAMODB_KEY}={self.item}"

    def client(self) -> Any:
        if self._client is None:
            from steps.services import aws

            self._client = aws.client(
                "dynamodb",
                read_timeout=10,
                attempts=4,
                no_region="--lock dynamodb: no AWS region is set. Set AWS_REGION (or "
                "AWS_DEFAULT_REGION, or a region in the AWS profile) to the region of the "
                f"table {self.table}.",
            )
        return self._client

    def _call(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
        )

        try:
            return getattr(self.client(), operation)(TableName=self.table, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise
            if code == "ResourceNotFoundException":
                raise ConfigError(
                    f"--lock-path {self.table}: no such DynamoDB table in this account and "
                    "region. mlsteps does not create it; create it once with: aws dynamodb "
                    f"create-table --table-name {self.table} --attribute-definitions "
                    f"AttributeName={DYNAMODB_KEY},AttributeType=S --key-schema "
                    f"AttributeName={DYNAMODB_KEY},KeyType=HASH --billing-mode PAY_PER_REQUEST"
                ) from None
            message = exc.response.get("Error", {}).get("Message", "")
            hint = ""
            if code in ("AccessDeniedException", "UnrecognizedClientException"):
                hint = (
                    " The credentials need dynamodb:PutItem, GetItem and DeleteItem on the table."
                )
            raise StepFailed(
                f"DynamoDB refused {operation} on the lock table {self.table}: {code} "
                f"{message[:300]}.{hint}"
            ) from None
        except NoCredentialsError:
            raise ConfigError(
                "--lock dynamodb: no AWS credentials found. Give them the usual way "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or a role)."
            ) from None
        except BotoCoreError as exc:
            raise StepFailed(
                f"cannot reach DynamoDB for the lock table {self.table}: {exc}"
            ) from None

    def _key(self) -> dict[str, Any]:
        return {DYNAMODB_KEY: {"S": self.item}}

    def _get(self) -> Record | None:
        got = self._call("get_item", Key=self._key(), ConsistentRead=True)
        return _from_item(got.get("Item"))

    def _attempt(self, record: Record) -> Attempt:
        from botocore.exceptions import ClientError

        item = {
            **self._key(),
            "holder": {"S": record.holder},
            "purpose": {"S": record.purpose},
            "acquired": {"N": repr(record.acquired)},
            # Epoch seconds: a table with DynamoDB's TTL on `expires` clears dead locks itself.
            "expires": {"N": repr(record.expires)},
        }
        try:
            put = self._call(
                "put_item",
                Item=item,
                ConditionExpression="attribute_not_exists(#k) OR #e < :now OR #h = :me",
                ExpressionAttributeNames={"#k": DYNAMODB_KEY, "#e": "expires", "#h": "holder"},
                ExpressionAttributeValues={
                    ":now": {"N": repr(time.time())},
                    ":me": {"S": record.holder},
                },
                ReturnValues="ALL_OLD",
            )
        except ClientError:  # the condition failed: held, and not expired
            return Attempt(False, self._get())
        old = _from_item(put.get("Attributes"))
        return Attempt(True, old if old is not None and old.holder != record.holder else None)

    def _release(self, record: Record) -> None:
        from botocore.exceptions import ClientError

        try:
            self._call(
                "delete_item",
                Key=self._key(),
                ConditionExpression="#h = :me",
                ExpressionAttributeNames={"#h": "holder"},
                ExpressionAttributeValues={":me": {"S": record.holder}},
            )
        except ClientError:
            held = self._get()
            by = held.describe(time.time()) if held else "another holder"
            self.on_warning(
                f"the lock {self.where} was no longer ours to release: {by} took it over "
                "(this run outlived its --lock-ttl)."
            )


def _from_item(item: Mapping[str, Any] | None) -> Record | None:
    if not item:
        return None
    return Record.from_json(
        {
            "holder": item.get("holder", {}).get("S"),
            "purpose": item.get("purpose", {}).get("S"),
            "acquired": item.get("acquired", {}).get("N"),
            "expires": item.get("expires", {}).get("N"),
        }
    )
