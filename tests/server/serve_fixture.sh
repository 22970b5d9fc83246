#!/bin/bash
# The ctest fixture of the socket-labelled end-to-end tests (tests/server/CMakeLists.txt).
#   serve_fixture.sh start TCEMU SOCK   runs `TCEMU serve --listen unix:SOCK` in the background (pid in SOCK.pid,
#                                       log in SOCK.log) and returns once the socket accepts connections
#   serve_fixture.sh stop TCEMU SOCK    stops it; fails if the server died during the tests or a device
#                                       process of it was killed by a signal (a crash), printing the log
set -u
cmd=$1 tcemu=$2 sock=$3
pidfile=$sock.pid
log=$sock.log

case $cmd in
start)
  # A server left behind by an interrupted run of this fixture.
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")"
    for _ in $(seq 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$sock"
  # Its own session and no inherited pipes: ctest neither waits for it nor signals it with this test.
  setsid "$tcemu" serve --listen "unix:$sock" </dev/null >/dev/null 2>"$log" &
  pid=$!
  echo "$pid" >"$pidfile"
  # The server renames its socket into place once it listens.
  for _ in $(seq 100); do
    [ -S "$sock" ] && { echo "tcemu serve (pid $pid) listening on unix:$sock"; exit 0; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "tcemu serve did not come up; its log:"
  cat "$log"
  exit 1
  ;;
stop)
  pid=$(cat "$pidfile") || exit 1
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "tcemu serve (pid $pid) died during the tests; its log:"
    cat "$log"
    exit 1
  fi
  kill "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$pidfile"
  if grep -q "killed by signal" "$log"; then
    echo "a device process of tcemu serve crashed:"
    grep "killed by signal" "$log"
    exit 1
  fi
  echo "tcemu serve stopped; $(grep -c ' connected: ' "$log") clients served (log: $log)"
  ;;
*)
  echo "usage: $0 start|stop TCEMU SOCK" >&2
  exit 2
  ;;
esac
