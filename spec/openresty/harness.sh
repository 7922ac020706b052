# shellcheck shell=bash
# Shared by scripts/openresty-test and scripts/bench-openresty (sourced, bash): Debian packages,
# the LuaJIT build, DynamoDB Local and its table, TLS test material, the nginx config rendered from
# examples/openresty/nginx.conf, and starting/stopping nginx by its pid file. Callers set ROOT and
# PREFIX first and call or_cleanup from their EXIT trap. Everything listens on 127.0.0.1 only.

OR_PACKAGES=(nginx libnginx-mod-http-lua lua-resty-core luajit2 libluajit2-5.1-dev curl lua-cjson
             openssl python3 lua5.4)
OR_DDB_STATE=${OR_DDB_STATE:-$ROOT/.deps/openresty-ddb}
OR_DDB_STARTED=0
OR_TABLE_CREATED=""
OR_NGINX_PID=""

or_say() { echo "${OR_NAME:-openresty}: $*" >&2; }

# Installs what is missing. luajit2/libluajit2-5.1-dev are OpenResty's LuaJIT branch, the one
# Debian's libnginx-mod-http-lua links; `luajit`/`libluajit-5.1-dev` conflict with it.
or_packages() {
    local missing=() p
    for p in "${OR_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    or_say "installing ${missing[*]}"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq >&2 &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The nginx module's path on this machine (Debian: /usr/lib/nginx/modules).
or_module_dir() {
    local d
    for d in /usr/lib/nginx/modules /usr/share/nginx/modules /usr/lib64/nginx/modules; do
        [ -f "$d/ngx_http_lua_module.so" ] && { echo "$d"; return 0; }
    done
    return 1
}

# The LuaJIT core for nginx, and the 5.4 one for the table script (make's rules, nothing else).
or_build() {
    make --no-print-directory -C "$ROOT" build/jit/authhero/aws/core.so build/5.4/authhero/aws/core.so >&2
}

# Free loopback ports: prints N numbers (bound together, released together).
or_free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# Sets DYNAMODB_ENDPOINT: the caller's, else a DynamoDB Local of our own (stopped by or_cleanup, or
# by the script's watchdog if this shell dies). Exports test credentials when none are set.
or_ddb_start() {
    if [ -z "${DYNAMODB_ENDPOINT:-}" ]; then
        local out
        out=$("$ROOT/scripts/dynamodb-local" start --state "$OR_DDB_STATE" --owner $$) || return 1
        DYNAMODB_ENDPOINT=$(printf '%s\n' "$out" | tail -n 1)
        OR_DDB_STARTED=1
    fi
    export DYNAMODB_ENDPOINT
    export AWS_REGION=${AWS_REGION:-us-east-1}
    if [ -z "${AWS_ACCESS_KEY_ID:-}" ]; then
        export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
    fi
    case "$DYNAMODB_ENDPOINT" in http://*) ;; *) or_say "DYNAMODB_ENDPOINT must be http://host:port"; return 1 ;; esac
}

or_table_create() {
    lua5.4 "$ROOT/spec/openresty/table.lua" create "$1" >&2 || return 1
    OR_TABLE_CREATED=$1
}

# or_seed [EXTRA_CLIENT_ID...]: the configuration the example reads (examples/openresty/seed.lua:
# tenant TENANT_ID, its database connection, client CLIENT_ID and the extra ones) in the table.
or_seed() {
    lua5.4 "$ROOT/examples/openresty/seed.lua" "$@" >&2
}

# TLS material for the test servers: a CA and a server certificate for 127.0.0.1/localhost signed by
# it, and a second CA that signed nothing (the "untrusted" case). trusted.pem = our CA + the system's.
or_tls_material() {
    local d=$PREFIX/conf/tls
    mkdir -p "$d"
    (
        cd "$d" || exit 1
        local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
        openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 -subj "/CN=authhero test CA" &&
        openssl req "${ec[@]}" -keyout server.key -out server.csr -subj "/CN=127.0.0.1" &&
        printf '%s\n' "subjectAltName=DNS:127.0.0.1,DNS:localhost,IP:127.0.0.1" \
            "basicConstraints=CA:FALSE" "extendedKeyUsage=serverAuth" > server.ext &&
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile server.ext -out server.pem &&
        openssl req -x509 "${ec[@]}" -keyout other-ca.key -out other-ca.pem -days 2 -subj "/CN=other CA" &&
        { cat ca.pem; [ -r /etc/ssl/certs/ca-certificates.crt ] && cat /etc/ssl/certs/ca-certificates.crt; } > trusted.pem
    ) >/dev/null 2>&1
}

# or_render TEMPLATE OUT KEY=VALUE...: replaces every @KEY@ (values must not contain '|').
or_render() {
    local in=$1 out=$2 kv args=()
    shift 2
    for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
    sed "${args[@]}" "$in" > "$out"
}

# or_nginx_conf PORT WORKERS: PREFIX/conf/nginx.conf from the example's template. Servers put in
# PREFIX/conf/servers.d/ are included.
or_nginx_conf() {
    local mods user=""
    mods=$(or_module_dir) || { or_say "ngx_http_lua_module.so not found"; return 1; }
    [ "$(id -u)" -eq 0 ] && user="user $(id -un) $(id -gn);" # workers keep our identity
    mkdir -p "$PREFIX/conf/servers.d" "$PREFIX/logs" "$PREFIX/tmp"
    or_render "$ROOT/examples/openresty/nginx.conf" "$PREFIX/conf/nginx.conf" \
        "PREFIX=$PREFIX" "ROOT=$ROOT" "PORT=$1" "WORKERS=$2" "USER=$user" \
        "CA_FILE=${OR_CA_FILE:-/etc/ssl/certs/ca-certificates.crt}" "LUA_PATH=${OR_LUA_PATH:-}" \
        || return 1
    sed -i "s|/usr/lib/nginx/modules/|$mods/|" "$PREFIX/conf/nginx.conf"
}

# or_nginx_pid_ok PID [PREFIX]: PID is an nginx started with that prefix (not a recycled pid).
or_nginx_pid_ok() {
    [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -Fq -- "-p ${2:-$PREFIX}/"
}

# Stops an nginx left behind by an earlier run of this prefix (its pid file names it).
or_nginx_stale() {
    local pid
    pid=$(cat "$PREFIX/logs/nginx.pid" 2>/dev/null) || return 0
    if or_nginx_pid_ok "$pid"; then OR_NGINX_PID=$pid; or_nginx_stop; fi
}

# Starts nginx (daemon: master + workers) with env from the caller; waits for GET URL to answer.
or_nginx_start() {
    local url=$1 out i
    : > "$PREFIX/logs/error.log"
    out=$(nginx -t -q -p "$PREFIX/" -c conf/nginx.conf -e "$PREFIX/logs/error.log" 2>&1) ||
        { or_say "nginx -t failed:"; echo "$out" >&2; cat "$PREFIX/logs/error.log" >&2; return 1; }
    nginx -p "$PREFIX/" -c conf/nginx.conf -e "$PREFIX/logs/error.log" >&2 || return 1
    for i in $(seq 1 50); do
        OR_NGINX_PID=$(cat "$PREFIX/logs/nginx.pid" 2>/dev/null || true)
        if [ -n "$OR_NGINX_PID" ] && curl -s -o /dev/null --max-time 1 "$url"; then return 0; fi
        sleep 0.1
    done
    or_say "nginx did not answer $url"; cat "$PREFIX/logs/error.log" >&2
    return 1
}

# or_nginx_stop [PID PREFIX]: graceful stop (QUIT) by pid, KILL after 5 s; default: our nginx.
# Only a pid whose command line names that prefix.
or_nginx_stop() {
    local pid=${1:-$OR_NGINX_PID} prefix=${2:-$PREFIX} i
    [ $# -eq 0 ] && OR_NGINX_PID=""
    or_nginx_pid_ok "$pid" "$prefix" || return 0
    kill -QUIT "$pid" 2>/dev/null || return 0
    for i in $(seq 1 50); do
        or_nginx_pid_ok "$pid" "$prefix" || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

# Lines at error level or worse in nginx's error log (warnings are fine).
or_log_errors() {
    grep -E '\[(error|alert|crit|emerg)\]' "$PREFIX/logs/error.log" 2>/dev/null
}

or_cleanup() {
    or_nginx_stop
    if [ -n "$OR_TABLE_CREATED" ] && [ "$OR_DDB_STARTED" = 0 ]; then
        lua5.4 "$ROOT/spec/openresty/table.lua" delete "$OR_TABLE_CREATED" >/dev/null 2>&1 || true
    fi
    if [ "$OR_DDB_STARTED" = 1 ]; then
        "$ROOT/scripts/dynamodb-local" stop --state "$OR_DDB_STATE" >/dev/null 2>&1 || true
        OR_DDB_STARTED=0
    fi
}
