#!/usr/bin/env bash
# Nagle on stream connections over a real (emulated) network path: latency at light load.
#
#   sudo tests/perf/nagle_netns.sh [DELAY_MS] [SECONDS] [RATES]      # e.g. 20 20 "20 100"
#
# Two network namespaces of our own joined by a veth pair, each end delaying its egress by
# DELAY_MS with netem (so one round trip is 2 x DELAY_MS). The gateway (with its own
# redis-server on the namespace's loopback) runs in one; tests/perf/nagle_client.py (subscribers
# + a paced publisher) in the other. For each rate, the gateway runs with GATEWAY_TCP_NODELAY=true
# and then false, and the client prints delivery latency percentiles. Root is needed for ip/tc.
# Without netem (some VM kernels have none) the link is two TUN devices joined by
# tests/perf/delay_relay.py, which delays whole IP packets, ACKs included, by DELAY_MS each way.
# Everything is torn down on exit (trap). Not part of the test suite.
set -euo pipefail

DELAY_MS=${1:-20}
SECONDS_PER_RUN=${2:-20}
RATES=${3:-"20 100"}
SUBS=${SUBS:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
GW=ssegw$$
CL=ssecl$$
GW_ADDR=10.203.0.1
CL_ADDR=10.203.0.2
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$GW" 2>/dev/null || true
    ip netns del "$CL" 2>/dev/null || true
    ip link del "v$GW" 2>/dev/null || true  # TUN devices not yet moved, if setup failed early
    ip link del "v$CL" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

ip netns add "$GW"
ip netns add "$CL"
link_netem() {  # a veth pair, each end delaying its egress with netem
    ip link add "v$GW" type veth peer name "v$CL"
    ip link set "v$GW" netns "$GW"
    ip link set "v$CL" netns "$CL"
    ip netns exec "$GW" tc qdisc add dev "v$GW" root netem delay "${DELAY_MS}ms" || return 1
    ip netns exec "$CL" tc qdisc add dev "v$CL" root netem delay "${DELAY_MS}ms"
}
link_relay() {  # no netem in this kernel: two TUN devices, tests/perf/delay_relay.py between
    ip -n "$GW" link del "v$GW" 2>/dev/null || true
    ip tuntap add dev "v$GW" mode tun
    ip tuntap add dev "v$CL" mode tun
    (cd "$ROOT" && exec "$PY" -m tests.perf.delay_relay "v$GW" "v$CL" "$DELAY_MS" 3600) &
    PIDS+=($!)
    sleep 1  # attached before the devices move into the namespaces
    ip link set "v$GW" netns "$GW"
    ip link set "v$CL" netns "$CL"
}
if link_netem 2>/dev/null; then
    echo "link: veth + netem delay ${DELAY_MS}ms each way"
else
    echo "link: no netem in this kernel; TUN pair + delay_relay.py, ${DELAY_MS}ms each way"
    link_relay
fi
ip -n "$GW" addr add "$GW_ADDR/24" dev "v$GW"
ip -n "$CL" addr add "$CL_ADDR/24" dev "v$CL"
for ns in "$GW" "$CL"; do
    ip -n "$ns" link set lo up
done
ip -n "$GW" link set "v$GW" up
ip -n "$CL" link set "v$CL" up
sleep 0.5

ip netns exec "$GW" redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no --loglevel warning >/dev/null &
PIDS+=($!)
sleep 0.5

run_gateway() {  # $1 = true|false
    (cd "$ROOT" && GATEWAY_TCP_NODELAY=$1 exec ip netns exec "$GW" "$PY" -m gateway \
        --host "$GW_ADDR" --port 8080 --redis-url redis://127.0.0.1:6379/0 >/dev/null 2>&1) &
    GW_PID=$!
    PIDS+=("$GW_PID")
    for _ in $(seq 100); do
        ip netns exec "$CL" bash -c "exec 3<>/dev/tcp/$GW_ADDR/8080" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "gateway did not start" >&2
    return 1
}

for rate in $RATES; do
    for nodelay in true false; do
        run_gateway "$nodelay"
        printf 'delay %sms each way, rate %s msg/s, GATEWAY_TCP_NODELAY=%s: ' "$DELAY_MS" "$rate" "$nodelay"
        (cd "$ROOT" && ip netns exec "$CL" timeout $((SECONDS_PER_RUN + 90)) "$PY" \
            -m tests.perf.nagle_client --host "$GW_ADDR" --port 8080 --subs "$SUBS" \
            --rate "$rate" --seconds "$SECONDS_PER_RUN")
        kill "$GW_PID"
        wait "$GW_PID" 2>/dev/null || true
    done
done
