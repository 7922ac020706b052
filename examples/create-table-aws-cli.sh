#!/usr/bin/env bash
# The documented AuthHero table with the AWS CLI: PK/SK, GSI1 (user by email) and GSI2 (tenant by
# custom domain), both projecting ALL, on-demand billing, TTL on `ttl`. Same definition as
# examples/cloudformation.yaml and `authhero-dynamo create-table`.
#
#   examples/create-table-aws-cli.sh [TABLE]          table: $1, else DYNAMODB_TABLE_NAME, else authhero
#   ENDPOINT=http://127.0.0.1:8000 examples/create-table-aws-cli.sh   (DynamoDB Local)
#
# Region and credentials come from the AWS CLI's usual configuration (AWS_REGION, AWS_PROFILE, ...).
set -euo pipefail

TABLE=${1:-${DYNAMODB_TABLE_NAME:-authhero}}
EP=()
[ -n "${ENDPOINT:-}" ] && EP=(--endpoint-url "$ENDPOINT")

aws dynamodb create-table "${EP[@]}" \
  --table-name "$TABLE" \
  --attribute-definitions \
    AttributeName=PK,AttributeType=S \
    AttributeName=SK,AttributeType=S \
    AttributeName=GSI1PK,AttributeType=S \
    AttributeName=GSI1SK,AttributeType=S \
    AttributeName=GSI2PK,AttributeType=S \
    AttributeName=GSI2SK,AttributeType=S \
  --key-schema \
    AttributeName=PK,KeyType=HASH \
    AttributeName=SK,KeyType=RANGE \
  --global-secondary-indexes \
    "[{\"IndexName\":\"GSI1\",\"KeySchema\":[{\"AttributeName\":\"GSI1PK\",\"KeyType\":\"HASH\"},{\"AttributeName\":\"GSI1SK\",\"KeyType\":\"RANGE\"}],\"Projection\":{\"ProjectionType\":\"ALL\"}},{\"IndexName\":\"GSI2\",\"KeySchema\":[{\"AttributeName\":\"GSI2PK\",\"KeyType\":\"HASH\"},{\"AttributeName\":\"GSI2SK\",\"KeyType\":\"RANGE\"}],\"Projection\":{\"ProjectionType\":\"ALL\"}}]" \
  --billing-mode PAY_PER_REQUEST \
  --output text --query 'TableDescription.TableArn'

# TTL can only be switched on once the table is ACTIVE
aws dynamodb wait table-exists "${EP[@]}" --table-name "$TABLE"

aws dynamodb update-time-to-live "${EP[@]}" \
  --table-name "$TABLE" \
  --time-to-live-specification "Enabled=true, AttributeName=ttl" \
  --output text --query 'TimeToLiveSpecification.AttributeName'

echo "table $TABLE is ready (GSI1, GSI2, TTL on ttl)"
