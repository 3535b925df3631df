# shellcheck shell=bash
# Shared helpers of the edgehead firmware scripts (install.sh, update.sh, uninstall.sh, provision-model.sh).
# Sourced, never run. Callers set PROG before sourcing and use `set -euo pipefail`.
#
# Conventions:
#   ROOT      ""  or a fake root folder (--root DIR): every system path is prefixed with it, and system-wide
#             actions (apt-get, useradd, systemctl) are skipped with a note.
#   DRY_RUN   1 = print every action (with its command line) and change nothing.
#   CHANGES   number of actions taken (or, with DRY_RUN, that would be taken).

PROG=${PROG:-edgehead}
ROOT=${ROOT:-}
DRY_RUN=${DRY_RUN:-0}
CHANGES=0

# The WebAssembly SIMD probe of tfjs-backend-wasm (flags_wasm.js, WASM_HAS_SIMD_SUPPORT).
WASM_SIMD_PROBE='[0,97,115,109,1,0,0,0,1,4,1,96,0,0,3,2,1,0,10,9,1,7,0,65,0,253,15,26,11]'

say() { printf '%s: %s\n' "$PROG" "$*"; }
note() { printf '%s: note: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}
usage_error() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  printf "Run '%s --help' for the options.\n" "$PROG" >&2
  exit 2
}

# A command line, shell-quoted, for messages.
quote_cmd() {
  local out="" a
  for a in "$@"; do out+=" $(printf '%q' "$a")"; done
  printf '%s' "${out# }"
}

# act DESCRIPTION CMD [ARGS...]: one change. Prints what it does; with DRY_RUN only prints it (and the command).
act() {
  local desc=$1
  shift
  CHANGES=$((CHANGES + 1))
  if [ "$DRY_RUN" = 1 ]; then
    say "[dry-run] would $desc"
    printf '    $ %s\n' "$(quote_cmd "$@")"
    return 0
  fi
  say "$desc"
  "$@"
}

# unchanged WHAT: an action that was not needed.
unchanged() { say "unchanged: $*"; }

# Small actions, named so that --dry-run prints readable command lines.
make_dir() { mkdir -p "$2" && chmod "$1" "$2"; }                                 # make_dir MODE DIR
make_link() { mkdir -p "$(dirname "$2")" && ln -sfn "$1" "$2"; }                 # make_link TARGET LINK
install_file() { mkdir -p "$(dirname "$3")" && install -m "$1" "$2" "$3"; }      # install_file MODE SRC DEST
# install_changed MODE SRC DEST VERB WHAT [NOTE]: installs SRC as DEST, saying "VERB WHAT DEST (NOTE)" ("update ..." when
# DEST exists), unless DEST already has the same bytes ("unchanged: DEST"). 0 when it installed (or would, with
# --dry-run), 1 when unchanged.
install_changed() {
  if cmp -s "$2" "$3"; then
    unchanged "$3"
    return 1
  fi
  act "$([ -f "$3" ] && echo update || echo "$4") $5 $3${6:+ ($6)}" install_file "$1" "$2" "$3"
}

# Path of a system path inside ROOT.
rp() { printf '%s%s' "$ROOT" "$1"; }

need_root_user() {
  if [ "$(id -u)" != 0 ] && [ "$DRY_RUN" != 1 ] && [ -z "$ROOT" ]; then
    die "must run as root (sudo $0 ...); --dry-run and --root DIR work without"
  fi
}

# True when actions on the running system (apt-get, useradd, systemctl) apply: no fake root.
on_real_system() { [ -z "$ROOT" ]; }

# True when systemd manages this machine (the standard sd_booted() test).
systemd_running() { [ -d /run/systemd/system ]; }

# The service manager command: systemctl, or FIRMWARE_SYSTEMCTL (a stand-in with the same verbs, used by CI with
# --root). Prints nothing and fails when there is none to use.
systemctl_cmd() {
  if [ -n "${FIRMWARE_SYSTEMCTL:-}" ]; then
    printf '%s' "$FIRMWARE_SYSTEMCTL"
  elif on_real_system && systemd_running && command -v systemctl >/dev/null; then
    printf 'systemctl'
  else
    return 1
  fi
}

