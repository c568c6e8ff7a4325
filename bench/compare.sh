#!/usr/bin/env bash
# bench/compare.sh — postie and Dovecot side by side on this machine.
#
# Sets up a private Dovecot POP3 (the anchor scripts in ../shared/anchors/dovecot
# when they exist, else the same steps done here) and postie, on loopback,
# over the SAME corpus (written by `postie bench corpus` into both layouts)
# and the SAME passwd-file: user1..userN with {PLAIN} passwords pass1..passN,
# read by both servers — so both check passwords in the PLAIN scheme. Then it
# runs each scenario alternately (Dovecot, postie, [raw sender]; the order
# rotates every round), ROUNDS times, and prints the medians and the ratios
# postie/Dovecot (and postie/raw sender for RETR of the big message) as a
# Markdown table (`postie bench report`), with the targets of issue 6.
#
# Everything listens on 127.0.0.1; every process started here is stopped on
# exit (trap EXIT). Each bench command is bounded by its --duration/--rounds
# and by `timeout`. Needs root (Dovecot switches to the vmail user; the cold
# figures drop the page cache), bash, openssl, and Go to build postie.
#
# Usage: bench/compare.sh   (25–30 minutes with the defaults on 2 cores; the
#        Dovecot idle run alone may take IDLE_OPEN, Dovecot's setup of 10,000
#        users a few minutes, and about 2 GB of scratch space are used)
# Environment (defaults in brackets):
#   ROUNDS [3]          alternations per scenario
#   DURATION [5s]       length of each sessions/retr/bigretr run
#   CONC [8]            sessions workers      RETR_CONC [4]   retr workers
#   CORPUS_COUNT [200]  messages per corpus user (mixed sizes)
#   BIG [50M]           size of the big message (bigretr)
#   BIG_CRLF [0]        1: store it with CRLF line ends, as LMTP intake does (postie
#                       then sends it from the file), instead of LF as MDAs write it
#   BIGBOX [100000]     messages of the huge maildrop (bigbox)
#   IDLE [10000]        idle sessions held open   IDLE_MSGS [5] messages per idle user
#   IDLE_OPEN [300s]    time allowed to open them; memory is then read with those open
#   SCENARIOS ["idle sessions retr bigretr bigbox"]
#   OUT [/tmp/postie-compare-DATE]  where results.jsonl, report.md and logs are kept
#   WORK [mktemp]       scratch directory (corpus, Maildirs), removed at exit unless KEEP=1
#   SHARED [../shared/anchors/dovecot]  the Dovecot anchor scripts, if present
#   CURVES [x25519]     TLS key exchanges the client offers (bench --curves): Dovecot's
#                       OpenSSL 3.0 cannot choose Go's default X25519MLKEM768 hybrid, so
#                       by default both servers get the same X25519 exchange
#   DOVECOT_REUSE [1]   also measure sessions against a second Dovecot instance that
#                       reuses pop3 processes (service_count = 1000) — label dovecot-reuse
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONC=${CONC:-8}
RETR_CONC=${RETR_CONC:-4}
CORPUS_COUNT=${CORPUS_COUNT:-200}
BIG=${BIG:-50M}
BIG_CRLF=${BIG_CRLF:-0}
BIGBOX=${BIGBOX:-100000}
IDLE=${IDLE:-10000}
IDLE_MSGS=${IDLE_MSGS:-5}
IDLE_OPEN=${IDLE_OPEN:-300s}
SCENARIOS=${SCENARIOS:-"idle sessions retr bigretr bigbox"}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-/tmp/postie-compare-$STAMP}
KEEP=${KEEP:-0}
SHARED=${SHARED:-$REPO/../shared/anchors/dovecot}
DOVECOT_REUSE=${DOVECOT_REUSE:-1}
CURVES=${CURVES:-x25519}

