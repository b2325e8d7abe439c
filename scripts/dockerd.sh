#!/usr/bin/env bash
# Start a private Docker engine for the tests and the docker runtime, unless one already answers.
#
#   eval "$(scripts/dockerd.sh)"     # starts dockerd if needed, then exports DOCKER_HOST
#   scripts/dockerd.sh stop          # stops the engine this script started
#
# Why a private engine: CI machines and the dev containers these tests run in have no systemd and
# no bridge networking, and must not touch a Docker the user runs for other work. The engine gets
#   * its own socket, data root and exec root under $TRADESIGNALS_DOCKER_DIR
#     (default ~/.cache/tradesignals/docker), so images (the locally made base image, pipeline
#     images) are cached between runs;
#   * no bridge network and no iptables changes (--bridge=none --iptables=false): containers use
#     host networking, which is how the docker runtime runs pipelines.
# Only the `export DOCKER_HOST=...` line goes to stdout; progress goes to stderr.
set -euo pipefail

dir="${TRADESIGNALS_DOCKER_DIR:-$HOME/.cache/tradesignals/docker}"
sock="$dir/docker.sock"
pidfile="$dir/dockerd.pid"
exec_root="/tmp/tradesignals-docker-exec-$(id -u)"  # short: containerd socket paths are length-limited

answers() { DOCKER_HOST="unix://$sock" docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if [ "${1:-}" = "stop" ]; then
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")"
    for _ in $(seq 1 100); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
    echo "dockerd stopped" >&2
  else
    echo "no dockerd started by this script is running" >&2
  fi
  exit 0
fi

command -v dockerd >/dev/null 2>&1 || {
  echo "dockerd is not installed: apt-get install -y docker.io (Debian), or point DOCKER_HOST at an engine" >&2
  exit 1
}
mkdir -p "$dir/data" "$exec_root"
if ! answers; then
  echo "starting dockerd (socket $sock, data root $dir/data, log $dir/dockerd.log)" >&2
  nohup dockerd --bridge=none --iptables=false --ip6tables=false \
    --data-root "$dir/data" --exec-root "$exec_root" --pidfile "$pidfile" \
    -H "unix://$sock" >"$dir/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 300); do answers && break; sleep 0.1; done
  answers || { echo "dockerd did not answer within 30 s; last lines of $dir/dockerd.log:" >&2; tail -20 "$dir/dockerd.log" >&2; exit 1; }
fi
echo "export DOCKER_HOST=unix://$sock"
