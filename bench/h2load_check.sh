#!/usr/bin/env bash
# Cross-checks `quiver bench` against an independent load generator, h2load (Debian
# nghttp2-client), on the same running server and the same request: one query per call, 64 calls
# in flight on one connection. h2load only checks HTTP status 200, not grpc-status, so the script
# first makes sure the request succeeds through `quiver bench`.
#
#   bench/h2load_check.sh HOST:PORT COLLECTION QUERIES.fvecs [NPROBE] [SECONDS]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
target=$1 coll=$2 queries=$3 nprobe=${4:-16} secs=${5:-5}
command -v h2load >/dev/null || { echo "h2load_check.sh: install nghttp2-client (apt-get install nghttp2-client)" >&2; exit 2; }
body=$(mktemp)
trap 'rm -f "$body"' EXIT
# The first query as a SearchRequest (protobuf wire format, by hand), framed for gRPC:
# 1 byte "not compressed", 4 bytes big-endian length, the message.
python3 - "$queries" "$coll" "$nprobe" "$body" <<'PY'
import struct, sys
path, coll, nprobe, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with open(path, "rb") as f:
    d = struct.unpack("<i", f.read(4))[0]
    q = f.read(4 * d)
def varint(n):
    b = bytearray()
    while n >= 0x80:
        b.append((n & 0x7F) | 0x80); n >>= 7
    b.append(n); return bytes(b)
c = coll.encode()
msg = b"\x0a" + varint(len(c)) + c + b"\x12" + varint(len(q)) + q
msg += b"\x18" + varint(d) + b"\x20" + varint(10) + b"\x28" + varint(nprobe)
open(out, "wb").write(b"\x00" + struct.pack(">I", len(msg)) + msg)
PY
echo "== quiver bench: 1 query per call, 64 in flight, 1 connection, ${secs} s"
"$repo/build/bin/quiver" --server "$target" bench "$coll" --queries "$queries" --nprobe "$nprobe" \
  --concurrency 64 --batch 1 --duration "$secs" --warmup 1 | sed -n 2,3p
# h2load counts requests, not time: aim at the same duration from quiver bench's rate.
n=$("$repo/build/bin/quiver" --server "$target" bench "$coll" --queries "$queries" --nprobe "$nprobe" \
    --concurrency 64 --batch 1 --duration 1 --warmup 0.2 --json |
    python3 -c "import json,sys; print(int(json.load(sys.stdin)['calls_per_s'] * $secs))")
echo "== h2load: the same request, $n calls, 64 streams in flight on 1 connection"
h2load -n "$n" -c 1 -m 64 -t 1 -H 'content-type: application/grpc' -H 'te: trailers' \
  -d "$body" "http://$target/quiver.v1.Retrieval/Search" |
  grep -E "finished in|requests:|status codes|time for request"
