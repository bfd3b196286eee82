#!/usr/bin/env bash
# End-to-end test of docker-compose.betanet.yml, as CI runs it (no registry).
#
#  1. builds the images locally (docker/build-images.sh)
#  2. checks the Grafana dashboards and provisioning statically
#  3. starts entry, middle, exit, Prometheus and the traffic client (Grafana
#     has no local image, so it is left out)
#  4. waits until every node answers /ready with 200 and its container
#     HEALTHCHECK reports healthy
#  5. sends messages through entry -> middle -> exit with `betanet send` and
#     checks `betanet recv` gets every one (over an encrypted link session,
#     UDP and TCP to the entry), that the exit's delivered counter moved
#     accordingly, and that entry -> middle -> exit ran over authenticated
#     link sessions (links are on by default) with no handshake refused
#  6. checks Prometheus scrapes all three nodes, then runs every PromQL
#     expression of every dashboard panel and fails if one returns no data
#  7. stops the stack (every container must exit 0 on SIGTERM), removes it
#     with `down -v --remove-orphans` and checks nothing of it is left
#
# Ports are published on 127.0.0.1 only. A trap always tears the stack down.
#
# Environment (all optional):
#   E2E_PROJECT          compose project name (default betanet-e2e)
#   E2E_SKIP_BUILD=1     use existing images instead of building them
#   E2E_TRANSPORTS       client transports to test (default "link udp tcp")
#   E2E_MESSAGES         messages per transport (default 20)
#   E2E_READY_TIMEOUT    seconds for the nodes to become ready (default 180)
#   E2E_QUERY_TIMEOUT    seconds for every dashboard query to return data (default 180)
#   E2E_FAIL_ON_NAN=0    tolerate dashboard queries that return only NaN (default: fail)
#   E2E_PROMETHEUS_PORT, E2E_ENTRY_HTTP_PORT, E2E_MIDDLE_HTTP_PORT,
#   E2E_EXIT_HTTP_PORT   host ports (defaults 19090, 19101-19103)
#   MIXNET_SUBNET       the stack's /24 (first three octets, default 172.28.0)
#   plus what docker/build-images.sh reads (MIXNET_BINARY, ...)
set -euo pipefail
cd "$(dirname "$0")/.."

PROJECT=${E2E_PROJECT:-betanet-e2e}
COMPOSE_FILE=docker-compose.betanet.yml
SERVICES=(entry middle exit prometheus traffic)
NODES=(entry middle exit)
TRANSPORTS=${E2E_TRANSPORTS:-link udp tcp}
MESSAGES=${E2E_MESSAGES:-20}
READY_TIMEOUT=${E2E_READY_TIMEOUT:-180}
QUERY_TIMEOUT=${E2E_QUERY_TIMEOUT:-180}

export MIXNET_IMAGE=${MIXNET_IMAGE:-betanet:local}
export MIXNET_BASE_IMAGE=${MIXNET_BASE_IMAGE:-betanet-base:local}
export PROMETHEUS_IMAGE=${PROMETHEUS_IMAGE:-betanet-prometheus:local}
export PROMETHEUS_PORT=${E2E_PROMETHEUS_PORT:-19090}
export ENTRY_HTTP_PORT=${E2E_ENTRY_HTTP_PORT:-19101}
export MIDDLE_HTTP_PORT=${E2E_MIDDLE_HTTP_PORT:-19102}
export EXIT_HTTP_PORT=${E2E_EXIT_HTTP_PORT:-19103}
declare -A HTTP_PORT=([entry]=$ENTRY_HTTP_PORT [middle]=$MIDDLE_HTTP_PORT [exit]=$EXIT_HTTP_PORT)
PROMETHEUS=http://127.0.0.1:$PROMETHEUS_PORT

T0=$SECONDS
step() { printf '\n--- compose-e2e: %s (%ss)\n' "$*" "$((SECONDS - T0))"; }
log() { printf 'compose-e2e: %s\n' "$*"; }
fail() {
    printf 'compose-e2e: FAIL: %s\n' "$*" >&2
    exit 1
}

if docker compose version >/dev/null 2>&1; then
    DC=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    DC=(docker-compose)
else
    fail "neither 'docker compose' nor 'docker-compose' is installed"
fi
docker info >/dev/null 2>&1 || fail "the Docker engine is not reachable"
dc() { "${DC[@]}" -p "$PROJECT" -f "$COMPOSE_FILE" "$@"; }

