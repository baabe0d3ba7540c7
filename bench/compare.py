#!/usr/bin/env python3
"""Side by side with PostGraphile v4 (bench/compare.sh runs this).

Both servers read the same PostgreSQL database. For every page the script writes the document in
both APIs, checks on a sample of ids that both return the same rows, then loads each server with
wrk: ids drawn from a few hundred distinct values with a Zipf skew (a few hot, a long tail), and a
cold pass (each id once, on a freshly started server). Our server runs in three modes (default,
without whole responses, cache off), PostGraphile with 1 and 2 workers (the better one counts).
"""
import json, os, random, re, signal, subprocess, sys, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DB_URL = os.environ["DATABASE_URL"]
BIN = os.environ["BIN"]
OURS_PORT, PEER_PORT = int(os.environ.get("BENCH_PORT", "8400")), int(os.environ.get("PEER_PORT", "8401"))
DURATION = os.environ.get("BENCH_DURATION", "15s")
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
THREADS = 2
DISTINCT = int(os.environ.get("BENCH_DISTINCT", "300"))
ONLY = [p for p in os.environ.get("BENCH_PAGES", "").split(",") if p]
MODES = [m for m in os.environ.get("BENCH_MODES", "default,entities,off").split(",") if m]
WORK = os.environ.get("BENCH_WORK", "/tmp/mg-compare")
os.makedirs(WORK, exist_ok=True)


def sql(query):
    out = subprocess.run(["psql", DB_URL, "-Atc", query], check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line]


