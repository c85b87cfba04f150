#!/usr/bin/env bash
# Runs a command with real Redis servers on free loopback ports, and stops them
# afterwards, also when the command fails or is interrupted:
#
#   scripts/with-redis.sh cargo test -p otpengine-core --features redis
#
# Starts one standalone server and a 3-node Redis Cluster (no replicas), each
# in a temporary directory with persistence off, and exports for the command:
#
#   OTPENGINE_REDIS_URL       redis://127.0.0.1:<port>/0
#   OTPENGINE_REDIS_CLUSTER   redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>
#   OTPENGINE_REDIS_SERVER    the redis-server binary (tests start their own to stop it)
#   OTPENGINE_REQUIRE_REDIS=1 Redis tests fail, rather than skip, without a server
#
# Installs redis-server (and redis-tools) from the Debian packages if it is missing.
set -euo pipefail

log() { echo "with-redis: $*" >&2; }

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  log "redis-server not found: installing the Debian package"
  if [ "$(id -u)" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo -n)
  else
    log "ERROR: not root and no sudo; install redis-server yourself (apt-get install redis-server)"
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get install -y -q redis-server >/dev/null \
    || { "${sudo[@]}" apt-get update -q >/dev/null && "${sudo[@]}" apt-get install -y -q redis-server >/dev/null; } \
    || { log "ERROR: could not install redis-server"; exit 1; }
  # The package starts a system service on 6379; the tests use their own servers.
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/otpengine-redis.XXXXXX")
pids=()

cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    # Bounded wait for each server to exit; SIGKILL after 5 s.
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Free loopback ports. A cluster node also listens on its port + 10000 (the
# cluster bus), so those come from 20000..55535 with both ports free.
read -r -a ports < <(python3 - <<'EOF'
import random, socket
def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
chosen = []
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    chosen.append(s.getsockname()[1])
while len(chosen) < 4:
    port = random.randint(20000, 55535)
    if port not in chosen and port + 10000 not in chosen and free(port) and free(port + 10000):
        chosen.append(port)
print(" ".join(map(str, chosen)))
EOF
)

start() { # port [extra redis-server args...]
  local port=$1
  shift
  mkdir -p "$dir/$port"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/$port" --save '' --appendonly no \
    --logfile "$dir/$port/redis.log" --daemonize no "$@" &
  pids+=($!)
}

wait_for() { # port: bounded poll until the server answers PING
  local port=$1
  for _ in $(seq 100); do
    if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then return 0; fi
    sleep 0.05
  done
  log "ERROR: redis-server on port $port did not start; its log:"
  cat "$dir/$port/redis.log" >&2 || true
  exit 1
}

start "${ports[0]}"
for port in "${ports[@]:1}"; do
  start "$port" --cluster-enabled yes --cluster-config-file "$dir/$port/nodes.conf" \
    --cluster-node-timeout 5000
done
for port in "${ports[@]}"; do wait_for "$port"; done

redis-cli --cluster create "127.0.0.1:${ports[1]}" "127.0.0.1:${ports[2]}" "127.0.0.1:${ports[3]}" \
  --cluster-replicas 0 --cluster-yes >"$dir/cluster-create.log" 2>&1 \
  || { log "ERROR: redis-cli --cluster create failed:"; cat "$dir/cluster-create.log" >&2; exit 1; }
# Bounded poll until every node agrees the cluster is up.
for port in "${ports[@]:1}"; do
  for i in $(seq 200); do
    if redis-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then break; fi
    if [ "$i" -eq 200 ]; then log "ERROR: the cluster did not come up on port $port"; exit 1; fi
    sleep 0.05
  done
done

export OTPENGINE_REDIS_URL="redis://127.0.0.1:${ports[0]}/0"
export OTPENGINE_REDIS_CLUSTER="redis+cluster://127.0.0.1:${ports[1]},127.0.0.1:${ports[2]},127.0.0.1:${ports[3]}"
OTPENGINE_REDIS_SERVER=$(command -v redis-server)
export OTPENGINE_REDIS_SERVER
export OTPENGINE_REQUIRE_REDIS=1
log "redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') at $OTPENGINE_REDIS_URL, cluster at $OTPENGINE_REDIS_CLUSTER"

"$@"
