#!/bin/sh
# demo.sh - see a backup happen on this machine: installs what is missing
# (tools/deps.sh --demo), builds, starts a local Azurite and the MongoDB-wire
# test server with sample data, runs one backup and lists the set it made.
#
# Both servers are left running, so that the set can be listed, verified and
# restored and the daemon tried against them; the commands are printed at
# the end.  `sh tools/demo.sh stop` stops them.  Everything lives under
# ./demo, which a second run replaces.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
demo=$top/demo
py=/usr/bin/python3

# is_ours PIDFILE WORD: the pid in PIDFILE is alive and its command line
# still has WORD in it; a pid of a process long gone may have been reused.
is_ours() {
	pid=$(cat "$1" 2>/dev/null) || return 1
	case $pid in ''|*[!0-9]*) return 1 ;; esac
	tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

# stop_servers: stop what an earlier run left running (and a daemon started
# by hand with the demo's configuration), and forget their pid files.
stop_servers() {
	for what in azurite:azurite mongod:fake_mongod.py run/mongo-azure-backupd:mongo-azure-backupd; do
		f=$demo/${what%%:*}.pid
		if is_ours "$f" "${what#*:}"; then
			echo "demo.sh: stopping ${what#*:} (pid $pid)"
			kill "$pid" 2>/dev/null || true
			i=0
			while [ -d "/proc/$pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
			[ ! -d "/proc/$pid" ] || kill -9 "$pid" 2>/dev/null || true
		fi
		rm -f "$f"
	done
}

case ${1-} in
stop) stop_servers; exit 0 ;;
"") ;;
*) echo "usage: sh tools/demo.sh [stop]" >&2; exit 2 ;;
esac

sh tools/deps.sh --demo
# A checkout updated since its last autoreconf (configure.ac newer than
# configure) gets a fresh one: a stale configure may name moved sources.
if [ ! -x configure ] || [ -n "$(find configure.ac -newer configure)" ]; then autoreconf -fi; fi
mkdir -p build
(cd build && { [ -f Makefile ] || ../configure; } && make -j"$(nproc 2>/dev/null || echo 2)")

stop_servers
rm -rf "$demo"
mkdir -p "$demo/state"

# Until the end, a failure stops what was started; then the servers stay.
keep=no
started=""
on_exit() {
	[ $keep = yes ] && return 0
	for pid in $started; do kill "$pid" 2>/dev/null || true; done
	rm -f "$demo/azurite.pid" "$demo/mongod.pid"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

wait_for_line() { # file pattern
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 300 ]; then echo "demo.sh: $1 never said '$2'" >&2; cat "$1" >&2; exit 1; fi
		sleep 0.1
	done
}

# The servers outlive this script: no terminal to read, none to hang up on.
echo "== starting Azurite (Microsoft's Blob Storage emulator)"
nohup node tests/azurite/node_modules/azurite/dist/src/blob/main.js --blobHost 127.0.0.1 \
	--blobPort 0 --inMemoryPersistence --silent \
	--disableTelemetry < /dev/null > "$demo/azurite.log" 2>&1 &
started="$started $!"
echo $! > "$demo/azurite.pid"
wait_for_line "$demo/azurite.log" "successfully listens on"
blob_port=$(sed -n 's/.*listens on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$demo/azurite.log" | head -1)

echo "== starting the MongoDB-wire test server"
nohup $py tests/fake_mongod.py --port 0 < /dev/null > "$demo/mongod.log" 2>&1 &
started="$started $!"
echo $! > "$demo/mongod.pid"
wait_for_line "$demo/mongod.log" "^listening"
mongo_port=$(sed -n 's/^listening 127.0.0.1:\([0-9]*\)/\1/p' "$demo/mongod.log")

conn="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:$blob_port/devstoreaccount1;"
(umask 077 && printf '%s\n' "$conn" > "$demo/azure-connection-string")

echo "== loading sample data"
$py - "$mongo_port" <<'PY'
import datetime, random, sys
import pymongo
client = pymongo.MongoClient(f"mongodb://127.0.0.1:{sys.argv[1]}/")
db = client.tralivali
rnd = random.Random(1)
now = datetime.datetime(2026, 11, 26, tzinfo=datetime.timezone.utc)
users = [{"name": f"user{i}", "email": f"user{i}@example.com",
          "created": now - datetime.timedelta(days=rnd.randrange(900)),
          "profile": {"bio": "hello " * rnd.randrange(1, 20), "lang": rnd.choice(["en", "de", "sr"])}}
         for i in range(20000)]
db.users.insert_many(users)
db.users.create_index("email", unique=True)
db.conversations.insert_many([{"title": f"chat {i}", "members": [f"user{rnd.randrange(20000)}" for _ in range(3)]}
                              for i in range(3000)])
db.messages.insert_many([{"conversation": rnd.randrange(3000), "text": "message text " * rnd.randrange(1, 30),
                          "sent": now - datetime.timedelta(seconds=rnd.randrange(10**7))} for _ in range(60000)])
db.messages.create_index([("conversation", 1), ("sent", -1)])
db.invites.insert_many([{"code": f"{rnd.getrandbits(64):016x}", "used": False} for _ in range(500)])
db.create_collection("files")
for name in db.list_collection_names():
    print(f"   {name}: {db[name].estimated_document_count()} documents")
PY

# Socket, pid file and state under ./demo, so that neither root nor the
# installed paths are needed; no catch-up, so the daemon started by hand
# waits for its schedule (or `run`).
conf=$demo/mongo-azure-backup.conf
cat > "$conf" <<CONF
[schedule]
cron = 0 3 * * *
catch_up = no

[mongodb]
uri = mongodb://127.0.0.1:$mongo_port/
database = tralivali
collections = users, conversations, messages, invites, files

[azure]
connection_string_file = $demo/azure-connection-string
container = backups

[state]
dir = $demo/state

[control]
socket = $demo/run/control.sock

[daemon]
pid_file = $demo/run/mongo-azure-backupd.pid

[log]
target = stderr
CONF

# The programs from the build, not installed ones: the helpers are found
# through MAB_LIBEXECDIR.
PATH=$top/build/src:$PATH
MAB_LIBEXECDIR=$top/build/src
export PATH MAB_LIBEXECDIR

echo "== checking the configuration: mongo-azure-backupd -t"
mongo-azure-backupd -t -c "$conf"

echo "== running one backup: mongo-azure-backupd --once"
status=0
mongo-azure-backupd -c "$conf" --once || status=$?
if [ $status != 0 ]; then
	echo "demo.sh: the backup failed (exit status $status); its log is above" >&2
	exit $status
fi

echo "== the sets in container 'backups': mongo-azure-backupctl list"
mongo-azure-backupctl -c "$conf" list

keep=yes
cat <<EOF

== Azurite (pid $(cat "$demo/azurite.pid"), http://127.0.0.1:$blob_port) and the MongoDB-wire
   test server (pid $(cat "$demo/mongod.pid"), mongodb://127.0.0.1:$mongo_port/) keep running.

Try, in a shell:

  export PATH="$top/build/src:\$PATH" MAB_LIBEXECDIR="$top/build/src"
  mongo-azure-backupctl -c $conf list
  mongo-azure-backupctl -c $conf verify latest
  mongo-azure-backupctl -c $conf restore latest --to-dir $demo/restore

The daemon in the foreground (Ctrl-C stops it):

  mongo-azure-backupd -c $conf -f

and, from another shell with the same export:

  mongo-azure-backupctl -c $conf status
  mongo-azure-backupctl -c $conf run --wait

Stop the servers (and a daemon left running):

  sh $top/tools/demo.sh stop
EOF
