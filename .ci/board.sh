#!/usr/bin/env bash
# CI: the board for real. Boots a Debian bookworm VM with systemd under qemu-system-x86_64 (TCG: no KVM needed; or
# qemu-system-aarch64 with --arch=arm64: a manual job, its image takes ~45 min to build, firmware-scripts/README.md)
# and, inside it, runs the firmware scripts against a real service manager (.ci/board/guest-drive.sh):
#   boot -> camera (the kernel's vivid V4L2 test driver, captured by fswebcam) -> install.sh -> the unit active
#   (Type=notify: READY after the first frame) -> a prediction from the vivid camera at the VM's Mosquitto ->
#   MemoryMax enforced -> watchdog (a frozen agent is restarted by systemd) -> update.sh to a good bundle ->
#   update.sh to a broken one, rolled back -> reboot, still running -> uninstall.sh -> uninstall.sh --purge, nothing left.
# One summary line per step with its time. The VM has no network device (Mosquitto runs inside it); its disks are a
# cached base image (copy-on-write overlay, thrown away) and a small read-only CI disk with the bundles and scripts.
#
# The base image is built once (debootstrap from the Debian mirror, .ci/board/image.sh, ~5 minutes) and cached in
# ${CI_CACHE:-.cache/ci}/board/<sha256 of image.sh>. Whole run ~10-15 minutes on 2 cores, time-bounded by
# CI_BOARD_TIMEOUT (default 1500 s for the VM). If the VM cannot start, this fails and says why; it never
# skips. Runs as root on Debian bookworm amd64 (installs qemu-system-x86, qemu-utils, debootstrap when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. .ci/lib.sh
ARCH=amd64
case ${1:-} in
  "") ;;
  --arch=amd64 | --arch=arm64) ARCH=${1#--arch=} ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: .ci/board.sh [--arch=amd64|arm64]" >&2; exit 2 ;;
esac
VM_TIMEOUT=${CI_BOARD_TIMEOUT:-1500}
CACHE_ROOT=${CI_CACHE:-$REPO/.cache/ci}

WORK=$(mktemp -d /tmp/ci-board.XXXXXX)
QEMU_PID=""
cleanup() {
  [ -z "$QEMU_PID" ] || kill "$QEMU_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# -------------------------------------------------------------------------------------------------------------- tools
step "tools"
if [ "$ARCH" = arm64 ]; then
  need_tools qemu-system-aarch64:qemu-system-arm qemu-aarch64-static:qemu-user-static
  # Cortex-A72: a Raspberry Pi 4's core. (-cpu max here: `edgehead config check` failed with nonsense from TypeBox's
  # generated validators, "must be < undefined", i.e. miscompiled JIT code; the same bundle passes under qemu-user.)
  QEMU=(qemu-system-aarch64 -machine virt -cpu cortex-a72)
  CONSOLE=ttyAMA0
else
  need_tools qemu-system-x86_64:qemu-system-x86
  QEMU=(qemu-system-x86_64 -machine q35 -cpu max)
  CONSOLE=ttyS0
fi
need_tools qemu-img:qemu-utils debootstrap:debootstrap mkfs.ext4:e2fsprogs
echo "$("${QEMU[0]}" --version | head -n 1); debootstrap $(dpkg-query -W -f '${Version}' debootstrap); host node $(node --version)"

# -------------------------------------------------------------------------------------------------------- base image
step "base image (Debian bookworm $ARCH + systemd, cached)"
KEY=$ARCH-$(sha256sum .ci/board/image.sh | cut -c 1-16)
IMAGE=$CACHE_ROOT/board/$KEY
if [ -f "$IMAGE/base.img" ] && [ -f "$IMAGE/vmlinuz" ] && [ -f "$IMAGE/initrd.img" ]; then
  echo "cached: ${IMAGE#"$REPO"/} ($(du -sh "$IMAGE" | cut -f 1))"
else
  t=$SECONDS
  rm -rf "$IMAGE.tmp"
  bash .ci/board/image.sh "$IMAGE.tmp" "$ARCH" || fail "building the VM image failed"
  rm -rf "$IMAGE"
  mv "$IMAGE.tmp" "$IMAGE"
  ok "built ${IMAGE#"$REPO"/} in $((SECONDS - t)) s"
fi

# ------------------------------------------------------------------------------------------------------------ bundles
step "bundles: installed, good update, broken update"
ensure_dist
CIDIR=$WORK/ci
mkdir -p "$CIDIR"
VERSION=$(node -p 'require("./dist/manifest.json").version')
BUNDLE_OUT=$CIDIR make_bundle good-1 "$VERSION"
BUNDLE_OUT=$CIDIR make_bundle good-2 "$VERSION-ci.2"
BUNDLE_OUT=$CIDIR make_bundle broken "$VERSION-ci.3-broken" broken
rm -rf "$CIDIR/bundles"
echo "$VERSION-ci.2" >"$CIDIR/good-2.version"
cp -R firmware-scripts "$CIDIR/firmware-scripts"
cp .ci/board/guest-drive.sh "$CIDIR/guest-drive.sh"
cat >"$CIDIR/config.yaml" <<'EOF'
# The CI board VM's agent: the VM's own Mosquitto, the vivid test camera through fswebcam.
version: 1
device:
  id: board-ci
stateDir: /var/lib/edgehead
mqtt:
  url: mqtt://127.0.0.1:1883
  embeddedBroker: off
source:
  type: webcam
  webcam:
    device: /dev/video0
    width: 640
    height: 480
    skipFrames: 1
    timeoutMs: 60000
schedule:
  intervalMs: 5000
predictions:
  console: off
telemetry:
  intervalSec: 60
EOF
node dist/edgehead.cjs config check "$CIDIR/config.yaml" >/dev/null || fail "the board config is not valid"
mkfs.ext4 -q -L edgeheadci -d "$CIDIR" "$WORK/ci.img" 256M
find "$CIDIR" -maxdepth 1 -type f -printf '  %f %s bytes\n' | sort

# ---------------------------------------------------------------------------------------------------------------- boot
step "boot the VM and run the board steps (at most $VM_TIMEOUT s)"
qemu-img create -q -f qcow2 -F raw -b "$IMAGE/base.img" "$WORK/root.qcow2"
: >"$WORK/report.log"
# One host thread for both vCPUs (thread=single): with multi-threaded TCG, 1 in 3 agent starts here crashed (SIGSEGV,
# or every frame trapping in WebAssembly: V8 turns guard-page faults into "memory access out of bounds"), never
# natively; the guest still has 2 CPUs.
QEMU+=(-accel "tcg,thread=single" -smp 2 -m 1536 -no-user-config -nodefaults -display none -monitor none -nic none
  -kernel "$IMAGE/vmlinuz" -initrd "$IMAGE/initrd.img"
  -append "root=LABEL=edgeheadroot rw console=$CONSOLE quiet systemd.show_status=error"
  -drive "file=$WORK/root.qcow2,if=virtio,format=qcow2"
  -drive "file=$WORK/ci.img,if=virtio,format=raw,readonly=on"
  -serial "file:$WORK/console.log"
  -device virtio-serial-pci -chardev "file,id=report,path=$WORK/report.log" -device "virtconsole,chardev=report")
echo "${QEMU[*]}"
T_BOOT=$(date +%s)
"${QEMU[@]}" 2>"$WORK/qemu.err" &
QEMU_PID=$!

# Follow the report until the VM powers off, printing each step as it ends.
declare -a SUMMARY=()
RESULT=""
follow() {
  local line
  tail -n +1 -F --pid="$QEMU_PID" "$WORK/report.log" 2>/dev/null | while IFS= read -r line; do
    line=${line%$'\r'}
    case $line in
      "BOARD done "*) echo "$line" ;;
      "BOARD-BEGIN "*) printf '  [%4d s] %s ...\n' "$(($(date +%s) - T_BOOT))" "${line#BOARD-BEGIN }" ;;
      "BOARD-PHASE "*) printf '  [%4d s] boot: %s\n' "$(($(date +%s) - T_BOOT))" "${line#BOARD-PHASE }" ;;
      "BOARD-LOG "*) printf '      | %s\n' "${line#BOARD-LOG }" ;;
      "BOARD "*) printf '  [%4d s] %s\n' "$(($(date +%s) - T_BOOT))" "${line#BOARD }" ;;
    esac
  done
}
follow &
FOLLOW_PID=$!
deadline=$((T_BOOT + VM_TIMEOUT))
while kill -0 "$QEMU_PID" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 2; done
if kill -0 "$QEMU_PID" 2>/dev/null; then
  kill "$QEMU_PID" 2>/dev/null || true
  wait "$FOLLOW_PID" 2>/dev/null || true
  echo "--- last lines of the VM console:"
  tail -n 40 "$WORK/console.log" | sed 's/^/    /'
  fail "the board run did not finish within $VM_TIMEOUT s (killed the VM)"
