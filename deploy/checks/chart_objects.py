#!/usr/bin/env python3
"""Checks of a rendered entra-sync chart that a Kubernetes schema cannot make.

kubernetes-validate checks each object against the Kubernetes API schema
(CRDs such as KEDA's and the Prometheus Operator's are skipped there). This
checks that the objects fit together and keep the product's contract:

- config.toml parses, and `entra-sync check-config` accepts it when a binary
  is given (--binary), with every secret file the configuration names;
- every secret file config.toml names is mounted from a Secret;
- producer and worker pods run as non-root with a read-only root, stop within
  terminationGracePeriodSeconds 15, probe /healthz and /readyz on the port the
  configuration listens on, and get the configuration and database/AMQP URLs;
- Services, PodDisruptionBudgets and the ServiceMonitor select the pods they
  are meant for; the migrate Job is a pre-install/pre-upgrade hook;
- with KEDA, the ScaledObject targets the worker Deployment, watches exactly
  the direct and bulk queues of the configured prefix, and the Deployment
  leaves its replica count to KEDA;
- every volumeMount names a volume of its pod; producer and worker pods
  spread by topology over their own pods;
- with --operations yes: the status page listens where its container port
  says and stays out of the Services; the NetworkPolicies select the producer
  and the worker and name ports their containers have; the Grafana dashboard
  is JSON; the PrometheusRule has the four alerts, each limited to the
  release's namespace; the migrate Job's pod has its own annotations. With
  --operations no, none of these optional objects is rendered.

Usage: chart_objects.py MANIFESTS.yaml --keda yes|no --service-monitor yes|no
                   [--operations yes|no] [--producer-replicas N] [--binary ENTRA_SYNC]
Exits 1 listing every problem found.
"""

import argparse
import json
import os
import posixpath
import subprocess
import sys
import tempfile
import tomllib

import yaml

problems = []


def check(ok, message):
    if not ok:
        problems.append(message)
    return ok


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def container(deployment):
    containers = deployment["spec"]["template"]["spec"]["containers"]
    check(len(containers) == 1, f"{deployment['metadata']['name']}: one container expected")
    return containers[0]


def env_of(c):
    return {e["name"]: e for e in c.get("env", [])}


