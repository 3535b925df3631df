#!/usr/bin/env bash
# A systemctl stand-in for a fake root (CI: .ci/firmware-update.sh copies it to $WORK/bin/systemctl and points
# FIRMWARE_SYSTEMCTL at the copy). Runs the installed unit's ExecStart (paths under /opt, /etc, /var mapped into
# $STUB_ROOT) with its Environment= and WorkingDirectory=, and acts as the manager the way update.sh sees it:
#  - Type=notify: the agent gets NOTIFY_SOCKET, WATCHDOG_USEC (from WatchdogSec=) and WATCHDOG_PID, and a
#    `systemd-notify` stand-in first on PATH that logs its parent PID and arguments to $STUB_STATE/notify (one line,
#    tab-separated); the unit is "activating (start)" until that log holds --ready from the main PID, then
#    "active (running)", with StatusText= the last --status=. Type=simple: "active (running)" while the process lives.
#  - Restart=always: a main process found dead is "activating (auto-restart)" (Result=exit-code) once, then started
#    again with NRestarts + 1; start/restart by hand set NRestarts to 0.
#  - `show [-p A,B,...]` prints those properties (ActiveState, SubState, Result, NRestarts, MainPID, Type,
#    ExecMainStartTimestampMonotonic, StatusText) as KEY=VALUE lines like systemctl.
# Not emulated: RestartSec (the restart comes with the next call), the start limit, TimeoutStartSec, the watchdog.
# State (pid, log, starts, enabled, notify, ...) lives in $STUB_STATE.
set -euo pipefail
: "${STUB_ROOT:?}" "${STUB_STATE:?}"
unit=$STUB_ROOT/etc/systemd/system/edgehead.service
S=$STUB_STATE
args=()
props=()
quiet=0
while [ $# -gt 0 ]; do
  case $1 in
    -p | --property) IFS=, read -r -a more <<<"${2:-}"; props+=("${more[@]}"); shift ;;
    --property=*) IFS=, read -r -a more <<<"${1#*=}"; props+=("${more[@]}") ;;
    --quiet | -q) quiet=1 ;;
    -*) ;;
    *) args+=("$1") ;;
  esac
  shift
done
verb=${args[0]:-}
say() { [ "$quiet" = 1 ] || echo "$*"; }

unit_type() { local t; t=$(sed -n 's/^Type=//p' "$unit" | tail -n 1); printf '%s' "${t:-simple}"; }
main_pid() { if [ -f "$S/pid" ]; then cat "$S/pid"; else echo 0; fi; }
alive() { [ -f "$S/pid" ] && kill -0 "$(cat "$S/pid")" 2>/dev/null; }
get() { if [ -f "$S/$1" ]; then cat "$S/$1"; else printf '%s' "$2"; fi; }

# WatchdogSec= in microseconds (plain seconds, "Ns", "Nmin"); empty when unset or 0.
watchdog_usec() {
  local w
  w=$(sed -n 's/^WatchdogSec=//p' "$unit" | tail -n 1)
  case $w in
    *min) w=$((${w%min} * 60)) ;;
    *s) w=${w%s} ;;
  esac
  if [[ $w =~ ^[1-9][0-9]*$ ]]; then printf '%s' $((w * 1000000)); fi
}

