#!/usr/bin/env bash
# Runs a command with real Redis servers on free loopback ports, and stops them
# afterwards, also when the command fails or is interrupted:
#
#   scripts/with-redis.sh cargo test -p otpengine-core --features redis
#
# Starts one standalone server, a 3-node Redis Cluster (no replicas), two TLS
# servers (one that checks client certificates) and one that requires a
# password and has an ACL user, each in a temporary directory with persistence
# off, and exports for the command:
#
#   OTPENGINE_REDIS_URL       redis://127.0.0.1:<port>/0
#   OTPENGINE_REDIS_CLUSTER   redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>
#   OTPENGINE_REDIS_TLS_URL   rediss://127.0.0.1:<port>/0 (TLS only; no plaintext port)
#   OTPENGINE_REDIS_MTLS_URL  rediss://127.0.0.1:<port>/0 (TLS, client certificate required)
#   OTPENGINE_REDIS_TLS_CA    the throwaway CA (PEM) that signed both servers' certificates
#   OTPENGINE_REDIS_TLS_CLIENT_CERT, OTPENGINE_REDIS_TLS_CLIENT_KEY  a client certificate it signed
#   OTPENGINE_REDIS_TLS_OTHER_CA  another CA, which signed nothing of the servers'
#   OTPENGINE_REDIS_AUTH_URL  redis://127.0.0.1:<port>/0, requirepass and an ACL user
#   OTPENGINE_REDIS_AUTH_PASSWORD  its requirepass password
#   OTPENGINE_REDIS_ACL_USER, OTPENGINE_REDIS_ACL_PASSWORD  its ACL user (scripts, not functions)
#   OTPENGINE_REDIS_SERVER    the redis-server binary (tests start their own to stop it)
#   OTPENGINE_REQUIRE_REDIS=1 Redis tests fail, rather than skip, without a server
#
# Installs redis-server (and redis-tools) and openssl from the Debian packages if
# they are missing.
set -euo pipefail

log() { echo "with-redis: $*" >&2; }

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1 \
  || ! command -v openssl >/dev/null 2>&1; then
  log "redis-server or openssl not found: installing the Debian packages"
  if [ "$(id -u)" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo -n)
  else
    log "ERROR: not root and no sudo; install redis-server yourself (apt-get install redis-server)"
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get install -y -q redis-server openssl >/dev/null \
    || { "${sudo[@]}" apt-get update -q >/dev/null && "${sudo[@]}" apt-get install -y -q redis-server openssl >/dev/null; } \
    || { log "ERROR: could not install redis-server and openssl"; exit 1; }
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
while len(chosen) < 7:
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

wait_for() { # port [redis-cli args...]: bounded poll until the server answers PING
  local port=$1
  shift
  for _ in $(seq 100); do
    if redis-cli -p "$port" "$@" ping 2>/dev/null | grep -q PONG; then return 0; fi
    sleep 0.05
  done
  log "ERROR: redis-server on port $port did not start; its log:"
  cat "$dir/$port/redis.log" >&2 || true
  exit 1
}

# A throwaway CA, a server certificate for 127.0.0.1 (the address the tests
# connect to, checked by name) and a client certificate, all signed by it; and
# a second CA that signed nothing of these, for the wrong-CA test.
tls="$dir/tls"
mkdir -p "$tls"
(
  cd "$tls"
  ossl() { openssl "$@" >/dev/null 2>&1 || { log "ERROR: openssl $1 failed"; openssl "$@"; exit 1; }; }
  for ca in ca other-ca; do
    ossl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=otpengine test $ca" \
      -keyout "$ca.key" -out "$ca.crt"
  done
  # Extensions make them X.509 v3 certificates, the only kind rustls accepts.
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
  printf 'extendedKeyUsage=clientAuth\n' >client.ext
  ossl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
  ossl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out server.crt
  ossl req -newkey rsa:2048 -nodes -subj "/CN=otpengine test client" -keyout client.key -out client.csr
  ossl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile client.ext -out client.crt
)
tls_args=(--port 0 --tls-cert-file "$tls/server.crt" --tls-key-file "$tls/server.key"
  --tls-ca-cert-file "$tls/ca.crt")
tls_cli=(--tls --cacert "$tls/ca.crt" --cert "$tls/client.crt" --key "$tls/client.key")
acl_password="acl-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
auth_password="pass-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"

start "${ports[0]}"
for port in "${ports[@]:1:3}"; do
  start "$port" --cluster-enabled yes --cluster-config-file "$dir/$port/nodes.conf" \
    --cluster-node-timeout 5000
done
start "${ports[4]}" "${tls_args[@]}" --tls-port "${ports[4]}" --tls-auth-clients no
start "${ports[5]}" "${tls_args[@]}" --tls-port "${ports[5]}" --tls-auth-clients yes
# The ACL user has what an application's user would: every key and command
# but the dangerous ones (FLUSHALL, CONFIG, DEBUG, KEYS, ...), and INFO; and
# not FUNCTION, as on services that serve EVALSHA but not functions, so that
# engines under this user run their scripts (the fallback) where every other
# server runs the function library.
start "${ports[6]}" --requirepass "$auth_password" \
  --user otp on ">$acl_password" '~*' '&*' +@all -@dangerous +info -function
for port in "${ports[@]:0:4}"; do wait_for "$port"; done
for port in "${ports[@]:4:2}"; do wait_for "$port" "${tls_cli[@]}"; done
wait_for "${ports[6]}" -a "$auth_password" --no-auth-warning

redis-cli --cluster create "127.0.0.1:${ports[1]}" "127.0.0.1:${ports[2]}" "127.0.0.1:${ports[3]}" \
  --cluster-replicas 0 --cluster-yes >"$dir/cluster-create.log" 2>&1 \
  || { log "ERROR: redis-cli --cluster create failed:"; cat "$dir/cluster-create.log" >&2; exit 1; }
# Bounded poll until every node agrees the cluster is up.
for port in "${ports[@]:1:3}"; do
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
export OTPENGINE_REDIS_TLS_URL="rediss://127.0.0.1:${ports[4]}/0"
export OTPENGINE_REDIS_MTLS_URL="rediss://127.0.0.1:${ports[5]}/0"
export OTPENGINE_REDIS_TLS_CA="$tls/ca.crt"
export OTPENGINE_REDIS_TLS_OTHER_CA="$tls/other-ca.crt"
export OTPENGINE_REDIS_TLS_CLIENT_CERT="$tls/client.crt"
export OTPENGINE_REDIS_TLS_CLIENT_KEY="$tls/client.key"
export OTPENGINE_REDIS_AUTH_URL="redis://127.0.0.1:${ports[6]}/0"
export OTPENGINE_REDIS_AUTH_PASSWORD="$auth_password"
export OTPENGINE_REDIS_ACL_USER=otp
export OTPENGINE_REDIS_ACL_PASSWORD="$acl_password"
export OTPENGINE_REQUIRE_REDIS=1
log "redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') at $OTPENGINE_REDIS_URL, cluster at $OTPENGINE_REDIS_CLUSTER"

"$@"
