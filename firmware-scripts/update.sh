#!/usr/bin/env bash
# Update the installed edgehead agent from a bundle tarball, with checksum/signature checks and automatic rollback.
set -euo pipefail

PROG=update.sh
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$SCRIPT_DIR/lib.sh"

usage() {
  cat <<'EOF'
Usage: update.sh [--root DIR] [--signature SIG --pubkey PEM] [--health-timeout N] BUNDLE.tar.gz

Updates an edgehead installed by install.sh to the bundle in BUNDLE.tar.gz (a tarball of dist/: files at the top
or in one folder):

  1. verifies BUNDLE.tar.gz against BUNDLE.tar.gz.sha256 (`sha256sum` format; required)
  2. verifies an Ed25519 signature when one is configured: --signature/--pubkey, or /etc/edgehead/update.pub
     (then BUNDLE.tar.gz.sig is required). Made with:
       openssl pkeyutl -sign -inkey update.key -rawin -in BUNDLE.tar.gz -out BUNDLE.tar.gz.sig
  3. unpacks it next to the installed versions, /opt/edgehead/<version> (manifest.json's version, else
     `edgehead.cjs --version`), checks every file against manifest.json's sizes and sha256 (when it lists them)
     and that it starts (`--version`)
  4. switches /opt/edgehead/current to it atomically and restarts edgehead.service
  5. waits until it is healthy, as systemd sees it (`systemctl show`): a new main process is "active (running)" --
     with the unit's Type=notify that is once the agent sent READY=1, after loading the model and a first frame --
     and stays so for 5 s, the same process, NRestarts unchanged. If the unit fails, systemd restarts the agent by
     itself (it exited, or the watchdog killed it), or it is not active within --health-timeout seconds, switches
     back to the previous version, restarts and checks it the same way, and exits 1.
  6. keeps the newest 3 versions (the running one always), removes older ones

Options:
  --signature SIG        detached Ed25519 signature of the tarball (raw, 64 bytes); needs --pubkey
  --pubkey PEM           Ed25519 public key (PEM); default /etc/edgehead/update.pub when it exists
  --health-timeout N     seconds to wait for the new agent to be active, i.e. READY (default 200: the unit's
                         TimeoutStartSec=180, and more); then it must stay up --stable seconds
  --stable N             seconds the agent must stay running, same main process, no restart (default 5)
  --keep N               versions to keep (default 3, at least 2)
  --state-dir DIR        ignored (the health check no longer reads the run counter); accepted for older callers
  --root DIR             operate on a fake root (tests): paths prefixed with DIR; the service is restarted only
                         through $FIRMWARE_SYSTEMCTL (a systemctl stand-in), else restart and health check are skipped
  -h, --help             this help

Exit status: 0 updated (or already current), 1 refused or failed (rolled back), 2 bad arguments.
EOF
}

BUNDLE=""
SIG=""
PUBKEY=""
HEALTH_TIMEOUT=200
STABLE=5
KEEP=3
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --root) [ $# -ge 2 ] || usage_error "--root needs a folder"; ROOT=$2; shift ;;
    --root=*) ROOT=${1#*=} ;;
    --signature) [ $# -ge 2 ] || usage_error "--signature needs a file"; SIG=$2; shift ;;
    --signature=*) SIG=${1#*=} ;;
    --pubkey) [ $# -ge 2 ] || usage_error "--pubkey needs a PEM file"; PUBKEY=$2; shift ;;
    --pubkey=*) PUBKEY=${1#*=} ;;
    --health-timeout) [ $# -ge 2 ] || usage_error "--health-timeout needs seconds"; HEALTH_TIMEOUT=$2; shift ;;
    --health-timeout=*) HEALTH_TIMEOUT=${1#*=} ;;
    --stable) [ $# -ge 2 ] || usage_error "--stable needs seconds"; STABLE=$2; shift ;;
    --stable=*) STABLE=${1#*=} ;;
    --keep) [ $# -ge 2 ] || usage_error "--keep needs a number"; KEEP=$2; shift ;;
    --keep=*) KEEP=${1#*=} ;;
    --state-dir) [ $# -ge 2 ] || usage_error "--state-dir needs a folder"; shift ;;
    --state-dir=*) ;;
    -*) usage_error "unknown option: $1" ;;
    *) [ -z "$BUNDLE" ] || usage_error "one bundle only (got $BUNDLE and $1)"; BUNDLE=$1 ;;
  esac
  shift