# Microseconds of a monotonic clock (uptime), always above the last one handed out.
monotonic_usec() {
  local up now last
  up=$(cut -d ' ' -f 1 /proc/uptime)
  now=$((${up%.*} * 1000000 + 10#${up#*.} * 10000))
  last=$(get start_ts 0)
  [ "$now" -gt "$last" ] || now=$((last + 1))
  printf '%s' "$now"
}

stop() {
  rm -f "$S/wanted" "$S/auto-restart"
  echo success >"$S/result"
  alive || return 0
  local pid
  pid=$(cat "$S/pid")
  kill -TERM "$pid"
  for _ in $(seq 1 100); do alive || return 0; sleep 0.1; done
  kill -KILL "$pid"
}

start() {
  local line cmd=() w wd
  line=$(sed -n 's/^ExecStart=//p' "$unit")
  read -r -a words <<<"$line"
  for w in "${words[@]}"; do
    case $w in /opt/* | /etc/* | /var/*) cmd+=("$STUB_ROOT$w") ;; *) cmd+=("$w") ;; esac
  done
  while IFS= read -r e; do export "${e?}"; done < <(sed -n 's/^Environment=//p' "$unit")
  if [ "$(unit_type)" = notify ]; then
    mkdir -p "$S/bin"
    # shellcheck disable=SC2016 # the stand-in's own variables, expanded when it runs
    printf '%s\n' '#!/bin/sh' "{ printf '%s' \"\$PPID\"; printf '\\t%s' \"\$@\"; printf '\\n'; } >>'$S/notify'" >"$S/bin/systemd-notify"
    chmod +x "$S/bin/systemd-notify"
    export NOTIFY_SOCKET=$S/notify.sock PATH=$S/bin:$PATH
    wd=$(watchdog_usec)
    if [ -n "$wd" ]; then export WATCHDOG_USEC=$wd; fi
  fi
  cd "$STUB_ROOT$(sed -n 's/^WorkingDirectory=//p' "$unit")"
  echo "--- start: ${cmd[*]}" >>"$S/log"
  # The subshell becomes the agent (exec): its PID is the main PID, the one WATCHDOG_PID names.
  (
    if [ -n "${WATCHDOG_USEC:-}" ]; then export WATCHDOG_PID=$BASHPID; fi
    exec nohup "${cmd[@]}" >>"$S/log" 2>&1 </dev/null
  ) &
  echo $! >"$S/pid"
  monotonic_usec >"$S/start_ts.new"
  mv "$S/start_ts.new" "$S/start_ts"
  touch "$S/wanted"
  rm -f "$S/auto-restart"
  echo success >"$S/result"
  echo "${cmd[*]}" >>"$S/starts"
}

# The manager's part: Restart=always for a main process that died while the unit was wanted.
supervise() {
  if [ ! -f "$S/wanted" ] || alive; then return 0; fi
  if [ -f "$S/auto-restart" ]; then
    echo $(($(get nrestarts 0) + 1)) >"$S/nrestarts"
    start
  else
    touch "$S/auto-restart"
    echo exit-code >"$S/result"
  fi
}

# The notify log's lines of the main process: PID, then systemd-notify's arguments, tab-separated.
notified() { local pid; pid=$(main_pid); [ -f "$S/notify" ] && awk -F '\t' -v p="$pid" '$1 == p' "$S/notify"; }
ready() { [ "$(unit_type)" != notify ] || notified | awk -F '\t' '{ for (i = 2; i <= NF; i++) if ($i == "--ready") f = 1 } END { exit !f }'; }
status_text() { notified | awk -F '\t' '{ for (i = 2; i <= NF; i++) if (index($i, "--status=") == 1) s = substr($i, 10) } END { print s }'; }

# ActiveState SubState
state() {
  if [ ! -f "$S/wanted" ]; then
    if [ "$(get result success)" = success ]; then echo "inactive dead"; else echo "failed failed"; fi
  elif [ -f "$S/auto-restart" ]; then
    echo "activating auto-restart"
  elif ready; then
    echo "active running"
  else
    echo "activating start"
  fi
}

show() {
  local st p
  read -r -a st <<<"$(state)"
  [ "${#props[@]}" -gt 0 ] || props=(Type ActiveState SubState Result MainPID NRestarts ExecMainStartTimestampMonotonic StatusText)
  for p in "${props[@]}"; do
    case $p in
      ActiveState) echo "ActiveState=${st[0]}" ;;
      SubState) echo "SubState=${st[1]}" ;;
      Result) echo "Result=$(get result success)" ;;
      NRestarts) echo "NRestarts=$(get nrestarts 0)" ;;
      MainPID) if alive; then echo "MainPID=$(main_pid)"; else echo "MainPID=0"; fi ;;
      Type) echo "Type=$(unit_type)" ;;
      ExecMainStartTimestampMonotonic) echo "ExecMainStartTimestampMonotonic=$(get start_ts 0)" ;;
      StatusText) echo "StatusText=$(status_text)" ;;
      *) echo "$p=" ;;
    esac
  done
}

case $verb in show | is-active | status) supervise ;; esac
case $verb in
  start) if ! alive; then echo 0 >"$S/nrestarts"; start; fi ;;
  restart) stop; echo 0 >"$S/nrestarts"; start ;;
  stop) stop; rm -f "$S/pid" ;;
  is-active)
    read -r -a st <<<"$(state)"
    say "${st[0]}"
    [ "${st[0]}" = active ] || exit 3
    ;;
  is-enabled) if [ -f "$S/enabled" ]; then echo enabled; else echo disabled; exit 1; fi ;;
  enable) touch "$S/enabled" ;;
  disable) rm -f "$S/enabled" ;;
  show) show ;;
  status)
    read -r -a st <<<"$(state)"
    text=$(status_text)
    echo "edgehead.service (CI stand-in): ${st[0]} (${st[1]}); main PID $(main_pid)${text:+; status: $text}"
    tail -n 8 "$S/log"
    ;;
  daemon-reload) ;;
  reset-failed) if [ ! -f "$S/wanted" ]; then echo success >"$S/result"; fi ;;
  *) echo "systemctl stand-in: unsupported: ${args[*]}" >&2; exit 1 ;;
esac
