#!/usr/bin/env bash
# Runs every check of postie: gofmt, go vet, staticcheck, the tests with the
# race detector, and a short run of every fuzz target.
#
# Installs the real peers the tests talk to (curl, Python, Dovecot,
# fetchmail, mpop, getmail6, testssl.sh, swaks, Postfix, Dovecot's LMTP, the PostgreSQL
# server, HAProxy, Chromium) with apt-get when they are missing and we are root, and
# extracts Courier's POP3 server (which cannot be installed beside Dovecot's). Postfix is
# installed unconfigured (the tests run private instances): no system mail
# service is set up. The tests run their own PostgreSQL servers on Unix
# sockets in temporary directories, whatever the package set up.
# With CI=true, POSTIE_REQUIRE_PEERS=1 is exported: tests then fail instead
# of skipping when a peer is missing, and a missing staticcheck fails too.
#
# Environment: FUZZTIME (default 10s per target), STATICCHECK_VERSION
# (default the version verified with this Go), CI.
set -euo pipefail
cd "$(dirname "$0")"
exec </dev/null # never wait for input

ci=false
if [ "${CI:-}" = true ]; then
	ci=true
	export POSTIE_REQUIRE_PEERS=1
fi
fuzztime=${FUZZTIME:-10s}
staticcheck_version=${STATICCHECK_VERSION:-v0.8.2} # staticcheck 2026.2.2, works with go1.26

# Each stage's wall time is printed when the next one starts, and all of
# them again at the end (or when a stage fails), so a slow stage shows.
started=$SECONDS
stage=""
stage_start=$SECONDS
timings=()
end_stage() {
	if [ -n "$stage" ]; then
		local took=$((SECONDS - stage_start))
		timings+=("$(printf '%5ds  %s' "$took" "$stage")")
		printf '<== %s: %ds\n' "$stage" "$took"
	fi
	stage=""
}
step() {
	end_stage
	stage="$*"
	stage_start=$SECONDS
	printf '\n==> %s\n' "$*"
}
report_timings() {
	end_stage
	printf '\nwall time of each stage:\n'
	printf '  %s\n' "${timings[@]}"
	printf '%7ds  in all\n' "$((SECONDS - started))"
}
trap report_timings EXIT
warn() { printf 'test.sh: warning: %s\n' "$*" >&2; }
fail() {
	printf 'test.sh: FAIL: %s\n' "$*" >&2
	exit 1
}

