"""The Kinesis policies: the daemon's allows exactly the AWS calls its Kinesis modules make (and the stream
reads AWS requires to describe a streaming destination), scoped to the seo-* streams and seo_* tables, with
no write beyond registering its own consumer; the operator's covers `seo-sync kinesis enable` and
`seo-sync kinesis consumers`. Each action is allowed on the resource type AWS authorizes it on."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AWS = ROOT / "daemon" / "seo_sync" / "aws"
DAEMON_MODULES = ("kinesis.py", "kinesis_efo.py", "kinesis_source.py")
OPERATOR_MODULES = ("kinesis_admin.py",)
# The DynamoDB calls of aws/tables.py that the daemon makes on its tables (covered by iam-daemon.json's test).
DAEMON_TABLE_CALLS = {"dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Scan"}
# What AWS requires beside the calls themselves ("Using IAM policies for Amazon Kinesis Data Streams and
# Amazon DynamoDB", docs.aws.amazon.com/amazondynamodb/latest/developerguide/kds_iam.html): describing a
# table's streaming destination needs DescribeStreamSummary and DescribeStream on the stream; enabling one
# needs ListStreams, PutRecords and DescribeStream, and the first enable in an account creates DynamoDB's
# service-linked role for it.
DESCRIBE_DESTINATION_EXTRA = {"kinesis:DescribeStream", "kinesis:DescribeStreamSummary"}
OPERATOR_EXTRA = {"kinesis:DescribeStream", "kinesis:ListStreams", "kinesis:PutRecords", "iam:CreateServiceLinkedRole"}
# Resource types, from the Service Authorization Reference ("Actions, resources, and condition keys for
# Amazon Kinesis Data Streams" and "... for Amazon DynamoDB"): the ARN each action is allowed on here
# must be of its type. ListStreams has no resource type, so only "*" grants it.
STREAM, CONSUMER = "arn:aws:kinesis:*:*:stream/seo-*", "arn:aws:kinesis:*:*:stream/seo-*/consumer/*"
TABLE = "arn:aws:dynamodb:*:*:table/seo_*"
SLR = ("arn:aws:iam::*:role/aws-service-role/kinesisreplication.dynamodb.amazonaws.com/"
       "AWSServiceRoleForDynamoDBKinesisDataStreamsReplication")
RESOURCE_TYPE = {
    "kinesis:CreateStream": STREAM, "kinesis:DescribeStream": STREAM, "kinesis:DescribeStreamSummary": STREAM,
    "kinesis:GetRecords": STREAM, "kinesis:GetShardIterator": STREAM, "kinesis:ListShards": STREAM,
    "kinesis:ListStreamConsumers": STREAM, "kinesis:PutRecords": STREAM, "kinesis:RegisterStreamConsumer": STREAM,
    "kinesis:DescribeStreamConsumer": CONSUMER, "kinesis:SubscribeToShard": CONSUMER,
    "kinesis:DeregisterStreamConsumer": CONSUMER, "kinesis:ListStreams": "*",
    "dynamodb:DescribeKinesisStreamingDestination": TABLE, "dynamodb:EnableKinesisStreamingDestination": TABLE,
    "dynamodb:DescribeTable": TABLE, "dynamodb:GetItem": TABLE, "dynamodb:Scan": TABLE,
    "iam:CreateServiceLinkedRole": SLR,
}
# The receivers whose calls go to AWS, and the service each belongs to.
RECEIVERS = {"client": "kinesis", "self.client": "kinesis", "self.efo": "kinesis", "self.ddb": "dynamodb",
             "source.ddb": "dynamodb"}
WRITES_ALLOWED_TO_DAEMON = {"kinesis:RegisterStreamConsumer"}


def _pascal(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


def calls(modules: tuple[str, ...]) -> set[str]:
    """`service:Action` for each AWS call in the modules (a method called on a client, or passed to _call)."""
    found = set()
    for module in modules:
        for node in ast.walk(ast.parse((AWS / module).read_text())):
            if isinstance(node, ast.Attribute) and ast.unparse(node.value) in RECEIVERS \
                    and re.fullmatch(r"[a-z_]+", node.attr) and not node.attr.startswith("_"):
                found.add(f"{RECEIVERS[ast.unparse(node.value)]}:{_pascal(node.attr)}")
    return found


def allowed(name: str) -> dict[str, set[str]]:
    """Action -> the resources a policy allows it on."""
    policy = json.loads((ROOT / "config" / name).read_text())
    assert policy["Version"] == "2012-10-17"
    out: dict[str, set[str]] = {}
    for st in policy["Statement"]:
        assert st["Effect"] == "Allow" and "NotAction" not in st and "NotResource" not in st
        for action in st["Action"]:
            assert "*" not in action
            out.setdefault(action, set()).update(st["Resource"])
    return out


def test_the_daemon_policy_allows_exactly_what_the_kinesis_daemon_calls():
    """Every Kinesis/DynamoDB call of the daemon's Kinesis modules is allowed, with what AWS requires for the
    destination check, and nothing else is."""
    expected = calls(DAEMON_MODULES) | DAEMON_TABLE_CALLS | DESCRIBE_DESTINATION_EXTRA
    assert set(allowed("iam-daemon-kinesis.json")) == expected


def test_the_daemon_policy_is_scoped_and_reads_only():
    """Only seo_* tables and seo-* streams; the one write is registering this host's consumer."""
    for action, resources in allowed("iam-daemon-kinesis.json").items():
        for r in resources:
            assert r.startswith(("arn:aws:dynamodb:*:*:table/seo_", "arn:aws:kinesis:*:*:stream/seo-")), r
        verb = re.match(r"[a-z]+:([A-Z][a-z]+)", action)
        assert verb is not None
        assert verb.group(1) in ("Describe", "Get", "List", "Scan", "Subscribe") or action in WRITES_ALLOWED_TO_DAEMON


def test_the_operator_policy_covers_the_kinesis_commands():
    """`kinesis enable` and `kinesis consumers` can make every call they make."""
    assert set(allowed("iam-kinesis-operator.json")) == calls(OPERATOR_MODULES) | OPERATOR_EXTRA


def test_every_action_is_allowed_on_its_own_resource_type_only():
    """A stream action on the stream ARN, a consumer action on the consumer ARN, a table action on the table
    ARN: an ARN of another type would grant nothing (or, for "*", too much)."""
    for name in ("iam-daemon-kinesis.json", "iam-kinesis-operator.json"):
        for action, resources in allowed(name).items():
            assert resources == {RESOURCE_TYPE[action]}, (name, action, resources)


def test_the_service_linked_role_can_only_be_the_replication_role():
    """iam:CreateServiceLinkedRole is limited to DynamoDB's Kinesis replication role, as AWS's example does."""
    policy = json.loads((ROOT / "config" / "iam-kinesis-operator.json").read_text())
    (st,) = [st for st in policy["Statement"] if "iam:CreateServiceLinkedRole" in st["Action"]]
    assert st["Action"] == ["iam:CreateServiceLinkedRole"]
    assert st["Condition"] == {"StringLike": {"iam:AWSServiceName": "kinesisreplication.dynamodb.amazonaws.com"}}
