#!/usr/bin/env bash
# The documented AuthHero table with the AWS CLI: PK/SK, GSI1 (user by email) and GSI2 (tenant by
# custom domain), both projecting ALL, on-demand billing, TTL on `ttl`. Same definition as
# examples/cloudformation.yaml and `authhero-dynamo create-table`.
#
#   examples/create-table-aws-cli.sh [TABLE]          table: $1, else DYNAMODB_TABLE_NAME, else authhero
#   ENDPOINT=http://127.0.0.1:8000 examples/create-table-aws-cli.sh   (DynamoDB Local)
#
# Region: AWS_REGION, else AWS_DEFAULT_REGION, passed on as --region (AWS CLI v1 reads only
# AWS_DEFAULT_REGION or --region), else the profile's region. Credentials come from the AWS CLI's
# usual configuration (AWS_PROFILE, AWS_ACCESS_KEY_ID, ...); DynamoDB Local needs some too, dummy
# ones will do.
set -euo pipefail

TABLE=${1:-${DYNAMODB_TABLE_NAME:-authhero}}
CONN=()
[ -n "${ENDPOINT:-}" ] && CONN=(--endpoint-url "$ENDPOINT")
REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
[ -n "$REGION" ] && CONN+=(--region "$REGION")

aws dynamodb create-table "${CONN[@]}" \
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
aws dynamodb wait table-exists "${CONN[@]}" --table-name "$TABLE"

aws dynamodb update-time-to-live "${CONN[@]}" \
  --table-name "$TABLE" \
  --time-to-live-specification "Enabled=true, AttributeName=ttl" \
  --output text --query 'TimeToLiveSpecification.AttributeName'

echo "table $TABLE is ready (GSI1, GSI2, TTL on ttl)"