say() { printf '\n==> %s\n' "$*"; }
die() {
	printf 'compare.sh: %s\n' "$*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "run as root: Dovecot switches to the vmail user, and cold runs drop the page cache"
command -v go >/dev/null || die "go is needed to build postie"
command -v openssl >/dev/null || die "openssl is needed for the certificate"

WORK=${WORK:-$(mktemp -d /tmp/postie-compare-work.XXXXXX)}
mkdir -p "$WORK" "$OUT"
chmod 755 "$WORK" # Dovecot's unprivileged processes must reach the Maildirs
BIN=$WORK/bin/postie
DROOT=$WORK/dovecot
PDATA=$WORK/postie
PROOT=$PDATA/mail
RESULTS=$OUT/results.jsonl
LOG=$OUT/logs
mkdir -p "$LOG" "$PROOT"
: >"$RESULTS"

# --- processes we start, stopped on exit -------------------------------------
PIDS=()
BENCH_PID=""
DOVECOT_UP=0
stop_pid() { # stop_pid PID: SIGTERM, wait up to 15 s, then SIGKILL; forget PID
	local pid=$1 p keep=()
	for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 150); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	local rc=$?
	set +e
	[ -n "$BENCH_PID" ] && stop_pid "$BENCH_PID"
	for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
	[ "$DOVECOT_UP" = 1 ] && dovecot_stop
	[ "$REUSE_UP" = 1 ] && dovecot_stop_conf "$RCONF" "$DROOT/run-reuse/master.pid"
	if [ "$KEEP" = 1 ]; then
		echo "compare.sh: kept the scratch directory $WORK"
	else
		rm -rf "$WORK"
	fi
	echo "compare.sh: results in $OUT"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Dovecot: the anchor scripts, or the same steps here ---------------------
if [ -x "$SHARED/setup.sh" ]; then
	DOVECOT_FROM="the anchor scripts in $SHARED"
	dovecot_setup() { "$SHARED/setup.sh" "$DROOT" "$1" "$2" "$3" >/dev/null; }
	dovecot_start() { "$SHARED/start.sh" "$DROOT" >/dev/null; }
	dovecot_stop() { "$SHARED/stop.sh" "$DROOT" || true; }
else
	DOVECOT_FROM="the setup in bench/compare.sh (no $SHARED)"
	dovecot_setup() { # PLAIN_PORT TLS_PORT NUSERS, as the anchor's setup.sh
		local P=$1 T=$2 N=$3
		if ! command -v dovecot >/dev/null || [ ! -x /usr/lib/dovecot/pop3 ]; then
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-core dovecot-pop3d >/dev/null
		fi
		id vmail >/dev/null 2>&1 || useradd -r -M -d /nonexistent -s /usr/sbin/nologin vmail
		mkdir -p "$DROOT"/{etc,run,mail,log}
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
			-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1 \
			-keyout "$DROOT/etc/key.pem" -out "$DROOT/etc/cert.pem" 2>/dev/null
		local VUID VGID
		VUID=$(id -u vmail) VGID=$(id -g vmail)
		for i in $(seq 1 "$N"); do echo "user$i:{PLAIN}pass$i:$VUID:$VGID::$DROOT/mail/user$i::"; done >"$DROOT/etc/passwd"
		(cd "$DROOT/mail" && seq -f 'user%.0f/Maildir/cur' 1 "$N" | xargs mkdir -p &&
			seq -f 'user%.0f/Maildir/new' 1 "$N" | xargs mkdir -p && seq -f 'user%.0f/Maildir/tmp' 1 "$N" | xargs mkdir -p)
		chown -R vmail:vmail "$DROOT/mail"
		cat >"$DROOT/etc/dovecot.conf" <<CONF
base_dir = $DROOT/run
state_dir = $DROOT/run/state
instance_name = bench-$P
protocols = pop3
listen = 127.0.0.1
log_path = $DROOT/log/dovecot.log
ssl = yes
ssl_cert = <$DROOT/etc/cert.pem
ssl_key = <$DROOT/etc/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN $DROOT/etc/passwd
}
userdb {
  driver = passwd-file
  args = $DROOT/etc/passwd
}
service pop3-login {
  inet_listener pop3 {
    port = $P
  }
  inet_listener pop3s {
    port = $T
    ssl = yes
  }
  process_limit = 1024
  service_count = 0
}
service pop3 {
  process_limit = 20000
}
default_process_limit = 20000
default_client_limit = 20000
service anvil {
  client_limit = 50000
}
service auth {
  client_limit = 50000
}
protocol pop3 {
  pop3_uidl_format = %08Xu%08Xv
}
CONF
	}
	dovecot_start() {
		ulimit -n 65536 2>/dev/null || true
		dovecot -c "$DROOT/etc/dovecot.conf"
	}
	dovecot_stop() { dovecot_stop_conf "$DROOT/etc/dovecot.conf" "$DROOT/run/master.pid"; }
