#!/usr/bin/env bash
# Install (or upgrade in place) the edgehead agent on Raspberry Pi OS / Debian bookworm: see --help and docs/deploy.md.
set -euo pipefail

PROG=install.sh
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$SCRIPT_DIR/lib.sh"

usage() {
  cat <<'EOF'
Usage: install.sh [--dry-run] [--root DIR] [--bundle DIR|TARBALL] [--config FILE] [--device-id ID]

Installs the edgehead agent as a systemd service on Raspberry Pi OS / Debian bookworm (arm64, armhf; amd64 too):

  node >= 18          Debian's nodejs is installed if node is missing (WASM SIMD is checked: armhf boards without it
                      run the slower non-SIMD build)
  fswebcam            installed if missing (USB webcams)
  rpicam-apps         when a camera module is found or the config says source.type rpicam: installed if missing,
                      and /etc/systemd/system/edgehead.service.d/camera.conf lets the service open the devices
                      libcamera needs (media controllers, DMA heaps)
  user edgehead       system user, group edgehead, member of video
  /opt/edgehead/<version>/      the bundle (dist/ of `npm run build`); /opt/edgehead/current -> <version>
  /opt/edgehead/firmware/       these scripts (update.sh, uninstall.sh, provision-model.sh)
  /usr/local/bin/edgehead       -> /opt/edgehead/current/edgehead.cjs (`edgehead doctor`)
  /etc/edgehead/config.yaml     from --config FILE or config/examples/production.yaml; NEVER overwritten
  /var/lib/edgehead             state dir (offline queue, active head, run counter), edgehead:edgehead 0700 (what the agent requires)
  /etc/systemd/system/edgehead.service   enabled; started when `edgehead config check` accepts the config

Running it again changes only what differs (and says "nothing to do" when nothing does).

Options:
  --bundle DIR|TARBALL  the bundle: a dist/ folder or a .tar.gz of one (verified against TARBALL.sha256 when that
                        file exists). Default: ../dist next to this script.
  --config FILE         config to install when /etc/edgehead/config.yaml does not exist yet
  --device-id ID        device.id written into a newly installed config (default with the example config: the
                        host name). Ignored when the config already exists.
  --dry-run             print every action (with its command) and change nothing
  --root DIR            install into DIR as if it were / (tests, SD-card images): apt-get and systemctl are skipped,
                        the user is created with `useradd --root` only if DIR/etc/passwd exists
  -h, --help            this help

Exit status: 0 installed (or nothing to do), 1 failed, 2 bad arguments.
EOF
}

BUNDLE_ARG=""
CONFIG_ARG=""
DEVICE_ID=""
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --dry-run) DRY_RUN=1 ;;
    --root) [ $# -ge 2 ] || usage_error "--root needs a folder"; ROOT=$2; shift ;;
    --root=*) ROOT=${1#*=} ;;
    --bundle) [ $# -ge 2 ] || usage_error "--bundle needs a folder or a .tar.gz"; BUNDLE_ARG=$2; shift ;;
    --bundle=*) BUNDLE_ARG=${1#*=} ;;
    --config) [ $# -ge 2 ] || usage_error "--config needs a file"; CONFIG_ARG=$2; shift ;;
    --config=*) CONFIG_ARG=${1#*=} ;;
    --device-id) [ $# -ge 2 ] || usage_error "--device-id needs an id"; DEVICE_ID=$2; shift ;;
    --device-id=*) DEVICE_ID=${1#*=} ;;
    *) usage_error "unknown argument: $1" ;;
  esac
  shift
done

if [ -n "$ROOT" ]; then
  ROOT=$(realpath -m "$ROOT")
  [ "$ROOT" = / ] && ROOT=""
fi
[ -z "$DEVICE_ID" ] || valid_device_id "$DEVICE_ID" || usage_error "--device-id: 1 to 64 letters, digits, '_', '.' or '-' (got \"$DEVICE_ID\")"
[ -z "$CONFIG_ARG" ] || [ -f "$CONFIG_ARG" ] || usage_error "--config: no such file: $CONFIG_ARG"
need_root_user

OPT=$(rp /opt/edgehead)
ETC=$(rp /etc/edgehead)
STATE=$(rp /var/lib/edgehead)
UNIT=$(rp /etc/systemd/system/edgehead.service)
BIN_LINK=$(rp /usr/local/bin/edgehead)
CONFIG=$ETC/config.yaml

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

