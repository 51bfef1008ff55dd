#!/usr/bin/env python3
"""Checks of docker-compose.yml beyond the compose-spec schema.

`docker-compose config` (the official loader) has already validated the file
against the compose specification and resolved it; this reads its JSON output
and checks that the stack hangs together:

- every service the brief names is there; long-running ones have a
  healthcheck, the producer and workers start only after `migrate` exited 0
  and after RabbitMQ and both simulators are healthy; there are 2 workers;
- entra-sync services get the configuration at ENTRA_SYNC_CONFIG, and every
  secret file the configuration names is mounted next to it;
- the configuration points at the simulators' service names and ports, and
  listens where the healthchecks probe;
- with --binary, every entra-sync command line parses (`… --help`) and
  `check-config` accepts deploy/compose/config.toml.

Usage: compose_stack.py RESOLVED.json [--binary ENTRA_SYNC]
"""

import argparse
import json
import os
import posixpath
import shlex
import subprocess
import sys
import tomllib
from urllib.parse import urlsplit

problems = []


def check(ok, message):
    if not ok:
        problems.append(message)
    return ok


def entra_sync_args(service):
    """The entra-sync arguments a service runs, or None if it runs something else."""
    entrypoint = service.get("entrypoint")
    command = service.get("command") or []
    if not entrypoint:
        return command
    if entrypoint == ["bash", "-c"] and len(command) == 1:
        # `… exec entra-sync ARGS`: keep the arguments up to the first one that
        # the shell expands.
        kept = []
        for word in shlex.split(command[0].split("exec entra-sync", 1)[1]):
            if "$" in word:
                if kept and kept[-1].startswith("--"):
                    kept.pop()
                break
            kept.append(word)
        return kept
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("resolved")
    parser.add_argument("--binary")
    args = parser.parse_args()

    with open(args.resolved) as f:
        compose = json.load(f)
    services = compose["services"]
    for name in ("postgres", "rabbitmq", "graph-sim", "authentik-sim", "migrate", "producer", "worker"):
        check(name in services, f"service {name} is missing")
    if problems:
        return finish(args)

    for name in ("postgres", "rabbitmq", "graph-sim", "authentik-sim", "producer", "worker"):
        check(bool(services[name].get("healthcheck", {}).get("test")), f"{name}: no healthcheck")
    check(services["worker"].get("deploy", {}).get("replicas", 1) >= 2, "worker: at least 2 replicas")
    check(services["migrate"].get("restart", "no") == "no", "migrate: one-shot (restart: no)")
    for name in ("producer", "worker"):
        deps = services[name].get("depends_on", {})
        check(deps.get("migrate", {}).get("condition") == "service_completed_successfully",
              f"{name}: must wait for migrate to complete")
        for dep in ("rabbitmq", "graph-sim", "authentik-sim"):
            check(deps.get(dep, {}).get("condition") == "service_healthy", f"{name}: must wait for {dep} healthy")
        check(services[name].get("stop_grace_period") in ("15s",), f"{name}: stop_grace_period 15s")
    check(services["migrate"].get("depends_on", {}).get("postgres", {}).get("condition") == "service_healthy",
          "migrate: must wait for postgres healthy")

    # The configuration file and the secret files it names.
    config_source = compose["configs"]["entra-sync-config"]["file"]
    with open(config_source, "rb") as f:
        text = f.read().decode()
    config = tomllib.loads(text)
    named = [config["authentik"]["token_file"], config["authentik"]["webhook_secret_file"]]
    named += [p["client_secret_file"] for p in config.get("providers", []) if "client_secret_file" in p]
    for name in ("graph-sim", "authentik-sim", "migrate", "producer", "worker"):
        service = services[name]
        image = service.get("image", "")
        check(image == services["producer"].get("image"), f"{name}: runs the entra-sync image")
    for name in ("producer", "worker", "migrate"):
        service = services[name]
        env = service.get("environment", {})
        config_path = env.get("ENTRA_SYNC_CONFIG", "")
        mounted = {c["target"]: c["source"] for c in service.get("configs", [])}
        check(mounted.get(config_path) == "entra-sync-config", f"{name}: config.toml not mounted at {config_path!r}")
        secrets = {s["target"]: s["source"] for s in service.get("secrets", [])}
        for path in named:
            full = posixpath.normpath(posixpath.join(posixpath.dirname(config_path), path))
            check(full in secrets, f"{name}: {full} (named in config.toml) is not a mounted secret")
            source = compose["secrets"].get(secrets.get(full, ""), {}).get("file")
            if source:
                check(os.path.isfile(source), f"secret file {source} does not exist")
                check(os.stat(source).st_mode & 0o004, f"secret file {source} must be readable by the container user")
        for var in ("DATABASE_URL", "AMQP_URL"):
            check(var in env, f"{name}: {var} is not set")
        check(urlsplit(env.get("DATABASE_URL", "")).hostname == "postgres", f"{name}: DATABASE_URL host is not postgres")
        check(urlsplit(env.get("AMQP_URL", "")).hostname == "rabbitmq", f"{name}: AMQP_URL host is not rabbitmq")

    # The configuration points at the simulators and listens where probed.
    def sim_port(name):
        a = entra_sync_args(services[name]) or []
        check("--host" in a and a[a.index("--host") + 1] == "0.0.0.0", f"{name}: must listen on 0.0.0.0")
        return a[a.index("--port") + 1] if "--port" in a else None

    ak = urlsplit(config["authentik"]["url"])
    check((ak.hostname, str(ak.port)) == ("authentik-sim", sim_port("authentik-sim")),
          f"authentik.url {config['authentik']['url']} is not the authentik simulator")
    graph_port = sim_port("graph-sim")
    for p in config.get("providers", []):
        for key in ("graph_url", "login_url"):
            u = urlsplit(p.get(key, ""))
            check((u.hostname, str(u.port)) == ("graph-sim", graph_port), f"providers[{p['name']}].{key} is not the Graph simulator")
    for name, role in (("producer", "producer"), ("worker", "worker")):
        listen = config.get(role, {}).get("listen", "")
        test = " ".join(services[name]["healthcheck"]["test"])
        port = listen.rsplit(":", 1)[-1]
        check(listen.startswith("0.0.0.0:"), f"[{role}] listen {listen!r} is not reachable")
        check(f"/dev/tcp/127.0.0.1/{port}" in test and "/readyz" in test,
              f"{name}: healthcheck does not probe /readyz on {port}")

    if args.binary:
        for name in ("graph-sim", "authentik-sim", "migrate", "producer", "worker"):
            argv = entra_sync_args(services[name])
            if check(argv, f"{name}: cannot tell its entra-sync arguments"):
                r = subprocess.run([args.binary, *argv, "--help"], capture_output=True, text=True)
                check(r.returncode == 0, f"{name}: `entra-sync {' '.join(argv)}` does not parse: {r.stderr.strip()}")
        env = dict(os.environ)
        env.pop("ENTRA_SYNC_CONFIG", None)
        r = subprocess.run([args.binary, "--config", config_source, "check-config"], capture_output=True, text=True, env=env)
        check(r.returncode == 0, f"check-config rejects {config_source}: {r.stdout}{r.stderr}")
        if r.returncode == 0:
            print(r.stdout, end="")
    return finish(args)


def finish(args):
    if problems:
        for p in problems:
            print(f"compose_stack.py: {p}", file=sys.stderr)
        sys.exit(1)
    print("compose_stack.py: docker-compose.yml hangs together")


if __name__ == "__main__":
    main()
