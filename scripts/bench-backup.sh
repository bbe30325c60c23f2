#!/usr/bin/env bash
# Backup pipeline benchmark: our streamed pipeline vs. save-to-disk-then-upload.
#
# Starts a real single-node OpenBao (raft, TLS) and a moto S3 server on 127.30.200.x,
# fills Vault until its raft snapshot is about 10 MiB, then about 500 MiB, and for each
# size measures wall time and peak RSS (/usr/bin/time) of:
#   streamed   vault snapshot -> encrypt -> S3 multipart, one process, no disk
#   baseline   `bao operator raft snapshot save FILE`, then encrypt FILE -> FILE2, then
#              upload FILE2 (what a backup-creator/shifter tandem does); the same format,
#              part size (8 MiB) and upload concurrency (2) as the streamed pipeline.
# Baseline time is the sum of its three steps; its peak RSS the largest of the three.
# Each case runs RUNS times (default 2), alternating, and the best wall time is shown.
#
#   scripts/bench-backup.sh            # both sizes
#   SIZES_MIB="10" scripts/bench-backup.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bao="${VAULTKEEPER_BAO:-$root/.tools/bin/bao}"
moto="${VAULTKEEPER_MOTO:-$root/.tools/bin/moto_server}"
for tool in "$bao" "$moto"; do
  [ -x "$tool" ] || { echo "missing $tool: run scripts/install-tools.sh" >&2; exit 1; }
done
sizes="${SIZES_MIB:-10 500}"
runs="${RUNS:-2}"
ip=127.30.200.1
s3ip=127.30.200.10
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

echo "building the benchmark helper (release)..." >&2
cargo build --quiet --release -p vaultkeeper-backup --example bench_backup
bench="$CARGO_TARGET_DIR/release/examples/bench_backup"

work="$(mktemp -d /tmp/vaultkeeper-bench.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# TLS for OpenBao.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=bench CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=vault" \
  -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
printf 'subjectAltName=IP:%s\n' "$ip" > "$work/san.ext"
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 1 -extfile "$work/san.ext" -out "$work/tls.crt" 2>/dev/null

mkdir -p "$work/data"
cat > "$work/config.hcl" <<EOF
storage "raft" {
  path    = "$work/data"
  node_id = "bench"
}
listener "tcp" {
  address         = "$ip:8200"
  cluster_address = "$ip:8201"
  tls_cert_file   = "$work/tls.crt"
  tls_key_file    = "$work/tls.key"
}
api_addr     = "https://$ip:8200"
cluster_addr = "https://$ip:8201"
EOF
"$bao" server -config="$work/config.hcl" > "$work/bao.log" 2>&1 &
bao_pid=$!
pids+=($bao_pid)
"$moto" -H "$s3ip" -p 5000 > "$work/moto.log" 2>&1 &
pids+=($!)

export VAULT_ADDR="https://$ip:8200" VAULT_CACERT="$work/ca.pem"
for _ in $(seq 1 100); do
  curl -s --cacert "$work/ca.pem" "$VAULT_ADDR/v1/sys/health" >/dev/null 2>&1 && \
    curl -s "http://$s3ip:5000/" >/dev/null 2>&1 && break
  sleep 0.2
done
init="$("$bao" operator init -format=json -key-shares=1 -key-threshold=1)"
unseal_key="$(printf '%s' "$init" | python3 -c 'import json,sys; print(json.load(sys.stdin)["unseal_keys_b64"][0])')"
printf '%s' "$init" | python3 -c 'import json,sys; sys.stdout.write(json.load(sys.stdin)["root_token"])' > "$work/token"
printf '%s' "$unseal_key" | "$bao" write -format=json sys/unseal key=- >/dev/null
for _ in $(seq 1 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/ca.pem" "$VAULT_ADDR/v1/sys/health")" = 200 ] && break
  sleep 0.2
done
export VAULT_TOKEN="$(cat "$work/token")"
"$bao" secrets enable -version=2 -path=secret kv >/dev/null
sleep 2
curl -s -X PUT "http://$s3ip:5000/bench" >/dev/null
head -c 32 /dev/urandom > "$work/backup.key"

vault_args=(--vault-addr "$VAULT_ADDR" --vault-ca-cert "$work/ca.pem" --token-file "$work/token")
s3_args=(--s3-endpoint "http://$s3ip:5000" --bucket bench --encryption-key-file "$work/backup.key")

