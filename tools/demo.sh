#!/bin/sh
# demo.sh - see a backup happen on this machine: installs what is missing,
# builds, starts a local Azurite and the MongoDB-wire test server with sample
# data, runs one backup and shows what landed in the container.
# Everything it starts is stopped again; files stay under ./demo.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
py=/usr/bin/python3

sh tools/deps.sh
[ -x configure ] || autoreconf -fi
mkdir -p build
(cd build && { [ -f Makefile ] || ../configure; } && make -j"$(nproc 2>/dev/null || echo 2)")

demo=$top/demo
rm -rf "$demo"
mkdir -p "$demo/state"
pids=""
cleanup() {
	for pid in $pids; do kill "$pid" 2>/dev/null || true; done
	for pid in $pids; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

wait_for_line() { # file pattern
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 300 ]; then echo "demo.sh: $1 never said '$2'" >&2; cat "$1" >&2; exit 1; fi
		sleep 0.1
	done
}

echo "== starting Azurite (Microsoft's Blob Storage emulator)"
node tests/azurite/node_modules/azurite/dist/src/blob/main.js --blobHost 127.0.0.1 \
	--blobPort 0 --inMemoryPersistence --silent \
	--disableTelemetry > "$demo/azurite.log" 2>&1 &
pids="$pids $!"
wait_for_line "$demo/azurite.log" "successfully listens on"
blob_port=$(sed -n 's/.*listens on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$demo/azurite.log" | head -1)

echo "== starting the MongoDB-wire test server"
$py tests/fake_mongod.py --port 0 > "$demo/mongod.log" 2>&1 &
pids="$pids $!"
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

cat > "$demo/mongo-azure-backup.conf" <<CONF
[mongodb]
uri = mongodb://127.0.0.1:$mongo_port/
database = tralivali
collections = users, conversations, messages, invites, files

[azure]
connection_string_file = $demo/azure-connection-string
container = backups

[state]
dir = $demo/state

[log]
target = stderr
CONF

echo "== checking the configuration"
build/src/mongo-azure-backupd -t -c "$demo/mongo-azure-backup.conf"

echo "== running one backup: mongo-azure-backupd --once"
status=0
MAB_LIBEXECDIR=$top/build/src build/src/mongo-azure-backupd -c "$demo/mongo-azure-backup.conf" --once || status=$?
echo "   exit status $status"

echo "== what landed in container 'backups' (read with Microsoft's Python SDK)"
$py - "$conn" <<'PY'
import gzip, json, sys
from azure.storage.blob import BlobServiceClient
container = BlobServiceClient.from_connection_string(sys.argv[1]).get_container_client("backups")
manifest = None
for blob in container.list_blobs(prefix="backups/"):
    print(f"   {blob.name:58} {blob.size:>9} bytes  {blob.content_settings.content_type}")
    if blob.name.endswith("/manifest.json"):
        manifest = json.loads(container.download_blob(blob.name).readall())
print(f"== manifest: complete={manifest['complete']}, run {manifest['run_id']}")
for c in manifest["collections"]:
    print(f"   {c['name']:14} {c['result']:6} {c.get('documents', '-'):>7} documents, sha256 {c.get('sha256', '-')[:16]}...")
PY
exit $status
