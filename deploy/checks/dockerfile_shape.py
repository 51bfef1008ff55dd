#!/usr/bin/env python3
"""Checks the Dockerfile with BuildKit's own parser (the `dockerfile` package).

There is no Docker engine to build with here, so this checks the shape the
deployment relies on: a Rust builder stage running
`cargo build --release --locked`, a debian:bookworm-slim runtime with
ca-certificates, the binary copied from the builder, a numeric non-root USER
(Kubernetes' runAsNonRoot can verify it), ENTRYPOINT entra-sync in exec form,
and a .dockerignore that keeps target/ and .git out but the workspace in.

Usage: dockerfile_shape.py [REPO_ROOT]
"""

import fnmatch
import os
import sys

import dockerfile

problems = []


def check(ok, message):
    if not ok:
        problems.append(message)
    return ok


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    commands = dockerfile.parse_file(os.path.join(root, "Dockerfile"))
    stages = []
    for c in commands:
        if c.cmd == "FROM":
            stages.append({"from": c.value, "commands": []})
        elif stages:
            stages[-1]["commands"].append(c)
    check(len(stages) >= 2, "multi-stage build expected")
    if len(stages) < 2:
        return finish()
    builder, runtime = stages[0], stages[-1]

    check(builder["from"][0].startswith("rust:1.95") and "builder" in builder["from"],
          f"builder stage is {builder['from']}, want rust:1.95-… AS builder")
    runs = " ".join(" ".join(c.value) for c in builder["commands"] if c.cmd == "RUN")
    check("cargo build --release --locked" in runs, "builder: cargo build --release --locked")

    check(runtime["from"][0] == "debian:bookworm-slim", f"runtime stage is {runtime['from'][0]}")
    runtime_runs = " ".join(" ".join(c.value) for c in runtime["commands"] if c.cmd == "RUN")
    check("ca-certificates" in runtime_runs, "runtime: installs ca-certificates")
    copies = [c for c in runtime["commands"] if c.cmd == "COPY"]
    check(any("--from=builder" in c.flags and c.value[-1] == "/usr/local/bin/entra-sync" for c in copies),
          "runtime: copies the binary from the builder to /usr/local/bin/entra-sync")
    users = [c.value[0] for c in runtime["commands"] if c.cmd == "USER"]
    if check(users, "runtime: no USER"):
        uid = users[-1].split(":")[0]
        check(uid.isdigit() and int(uid) != 0, f"runtime: USER {users[-1]} must be a numeric non-root uid")
    entrypoints = [c for c in runtime["commands"] if c.cmd == "ENTRYPOINT"]
    if check(entrypoints, "runtime: no ENTRYPOINT"):
        e = entrypoints[-1]
        check(e.json and list(e.value) == ["entra-sync"], f"ENTRYPOINT must be [\"entra-sync\"], is {e.original}")

    with open(os.path.join(root, ".dockerignore")) as f:
        patterns = [line.strip().rstrip("/") for line in f if line.strip() and not line.startswith("#")]

    def ignored(path):
        return any(fnmatch.fnmatch(path, p.lstrip("/")) for p in patterns)

    for path in ("target", ".git"):
        check(ignored(path), f".dockerignore must exclude {path}")
    for path in ("Cargo.toml", "Cargo.lock", "crates", "tests", "migrations"):
        check(not ignored(path), f".dockerignore must keep {path} (the build needs it)")
    finish()


def finish():
    if problems:
        for p in problems:
            print(f"dockerfile_shape.py: {p}", file=sys.stderr)
        sys.exit(1)
    print("dockerfile_shape.py: Dockerfile and .dockerignore have the expected shape")


if __name__ == "__main__":
    main()