def post(port, body, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body.encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def body(query, variables):
    return json.dumps({"query": query, "variables": variables}, separators=(",", ":"))


# --- the pages: (our document, PostGraphile's document, how to read the rows off each answer) ---
def edges(conn):
    return [e["node"] for e in conn["edges"]]


PAGES = {}


def page(name, auth=False):
    def register(f):
        PAGES[name] = dict(f(), auth=auth)
        return f
    return register


@page("course_page")
def _():
    ours = """query($id: ID!) { course(id: $id) { id title price rating mentor { id profile { name avatar } }
      reviews(first: 5) { edges { node { id rating content } } } } }"""
    peer = """query($id: UUID!) { course(id: $id) { id title price rating mentor { id userProfileByIdentityId { name avatar } }
      reviews(first: 5, orderBy: [CREATED_AT_DESC, ID_DESC], condition: {status: "active", reviewType: "course"}) {
      nodes { id rating content } } } }"""
    return dict(
        ours=ours, peer=peer,
        ids=lambda: sql("SELECT id FROM courses WHERE status = 'published' ORDER BY current_students DESC, id"),
        read_ours=lambda d: (d["course"]["id"], d["course"]["title"], d["course"]["mentor"]["profile"]["name"],
                             [r["id"] for r in edges(d["course"]["reviews"])]),
        read_peer=lambda d: (d["course"]["id"], d["course"]["title"],
                             d["course"]["mentor"]["userProfileByIdentityId"]["name"],
                             [r["id"] for r in d["course"]["reviews"]["nodes"]]),
    )


@page("catalogue")
def _():
    # Rotates over the catalogue's first pages (by rating), as people page through it: the ids
    # here are page numbers, each resolved to the cursor of that page in each API.
    ours = """query($after: String) { courses(first: 20, after: $after, orderBy: {field: RATING, direction: DESC}) {
      edges { cursor node { id title price rating mentor { profile { name } }
      reviews(first: 3) { edges { node { id rating } } } } } } }"""
    peer = """query($after: Cursor) { courses(first: 20, after: $after, orderBy: [RATING_DESC, ID_DESC], condition: {status: "published"}) {
      edges { cursor node { id title price rating mentor { userProfileByIdentityId { name } }
      reviews(first: 3, orderBy: [CREATED_AT_DESC, ID_DESC], condition: {status: "active", reviewType: "course"}) {
      nodes { id rating } } } } } }"""
    return dict(
        ours=ours, peer=peer, paged=True,
        read_ours=lambda d: [(e["node"]["id"], [r["id"] for r in edges(e["node"]["reviews"])])
                             for e in d["courses"]["edges"]],
        read_peer=lambda d: [(e["node"]["id"], [r["id"] for r in e["node"]["reviews"]["nodes"]])
                             for e in d["courses"]["edges"]],
    )


@page("mentor_page")
def _():
    ours = """query($id: ID!) { mentor(id: $id) { id profile { name bio }
      reviews(first: 10) { edges { node { id rating content } } } } }"""
    peer = """query($id: UUID!) { userIdentity(id: $id) { id userProfileByIdentityId { name bio }
      reviewsByReviewedId(first: 10, orderBy: [CREATED_AT_DESC, ID_DESC], condition: {status: "active"},
      filter: {reviewType: {notEqualTo: "course"}}) { nodes { id rating content } } } }"""
    return dict(
        ours=ours, peer=peer,
        ids=lambda: sql("""SELECT i.id FROM user_identities i WHERE i.identity_type = 'master' AND i.status = 'active'
            ORDER BY (SELECT count(*) FROM reviews r WHERE r.reviewed_id = i.id) DESC, i.id"""),
        read_ours=lambda d: (d["mentor"]["id"], d["mentor"]["profile"]["name"],
                             [r["id"] for r in edges(d["mentor"]["reviews"])]),
        read_peer=lambda d: (d["userIdentity"]["id"], d["userIdentity"]["userProfileByIdentityId"]["name"],
                             [r["id"] for r in d["userIdentity"]["reviewsByReviewedId"]["nodes"]]),
    )


@page("circle_feed")
def _():
    ours = """query($id: ID!) { circle(id: $id) { id posts(first: 20) { edges { node { id content likeCount commentCount
      author { profile { name avatar } } } } } } }"""
    peer = """query($id: UUID!) { circle(id: $id) { id posts(first: 20, orderBy: [IS_TOP_DESC, CREATED_AT_DESC, ID_DESC],
      condition: {status: "active"}) { nodes { id content likeCount commentCount
      identity { userProfileByIdentityId { name avatar } } } } } }"""
    return dict(
        ours=ours, peer=peer,
        ids=lambda: sql("SELECT id FROM circles WHERE status = 'active' ORDER BY post_count DESC, id"),
        read_ours=lambda d: [(p["id"], p["author"]["profile"]["name"]) for p in edges(d["circle"]["posts"])],
        read_peer=lambda d: [(p["id"], p["identity"]["userProfileByIdentityId"]["name"])
                             for p in d["circle"]["posts"]["nodes"]],
    )


@page("post_comments")
def _():
    ours = """query($id: ID!) { post(id: $id) { id content comments(first: 20) { edges { node { id content
      author { profile { name } } } } } } }"""
    peer = """query($id: UUID!) { post(id: $id) { id content comments(first: 20, orderBy: [CREATED_AT_ASC, ID_ASC],
      filter: {status: {notEqualTo: "hidden"}}) {
      nodes { id content identity { userProfileByIdentityId { name } } } } } }"""
    return dict(
        ours=ours, peer=peer,
        ids=lambda: sql("SELECT id FROM posts WHERE status = 'active' ORDER BY comment_count DESC, id LIMIT 5000"),
        read_ours=lambda d: [(c["id"], c["author"]["profile"]["name"]) for c in edges(d["post"]["comments"])],
        read_peer=lambda d: [(c["id"], c["identity"]["userProfileByIdentityId"]["name"])
                             for c in d["post"]["comments"]["nodes"]],
    )


@page("viewer_feed", auth=True)
def _():
    ours = """{ feed(first: 20) { edges { node { id content likeCount commentCount author { profile { name avatar } } } } } }"""
    peer = """query($user: UUID!) { viewerFeed(viewer: $user, first: 20) { nodes { id content likeCount commentCount
      identity { userProfileByIdentityId { name avatar } } } } }"""
    return dict(
        ours=ours, peer=peer,
        read_ours=lambda d: [p["id"] for p in edges(d["feed"])],
        read_peer=lambda d: [p["id"] for p in d["viewerFeed"]["nodes"]],
    )


@page("notifications", auth=True)
def _():
    ours = """{ unreadNotificationCount notifications(first: 20) { edges { node { id title notificationType isRead createdAt } } } }"""
    peer = """query($user: UUID!) { user(id: $user) { unread: notifications(condition: {isRead: false}) { totalCount }
      notifications(first: 20, orderBy: [CREATED_AT_DESC, ID_DESC]) { nodes { id title notificationType isRead createdAt } } } }"""
    return dict(
        ours=ours, peer=peer,
        read_ours=lambda d: (d["unreadNotificationCount"], [n["id"] for n in edges(d["notifications"])]),
        read_peer=lambda d: (d["user"]["unread"]["totalCount"], [n["id"] for n in d["user"]["notifications"]["nodes"]]),
    )


# --- servers ---
class Server:
    def __init__(self, args, env, port, log):
        self.port = port
        self.process = subprocess.Popen(args, env={**os.environ, **env}, stdout=open(log, "w"),
                                        stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(120):
            try:
                post(port, body("{ __typename }", {}))
                return
            except Exception:
                if self.process.poll() is not None:
                    sys.exit(f"server on port {port} exited; see {log}")
                time.sleep(0.5)
        sys.exit(f"server on port {port} did not start; see {log}")

    def rss_mb(self):
        """Peak RSS of every process of the server's session (PostGraphile's cluster workers too)."""
        total = 0
        pids = [int(p) for p in subprocess.run(
            ["pgrep", "-s", str(self.process.pid)], capture_output=True, text=True).stdout.split()]
        for pid in pids:
            try:
                total += int(re.search(r"VmHWM:\s+(\d+)", open(f"/proc/{pid}/status").read()).group(1))
            except (OSError, AttributeError):
                pass
        return total // 1024

    def stop(self):
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except Exception:
            os.killpg(self.process.pid, signal.SIGKILL)


OURS_MODES = {
    "default": {},
    "entities": {"CACHE_RESPONSES": "false"},
    "off": {"CACHE_ENABLED": "false"},
}


def start_ours(mode):
    env = {"BIND_ADDR": f"127.0.0.1:{OURS_PORT}", "RATE_LIMITS": "false", "LOG_FORMAT": "json", "RUST_LOG": "warn",
           "DATA_DIR": subprocess.run(["mktemp", "-d"], capture_output=True, text=True).stdout.strip(),
           **OURS_MODES[mode]}
    env.pop("REDIS_URL", None)
    return Server([BIN, "serve"], env, OURS_PORT, f"{WORK}/ours-{mode}.log")


def start_peer(workers):
    args = [f"{ROOT}/bench/peer/node_modules/.bin/postgraphile", "-c", DB_URL, "--schema", "public,peer",
            "--append-plugins", "@graphile-contrib/pg-simplify-inflector,postgraphile-plugin-connection-filter", "-n", "127.0.0.1", "-p", str(PEER_PORT),
            "--disable-query-log", "-b", "-M", "-j", "--legacy-relations", "omit"]
    if workers > 1:
        args += ["--cluster-workers", str(workers)]
    return Server(args, {"NODE_ENV": "production"}, PEER_PORT, f"{WORK}/peer-{workers}.log")


# --- load ---
def wrk(port, lines, cold):
    path = f"{WORK}/bodies.txt"
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    done = f"{WORK}/done"
    subprocess.run(["rm", "-rf", done])
    os.makedirs(done)
    env = {**os.environ, "BODIES": path, "BODIES_ONCE": "1" if cold else "0", "WRK_THREADS": str(THREADS),
           "DONE_DIR": done}
    connections = min(CONNECTIONS, len(lines) // THREADS * THREADS) if cold else CONNECTIONS
    wrk = subprocess.Popen(["wrk", "-t", str(THREADS), "-c", str(connections), "-d", "300s" if cold else DURATION,
                            "--latency", "-s", f"{ROOT}/bench/compare.lua", f"http://127.0.0.1:{port}/graphql"],
                           env=env, stdout=subprocess.PIPE, text=True)
    if cold:  # wrk runs for its whole duration even when every thread stopped: interrupt it then
        while len(os.listdir(done)) < THREADS and wrk.poll() is None:
            time.sleep(0.01)
        wrk.send_signal(signal.SIGINT)
    out = wrk.communicate()[0]

    if "Requests/sec" not in out or not re.search(r"99%\s+[\d.]+(us|ms|s)\b", out):
        sys.exit(f"wrk failed:\n{out}")

    def ms(text):
        value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
              "p50": ms(re.search(r"\n\s+50%\s+(\S+)", out).group(1)),
              "p99": ms(re.search(r"\n\s+99%\s+(\S+)", out).group(1)),
              "non2xx": int((re.search(r"Non-2xx or 3xx responses: (\d+)", out) or [0, 0])[1]),
              "errors": sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))}
    return result