# Absolute path of node on PATH (symlinks kept: /usr/bin/node stays valid across alternatives and upgrades).
node_path() { command -v node 2>/dev/null; }

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null; }

# True when this node validates the WASM SIMD probe module.
node_has_wasm_simd() {
  [ "$(node -e "process.stdout.write(String(WebAssembly.validate(new Uint8Array($WASM_SIMD_PROBE))))" 2>/dev/null)" = true ]
}

# Debian architecture of this machine (arm64, armhf, amd64, ...).
debian_arch() {
  if command -v dpkg >/dev/null; then dpkg --print-architecture; else uname -m; fi
}

# A version names a folder of /opt/edgehead: plain characters, and not one of the names used there for other things.
valid_version() { [[ $1 =~ ^[0-9A-Za-z][0-9A-Za-z.+_~-]{0,63}$ ]] && [ "$1" != current ] && [ "$1" != firmware ]; }
valid_device_id() { [[ $1 =~ ^[A-Za-z0-9_.-]{1,64}$ ]]; }

# bundle_version DIR: the version of an unpacked bundle: manifest.json's "version" if there is one, else
# `node DIR/edgehead.cjs --version`.
bundle_version() {
  local dir=$1 v
  if [ -f "$dir/manifest.json" ]; then
    v=$(node -e 'const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); if (typeof m.version !== "string") process.exit(3); process.stdout.write(m.version)' "$dir/manifest.json") ||
      die "$dir/manifest.json: no \"version\" string"
  else
    v=$(node "$dir/edgehead.cjs" --version 2>/dev/null | tail -n 1) || die "$dir/edgehead.cjs --version failed (is this an edgehead bundle?)"
  fi
  valid_version "$v" || die "bundle version \"$v\" is not a plain version string"
  printf '%s' "$v"
}

# verify_manifest DIR: when DIR/manifest.json (written by `npm run build`) lists "files" ({path: {bytes, sha256}}),
# every listed file must be in DIR with that size and sha256. Files it does not list are reported, not refused.
verify_manifest() {
  [ -f "$1/manifest.json" ] || { say "no manifest.json in the bundle: its files are not verified"; return 0; }
  # shellcheck disable=SC2016 # JavaScript template literals, not shell
  node -e '
    const fs = require("fs"), path = require("path"), crypto = require("crypto");
    const dir = process.argv[1], prog = process.argv[2];
    const m = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
    if (!m.files || typeof m.files !== "object") { console.log(`${prog}: manifest.json lists no files: contents not verified`); process.exit(0); }
    const bad = [];
    for (const [f, want] of Object.entries(m.files)) {
      if (f.split("/").includes("..") || path.isAbsolute(f)) { bad.push(`${f}: unsafe path`); continue; }
      let b;
      try { b = fs.readFileSync(path.join(dir, f)); } catch { bad.push(`${f}: missing`); continue; }
      if (b.length !== want.bytes) bad.push(`${f}: ${b.length} bytes, manifest.json says ${want.bytes}`);
      else if (crypto.createHash("sha256").update(b).digest("hex") !== want.sha256) bad.push(`${f}: sha256 differs from manifest.json`);
    }
    const extra = [];
    const walk = (rel) => { for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r); else if (r !== "manifest.json" && !e.name.startsWith(".") && !(r in m.files)) extra.push(r);
    } };
    walk("");
    if (bad.length) { console.error(`${prog}: error: the bundle does not match its manifest.json:\n  ` + bad.slice(0, 10).join("\n  ")); process.exit(1); }
    console.log(`${prog}: manifest.json ok: ${Object.keys(m.files).length} files, sizes and sha256 match` +
      (m.commit ? ` (commit ${m.commit})` : "") + (extra.length ? `; files not in it: ${extra.slice(0, 5).join(", ")}` : ""));' "$1" "$PROG"
}

