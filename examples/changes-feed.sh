#!/usr/bin/env bash
# `authhero-dynamo changes`: a table's DynamoDB stream as entity-level change events (JSON lines),
# resumed from a checkpoint file -- what you would feed OpenSearch (or anything else) from.
#   1. create a table with a stream (create-table --streams) and import examples/import-sample.jsonl;
#   2. `changes --checkpoint FILE` prints one line per record written (guards and other helper
#      items are skipped) and leaves FILE pointing after the last one;
#   3. a user is renamed and a role removed through the adapters;
#   4. the same command again prints exactly what that changed (the user; the role with its
#      permissions and assignments); once more, nothing.
# Runs against DynamoDB Local: DYNAMODB_ENDPOINT when set, else one started here (and stopped on
# exit). The table is new (authhero_changes_<time>) and deleted at the end. Exit 0 on success.
set -euo pipefail
cd "$(dirname "$0")/.."

started=
if [ -z "${DYNAMODB_ENDPOINT:-}" ]; then
    export DDB_LOCAL_STATE="$PWD/.deps/dynamodb-local/changes-example"
    # only what we start here is stopped here
    scripts/dynamodb-local status >/dev/null 2>&1 || started=1
    DYNAMODB_ENDPOINT=$(scripts/dynamodb-local start | tail -1)
fi
export DYNAMODB_ENDPOINT AWS_ENDPOINT_URL_DYNAMODB=$DYNAMODB_ENDPOINT
export DYNAMODB_TABLE_NAME="authhero_changes_$(date +%s)_$$"
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH="$PWD/build/5.4/?.so;;"
work=$(mktemp -d)
cleanup() {
    rm -rf "$work"
    if [ -n "$started" ]; then scripts/dynamodb-local stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
cli() { lua5.4 bin/authhero-dynamo "$@"; }
lua_client='local aws = require "authhero.aws"
local c = aws.client.new({ region = "us-east-1", endpoint = os.getenv("DYNAMODB_ENDPOINT"),
    credentials = { accessKeyId = "local", secretAccessKey = "local" } })'

cli create-table --streams
cli import --quiet examples/import-sample.jsonl

echo "--- changes --checkpoint (the import: one line per record; the first three shown)"
cli changes --checkpoint "$work/checkpoint.json" >"$work/first.jsonl"
head -3 "$work/first.jsonl" | cut -c1-160
echo "... $(wc -l <"$work/first.jsonl") lines; checkpoint: $(cat "$work/checkpoint.json")"

lua5.4 -e "$lua_client
local a = aws.create_adapters(c, { tableName = os.getenv('DYNAMODB_TABLE_NAME') })
a.users.update('acme', 'auth2|ada', { name = 'Ada King' })
a.roles.remove('acme', 'rol_viewer')
print('renamed user auth2|ada, removed role rol_viewer')"

echo "--- changes --checkpoint again: only what changed since"
cli changes --checkpoint "$work/checkpoint.json" | tee "$work/second.jsonl" | cut -c1-160
echo "--- and again: $(cli changes --checkpoint "$work/checkpoint.json" | wc -l) lines"

lua5.4 -e "$lua_client
c:call('DeleteTable', { TableName = os.getenv('DYNAMODB_TABLE_NAME') })"