def zipf_draw(values, count, rng):
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(values))]
    return rng.choices(values, weights=weights, k=count)


def main():
    rng = random.Random(18)
    print("preparing: ids, tokens and cursors", flush=True)
    peer = start_peer(1)
    ours = start_ours("off")
    # viewers: bench users with notifications and memberships, each logged in to our server
    viewer_rows = sql(f"""SELECT u.id, u.email FROM users u WHERE EXISTS (SELECT 1 FROM notifications n WHERE n.user_id = u.id)
        AND EXISTS (SELECT 1 FROM circle_members m WHERE m.user_id = u.id AND m.is_active)
        ORDER BY (SELECT count(*) FROM notifications n WHERE n.user_id = u.id) DESC, u.id LIMIT {DISTINCT}""")
    viewers = []
    for row in viewer_rows:
        user_id, email = row.split("|")
        answer = post(OURS_PORT, body("mutation($e: String!) { login(input: {email: $e, password: \"bench-password\"}) { accessToken } }", {"e": email}))
        viewers.append((user_id, answer["data"]["login"]["accessToken"]))
    # catalogue pages: the cursor before page n in each API
    cursors = {"ours": [None], "peer": [None]}
    for _ in range(DISTINCT - 1):
        o = post(OURS_PORT, body(PAGES["catalogue"]["ours"], {"after": cursors["ours"][-1]}))["data"]["courses"]["edges"]
        p = post(PEER_PORT, body(PAGES["catalogue"]["peer"], {"after": cursors["peer"][-1]}))["data"]["courses"]["edges"]
        if not o or not p:
            break
        cursors["ours"].append(o[-1]["cursor"])
        cursors["peer"].append(p[-1]["cursor"])

    requests = {}  # page -> list of (ours line, peer line) per distinct value
    for name, spec in PAGES.items():
        if ONLY and name not in ONLY:
            continue
        if spec.get("paged"):
            values = [(None, {"after": cursors["ours"][i]}, None, {"after": cursors["peer"][i]})
                      for i in range(len(cursors["ours"]))]
        elif spec["auth"]:
            values = [(token, {}, None, {"user": user_id}) for user_id, token in viewers]
        else:
            values = [(None, {"id": i}, None, {"id": i}) for i in spec["ids"]()[:DISTINCT]]
        lines = [(f"{t or '-'}\t{body(spec['ours'], ov)}", f"{pt or '-'}\t{body(spec['peer'], pv)}")
                 for t, ov, pt, pv in values]
        # the same rows from both, on a sample
        for t, ov, pt, pv in rng.sample(values, min(12, len(values))):
            a, b = post(OURS_PORT, body(spec["ours"], ov), t), post(PEER_PORT, body(spec["peer"], pv), pt)
            if a.get("errors") or b.get("errors"):
                sys.exit(f"{name}: errors: ours {a.get('errors')} peer {b.get('errors')}")
            ra, rb = spec["read_ours"](a["data"]), spec["read_peer"](b["data"])
            if ra != rb:
                sys.exit(f"{name}: the servers disagree for {ov}:\n ours {ra}\n peer {rb}")
        requests[name] = lines
        print(f"  {name}: {len(lines)} distinct values, rows checked equal on a sample", flush=True)
    ours.stop()
    peer.stop()

    results = {"pages": {}, "rss_mb": {}}
    draws = {name: zipf_draw(list(range(len(lines))), 20000, rng) for name, lines in requests.items()}

    def run(label, server, side, restart=None):
        for name, lines in requests.items():
            mine = [line[side] for line in lines]
            if restart:  # a fresh process: nothing of this page in its cache
                server.stop()
                server = restart()
            cold = wrk(server.port, mine, cold=True)
            hot = wrk(server.port, [mine[i] for i in draws[name]], cold=False)
            results["pages"].setdefault(name, {})[label] = {"rotating": hot, "cold": cold}
            print(f"  {label:<14} {name:<14} {hot['rps']:>9.0f} req/s  p50 {hot['p50']:.1f} p99 {hot['p99']:.1f} ms"
                  + f"  | cold {cold['rps']:.0f} req/s p99 {cold['p99']:.1f} ms", flush=True)
        results["rss_mb"][label] = server.rss_mb()
        server.stop()

    for workers in (1, 2):
        print(f"PostGraphile, {workers} worker(s)", flush=True)
        run(f"peer-{workers}", start_peer(workers), 1, restart=None)
    for mode in MODES:
        print(f"ours, {mode}", flush=True)
        run(f"ours-{mode}", start_ours(mode), 0, restart=lambda m=mode: start_ours(m))
    out = os.path.join(ROOT, "bench/results/compare.json")
    json.dump(results, open(out, "w"), indent=1)

    print("\n| page | mode | ours req/s | peer req/s (best of 1, 2 workers) | ours ÷ peer | ours p50 / p99 ms | peer p99 ms | cold: ours ÷ peer req/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, runs in results["pages"].items():
        best = max((runs[k] for k in ("peer-1", "peer-2") if k in runs), key=lambda r: r["rotating"]["rps"])
        for mode in MODES:
            r = runs.get(f"ours-{mode}")
            if not r:
                continue
            h, p = r["rotating"], best["rotating"]
            cold = r["cold"]["rps"] / best["cold"]["rps"]
            print(f"| {name} | {mode} | {h['rps']:,.0f} | {p['rps']:,.0f} | {h['rps'] / p['rps']:.2f}× | "
                  f"{h['p50']:.1f} / {h['p99']:.1f} | {p['p99']:.1f} | {cold:.2f}× |")
    print(f"\npeak RSS MB: {results['rss_mb']}")


if __name__ == "__main__":
    main()
