#!/usr/bin/env bash
# bench/cluster.sh — one Maildir node against one and two PostgreSQL nodes,
# on this machine, in the same run: logins/s (`postie bench sessions`:
# connect, USER/PASS, STAT, QUIT) and LMTP deliveries/s (`postie bench
# lmtp`, 4 KiB messages).
#
# The PostgreSQL nodes are examples/cluster/cluster.sh's (one PostgreSQL,
# fsync on, two nodes, HAProxy): "pg1" is node 1 on its own ports, "pg2"
# both nodes through HAProxy. The Maildir node is a `postie serve` with the
# same settings. All read one passwd-file of NUSERS users with {PLAIN}
# passwords (user1/pass1, ...), so that no password hash is measured.
# The targets run in turn, ROUNDS times (the order rotating each round);
# the medians and the ratios to Maildir are printed as a Markdown table.
#
# Usage: bench/cluster.sh
# Environment (defaults in brackets): ROUNDS [3], DURATION [5s] per run,
# CONC [8] workers, NUSERS [16], OUT [/tmp/postie-cluster-bench-DATE]
# (results.jsonl, logs), POSTIE [built from this tree].
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONC=${CONC:-8}
NUSERS=${NUSERS:-16}
OUT=${OUT:-/tmp/postie-cluster-bench-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
if [ -z "${POSTIE:-}" ]; then
	(cd "$REPO" && go build -o "$OUT/postie" ./cmd/postie)
	POSTIE=$OUT/postie
fi
export POSTIE

md=$OUT/maildir
cl=$OUT/cluster
mkdir -p "$md" "$cl"
mdpid=""
cleanup() {
	[ -n "$mdpid" ] && kill "$mdpid" 2>/dev/null && wait "$mdpid" 2>/dev/null
	"$REPO/examples/cluster/cluster.sh" stop "$cl" >/dev/null 2>&1 || true
}
trap cleanup EXIT

for i in $(seq 1 "$NUSERS"); do echo "user$i:{PLAIN}pass$i"; done >"$cl/passwd"
chmod 0600 "$cl/passwd"
cp "$cl/passwd" "$md/passwd"

server=""
[ "$(id -u)" = 0 ] && server=$'[server]\nuser = "root"'
cat >"$md/postie.toml" <<CONF
data_dir = "$md"
[log]
level = "info"
[pop3]
listen = ["127.0.0.1:0"]
[lmtp]
listen = ["127.0.0.1:0"]
[auth]
passwd_file = "$md/passwd"
$server
CONF
"$POSTIE" serve --config "$md/postie.toml" </dev/null >"$md/log" 2>&1 &
mdpid=$!
for _ in $(seq 1 600); do
	grep -q 'msg="postie started"' "$md/log" && break
	kill -0 "$mdpid" || { cat "$md/log"; exit 1; }
	sleep 0.1
done
addr() { sed -nE "s/.*msg=listening proto=$2 addr=([^ ]+).*/\1/p" "$1" | head -n 1; }
MD_POP3=$(addr "$md/log" pop3)
MD_LMTP=$(addr "$md/log" lmtp)

"$REPO/examples/cluster/cluster.sh" start "$cl" >"$OUT/cluster.env"
# shellcheck disable=SC1091
. "$OUT/cluster.env"

declare -A POP=([maildir]=$MD_POP3 [pg1]=$NODE1_POP3 [pg2]=$POP3)
declare -A LM=([maildir]=$MD_LMTP [pg1]=$NODE1_LMTP [pg2]=$LMTP)
targets=(maildir pg1 pg2)
results=$OUT/results.jsonl
: >"$results"
for r in $(seq 1 "$ROUNDS"); do
	for k in 0 1 2; do
		t=${targets[$(((k + r) % 3))]}
		echo "round $r: $t" >&2
		"$POSTIE" bench sessions --addr "${POP[$t]}" --users 'user%d:pass%d' --nusers "$NUSERS" \
			--concurrency "$CONC" --duration "$DURATION" --server-pid -1 --label "$t" --name logins >>"$results" 2>>"$OUT/bench.log"
		"$POSTIE" bench lmtp --addr "${LM[$t]}" --users 'user%d@example.org:' --nusers "$NUSERS" \
			--concurrency "$CONC" --duration "$DURATION" --server-pid -1 --label "$t" --name deliveries >>"$results" 2>>"$OUT/bench.log"
	done
done

python3 - "$results" "$ROUNDS" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs.setdefault((r["name"], r["label"]), []).append(r)
print(f"rounds: {sys.argv[2]}; medians of ops/s (min–max); errors summed\n")
print("| measure | target | ops/s | range | Maildir / target | errors |")
print("|---|---|---|---|---|---|")
for name in ("logins", "deliveries"):
    base = statistics.median(x["ops_per_s"] for x in runs[(name, "maildir")])
    for label in ("maildir", "pg1", "pg2"):
        xs = [x["ops_per_s"] for x in runs[(name, label)]]
        errs = sum(x.get("errors", 0) for x in runs[(name, label)])
        m = statistics.median(xs)
        print(f"| {name}/s | {label} | {m:.0f} | {min(xs):.0f}–{max(xs):.0f} | {base / m:.2f}× | {errs} |")
PY
