#!/bin/bash
# Entrypoint of the betanet image.
#
#   node (default)  first start: generate keys for NODE_TYPE with this
#                   container's IP; every start: publish node.json to the
#                   shared volume, wait for the other layers' descriptors,
#                   assemble topology.json, then exec `betanet run`.
#   traffic         loop `betanet recv` + `betanet send` through the mixnet
#                   so there is real traffic to watch (docker-compose service
#                   `traffic`).
#   -*              flags for `betanet run` (e.g. `--set mixing.mean_delay_ms=5`)
#   anything else   run as a command (`betanet config show`, `bash`, ...).
#
# Settings (environment):
#   NODE_TYPE                entry | middle | exit (required for `node`)
#   NODE_PORT                mix port (default 9001)
#   BETANET_NODE__KEY_DIR    keys and node.json (default /data/keys)
#   BETANET_NODE__TOPOLOGY   topology file (default /shared/topology.json)
#   BETANET_NODE__HTTP_ADDR  HTTP endpoint (default 0.0.0.0:9101)
#   MIXNET_ADVERTISE_IP      IP put in the descriptor (default: hostname -i)
#   MIXNET_SHARED_DIR        where descriptors are exchanged (default /shared)
#   MIXNET_NODE_NAME         this node's descriptor name (default NODE_TYPE)
#   MIXNET_EXPECT_NODES      descriptors to wait for (default "entry middle exit")
#   MIXNET_WAIT_TIMEOUT      seconds to wait for them (default 300)
# The entrypoint's own settings are not BETANET_*: `betanet run` rejects a
# BETANET_ variable that names no config key.
set -euo pipefail

log() { printf '%s betanet-entrypoint: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# The first IPv4 address of this container.
own_ip() {
    if [ -n "${MIXNET_ADVERTISE_IP:-}" ]; then
        printf '%s\n' "$MIXNET_ADVERTISE_IP"
        return
    fi
    local ip
    for ip in $(hostname -i 2>/dev/null || true) $(hostname -I 2>/dev/null || true); do
        case "$ip" in
        127.* | *:*) ;;
        *.*.*.*)
            printf '%s\n' "$ip"
            return
            ;;
        esac
    done
    die "cannot find this container's IPv4 address (set MIXNET_ADVERTISE_IP)"
}

# Waits until every expected descriptor is in the shared directory.
wait_for_descriptors() {
    local dir=$1 timeout=$2 start=$SECONDS missing name
    while :; do
        missing=""
        for name in $MIXNET_EXPECT_NODES; do
            [ -s "$dir/$name.json" ] || missing="$missing $name"
        done
        [ -z "$missing" ] && return 0
        if ((SECONDS - start >= timeout)); then
            die "gave up after ${timeout}s waiting for the descriptors of:$missing (in $dir)"
        fi
        if (((SECONDS - start) % 10 == 0)); then
            log "waiting for the descriptors of:$missing"
        fi
        sleep 1
    done
}

# Builds the topology from the shared descriptors. Every node does this; the
# result is deterministic (nodes sorted by layer and id), the file is written
# under a private name and renamed over the old one (atomic on one
# filesystem), and left alone when nothing changed, so concurrent builders
# never expose a partial file and running nodes reload only on real changes.
build_topology() {
    local dir=$1 out=$2 tmp name
    local -a inputs=()
    for name in $MIXNET_EXPECT_NODES; do
        inputs+=("$dir/$name.json")
    done
    tmp="$(dirname "$out")/.topology.$(hostname).$$.tmp"
    betanet topology build --out "$tmp" "${inputs[@]}" >/dev/null ||
        die "betanet topology build failed (a descriptor in $dir is invalid?)"
    if [ -f "$out" ] && cmp -s "$tmp" "$out"; then
        rm -f "$tmp"
        log "topology $out is current"
    else
        mv -f "$tmp" "$out"
        log "topology written to $out"
    fi
}

