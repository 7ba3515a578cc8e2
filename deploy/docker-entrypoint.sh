#!/bin/sh
# Container entrypoint: choose a worker count, then exec sse-gateway with the arguments given
# (exec, so the gateway is PID 1 and receives SIGTERM itself; uvicorn reaps its own workers).
#
# GATEWAY_WORKERS unset and no --workers flag:
#   - with a Redis URL (GATEWAY_REDIS_URL or --redis-url): one worker per CPU this container may
#     use, i.e. nproc capped by the cgroup v2 CPU quota (nproc does not see `docker run --cpus`);
#   - without one: 1, because the embedded store lives inside a single process.
# Kubernetes sets GATEWAY_WORKERS explicitly (see deploy/base), so none of this guessing runs there.
set -eu

cpu_max_file=${CGROUP_CPU_MAX:-/sys/fs/cgroup/cpu.max}

cpu_count() {
  n=$(nproc 2>/dev/null || echo 1)
  if [ -r "$cpu_max_file" ]; then
    # "max 100000" (no quota) or "<quota> <period>" in microseconds.
    read -r quota period <"$cpu_max_file" || true
    if [ "${quota:-max}" != max ] && [ "${period:-0}" -gt 0 ]; then
      limited=$(((quota + period - 1) / period))
      [ "$limited" -lt "$n" ] && n=$limited
    fi
  fi
  [ "$n" -ge 1 ] || n=1
  echo "$n"
}

has_flag() { # has_flag --name ARGS...: is --name or --name=value among ARGS?
  flag=$1
  shift
  for arg in "$@"; do
    case $arg in "$flag" | "$flag"=*) return 0 ;; esac
  done
  return 1
}

if [ -z "${GATEWAY_WORKERS:-}" ] && ! has_flag --workers "$@"; then
  if [ -n "${GATEWAY_REDIS_URL:-}" ] || has_flag --redis-url "$@"; then
    GATEWAY_WORKERS=$(cpu_count)
  else
    GATEWAY_WORKERS=1
  fi
  export GATEWAY_WORKERS
fi

exec sse-gateway "$@"
