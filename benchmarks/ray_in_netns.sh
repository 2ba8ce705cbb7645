#!/usr/bin/env bash
# Run a command inside a fresh loopback-only network namespace, then delete it (docs/BACKENDS.md, "Ray").
#
# Why: Ray binds 0.0.0.0 and probes outside addresses (its node IP discovery, usage stats); the project's
# network rule is that tests bind only to loopback or inside namespaces they create. In a namespace that
# has only `lo`, nothing Ray opens can be reached from, or reach, anything outside. Needs root and iproute2.
#
#   benchmarks/ray_in_netns.sh                       # the Ray tests: python -m pytest tests/integration/test_ray_backend.py
#   benchmarks/ray_in_netns.sh bxthre3 run dags/hello_fanout.yaml --backend ray:local
#   benchmarks/ray_in_netns.sh python benchmarks/backends.py --backends ray:local
#
# The venv ($RAY_VENV, default .venv-ray beside this repository's .venv) is put first on PATH inside the namespace. After the command, any
# process still inside the namespace (a raylet or GCS server that outlived `ray.shutdown()`) is listed,
# then killed by PID (`ip netns pids`: only processes of this namespace, which this script created).
set -u
VENV="${RAY_VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv-ray}"
NS="bx-ray-$$"
cd "$(dirname "$0")/.." || exit 2
if [ "$(id -u)" -ne 0 ]; then echo "ray_in_netns.sh: needs root (ip netns add)" >&2; exit 2; fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "ray_in_netns.sh: no venv at $VENV; make it (docs/BACKENDS.md): python3 -m venv .venv-ray &&" \
         ".venv-ray/bin/pip install -c constraints.txt -e '.[test,wasmtime]' && .venv-ray/bin/pip install 'ray[client]==2.60.0'" >&2
    exit 2
fi

cleanup() {
    local left
    left="$(ip netns pids "$NS" 2>/dev/null | tr '\n' ' ')"
    if [ -n "$left" ]; then
        echo "ray_in_netns.sh: still running in $NS after the command: $left; killing them by PID" >&2
        for pid in $left; do ps -o pid=,args= -p "$pid" | cut -c1-150 >&2 || true; kill -9 "$pid" 2>/dev/null || true; done
        for _ in $(seq 1 50); do [ -z "$(ip netns pids "$NS" 2>/dev/null)" ] && break; sleep 0.1; done
    fi
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip netns add "$NS" || exit 2
ip netns exec "$NS" ip link set lo up || exit 2
if [ "$#" -eq 0 ]; then
    set -- python -m pytest -q -p no:cacheprovider tests/integration/test_ray_backend.py
fi
ip netns exec "$NS" env PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV" PYTHONPATH="$PWD" RAY_USAGE_STATS_ENABLED=0 "$@"
