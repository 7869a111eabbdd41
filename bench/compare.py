#!/usr/bin/env python3
"""Two or more authstore builds side by side in one run: the adapter's hot
paths against the same seeded database, interleaved, so a change that should
not move the figures (a restructuring) can be shown not to.

    bench/compare.py NAME=BINARY[,SETTING=VALUE...] NAME=BINARY ... [--runs 3] [--seconds 5]

Each build serves its own copy of one database seeded by the first build
(the oldest: newer builds migrate their copy). Rows, each against every
build in turn, `runs` times, medians reported: GET /healthz (fixed JSON),
getSessionAndUser (over every seeded session, and over a thousand of them,
each then used many times a minute), createSession, and deleteSession (a
sign-out, which writes an event). Settings are AUTHSTORE_* variables without the prefix, or
RUST_LOG (the harness's default silences the access lines), e.g.
before=/tmp/old/authstore after=target/release/authstore,SQLITE_LOCKING=exclusive.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import OUT, Server, copy_database, log, medians, seed_authstore, wrk  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("builds", nargs="+", help="NAME=BINARY[,SETTING=VALUE...]")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    builds = []
    for spec in args.builds:
        name, _, rest = spec.partition("=")
        binary, *settings = rest.split(",")
        env = {(k if k == "RUST_LOG" else f"AUTHSTORE_{k}"): v for k, v in (s.split("=", 1) for s in settings)}
        builds.append((name, os.path.abspath(binary), env))
    os.makedirs(OUT, exist_ok=True)
    users, sessions = args.users, args.users * 2
    seeded = seed_authstore(builds[0][1], os.path.join(OUT, f"compare-{users}.db"), users, sessions)
    rows = ("healthz", "getSessionAndUser", "getSessionAndUser, 1k active sessions", "createSession",
            "deleteSession")
    results = {name: {row: [] for row in rows} for name, _, _ in builds}
    servers = []
    try:
        for i, (name, binary, env) in enumerate(builds):
            servers.append((name, Server(binary, copy_database(seeded, f"compare-{i}.db"), env=env)))
        # Each run signs out sessions no earlier run touched.
        per_run = sessions // args.runs
        for run in range(args.runs):
            for name, server in servers:
                log(f"run {run + 1}: {name}")
                got = results[name]
                got["healthz"].append(wrk(server.url, "/healthz", args.seconds))
                got["getSessionAndUser"].append(wrk(
                    server.url, "/api/adapter/getSessionAndUser", args.seconds, script="session.lua",
                    env={"BENCH_SESSIONS": str(sessions)}))
                # The same lookups over a thousand sessions: each is used many
                # times a minute, as a signed-in person's page views use theirs.
                got["getSessionAndUser, 1k active sessions"].append(wrk(
                    server.url, "/api/adapter/getSessionAndUser", args.seconds, script="session.lua",
                    env={"BENCH_SESSIONS": "1000"}))
                got["createSession"].append(wrk(
                    server.url, "/api/adapter/createSession", args.seconds, script="create_session.lua",
                    env={"BENCH_USERS": str(users), "BENCH_RUN": f"{run}"}))
                got["deleteSession"].append(wrk(
                    server.url, "/api/adapter/deleteSession", args.seconds, script="delete_session.lua",
                    env={"BENCH_FIRST": str(run * per_run)}))
    finally:
        for _, server in servers:
            server.stop()
    first = builds[0][0]
    print(f"\n| row | {' | '.join(name for name, _, _ in builds)} |")
    print(f"|---|{'---|' * len(builds)}")
    for row in rows:
        cells = []
        for name, _, _ in builds:
            m = medians(results[name][row])
            base = medians(results[first][row])["rps"]
            cells.append(f"{m['rps']:,.0f} req/s, p99 {m['p99']:.2f} ms ({m['rps'] / base:.2f}x)")
        print(f"| {row} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
