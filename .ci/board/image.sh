#!/usr/bin/env bash
# Builds the CI board VM's base image (used by .ci/board.sh; its cache key is this file's sha256, so any change here
# builds a new image): a Debian bookworm root file system from the Debian mirror (debootstrap), booted by its own
# kernel and initramfs with systemd as PID 1, and what a Raspberry Pi OS board running edgehead has preinstalled:
# Debian's nodejs, fswebcam, v4l-utils, Mosquitto (the broker the agent talks to, inside the VM: the VM has no network
# device at all). No bootloader: qemu starts the kernel directly (-kernel/-initrd).
#
# Usage: image.sh OUT_DIR [amd64|arm64]
# Writes OUT_DIR/base.img (ext4, label edgeheadroot), OUT_DIR/vmlinuz, OUT_DIR/initrd.img. Runs as root (debootstrap,
# file ownership in the image). No loop devices or mounts: mkfs.ext4 -d copies the tree into the image.
# arm64 on an amd64 host: debootstrap's second stage runs the arm64 package scripts through qemu-aarch64-static, which
# needs the kernel's binfmt_misc handler for AArch64 ELF files; it is registered here when missing (mounts
# binfmt_misc, writes Debian's /usr/lib/binfmt.d/qemu-aarch64.conf to its register file: a change to the machine that
# lasts until reboot).
set -euo pipefail
OUT=${1:?usage: image.sh OUT_DIR [amd64|arm64]}
ARCH=${2:-amd64}
SUITE=bookworm
MIRROR=${CI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=systemd,systemd-sysv,udev,kmod,linux-image-$ARCH,nodejs,fswebcam,v4l-utils,mosquitto,mosquitto-clients,openssl,procps
SIZE=4G

case $ARCH in
  amd64) ;;
  arm64)
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
      [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
      cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register
      echo "registered qemu-aarch64 with binfmt_misc (for debootstrap's second stage)"
    fi
    ;;
  *) echo "image.sh: architecture $ARCH: amd64 or arm64" >&2; exit 2 ;;
esac

ROOTFS=$OUT/rootfs
rm -rf "$ROOTFS" "$OUT/base.img"
mkdir -p "$OUT"
echo "debootstrap $SUITE $ARCH ($MIRROR) with $PACKAGES"
t=$SECONDS
if ! debootstrap --arch="$ARCH" --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >"$OUT/debootstrap.log" 2>&1; then
  tail -n 20 "$OUT/debootstrap.log" >&2
  echo "debootstrap failed (log: $OUT/debootstrap.log)" >&2
  exit 1
fi
echo "debootstrap: $((SECONDS - t)) s, $(du -sh "$ROOTFS" | cut -f 1)"

# ------------------------------------------------------------------------------------------------------ configure
echo board-ci >"$ROOTFS/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 board-ci\n' >"$ROOTFS/etc/hosts"
cat >"$ROOTFS/etc/fstab" <<'EOF'
LABEL=edgeheadroot / ext4 defaults,errors=remount-ro 0 1
# The per-run CI disk (.ci/board.sh): the drive script and its inputs, read-only.
LABEL=edgeheadci /mnt/ci ext4 ro,nofail 0 0
EOF
mkdir -p "$ROOTFS/mnt/ci"
# No password for root: nobody logs in (no network); the serial console is for the kernel and systemd's messages.
chroot "$ROOTFS" passwd -d root >/dev/null

# The driver: runs the CI steps at every boot (they carry a phase across the reboot step), then powers off.
cat >"$ROOTFS/etc/systemd/system/edgehead-ci.service" <<'EOF'
[Unit]
Description=edgehead CI board steps (/mnt/ci/guest-drive.sh)
RequiresMountsFor=/mnt/ci
After=multi-user.target mosquitto.service
ConditionPathExists=/mnt/ci/guest-drive.sh

[Service]
Type=simple
ExecStart=/bin/bash /mnt/ci/guest-drive.sh
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
EOF
systemctl --root="$ROOTFS" enable edgehead-ci.service mosquitto.service >/dev/null 2>&1
# Nothing that talks to the network or wakes up on timers during the run.
systemctl --root="$ROOTFS" mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
  systemd-timesyncd.service man-db.timer >/dev/null 2>&1 || true
# journald: keep the journal in memory only (the image is thrown away after each run anyway).
mkdir -p "$ROOTFS/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' >"$ROOTFS/etc/systemd/journald.conf.d/ci.conf"

KVER=$(basename "$(find "$ROOTFS/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -n 1)")
KVER=${KVER#vmlinuz-}
[ -f "$ROOTFS/boot/initrd.img-$KVER" ] || { echo "no initrd.img-$KVER in the image" >&2; exit 1; }
[ -n "$(find "$ROOTFS/lib/modules/$KVER" -name 'vivid.ko*' | head -n 1)" ] || { echo "kernel $KVER has no vivid module" >&2; exit 1; }
cp "$ROOTFS/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
cp "$ROOTFS/boot/initrd.img-$KVER" "$OUT/initrd.img"
rm -rf "$ROOTFS/var/cache/apt/archives/"*.deb "$ROOTFS/boot/"*.dpkg-bak "$ROOTFS/boot/"*.new

# ------------------------------------------------------------------------------------------------------- the image
t=$SECONDS
mkfs.ext4 -q -L edgeheadroot -d "$ROOTFS" "$OUT/base.img" "$SIZE"
rm -rf "$ROOTFS"
echo "base.img: $SIZE ext4 ($(du -h "$OUT/base.img" | cut -f 1) used), kernel $KVER; mkfs $((SECONDS - t)) s"
