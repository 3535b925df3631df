#!/usr/bin/env bash
# CI: install.sh and the unit it generates. --dry-run changes nothing (on this machine's real root and with --root);
# on fake roots (--root DIR): the layout, modes and unit directives, idempotence (a second run writes nothing), an
# existing config is never overwritten, a tarball with its .sha256, the user created inside the root (useradd
# --root), the camera drop-in (written for source.type rpicam or a camera sensor in sysfs, idempotent, removed by
# uninstall.sh); then systemd-analyze verify on the generated unit, alone and with the camera drop-in. Run by .ci/firmware.sh; runs alone too (as root on
# Debian bookworm; builds dist/ if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
FW=$(pwd)/firmware-scripts
# shellcheck source=lib.sh source-path=SCRIPTDIR
. .ci/lib.sh

need_tools systemd-analyze:systemd
ensure_dist
VERSION=$(node dist/edgehead.cjs --version)
WORK=$(mktemp -d /tmp/ci-firmware-install.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# ------------------------------------------------------------------------------------------------- install --dry-run
step "install.sh --dry-run changes nothing (on this machine's real root, and with --root)"
snapshot() {
  {
    for p in /opt/edgehead /etc/edgehead /var/lib/edgehead /etc/systemd/system/edgehead.service /etc/systemd/system/edgehead.service.d /usr/local/bin/edgehead; do
      if [ -e "$p" ] || [ -L "$p" ]; then find "$p" -printf '%p %s %T@ %m %u\n'; else echo "absent $p"; fi
    done
    getent passwd edgehead || echo "no user edgehead"
    dpkg-query -W -f '${Package} ${Status}\n' nodejs fswebcam rpicam-apps rpicam-apps-lite 2>/dev/null || true
  } | sha256sum
}
before=$(snapshot)
bash "$FW/install.sh" --dry-run >"$WORK/dry.txt" 2>&1 || { cat "$WORK/dry.txt"; fail "install.sh --dry-run failed"; }
[ "$(snapshot)" = "$before" ] || fail "install.sh --dry-run changed the system"
expect_in "$WORK/dry.txt" "[dry-run] would install the bundle to /opt/edgehead/$VERSION"
expect_in "$WORK/dry.txt" "[dry-run] would install the systemd unit /etc/systemd/system/edgehead.service"
expect_in "$WORK/dry.txt" "nothing was changed"
sed 's/^/    | /' "$WORK/dry.txt"
DRY_ROOT=$WORK/dry-root
bash "$FW/install.sh" --dry-run --root "$DRY_ROOT" >"$WORK/dry2.txt" 2>&1 || { cat "$WORK/dry2.txt"; fail "install.sh --dry-run --root failed"; }
[ ! -e "$DRY_ROOT" ] || fail "install.sh --dry-run --root created $DRY_ROOT"
expect_in "$WORK/dry2.txt" "[dry-run] would create the state dir $DRY_ROOT/var/lib/edgehead"
ok "dry runs print $(grep -c '\[dry-run\] would' "$WORK/dry.txt") actions each and change nothing"

# ------------------------------------------------------------------------------------------------- install --root x2
step "install.sh --root DIR, twice (idempotent)"
R=$WORK/root
bash "$FW/install.sh" --root "$R" --device-id ci-fw >"$WORK/i1.txt" 2>&1 || { cat "$WORK/i1.txt"; fail "install.sh --root failed"; }
sed 's/^/    | /' "$WORK/i1.txt"
expect_in "$WORK/i1.txt" "done: edgehead $VERSION installed"
# Every path with its size, mode, owner and mtime (ns): any write shows.
tree_state() { find "$1" -printf '%p %s %m %u:%g %T@ %l\n' | sort | sha256sum; }
after_first=$(tree_state "$R")
bash "$FW/install.sh" --root "$R" --device-id ci-fw >"$WORK/i2.txt" 2>&1 || { cat "$WORK/i2.txt"; fail "second install.sh --root failed"; }
sed 's/^/    | /' "$WORK/i2.txt"
expect_in "$WORK/i2.txt" "nothing to do: edgehead $VERSION is installed and up to date (no changes)"
[ "$(tree_state "$R")" = "$after_first" ] || fail "the second run changed files in the fake root"

[ "$(readlink "$R/opt/edgehead/current")" = "$VERSION" ] || fail "current -> $(readlink "$R/opt/edgehead/current"), not $VERSION"
diff -rq dist "$R/opt/edgehead/$VERSION" >/dev/null || fail "the installed bundle differs from dist/"
[ "$(readlink "$R/usr/local/bin/edgehead")" = /opt/edgehead/current/edgehead.cjs ] || fail "/usr/local/bin/edgehead link"
[ "$(stat -c %a "$R/var/lib/edgehead")" = 700 ] || fail "state dir mode $(stat -c %a "$R/var/lib/edgehead"), not 700"
[ "$(stat -c %a "$R/etc/edgehead/config.yaml")" = 640 ] || fail "config mode not 640"
grep -q '^  id: "ci-fw"$' "$R/etc/edgehead/config.yaml" || fail "--device-id not written into the config"
for f in update.sh uninstall.sh provision-model.sh lib.sh; do [ -x "$R/opt/edgehead/firmware/$f" ] || [ -f "$R/opt/edgehead/firmware/$f" ] || fail "firmware/$f not installed"; done
UNIT=$R/etc/systemd/system/edgehead.service
for d in Restart=always StartLimitIntervalSec= StartLimitBurst= User=edgehead Group=edgehead SupplementaryGroups=video \
  NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes ReadWritePaths=/var/lib/edgehead CacheDirectory=edgehead \
  DevicePolicy=closed "DeviceAllow=char-video4linux rw" MemoryMax= StandardOutput=journal \
  Environment=EDGEHEAD_LOG_FORMAT=json Environment=MALLOC_ARENA_MAX=2 "ExecStart=$(command -v node) --max-semi-space-size=1 /opt/edgehead/current/edgehead.cjs run --config /etc/edgehead/config.yaml" \
  KillSignal=SIGTERM TimeoutStopSec=10 WorkingDirectory=/var/lib/edgehead; do
  grep -q "^$d" "$UNIT" || fail "unit: no $d"
done
[ ! -e "$R/etc/systemd/system/edgehead.service.d/camera.conf" ] || fail "camera drop-in written without a camera module or source.type rpicam"
expect_in "$WORK/i1.txt" "camera module: none found and source.type is not rpicam"
ok "fake root: bundle, current -> $VERSION, config 0640 with device.id, state 0700, unit with every required directive, no camera drop-in"

echo "the config is never overwritten:"
echo "# local edit" >>"$R/etc/edgehead/config.yaml"
cp "$R/etc/edgehead/config.yaml" "$WORK/config.before"
bash "$FW/install.sh" --root "$R" --config config/examples/minimal.yaml --device-id other >"$WORK/i3.txt" 2>&1 || { cat "$WORK/i3.txt"; fail "install.sh (third run) failed"; }
cmp -s "$WORK/config.before" "$R/etc/edgehead/config.yaml" || fail "install.sh overwrote the config"
expect_in "$WORK/i3.txt" "exists and is kept (never overwritten)"
expect_in "$WORK/i3.txt" "--config config/examples/minimal.yaml not applied"
ok "an existing config is kept (with --config and --device-id given)"

step "install.sh --root with a tarball, a checksum and a user database (useradd --root)"
R2=$WORK/root2
HOST_PASSWD=$(sha256sum </etc/passwd)
mkdir -p "$R2/etc"
cp /etc/passwd /etc/group /etc/shadow /etc/gshadow "$R2/etc/"
tar -czf "$WORK/edgehead-$VERSION.tar.gz" -C dist .
(cd "$WORK" && sha256sum "edgehead-$VERSION.tar.gz" >"edgehead-$VERSION.tar.gz.sha256")
bash "$FW/install.sh" --root "$R2" --bundle "$WORK/edgehead-$VERSION.tar.gz" >"$WORK/i4.txt" 2>&1 || { cat "$WORK/i4.txt"; fail "install.sh --bundle TARBALL failed"; }
expect_in "$WORK/i4.txt" "sha256 ok"
expect_in "$WORK/i4.txt" "create system user edgehead in $R2"
grep -q '^edgehead:x:[0-9]*:[0-9]*:edgehead agent:/var/lib/edgehead:/usr/sbin/nologin$' "$R2/etc/passwd" || fail "no edgehead user in $R2/etc/passwd"
grep -Eq '^video:[^:]*:[^:]*:(.*,)?edgehead(,|$)' "$R2/etc/group" || fail "edgehead is not in group video in $R2/etc/group"
uid_gid=$(awk -F: '$1=="edgehead"{print $3":"$4}' "$R2/etc/passwd")
[ "$(stat -c %u:%g "$R2/var/lib/edgehead")" = "$uid_gid" ] || fail "state dir not owned by edgehead ($uid_gid)"
bash "$FW/install.sh" --root "$R2" --bundle "$WORK/edgehead-$VERSION.tar.gz" >"$WORK/i5.txt" 2>&1 || { cat "$WORK/i5.txt"; fail "install.sh (second, tarball) failed"; }
expect_in "$WORK/i5.txt" "nothing to do"
[ "$(sha256sum </etc/passwd)" = "$HOST_PASSWD" ] || fail "install.sh --root changed this machine's /etc/passwd"
ok "tarball verified, user edgehead ($uid_gid) in group video inside the root (host's /etc/passwd untouched), state dir owned by it; second run: nothing to do"

# ------------------------------------------------------------------------------------------------- camera drop-in
step "install.sh: the camera drop-in (source.type rpicam, or a camera sensor in sysfs), uninstall.sh removes it"
CAM=$WORK/root-camera
CAM_DROPIN=$CAM/etc/systemd/system/edgehead.service.d/camera.conf
bash "$FW/install.sh" --dry-run --root "$CAM" --config config/examples/rpicam.yaml >"$WORK/c0.txt" 2>&1 || { cat "$WORK/c0.txt"; fail "install.sh --dry-run (rpicam config) failed"; }
expect_in "$WORK/c0.txt" "camera module: source.type is rpicam"
expect_in "$WORK/c0.txt" "[dry-run] would write the camera drop-in $CAM_DROPIN"
[ ! -e "$CAM" ] || fail "install.sh --dry-run --root created $CAM"
bash "$FW/install.sh" --root "$CAM" --config config/examples/rpicam.yaml >"$WORK/c1.txt" 2>&1 || { cat "$WORK/c1.txt"; fail "install.sh (rpicam config) failed"; }
expect_in "$WORK/c1.txt" "camera module: source.type is rpicam"
expect_in "$WORK/c1.txt" "--root: skipped: apt-get install rpicam-apps (the target needs it: source.type is rpicam)"
expect_in "$WORK/c1.txt" "write the camera drop-in $CAM_DROPIN"
[ "$(stat -c %a "$CAM_DROPIN")" = 644 ] || fail "camera drop-in mode $(stat -c %a "$CAM_DROPIN"), not 644"
for d in "[Service]" "DeviceAllow=char-media rw" "DeviceAllow=char-dma_heap rw"; do
  grep -qxF "$d" "$CAM_DROPIN" || fail "camera drop-in: no line $d"
done
[ "$(head -n 1 "$CAM_DROPIN")" = "# Written by edgehead's install.sh; removed by uninstall.sh." ] || fail "camera drop-in: no install.sh mark on its first line"
cam_state=$(tree_state "$CAM")
bash "$FW/install.sh" --root "$CAM" >"$WORK/c2.txt" 2>&1 || { cat "$WORK/c2.txt"; fail "second install.sh (rpicam config) failed"; }
expect_in "$WORK/c2.txt" "unchanged: $CAM_DROPIN"
expect_in "$WORK/c2.txt" "nothing to do"
[ "$(tree_state "$CAM")" = "$cam_state" ] || fail "the second run changed files in the camera root"
ok "source.type rpicam: drop-in written (0644, DeviceAllow char-media and char-dma_heap), rpicam-apps noted for the target; second run: nothing to do"

# A camera module found in sysfs (the sensor's V4L2 sub-device), with the default (webcam) config: drop-in too.
SENSOR=$WORK/root-sensor
mkdir -p "$SENSOR/sys/class/video4linux/v4l-subdev0"
echo "imx708 10-001a" >"$SENSOR/sys/class/video4linux/v4l-subdev0/name"
bash "$FW/install.sh" --root "$SENSOR" >"$WORK/c3.txt" 2>&1 || { cat "$WORK/c3.txt"; fail "install.sh (sensor in sysfs) failed"; }
expect_in "$WORK/c3.txt" "camera module: camera sensor imx708 (/sys/class/video4linux/v4l-subdev0)"
cmp -s "$CAM_DROPIN" "$SENSOR/etc/systemd/system/edgehead.service.d/camera.conf" || fail "the sensor root's drop-in differs"
# A sub-device that is not a sensor (e.g. a lens driver) does not count.
NOSENSOR=$WORK/root-nosensor
mkdir -p "$NOSENSOR/sys/class/video4linux/v4l-subdev0"
echo "dw9807 10-000c" >"$NOSENSOR/sys/class/video4linux/v4l-subdev0/name"
bash "$FW/install.sh" --root "$NOSENSOR" >"$WORK/c4.txt" 2>&1 || { cat "$WORK/c4.txt"; fail "install.sh (lens driver in sysfs) failed"; }
[ ! -e "$NOSENSOR/etc/systemd/system/edgehead.service.d/camera.conf" ] || fail "a lens driver's sub-device counted as a camera"
ok "a camera sensor's sub-device in sysfs gets the drop-in; a lens driver's does not"

# uninstall.sh removes it (no --purge needed), and keeps other drop-ins.
printf '[Service]\nMemoryMax=600M\n' >"$SENSOR/etc/systemd/system/edgehead.service.d/override.conf"
mkdir -p "$SENSOR/var/cache/edgehead" && echo x >"$SENSOR/var/cache/edgehead/edgehead-0-0.v8cache" # what the service's loader writes
bash "$FW/uninstall.sh" --root "$SENSOR" >"$WORK/u1.txt" 2>&1 || { cat "$WORK/u1.txt"; fail "uninstall.sh (sensor root) failed"; }
expect_in "$WORK/u1.txt" "remove the camera drop-in"
[ ! -e "$SENSOR/var/cache/edgehead" ] || fail "uninstall.sh left the code cache /var/cache/edgehead"
[ ! -e "$SENSOR/etc/systemd/system/edgehead.service.d/camera.conf" ] || fail "uninstall.sh left the camera drop-in"
[ -f "$SENSOR/etc/systemd/system/edgehead.service.d/override.conf" ] || fail "uninstall.sh removed a local drop-in without --purge"
cp -a "$CAM" "$WORK/root-camera-copy"
bash "$FW/uninstall.sh" --root "$WORK/root-camera-copy" >"$WORK/u2.txt" 2>&1 || { cat "$WORK/u2.txt"; fail "uninstall.sh (camera root) failed"; }
[ ! -e "$WORK/root-camera-copy/etc/systemd/system/edgehead.service.d" ] || fail "uninstall.sh left the empty edgehead.service.d"
ok "uninstall.sh removes the camera drop-in (and the folder when it is empty) and the code cache; other drop-ins stay until --purge"

# ------------------------------------------------------------------------------------------------ systemd-analyze
step "systemd-analyze verify the generated unit"
# `systemd-analyze verify --root=$R` cannot work on a fake root: it loads the unit's dependencies (sysinit.target, ...)
# from inside the root and checks ExecStart's binary there ("Unit sysinit.target not found", "/usr/bin/node is not
# executable"). So the generated unit is verified as a file, against this machine's units and /usr/bin/node.
mkdir -p "$WORK/verify"
cp "$UNIT" "$WORK/verify/edgehead.service"
if ! systemd-analyze verify "$WORK/verify/edgehead.service" >"$WORK/verify.txt" 2>&1 || [ -s "$WORK/verify.txt" ]; then
  sed 's/^/    | /' "$WORK/verify.txt"
  fail "systemd-analyze verify reported problems"
fi
# The check catches mistakes: a misspelt directive and a missing binary must be reported.
sed -e 's/^ProtectHome=yes/ProtectHom=yes/' -e 's#^ExecStart=[^ ]*#ExecStart=/usr/bin/no-such-node#' "$UNIT" >"$WORK/verify/broken.service"
if systemd-analyze verify "$WORK/verify/broken.service" >"$WORK/verify-bad.txt" 2>&1 && [ ! -s "$WORK/verify-bad.txt" ]; then
  fail "systemd-analyze verify did not notice a broken unit"
fi
expect_in "$WORK/verify-bad.txt" "Unknown key 'ProtectHom'"
ok "systemd-analyze verify: no findings (and it does report a misspelt key and a missing ExecStart binary)"

step "systemd-analyze verify the unit with the camera drop-in"
# verify reads drop-ins from NAME.service.d/ beside the unit file, as systemd does.
mkdir -p "$WORK/verify-camera/edgehead.service.d"
cp "$UNIT" "$WORK/verify-camera/edgehead.service"
cp "$CAM/etc/systemd/system/edgehead.service.d/camera.conf" "$WORK/verify-camera/edgehead.service.d/"
if ! systemd-analyze verify "$WORK/verify-camera/edgehead.service" >"$WORK/verify-camera.txt" 2>&1 || [ -s "$WORK/verify-camera.txt" ]; then
  sed 's/^/    | /' "$WORK/verify-camera.txt"
  fail "systemd-analyze verify reported problems with the camera drop-in"
fi
# ... and it does read the drop-in: a misspelt key in it is reported.
sed -i 's/^DeviceAllow=char-media/DeviceAlow=char-media/' "$WORK/verify-camera/edgehead.service.d/camera.conf"
systemd-analyze verify "$WORK/verify-camera/edgehead.service" >"$WORK/verify-camera-bad.txt" 2>&1 || true
expect_in "$WORK/verify-camera-bad.txt" "camera.conf:6: Unknown key 'DeviceAlow'"
ok "systemd-analyze verify: the unit with camera.conf has no findings (and a misspelt key in the drop-in is reported)"
systemd-analyze security --offline=yes "$WORK/verify/edgehead.service" 2>/dev/null | tail -n 1 || true
