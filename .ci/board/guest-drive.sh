#!/usr/bin/env bash
# Runs INSIDE the CI board VM (.ci/board.sh), as root, from edgehead-ci.service at every boot. Reads its inputs from
# the CI disk mounted at /mnt/ci (bundle tarballs, firmware-scripts/, config.yaml) and reports on a virtio console
# (/dev/hvc0, a file on the host; the serial console stays the kernel's), one line per step:
#   BOARD <step> ok <seconds> <detail>      BOARD <step> FAIL <seconds> <why>      BOARD done ok|FAIL
# A phase file in /var/lib/edgehead-ci carries the run across the reboot step. On a failure it dumps the agent's
# journal to the report, then powers the VM off (the host reads the report; the VM never waits for a human).
set -uo pipefail
CI=/mnt/ci
OUT=/dev/hvc0
PHASE_FILE=/var/lib/edgehead-ci/phase
DEVICE_ID=board-ci
TOPIC=edgehead/$DEVICE_ID/predictions
mkdir -p /var/lib/edgehead-ci
exec 3>>"$OUT"

report() { printf '%s\n' "$*" >&3; }
T_STEP=$(date +%s.%N)
elapsed() { awk -v a="$T_STEP" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
begin() {
  T_STEP=$(date +%s.%N)
  STEP=$1
  report "BOARD-BEGIN $STEP"
}
ok() { report "BOARD $STEP ok $(elapsed) $*"; }
finish() {
  report "BOARD done $1"
  sync
  systemctl poweroff --no-block
  exit 0
}
fail() {
  report "BOARD $STEP FAIL $(elapsed) $*"
  {
    echo "--- systemctl status edgehead"
    systemctl status --no-pager -n 0 edgehead 2>&1 | head -n 20
    echo "--- journalctl -u edgehead (last 60 lines)"
    journalctl -u edgehead --no-pager -n 60 -o short-monotonic 2>&1
  } | sed 's/^/BOARD-LOG /' >&3
  finish FAIL
}
# run_logged STEP-LOG COMMAND...: runs the command, its output into the report (prefixed), returns its exit status.
run_logged() {
  local rc=0
  "$@" >/tmp/step.out 2>&1 || rc=$?
  sed 's/^/BOARD-LOG /' /tmp/step.out >&3
  return "$rc"
}
prop() { systemctl show -p "$1" --value edgehead; }
# wait_for SECONDS COMMAND...: polls COMMAND every second until it succeeds; 1 when SECONDS pass first.
wait_for() {
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 1
  done
}
unit_running() { [ "$(prop ActiveState)/$(prop SubState)" = active/running ]; }
# one_prediction SECONDS: the next message on the predictions topic (JSON) on stdout.
one_prediction() { mosquitto_sub -h 127.0.0.1 -p 1883 -t "$TOPIC" -C 1 -W "$1"; }
installed_version() { readlink /opt/edgehead/current | xargs basename; }

PHASE=$(cat "$PHASE_FILE" 2>/dev/null || echo 1)
report "BOARD-PHASE $PHASE kernel $(uname -r) systemd $(systemctl --version | head -n 1 | cut -d' ' -f2) node $(node --version 2>/dev/null || echo none) cpus $(nproc)"

if [ "$PHASE" = 1 ]; then
  begin boot
  systemctl is-system-running --wait >/dev/null 2>&1 || true
  ok "$(systemd-analyze 2>/dev/null | head -n 1 | sed 's/^Startup finished in //') state $(systemctl is-system-running 2>&1)"

  begin camera
  # Loaded at every boot from now on, like a camera that is plugged in (the reboot step needs it too).
  echo "options vivid n_devs=1 node_types=0x1 input_types=0x1" >/etc/modprobe.d/edgehead-ci-vivid.conf
  echo vivid >/etc/modules-load.d/edgehead-ci-vivid.conf
  modprobe vivid 2>/tmp/modprobe.err || fail "modprobe vivid: $(cat /tmp/modprobe.err)"
  wait_for 20 test -c /dev/video0 || fail "no /dev/video0 after modprobe vivid"
  fswebcam -q -d /dev/video0 -r 640x480 --no-banner /tmp/vivid.jpg 2>/tmp/fswebcam.err || true
  [ -s /tmp/vivid.jpg ] || fail "fswebcam wrote no image from vivid: $(tail -n 3 /tmp/fswebcam.err)"
  ok "vivid $(cat /sys/class/video4linux/video0/name) at /dev/video0 ($(stat -c %G /dev/video0) group); fswebcam as root: $(stat -c %s /tmp/vivid.jpg) bytes"

  begin install
  run_logged bash "$CI/firmware-scripts/install.sh" --bundle "$(readlink -f "$CI/good-1.tar.gz")" --config "$CI/config.yaml" ||
    fail "install.sh exited non-zero"
  ok "install.sh: $(installed_version) installed, unit $(systemctl is-enabled edgehead 2>&1)"

  begin active
  # Type=notify: "active" only once the agent sent READY=1 (after its first frame).
  wait_for 300 unit_running || fail "edgehead.service not active/running within 300 s ($(prop ActiveState)/$(prop SubState))"
  ok "active/running (Type=$(prop Type), NotifyAccess=$(prop NotifyAccess), WatchdogUSec=$(prop WatchdogUSec)); status: $(prop StatusText)"

  begin prediction
  one_prediction 300 >/tmp/p.json || fail "no message on $TOPIC within 300 s"
  # shellcheck disable=SC2016 # JavaScript template literals, not shell
  node -e '
    const p = JSON.parse(require("fs").readFileSync("/tmp/p.json", "utf8"));
    if (!String(p.source).startsWith("webcam:/dev/video0")) { console.error(`source ${p.source}`); process.exit(1); }
    if (!Array.isArray(p.top) || !p.top.length) { console.error("no top labels"); process.exit(1); }
    console.log(`${p.top[0].label} ${p.top[0].score} from ${p.source}, run ${p.run}`);' >/tmp/p.txt 2>&1 ||
    fail "bad prediction: $(cat /tmp/p.txt) $(head -c 300 /tmp/p.json)"
  # The loader (cli/loader.cjs) wrote V8's code cache of the bundle into the unit's CacheDirectory= at the first start.
  cache=$(find /var/cache/edgehead -name 'edgehead-*.v8cache' -user edgehead 2>/dev/null | head -n 1)
  [ -n "$cache" ] || fail "no code cache in /var/cache/edgehead: $(ls -la /var/cache/edgehead 2>&1)"
  ok "$(cat /tmp/p.txt); code cache $(stat -c %s "$cache") bytes"

  begin memory-max
  cg=/sys/fs/cgroup$(systemctl show -p ControlGroup --value edgehead)
  max=$(cat "$cg/memory.max" 2>/dev/null || echo none)
  [ "$max" = $((400 * 1024 * 1024)) ] || fail "the unit's cgroup memory.max is $max (want 400M = $((400 * 1024 * 1024)))"
  # Enforced: a process in the same cgroup that allocates past the limit is OOM-killed by the kernel.
  systemd-run --quiet --wait --collect -p MemoryMax=64M -p MemorySwapMax=0 \
    node -e 'const a = []; for (;;) a.push(Buffer.alloc(16 << 20, 1));' >/tmp/oom.out 2>&1
  kills=$(journalctl --no-pager -k -g 'Memory cgroup out of memory|oom-kill' 2>/dev/null | wc -l)
  [ "$kills" -gt 0 ] || fail "a 64M-capped transient unit allocating without bound was not OOM-killed: $(tail -n 3 /tmp/oom.out)"
  ok "memory.max $((max / 1024 / 1024)) MiB on $(basename "$cg"), memory.current $(($(cat "$cg/memory.current") / 1024 / 1024)) MiB; a capped unit allocating past MemoryMax was OOM-killed"

  begin watchdog
  pid=$(prop MainPID)
  restarts=$(prop NRestarts)
  # A hung frame loop stops the watchdog pings; SIGSTOP freezes the whole process the same way.
  kill -STOP "$pid"
  wait_for 180 bash -c "[ \$(systemctl show -p NRestarts --value edgehead) -gt $restarts ]" ||
    fail "no restart within 180 s of freezing pid $pid (WatchdogUSec=$(prop WatchdogUSec))"
  wait_for 300 unit_running || fail "not active/running again after the watchdog restart"
  [ "$(prop MainPID)" != "$pid" ] || fail "same main PID after the restart"
  journalctl -u edgehead --no-pager -o cat | grep -q 'Watchdog timeout' || fail "no 'Watchdog timeout' in the journal"
  ok "pid $pid frozen -> systemd: $(journalctl -u edgehead --no-pager -o cat | grep -m 1 'Watchdog timeout') -> restarted as pid $(prop MainPID) (NRestarts $restarts -> $(prop NRestarts))"

  begin update-good
  run_logged bash /opt/edgehead/firmware/update.sh "$CI/good-2.tar.gz" || fail "update.sh to the good bundle exited non-zero"
  want=$(cat "$CI/good-2.version")
  [ "$(installed_version)" = "$want" ] || fail "current is $(installed_version), want $want"
  unit_running || fail "not active/running after the update"
  one_prediction 300 >/dev/null || fail "no prediction after the update"
  ok "now $(installed_version), active, predicting"

  begin update-broken
  if run_logged bash /opt/edgehead/firmware/update.sh "$CI/broken.tar.gz"; then fail "update.sh accepted a bundle that does not run"; fi
  [ "$(installed_version)" = "$want" ] || fail "after the failed update current is $(installed_version), want $want (rolled back)"
  wait_for 300 unit_running || fail "not active/running after the rollback"
  one_prediction 300 >/dev/null || fail "no prediction after the rollback"
  ok "refused and rolled back to $(installed_version): active, predicting"

  begin reboot
  echo 2 >"$PHASE_FILE"
  date +%s.%N >/var/lib/edgehead-ci/reboot-started
  report "BOARD-LOG rebooting"
  sync
  systemctl reboot
  exit 0
fi

if [ "$PHASE" = 2 ]; then
  T_STEP=$(cat /var/lib/edgehead-ci/reboot-started)
  STEP=reboot
  wait_for 300 unit_running || fail "edgehead.service not active/running after the reboot"
  one_prediction 300 >/tmp/p.json || fail "no prediction after the reboot"
  ok "back: $(installed_version) active and predicting (time from the reboot command)"

  begin uninstall
  run_logged bash /opt/edgehead/firmware/uninstall.sh || fail "uninstall.sh exited non-zero"
  left=()
  for p in /etc/systemd/system/edgehead.service /opt/edgehead /usr/local/bin/edgehead /var/cache/edgehead; do [ ! -e "$p" ] || left+=("$p"); done
  [ "${#left[@]}" = 0 ] || fail "left behind by uninstall.sh: ${left[*]}"
  systemctl is-active --quiet edgehead && fail "edgehead still active after uninstall.sh"
  [ -f /etc/edgehead/config.yaml ] || fail "uninstall.sh (no --purge) removed the config"
  ok "unit, bundle, code cache and link gone; config and state kept"

  begin purge
  run_logged bash "$CI/firmware-scripts/uninstall.sh" --purge || fail "uninstall.sh --purge exited non-zero"
  left=()
  for p in /etc/edgehead /var/lib/edgehead /etc/systemd/system/edgehead.service /etc/systemd/system/edgehead.service.d /opt/edgehead; do
    [ ! -e "$p" ] || left+=("$p")
  done
  getent passwd edgehead >/dev/null && left+=("user edgehead")
  getent group edgehead >/dev/null && left+=("group edgehead")
  [ "$(systemctl show -p LoadState --value edgehead)" = not-found ] || left+=("unit LoadState $(systemctl show -p LoadState --value edgehead)")
  [ "${#left[@]}" = 0 ] || fail "left behind by uninstall.sh --purge: ${left[*]}"
  ok "nothing left: files, user, group, unit"
  finish ok
fi
STEP=phase
fail "unknown phase $PHASE"
