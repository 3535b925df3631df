#!/usr/bin/env bash
# CI: the built bundle (dist/) runs on ARM: `.ci/foreign-arch.sh arm64|armhf`. Debian's own nodejs for that
# architecture (bookworm: Node 18) and its libraries are unpacked into a sysroot and run under qemu-user
# (qemu-aarch64-static / qemu-arm-static -L SYSROOT):
#   arm64  64-bit Raspberry Pi OS (Pi 3/4/5, Zero 2 W)
#   armhf  32-bit Raspberry Pi OS (Pi 2/3/4, Zero 2 W). Debian's armhf is ARMv7: the ARMv6 Pi 1 / Zero are not covered
# Checks: the node binary's ELF e_machine and process.arch; the CPU features V8 detects and the WASM SIMD probe;
# `doctor --json` (backend wasm; SIMD required on arm64, on armhf it must match the probe); `classify --json` on 3
# sample frames (same top-1 labels as x86); on armhf also doctor and one classify with V8's WASM SIMD switched off
# (tfjs' non-SIMD build, single-threaded: what a board without NEON gets); the agent publishing one prediction to a
# Mosquitto on loopback. Prints the cold start (agent start -> first prediction) under emulation and on x86. No
# timing assertions: emulation is ~50x slower. The .deb files are cached in .cache/ci/<arch> (a rerun downloads
# nothing). Runs as root on Debian bookworm amd64; ~3-8 minutes per architecture (mostly the emulated inference).
# shellcheck disable=SC2016 # the node -e programs are JavaScript (template literals), not shell
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
T0=$SECONDS

ARCH=${1:-}
case $ARCH in
  # DEB_ARCH, qemu-user binary, Node's process.arch, ELF e_machine as two little-endian bytes (od -tx1), its name
  arm64) QEMU=qemu-aarch64-static NODE_ARCH=arm64 EMACHINE=b700 ELF_NAME="AArch64 (e_machine 0xb7)" ;;
  armhf) QEMU=qemu-arm-static NODE_ARCH=arm EMACHINE=2800 ELF_NAME="32-bit ARM (e_machine 0x28)" ;;
  *)
    printf 'usage: .ci/foreign-arch.sh arm64|armhf   (got "%s")\n' "$ARCH" >&2
    exit 2
    ;;
esac
CACHE=$REPO/.cache/ci/$ARCH
DEBS=$CACHE/debs
SYSROOT=$CACHE/sysroot
SAMPLES=(fish/fish1.jpg monument/burj.jpg tool/hammer1.jpg)
# Only guards against a hang; never an assertion. armhf under qemu-arm is the slower of the two.
WAIT_DOCTOR=900
WAIT_CLASSIFY=1800
WAIT_PREDICTION=1200

