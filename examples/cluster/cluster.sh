#!/usr/bin/env bash
# cluster.sh: a postie cluster on loopback, to try out scale-out and for the
# tests: one PostgreSQL server, two `postie serve` nodes sharing it as their
# store, and HAProxy in front of them (TCP mode, round-robin, each node's
# /readyz as its health check). Every port is a free one; nothing listens
# beyond 127.0.0.1.
#
#   cluster.sh start DIR   start everything, with its state in DIR
#   cluster.sh stop DIR    stop everything started in DIR, and remove the
#                          database
#
# start writes DIR/cluster.env (shell syntax) and prints it:
#
#   POP3            HAProxy's POP3 address: what clients connect to
#   LMTP            HAProxy's LMTP address, round-robin over both nodes
#   NODEn_POP3      node n's own POP3 address (n = 1, 2)
#   NODEn_LMTP      node n's LMTP address: what an MTA delivers into
#   NODEn_ADMIN     node n's admin listener (/metrics, /healthz, /readyz)
#   NODEn_PID       node n's process; NODEn_CONFIG its config file
#   HAPROXY_PID, HAPROXY_STATS (HAProxy's stats page), PG_HOST (the
#   directory of PostgreSQL's socket), DSN
#
# The users are DIR/passwd, shared by both nodes: create it before start,
# or add users afterwards and send SIGHUP to both nodes:
#
#   postie user add --config "$NODE1_CONFIG" alice
#   kill -HUP "$NODE1_PID" "$NODE2_PID"
#
# Environment:
#   POSTIE          the postie binary (default: postie on PATH)
#   PG_BINDIR       PostgreSQL's server programs (default: the newest
#                   /usr/lib/postgresql/*/bin)
#   POSTIE_LEASE    storage.postgres_lease of the nodes (default 30s)
#   POSTIE_TIMEOUT  storage.postgres_timeout of the nodes (default 10s)
#   PROXY_PROTOCOL  1: HAProxy sends the client's address in a PROXY v2
#                   header (send-proxy-v2), the nodes trust 127.0.0.1 for
#                   it (trusted_proxies); then every connection from
#                   loopback to a node's POP3 or LMTP port must go through
#                   HAProxy (default 0)
#
# Run as root, PostgreSQL runs as the user postgres and the nodes as root
# (server.user = "root"): fine for a try on a laptop, never in production
# (see docs/scale-out.md).
set -euo pipefail

