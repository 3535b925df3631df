#!/usr/bin/env bash
# CI: the firmware scripts (firmware-scripts/). Checks the tools, runs shellcheck on every firmware and CI script and
# each firmware script's --help, makes sure dist/ is built, then runs the two fake-root suites, in this order:
#   .ci/firmware-install.sh  install.sh (--dry-run, fake root, idempotence, useradd --root) and the systemd unit
#                            (systemd-analyze verify)
#   .ci/firmware-update.sh   update.sh (sha256, manifest.json file hashes, signature, switch, health check, rollback,
#                            pruning), then provision-model.sh (loopback HTTP only) and uninstall.sh on the same root
# Exits non-zero on the first failure. Each suite also runs alone (it checks its own tools and builds dist/ if needed).
# Runs as root on Debian bookworm (apt-get for shellcheck when missing). ~2-3 minutes once dist/ is built.
set -euo pipefail
cd "$(dirname "$0")/.."
FW=$(pwd)/firmware-scripts
# shellcheck source=lib.sh source-path=SCRIPTDIR
. .ci/lib.sh

WORK=$(mktemp -d /tmp/ci-firmware.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# -------------------------------------------------------------------------------------------------------------- tools
step "tools"
need_tools shellcheck:shellcheck systemd-analyze:systemd openssl:openssl
echo "shellcheck $(shellcheck --version | sed -n 's/^version: //p'), $(systemd-analyze --version | head -n 1), $(openssl version), node $(node --version)"

# ---------------------------------------------------------------------------------------------------------- shellcheck
step "shellcheck firmware-scripts/*.sh .ci/*.sh"
shellcheck -x firmware-scripts/*.sh
shellcheck -x .ci/*.sh
ok "shellcheck: no findings ($(find "$FW" -maxdepth 1 -name '*.sh' | wc -l) firmware scripts + $(find .ci -maxdepth 1 -name "*.sh" | wc -l) CI scripts)"

step "--help"
for s in install update uninstall provision-model; do
  bash "$FW/$s.sh" --help >"$WORK/help.txt" || fail "$s.sh --help exited non-zero"
  expect_in "$WORK/help.txt" "Usage: $s.sh"
  if bash "$FW/$s.sh" --no-such-option >/dev/null 2>"$WORK/err.txt"; then fail "$s.sh accepted an unknown option"; fi
  expect_in "$WORK/err.txt" "error:"
done
ok "every script has --help (exit 0) and refuses unknown options"

# ----------------------------------------------------------------------------------------------------------------- dist
step "bundle (dist/)"
ensure_dist
echo "dist/edgehead.cjs --version: $(node dist/edgehead.cjs --version); dist/ is $(du -sh dist | cut -f 1)"

# --------------------------------------------------------------------------------------------------------- the suites
bash .ci/firmware-install.sh
bash .ci/firmware-update.sh

printf '\nfirmware CI: all checks passed in %d s\n' "$(ci_elapsed)"