# Containers, networks and volumes of the project still on the engine.
leftovers() {
    local label="label=com.docker.compose.project=$PROJECT"
    {
        docker ps -aq --filter "$label" | sed 's/^/container /'
        docker network ls -q --filter "$label" | sed 's/^/network /'
        docker volume ls -q --filter "$label" | sed 's/^/volume /'
        # Compose v1 names resources PROJECT_NAME; catch unlabelled ones too.
        docker network ls --format '{{.Name}}' | grep "^${PROJECT}_" | sed 's/^/network /' || true
        docker volume ls --format '{{.Name}}' | grep "^${PROJECT}_" | sed 's/^/volume /' || true
    } | sort -u
}

TORN_DOWN=0
teardown() {
    dc down -v --remove-orphans --timeout 20 >/dev/null 2>&1 || true
    TORN_DOWN=1
}
on_exit() {
    local rc=$?
    if [ "$TORN_DOWN" = 0 ]; then
        if [ "$rc" != 0 ]; then
            echo "--- compose-e2e: stack state at failure" >&2
            dc ps >&2 || true
            dc logs --no-color --tail=60 >&2 || true
        fi
        teardown
        local left
        left=$(leftovers)
        [ -z "$left" ] || printf 'compose-e2e: left behind:\n%s\n' "$left" >&2
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The container of a service, running or not (`ps -q` differs between
# compose v1 and v2 for stopped containers).
container_of() {
    docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$1" | awk "NR == 1"
}

# curl against the stack's published ports (loopback only).
http() { curl -sS --max-time 5 "$@"; }
metric() { # metric NODE NAME: the value of an unlabelled sample, or 0
    http "http://127.0.0.1:${HTTP_PORT[$1]}/metrics" 2>/dev/null |
        awk -v m="$2" '$1 == m { print $2; found = 1 } END { if (!found) print 0 }'
}

step "images"
if [ "${E2E_SKIP_BUILD:-0}" = 1 ]; then
    log "E2E_SKIP_BUILD=1: using the existing $MIXNET_IMAGE and $PROMETHEUS_IMAGE"
else
    docker/build-images.sh
fi
for image in "$MIXNET_IMAGE" "$PROMETHEUS_IMAGE"; do
    docker image inspect "$image" >/dev/null 2>&1 || fail "image $image is missing"
done

step "dashboards and provisioning (static)"
if ! python3 -c 'import yaml' 2>/dev/null; then
    python3 -m pip install --quiet pyyaml
fi
python3 scripts/validate-dashboards.py

step "compose up (${SERVICES[*]}; project $PROJECT)"
if [ -n "$(leftovers)" ]; then
    log "removing the leftovers of an earlier run"
    teardown
    TORN_DOWN=0
fi
dc config -q
dc up -d --no-build "${SERVICES[@]}"

step "nodes ready"
for node in "${NODES[@]}"; do
    url="http://127.0.0.1:${HTTP_PORT[$node]}"
    start=$SECONDS
    until [ "$(http -o /dev/null -w '%{http_code}' "$url/ready" 2>/dev/null)" = 200 ]; do
        if ((SECONDS - start >= READY_TIMEOUT)); then
            log "$node /ready: $(http "$url/ready" 2>&1 || true)"
            fail "$node not ready after ${READY_TIMEOUT}s"
        fi
        sleep 2
    done
    http -f -o /dev/null "$url/health" || fail "$node: /health is not 200"
    descriptor=$(http -f "$url/descriptor") || fail "$node: /descriptor is not 200"
    grep -q "\"role\": *\"$node\"" <<<"$descriptor" || fail "$node: /descriptor is not an $node descriptor: $descriptor"
    metrics=$(http -f "$url/metrics") || fail "$node: /metrics is not 200"
    grep -q '^betanet_build_info{' <<<"$metrics" || fail "$node: /metrics has no betanet_build_info"
    log "$node ready after $((SECONDS - start))s"
done
for node in "${NODES[@]}"; do
    id=$(container_of "$node")
    start=$SECONDS
    until [ "$(docker inspect -f '{{.State.Health.Status}}' "$id")" = healthy ]; do
        ((SECONDS - start < 60)) || fail "$node: the container HEALTHCHECK is not healthy after 60s"
        sleep 2
    done
done
log "all containers healthy"

step "messages through entry -> middle -> exit"
delivered_before=$(metric exit betanet_packets_delivered_total)
forwarded_before=$(metric middle betanet_packets_forwarded_total)
sent=0
port=7100
for transport in $TRANSPORTS; do
    token="e2e-$transport-$$-$RANDOM"
    port=$((port + 1))
    # The traffic container has the client and the topology; it receives on
    # its own address, which the exit is allowed to deliver to.
    out=$(timeout 120 "${DC[@]}" -p "$PROJECT" -f "$COMPOSE_FILE" exec -T traffic bash -c '
        set -eu
        ip=$(hostname -i | tr " " "\n" | grep -m1 -E "^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$")
        betanet recv --listen "$ip:$3" --count "$2" --timeout 60 --framing newline >/tmp/e2e.$3.out &
        pid=$!
        sleep 0.5
        betanet send --topology /shared/topology.json --to "$ip:$3" \
            --count "$2" --transport "$4" --message "$1" >&2
        rc=0
        wait "$pid" || rc=$?
        cat /tmp/e2e.$3.out
        rm -f /tmp/e2e.$3.out
        exit "$rc"' _ "$token" "$MESSAGES" "$port" "$transport") ||
        fail "$transport: betanet recv did not get $MESSAGES messages (got $(grep -c "^$token\$" <<<"$out" || true))"
    got=$(grep -c "^$token\$" <<<"$out" || true)
    [ "$got" = "$MESSAGES" ] || fail "$transport: $got of $MESSAGES messages arrived intact"
    log "$transport: $got/$MESSAGES messages arrived"
    sent=$((sent + MESSAGES))
done
delivered_after=$(metric exit betanet_packets_delivered_total)
forwarded_after=$(metric middle betanet_packets_forwarded_total)
awk -v a="$delivered_before" -v b="$delivered_after" -v n="$sent" 'BEGIN { exit !(b - a >= n) }' ||
    fail "exit delivered_total went $delivered_before -> $delivered_after for $sent messages"
awk -v a="$forwarded_before" -v b="$forwarded_after" -v n="$sent" 'BEGIN { exit !(b - a >= n) }' ||
    fail "middle forwarded_total went $forwarded_before -> $forwarded_after for $sent messages"
log "exit delivered_total $delivered_before -> $delivered_after, middle forwarded_total $forwarded_before -> $forwarded_after"

step "node-to-node hops ran over link sessions"
labelled() { # labelled NODE NAME LABELS: the value of one labelled sample, or 0
    http "http://127.0.0.1:${HTTP_PORT[$1]}/metrics" 2>/dev/null |
        awk -v m="$2{$3}" '$1 == m { print $2; found = 1 } END { if (!found) print 0 }'
}
for node in middle exit; do
    sessions=$(labelled "$node" betanet_link_sessions 'class="member_inbound"')
    awk -v n="$sessions" 'BEGIN { exit !(n >= 1) }' ||
        fail "$node: no inbound member link session (betanet_link_sessions{class=\"member_inbound\"} = $sessions)"
    for result in unknown_peer crypto; do
        refused=$(labelled "$node" betanet_link_handshakes_total "result=\"$result\"")
        [ "${refused%.*}" = 0 ] || fail "$node: $refused link handshakes refused as $result"
    done
    log "$node: $sessions inbound member session(s), no handshake refused"
done
clients=$(labelled entry betanet_link_handshakes_total 'result="ok"')
awk -v n="$clients" 'BEGIN { exit !(n >= 1) }' || fail "entry: no link handshake completed"

step "Prometheus scrapes every node"
start=$SECONDS
while :; do
    targets=$(http "$PROMETHEUS/api/v1/targets?state=active" 2>/dev/null || true)
    up=$(python3 -c '
import json, sys
try:
    targets = json.loads(sys.argv[1])["data"]["activeTargets"]
except Exception:
    targets = []
nodes = sorted(t["labels"].get("node", "") for t in targets
               if t["labels"].get("job") == "betanet" and t.get("health") == "up")
print(" ".join(nodes))' "$targets")
    [ "$up" = "entry exit middle" ] && break
    if ((SECONDS - start >= 90)); then
        log "targets: $targets"
        fail "Prometheus does not have entry, middle and exit up (up: ${up:-none})"
    fi
    sleep 3
done
log "targets up: $up"

step "every dashboard query returns data"
# rate(...[1m]) needs two scrapes of moving counters; the traffic client keeps
# them moving. The check retries until each query has data or time runs out.
nan_flag=()
[ "${E2E_FAIL_ON_NAN:-1}" = 1 ] && nan_flag=(--fail-on-nan)
python3 scripts/validate-dashboards.py --prometheus "$PROMETHEUS" --wait "$QUERY_TIMEOUT" "${nan_flag[@]}"

step "logs"
if dc logs --no-color | grep -E 'panicked at|RUST_BACKTRACE' >&2; then
    fail "a container panicked"
fi

step "graceful stop"
dc stop --timeout 20
for service in "${SERVICES[@]}"; do
    id=$(container_of "$service")
    code=$(docker inspect -f '{{.State.ExitCode}}' "$id")
    [ "$code" = 0 ] || fail "$service exited with $code on SIGTERM"
done
log "every container exited 0"

step "compose down -v --remove-orphans"
dc down -v --remove-orphans --timeout 20
TORN_DOWN=1
left=$(leftovers)
[ -z "$left" ] || fail "left behind after down: $left"

step "passed"
log "compose end-to-end test passed in $((SECONDS - T0))s"
