"""The only boto3/botocore importer: DynamoDB tables, DynamoDB Streams, error translation."""
