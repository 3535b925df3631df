#!/usr/bin/env bash
# CI: the built bundle (dist/) runs on ARM64. Debian's own nodejs:arm64 and its libraries are unpacked into a sysroot
# and run under qemu-user (qemu-aarch64-static -L SYSROOT): `doctor --json` (arch arm64, WASM SIMD), `classify --json`
# on 3 sample frames (same top-1 labels as x86), and the agent publishing one prediction to a Mosquitto on loopback.
# Prints the cold start (agent start -> first prediction) under emulation and on x86. No timing assertions: emulation
# is ~50x slower. The .deb files are cached in .cache/ci/arm64 (a rerun downloads nothing). Runs as root on Debian
# bookworm amd64; ~4-8 minutes (mostly the emulated inference).
# shellcheck disable=SC2016 # the node -e programs are JavaScript (template literals), not shell
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
T0=$SECONDS
CACHE=$REPO/.cache/ci/arm64
DEBS=$CACHE/debs
SYSROOT=$CACHE/sysroot
SAMPLES=(fish/fish1.jpg monument/burj.jpg tool/hammer1.jpg)

step() { printf '\n=== %s\n' "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}

WORK=$(mktemp -d /tmp/ci-arm64.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# -------------------------------------------------------------------------------------------------------------- tools
step "tools"
[ "$(id -u)" = 0 ] || fail "run as root (dpkg --add-architecture, apt-get)"
[ "$(dpkg --print-architecture)" = amd64 ] || fail "this check runs on amd64 (it emulates arm64); this is $(dpkg --print-architecture)"
APT_UPDATED=0
apt_update() {
  if [ "$APT_UPDATED" = 0 ]; then
    echo "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
}
missing=()
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
if [ "${#missing[@]}" -gt 0 ]; then
  apt_update
  echo "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
echo "$(qemu-aarch64-static --version | head -n 1); $("$MOSQUITTO" -h 2>/dev/null | head -n 1 || true); host node $(node --version)"

if [ ! -f dist/edgehead.cjs ]; then
  echo "dist/ missing: npm run build"
  npm run build
fi
for s in "${SAMPLES[@]}"; do [ -f "dist/assets/samples/$s" ] || fail "no sample frame dist/assets/samples/$s"; done

# ------------------------------------------------------------------------------------------- nodejs:arm64 sysroot
step "Debian's nodejs:arm64 and its libraries (cached in ${CACHE#"$REPO"/})"
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "dpkg --add-architecture arm64"
  dpkg --add-architecture arm64
  APT_UPDATED=0 # the lists fetched before know nothing of arm64: fetch them again
  apt_update
fi
apt-cache show nodejs:arm64 >/dev/null 2>&1 || apt_update

# The Depends closure of nodejs:arm64, restricted to arm64 libraries and the arch-all node-* modules libnode loads
# (acorn, cjs-module-lexer, undici, ...); the amd64/all tools some of them pull in (debconf, perl, ...) are not needed.
# Breadth-first, one apt-cache call per level (each call loads the package cache: ~1 s).
resolve_closure() {
  local -A seen=([nodejs:arm64]=1)
  local level=(nodejs:arm64) next d
  while [ "${#level[@]}" -gt 0 ]; do
    printf '%s\n' "${level[@]}"
    next=()
    while IFS= read -r d; do
      [[ $d =~ ^(nodejs:arm64|lib[a-z0-9.+-]+:arm64|zlib1g:arm64|gcc-[0-9]+-base:arm64|node-[a-z0-9.-]+)$ ]] || continue
      [ -n "${seen[$d]:-}" ] && continue
      seen[$d]=1
      next+=("$d")
    done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances "${level[@]}" |
      awk '/^ *\|?(Pre)?Depends: / { if ($2 ~ /^</) { virt = 1 } else { print $2; virt = 0 }; next }
           virt && /^    [^ ]/ { print $1; virt = 0 }' | sort -u)
    level=("${next[@]}")
  done
}
mapfile -t PKGS < <(resolve_closure | sort -u)
echo "packages (${#PKGS[@]}): ${PKGS[*]}"
for want in nodejs:arm64 libnode108:arm64 libc6:arm64 libstdc++6:arm64 libicu72:arm64 libssl3:arm64 libuv1:arm64 node-acorn node-undici; do
  printf '%s\n' "${PKGS[@]}" | grep -qx "$want" || fail "the dependency closure misses $want"
done

# Candidate versions, one apt-cache call: "<package spec> <version>" lines.
declare -A WANT_VERSION=()
while read -r pkg arch version; do
  if [ "$arch" = all ]; then WANT_VERSION[$pkg]=$version; else WANT_VERSION[$pkg:$arch]=$version; fi
done < <(apt-cache show --no-all-versions "${PKGS[@]}" | awk '/^Package: /{p=$2} /^Architecture: /{a=$2} /^Version: /{v=$2} /^$/{ if (p) print p, a, v; p="" } END { if (p) print p, a, v }')

# The cached .deb of a package spec at its candidate version, or nothing.
cached_deb() {
  local name=${1%%:*} f
  for f in "$DEBS/${name}_"*.deb; do
    [ -f "$f" ] || continue
    if [ "$(dpkg-deb -f "$f" Package Version | awk '{ printf "%s ", $2 }')" = "$name ${WANT_VERSION[$1]} " ]; then
      printf '%s' "$f"
      return 0
    fi
  done
  return 1
}

mkdir -p "$DEBS"
todo=()
for p in "${PKGS[@]}"; do
  [ -n "${WANT_VERSION[$p]:-}" ] || fail "apt-cache show gave no version for $p"
  cached_deb "$p" >/dev/null || todo+=("$p=${WANT_VERSION[$p]}")
done
if [ "${#todo[@]}" -gt 0 ]; then
  (cd "$DEBS" && apt-get download -q -o APT::Sandbox::User=root "${todo[@]}" >/dev/null) || fail "apt-get download ${todo[*]} failed"
fi
echo "downloaded ${#todo[@]} .deb(s), $((${#PKGS[@]} - ${#todo[@]})) from the cache ($(du -sh "$DEBS" | cut -f 1))"

stamp=$(for p in "${PKGS[@]}"; do echo "$p ${WANT_VERSION[$p]}"; done | sha256sum | cut -c 1-16)
if [ "$(cat "$SYSROOT/.stamp" 2>/dev/null || true)" != "$stamp" ]; then
  rm -rf "$SYSROOT"
  mkdir -p "$SYSROOT"
  for p in "${PKGS[@]}"; do dpkg-deb -x "$(cached_deb "$p")" "$SYSROOT"; done
  echo "$stamp" >"$SYSROOT/.stamp"
  echo "unpacked into $SYSROOT"
else
  echo "sysroot up to date: $SYSROOT"
fi
[ -x "$SYSROOT/usr/bin/node" ] || fail "no usr/bin/node in the sysroot"

QNODE=(qemu-aarch64-static -L "$SYSROOT" "$SYSROOT/usr/bin/node")
arch=$("${QNODE[@]}" -p 'process.arch + " " + process.version')
echo "emulated: node $arch"
[ "${arch%% *}" = arm64 ] || fail "the emulated node reports process.arch ${arch%% *}"
file_info=$(od -An -tx1 -j18 -N2 "$SYSROOT/usr/bin/node" | tr -d ' ')
[ "$file_info" = b700 ] || fail "sysroot node is not an AArch64 ELF (e_machine $file_info)"
ok "Debian nodejs ${arch#* } for arm64 runs under qemu-aarch64"

# -------------------------------------------------------------------------------------------------------------- doctor
step "doctor --json under emulation"
t=$SECONDS
timeout 600 "${QNODE[@]}" dist/edgehead.cjs doctor --json >"$WORK/doctor.json" || fail "doctor --json failed under qemu"
cat "$WORK/doctor.json"
node -e '
  const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const bad = [];
  if (d.arch !== "arm64") bad.push(`arch ${d.arch}`);
  if (d.simd !== true) bad.push(`simd ${d.simd}`);
  if (d.backend !== "wasm") bad.push(`backend ${d.backend}`);
  if (bad.length) { console.error("doctor: " + bad.join(", ")); process.exit(1); }' "$WORK/doctor.json" || fail "doctor --json under arm64"
ok "doctor: arch arm64, backend wasm, simd true ($((SECONDS - t)) s)"

# ------------------------------------------------------------------------------------------------------------ classify
step "classify --json on ${#SAMPLES[@]} sample frames: arm64 (emulated) vs x86"
frames=()
for s in "${SAMPLES[@]}"; do frames+=("dist/assets/samples/$s"); done
t=$SECONDS
node dist/edgehead.cjs classify --json "${frames[@]}" >"$WORK/x86.jsonl" || fail "classify failed on x86"
X86_CLASSIFY=$((SECONDS - t))
t=$SECONDS
timeout 900 "${QNODE[@]}" dist/edgehead.cjs classify --json "${frames[@]}" >"$WORK/arm64.jsonl" || fail "classify failed under qemu"
ARM_CLASSIFY=$((SECONDS - t))
node -e '
  const fs = require("fs"), path = require("path");
  const read = (f) => fs.readFileSync(f, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const x86 = read(process.argv[1]), arm = read(process.argv[2]);
  if (x86.length !== arm.length) { console.error(`x86 gave ${x86.length} results, arm64 ${arm.length}`); process.exit(1); }
  let bad = 0;
  for (let i = 0; i < x86.length; i++) {
    const a = x86[i], b = arm[i];
    const diff = Math.max(...a.top.map((t) => Math.abs(t.score - (b.top.find((u) => u.label === t.label)?.score ?? 0))));
    const expected = path.basename(path.dirname(a.file));
    const same = a.top[0].label === b.top[0].label;
    console.log(`${a.file.padEnd(40)} x86 ${a.top[0].label} ${a.top[0].score.toFixed(4)} (extract ${a.ms.extract.toFixed(0)} ms)` +
      `  arm64 ${b.top[0].label} ${b.top[0].score.toFixed(4)} (extract ${b.ms.extract.toFixed(0)} ms)  max |score diff| ${diff.toFixed(4)}` +
      (same ? "" : "  <-- top-1 differs") + (a.top[0].label === expected ? "" : `  (expected ${expected})`));
    if (!same) bad++;
  }
  process.exit(bad ? 1 : 0);' "$WORK/x86.jsonl" "$WORK/arm64.jsonl" || fail "top-1 labels differ between x86 and arm64"
ok "same top-1 labels on arm64 and x86 (classify: ${ARM_CLASSIFY} s emulated, ${X86_CLASSIFY} s x86, whole process)"

# --------------------------------------------------------------------------------------------------- agent + mosquitto
step "the agent publishes a prediction to Mosquitto on loopback (arm64 emulated, then x86)"
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
PORT=$(free_port)
cat >"$WORK/mosquitto.conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
EOF
"$MOSQUITTO" -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do
  if mosquitto_pub -h 127.0.0.1 -p "$PORT" -t ci/ping -m x 2>/dev/null; then break; fi
  sleep 0.1
done
mosquitto_pub -h 127.0.0.1 -p "$PORT" -t ci/ping -m x || fail "mosquitto did not start on port $PORT: $(cat "$WORK/mosquitto.log")"
echo "mosquitto on 127.0.0.1:$PORT"

# agent_first_prediction LABEL NODE...: runs `edgehead run` with a config pointing at the broker; prints the seconds
# from the agent's start to the first message on edgehead/<id>/predictions (waits at most 600 s).
agent_first_prediction() {
  local label=$1 id=ci-$1 dir=$WORK/$1 sub agent start end rc=0
  shift
  mkdir -p "$dir/state"
  cat >"$dir/config.yaml" <<EOF
version: 1
device:
  id: $id
stateDir: $dir/state
mqtt:
  url: mqtt://127.0.0.1:$PORT
  embeddedBroker: off
source:
  type: directory
  directory:
    path: $REPO/dist/assets/samples/fish
schedule:
  intervalMs: 3000
predictions:
  console: off
telemetry:
  intervalSec: 3600
EOF
  node dist/edgehead.cjs config check "$dir/config.yaml" >/dev/null || fail "agent config invalid"
  mosquitto_sub -h 127.0.0.1 -p "$PORT" -t "edgehead/$id/predictions" -C 1 -W 600 >"$dir/prediction.json" 2>"$dir/sub.err" &
  sub=$!
  PIDS+=("$sub")
  sleep 1
  start=$(date +%s.%N)
  "$@" dist/edgehead.cjs run --config "$dir/config.yaml" >"$dir/agent.out" 2>"$dir/agent.err" &
  agent=$!
  PIDS+=("$agent")
  wait "$sub" || rc=$?
  end=$(date +%s.%N)
  local hwm
  hwm=$(sed -n 's/^VmHWM:[[:space:]]*//p' "/proc/$agent/status" 2>/dev/null || true)
  if [ "$rc" != 0 ] || ! kill -0 "$agent" 2>/dev/null; then
    echo "--- agent stderr:" >&2
    tail -n 30 "$dir/agent.err" >&2
    fail "$label: no prediction on edgehead/$id/predictions (mosquitto_sub exit $rc)"
  fi
  kill -TERM "$agent"
  wait "$agent" || rc=$?
  if [ "$rc" != 0 ]; then
    # The agent waits for the frame in flight, at most 5 s, then exits 1. Under emulation one frame takes 10-20 s,
    # so that deadline can pass; natively (and on a Pi) a frame takes well under a second.
    if [ "$label" != x86 ] && grep -q 'did not stop within' "$dir/agent.err"; then
      echo "  $label: SIGTERM with an emulated frame in flight: $(grep 'did not stop within' "$dir/agent.err" | head -n 1) (exit $rc; not a failure under emulation)" >&2
    else
      tail -n 20 "$dir/agent.err" >&2
      fail "$label: the agent did not exit 0 on SIGTERM (exit $rc)"
    fi
  else
    echo "  $label: SIGTERM: clean exit (0)" >&2
  fi
  node -e '
    const p = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    if (!Array.isArray(p.top) || !p.top.length) { console.error("no top labels in the prediction"); process.exit(1); }
    console.error(`  ${process.argv[2]}: prediction ${p.top[0].label} ${p.top[0].score} from ${p.source} (run ${p.run}, frame ${p.frameId})`);' \
    "$dir/prediction.json" "$label" || fail "$label: the prediction is not valid JSON with top labels"
  echo "  $label: peak RSS of the process: ${hwm:-?}$([ "$label" = x86 ] || printf ' (qemu and its code cache included)')" >&2
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }'
}
COLD_ARM=$(agent_first_prediction arm64 "${QNODE[@]}")
ok "arm64 (emulated): one prediction published, ${COLD_ARM} s after start"
COLD_X86=$(agent_first_prediction x86 node)
ok "x86: one prediction published, ${COLD_X86} s after start; clean exit on SIGTERM"

# ------------------------------------------------------------------------------------------------------------- summary
step "summary"
cat <<EOF
bundle: dist/ $(du -sh dist | cut -f 1) (edgehead.cjs $(du -h dist/edgehead.cjs | cut -f 1)); tarball $(tar -czf - -C dist . | wc -c | awk '{ printf "%.1f MB", $1 / 1048576 }')
cold start, agent start -> first prediction on MQTT (includes the 3 s first schedule interval):
  x86_64 (host node $(node --version)):               ${COLD_X86} s
  arm64 under qemu-user (Debian node ${arch#* }):  ${COLD_ARM} s   (emulation; a Raspberry Pi 4/5 is far faster)
classify 3 frames, whole process: x86 ${X86_CLASSIFY} s, arm64 emulated ${ARM_CLASSIFY} s
arm64 CI: all checks passed in $((SECONDS - T0)) s
EOF
