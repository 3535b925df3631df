#!/usr/bin/env bash
# A systemctl stand-in for a fake root (CI: .ci/firmware-update.sh copies it to $WORK/bin/systemctl and points
# FIRMWARE_SYSTEMCTL at the copy). Runs the installed unit's ExecStart (paths under /opt, /etc, /var mapped into
# $STUB_ROOT) with its Environment= and WorkingDirectory=, like Type=simple; `is-active` = the process is alive.
# State (pid, log, starts, enabled) lives in $STUB_STATE.
set -euo pipefail
: "${STUB_ROOT:?}" "${STUB_STATE:?}"
unit=$STUB_ROOT/etc/systemd/system/edgehead.service
args=()
for a in "$@"; do case $a in -*) ;; *) args+=("$a") ;; esac; done
verb=${args[0]:-}
alive() { [ -f "$STUB_STATE/pid" ] && kill -0 "$(cat "$STUB_STATE/pid")" 2>/dev/null; }
stop() {
  alive || return 0
  local pid
  pid=$(cat "$STUB_STATE/pid")
  kill -TERM "$pid"
  for _ in $(seq 1 100); do alive || return 0; sleep 0.1; done
  kill -KILL "$pid"
}
start() {
  local line cmd=() w
  line=$(sed -n 's/^ExecStart=//p' "$unit")
  read -r -a words <<<"$line"
  for w in "${words[@]}"; do
    case $w in /opt/* | /etc/* | /var/*) cmd+=("$STUB_ROOT$w") ;; *) cmd+=("$w") ;; esac
  done
  while IFS= read -r e; do export "${e?}"; done < <(sed -n 's/^Environment=//p' "$unit")
  cd "$STUB_ROOT$(sed -n 's/^WorkingDirectory=//p' "$unit")"
  echo "--- start: ${cmd[*]}" >>"$STUB_STATE/log"
  nohup "${cmd[@]}" >>"$STUB_STATE/log" 2>&1 </dev/null &
  echo $! >"$STUB_STATE/pid"
  echo "${cmd[*]}" >>"$STUB_STATE/starts"
}
quiet=0
for a in "$@"; do [ "$a" != --quiet ] || quiet=1; done
say() { [ "$quiet" = 1 ] || echo "$*"; }
case $verb in
  start) alive || start ;;
  restart) stop; start ;;
  stop) stop; rm -f "$STUB_STATE/pid" ;;
  is-active) if alive; then say active; elif [ -f "$STUB_STATE/pid" ]; then say failed; exit 3; else say inactive; exit 3; fi ;;
  is-enabled) if [ -f "$STUB_STATE/enabled" ]; then echo enabled; else echo disabled; exit 1; fi ;;
  enable) touch "$STUB_STATE/enabled" ;;
  disable) rm -f "$STUB_STATE/enabled" ;;
  status) echo "edgehead.service (CI stand-in): $(alive && echo active || echo failed)"; tail -n 8 "$STUB_STATE/log" ;;
  daemon-reload | reset-failed) ;;
  *) echo "systemctl stand-in: unsupported: $*" >&2; exit 1 ;;
esac
