#!/usr/bin/env bash
# A throwaway PostgreSQL for drover's store tests.
#
#   eval "$(scripts/postgres.sh [start] [DIR])"   # start (or reuse) and export DROVER_TEST_POSTGRES
#   scripts/postgres.sh stop [DIR]                # stop it
#   scripts/postgres.sh status [DIR]              # exit 0 if running, printing the export line
#
# DIR defaults to /tmp/drover-pg. Idempotent: a cluster already running in
# DIR is reused; a stopped one is restarted. PostgreSQL is installed from
# Debian (apt-get install postgresql) when no initdb is found. The cluster
# listens on 127.0.0.1 on a free port, trusts local connections (it holds
# only test data), runs with fsync off and belongs to a non-root user
# (postgres refuses to run as root). Only the export line goes to stdout.
set -euo pipefail

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

cmd=start
case "${1:-}" in
start | stop | status)
	cmd=$1
	shift
	;;
esac
dir=${1:-/tmp/drover-pg}
data=$dir/data
db=drover

# bindir prints the directory holding a working initdb, pg_ctl and postgres.
bindir() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) $(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)"); do
		if [[ -x $d/initdb && -x $d/pg_ctl ]] && "$d/initdb" --version >/dev/null 2>&1; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

install_postgres() {
	log "PostgreSQL not found; installing Debian's postgresql"
	local sudo=""
	[[ $(id -u) -ne 0 ]] && sudo="sudo"
	$sudo apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >&2
}

# The cluster's owner: ourselves unless we are root, then the postgres
# system user (created by the package, or here).
owner() {
	if [[ $(id -u) -ne 0 ]]; then
		id -un
		return
	fi
	if ! id postgres >/dev/null 2>&1; then
		log "creating system user postgres"
		useradd --system --home-dir "$dir" --shell /usr/sbin/nologin postgres >&2
	fi
	echo postgres
}

# as runs a command as the cluster's owner, from a directory it can read.
as() {
	if [[ $(id -u) -ne 0 ]]; then
		(cd "$dir" && "$@")
	else
		(cd "$dir" && runuser -u "$user" -- "$@")
	fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
	local p
	for p in $(seq 54329 54429); do
		if port_free "$p"; then
			echo "$p"
			return 0
		fi
	done
	die "no free port in 54329-54429"
}

running() { [[ -f $data/postmaster.pid ]] && as "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; }

export_line() {
	echo "export DROVER_TEST_POSTGRES=postgres://postgres@127.0.0.1:$(cat "$dir/port")/$db?sslmode=disable"
}

bin=$(bindir || true)
if [[ -z $bin ]]; then
	[[ $cmd == start ]] || die "PostgreSQL is not installed"
	install_postgres
	bin=$(bindir) || die "initdb still not found after installing postgresql"
fi
user=$(owner)

case $cmd in
stop)
	if [[ -d $data ]] && running; then
		as "$bin/pg_ctl" -D "$data" -m fast -w stop >&2
	else
		log "not running in $dir"
	fi
	exit 0
	;;
status)
	running || die "not running in $dir"
	export_line
	exit 0
	;;
esac

mkdir -p "$dir"
chown "$user" "$dir"
chmod 0700 "$dir"
if [[ ! -f $data/PG_VERSION ]]; then
	log "initdb $data ($($bin/postgres --version))"
	rm -rf "$data"
	as "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
		die "initdb failed; see $dir/initdb.log"
fi
if ! running; then
	port=$(free_port)
	echo "$port" >"$dir/port"
	log "starting on 127.0.0.1:$port (log: $dir/postgres.log)"
	as "$bin/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 start -o \
		"-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB" >&2 ||
		die "postgres did not start; see $dir/postgres.log"
fi
port=$(cat "$dir/port")
if ! as "$bin/psql" -X -q -h "$dir" -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
	as "$bin/psql" -X -q -h "$dir" -p "$port" -U postgres -d postgres -c "CREATE DATABASE $db" >&2
fi
export_line