done

[ -n "$BUNDLE" ] || usage_error "which bundle? update.sh BUNDLE.tar.gz"
[ -f "$BUNDLE" ] || usage_error "no such file: $BUNDLE"
[[ $HEALTH_TIMEOUT =~ ^[1-9][0-9]*$ ]] || usage_error "--health-timeout: a number of seconds >= 1"
[[ $STABLE =~ ^[0-9]+$ ]] || usage_error "--stable: a number of seconds"
[[ $KEEP =~ ^([2-9]|[1-9][0-9]+)$ ]] || usage_error "--keep: a number >= 2 (the new and the previous version)"
if [ -n "$ROOT" ]; then
  ROOT=$(realpath -m "$ROOT")
  [ "$ROOT" = / ] && ROOT=""
fi
need_root_user
command -v node >/dev/null || die "node is not installed (run install.sh first)"

OPT=$(rp /opt/edgehead)
ETC=$(rp /etc/edgehead)
BUNDLE=$(realpath "$BUNDLE")
[ -L "$OPT/current" ] || die "edgehead is not installed ($OPT/current is missing): run install.sh first"
PREV=$(readlink "$OPT/current")
[ -f "$OPT/$PREV/edgehead.cjs" ] || warn "$OPT/current points at $PREV, which holds no edgehead.cjs"

# One update at a time. The lock is fd 9: closed for the service manager (svc) so that nothing it starts holds it.
exec 9>"$OPT/.update.lock"
flock -n 9 || die "another update is running (lock $OPT/.update.lock)"

INCOMING=""
cleanup() { if [ -n "$INCOMING" ]; then rm -rf "$INCOMING"; fi; }
trap cleanup EXIT

# ------------------------------------------------------------------------------------------------------- 1, 2: integrity
check_sha256_file "$BUNDLE"
if [ -z "$PUBKEY" ] && [ -f "$ETC/update.pub" ]; then
  PUBKEY=$ETC/update.pub
  [ -n "$SIG" ] || SIG=$BUNDLE.sig
fi
if [ -n "$SIG" ] || [ -n "$PUBKEY" ]; then
  { [ -n "$SIG" ] && [ -n "$PUBKEY" ]; } || usage_error "--signature and --pubkey go together"
  [ -f "$SIG" ] || die "no signature file $SIG (a signature is required: $PUBKEY is configured)"
  [ -f "$PUBKEY" ] || die "no public key file $PUBKEY"
  if out=$(openssl pkeyutl -verify -pubin -inkey "$PUBKEY" -rawin -in "$BUNDLE" -sigfile "$SIG" 2>&1); then
    say "signature ok: $(basename "$SIG") by $PUBKEY"
  else
    die "bad signature: $SIG does not verify $BUNDLE with $PUBKEY (refusing): $(printf '%s' "$out" | head -n 1)"
  fi
else
  note "no signature configured (--signature/--pubkey or $ETC/update.pub): only the sha256 was checked"
fi
BUNDLE_SHA=$(sha256sum "$BUNDLE" | cut -d ' ' -f 1)

# ---------------------------------------------------------------------------------------------------------------- 3: unpack
INCOMING=$(mktemp -d "$OPT/.incoming.XXXXXX")
tar -xzf "$BUNDLE" -C "$INCOMING" --no-same-owner || die "cannot unpack $BUNDLE"
SRC=$(find_bundle_root "$INCOMING") || die "$BUNDLE holds no edgehead.cjs (at the top or in one folder): not an edgehead bundle"
chmod -R u+rwX,go+rX,go-w "$SRC"
chmod 0755 "$SRC"
verify_manifest "$SRC" || die "refusing $BUNDLE: its files do not match its manifest.json"
VERSION=$(bundle_version "$SRC")
v=$(node "$SRC/edgehead.cjs" --version 2>&1) || die "the new bundle does not start: node edgehead.cjs --version: $v"
say "bundle $(basename "$BUNDLE"): version $VERSION (edgehead.cjs --version: $v)"