fi

# dovecot_stop_conf CONF PIDFILE: stop that instance and wait (at most 30 s,
# then SIGKILL) until its master and the processes it had started are gone.
dovecot_stop_conf() {
	local m pids p left
	m=$(cat "$2" 2>/dev/null) || return 0
	[ -d "/proc/$m" ] || return 0
	pids="$m $(pgrep -P "$m" | tr '\n' ' ')"
	doveadm -c "$1" stop 2>/dev/null || kill "$m" 2>/dev/null || true
	for _ in $(seq 300); do
		left=""
		for p in $pids; do [ -d "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && left="$left $p"; done
		[ -z "$left" ] && return 0
		sleep 0.1
	done
	kill -9 $left 2>/dev/null || true
}

free_port() { # the first free loopback port from $1 on
	local p
	for p in $(seq "$1" $(($1 + 1000))); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	die "no free port near $1"
}

wait_port() { # wait_port HOST:PORT
	for _ in $(seq 300); do
		(exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null && return 0
		sleep 0.1
	done
	die "nothing listens on $1"
}

# wait_log FILE PROTO: the address of the "listening proto=PROTO" log line.
wait_log() {
	local a
	for _ in $(seq 300); do
		a=$(sed -n "s/.*msg=listening proto=$2 addr=\([0-9.:]*\).*/\1/p" "$1" | head -1)
		[ -n "$a" ] && { echo "$a"; return 0; }
		sleep 0.1
	done
	cat "$1" >&2
	die "no listening line for $2 in $1"
}

# --- build and set up --------------------------------------------------------
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$IDLE" -gt 0 ] && [ "$(ulimit -n)" -lt $((2 * IDLE + 100)) ]; then
	# An idle postie session on a Maildir holds two descriptors: its
	# socket and the maildrop's lock file.
	echo "compare.sh: warning: ulimit -n is $(ulimit -n): postie can hold about $(($(ulimit -n) / 2 - 50)) of the $IDLE idle sessions" >&2
fi
say "building postie"
(cd "$REPO" && go build -o "$BIN" ./cmd/postie)

NC=$((CONC > RETR_CONC ? CONC : RETR_CONC)) # corpus users user1..userNC
BIGU=$((NC + 1))                             # one big message
BOXU=$((NC + 2))                             # the huge maildrop
IDLE0=$((NC + 3))                            # idle users from here
NUSERS=$((NC + 2 + IDLE))
DPORT=$(free_port $((20000 + RANDOM % 20000)))
DTLS=$(free_port $((DPORT + 1)))

say "Dovecot: $DOVECOT_FROM, $NUSERS users, ports $DPORT (plain, STLS) and $DTLS (implicit TLS)"
dovecot_setup "$DPORT" "$DTLS" "$NUSERS"
# A second instance over the same users and Maildirs, differing only in
# reusing its pop3 processes (service_count) instead of starting one per
# session, Dovecot's default: the sessions scenario is measured against both.
if [ "$DOVECOT_REUSE" = 1 ]; then
	RPORT=$(free_port $((DTLS + 1)))
	RTLS=$(free_port $((RPORT + 1)))
	RCONF=$DROOT/etc/dovecot-reuse.conf
	mkdir -p "$DROOT/run-reuse"
	sed -e "s|^base_dir = .*|base_dir = $DROOT/run-reuse|" -e "s|^state_dir = .*|state_dir = $DROOT/run-reuse/state|" \
		-e "s|^instance_name = .*|instance_name = bench-reuse-$RPORT|" -e "s|^log_path = .*|log_path = $DROOT/log/dovecot-reuse.log|" \
		-e "s|port = $DPORT\$|port = $RPORT|" -e "s|port = $DTLS\$|port = $RTLS|" "$DROOT/etc/dovecot.conf" >"$RCONF"
	cat >>"$RCONF" <<'CONF'
service pop3 {
  service_count = 1000
  process_min_avail = 4
}
CONF
	echo "Dovecot with reused pop3 processes: ports $RPORT and $RTLS"
fi
CERT=$DROOT/etc/cert.pem
KEY=$DROOT/etc/key.pem
PASSWD=$DROOT/etc/passwd

say "corpus (the same bytes in both layouts)"
corpus() { "$BIN" bench corpus --postie-root "$PROOT" --dovecot-root "$DROOT" "$@" 2>>"$LOG/corpus.log"; tail -1 "$LOG/corpus.log"; }
corpus --users 'user%d' --first 1 --nusers "$NC" --count "$CORPUS_COUNT" --seed 1
BIGFLAGS=()
[ "$BIG_CRLF" = 1 ] && BIGFLAGS=(--big-crlf)
corpus --users "user$BIGU" --count 0 --big "$BIG" "${BIGFLAGS[@]}" --seed 2
corpus --users "user$BOXU" --count "$BIGBOX" --profile small --seed 3
if [ "$IDLE" -gt 0 ] && [ "$IDLE_MSGS" -gt 0 ]; then
	corpus --users 'user%d' --first "$IDLE0" --nusers "$IDLE" --count "$IDLE_MSGS" --profile small --seed 4
fi

# postie reads the very passwd-file Dovecot reads ({PLAIN} entries).
{
	echo "data_dir = \"$PDATA\""
	echo '[server]'
	echo 'user = "root"   # compare.sh runs as root; serve refuses root unless told'
	echo '[log]'
	echo 'level = "info"'
	echo '[pop3]'
	echo 'listen = ["127.0.0.1:0"]'
	echo 'hostname = "bench"'
	echo 'max_connections = 30000'
	echo 'max_connections_per_ip = 30000'
	echo '[storage]'
	echo "maildir_root = \"$PROOT\""
	echo '[auth]'
	echo "passwd_file = \"$PASSWD\""
	echo '[tls]'
	echo "cert_file = \"$CERT\""
	echo "key_file = \"$KEY\""
} >"$WORK/postie.toml"

DOVECOT_PLAIN=127.0.0.1:$DPORT
DOVECOT_TLS=127.0.0.1:$DTLS
start_dovecot() {
	dovecot_start
	DOVECOT_UP=1
	wait_port "$DOVECOT_PLAIN"
	wait_port "$DOVECOT_TLS"
}
stop_dovecot() {
	dovecot_stop
	DOVECOT_UP=0
}
DOVECOT_REUSE_PLAIN=127.0.0.1:${RPORT:-0}
DOVECOT_REUSE_TLS=127.0.0.1:${RTLS:-0}
REUSE_UP=0
start_dovecot_reuse() {
	[ "$DOVECOT_REUSE" = 1 ] || return 0
	(ulimit -n 65536 2>/dev/null || true; dovecot -c "$RCONF")
	REUSE_UP=1
	wait_port "$DOVECOT_REUSE_PLAIN"
	wait_port "$DOVECOT_REUSE_TLS"
}

# postie: `postie serve` for every scenario, plain (STLS offered) and
# implicit TLS.
POSTIE_PID=""
start_postie() {
	local log=$LOG/postie-serve.$((++POSTIE_STARTS)).log
	"$BIN" serve --config "$WORK/postie.toml" --listen-tls 127.0.0.1:0 2>"$log" &
	POSTIE_PID=$!
	PIDS+=("$POSTIE_PID")
	POSTIE_PLAIN=$(wait_log "$log" pop3)
	POSTIE_TLS=$(wait_log "$log" pop3s)
	POSTIE_STLS=$POSTIE_PLAIN
}
stop_postie() {
	stop_pid "$POSTIE_PID"
	POSTIE_PID=""
}
POSTIE_STARTS=0

say "starting the servers"
start_dovecot
start_dovecot_reuse
start_postie
RAWLOG=$LOG/raw-sender.log
"$BIN" bench raw-sender --maildir "$PROOT/user$BIGU" --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 --tls-cert "$CERT" --tls-key "$KEY" 2>"$RAWLOG" &
PIDS+=("$!")
RAW_PLAIN=$(wait_log "$RAWLOG" pop3)
RAW_TLS=$(wait_log "$RAWLOG" pop3s)
echo "Dovecot $DOVECOT_PLAIN/$DOVECOT_TLS, postie $POSTIE_PLAIN (STLS $POSTIE_STLS, TLS $POSTIE_TLS), raw sender $RAW_PLAIN/$RAW_TLS"

# --- running -----------------------------------------------------------------
# bench NAME LABEL LIMIT_SECONDS ARGS...: one run, its JSON line into results.
bench() {
	local name=$1 label=$2 limit=$3
	shift 3
	local tmp=$WORK/last.out rc=0
	# In the background, so that a signal reaches our trap at once.
	timeout --kill-after=10 "$limit" "$BIN" bench "$@" --name "$name" --label "$label" >>"$RESULTS" 2>"$tmp" &
	BENCH_PID=$!
	wait "$BENCH_PID" || rc=$?
	BENCH_PID=""
	[ "$rc" = 0 ] || echo "  (exit $rc from $name/$label)"
	cat "$tmp" >>"$LOG/bench.log"
	printf '  %-22s %-8s %s\n' "$name" "$label" "$(sed -n '2p' "$tmp" | sed 's/^ *//')"
}

CA=(--ca "$CERT" --curves "$CURVES")
U_CORPUS=(--users 'user%d:pass%d' --nusers "$NC")
order() { # order ROUND SIDES...: the sides, rotated by ROUND
	local r=$1
	shift
	local s=("$@") n=$#
	for i in $(seq 0 $((n - 1))); do printf '%s ' "${s[$(((i + r) % n))]}"; done
}
addr_of() { # addr_of SIDE MODE
	case "$1:$2" in
	dovecot:plain | dovecot:stls) echo "$DOVECOT_PLAIN" ;;
	dovecot:tls) echo "$DOVECOT_TLS" ;;
	dovecot-reuse:plain | dovecot-reuse:stls) echo "$DOVECOT_REUSE_PLAIN" ;;
	dovecot-reuse:tls) echo "$DOVECOT_REUSE_TLS" ;;
	postie:plain) echo "$POSTIE_PLAIN" ;;
	postie:stls) echo "$POSTIE_STLS" ;;
	postie:tls) echo "$POSTIE_TLS" ;;
	raw:plain) echo "$RAW_PLAIN" ;;
	raw:tls) echo "$RAW_TLS" ;;
	esac
}
tlsflag() { case "$1" in plain) echo none ;; stls) echo starttls ;; tls) echo implicit ;; esac }
secs() { local d=$1; d=${d%s}; echo "${d%.*}"; }
LIMIT=$(($(secs "$DURATION") + 120))