# find_bundle_root DIR: DIR itself if it holds edgehead.cjs, else its only sub-folder that does.
find_bundle_root() {
  local dir=$1 found=() d
  if [ -f "$dir/edgehead.cjs" ]; then
    printf '%s' "$dir"
    return 0
  fi
  for d in "$dir"/*/; do
    [ -f "${d}edgehead.cjs" ] && found+=("${d%/}")
  done
  [ "${#found[@]}" = 1 ] || return 1
  printf '%s' "${found[0]}"
}

# check_sha256_file FILE: FILE.sha256 (the `sha256sum` format, one line) must exist and match FILE.
check_sha256_file() {
  local file=$1 sumfile="$1.sha256" line want name got
  [ -f "$sumfile" ] || die "no checksum file $sumfile (make it with: sha256sum $(basename "$file") > $(basename "$file").sha256)"
  line=$(grep -v '^[[:space:]]*$' "$sumfile" | head -n 2)
  [ "$(printf '%s\n' "$line" | wc -l)" = 1 ] || die "$sumfile: expected one line \"<sha256>  <file name>\""
  if [[ $line =~ ^([0-9a-fA-F]{64})[[:space:]]+\*?(.+)$ ]]; then
    want=${BASH_REMATCH[1],,}
    name=${BASH_REMATCH[2]}
  else
    die "$sumfile: not in sha256sum format (\"<64 hex digits>  <file name>\")"
  fi
  [ "$(basename "$name")" = "$(basename "$file")" ] || die "$sumfile names \"$name\", not $(basename "$file")"
  got=$(sha256sum "$file" | cut -d ' ' -f 1)
  [ "$got" = "$want" ] || die "sha256 mismatch for $file: expected $want, got $got (corrupt or tampered download; refusing)"
  say "sha256 ok: $got  $(basename "$file")"
}

# switch_link LINK TARGET: point the symlink LINK at TARGET atomically (a new link renamed over the old one).
switch_link() {
  local link=$1 target=$2 tmp
  tmp="$(dirname "$link")/.$(basename "$link").tmp.$$"
  ln -sfn "$target" "$tmp"
  mv -T "$tmp" "$link"
}

# yaml_set FILE SECTION KEY VALUE: SECTION.KEY := VALUE (written as is: quote strings yourself) in a YAML config
# whose SECTION is a top-level block mapping: replaces the key (and its continuation lines), or adds it at the top of
# the block, or appends the block. Indentation, comments and everything else are kept.
yaml_set() {
  local file=$1 section=$2 key=$3 value=$4
  if grep -Eq "^${section}:[[:space:]]*[^[:space:]#]" "$file"; then
    die "$file: \"$section:\" is written inline (flow style); cannot set $section.$key: edit it by hand"
  fi
  awk -v section="$section" -v key="$key" -v value="$value" '
    function lead(s) { match(s, /^[ \t]*/); return substr(s, 1, RLENGTH) }
    NR == FNR {
      if (!h && $0 ~ "^" section ":[ \t]*(#.*)?$") { h = FNR; next }
      if (h && !ended) {
        if ($0 ~ /^[ \t]*(#.*)?$/) next
        if ($0 !~ /^[ \t]/) { ended = 1; next }
        if (ind == "") ind = lead($0)
        if (!k && lead($0) == ind && substr($0, length(ind) + 1) ~ "^" key ":") k = FNR
      }
      next
    }
    FNR == 1 { if (ind == "") ind = "  " }
    skipping && $0 ~ /^[ \t]/ && length(lead($0)) > length(ind) { next }
    { skipping = 0 }
    k && FNR == k { print ind key ": " value; skipping = 1; next }
    { print }
    !k && h && FNR == h { print ind key ": " value }
    END { if (!h) { print section ":"; print ind key ": " value } }
  ' "$file" "$file" >"$file.new"
  mv "$file.new" "$file"
}