run_node() {
    local role=${NODE_TYPE:-}
    case "$role" in
    entry | middle | exit) ;;
    "") die "NODE_TYPE is not set (entry, middle or exit)" ;;
    *) die "NODE_TYPE=$role: expected entry, middle or exit" ;;
    esac
    local port=${NODE_PORT:-9001}
    local key_dir=${BETANET_NODE__KEY_DIR:-/data/keys}
    local topology=${BETANET_NODE__TOPOLOGY:-/shared/topology.json}
    local http_addr=${BETANET_NODE__HTTP_ADDR:-0.0.0.0:9101}
    local shared=${MIXNET_SHARED_DIR:-/shared}
    local name=${MIXNET_NODE_NAME:-$role}
    local ip
    ip=$(own_ip)
    export BETANET_NODE__KEY_DIR=$key_dir BETANET_NODE__TOPOLOGY=$topology \
        BETANET_NODE__HTTP_ADDR=$http_addr
    # Tell the node the address its descriptor announces.
    export BETANET_NODE__ADVERTISE_ADDR=${BETANET_NODE__ADVERTISE_ADDR:-$ip:$port}

    if [ ! -e "$key_dir/node.json" ]; then
        log "first start: generating $role keys for $ip:$port in $key_dir"
        betanet keygen --out "$key_dir" --role "$role" --addr "$ip:$port" \
            --http-addr "$ip:${http_addr##*:}"
    elif ! grep -qF "\"udp_addr\": \"$ip:$port\"" "$key_dir/node.json"; then
        die "$key_dir/node.json was made for another address than $ip:$port" \
            "(the container's IP changed?). Remove this node's key volume" \
            "(docker compose down -v) to generate new keys."
    elif ! grep -qF "\"role\": \"$role\"" "$key_dir/node.json"; then
        die "$key_dir/node.json is not an $role descriptor; NODE_TYPE changed?" \
            "Remove this node's key volume to generate new keys."
    else
        log "reusing the keys in $key_dir"
    fi

    local descriptors="$shared/descriptors"
    mkdir -p "$descriptors" "$(dirname "$topology")"
    cp "$key_dir/node.json" "$descriptors/.$name.json.$$"
    mv -f "$descriptors/.$name.json.$$" "$descriptors/$name.json"
    log "published $descriptors/$name.json"

    wait_for_descriptors "$descriptors" "${MIXNET_WAIT_TIMEOUT:-300}"
    build_topology "$descriptors" "$topology"

    log "starting betanet run ($role, mix $ip:$port, http $http_addr)"
    exec betanet run "$@"
}

# Sends messages through entry -> middle -> exit to itself, forever. Logs a
# summary every TRAFFIC_LOG_EVERY rounds and every round that lost messages.
run_traffic() {
    local topology=${BETANET_NODE__TOPOLOGY:-/shared/topology.json}
    local port=${TRAFFIC_PORT:-7000}
    local count=${TRAFFIC_COUNT:-20}
    local interval=${TRAFFIC_INTERVAL:-2}
    local transport=${TRAFFIC_TRANSPORT:-link}
    local timeout=${TRAFFIC_TIMEOUT:-30}
    local every=${TRAFFIC_LOG_EVERY:-30}
    local ip round=0 recv_pid="" got sent_total=0 got_total=0
    ip=$(own_ip)
    # PID 1 gets no default signal handlers: stop promptly on `docker stop`.
    trap '[ -n "$recv_pid" ] && kill "$recv_pid" 2>/dev/null; exit 0' TERM INT

    local start=$SECONDS
    until [ -s "$topology" ]; do
        ((SECONDS - start < ${MIXNET_WAIT_TIMEOUT:-300})) || die "no topology at $topology"
        sleep 1 &
        wait $!
    done
    # Messages sent before the nodes listen are lost: wait (bounded) for
    # every node of the topology to answer /ready.
    local http
    for http in $(sed -n 's/.*"http_addr": *"\([^"]*\)".*/\1/p' "$topology"); do
        start=$SECONDS
        until curl -fs -o /dev/null --max-time 2 "http://$http/ready"; do
            if ((SECONDS - start >= 120)); then
                log "node $http is not ready after 120s; sending anyway"
                break
            fi
            sleep 1 &
            wait $!
        done
    done
    log "traffic: $count message(s) every ${interval}s to $ip:$port over $transport"
    while :; do
        round=$((round + 1))
        betanet recv --listen "$ip:$port" --count "$count" --timeout "$timeout" --framing newline \
            >/tmp/traffic.out 2>/tmp/traffic.err &
        recv_pid=$!
        sleep 0.2 &
        wait $!
        if ! betanet send --topology "$topology" --to "$ip:$port" --count "$count" \
            --transport "$transport" --message "betanet traffic round $round" 2>/tmp/traffic.send; then
            log "round $round: send failed: $(tail -n1 /tmp/traffic.send)"
        fi
        wait "$recv_pid" || true
        recv_pid=""
        got=$(grep -c . /tmp/traffic.out || true)
        sent_total=$((sent_total + count))
        got_total=$((got_total + got))
        if [ "$got" != "$count" ]; then
            log "round $round: $got/$count delivered ($(tail -n1 /tmp/traffic.err 2>/dev/null))"
        elif ((round % every == 0 || round == 1)); then
            log "round $round: $got_total/$sent_total messages delivered so far"
        fi
        sleep "$interval" &
        wait $!
    done
}

MIXNET_EXPECT_NODES=${MIXNET_EXPECT_NODES:-entry middle exit}
case "${1:-node}" in
node)
    shift || true
    run_node "$@"
    ;;
traffic)
    shift
    run_traffic "$@"
    ;;
-*) run_node "$@" ;;
*) exec "$@" ;;
esac