drop_caches() {
	sync
	if (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then return 0; fi
	return 1
}

scenario_idle() {
	[ "$IDLE" -gt 0 ] || return 0
	say "idle: $IDLE authenticated sessions held open (at most $IDLE_OPEN to open them); memory of each server's process tree (fresh start)"
	for side in dovecot postie; do
		if [ "$side" = dovecot ]; then stop_dovecot; start_dovecot; else stop_postie; start_postie; fi
		bench idle "$side" 900 idle --addr "$(addr_of "$side" plain)" --users 'user%d:pass%d' --nusers "$IDLE" \
			--sessions "$IDLE" --open-timeout "$IDLE_OPEN" --concurrency 32 --hold 5s --timeout 120s --server-pid "$([ "$side" = dovecot ] && cat "$DROOT/run/master.pid" || echo "$POSTIE_PID")" \
			--first-user "$IDLE0"
	done
}

scenario_sessions() {
	say "sessions: connect, USER/PASS, STAT, QUIT; $CONC workers, $DURATION per run, $ROUNDS rounds"
	local sides=(dovecot postie)
	[ "$DOVECOT_REUSE" = 1 ] && sides=(dovecot dovecot-reuse postie)
	for side in "${sides[@]}"; do # warm up: index files, caches, login processes
		"$BIN" bench sessions --addr "$(addr_of "$side" plain)" "${U_CORPUS[@]}" --concurrency "$CONC" --duration 1s >/dev/null 2>&1 || true
	done
	local mode resume name
	for v in plain stls tls tls-resumed stls-resumed; do
		mode=${v%-resumed}
		resume=()
		[ "$v" != "$mode" ] && resume=(--resume)
		name=sessions-$v
		for r in $(seq 1 "$ROUNDS"); do
			for side in $(order "$r" "${sides[@]}"); do
				bench "$name" "$side" "$LIMIT" sessions --addr "$(addr_of "$side" "$mode")" --tls "$(tlsflag "$mode")" "${CA[@]}" \
					"${resume[@]}" "${U_CORPUS[@]}" --concurrency "$CONC" --duration "$DURATION"
			done
		done
	done
}

scenario_retr() {
	say "retr: RETR over the corpus ($CORPUS_COUNT messages per user), $RETR_CONC workers"
	for side in dovecot postie; do
		"$BIN" bench retr --addr "$(addr_of "$side" plain)" --users 'user%d:pass%d' --nusers "$RETR_CONC" --concurrency "$RETR_CONC" --duration 2s >/dev/null 2>&1 || true
	done
	for r in $(seq 1 "$ROUNDS"); do
		for side in $(order "$r" dovecot postie); do
			bench retr-corpus "$side" "$LIMIT" retr --addr "$(addr_of "$side" plain)" --users 'user%d:pass%d' --nusers "$RETR_CONC" \
				--concurrency "$RETR_CONC" --duration "$DURATION"
		done
	done
}

scenario_bigretr() {
	say "bigretr: RETR of one $BIG message, plain and implicit TLS, against the raw sender's ceiling"
	for mode in plain tls; do
		for r in $(seq 1 "$ROUNDS"); do
			for side in $(order "$r" dovecot postie raw); do
				bench "bigretr-$mode" "$side" "$LIMIT" bigretr --addr "$(addr_of "$side" "$mode")" --tls "$(tlsflag "$mode")" "${CA[@]}" \
					--user "user$BIGU" --pass "pass$BIGU" --duration "$DURATION"
			done
		done
	done
}

scenario_bigbox() {
	say "bigbox: login+STAT, UIDL, LIST on $BIGBOX messages"
	local box=(--user "user$BOXU" --pass "pass$BOXU" --timeout 300s)
	for side in dovecot postie; do # the first login ever: Dovecot builds its index
		bench bigbox-first "$side" 600 bigbox --addr "$(addr_of "$side" plain)" "${box[@]}" --rounds 1
	done
	for r in $(seq 1 "$ROUNDS"); do
		for side in $(order "$r" dovecot postie); do
			bench bigbox-warm "$side" 600 bigbox --addr "$(addr_of "$side" plain)" "${box[@]}" --rounds 5
		done
	done
	if drop_caches; then
		# Cold: as after a reboot. postie is restarted first, so that
		# its snapshot cache (in memory, it survives drop_caches) is
		# empty and the Maildir (its postie-index, written at the first
		# login) is read from disk.
		for r in $(seq 1 "$ROUNDS"); do
			for side in $(order "$r" dovecot postie); do
				if [ "$side" = postie ]; then stop_postie; start_postie; fi
				drop_caches
				bench bigbox-cold "$side" 600 bigbox --addr "$(addr_of "$side" plain)" "${box[@]}" --rounds 1
			done
		done
	else
		echo "  cold runs skipped: /proc/sys/vm/drop_caches is not writable here"
		echo '{"note":"cold runs skipped: drop_caches not permitted"}' >>"$RESULTS"
	fi
}

for s in $SCENARIOS; do
	case "$s" in
	idle | sessions | retr | bigretr | bigbox) "scenario_$s" ;;
	*) die "unknown scenario $s (idle sessions retr bigretr bigbox)" ;;
	esac
done

# --- report ------------------------------------------------------------------
say "report"
{
	echo "Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, $(uname -sr)"
	echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "Dovecot: $(dovecot --version) ($DOVECOT_FROM); postie: $("$BIN" version)"
	echo "Passwords: the same passwd-file, {PLAIN} scheme, on both servers."
	echo "TLS: certificate ECDSA P-256 (the same file on both); the client verifies it and offers the key exchanges: $CURVES."
	[ "$DOVECOT_REUSE" = 1 ] && echo "Dovecot (reuse): the same Dovecot with service pop3 { service_count = 1000; process_min_avail = 4 } (sessions only)."
	echo "Runs: ROUNDS=$ROUNDS DURATION=$DURATION CONC=$CONC RETR_CONC=$RETR_CONC CORPUS_COUNT=$CORPUS_COUNT BIG=$BIG BIG_CRLF=$BIG_CRLF BIGBOX=$BIGBOX IDLE=$IDLE"
	echo "postie: postie serve for every scenario."
	echo
	"$BIN" bench report "$RESULTS"
} | tee "$OUT/report.md"