def secret_files(pod_spec, c):
    """Paths (under config_dir) that a projected Secret volume provides."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    files = set()
    for mount in c.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        sources = volume.get("projected", {}).get("sources", [])
        if "secret" in volume:
            sources = [{"secret": volume["secret"]}]
        for source in sources:
            for item in source.get("secret", {}).get("items", []):
                files.add(posixpath.normpath(posixpath.join(mount["mountPath"], item["path"])))
    return files


def config_paths(config):
    """Every *_file value of the configuration."""
    paths = []
    auth = config.get("authentik", {})
    for key in ("token_file", "webhook_secret_file"):
        if key in auth:
            paths.append(auth[key])
    for provider in config.get("providers", []):
        for key in ("client_secret_file", "client_certificate_file", "client_key_file"):
            if key in provider:
                paths.append(provider[key])
    return paths


def dummy_certificate(tmp):
    """A throwaway self-signed certificate and RSA key, as PEM text."""
    key, cert = os.path.join(tmp, "dummy.key"), os.path.join(tmp, "dummy.crt")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=check-deploy", "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )
    with open(cert) as c, open(key) as k:
        return c.read(), k.read()


def run_check_config(binary, text, config):
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "config.toml"), "w") as f:
            f.write(text)
        cert, key = dummy_certificate(tmp)
        for path in config_paths(config):
            full = os.path.join(tmp, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(cert if path.endswith(".crt") else key if path.endswith(".key")
                        else "check-deploy-dummy-secret\n")
        # What Azure Workload Identity's webhook provides to the pod.
        token = os.path.join(tmp, "azure-identity-token")
        with open(token, "w") as f:
            f.write("check-deploy.dummy-service-account.token\n")
        env = dict(os.environ)
        env.update(
            DATABASE_URL="postgres://check:check@127.0.0.1:5432/check",
            AMQP_URL="amqp://check:check@127.0.0.1:5672/%2f",
            AZURE_FEDERATED_TOKEN_FILE=token,
        )
        env.pop("ENTRA_SYNC_CONFIG", None)
        result = subprocess.run(
            [binary, "--config", os.path.join(tmp, "config.toml"), "check-config"],
            env=env,
            capture_output=True,
            text=True,
        )
        check(
            result.returncode == 0,
            "entra-sync check-config rejects the rendered config.toml:\n"
            + result.stdout
            + result.stderr,
        )
        if result.returncode == 0:
            print(result.stdout, end="")


def containers_image(docs):
    """The entra-sync image: the one the producer Deployment runs."""
    for d in docs:
        if d["kind"] == "Deployment" and d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "producer":
            return d["spec"]["template"]["spec"]["containers"][0]["image"]
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("manifests")
    parser.add_argument("--keda", choices=["yes", "no"], required=True)
    parser.add_argument("--service-monitor", choices=["yes", "no"], required=True)
    parser.add_argument("--operations", choices=["yes", "no"], default="no")
    parser.add_argument("--producer-replicas", type=int, default=2)
    parser.add_argument("--binary")
    args = parser.parse_args()

    with open(args.manifests) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    def one(kind, component=None):
        found = [
            d
            for d in by_kind.get(kind, [])
            if component is None
            or d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
        ]
        check(len(found) == 1, f"expected one {kind} {component or ''}, found {len(found)}")
        return found[0] if found else None

    # --- the configuration ----------------------------------------------------
    configmaps = [d for d in by_kind.get("ConfigMap", []) if "config.toml" in d.get("data", {})]
    check(len(configmaps) == 1, f"expected one ConfigMap with config.toml, found {len(configmaps)}")
    configmap = configmaps[0]
    text = configmap["data"]["config.toml"]
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        check(False, f"config.toml is not TOML: {e}")
        config = {}
    if args.binary and config:
        run_check_config(args.binary, text, config)
    prefix = config.get("amqp", {}).get("queue_prefix", "entra-sync")

    # --- producer and worker ---------------------------------------------------
    deployments = {}
    for component, role in (("producer", "producer"), ("worker", "worker")):
        d = one("Deployment", component)
        if d is None:
            continue
        deployments[component] = d
        name = d["metadata"]["name"]
        pod = d["spec"]["template"]
        spec = pod["spec"]
        c = container(d)
        check(c.get("args") == [role], f"{name}: runs `entra-sync {role}`, args are {c.get('args')}")
        check(selects(d["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"]),
              f"{name}: selector does not match its pod labels")
        check(spec.get("securityContext", {}).get("runAsNonRoot") is True, f"{name}: runAsNonRoot")
        sc = c.get("securityContext", {})
        check(sc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem")
        check(sc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation false")
        check(spec.get("terminationGracePeriodSeconds") == 15, f"{name}: terminationGracePeriodSeconds 15")
        check("checksum/config" in pod["metadata"].get("annotations", {}),
              f"{name}: checksum/config annotation rolls pods on a config change")
        check(bool(c.get("resources", {}).get("requests")), f"{name}: resource requests")
        listen = config.get(role, {}).get("listen", "")
        port = int(listen.rsplit(":", 1)[1]) if ":" in listen else None
        check(listen.startswith("0.0.0.0:"), f"{name}: [{role}] listen must be reachable by probes, is {listen!r}")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        check(ports.get("http") == port, f"{name}: port http {ports.get('http')} != listen port {port}")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = c.get(probe, {}).get("httpGet", {})
            check(get.get("path") == path and get.get("port") in ("http", port),
                  f"{name}: {probe} must GET {path} on the http port, is {get}")
        env = env_of(c)
        config_path = env.get("ENTRA_SYNC_CONFIG", {}).get("value", "")
        mounted = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        check(config_path in mounted, f"{name}: ENTRA_SYNC_CONFIG {config_path!r} is not mounted")
        for var in ("DATABASE_URL", "AMQP_URL"):
            check("secretKeyRef" in env.get(var, {}).get("valueFrom", {}),
                  f"{name}: {var} must come from a Secret")
        provided = secret_files(spec, c)
        for path in config_paths(config):
            full = posixpath.normpath(posixpath.join(posixpath.dirname(config_path), path))
            check(full in provided, f"{name}: {full} (named in config.toml) is not mounted from a Secret")
        check("/tmp" in mounted, f"{name}: a writable /tmp with a read-only root")
        workload_identity = any(p.get("workload_identity") for p in config.get("providers", []))
        check((pod["metadata"]["labels"].get("azure.workload.identity/use") == "true") == workload_identity,
              f"{name}: the azure.workload.identity/use label must be set exactly when a provider uses workload identity")

    producer = deployments.get("producer")
    worker = deployments.get("worker")
    if producer:
        check(producer["spec"].get("replicas") == args.producer_replicas,
              f"producer replicas {producer['spec'].get('replicas')} != {args.producer_replicas}")
    if worker:
        if args.keda == "yes":
            check("replicas" not in worker["spec"], "worker: with KEDA the Deployment must leave replicas to KEDA")
        else:
            check(isinstance(worker["spec"].get("replicas"), int), "worker: fixed replicas without KEDA")

    # --- Services and PodDisruptionBudgets -------------------------------------
    for component in ("producer", "worker"):
        d = deployments.get(component)
        if d is None:
            continue
        labels = d["spec"]["template"]["metadata"]["labels"]
        others = [o for k, o in deployments.items() if k != component]
        svc = one("Service", component)
        if svc:
            check(selects(svc["spec"]["selector"], labels), f"Service {component} does not select its pods")
            check(not any(selects(svc["spec"]["selector"], o["spec"]["template"]["metadata"]["labels"]) for o in others),
                  f"Service {component} also selects other pods")
            check([p.get("targetPort") for p in svc["spec"]["ports"]] == ["http"], f"Service {component}: targetPort http")
        pdb = one("PodDisruptionBudget", component)
        if pdb:
            check(selects(pdb["spec"]["selector"]["matchLabels"], labels), f"PDB {component} does not select its pods")
            check(not any(selects(pdb["spec"]["selector"]["matchLabels"], o["spec"]["template"]["metadata"]["labels"]) for o in others),
                  f"PDB {component} also selects other pods")

    # --- migrate hook ----------------------------------------------------------
    job = one("Job", "migrate")
    if job:
        hooks = set(job["metadata"].get("annotations", {}).get("helm.sh/hook", "").split(","))
        check({"pre-install", "pre-upgrade"} <= hooks, f"migrate Job hooks are {hooks}")
        c = job["spec"]["template"]["spec"]["containers"][0]
        check(c.get("args") == ["migrate"], "migrate Job runs `entra-sync migrate`")
        check("secretKeyRef" in env_of(c).get("DATABASE_URL", {}).get("valueFrom", {}),
              "migrate Job: DATABASE_URL from a Secret")
        check(c.get("securityContext", {}).get("readOnlyRootFilesystem") is True, "migrate Job: readOnlyRootFilesystem")

    # --- KEDA ------------------------------------------------------------------
    scaled = by_kind.get("ScaledObject", [])
    if args.keda == "yes":
        so = one("ScaledObject")
        if so and worker:
            check(so["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"],
                  "ScaledObject must target the worker Deployment")
            triggers = so["spec"]["triggers"]
            queues = sorted(t["metadata"]["queueName"] for t in triggers)
            check(queues == sorted([f"{prefix}.direct", f"{prefix}.bulk"]),
                  f"ScaledObject queues {queues} are not {prefix}.direct and {prefix}.bulk")
            auths = {a["metadata"]["name"]: a for a in by_kind.get("TriggerAuthentication", [])}
            for t in triggers:
                check(t["type"] == "rabbitmq", "ScaledObject: rabbitmq triggers")
                check(t["metadata"].get("mode") == "QueueLength" and t["metadata"].get("value", "").isdigit(),
                      "ScaledObject: QueueLength mode with a numeric string value")
                ref = t.get("authenticationRef", {}).get("name")
                check(ref in auths, f"ScaledObject: TriggerAuthentication {ref!r} is not rendered")
                if ref in auths:
                    params = [r["parameter"] for r in auths[ref]["spec"].get("secretTargetRef", [])]
                    check("host" in params, "TriggerAuthentication must provide host")
            check(so["spec"]["maxReplicaCount"] >= so["spec"]["minReplicaCount"], "KEDA max >= min")
    else:
        check(not scaled and not by_kind.get("TriggerAuthentication"), "KEDA objects rendered while disabled")

    # --- ServiceMonitor ---------------------------------------------------------
    monitors = by_kind.get("ServiceMonitor", [])
    if args.service_monitor == "yes":
        sm = one("ServiceMonitor")
        if sm:
            selector = sm["spec"]["selector"]
            services = by_kind.get("Service", [])
            picked = []
            for svc in services:
                labels = svc["metadata"].get("labels", {})
                ok = selects(selector.get("matchLabels"), labels)
                for expr in selector.get("matchExpressions", []):
                    ok = ok and expr["operator"] == "In" and labels.get(expr["key"]) in expr["values"]
                if ok:
                    picked.append(labels.get("app.kubernetes.io/component"))
            check(sorted(picked) == ["producer", "worker"], f"ServiceMonitor selects {picked}")
            for endpoint in sm["spec"]["endpoints"]:
                check(endpoint.get("path") == "/metrics", "ServiceMonitor scrapes /metrics")
                for svc in services:
                    check(endpoint.get("port") in [p["name"] for p in svc["spec"]["ports"]],
                          f"ServiceMonitor port {endpoint.get('port')} missing on {svc['metadata']['name']}")
    else:
        check(not monitors, "ServiceMonitor rendered while disabled")

    # --- volumes, spreading --------------------------------------------------------
    for d in docs:
        spec = d.get("spec", {}).get("template", {}).get("spec", {})
        volumes = {v["name"] for v in spec.get("volumes", [])}
        for c in spec.get("containers", []):
            for mount in c.get("volumeMounts", []):
                check(mount["name"] in volumes,
                      f"{d['kind']} {d['metadata']['name']}: volumeMount {mount['name']!r} has no volume")
    for component, d in deployments.items():
        labels = d["spec"]["template"]["metadata"]["labels"]
        constraints = d["spec"]["template"]["spec"].get("topologySpreadConstraints", [])
        check(bool(constraints), f"{component}: topologySpreadConstraints spread its pods")
        for t in constraints:
            check(selects(t.get("labelSelector", {}).get("matchLabels"), labels),
                  f"{component}: a topologySpreadConstraint does not count its own pods")
            others = [o for k, o in deployments.items() if k != component]
            check(not any(selects(t.get("labelSelector", {}).get("matchLabels"),
                                  o["spec"]["template"]["metadata"]["labels"]) for o in others),
                  f"{component}: a topologySpreadConstraint also counts other pods")

    # --- status page, NetworkPolicies, dashboard, alerts ----------------------------
    status_listen = config.get("producer", {}).get("status_listen")
    policies = by_kind.get("NetworkPolicy", [])
    dashboards = [d for d in by_kind.get("ConfigMap", []) if "entra-sync.json" in d.get("data", {})]
    rules = by_kind.get("PrometheusRule", [])
    if args.operations == "yes":
        if producer:
            c = container(producer)
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            check(status_listen is not None and status_listen == f"0.0.0.0:{ports.get('status')}",
                  f"status_listen {status_listen!r} is not the container port status {ports.get('status')}")
            check(status_listen != config.get("producer", {}).get("listen"), "the status page shares the webhook's port")
        for svc in by_kind.get("Service", []):
            check("status" not in [p.get("targetPort") for p in svc["spec"]["ports"]],
                  f"Service {svc['metadata']['name']} exposes the status page")
        check(len(policies) == 2, f"expected a NetworkPolicy each for producer and worker, found {len(policies)}")
        for policy in policies:
            component = policy["metadata"]["labels"].get("app.kubernetes.io/component")
            d = deployments.get(component)
            if not check(d is not None, f"NetworkPolicy for unknown component {component!r}"):
                continue
            check(selects(policy["spec"]["podSelector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"]),
                  f"NetworkPolicy {component} does not select its pods")
            names = [p["name"] for p in container(d).get("ports", [])]
            for rule in policy["spec"].get("ingress", []):
                for port in rule.get("ports", []):
                    check(port["port"] in names, f"NetworkPolicy {component}: port {port['port']!r} is not a container port")
        if check(len(dashboards) == 1, f"expected one dashboard ConfigMap, found {len(dashboards)}"):
            try:
                dashboard = json.loads(dashboards[0]["data"]["entra-sync.json"])
                check(len(dashboard.get("panels", [])) > 0, "the dashboard has no panels")
            except json.JSONDecodeError as e:
                check(False, f"the dashboard is not JSON: {e}")
        if check(len(rules) == 1, f"expected one PrometheusRule, found {len(rules)}"):
            alerts = {r["alert"]: r["expr"] for g in rules[0]["spec"]["groups"] for r in g["rules"]}
            check(sorted(alerts) == ["EntraSyncDeadLettersGrowing", "EntraSyncFullSyncOverdue",
                                     "EntraSyncGraphThrottled", "EntraSyncProviderHalted"],
                  f"alerts are {sorted(alerts)}")
            namespace = rules[0]["metadata"].get("namespace") or "entra-sync"
            for name, expr in alerts.items():
                check(f'namespace="{namespace}"' in expr, f"alert {name} is not limited to its namespace: {expr}")
        if job:
            check("sidecar.istio.io/inject" in job["spec"]["template"]["metadata"].get("annotations", {}),
                  "migrate Job: migrations.podAnnotations are not on its pod")
    else:
        check(status_listen is None, f"status_listen {status_listen!r} set while the status page is off")
        check(not policies, "NetworkPolicies rendered while disabled")
        check(not dashboards, "dashboard rendered while disabled")
        check(not rules, "PrometheusRule rendered while disabled")

    # --- every command line parses --------------------------------------------
    if args.binary:
        for d in docs:
            spec = d.get("spec", {}).get("template", {}).get("spec", {})
            for c in spec.get("containers", []):
                if c.get("image") != containers_image(docs):
                    continue
                argv = list(c.get("command", [])[1:]) + list(c.get("args", []))
                r = subprocess.run([args.binary, *argv, "--help"], capture_output=True, text=True)
                check(r.returncode == 0,
                      f"{d['kind']} {d['metadata']['name']}: `entra-sync {' '.join(argv)}` does not parse: {r.stderr.strip()}")

    if problems:
        for p in problems:
            print(f"chart_objects.py: {args.manifests}: {p}", file=sys.stderr)
        sys.exit(1)
    print(f"chart_objects.py: {args.manifests}: {len(docs)} objects fit together")


if __name__ == "__main__":
    main()