# The folder: <version>; <version>+<sha256 prefix> when <version> exists with other files (a rebuilt bundle).
same_files() { [ -d "$2" ] && diff -rq -x .bundle.sha256 "$1" "$2" >/dev/null 2>&1; }
NEW_DIR_CREATED=0
NAME=$VERSION
if [ -d "$OPT/$NAME" ] && ! same_files "$SRC" "$OPT/$NAME"; then
  NAME=$VERSION+${BUNDLE_SHA:0:8}
  say "$OPT/$VERSION exists with other files: this bundle goes to $NAME"
fi
if same_files "$SRC" "$OPT/$NAME"; then
  say "$OPT/$NAME already holds this bundle"
  if [ "$PREV" = "$NAME" ]; then
    say "nothing to do: $NAME is the current version"
    exit 0
  fi
else
  rm -rf "${OPT:?}/$NAME"
  mv -T "$SRC" "$OPT/$NAME"
  printf '%s  %s\n' "$BUNDLE_SHA" "$(basename "$BUNDLE")" >"$OPT/$NAME/.bundle.sha256"
  NEW_DIR_CREATED=1
  say "unpacked to $OPT/$NAME"
fi
touch "$OPT/$NAME"
rm -rf "$INCOMING"
INCOMING=""

# --------------------------------------------------------------------------------------------------- 4, 5: switch, health
svc() { "$SYSTEMCTL" "$@" 9>&-; }
STATUS_SHOWN=0
show_status() {
  [ "$STATUS_SHOWN" = 0 ] || return 0
  STATUS_SHOWN=1
  svc status edgehead --no-pager --lines 20 2>&1 | sed 's/^/    /' >&2 || true
}

# unit_state: the unit as systemd sees it (systemctl show), in U_ACTIVE, U_SUB (ActiveState, SubState), U_RESULT,
# U_RESTARTS (NRestarts: the restarts systemd made by itself), U_START (ExecMainStartTimestampMonotonic:
# a new value for every new main process), U_PID (MainPID), U_TYPE and U_STATUS (the agent's STATUS= line).
unit_state() {
  local k v
  U_ACTIVE="" U_SUB="" U_RESULT="" U_RESTARTS=0 U_START=0 U_PID=0 U_TYPE="" U_STATUS=""
  while IFS='=' read -r k v; do
    case $k in
      ActiveState) U_ACTIVE=$v ;;
      SubState) U_SUB=$v ;;
      Result) U_RESULT=$v ;;
      NRestarts) U_RESTARTS=$v ;;
      ExecMainStartTimestampMonotonic) U_START=$v ;;
      MainPID) U_PID=$v ;;
      Type) U_TYPE=$v ;;
      StatusText) U_STATUS=$v ;;
    esac
  done < <(svc show edgehead -p ActiveState,SubState,Result,NRestarts,ExecMainStartTimestampMonotonic,MainPID,Type,StatusText 2>/dev/null || true)
}

unit_summary() { printf '%s (%s), result %s, NRestarts %s%s' "${U_ACTIVE:-?}" "${U_SUB:-?}" "${U_RESULT:-?}" "$U_RESTARTS" "${U_STATUS:+, status: $U_STATUS}"; }