[ "$DRY_RUN" = 1 ] && say "dry run: printing the actions; nothing is changed"
[ -n "$ROOT" ] && say "installing into the fake root $ROOT"

# ---------------------------------------------------------------------------------------- the bundle (before any change)
if [ -z "$BUNDLE_ARG" ]; then
  for c in "$SCRIPT_DIR/../dist" "$SCRIPT_DIR"; do
    if [ -f "$c/edgehead.cjs" ]; then BUNDLE_ARG=$(cd "$c" && pwd); break; fi
  done
  [ -n "$BUNDLE_ARG" ] || usage_error "no bundle: pass --bundle DIR|TARBALL (dist/ of \`npm run build\`, or a .tar.gz of it)"
fi
if [ -f "$BUNDLE_ARG" ]; then
  if [ -f "$BUNDLE_ARG.sha256" ]; then check_sha256_file "$BUNDLE_ARG"; else note "no $BUNDLE_ARG.sha256: checksum not verified"; fi
  mkdir -p "$WORK/bundle"
  tar -xzf "$BUNDLE_ARG" -C "$WORK/bundle" --no-same-owner || die "cannot unpack $BUNDLE_ARG"
  SRC=$(find_bundle_root "$WORK/bundle") || die "$BUNDLE_ARG holds no edgehead.cjs (at the top or in one folder)"
elif [ -d "$BUNDLE_ARG" ]; then
  SRC=$(cd "$BUNDLE_ARG" && pwd)
  [ -f "$SRC/edgehead.cjs" ] || die "$SRC holds no edgehead.cjs: not an edgehead bundle (dist/ of \`npm run build\`)"
else
  usage_error "--bundle: no such file or folder: $BUNDLE_ARG"
fi

# ---------------------------------------------------------------------------------------------------------------- platform
ARCH=$(debian_arch)
OS="unknown OS"
if [ -r /etc/os-release ]; then OS=$(. /etc/os-release && printf '%s' "${PRETTY_NAME:-$ID}"); fi
say "platform: $OS, $ARCH"
case $ARCH in
  arm64 | armhf | amd64) ;;
  *) warn "untested architecture $ARCH (supported: arm64, armhf; amd64 for tests)" ;;
esac

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then
    apt-get update -q
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# -------------------------------------------------------------------------------------------------------------------- node
if ! command -v node >/dev/null; then
  if on_real_system; then
    act "install Debian's nodejs (node is missing)" apt_install nodejs
  else
    note "--root: node is not installed on this machine; skipped: apt-get install nodejs (the target needs it)"
  fi
