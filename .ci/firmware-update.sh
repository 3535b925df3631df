#!/usr/bin/env bash
# CI: update.sh on a fake root whose service runs under a systemctl stand-in (.ci/fake-systemctl.sh: Type=notify with a
# systemd-notify stand-in, Restart=always, `systemctl show`): a bad or missing sha256, files that differ from
# manifest.json, Ed25519 signatures (another key; a configured update.pub makes them mandatory), switch + restart +
# health check (the unit active after the agent's READY=1), rollback of bundles whose agent exits at once, never sends
# READY=1, or exits soon after it, re-applying the current bundle, pruning to the newest 3 versions. Then, on the same root: provision-model.sh against a loopback HTTP
# server, and uninstall.sh (--dry-run, keeps config and state, --purge with userdel --root). Run by .ci/firmware.sh;
# runs alone too (as root on Debian bookworm; builds dist/ if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
FW=$REPO/firmware-scripts
# shellcheck source=lib.sh source-path=SCRIPTDIR
. .ci/lib.sh

need_tools openssl:openssl
ensure_dist
VERSION=$(node dist/edgehead.cjs --version)
WORK=$(mktemp -d /tmp/ci-firmware-update.XXXXXX)
STUB_STATE=$WORK/stub
cleanup() {
  local pid
  if [ -f "$STUB_STATE/pid" ]; then
    pid=$(cat "$STUB_STATE/pid")
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
  fi
  if [ -n "${SRV_PID:-}" ]; then kill "$SRV_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------------------- fake roots
step "fake roots: install.sh --root (the second with a user database, for uninstall --purge)"
R=$WORK/root
bash "$FW/install.sh" --root "$R" --device-id ci-fw >"$WORK/i1.txt" 2>&1 || { cat "$WORK/i1.txt"; fail "install.sh --root failed"; }
UNIT=$R/etc/systemd/system/edgehead.service
R2=$WORK/root2
mkdir -p "$R2/etc"
cp /etc/passwd /etc/group /etc/shadow /etc/gshadow "$R2/etc/"
bash "$FW/install.sh" --root "$R2" >"$WORK/i2.txt" 2>&1 || { cat "$WORK/i2.txt"; fail "install.sh --root (with a user database) failed"; }
grep -q '^edgehead:' "$R2/etc/passwd" || fail "no edgehead user in $R2/etc/passwd"
ok "edgehead $VERSION installed in $R and $R2 (checked in .ci/firmware-install.sh)"

# ------------------------------------------------------------------------------------------------------------- update
step "update.sh on the fake root: sha256, signature, switch + health check, rollback, pruning"
# A systemctl stand-in for the fake root (.ci/fake-systemctl.sh: runs the unit's ExecStart inside the root).
mkdir -p "$STUB_STATE" "$WORK/bin"
cp .ci/fake-systemctl.sh "$WORK/bin/systemctl"
chmod +x "$WORK/bin/systemctl"
export STUB_ROOT=$R STUB_STATE FIRMWARE_SYSTEMCTL=$WORK/bin/systemctl

# A config the agent runs on inside the fake root: sample frames, an embedded broker on a free loopback port.
PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
cat >"$R/etc/edgehead/config.yaml" <<EOF
version: 1
device:
  id: ci-fw
stateDir: $R/var/lib/edgehead
mqtt:
  url: mqtt://127.0.0.1:$PORT
  embeddedBroker: auto
source:
  type: directory
  directory:
    path: $REPO/dist/assets/samples
schedule:
  intervalMs: 2000
predictions:
  console: off
backend:
  threads: 1
EOF
node dist/edgehead.cjs config check "$R/etc/edgehead/config.yaml" >/dev/null || fail "the CI agent config is not valid"

# The update key (Ed25519, made as docs/deploy.md says): make_bundle ... signed signs with it.
openssl genpkey -algorithm ed25519 -out "$WORK/update.key" 2>/dev/null
openssl pkey -in "$WORK/update.key" -pubout -out "$WORK/update.pub"
HAVE_FILE_LIST=0
if [ -f dist/manifest.json ] && node -e 'process.exit(JSON.parse(require("fs").readFileSync("dist/manifest.json","utf8")).files ? 0 : 1)'; then
  HAVE_FILE_LIST=1
fi
make_bundle v011 0.1.1 signed
make_bundle v012 0.1.2-broken broken
make_bundle v016 0.1.6-noready noready
make_bundle v017 0.1.7-flaky flaky
make_bundle v013 0.1.3
make_bundle v014 0.1.4
make_bundle corrupt 0.1.5 corrupt
sed 's/^/    | /' "$WORK/package-v011.txt"

# Start the installed version under the stand-in first (the update restarts whatever runs).
"$FIRMWARE_SYSTEMCTL" enable edgehead
"$FIRMWARE_SYSTEMCTL" start edgehead
UPD=(bash "$FW/update.sh" --root "$R")

echo "--- a tarball whose sha256 does not match: refused"
cp "$WORK/v011.tar.gz" "$WORK/bad.tar.gz"
printf '%064d  bad.tar.gz\n' 0 >"$WORK/bad.tar.gz.sha256"
if "${UPD[@]}" "$WORK/bad.tar.gz" >"$WORK/u-bad.txt" 2>&1; then cat "$WORK/u-bad.txt"; fail "update.sh accepted a bad sha256"; fi
expect_in "$WORK/u-bad.txt" "sha256 mismatch"
[ "$(readlink "$R/opt/edgehead/current")" = "$VERSION" ] || fail "current changed after a refused update"
[ ! -e "$R/opt/edgehead/0.1.1" ] || fail "a refused bundle was unpacked"
sed 's/^/    | /' "$WORK/u-bad.txt"
rm "$WORK/bad.tar.gz.sha256"
if "${UPD[@]}" "$WORK/bad.tar.gz" >"$WORK/u-nosum.txt" 2>&1; then fail "update.sh accepted a tarball without .sha256"; fi
expect_in "$WORK/u-nosum.txt" "no checksum file"
ok "bad or missing sha256: refused, nothing changed"

echo "--- a bundle whose files do not match its manifest.json: refused"
if [ "$HAVE_FILE_LIST" = 1 ]; then
  if "${UPD[@]}" "$WORK/corrupt.tar.gz" >"$WORK/u-corrupt.txt" 2>&1; then cat "$WORK/u-corrupt.txt"; fail "update.sh accepted a corrupt bundle"; fi
  expect_in "$WORK/u-corrupt.txt" "assets/heads/demo.head: "
  expect_in "$WORK/u-corrupt.txt" "does not match its manifest.json"
  [ "$(readlink "$R/opt/edgehead/current")" = "$VERSION" ] || fail "current changed after a refused update"
  [ -z "$(find "$R/opt/edgehead" -maxdepth 1 -name '.incoming.*')" ] || fail "update.sh left its unpacked files behind"
  sed 's/^/    | /' "$WORK/u-corrupt.txt" | grep -e error -e manifest || true
  ok "a file that differs from manifest.json: refused, nothing changed"
else
  echo "skipped: dist/manifest.json lists no files (an older build)"
fi

echo "--- Ed25519 signatures (openssl pkeyutl -rawin)"
openssl genpkey -algorithm ed25519 -out "$WORK/other.key" 2>/dev/null
openssl pkeyutl -sign -inkey "$WORK/other.key" -rawin -in "$WORK/v011.tar.gz" -out "$WORK/v011.tar.gz.badsig"
if "${UPD[@]}" --signature "$WORK/v011.tar.gz.badsig" --pubkey "$WORK/update.pub" "$WORK/v011.tar.gz" >"$WORK/u-sig.txt" 2>&1; then
  cat "$WORK/u-sig.txt"
  fail "update.sh accepted a signature by another key"
fi
expect_in "$WORK/u-sig.txt" "bad signature"
[ "$(readlink "$R/opt/edgehead/current")" = "$VERSION" ] || fail "current changed after a bad signature"
ok "a signature by another key: refused"

echo "--- a good, signed update: $VERSION -> 0.1.1"
# v011.tar.gz.sig: made by npm run package --key (make_bundle v011 0.1.1 signed)
t=$SECONDS
"${UPD[@]}" --signature "$WORK/v011.tar.gz.sig" --pubkey "$WORK/update.pub" "$WORK/v011.tar.gz" >"$WORK/u1.txt" 2>&1 || { cat "$WORK/u1.txt" "$STUB_STATE/log"; fail "update to 0.1.1 failed"; }
sed 's/^/    | /' "$WORK/u1.txt"
expect_in "$WORK/u1.txt" "signature ok"
expect_in "$WORK/u1.txt" "healthy: edgehead 0.1.1 is running"
[ "$(readlink "$R/opt/edgehead/current")" = 0.1.1 ] || fail "current is not 0.1.1"
"$FIRMWARE_SYSTEMCTL" is-active edgehead >/dev/null || fail "the agent is not running after the update"
tail -n 1 "$STUB_STATE/starts" | grep -q "$R/opt/edgehead/current/edgehead.cjs run --config $R/etc/edgehead/config.yaml" || fail "the stand-in did not run the unit's ExecStart"
# Healthy only through the agent's own READY=1 (its systemd-notify call, logged by the stand-in with the agent's PID).
expect_in "$WORK/u1.txt" "health: active (running), main PID"
pid=$(cat "$STUB_STATE/pid")
grep -q "^$pid"$'\t'"--ready"$'\t'"--status=running: head demo v" "$STUB_STATE/notify" || { cat "$STUB_STATE/notify"; fail "no READY=1 from the agent (PID $pid)"; }
"$FIRMWARE_SYSTEMCTL" show edgehead -p StatusText | grep -q '^StatusText=running: ' || fail "systemctl show: no status line from the agent"
ok "updated to 0.1.1 in $((SECONDS - t)) s (signature, switch, restart, READY=1, healthy)"

echo "--- a configured key (/etc/edgehead/update.pub) makes the signature mandatory"
cp "$WORK/update.pub" "$R/etc/edgehead/update.pub"
if "${UPD[@]}" "$WORK/v013.tar.gz" >"$WORK/u-nosig.txt" 2>&1; then fail "update.sh accepted an unsigned bundle with update.pub configured"; fi
expect_in "$WORK/u-nosig.txt" "no signature file"
rm "$R/etc/edgehead/update.pub"
ok "unsigned bundle refused while update.pub is configured"

echo "--- a bundle whose agent exits at once: rolled back"
t=$SECONDS
if "${UPD[@]}" --health-timeout 30 "$WORK/v012.tar.gz" >"$WORK/u2.txt" 2>&1; then cat "$WORK/u2.txt"; fail "update.sh reported success for a broken bundle"; fi
sed 's/^/    | /' "$WORK/u2.txt"
expect_in "$WORK/u2.txt" "rolling back to 0.1.1"
expect_in "$WORK/u2.txt" "rolled back: edgehead 0.1.1 is running and healthy"
[ "$(readlink "$R/opt/edgehead/current")" = 0.1.1 ] || fail "current is $(readlink "$R/opt/edgehead/current") after the rollback, not 0.1.1"
[ ! -e "$R/opt/edgehead/0.1.2-broken" ] || fail "the failed version was not removed"
"$FIRMWARE_SYSTEMCTL" is-active edgehead >/dev/null || fail "the agent is not running after the rollback"
expect_in "$WORK/u2.txt" "health: the new agent did not stay up, systemd restarts it"
ok "broken bundle: switched back to 0.1.1, restarted, healthy, exit 1 ($((SECONDS - t)) s)"

echo "--- a bundle whose agent runs but never sends READY=1: rolled back at the health timeout"
t=$SECONDS
# 30 s: the rollback's check has the same timeout, and the old agent must reach READY within it.
if "${UPD[@]}" --health-timeout 30 "$WORK/v016.tar.gz" >"$WORK/u6.txt" 2>&1; then cat "$WORK/u6.txt"; fail "update.sh reported success for an agent that never sent READY=1"; fi
sed 's/^/    | /' "$WORK/u6.txt"
expect_in "$WORK/u6.txt" "health: not active (running) within 30 s: activating (start)"
expect_in "$WORK/u6.txt" "rolled back: edgehead 0.1.1 is running and healthy"
[ "$(readlink "$R/opt/edgehead/current")" = 0.1.1 ] || fail "current is not 0.1.1 after the rollback"
[ ! -e "$R/opt/edgehead/0.1.6-noready" ] || fail "the failed version was not removed"
ok "no READY=1: the unit stayed activating, rolled back to 0.1.1 ($((SECONDS - t)) s)"

echo "--- a bundle whose agent sends READY=1 and exits 2 s later: rolled back"
t=$SECONDS
if "${UPD[@]}" --stable 5 "$WORK/v017.tar.gz" >"$WORK/u7.txt" 2>&1; then cat "$WORK/u7.txt"; fail "update.sh reported success for an agent that exited after READY=1"; fi
sed 's/^/    | /' "$WORK/u7.txt"
expect_in "$WORK/u7.txt" "health: active (running), main PID"
expect_in "$WORK/u7.txt" "flaky: exits in 2 s"
expect_in "$WORK/u7.txt" "did not stay up"
expect_in "$WORK/u7.txt" "rolled back: edgehead 0.1.1 is running and healthy"
[ "$(readlink "$R/opt/edgehead/current")" = 0.1.1 ] || fail "current is not 0.1.1 after the rollback"
ok "READY=1 then an exit within --stable: rolled back to 0.1.1 ($((SECONDS - t)) s)"

echo "--- the same bundle again: nothing to do"
"${UPD[@]}" "$WORK/v011.tar.gz" >"$WORK/u3.txt" 2>&1 || { cat "$WORK/u3.txt"; fail "update.sh with the current bundle failed"; }
expect_in "$WORK/u3.txt" "nothing to do: 0.1.1 is the current version"
ok "re-applying the current bundle changes nothing"

echo "--- two more updates: the newest 3 versions are kept"
"${UPD[@]}" "$WORK/v013.tar.gz" >"$WORK/u4.txt" 2>&1 || { cat "$WORK/u4.txt"; fail "update to 0.1.3 failed"; }
"${UPD[@]}" "$WORK/v014.tar.gz" >"$WORK/u5.txt" 2>&1 || { cat "$WORK/u5.txt"; fail "update to 0.1.4 failed"; }
sed 's/^/    | /' "$WORK/u5.txt"
versions=$(find "$R/opt/edgehead" -mindepth 1 -maxdepth 1 -type d ! -name '.*' ! -name firmware -printf '%f\n' | sort | tr '\n' ' ')
[ "$versions" = "0.1.1 0.1.3 0.1.4 " ] || fail "installed versions: $versions (expected 0.1.1 0.1.3 0.1.4)"
[ "$(readlink "$R/opt/edgehead/current")" = 0.1.4 ] || fail "current is not 0.1.4"
runs=$(cat "$R/var/lib/edgehead/run")
ok "current -> 0.1.4; kept: $versions; agent run counter: $runs"
"$FIRMWARE_SYSTEMCTL" stop edgehead

# ---------------------------------------------------------------------------------------------------- provision-model
step "provision-model.sh against a loopback HTTP server (the real one needs internet: not run here)"
# Serves dist/models/mobilenet_v2_100 TF Hub style: only with ?tfjs-format=file.
node -e '
  const http = require("http"), fs = require("fs"), path = require("path");
  const dir = process.argv[1];
  const s = http.createServer((q, r) => {
    const u = new URL(q.url, "http://x");
    const f = path.join(dir, path.basename(u.pathname));
    if (u.searchParams.get("tfjs-format") !== "file" || !fs.existsSync(f)) { r.writeHead(404); return r.end(); }
    r.end(fs.readFileSync(f));
  });
  s.listen(0, "127.0.0.1", () => console.log(s.address().port));' dist/models/mobilenet_v2_100 >"$WORK/srv.port" &
SRV_PID=$!
for _ in $(seq 1 50); do [ -s "$WORK/srv.port" ] && break; sleep 0.1; done
URL=http://127.0.0.1:$(cat "$WORK/srv.port")/google/tfjs-model/imagenet/mobilenet_v2_100_224/feature_vector/5/default/1
SHA=$(sha256sum dist/models/mobilenet_v2_100/model.json | cut -d ' ' -f 1)
if bash "$FW/provision-model.sh" --root "$R" --url "$URL" --sha256 "$(printf '%064d' 1)" >"$WORK/p0.txt" 2>&1; then fail "provision-model.sh accepted a wrong sha256"; fi
expect_in "$WORK/p0.txt" "sha256 mismatch"
bash "$FW/provision-model.sh" --root "$R" --url "$URL" --sha256 "$SHA" >"$WORK/p1.txt" 2>&1 || { cat "$WORK/p1.txt"; fail "provision-model.sh failed"; }
sed 's/^/    | /' "$WORK/p1.txt"
DEST=/var/lib/edgehead/models/imagenet-mobilenet_v2_100_224-feature_vector-5-default-1
cmp -s "$R$DEST/weights.bin" dist/models/mobilenet_v2_100/weights.bin || fail "weights.bin not downloaded"
grep -q "^  ref: \"$DEST\"$" "$R/etc/edgehead/config.yaml" || fail "extractor.ref not set in the config"
expect_in "$WORK/p1.txt" "config check: valid"
bash "$FW/provision-model.sh" --root "$R" --url "$URL" --sha256 "$SHA" >"$WORK/p2.txt" 2>&1 || { cat "$WORK/p2.txt"; fail "provision-model.sh (second run) failed"; }
expect_in "$WORK/p2.txt" "already provisioned"
expect_in "$WORK/p2.txt" "unchanged: $R/etc/edgehead/config.yaml already has extractor.ref"
ok "model.json verified, shards fetched with ?tfjs-format=file, extractor.ref set and validated; rerun: nothing downloaded"
kill "$SRV_PID"
SRV_PID=""

# ---------------------------------------------------------------------------------------------------------- uninstall
step "uninstall.sh --root: --dry-run, keep config/state, --purge"
snap_root() { find "$R" -printf '%p %s %m\n' | sort | sha256sum; }
b=$(snap_root)
bash "$FW/uninstall.sh" --root "$R" --dry-run >"$WORK/x0.txt" 2>&1 || { cat "$WORK/x0.txt"; fail "uninstall.sh --dry-run failed"; }
[ "$(snap_root)" = "$b" ] || fail "uninstall.sh --dry-run changed the fake root"
expect_in "$WORK/x0.txt" "[dry-run] would remove $R/opt/edgehead"
bash "$FW/uninstall.sh" --root "$R" >"$WORK/x1.txt" 2>&1 || { cat "$WORK/x1.txt"; fail "uninstall.sh failed"; }
sed 's/^/    | /' "$WORK/x1.txt"
{ [ ! -e "$R/opt/edgehead" ] && [ ! -e "$UNIT" ] && [ ! -L "$R/usr/local/bin/edgehead" ]; } || fail "uninstall.sh left files behind"
{ [ -f "$R/etc/edgehead/config.yaml" ] && [ -d "$R/var/lib/edgehead" ]; } || fail "uninstall.sh removed the config or the state"
bash "$FW/uninstall.sh" --root "$R" >"$WORK/x2.txt" 2>&1 || fail "uninstall.sh (second run) failed"
expect_in "$WORK/x2.txt" "nothing to remove"
env -u FIRMWARE_SYSTEMCTL bash "$FW/uninstall.sh" --root "$R2" --purge >"$WORK/x3.txt" 2>&1 || { cat "$WORK/x3.txt"; fail "uninstall.sh --purge failed"; }
{ [ ! -e "$R2/etc/edgehead" ] && [ ! -e "$R2/var/lib/edgehead" ]; } || fail "--purge left config or state"
if grep -q '^edgehead:' "$R2/etc/passwd" "$R2/etc/group"; then fail "--purge left the user or group edgehead"; fi
ok "uninstall keeps config and state; --purge removes them and the user (userdel --root)"