step() { printf '\n=== [%s] %s\n' "$ARCH" "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
fail() {
  printf 'FAIL [%s]: %s\n' "$ARCH" "$*" >&2
  exit 1
}

WORK=$(mktemp -d "/tmp/ci-$ARCH.XXXXXX")
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
[ "$(dpkg --print-architecture)" = amd64 ] || fail "this check runs on amd64 (it emulates $ARCH); this is $(dpkg --print-architecture)"
APT_UPDATED=0
apt_update() {
  if [ "$APT_UPDATED" = 0 ]; then
    echo "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
}
missing=()
command -v "$QEMU" >/dev/null || missing+=(qemu-user-static)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
if [ "${#missing[@]}" -gt 0 ]; then
  apt_update
  echo "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
echo "$("$QEMU" --version | head -n 1); $("$MOSQUITTO" -h 2>/dev/null | head -n 1 || true); host node $(node --version)"

if [ ! -f dist/edgehead.cjs ]; then
  echo "dist/ missing: npm run build"
  npm run build
fi
for s in "${SAMPLES[@]}"; do [ -f "dist/assets/samples/$s" ] || fail "no sample frame dist/assets/samples/$s"; done

# ------------------------------------------------------------------------------------------- nodejs:<arch> sysroot
step "Debian's nodejs:$ARCH and its libraries (cached in ${CACHE#"$REPO"/})"
if ! dpkg --print-foreign-architectures | grep -qx "$ARCH"; then
  echo "dpkg --add-architecture $ARCH"
  dpkg --add-architecture "$ARCH"
  APT_UPDATED=0 # the lists fetched before know nothing of $ARCH: fetch them again
  apt_update
fi
apt-cache show "nodejs:$ARCH" >/dev/null 2>&1 || apt_update

# The Depends closure of nodejs:<arch>, restricted to <arch> libraries and the arch-all node-* modules libnode loads
# (acorn, cjs-module-lexer, undici, ...); the amd64/all tools some of them pull in (debconf, perl, ...) are not needed.
# Breadth-first, one apt-cache call per level (each call loads the package cache: ~1 s).
resolve_closure() {
  local -A seen=(["nodejs:$ARCH"]=1)
  local level=("nodejs:$ARCH") next d
  while [ "${#level[@]}" -gt 0 ]; do
    printf '%s\n' "${level[@]}"
    next=()
    while IFS= read -r d; do
      [[ $d =~ ^(nodejs|lib[a-z0-9.+-]+|zlib1g|gcc-[0-9]+-base):$ARCH$ || $d =~ ^node-[a-z0-9.-]+$ ]] || continue
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
for want in "nodejs:$ARCH" "libnode108:$ARCH" "libc6:$ARCH" "libstdc++6:$ARCH" "libicu72:$ARCH" "libssl3:$ARCH" "libuv1:$ARCH" node-acorn node-undici; do
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

# The sysroot has a merged /usr, as an installed bookworm has (/lib -> usr/lib). Without it Debian's armhf node does
# not start: qemu-user 7.2 maps openat() paths into the sysroot (-L) but not statx() ones, so glibc's loader, which
# stat()s every library folder it finds nothing in, drops /lib/arm-linux-gnueabihf from its search path before it
# looks for libc.so.6 ("libc.so.6: cannot open shared object file"); in /usr/lib/<triplet> beside libnode it is found.
stamp=$( (echo usrmerge; for p in "${PKGS[@]}"; do echo "$p ${WANT_VERSION[$p]}"; done) | sha256sum | cut -c 1-16)
if [ "$(cat "$SYSROOT/.stamp" 2>/dev/null || true)" != "$stamp" ]; then
  rm -rf "$SYSROOT"
  mkdir -p "$SYSROOT"
  for p in "${PKGS[@]}"; do dpkg-deb -x "$(cached_deb "$p")" "$SYSROOT"; done
  if [ -d "$SYSROOT/lib" ] && [ ! -L "$SYSROOT/lib" ]; then
    mkdir -p "$SYSROOT/usr/lib"
    cp -a "$SYSROOT/lib/." "$SYSROOT/usr/lib/"
    rm -rf "${SYSROOT:?}/lib"
    ln -s usr/lib "$SYSROOT/lib"
  fi
  echo "$stamp" >"$SYSROOT/.stamp"
  echo "unpacked into $SYSROOT"
else
  echo "sysroot up to date: $SYSROOT"
fi
[ -x "$SYSROOT/usr/bin/node" ] || fail "no usr/bin/node in the sysroot"

QNODE=("$QEMU" -L "$SYSROOT" "$SYSROOT/usr/bin/node")
node_arch=$("${QNODE[@]}" -p 'process.arch + " " + process.version') || fail "Debian's node for $ARCH does not start under $QEMU (exit $?)"
echo "emulated: node $node_arch"
[ "${node_arch%% *}" = "$NODE_ARCH" ] || fail "the emulated node reports process.arch ${node_arch%% *}, not $NODE_ARCH"
e_machine=$(od -An -tx1 -j18 -N2 "$SYSROOT/usr/bin/node" | tr -d ' ')
[ "$e_machine" = "$EMACHINE" ] || fail "sysroot node is not a $ELF_NAME ELF (e_machine bytes $e_machine)"
ok "Debian nodejs ${node_arch#* } for $ARCH ($ELF_NAME, process.arch $NODE_ARCH) runs under $QEMU"

# ------------------------------------------------------------------------------------------------ the emulated CPU
# V8 uses WASM SIMD on 32-bit ARM only when it detects NEON at run time (Debian's armhf baseline, ARMv7 + VFPv3-D16,
# does not promise NEON; a Pi 2/3/4 and a Zero 2 W have it). --v8-options starts with V8's build target and the CPU
# features it detected; the probe is tfjs-backend-wasm's own SIMD test module (firmware-scripts/lib.sh).
SIMD_PROBE='WebAssembly.validate(new Uint8Array([0,97,115,109,1,0,0,0,1,4,1,96,0,0,3,2,1,0,10,9,1,7,0,65,0,253,15,26,11]))'
step "the emulated CPU as V8 sees it"
# (32-bit ARM and x86 builds of V8 print those lines; the arm64 build prints none.)
CPU=$("${QNODE[@]}" --v8-options | awk '/^The following syntax/ { done = 1 } !done { printf "%s%s", sep, $0; sep = "; " }')
PROBE=$("${QNODE[@]}" -p "$SIMD_PROBE")
CPU="${CPU:+$CPU; }WASM SIMD probe: $PROBE"
echo "$CPU"

# -------------------------------------------------------------------------------------------------------------- doctor
step "doctor --json under emulation"
t=$SECONDS
timeout "$WAIT_DOCTOR" "${QNODE[@]}" dist/edgehead.cjs doctor --json >"$WORK/doctor.json" 2>"$WORK/doctor.err" || {
  cat "$WORK/doctor.err" >&2
  fail "doctor --json failed under qemu"
}
cat "$WORK/doctor.json"
DOCTOR=$(node -e '
  const [file, nodeArch, arch, probe] = process.argv.slice(1);
  const d = JSON.parse(require("fs").readFileSync(file, "utf8"));
  const bad = [];
  if (d.arch !== nodeArch) bad.push(`arch ${d.arch}`);
  if (d.backend !== "wasm") bad.push(`backend ${d.backend}`);
  // arm64: SIMD is required. armhf: reported; without it the non-SIMD binary runs, single-threaded, and says why.
  if (arch === "arm64" && d.simd !== true) bad.push(`simd ${d.simd}`);
  if (String(d.simd) !== probe) bad.push(`simd ${d.simd} but the WASM SIMD probe says ${probe}`);
  if (d.simd === true && !/simd/.test(d.wasmBinary)) bad.push(`simd true but wasm binary ${d.wasmBinary}`);
  if (d.simd === false && d.wasmBinary !== "tfjs-backend-wasm.wasm") bad.push(`simd false but wasm binary ${d.wasmBinary}`);
  if (d.simd === false && d.threads !== 1) bad.push(`simd false but ${d.threads} threads`);
  if (bad.length) { console.error("doctor: " + bad.join(", ")); process.exit(1); }
  console.log(`arch ${d.arch}, backend wasm, simd ${d.simd}, ${d.wasmBinary}, threads ${d.threads}` + (d.threadsNote ? ` (${d.threadsNote})` : ""));' \
  "$WORK/doctor.json" "$NODE_ARCH" "$ARCH" "$PROBE") || fail "doctor --json under $ARCH"
ok "doctor: $DOCTOR ($((SECONDS - t)) s)"

# ------------------------------------------------------------------------------------------------------------ classify
step "classify --json on ${#SAMPLES[@]} sample frames: $ARCH (emulated) vs x86"
frames=()
for s in "${SAMPLES[@]}"; do frames+=("dist/assets/samples/$s"); done
t=$SECONDS
node dist/edgehead.cjs classify --json "${frames[@]}" >"$WORK/x86.jsonl" || fail "classify failed on x86"
X86_CLASSIFY=$((SECONDS - t))
t=$SECONDS
timeout "$WAIT_CLASSIFY" "${QNODE[@]}" dist/edgehead.cjs classify --json "${frames[@]}" >"$WORK/emulated.jsonl" 2>"$WORK/classify.err" || {
  cat "$WORK/classify.err" >&2
  fail "classify failed under qemu"
}
EMU_CLASSIFY=$((SECONDS - t))
node -e '
  const fs = require("fs"), path = require("path");
  const read = (f) => fs.readFileSync(f, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const x86 = read(process.argv[1]), emu = read(process.argv[2]), arch = process.argv[3];
  if (x86.length !== emu.length) { console.error(`x86 gave ${x86.length} results, ${arch} ${emu.length}`); process.exit(1); }
  let bad = 0;
  for (let i = 0; i < x86.length; i++) {
    const a = x86[i], b = emu[i];
    const diff = Math.max(...a.top.map((t) => Math.abs(t.score - (b.top.find((u) => u.label === t.label)?.score ?? 0))));
    const expected = path.basename(path.dirname(a.file));
    const same = a.top[0].label === b.top[0].label;
    console.log(`${a.file.padEnd(40)} x86 ${a.top[0].label} ${a.top[0].score.toFixed(4)} (extract ${a.ms.extract.toFixed(0)} ms)` +
      `  ${arch} ${b.top[0].label} ${b.top[0].score.toFixed(4)} (extract ${b.ms.extract.toFixed(0)} ms)  max |score diff| ${diff.toFixed(4)}` +
      (same ? "" : "  <-- top-1 differs") + (a.top[0].label === expected ? "" : `  (expected ${expected})`));
    if (!same) bad++;
  }
  process.exit(bad ? 1 : 0);' "$WORK/x86.jsonl" "$WORK/emulated.jsonl" "$ARCH" || fail "top-1 labels differ between x86 and $ARCH"
ok "same top-1 labels on $ARCH and x86 (classify: ${EMU_CLASSIFY} s emulated, ${X86_CLASSIFY} s x86, whole process)"

# -------------------------------------------------------------------------------------------------- without SIMD
# A 32-bit board whose Node lacks WASM SIMD (no NEON, or an older V8) must still work, on tfjs' non-SIMD build,
# single-threaded. The emulated CPU has NEON, so V8's WASM SIMD is switched off here (Node 18 refuses the dashed
# spelling --no-experimental-wasm-simd as a bad option; the underscore one reaches V8).
NOSIMD=""
if [ "$ARCH" = armhf ]; then
  step "without WASM SIMD: doctor --json and classify ${SAMPLES[0]} with V8's WASM SIMD off"
  QNODE_NOSIMD=("${QNODE[@]}" --no-experimental_wasm_simd)
  [ "$("${QNODE_NOSIMD[@]}" -p "$SIMD_PROBE")" = false ] || fail "--no-experimental_wasm_simd did not switch WASM SIMD off"
  t=$SECONDS
  timeout "$WAIT_DOCTOR" "${QNODE_NOSIMD[@]}" dist/edgehead.cjs doctor --json >"$WORK/doctor-nosimd.json" 2>"$WORK/doctor-nosimd.err" || {
    cat "$WORK/doctor-nosimd.err" >&2
    fail "doctor --json without SIMD failed under qemu"
  }
  timeout "$WAIT_CLASSIFY" "${QNODE_NOSIMD[@]}" dist/edgehead.cjs classify --json "dist/assets/samples/${SAMPLES[0]}" >"$WORK/nosimd.jsonl" 2>"$WORK/nosimd.err" || {
    cat "$WORK/nosimd.err" >&2
    fail "classify without SIMD failed under qemu"
  }
  NOSIMD=$(node -e '
    const fs = require("fs");
    const d = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    const x86 = JSON.parse(fs.readFileSync(process.argv[2], "utf8").split("\n")[0]);
    const c = JSON.parse(fs.readFileSync(process.argv[3], "utf8").trim());
    const bad = [];
    if (d.simd !== false) bad.push(`doctor says simd ${d.simd}`);
    if (d.backend !== "wasm" || d.wasmBinary !== "tfjs-backend-wasm.wasm") bad.push(`backend ${d.backend}, wasm binary ${d.wasmBinary}`);
    if (d.threads !== 1) bad.push(`${d.threads} threads`);
    if (c.top[0].label !== x86.top[0].label) bad.push(`top-1 ${c.top[0].label}, x86 ${x86.top[0].label}`);
    if (bad.length) { console.error("without SIMD: " + bad.join(", ")); process.exit(1); }
    console.log(`doctor: simd false, backend wasm, ${d.wasmBinary}, threads ${d.threads}` + (d.threadsNote ? ` (${d.threadsNote})` : "") +
      `; classify: ${c.top[0].label} ${c.top[0].score.toFixed(4)} (x86 ${x86.top[0].score.toFixed(4)}), extract ${c.ms.extract.toFixed(0)} ms`);' \
    "$WORK/doctor-nosimd.json" "$WORK/x86.jsonl" "$WORK/nosimd.jsonl") || fail "the non-SIMD build under $ARCH"
  ok "without SIMD: $NOSIMD ($((SECONDS - t)) s)"
fi

# --------------------------------------------------------------------------------------------------- agent + mosquitto
step "the agent publishes a prediction to Mosquitto on loopback ($ARCH emulated, then x86)"
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
# from the agent's start to the first message on edgehead/<id>/predictions (waits at most WAIT_PREDICTION s).
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
  mosquitto_sub -h 127.0.0.1 -p "$PORT" -t "edgehead/$id/predictions" -C 1 -W "$WAIT_PREDICTION" >"$dir/prediction.json" 2>"$dir/sub.err" &
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
COLD_EMU=$(agent_first_prediction "$ARCH" "${QNODE[@]}")
ok "$ARCH (emulated): one prediction published, ${COLD_EMU} s after start"
COLD_X86=$(agent_first_prediction x86 node)
ok "x86: one prediction published, ${COLD_X86} s after start; clean exit on SIGTERM"

# ------------------------------------------------------------------------------------------------------------- summary
step "summary"
emu_line=$(printf '%-50s' "$ARCH under qemu-user (Debian node ${node_arch#* }):")
cat <<EOF
bundle: dist/ $(du -sh dist | cut -f 1) (edgehead.cjs $(du -h dist/edgehead.cjs | cut -f 1)); tarball $(tar -czf - -C dist . | wc -c | awk '{ printf "%.1f MB", $1 / 1048576 }')
emulated CPU: $CPU
doctor ($ARCH): $DOCTOR$([ -z "$NOSIMD" ] || printf '\nwithout WASM SIMD (V8 flag): %s' "$NOSIMD")
cold start, agent start -> first prediction on MQTT (includes the 3 s first schedule interval):
  $(printf '%-50s' "x86_64 (host node $(node --version)):") ${COLD_X86} s
  $emu_line ${COLD_EMU} s   (emulation; a Raspberry Pi is far faster)
classify 3 frames, whole process: x86 ${X86_CLASSIFY} s, $ARCH emulated ${EMU_CLASSIFY} s
$ARCH CI: all checks passed in $((SECONDS - T0)) s
EOF
