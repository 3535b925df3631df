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
