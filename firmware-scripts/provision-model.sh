#!/usr/bin/env bash
# Download a TF.js feature-vector model (default: TF Hub's MobileNetV2 1.4/224) onto the board and point the agent's
# config at it. Needs internet access on the board (the agent itself never downloads when extractor.ref is a folder).
set -euo pipefail

PROG=provision-model.sh
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$SCRIPT_DIR/lib.sh"

DEFAULT_URL=https://tfhub.dev/google/tfjs-model/imagenet/mobilenet_v2_140_224/feature_vector/3/default/1

usage() {
  cat <<EOF
Usage: provision-model.sh [--url URL] [--sha256 HEX] [--dest DIR] [--config FILE] [--no-config] [--restart]

Fetches a TF.js model (model.json and the weight shards its weightsManifest lists) into
/var/lib/edgehead/models/<name>, verifies the sha256 of model.json, prints the sha256 of every file (also written
to <dir>/SHA256SUMS), then sets extractor.ref: <dir> in the config and validates it with
\`edgehead config check\` (the edit is undone if it makes a valid config invalid).

  --url URL      TF Hub model URL (?tfjs-format=file is added, as tfjs' fromTFHub does) or a model.json URL.
                 Default: $DEFAULT_URL
  --sha256 HEX   expected sha256 of model.json: the download is refused when it differs. Without it the sum is
                 printed (pin it for the rest of the fleet) and nothing is verified.
  --dest DIR     target folder (default /var/lib/edgehead/models/<name from the URL>)
  --config FILE  config to edit (default /etc/edgehead/config.yaml)
  --no-config    download only; leave the config alone
  --restart      restart edgehead.service afterwards (otherwise: systemctl restart edgehead)
  --root DIR     operate on a fake root (tests): paths prefixed with DIR, no chown, no systemctl
  -h, --help     this help

Heads are bound to the extractor they were trained on (its fingerprint): after switching extractors, train a head
with \`edgehead head train --extractor DIR\` (or push one) — the agent refuses heads made for another extractor.
Running it again with the same model re-verifies the files (SHA256SUMS) and downloads nothing.
EOF
}

URL=$DEFAULT_URL
WANT_SHA=""
DEST=""
CONFIG_ARG=""
EDIT_CONFIG=1
RESTART=0
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --url) [ $# -ge 2 ] || usage_error "--url needs a URL"; URL=$2; shift ;;
    --url=*) URL=${1#*=} ;;
    --sha256) [ $# -ge 2 ] || usage_error "--sha256 needs 64 hex digits"; WANT_SHA=$2; shift ;;
    --sha256=*) WANT_SHA=${1#*=} ;;
    --dest) [ $# -ge 2 ] || usage_error "--dest needs a folder"; DEST=$2; shift ;;
    --dest=*) DEST=${1#*=} ;;
    --config) [ $# -ge 2 ] || usage_error "--config needs a file"; CONFIG_ARG=$2; shift ;;
    --config=*) CONFIG_ARG=${1#*=} ;;
    --no-config) EDIT_CONFIG=0 ;;
    --restart) RESTART=1 ;;
    --root) [ $# -ge 2 ] || usage_error "--root needs a folder"; ROOT=$2; shift ;;
    --root=*) ROOT=${1#*=} ;;
    *) usage_error "unknown argument: $1" ;;
  esac
  shift
done
[[ $URL =~ ^https?://[^/]+ ]] || usage_error "--url: an http(s) URL (got \"$URL\")"
if [ -n "$WANT_SHA" ]; then
  [[ $WANT_SHA =~ ^[0-9a-fA-F]{64}$ ]] || usage_error "--sha256: 64 hex digits (got \"$WANT_SHA\")"
  WANT_SHA=${WANT_SHA,,}
fi
if [ -n "$ROOT" ]; then
  ROOT=$(realpath -m "$ROOT")
  [ "$ROOT" = / ] && ROOT=""
fi
need_root_user
command -v node >/dev/null || die "node is not installed (run install.sh first)"

# ---------------------------------------------------------------------------------------------------------------- URLs
# TF Hub: <url>/model.json?tfjs-format=file, shards <url>/<path>?tfjs-format=file. A .json URL: as is, shards next to it.
base=${URL%%\?*}
query=""
[ "$base" = "$URL" ] || query="?${URL#*\?}"
if [[ $base == *.json ]]; then
  MODEL_URL=$URL
  SHARD_BASE=${base%/*}
else
  base=${base%/}
  [ -n "$query" ] || query="?tfjs-format=file"
  MODEL_URL=$base/model.json$query
  SHARD_BASE=$base
fi
if [ -z "$DEST" ]; then
  name=${base#*://*/}
  name=${name#google/tfjs-model/}
  name=${name%/model.json}
  name=${name%.json}
  name=$(printf '%s' "$name" | tr -c 'A-Za-z0-9_.-' '-' | sed 's/--*/-/g; s/^-//; s/-$//')
  [ -n "$name" ] || name=model
  DEST=/var/lib/edgehead/models/$name
fi
[[ $DEST == /* ]] || DEST=$(realpath -m "$DEST")
DEST_REAL=$(rp "$DEST")
CONFIG=${CONFIG_ARG:-$(rp /etc/edgehead/config.yaml)}
AGENT=$(rp /opt/edgehead/current/edgehead.cjs)

fetch() { # fetch URL FILE
  if command -v curl >/dev/null; then
    curl -fsSL --retry 3 --connect-timeout 20 --max-time 600 -o "$2" "$1"
  elif command -v wget >/dev/null; then
    wget -q --tries=3 --timeout=60 -O "$2" "$1"
  else
    # shellcheck disable=SC2016 # JavaScript template literals, not shell
    node -e '
      const [url, file] = process.argv.slice(1);
      fetch(url, { redirect: "follow" }).then(async (r) => {
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        require("fs").writeFileSync(file, Buffer.from(await r.arrayBuffer()));
      }).catch((e) => { console.error(e.message); process.exit(1); });' "$1" "$2"
  fi
}

# The shard paths of a model.json (weightsManifest[].paths[]), one per line; fails on unsafe paths.
shard_paths() {
  # shellcheck disable=SC2016 # JavaScript template literals, not shell
  node -e '
    const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    if (!m.modelTopology && !m.format) throw new Error("not a TF.js model.json (no modelTopology)");
    for (const g of m.weightsManifest || []) for (const p of g.paths || []) {
      if (p.includes("..") || p.startsWith("/") || p.includes("\\") || p.includes("?")) throw new Error(`unsafe weight path: ${p}`);
      console.log(p);
    }' "$1"
}

# ------------------------------------------------------------------------------------------------------------- download
verified_copy() { # the folder holds a complete, unchanged download (and the pinned model.json when --sha256)
  [ -f "$DEST_REAL/SHA256SUMS" ] && [ -f "$DEST_REAL/model.json" ] || return 1
  (cd "$DEST_REAL" && sha256sum --quiet --strict -c SHA256SUMS >/dev/null 2>&1) || return 1
  [ -z "$WANT_SHA" ] || [ "$(sha256sum "$DEST_REAL/model.json" | cut -d ' ' -f 1)" = "$WANT_SHA" ]
}

if verified_copy; then
  say "already provisioned: $DEST (every file matches its SHA256SUMS; nothing downloaded)"
else
  mkdir -p "$(dirname "$DEST_REAL")"
  TMP=$(mktemp -d "$DEST_REAL.partial.XXXXXX")
  trap 'rm -rf "$TMP"' EXIT
  say "downloading $MODEL_URL"
  fetch "$MODEL_URL" "$TMP/model.json" || die "download failed: $MODEL_URL"
  got=$(sha256sum "$TMP/model.json" | cut -d ' ' -f 1)
  if [ -n "$WANT_SHA" ]; then
    [ "$got" = "$WANT_SHA" ] || die "model.json sha256 mismatch: expected $WANT_SHA, got $got (refusing; nothing changed)"
    say "model.json sha256 ok: $got"
  else
    warn "model.json not verified (no --sha256): its sha256 is $got; pin it with --sha256 $got"
  fi
  shards=$(shard_paths "$TMP/model.json") || die "$MODEL_URL: not a usable TF.js model.json"
  [ -n "$shards" ] || die "$MODEL_URL: model.json lists no weight shards"
  n=0
  while IFS= read -r shard; do
    n=$((n + 1))
    mkdir -p "$(dirname "$TMP/$shard")"
    fetch "$SHARD_BASE/$shard$query" "$TMP/$shard" || die "download failed: $SHARD_BASE/$shard$query"
    [ -s "$TMP/$shard" ] || die "empty weight shard: $shard"
  done <<<"$shards"
  (cd "$TMP" && { printf '%s\n' model.json; printf '%s\n' "$shards"; } | xargs -d '\n' sha256sum >SHA256SUMS)
  printf '%s\n' "$MODEL_URL" >"$TMP/SOURCE"
  chmod -R u+rwX,go+rX,go-w "$TMP"
  chmod 0755 "$TMP"
  rm -rf "$DEST_REAL"
  mv -T "$TMP" "$DEST_REAL"
  trap - EXIT
  say "downloaded model.json and $n weight shard(s) to $DEST"
fi
say "sha256 of the files (also in $DEST/SHA256SUMS):"
sed 's/^/    /' "$DEST_REAL/SHA256SUMS"
if on_real_system && getent passwd edgehead >/dev/null; then chown -R edgehead:edgehead "$DEST_REAL"; fi

# --------------------------------------------------------------------------------------------------------------- config
if [ "$EDIT_CONFIG" = 0 ]; then
  say "config left alone (--no-config); use it with: extractor.ref: $DEST"
  exit 0
fi
[ -f "$CONFIG" ] || die "no config $CONFIG (run install.sh first, or pass --config FILE / --no-config)"
[ -f "$AGENT" ] || die "no agent at $AGENT (run install.sh first)"
check() { { node "$AGENT" config check "$1" >/dev/null; } 2>&1; } # the errors (stderr); exit status of the check
EDITED=$(mktemp)
trap 'rm -f "$EDITED" "$EDITED.new"' EXIT
cp -p "$CONFIG" "$EDITED"
yaml_set "$EDITED" extractor ref "\"$DEST\""
was_valid=1
before=$(check "$CONFIG") || was_valid=0
if cmp -s "$EDITED" "$CONFIG"; then
  say "unchanged: $CONFIG already has extractor.ref: $DEST"
  [ "$was_valid" = 1 ] || { warn "but $CONFIG is not valid:"; printf '%s\n' "$before" | sed 's/^/    /' >&2; }
elif ! cp -p "$CONFIG" "$CONFIG.bak" || ! cat "$EDITED" >"$CONFIG"; then
  die "cannot write $CONFIG"
elif after=$(check "$CONFIG"); then
  say "set extractor.ref: $DEST in $CONFIG (previous version: $CONFIG.bak); config check: valid"
elif [ "$was_valid" = 1 ]; then
  mv -f "$CONFIG.bak" "$CONFIG"
  printf '%s\n' "$after" | sed 's/^/    /' >&2
  die "the edited config is not valid: $CONFIG restored unchanged"
else
  warn "set extractor.ref: $DEST in $CONFIG, but the config was not valid before this edit either:"
  printf '%s\n' "$before" | sed 's/^/    /' >&2
fi
note "heads are bound to their extractor: train one with \`edgehead head train --extractor $DEST\` (or push one made for it); heads for another extractor are refused"

if [ "$RESTART" = 1 ]; then
  if SYSTEMCTL=$(systemctl_cmd); then
    say "restarting edgehead.service"
    "$SYSTEMCTL" restart edgehead
  else
    warn "no systemd here: not restarted"
  fi
else
  say "restart the agent to use it: systemctl restart edgehead"
fi