# wait_healthy OLD_START: 0 when within HEALTH_TIMEOUT s a new main process (ExecMainStartTimestampMonotonic other
# than OLD_START) is active (running) -- after READY=1 with Type=notify -- and then stays so for STABLE s: the same
# process, the same NRestarts. 1 at the timeout, and at once when the unit is failed or systemd restarts the new
# agent by itself (auto-restart: it exited, or the watchdog killed it).
wait_healthy() {
  local old=$1 deadline=$((SECONDS + HEALTH_TIMEOUT)) first="" main="" restarts="" since=0
  while [ "$SECONDS" -lt "$deadline" ] || [ -n "$main" ]; do
    unit_state
    if [ "$U_ACTIVE" = failed ]; then
      say "health: edgehead.service failed: $(unit_summary)"
      return 1
    fi
    if [ "$U_START" != "$old" ] && [ "$U_START" != 0 ]; then
      [ -n "$first" ] || first=$U_START
      if [ "$U_START" != "$first" ] || [ "$U_SUB" = auto-restart ]; then
        say "health: the new agent did not stay up, systemd restarts it: $(unit_summary)"
        return 1
      fi
      if [ -n "$main" ]; then
        if [ "$U_ACTIVE/$U_SUB" != active/running ] || [ "$U_RESTARTS" != "$restarts" ]; then
          say "health: the agent did not stay up: $(unit_summary)"
          return 1
        fi
      elif [ "$U_ACTIVE/$U_SUB" = active/running ]; then
        main=$U_START restarts=$U_RESTARTS since=$SECONDS
        say "health: active (running), main PID $U_PID${U_STATUS:+, \"$U_STATUS\"}; must stay up ${STABLE} s"
      fi
      if [ -n "$main" ] && [ $((SECONDS - since)) -ge "$STABLE" ]; then return 0; fi
    fi
    sleep 1
  done
  say "health: not active (running) within ${HEALTH_TIMEOUT} s: $(unit_summary)"
  return 1
}

# restart_unit: restarts edgehead.service without waiting for it (wait_healthy does, with its own deadline; a plain
# `systemctl restart` of a Type=notify unit would block until READY or TimeoutStartSec). Sets OLD_START first.
restart_unit() {
  unit_state
  OLD_START=$U_START
  svc reset-failed edgehead >/dev/null 2>&1 || true
  svc restart --no-block edgehead || warn "systemctl restart edgehead failed"
}

say "switching $OPT/current: $PREV -> $NAME"
switch_link "$OPT/current" "$NAME"

if SYSTEMCTL=$(systemctl_cmd); then
  unit_state
  if [ -n "$U_TYPE" ] && [ "$U_TYPE" != notify ]; then
    note "the installed unit is Type=$U_TYPE, not notify (an older install.sh): \"active\" means started, not READY; install.sh installs the current unit"
  fi
  say "restarting edgehead.service; waiting up to ${HEALTH_TIMEOUT} s for it to be healthy (READY, then ${STABLE} s up)"
  restart_unit
  if wait_healthy "$OLD_START"; then
    say "healthy: edgehead $NAME is running (main PID $U_PID)"
  else
    show_status
    warn "edgehead $NAME is not healthy: rolling back to $PREV"
    switch_link "$OPT/current" "$PREV"
    restart_unit
    if wait_healthy "$OLD_START"; then
      say "rolled back: edgehead $PREV is running and healthy"
    else
      STATUS_SHOWN=0
      show_status
      warn "edgehead $PREV is not healthy either: see journalctl -u edgehead"
    fi
    if [ "$NEW_DIR_CREATED" = 1 ]; then
      rm -rf "${OPT:?}/$NAME"
      say "removed the failed version $OPT/$NAME"
    fi
    die "update to $NAME failed (not healthy); rolled back to $PREV"
  fi
elif [ -n "$ROOT" ]; then
  note "--root: no service manager (set FIRMWARE_SYSTEMCTL for one): skipped restart and health check"
else
  warn "systemd is not running here: switched, but edgehead.service was not restarted nor checked"
fi

# ----------------------------------------------------------------------------------------------------------------- 6: prune
n=0
while IFS= read -r d; do
  name=$(basename "$d")
  [ -f "$d/edgehead.cjs" ] || continue
  n=$((n + 1))
  if [ "$n" -le "$KEEP" ] || [ "$name" = "$NAME" ] || [ "$name" = "$PREV" ]; then continue; fi
  rm -rf "${OPT:?}/$name"
  say "removed old version $name (keeping $KEEP)"
done < <(find "$OPT" -mindepth 1 -maxdepth 1 -type d ! -name '.*' ! -name firmware -printf '%T@ %p\n' | sort -rn | cut -d ' ' -f 2-)

say "done: edgehead $NAME is current (previous: $PREV; installed: $(find "$OPT" -mindepth 1 -maxdepth 1 -type d ! -name '.*' ! -name firmware -printf '%f ' | sed 's/ $//'))"
