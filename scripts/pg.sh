#!/usr/bin/env bash
# pg.sh — make a local PostgreSQL available for tests and print its DSN.
#
#   DSN=$(scripts/pg.sh)            # install if needed, start, create role+db, print DSN
#   SHIPYARD_TEST_PG_DSN=$DSN go test ./...
#   scripts/pg.sh stop              # stop the server this script started
#
# Only the DSN goes to stdout; everything else goes to stderr. Idempotent and
# fast when the server already runs (one psql round trip). Works as root (the
# server runs as the `postgres` user) or as an ordinary user (runs as that user),
# with no systemd: its own cluster in its own data directory, started with
# pg_ctl, so the distribution's cluster (if any) is left alone.
#
# Settings (environment):
#   SHIPYARD_PG_DIR   base directory           (default /var/tmp/shipyard-pg)
#   SHIPYARD_PG_PORT  TCP port on 127.0.0.1    (default 55432)
#   SHIPYARD_PG_USER / SHIPYARD_PG_PASSWORD / SHIPYARD_PG_DB
#                     test role and database   (default shipyard / shipyard / shipyard_test)
#
# The cluster is tuned for tests, not for data you care about: fsync off.
set -euo pipefail

BASE=$(realpath -m "${SHIPYARD_PG_DIR:-/var/tmp/shipyard-pg}")
PORT=${SHIPYARD_PG_PORT:-55432}
ROLE=${SHIPYARD_PG_USER:-shipyard}
PASS=${SHIPYARD_PG_PASSWORD:-shipyard}
DB=${SHIPYARD_PG_DB:-shipyard_test}
DATA=$BASE/data
SOCK=$BASE/run
LOG=$BASE/server.log

log() { echo "pg.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# Identifiers and the password are interpolated into SQL and a URL: keep them plain.
for v in "$ROLE" "$DB" "$PASS"; do
	[[ $v =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "role, database and password must match [A-Za-z_][A-Za-z0-9_]*: got '$v'"
done
[[ $PORT =~ ^[0-9]+$ ]] || die "bad port '$PORT'"

DSN="postgres://$ROLE:$PASS@127.0.0.1:$PORT/$DB?sslmode=disable"

pg_bindir() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
	[[ -n $d && -x $d/postgres && -x $d/initdb && -x $d/pg_ctl ]] && echo "$d"
}

# Who runs the server: initdb and postgres refuse to run as root.
if [[ $(id -u) -eq 0 ]]; then
	RUNAS=postgres
	as_pg() { runuser -u postgres -- "$@"; }
else
	RUNAS=$(id -un)
	as_pg() { "$@"; }
fi

BIN=$(pg_bindir || true)

# our_postmaster PID: PID is a live (not zombie) postgres serving our data directory.
our_postmaster() {
	local pid=$1 cmd
	[[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmd == *postgres* && $cmd == *" $DATA "* ]]
}

if [[ ${1:-} == stop ]]; then
	pid=$(head -n1 "$DATA/postmaster.pid" 2>/dev/null || true)
	if [[ -n $BIN ]] && our_postmaster "$pid"; then
		as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2
	else
		log "not running"
	fi
	exit 0
fi

# One run at a time (two `make test` in parallel must not race on initdb).
mkdir -p "$BASE"
exec 9>"$BASE/.lock"
flock 9

psql_admin() {
	"$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres -d postgres "$@"
}

# Fast path: server up and the role/database in place.
if [[ -n $BIN ]] && "$BIN/pg_isready" -q -h "$SOCK" -p "$PORT" 2>/dev/null &&
	[[ $(psql_admin -tA -c "SELECT count(*) FROM pg_database WHERE datname = '$DB'" 2>/dev/null || true) == 1 ]]; then
	echo "$DSN"
	exit 0
fi

# 1. Install Debian's PostgreSQL when absent.
if [[ -z $BIN ]]; then
	[[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed and installing needs root: apt-get install postgresql"
	log "installing postgresql (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	# We run our own cluster: keep the package from creating (and starting) its "main" one.
	if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
		mkdir -p /etc/postgresql-common
		echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
	fi
	if ! apt-get install -y -q --no-install-recommends postgresql >&2; then
		apt-get update -q >&2
		apt-get install -y -q --no-install-recommends postgresql >&2
	fi
	BIN=$(pg_bindir) || die "postgresql installed but no server binaries under /usr/lib/postgresql"
fi
if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
	useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

# 2. Our own cluster (created once).
mkdir -p "$SOCK"
if [[ $(id -u) -eq 0 ]]; then
	chown "$RUNAS": "$BASE" "$SOCK"
	[[ -d $DATA ]] && chown -R "$RUNAS": "$DATA"
fi
if [[ -f $DATA/PG_VERSION && $(cat "$DATA/PG_VERSION") != "$("$BIN/postgres" -V | sed -E 's/.* ([0-9]+).*/\1/')" ]]; then
	log "data directory $DATA is of another PostgreSQL major version; recreating it"
	rm -rf "$DATA"
fi
if [[ ! -f $DATA/PG_VERSION ]]; then
	log "initdb $DATA"
	rm -rf "$DATA"
	mkdir -p "$DATA"
	[[ $(id -u) -eq 0 ]] && chown "$RUNAS": "$DATA"
	as_pg "$BIN/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
		--auth-local=trust --auth-host=scram-sha-256 >&2
	cat >>"$DATA/postgresql.conf" <<EOF
# --- scripts/pg.sh: a throwaway cluster for tests ---
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
max_connections = 400
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
fi

# 3. Start it, unless our server already runs. "Runs" is decided by the process,
# not by postmaster.pid alone: a machine handed over after its processes were
# ended keeps a stale pid file whose pid may be dead, a zombie, or reused by an
# unrelated process (pg_ctl status and the server's own check would take that
# for a running server and refuse to start).
ready() { "$BIN/pg_isready" -q -h "$SOCK" -p "$PORT" 2>/dev/null; }
if ! ready; then
	pid=$(head -n1 "$DATA/postmaster.pid" 2>/dev/null || true)
	if our_postmaster "$pid"; then
		log "PostgreSQL (pid $pid) is starting; waiting"
		for _ in $(seq 600); do
			ready && break
			our_postmaster "$pid" || break
			sleep 0.1
		done
		ready || { tail -n 30 "$LOG" >&2 || true; die "PostgreSQL (pid $pid) does not accept connections"; }
	else
		rm -f "$DATA/postmaster.pid" "$SOCK/.s.PGSQL.$PORT.lock"
		log "starting PostgreSQL on 127.0.0.1:$PORT (log: $LOG)"
		touch "$LOG"
		[[ $(id -u) -eq 0 ]] && chown "$RUNAS": "$LOG"
		# The server must not inherit our descriptors: not the lock (fd 9, it would
		# hold the lock for its lifetime) and not the caller's pipes (a caller reading
		# our output would wait for the server to exit).
		if ! (
			for fd in /proc/$BASHPID/fd/*; do
				n=${fd##*/}
				((n > 2)) && eval "exec $n>&-" 2>/dev/null
			done
			exec </dev/null >>"$LOG" 2>&1
			as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start
		); then
			tail -n 30 "$LOG" >&2 || true
			die "PostgreSQL did not start"
		fi
	fi
fi

# 4. Role and database (the role may create schemas and databases for per-test isolation).
psql_admin <<EOF >&2
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASS';
  ELSE
    ALTER ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASS';
  END IF;
END \$\$;
SELECT 'CREATE DATABASE $DB OWNER $ROLE' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB')\gexec
EOF

echo "$DSN"
