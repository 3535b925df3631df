#!/usr/bin/env bash
# Remove the edgehead agent installed by install.sh. Keeps its config and state unless --purge.
set -euo pipefail

PROG=uninstall.sh
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$SCRIPT_DIR/lib.sh"

usage() {
  cat <<'EOF'
Usage: uninstall.sh [--purge] [--root DIR] [--dry-run]

Stops and disables edgehead.service, removes the unit, /opt/edgehead (every installed version and these scripts),
/var/cache/edgehead (the bundle's code cache) and /usr/local/bin/edgehead.

Kept unless --purge: /etc/edgehead (config, keys, TLS files), /var/lib/edgehead (offline queue, active head,
downloaded models), drop-ins in /etc/systemd/system/edgehead.service.d (but camera.conf, which install.sh wrote, is
always removed), and the user edgehead.

Options:
  --purge     also remove /etc/edgehead, /var/lib/edgehead, the unit's drop-ins and the user and group edgehead
  --dry-run   print every action (with its command) and change nothing
  --root DIR  operate on a fake root (tests): paths prefixed with DIR; systemctl skipped; userdel --root only if
              DIR/etc/passwd exists
  -h, --help  this help
EOF
}

PURGE=0
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --purge) PURGE=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --root) [ $# -ge 2 ] || usage_error "--root needs a folder"; ROOT=$2; shift ;;
    --root=*) ROOT=${1#*=} ;;
    *) usage_error "unknown argument: $1" ;;
  esac
  shift
done
if [ -n "$ROOT" ]; then
  ROOT=$(realpath -m "$ROOT")
  [ "$ROOT" = / ] && ROOT=""
fi
need_root_user

OPT=$(rp /opt/edgehead)
ETC=$(rp /etc/edgehead)
STATE=$(rp /var/lib/edgehead)
CACHE=$(rp /var/cache/edgehead)
UNIT=$(rp /etc/systemd/system/edgehead.service)
DROPINS=$(rp /etc/systemd/system/edgehead.service.d)
BIN_LINK=$(rp /usr/local/bin/edgehead)
[ "$DRY_RUN" = 1 ] && say "dry run: printing the actions; nothing is changed"

# -------------------------------------------------------------------------------------------------------------- service
if SYSTEMCTL=$(systemctl_cmd); then
  if "$SYSTEMCTL" is-active --quiet edgehead 2>/dev/null; then act "stop edgehead.service" "$SYSTEMCTL" stop edgehead; fi
  if [ "$("$SYSTEMCTL" is-enabled edgehead 2>/dev/null || true)" = enabled ]; then
    act "disable edgehead.service" "$SYSTEMCTL" disable edgehead
  fi
elif [ -n "$ROOT" ]; then
  note "--root: skipped: systemctl stop, disable edgehead"
elif [ -f "$UNIT" ]; then
  warn "systemd is not running here: skipped: systemctl stop, disable edgehead"
fi

# ---------------------------------------------------------------------------------------------------------------- files
UNIT_REMOVED=0
if [ -f "$UNIT" ]; then
  act "remove the unit $UNIT" rm -f "$UNIT"
  UNIT_REMOVED=1
fi
# The camera drop-in is install.sh's own (its first line says so): removed with the unit. A camera.conf without that
# line is someone's local settings and is treated like the other drop-ins.
CAMERA_DROPIN=$DROPINS/camera.conf
if [ -f "$CAMERA_DROPIN" ] && [ "$(head -n 1 "$CAMERA_DROPIN")" = "# Written by edgehead's install.sh; removed by uninstall.sh." ]; then
  act "remove the camera drop-in $CAMERA_DROPIN (written by install.sh)" rm -f "$CAMERA_DROPIN"
  UNIT_REMOVED=1
  if [ "$DRY_RUN" != 1 ] && [ -z "$(ls -A "$DROPINS")" ]; then act "remove the empty $DROPINS" rmdir "$DROPINS"; fi
fi
if [ -d "$DROPINS" ]; then
  if [ "$PURGE" = 1 ]; then
    act "remove the unit's drop-ins $DROPINS" rm -rf "$DROPINS"
    UNIT_REMOVED=1
  else
    note "kept $DROPINS (local unit settings; --purge removes them)"
  fi
fi
if [ "$UNIT_REMOVED" = 1 ] && SYSTEMCTL=$(systemctl_cmd); then
  act "reload systemd (systemctl daemon-reload)" "$SYSTEMCTL" daemon-reload
  "$SYSTEMCTL" reset-failed edgehead >/dev/null 2>&1 || true
fi

if [ -L "$BIN_LINK" ]; then
  case $(readlink "$BIN_LINK") in
    /opt/edgehead/*) act "remove $BIN_LINK" rm -f "$BIN_LINK" ;;
    *) note "kept $BIN_LINK: it points at $(readlink "$BIN_LINK"), not into /opt/edgehead" ;;
  esac
fi
if [ -e "$OPT" ]; then act "remove $OPT (every installed version)" rm -rf "$OPT"; fi
if [ -e "$CACHE" ]; then act "remove $CACHE (the bundle's code cache)" rm -rf "$CACHE"; fi

if [ "$PURGE" = 1 ]; then
  if [ -e "$ETC" ]; then act "remove $ETC (config, keys)" rm -rf "$ETC"; fi
  if [ -e "$STATE" ]; then act "remove $STATE (state: queue, heads, models)" rm -rf "$STATE"; fi
else
  for d in "$ETC" "$STATE"; do
    if [ -e "$d" ]; then note "kept $d (--purge removes it)"; fi
  done
fi

# ----------------------------------------------------------------------------------------------------------------- user
if [ "$PURGE" = 1 ]; then
  if on_real_system; then
    if getent passwd edgehead >/dev/null; then act "remove the user edgehead" userdel edgehead; fi
    # userdel also removes the group edgehead (USERGROUPS_ENAB); a group left over is removed too.
    if [ "$DRY_RUN" != 1 ] && getent group edgehead >/dev/null; then act "remove the group edgehead" groupdel edgehead; fi
  elif [ -f "$(rp /etc/passwd)" ]; then
    if grep -q '^edgehead:' "$(rp /etc/passwd)"; then act "remove the user edgehead from $ROOT" userdel --root "$ROOT" edgehead; fi
    if [ "$DRY_RUN" != 1 ] && grep -q '^edgehead:' "$(rp /etc/group)" 2>/dev/null; then act "remove the group edgehead from $ROOT" groupdel --root "$ROOT" edgehead; fi
  else
    note "--root: $ROOT has no etc/passwd; skipped: userdel edgehead"
  fi
elif { on_real_system && getent passwd edgehead >/dev/null; } || grep -qs '^edgehead:' "$(rp /etc/passwd)"; then
  note "kept the user edgehead (--purge removes it)"
fi

if [ "$DRY_RUN" = 1 ]; then
  say "dry run: $CHANGES action(s) would be taken; nothing was changed"
elif [ "$CHANGES" = 0 ]; then
  say "nothing to remove: edgehead is not installed${ROOT:+ in $ROOT}"
else
  say "done: edgehead removed ($CHANGES change(s))$([ "$PURGE" = 1 ] || printf '; config and state kept')"
fi