# Runs a command under /usr/bin/time; prints "seconds kib". Deletes what it uploaded, so
# moto (which keeps objects in memory) does not slow down as the run goes on.
timed() {
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" > "$work/out"
  cat "$work/time"
  local object
  object="$(awk '{print $1}' "$work/out")"
  if [ -n "$object" ]; then
    curl -s -X DELETE "http://$s3ip:5000/bench/$object" > /dev/null || true
  fi
}

# Waits until OpenBao is idle (raft compaction after a fill competes for the CPU).
settle() {
  local pid=$1 before after
  for _ in $(seq 1 60); do
    before=$(awk '{print $14+$15}' "/proc/$pid/stat")
    sleep 1
    after=$(awk '{print $14+$15}' "/proc/$pid/stat")
    [ $((after - before)) -lt 5 ] && return
  done
}

filled=0
printf '\n%-10s %-10s %12s %14s %12s %14s %9s\n' "target" "snapshot" "streamed s" "streamed RSS" "baseline s" "baseline RSS" "speed-up"
for target in $sizes; do
  # Each value: 512 KiB random, stored base64 (~700 KB in the snapshot).
  want=$(( target * 1024 * 1024 / 700000 ))
  if [ "$want" -gt "$filled" ]; then
    "$bench" fill "${vault_args[@]}" --count $((want - filled)) --prefix "fill$filled" >&2
    filled=$want
  fi
  settle "$bao_pid"
  all_s=""; all_b=""
  best_s=""; best_s_rss=0; best_b=""; best_b_rss=0; snap_size=0
  for run in $(seq 1 "$runs"); do
    streamed_once() {
      read -r s_sec s_kib < <(timed "$bench" streamed "${vault_args[@]}" "${s3_args[@]}")
    }
    baseline_once() {
      rm -f "$work/snap" "$work/snap.vkb"
      read -r b1 r1 < <(timed "$bao" operator raft snapshot save "$work/snap")
      snap_size=$(stat -c %s "$work/snap")
      read -r b2 r2 < <(timed "$bench" encrypt-file --encryption-key-file "$work/backup.key" "$work/snap" "$work/snap.vkb")
      read -r b3 r3 < <(timed "$bench" upload-file "${s3_args[@]}" "$work/snap.vkb")
      rm -f "$work/snap" "$work/snap.vkb"
    }
    # Alternate which goes first, so neither always gets the warmer cache.
    if [ $((run % 2)) -eq 1 ]; then streamed_once; baseline_once; else baseline_once; streamed_once; fi
    b_sec=$(python3 -c "print(round($b1+$b2+$b3, 2))")
    b_kib=$(printf '%s\n' "$r1" "$r2" "$r3" | sort -n | tail -1)
    all_s="$all_s $s_sec"; all_b="$all_b $b_sec"
    echo "  run $run, ~$target MiB: streamed ${s_sec}s ${s_kib}KiB; baseline save ${b1}s/${r1}KiB encrypt ${b2}s/${r2}KiB upload ${b3}s/${r3}KiB" >&2
    if [ -z "$best_s" ] || python3 -c "import sys; sys.exit(0 if $s_sec < $best_s else 1)"; then best_s=$s_sec; fi
    if [ -z "$best_b" ] || python3 -c "import sys; sys.exit(0 if $b_sec < $best_b else 1)"; then best_b=$b_sec; fi
    [ "$s_kib" -gt "$best_s_rss" ] && best_s_rss=$s_kib
    [ "$b_kib" -gt "$best_b_rss" ] && best_b_rss=$b_kib
  done
  med_s=$(python3 -c "import statistics; print(statistics.median([float(x) for x in '$all_s'.split()]))")
  med_b=$(python3 -c "import statistics; print(statistics.median([float(x) for x in '$all_b'.split()]))")
  printf '%-10s %-10s %12s %14s %12s %14s %9s\n' "~${target}MiB" "$(( snap_size / 1048576 ))MiB" "$best_s" \
    "$(( best_s_rss / 1024 ))MiB" "$best_b" "$(( best_b_rss / 1024 ))MiB" \
    "$(python3 -c "print(f'{$best_b/$best_s:.2f}x')")"
  printf '%-10s %-10s %12s %14s %12s %14s %9s\n' "  median" "" "$med_s" "" "$med_b" "" \
    "$(python3 -c "print(f'{$med_b/$med_s:.2f}x')")"
done
echo
echo "RSS is the peak resident set of the process (max over runs; baseline: max over its steps)."
echo "Wall time: best and median of $runs run(s). Goal: streamed >= 1.5x faster, peak RSS <= 64 MiB."
