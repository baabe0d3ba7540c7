"""Upload throughput and completion cost against a running server (see bench/uploads.sh)."""
import concurrent.futures, json, os, random, statistics, struct, time, urllib.request, zlib

URL = os.environ["BENCH_URL"]
FILES = int(os.environ.get("BENCH_FILES", "40"))
MB = 1024 * 1024


def gql(query, variables, token=None):
    request = urllib.request.Request(f"{URL}/graphql", json.dumps({"query": query, "variables": variables}).encode(),
                                     {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})})
    body = json.load(urllib.request.urlopen(request))
    if body.get("errors"):
        raise SystemExit(f"errors: {body['errors']}")
    return body["data"]


def png_noise(side):
    """A side x side RGB PNG of random pixels, stored (zlib level 0): ~3 bytes a pixel."""
    rng = random.Random(7)
    raw = b"".join(b"\0" + rng.randbytes(side * 3) for _ in range(side))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 0)) + chunk(b"IEND", b"")


def pdf(size):
    head = b"%PDF-1.7\n"
    return head + b"0" * (size - len(head))


CREATE = """mutation($i: CreateUploadInput!) { createUpload(input: $i) { url headers { name value } upload { id } } }"""
COMPLETE = """mutation($id: ID!) { completeUpload(id: $id) { status width height variants { size } rejectReason } }"""


def ticket(token, purpose, content_type, size):
    return gql(CREATE, {"i": {"purpose": purpose, "contentType": content_type, "byteSize": size, "fileName": "f"}}, token)["createUpload"]


def put(t, data):
    request = urllib.request.Request(t["url"], data, {h["name"]: h["value"] for h in t["headers"]}, method="PUT")
    urllib.request.urlopen(request).read()


def timed(fn, items, workers):
    started = time.perf_counter()
    times = []
    def one(item):
        t0 = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - t0)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, items))
    return time.perf_counter() - started, sorted(times)


def main():
    users = []
    for n in range(4):
        email = f"bench{n}-{time.time_ns()}@example.com"
        data = gql("mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
                   {"i": {"email": email, "password": "bench-password-1"}})
        users.append(data["register"]["accessToken"])
    image = png_noise(1300)
    document = pdf(len(image))
    size_mb = len(image) / MB
    results = {"file_mb": round(size_mb, 2), "put": {}, "complete": {}, "rss_mb": None}
    rows = []
    for workers in (1, 4):
        tickets = [ticket(users[i % 4], "POST_IMAGE", "image/png", len(image)) for i in range(FILES // 2)]
        wall, times = timed(lambda t: put(t, image), tickets, workers)
        mbps = len(tickets) * size_mb / wall
        results["put"][workers] = {"files": len(tickets), "mb_per_s": round(mbps, 1), "p50_ms": round(times[len(times) // 2] * 1000, 1)}
        rows.append(f"| PUT 5 MB to the local store, {workers} at a time | {len(tickets)} | {mbps:.0f} MB/s | "
                    f"{times[len(times) // 2] * 1000:.0f} ms | {times[-1] * 1000:.0f} ms |")
        done = [(users[i % 4], t["upload"]["id"]) for i, t in enumerate(tickets)]
        def complete(item):
            token, upload_id = item
            result = gql(COMPLETE, {"id": upload_id}, token)["completeUpload"]
            assert result["status"] == "READY", result
        wall, times = timed(complete, done, workers)
        results["complete"][f"image-{workers}"] = {"per_s": round(len(done) / wall, 2), "p50_ms": round(times[len(times) // 2] * 1000, 1),
                                                  "max_ms": round(times[-1] * 1000, 1)}
        rows.append(f"| completeUpload, 5 MB PNG (1300×1300 → original + 320 + 1280 px), {workers} at a time | {len(done)} | "
                    f"{len(done) / wall:.1f} checks/s | {times[len(times) // 2] * 1000:.0f} ms | {times[-1] * 1000:.0f} ms |")
    tickets = [ticket(users[i % 4], "IDENTITY_DOCUMENT", "application/pdf", len(document)) for i in range(10)]
    for t in tickets:
        put(t, document)
    done = [(users[i % 4], t["upload"]["id"]) for i, t in enumerate(tickets)]
    def complete_doc(item):
        token, upload_id = item
        assert gql(COMPLETE, {"id": upload_id}, token)["completeUpload"]["status"] == "READY"
    wall, times = timed(complete_doc, done, 1)
    results["complete"]["pdf-1"] = {"per_s": round(len(done) / wall, 2), "p50_ms": round(times[len(times) // 2] * 1000, 1)}
    rows.append(f"| completeUpload, 5 MB PDF (first bytes sniffed, copied in the store), 1 at a time | {len(done)} | "
                f"{len(done) / wall:.1f} checks/s | {times[len(times) // 2] * 1000:.0f} ms | {times[-1] * 1000:.0f} ms |")
    pid = os.environ.get("SERVER_PID")
    if pid:
        status = open(f"/proc/{pid}/status").read()
        results["rss_mb"] = int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1]) // 1024
    os.makedirs("bench/results", exist_ok=True)
    json.dump(results, open("bench/results/uploads.json", "w"), indent=2)
    print("| operation | files | throughput | p50 | max |\n|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(f"\npeak server RSS: {results['rss_mb']} MB")


main()