die() { echo "cluster.sh: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: cluster.sh start|stop DIR"
cmd=$1
dir=$2
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
postie=${POSTIE:-postie}
lease=${POSTIE_LEASE:-30s}
timeout=${POSTIE_TIMEOUT:-10s}
proxy=${PROXY_PROTOCOL:-0}

pg_bindir() {
	if [ -n "${PG_BINDIR:-}" ]; then
		echo "$PG_BINDIR"
		return
	fi
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	[ -n "$d" ] && [ -x "$d/postgres" ] || die "PostgreSQL server programs not found (install postgresql, or set PG_BINDIR)"
	echo "$d"
}

# as_pg runs a PostgreSQL program: as the user postgres when we are root
# (the server refuses to run as root).
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# free_port prints a TCP port free on 127.0.0.1 now.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_log FILE PATTERN PID: waits until FILE has a line matching PATTERN
# (grep -E), failing if PID exits first or after 60 s.
wait_log() {
	local i
	for ((i = 0; i < 600; i++)); do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || { tail -n 20 "$1" >&2; die "process $3 exited (log: $1)"; }
		sleep 0.1
	done
	die "timed out waiting for /$2/ in $1"
}

# addr FILE PROTO prints the address a node logged for PROTO.
addr() {
	sed -nE "s/.*msg=listening proto=$2 addr=([^ ]+).*/\1/p" "$1" | head -n 1
}

stop_pid() { # PIDFILE: SIGTERM, then SIGKILL after 10 s
	local f=$1 pid i
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	if kill -TERM "$pid" 2>/dev/null; then
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

start() {
	[ -f "$dir/cluster.env" ] && die "$dir already holds a cluster (cluster.sh stop $dir first)"
	command -v haproxy >/dev/null || die "haproxy not found (install haproxy)"
	command -v "$postie" >/dev/null || die "postie binary $postie not found (set POSTIE)"
	local bin pg dsn
	bin=$(pg_bindir)

	# PostgreSQL, on a Unix socket only, in a directory of its own that
	# the user postgres can reach.
	pg=$(mktemp -d /tmp/postie-cluster-pg.XXXXXX)
	echo "$pg" >"$dir/pg.path"
	[ "$(id -u)" = 0 ] && chown postgres: "$pg"
	as_pg "$bin/initdb" -D "$pg/data" -U postgres --auth=trust -E UTF8 --locale=C --no-instructions >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; die "initdb failed"; }
	as_pg "$bin/pg_ctl" -D "$pg/data" -l "$pg/postgres.log" -w -s \
		-o "-c listen_addresses='' -c unix_socket_directories='$pg' -c fsync=on -c max_connections=100" start ||
		{ cat "$pg/postgres.log" >&2; die "PostgreSQL did not start"; }
	as_pg "$bin/psql" -h "$pg" -U postgres -q -c "CREATE DATABASE postie" postgres >/dev/null
	dsn="host=$pg user=postgres dbname=postie"

	[ -f "$dir/passwd" ] || install -m 0600 /dev/null "$dir/passwd"
	local server=""
	[ "$(id -u)" = 0 ] && server=$'[server]\nuser = "root"'

	local n top="" send=""
	if [ "$proxy" = 1 ]; then
		top='trusted_proxies = ["127.0.0.1"]'
		send=" send-proxy-v2"
	fi
	for n in 1 2; do
		mkdir -p "$dir/node$n"
		cat >"$dir/node$n/postie.toml" <<CONF
data_dir = "$dir/node$n"
$top
[log]
level = "info"
[pop3]
listen = ["127.0.0.1:0"]
hostname = "node$n"
[lmtp]
listen = ["127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"
[auth]
passwd_file = "$dir/passwd"
[storage]
backend = "postgres"
postgres_dsn = "$dsn"
postgres_lease = "$lease"
postgres_timeout = "$timeout"
$server
CONF
		"$postie" serve --config "$dir/node$n/postie.toml" </dev/null >"$dir/node$n/log" 2>&1 &
		echo $! >"$dir/node$n/pid"
	done
	for n in 1 2; do
		wait_log "$dir/node$n/log" 'msg="postie started"' "$(cat "$dir/node$n/pid")"
	done

	# HAProxy: round-robin over the nodes, a node whose /readyz fails
	# (draining, or its database out of reach) taken out, a connection
	# refused by a dead node tried again on the other.
	local try port lmtp stats
	for try in 1 2 3; do
		port=$(free_port)
		lmtp=$(free_port)
		stats=$(free_port)
		cat >"$dir/haproxy.cfg" <<CONF
global
	maxconn 2000
defaults
	mode tcp
	timeout connect 2s
	timeout client 15m
	timeout server 15m
	retries 3
	option redispatch
frontend pop3
	bind 127.0.0.1:$port
	default_backend nodes
backend nodes
	balance roundrobin
	option httpchk GET /readyz
	default-server inter 500ms fall 2 rise 1
	server node1 $(addr "$dir/node1/log" pop3) check port $(addr "$dir/node1/log" admin | sed 's/.*://')$send
	server node2 $(addr "$dir/node2/log" pop3) check port $(addr "$dir/node2/log" admin | sed 's/.*://')$send
frontend lmtp
	bind 127.0.0.1:$lmtp
	default_backend lmtp
backend lmtp
	balance roundrobin
	option httpchk GET /readyz
	default-server inter 500ms fall 2 rise 1
	server node1 $(addr "$dir/node1/log" lmtp) check port $(addr "$dir/node1/log" admin | sed 's/.*://')$send
	server node2 $(addr "$dir/node2/log" lmtp) check port $(addr "$dir/node2/log" admin | sed 's/.*://')$send
frontend stats
	mode http
	bind 127.0.0.1:$stats
	stats enable
	stats uri /
CONF
		haproxy -f "$dir/haproxy.cfg" -db </dev/null >"$dir/haproxy.log" 2>&1 &
		echo $! >"$dir/haproxy.pid"
		local i up=false
		for ((i = 0; i < 100; i++)); do
			kill -0 "$(cat "$dir/haproxy.pid")" 2>/dev/null || break
			if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
				up=true
				break
			fi
			sleep 0.1
		done
		$up && break
		rm -f "$dir/haproxy.pid" # a port taken meanwhile: another
	done
	$up || { cat "$dir/haproxy.log" >&2; die "HAProxy did not start"; }

	local env="$dir/cluster.env.tmp"
	{
		echo "POP3=127.0.0.1:$port"
		echo "LMTP=127.0.0.1:$lmtp"
		for n in 1 2; do
			echo "NODE${n}_POP3=$(addr "$dir/node$n/log" pop3)"
			echo "NODE${n}_LMTP=$(addr "$dir/node$n/log" lmtp)"
			echo "NODE${n}_ADMIN=$(addr "$dir/node$n/log" admin)"
			echo "NODE${n}_PID=$(cat "$dir/node$n/pid")"
			echo "NODE${n}_CONFIG=$dir/node$n/postie.toml"
		done
		echo "HAPROXY_PID=$(cat "$dir/haproxy.pid")"
		echo "HAPROXY_STATS=http://127.0.0.1:$stats/"
		echo "PG_HOST=$pg"
		echo "DSN='$dsn'"
	} >"$env"
	mv "$env" "$dir/cluster.env"
	cat "$dir/cluster.env"
}

stop() {
	stop_pid "$dir/haproxy.pid"
	stop_pid "$dir/node1/pid"
	stop_pid "$dir/node2/pid"
	if [ -f "$dir/pg.path" ]; then
		local pg
		pg=$(cat "$dir/pg.path")
		case $pg in /tmp/postie-cluster-pg.*) ;; *) die "$dir/pg.path: unexpected $pg" ;; esac
		if [ -d "$pg/data" ]; then
			as_pg "$(pg_bindir)/pg_ctl" -D "$pg/data" -m fast -w -s stop >/dev/null 2>&1 || true
		fi
		rm -rf "$pg"
		rm -f "$dir/pg.path"
	fi
	rm -f "$dir/cluster.env"
}

case $cmd in
start) start ;;
stop) stop ;;
*) die "usage: cluster.sh start|stop DIR" ;;
esac