fi
QEMU_RC=0
wait "$QEMU_PID" || QEMU_RC=$?
QEMU_PID=""
wait "$FOLLOW_PID" 2>/dev/null || true
VM_SECONDS=$(($(date +%s) - T_BOOT))
if [ ! -s "$WORK/report.log" ]; then
  echo "--- qemu stderr:"
  sed 's/^/    /' "$WORK/qemu.err"
  echo "--- last lines of the VM console:"
  tail -n 40 "$WORK/console.log" 2>/dev/null | sed 's/^/    /'
  fail "the VM did not start or its driver never ran (qemu exit $QEMU_RC after $VM_SECONDS s)"
fi
RESULT=$(sed -n 's/^BOARD done \([a-zA-Z]*\).*/\1/p' "$WORK/report.log" | tr -d '\r' | tail -n 1)

# ------------------------------------------------------------------------------------------------------------- summary
step "summary"
while IFS= read -r line; do SUMMARY+=("$line"); done < <(tr -d '\r' <"$WORK/report.log" | sed -n 's/^BOARD \([a-z-]*\) \(ok\|FAIL\) \([0-9.]*\) \(.*\)/\1|\2|\3|\4/p')
for s in "${SUMMARY[@]}"; do
  IFS='|' read -r name status secs detail <<<"$s"
  printf '%-14s %-4s %7s s  %s\n' "$name" "$status" "$secs" "$detail"
done
echo "VM: $VM_SECONDS s from qemu start to power-off (qemu exit $QEMU_RC)"
if [ "$RESULT" != ok ]; then
  echo "--- last lines of the VM console:"
  tail -n 30 "$WORK/console.log" | sed 's/^/    /'
  fail "board: ${RESULT:-no result} (see the steps above)"
fi
for want in boot camera install active prediction memory-max watchdog update-good update-broken reboot uninstall purge; do
  printf '%s\n' "${SUMMARY[@]}" | grep -q "^$want|ok|" || fail "board: step $want did not report ok"
done
printf '\nboard CI: all checks passed in %d s\n' "$(ci_elapsed)"
