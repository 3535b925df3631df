# shellcheck shell=bash
# Shared helpers of the firmware CI scripts (.ci/firmware*.sh). Sourced, never run; callers use `set -euo pipefail`
# and run from the repository root.
#
# Step headings show the seconds since CI_START, which the first script sets and exports, so the suites that
# .ci/firmware.sh runs continue its clock.

CI_START=${CI_START:-$(date +%s)}
export CI_START

ci_elapsed() { echo $(($(date +%s) - CI_START)); }
step() { printf '\n=== [%3d s] %s\n' "$(ci_elapsed)" "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}
# expect_in FILE TEXT: FILE (captured output) contains TEXT.
expect_in() { grep -qF -- "$2" "$1" || { sed 's/^/    | /' "$1" >&2; fail "expected \"$2\" in the output above"; }; }
expect_not_in() { if grep -qF -- "$2" "$1"; then sed 's/^/    | /' "$1" >&2; fail "did not expect \"$2\" in the output above"; fi; }

# need_tools COMMAND:PACKAGE...: installs the Debian packages of the missing commands (apt-get, as root), then
# requires root (install.sh/update.sh chown files and useradd --root).
need_tools() {
  local spec missing=()
  for spec in "$@"; do command -v "${spec%%:*}" >/dev/null || missing+=("${spec#*:}"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; } || fail "missing ${missing[*]} and cannot apt-get install them (not root)"
    echo "installing ${missing[*]} (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  [ "$(id -u)" = 0 ] || fail "run as root: install.sh/update.sh chown files and useradd --root"
}

# ensure_dist: the bundle the firmware scripts install (dist/, from `npm run build`; built here when missing).
ensure_dist() {
  if [ ! -f dist/edgehead.cjs ]; then
    echo "dist/ missing: npm run build"
    npm run build
  fi
}

# make_bundle NAME VERSION [broken|noready|flaky|corrupt|signed]: $out/NAME.tar.gz with its .sha256 (and .sig), where
# out is $BUNDLE_OUT (default $WORK): dist/ copied with manifest.json's version set to VERSION, packaged by
# `npm run package -- --dist` into $out/pkg/ as edgehead-VERSION.tar.gz(.sha256, .sig); $out/NAME.tar.gz (and .sig)
# are symlinks to those: update.sh resolves the link and reads the .sha256 (and .sig) beside the real file.
# "signed": signed with $BUNDLE_KEY (default $WORK/update.key). "broken": an edgehead.cjs whose `run` exits at once
# (but --version works), listed in manifest.json with its real sha256: a well-formed bundle that does not run.
# "noready": `run` runs but never sends READY=1. "flaky": sends READY=1 and exits 2 s later. "corrupt": the packaged
# tarball unpacked, a byte appended to a file after the manifest was written, packed again by hand with a matching
# .sha256 (npm run package refuses a bundle that does not match its manifest.json, as update.sh does).
make_bundle() {
  local name=$1 version=$2 kind=${3:-} out=${BUNDLE_OUT:-$WORK} opts=()
  local dir=$out/bundles/$1
  rm -rf "$dir"
  mkdir -p "$dir"
  cp -R dist/. "$dir/"
  local run=""
  case $kind in
    broken) run="console.error('edgehead: error: this build is broken on purpose (CI rollback test)'); process.exit(1);" ;;
    noready) run="console.error('edgehead: runs, never READY (CI rollback test)'); setInterval(() => {}, 1 << 30);" ;;
    flaky) run="require('child_process').execFileSync('systemd-notify', ['--ready', '--status=flaky: exits in 2 s']); setTimeout(() => process.exit(1), 2000);" ;;
  esac
  if [ -n "$run" ]; then
    printf '%s\n' '#!/usr/bin/env node' "if (process.argv[2] === '--version') { console.log('$version'); process.exit(0); }" "$run" >"$dir/edgehead.cjs"
  fi
  # shellcheck disable=SC2016 # JavaScript template literals, not shell
  node -e '
    const fs = require("fs"), crypto = require("crypto");
    const [dir, version] = process.argv.slice(1);
    const f = `${dir}/manifest.json`;
    const m = fs.existsSync(f) ? JSON.parse(fs.readFileSync(f, "utf8")) : { name: "edgehead" };
    m.version = version;
    if (m.files && m.files["edgehead.cjs"]) {
      const b = fs.readFileSync(`${dir}/edgehead.cjs`);
      m.files["edgehead.cjs"] = { bytes: b.length, sha256: crypto.createHash("sha256").update(b).digest("hex") };
    }
    fs.writeFileSync(f, JSON.stringify(m, null, 2) + "\n");' "$dir" "$version"
  if [ "$kind" = signed ]; then opts+=(--key "${BUNDLE_KEY:-$WORK/update.key}"); fi
  npm run --silent package -- --dist "$dir" --out "$out/pkg" "${opts[@]}" >"$out/package-$name.txt" 2>&1 ||
    { cat "$out/package-$name.txt"; fail "npm run package -- --dist $dir failed"; }
  local tarball=$out/pkg/edgehead-$version.tar.gz
  [ -f "$tarball.sha256" ] || fail "npm run package made no $tarball.sha256"
  if [ "$kind" = corrupt ]; then
    mkdir -p "$dir.unpacked"
    tar -xzf "$tarball" -C "$dir.unpacked"
    printf 'x' >>"$dir.unpacked/edgehead-$version/assets/heads/demo.head"
    tar -czf "$out/$name.tar.gz" -C "$dir.unpacked" .
    (cd "$out" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
  else
    ln -sfn "pkg/edgehead-$version.tar.gz" "$out/$name.tar.gz"
    if [ "$kind" = signed ]; then ln -sfn "pkg/edgehead-$version.tar.gz.sig" "$out/$name.tar.gz.sig"; fi
  fi
}