# --- peers -----------------------------------------------------------------
missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v fetchmail >/dev/null 2>&1 || missing+=(fetchmail)
command -v mpop >/dev/null 2>&1 || missing+=(mpop)
command -v getmail >/dev/null 2>&1 || missing+=(getmail6)
command -v neomutt >/dev/null 2>&1 || missing+=(neomutt)
command -v movemail >/dev/null 2>&1 || missing+=(mailutils)
command -v fdm >/dev/null 2>&1 || missing+=(fdm)
command -v testssl >/dev/null 2>&1 || missing+=(testssl.sh)
[ -x /usr/sbin/dovecot ] || missing+=(dovecot-core)
[ -x /usr/lib/dovecot/pop3 ] || missing+=(dovecot-pop3d)
[ -x /usr/lib/dovecot/lmtp ] || missing+=(dovecot-lmtpd)
command -v swaks >/dev/null 2>&1 || missing+=(swaks)
perl -MNet::SSLeay -MIO::Socket::SSL -e1 >/dev/null 2>&1 || missing+=(libnet-ssleay-perl libio-socket-ssl-perl) # swaks STARTTLS
[ -x /usr/sbin/postfix ] || missing+=(postfix)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql) # store/pgstore, initdb'd per test binary
command -v systemd-socket-activate >/dev/null 2>&1 || missing+=(systemd) # socket activation tests, systemd-analyze
command -v setfacl >/dev/null 2>&1 || missing+=(acl) # internal/posixacl, config check's ACL cases
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy) # PROXY protocol and cluster tests
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-liberation) # browser tests of the web pages (a font for the screenshots)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		step "installing test peers: ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		# Postfix "No configuration": nothing listens on port 25 after.
		echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
		if ! { apt-get update -qq >/dev/null &&
			apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
			if $ci; then fail "could not install ${missing[*]}"; fi
			warn "could not install ${missing[*]}; tests that need them will skip"
		fi
	elif $ci; then
		fail "missing test peers ${missing[*]} (run as root to install them)"
	else
		warn "missing test peers ${missing[*]} (run as root to install them); tests that need them will skip"
	fi
fi

# Courier's POP3 server (cmd/postie TestCourierTakeover) cannot be installed
# beside Dovecot's (courier-pop conflicts with dovecot-pop3d): its packages
# are downloaded and extracted into a cache directory instead, and the
# tests find it through POSTIE_COURIER_ROOT.
courier_pkgs=(courier-pop courier-base courier-authlib libcourier-unicode4 libidn12)
extract_courier() { # DIR: the packages downloaded into DIR, extracted into DIR/root
	local deb
	(cd "$1" && apt-get download -qq "${courier_pkgs[@]}" >/dev/null 2>&1) ||
		{ [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null &&
			(cd "$1" && apt-get download -qq "${courier_pkgs[@]}" >/dev/null 2>&1); } || return 1
	mkdir -p "$1/root" || return 1
	for deb in "$1"/*.deb; do
		dpkg -x "$deb" "$1/root" || return 1
	done
	[ -x "$1/root/usr/lib/courier/courier/courierpop3d" ]
}
if [ -z "${POSTIE_COURIER_ROOT:-}" ] && [ ! -x /usr/lib/courier/courier/courierpop3d ]; then
	# As root, the tests run Courier as the mail user, who must reach it:
	# not under /root.
	if [ "$(id -u)" = 0 ]; then
		courier_root=/var/cache/postie-test/courier
	else
		courier_root="${XDG_CACHE_HOME:-$HOME/.cache}/postie-test/courier"
	fi
	if [ ! -x "$courier_root/usr/lib/courier/courier/courierpop3d" ]; then
		step "extracting Courier's POP3 server: ${courier_pkgs[*]}"
		courier_tmp=$(mktemp -d)
		if extract_courier "$courier_tmp"; then
			rm -rf "$courier_root"
			mkdir -p -m 0755 "$(dirname "$courier_root")"
			chmod 0755 "$courier_tmp/root"
			mv "$courier_tmp/root" "$courier_root"
		else
			if $ci; then fail "could not download and extract ${courier_pkgs[*]}"; fi
			warn "could not download and extract ${courier_pkgs[*]}; TestCourierTakeover will skip"
		fi
		rm -rf "$courier_tmp"
	fi
	if [ -x "$courier_root/usr/lib/courier/courier/courierpop3d" ]; then
		export POSTIE_COURIER_ROOT="$courier_root"
	fi
fi

# --- static checks ---------------------------------------------------------
step "gofmt -l"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	printf '%s\n' "$unformatted" >&2
	fail "files above need gofmt -w"
fi

step "go vet ./..."
go vet ./...

step "staticcheck ./..."
staticcheck=$(command -v staticcheck || true)
if [ -z "$staticcheck" ]; then
	gobin=$(go env GOBIN)
	[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
	if [ -x "$gobin/staticcheck" ] ||
		go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"; then
		staticcheck="$gobin/staticcheck"
	fi
fi
if [ -n "$staticcheck" ]; then
	"$staticcheck" ./...
elif $ci; then
	fail "staticcheck could not be installed"
else
	warn "staticcheck could not be installed; skipped"
fi

# --- tests -----------------------------------------------------------------
step "systemd units (dist/systemd/check.sh)"
dist/systemd/check.sh

step "go test -race -count=1 ./..."
# -timeout is per test binary and counts the postie binaries that
# end-to-end TestMains build: cmd/postie alone took 517 s on a cold cache
# with the machine loaded, so 10m left too little room.
go test -race -count=1 -timeout 15m ./...

# --- fuzzing ---------------------------------------------------------------
# fuzz_target DIR TARGET runs one target. Go's fuzzer sometimes ends a run
# with "context deadline exceeded" at the end of -fuzztime without having
# found anything (no "Failing input written"): such a run is tried once
# more. A real failure fails at once.
fuzz_target() {
	local out status attempt
	out=$(mktemp)
	for attempt in 1 2; do
		status=0
		go test -run '^$' -fuzz "^${2}\$" -fuzztime "$fuzztime" "$1" >"$out" 2>&1 || status=$?
		cat "$out"
		if [ "$status" = 0 ]; then
			rm -f "$out"
			return 0
		fi
		if grep -q 'Failing input written' "$out" || ! grep -q 'context deadline exceeded' "$out"; then
			break
		fi
		[ "$attempt" = 1 ] && warn "$2: fuzzer ended with \"context deadline exceeded\" and no failing input; retrying once"
	done
	rm -f "$out"
	fail "fuzzing $2 in $1"
}
# Every "func FuzzX(" in a _test.go file, run for $fuzztime in its package.
step "fuzzing, $fuzztime per target"
{ grep -rE --include='*_test.go' --exclude-dir=.git --exclude-dir=testdata '^func Fuzz[A-Za-z0-9_]*\(' . || true; } |
	sed -E 's|^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*|\1 \2|' |
	sort -u |
	while read -r dir target; do
		echo "--- $target in $dir"
		fuzz_target "$dir" "$target"
	done

end_stage
echo
echo "==> all checks passed"