fi
if command -v node >/dev/null; then
  NODE=$(node_path)
  major=$(node_major)
  if [ -z "$major" ] || [ "$major" -lt 18 ]; then
    die "node $(node --version 2>/dev/null || echo '?') at $NODE is too old: edgehead needs Node.js >= 18 (Debian bookworm's nodejs is 18: apt-get install nodejs)"
  fi
  say "node $(node --version) at $NODE"
  case $NODE in
    /home/* | /root/* | /run/user/*) warn "node lives under $NODE: the unit's ProtectHome=yes hides it from the service; install Debian's nodejs (apt-get install nodejs)" ;;
  esac
  if node_has_wasm_simd; then
    say "WebAssembly SIMD: yes"
  elif [ "$ARCH" = armhf ]; then
    warn "this node has no WebAssembly SIMD on armhf: the agent falls back to the non-SIMD WASM build (2-3x slower). A 64-bit Raspberry Pi OS (arm64) is recommended."
  else
    warn "this node has no WebAssembly SIMD: the agent falls back to the non-SIMD WASM build (2-3x slower)"
  fi
else
  [ "$DRY_RUN" = 1 ] || die "node is required (apt-get install nodejs)"
  NODE=/usr/bin/node
fi

# ---------------------------------------------------------------------------------------------------------------- fswebcam
if command -v fswebcam >/dev/null; then
  unchanged "fswebcam is installed"
elif on_real_system; then
  act "install fswebcam (USB webcam capture)" apt_install fswebcam
else
  note "--root: skipped: apt-get install fswebcam (the target needs it for source.type webcam)"
fi

# -------------------------------------------------------------------------------------------------------------------- user
# OWNER: what chown gets for edgehead-owned paths ("" = the user cannot be resolved: chown skipped).
OWNER=""
if on_real_system; then
  if getent passwd edgehead >/dev/null; then
    if id -nG edgehead | tr ' ' '\n' | grep -qx video; then
      unchanged "user edgehead exists (groups: $(id -nG edgehead))"
    else
      act "add user edgehead to group video" usermod -a -G video edgehead
    fi
  else
    getent group video >/dev/null || act "create group video" groupadd --system video
    act "create system user edgehead (group edgehead, member of video)" \
      useradd --system --user-group --groups video --home-dir /var/lib/edgehead --no-create-home \
      --shell /usr/sbin/nologin --comment "edgehead agent" edgehead
  fi
  OWNER=edgehead:edgehead
elif [ -f "$(rp /etc/passwd)" ] && [ -f "$(rp /etc/group)" ]; then
  # A real system image (e.g. a mounted SD card): its own user database.
  if grep -q '^edgehead:' "$(rp /etc/passwd)"; then
    if grep -Eq '^video:[^:]*:[^:]*:(.*,)?edgehead(,|$)' "$(rp /etc/group)"; then
      unchanged "user edgehead exists in $ROOT"
    else
      act "add user edgehead to group video in $ROOT" usermod --root "$ROOT" -a -G video edgehead
    fi
  else
    grep -q '^video:' "$(rp /etc/group)" || act "create group video in $ROOT" groupadd --root "$ROOT" --system video
    act "create system user edgehead in $ROOT (useradd --root)" \
      useradd --root "$ROOT" --system --user-group --groups video --home-dir /var/lib/edgehead --no-create-home \
      --shell /usr/sbin/nologin --comment "edgehead agent" edgehead
  fi
  if [ "$DRY_RUN" != 1 ]; then
    OWNER="$(awk -F: '$1=="edgehead"{print $3":"$4}' "$(rp /etc/passwd)")"
  fi
else
  note "--root: $ROOT has no etc/passwd; skipped: useradd edgehead (group video), and chown of edgehead-owned paths"
fi

# ------------------------------------------------------------------------------------------------------------------ bundle
if command -v node >/dev/null; then
  verify_manifest "$SRC" || die "refusing to install a bundle that does not match its manifest.json"
  VERSION=$(bundle_version "$SRC")
else
  VERSION="<version>"
fi
say "bundle: $BUNDLE_ARG (version $VERSION)"

TARGET=$OPT/$VERSION
BUNDLE_CHANGED=0
copy_bundle() { # copy_bundle SRC TARGET: a fresh copy, root-owned, read-only for others, moved into place
  local src=$1 target=$2 tmp="$OPT/.incoming.$$"
  mkdir -p "$OPT"
  rm -rf "$tmp"
  cp -R "$src/." "$tmp"
  chmod -R u+rwX,go+rX,go-w "$tmp"
  chmod 0755 "$tmp"
  if [ "$(id -u)" = 0 ]; then chown -R 0:0 "$tmp"; fi
  if [ -d "$target" ]; then rm -rf "$target.old.$$" && mv -T "$target" "$target.old.$$"; fi
  mv -T "$tmp" "$target"
  rm -rf "$target.old.$$"
  touch "$target"
}
if [ -d "$TARGET" ] && diff -rq -x .bundle.sha256 "$SRC" "$TARGET" >/dev/null 2>&1; then
  unchanged "$TARGET holds this bundle"
elif [ -d "$TARGET" ]; then
  act "replace $TARGET (same version $VERSION, different files)" copy_bundle "$SRC" "$TARGET"
  BUNDLE_CHANGED=1
else
  act "install the bundle to $TARGET" copy_bundle "$SRC" "$TARGET"
  BUNDLE_CHANGED=1
fi

current=$(readlink "$OPT/current" 2>/dev/null || true)
if [ "$current" = "$VERSION" ]; then
  unchanged "$OPT/current -> $VERSION"
else
  act "point $OPT/current at $VERSION${current:+ (was $current)}" switch_link "$OPT/current" "$VERSION"
  BUNDLE_CHANGED=1
fi

# ----------------------------------------------------------------------------------------- firmware scripts and CLI link
FW=$OPT/firmware
FW_FILES=(install.sh update.sh uninstall.sh provision-model.sh lib.sh edgehead.service README.md)
if [ "$SCRIPT_DIR" -ef "$FW" ] 2>/dev/null; then
  unchanged "$FW (running from it)"
else
  stale=()
  for f in "${FW_FILES[@]}"; do
    [ -f "$SCRIPT_DIR/$f" ] || continue
    cmp -s "$SCRIPT_DIR/$f" "$FW/$f" || stale+=("$f")
  done
  if [ "${#stale[@]}" = 0 ]; then
    unchanged "$FW holds these scripts"
  else
    copy_firmware() { # copy_firmware FILE...: from this script's folder to $FW
      local f
      mkdir -p "$FW"
      for f in "$@"; do install -m "$([[ $f == *.sh && $f != lib.sh ]] && echo 0755 || echo 0644)" "$SCRIPT_DIR/$f" "$FW/$f"; done
    }
    act "copy ${stale[*]} to $FW" copy_firmware "${stale[@]}"
  fi
fi

if [ "$(readlink "$BIN_LINK" 2>/dev/null || true)" = /opt/edgehead/current/edgehead.cjs ]; then
  unchanged "$BIN_LINK -> /opt/edgehead/current/edgehead.cjs"
else
  act "link $BIN_LINK -> /opt/edgehead/current/edgehead.cjs (the edgehead command)" \
    make_link /opt/edgehead/current/edgehead.cjs "$BIN_LINK"
fi

# ------------------------------------------------------------------------------------------------------------------ config
config_source() {
  local c
  if [ -n "$CONFIG_ARG" ]; then printf '%s' "$CONFIG_ARG"; return 0; fi
  for c in "$SCRIPT_DIR/production.yaml" "$SCRIPT_DIR/../config/examples/production.yaml" "$SRC/config/production.yaml"; do
    if [ -f "$c" ]; then printf '%s' "$(realpath "$c")"; return 0; fi
  done
  return 1
}

install_config() {
  local src=$1 id=$2 tmp="$WORK/config.yaml"
  if [ "$src" = "(defaults)" ]; then
    node "$SRC/edgehead.cjs" config defaults | sed 's#^stateDir: .*#stateDir: /var/lib/edgehead#' >"$tmp"
  else
    cp "$src" "$tmp"
  fi
  [ -z "$id" ] || yaml_set "$tmp" device id "\"$id\""
  mkdir -p "$ETC"
  chmod 0755 "$ETC"
  install -m 0640 "$tmp" "$CONFIG"
  if [ -n "$OWNER" ]; then chown "0:${OWNER#*:}" "$CONFIG"; fi
}

CONFIG_NEW=0
if [ -f "$CONFIG" ]; then
  unchanged "$CONFIG exists and is kept (never overwritten)"
  if [ -n "$CONFIG_ARG" ] && ! cmp -s "$CONFIG_ARG" "$CONFIG"; then
    note "--config $CONFIG_ARG not applied: $CONFIG exists (compare: diff $CONFIG_ARG $CONFIG)"
  fi
  [ -z "$DEVICE_ID" ] || note "--device-id $DEVICE_ID not applied: $CONFIG exists (edit device.id there)"
else
  src=$(config_source) || src="(defaults)"
  id=$DEVICE_ID
  if [ -z "$id" ] && [ -z "$CONFIG_ARG" ]; then
    # The example's device id would be shared by every board: use the host name instead.
    id=$(hostname 2>/dev/null | tr -c 'A-Za-z0-9_.\n-' '-' | cut -c 1-64)
    valid_device_id "$id" || id=""
  fi
  act "install $CONFIG from $src${id:+ (device.id: $id)}" install_config "$src" "$id"
  CONFIG_NEW=1
fi

# --------------------------------------------------------------------------------------------------------------- state dir
if [ -d "$STATE" ]; then
  if [ "$(stat -c %a "$STATE")" = 700 ]; then unchanged "$STATE mode 0700"; else act "set $STATE mode 0700" chmod 0700 "$STATE"; fi
else
  act "create the state dir $STATE (0700)" make_dir 0700 "$STATE"
fi
if [ -n "$OWNER" ]; then
  if [ -d "$STATE" ] && { [ "$(stat -c %U:%G "$STATE")" = "$OWNER" ] || [ "$(stat -c %u:%g "$STATE")" = "$OWNER" ]; }; then
    unchanged "$STATE owned by $OWNER"
  else
    act "make $STATE owned by $OWNER" chown -R "$OWNER" "$STATE"
  fi
fi

# -------------------------------------------------------------------------------------------------------------------- unit
UNIT_CHANGED=0
sed "s#^ExecStart=/usr/bin/node #ExecStart=$NODE #" "$SCRIPT_DIR/edgehead.service" >"$WORK/edgehead.service"
if install_changed 0644 "$WORK/edgehead.service" "$UNIT" install "the systemd unit"; then UNIT_CHANGED=1; fi

# ------------------------------------------------------------------------------------------------------------------ camera
# Raspberry Pi camera modules (CSI) go through libcamera: rpicam-apps (source.type rpicam runs rpicam-still), and
# device nodes the unit does not allow (it allows V4L2 only): the media controllers (/dev/mediaN) and the DMA heaps
# (/dev/dma_heap/*) libcamera allocates frame buffers from. Both are set up when a camera module is present or the
# config asks for source.type rpicam; the drop-in is removed by uninstall.sh. See docs/deploy.md, Camera.
CAMERA_DROPIN=$(rp /etc/systemd/system/edgehead.service.d/camera.conf)
CAMERA_DROPIN_MARK="# Written by edgehead's install.sh; removed by uninstall.sh."

# source.type of a YAML config in block style ("" when not set): the `type:` key right under the top-level `source:`;
# EDGEHEAD_SOURCE_TYPE in /etc/edgehead/environment wins, as it does for the agent.
config_source_type() {
  local v
  v=$(sed -n "s/^EDGEHEAD_SOURCE_TYPE=[\"']\{0,1\}\([A-Za-z]*\).*/\1/p" "$(rp /etc/edgehead/environment)" 2>/dev/null | tail -n 1)
  if [ -n "$v" ]; then printf '%s' "$v"; return 0; fi
  [ -f "$1" ] || return 0
  awk '
    /^source:[ \t]*(#.*)?$/ { s = 1; ind = -1; next }
    s && /^[^ \t#]/ { s = 0 }
    s && /^[ \t]+[^ \t#]/ {
      match($0, /^[ \t]+/)
      if (ind < 0) ind = RLENGTH
      if (RLENGTH == ind && $0 ~ /^[ \t]+type:/) {
        v = $0; sub(/^[ \t]+type:[ \t]*/, "", v); sub(/[ \t]*(#.*)?$/, "", v); gsub(/["\047]/, "", v); print v; exit
      }
    }' "$1"
}

# Why a camera module counts as present ("" when none is found): the camera list of rpicam-hello (or libcamera-hello)
# on this system, or else a V4L2 sub-device named after a camera sensor driver (/sys/class/video4linux/v4l-subdevN/name
# "imx708 10-001a", "ov5647 10-0036", ...: the sensors libcamera supports on the Pi are imx*, ov*, ar0*, gc*), which
# also works under --root and before rpicam-apps is installed.
camera_module_reason() {
  local tool out f name
  if on_real_system; then
    for tool in rpicam-hello libcamera-hello; do
      command -v "$tool" >/dev/null || continue
      out=$(timeout 30 "$tool" --list-cameras 2>/dev/null || true)
      name=$(printf '%s\n' "$out" | sed -n 's/^[[:space:]]*[0-9][0-9]*[[:space:]]*:[[:space:]]*\([^[:space:]]*\).*/\1/p' | head -n 1)
      if [ -n "$name" ]; then printf '%s --list-cameras lists %s' "$tool" "$name"; return 0; fi
      break
    done
  fi
  for f in "$(rp /sys/class/video4linux)"/v4l-subdev*/name; do
    [ -f "$f" ] || continue
    name=$(head -n 1 "$f")
    case $name in
      imx[0-9]* | ov[0-9]* | ar0[0-9]* | gc[0-9]*)
        printf 'camera sensor %s (%s)' "${name%% *}" "$(dirname "${f#"$ROOT"}")"
        return 0
        ;;
    esac
  done
  return 0
}

# apt_install_camera: the first of rpicam-apps-lite (no preview window: nothing of X or Qt), rpicam-apps,
# libcamera-apps (bullseye) that the apt sources have; a warning when none is there (plain Debian).
apt_install_camera() {
  local pkg
  if [ "$APT_UPDATED" = 0 ]; then
    apt-get update -q
    APT_UPDATED=1
  fi
  for pkg in rpicam-apps-lite rpicam-apps libcamera-apps; do
    if apt-cache show "$pkg" >/dev/null 2>&1; then
      apt_install "$pkg"
      return 0
    fi
  done
  warn "no rpicam-apps package in this system's apt sources (Raspberry Pi OS has it, from archive.raspberrypi.com): source.type rpicam cannot capture until rpicam-still is installed"
}

camera_dropin() {
  printf '%s\n' "$CAMERA_DROPIN_MARK" \
    "# Raspberry Pi camera modules through libcamera (source.type rpicam, rpicam-apps) also open the media-controller" \
    "# devices and allocate frame buffers from the DMA heaps; the unit itself allows V4L2 devices only. The device" \
    "# groups are named as in /proc/devices (media, dma_heap): every node of each, present now or added later." \
    "[Service]" \
    "DeviceAllow=char-media rw" \
    "DeviceAllow=char-dma_heap rw"
}

camera_why=""
if [ -f "$CONFIG" ]; then camera_config=$CONFIG; else camera_config=$(config_source || true); fi # dry run: not installed yet
if [ "$(config_source_type "$camera_config")" = rpicam ]; then camera_why="source.type is rpicam"; fi
camera_module=$(camera_module_reason)
if [ -n "$camera_module" ]; then camera_why="${camera_why:+$camera_why; }$camera_module"; fi
if [ -n "$camera_why" ]; then
  say "camera module: $camera_why"
  if command -v rpicam-still >/dev/null || command -v libcamera-still >/dev/null; then
    unchanged "rpicam-apps are installed ($(command -v rpicam-still || command -v libcamera-still))"
  elif on_real_system; then
    act "install rpicam-apps (camera module capture: rpicam-still)" apt_install_camera
  else
    note "--root: skipped: apt-get install rpicam-apps (the target needs it: $camera_why)"
  fi
  camera_dropin >"$WORK/camera.conf"
  if install_changed 0644 "$WORK/camera.conf" "$CAMERA_DROPIN" write "the camera drop-in" "DeviceAllow media, dma_heap"; then UNIT_CHANGED=1; fi
elif [ -f "$CAMERA_DROPIN" ]; then
  unchanged "$CAMERA_DROPIN kept (no camera module found now and source.type is not rpicam; uninstall.sh removes it)"
else
  say "camera module: none found and source.type is not rpicam: rpicam-apps and the camera drop-in are not needed"
fi

# ------------------------------------------------------------------------------------------------- config check and service
CONFIG_OK=0
if [ "$DRY_RUN" = 1 ]; then
  note "dry run: skipped: edgehead config check $CONFIG"
else
  if out=$({ node "$OPT/current/edgehead.cjs" config check "$CONFIG" >/dev/null; } 2>&1); then
    say "config check: $CONFIG is valid"
    CONFIG_OK=1
  else
    warn "config check: $CONFIG is not valid yet:"
    printf '%s\n' "$out" | sed 's/^/    /' >&2
    [ -z "$ROOT" ] || note "--root: paths in the config are those of the target system, not under $ROOT"
  fi
fi

if SYSTEMCTL=$(systemctl_cmd); then
  if [ "$UNIT_CHANGED" = 1 ]; then act "reload systemd (systemctl daemon-reload)" "$SYSTEMCTL" daemon-reload; fi
  if [ "$("$SYSTEMCTL" is-enabled edgehead 2>/dev/null || true)" = enabled ]; then
    unchanged "edgehead.service is enabled"
  else
    act "enable edgehead.service (starts at boot)" "$SYSTEMCTL" enable edgehead
  fi
  if [ "$CONFIG_OK" = 1 ] || [ "$DRY_RUN" = 1 ]; then
    if "$SYSTEMCTL" is-active --quiet edgehead; then
      if [ "$BUNDLE_CHANGED" = 1 ] || [ "$UNIT_CHANGED" = 1 ]; then
        act "restart edgehead.service (new bundle or unit)" "$SYSTEMCTL" restart edgehead
      else
        unchanged "edgehead.service is running"
      fi
    else
      act "start edgehead.service" "$SYSTEMCTL" start edgehead
    fi
  else
    warn "edgehead.service not started: fix $CONFIG (\`edgehead config check $CONFIG\`), then: systemctl restart edgehead"
  fi
elif [ -n "$ROOT" ]; then
  note "--root: skipped: systemctl daemon-reload, enable and start edgehead"
else
  warn "systemd is not running here (no /run/systemd/system): skipped: systemctl daemon-reload, enable and start edgehead"
fi

# ----------------------------------------------------------------------------------------------------------------- summary
if [ "$DRY_RUN" = 1 ]; then
  say "dry run: $CHANGES action(s) would be taken; nothing was changed"
elif [ "$CHANGES" = 0 ]; then
  say "nothing to do: edgehead $VERSION is installed and up to date (no changes)"
else
  say "done: edgehead $VERSION installed ($CHANGES change(s))"
  if [ "$CONFIG_NEW" = 1 ]; then
    say "next: edit $CONFIG (broker URL and TLS, device id, groups, head), then: systemctl restart edgehead"
  fi
fi
