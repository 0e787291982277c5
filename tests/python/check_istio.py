"""Checks the Istio examples of kubernetes/ beyond YAML syntax.

kubernetes-validate knows no Istio CRDs, so this checks what each example
relies on: the apiVersion and kind, that routes point at known services and
at subsets some DestinationRule defines, that weights add up to 100, that
faults, retries and timeouts are fully specified, and that matches are
well-formed.

Given the rendered output of an overlay (kubectl kustomize), the Services
and Deployments in it are the services known, and every subset must select
a version some Deployment of that service runs.

Usage: check_istio.py SERVICE_NAMES_CSV FILE...   (exit 1 with the problems)
"""

import re
import sys

import yaml

KINDS = {
    "Gateway": "networking.istio.io/v1",
    "VirtualService": "networking.istio.io/v1",
    "DestinationRule": "networking.istio.io/v1",
    "AuthorizationPolicy": "security.istio.io/v1",
    "PeerAuthentication": "security.istio.io/v1",
}
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT"}
DURATION = re.compile(r"^\d+(\.\d+)?(ms|s|m|h)$")


def main() -> int:
    services = set(filter(None, sys.argv[1].split(",")))
    docs = []
    versions = {}
    accounts = set()
    for path in sys.argv[2:]:
        with open(path) as f:
            for d in yaml.safe_load_all(f):
                if not d:
                    continue
                if "istio.io" in d.get("apiVersion", ""):
                    docs.append((path, d))
                elif d.get("kind") == "ServiceAccount":
                    accounts.add(d["metadata"]["name"])
                elif d.get("kind") == "Service":
                    services.add(d["metadata"]["name"])
                elif d.get("kind") == "Deployment":
                    labels = d["spec"]["template"]["metadata"]["labels"]
                    versions.setdefault(labels.get("app"), set()).add(labels.get("version"))
    problems = []

    def need(ok, path, what):
        if not ok:
            problems.append(f"{path}: {what}")

    subsets = {}
    gateways = set()
    for path, d in docs:
        need(d.get("kind") in KINDS, path, f"kind {d.get('kind')}")
        need(d.get("apiVersion") == KINDS.get(d.get("kind")), path, f"apiVersion {d.get('apiVersion')}")
        need(bool(d.get("metadata", {}).get("name")), path, "metadata.name missing")
        spec = d.get("spec", {})
        if d.get("kind") == "DestinationRule":
            need(spec.get("host") in services, path, f"DestinationRule host {spec.get('host')}")
            for s in spec.get("subsets", []):
                need(set(s.get("labels", {})) == {"version"}, path, f"subset {s} must select by version")
                if versions:
                    version = s.get("labels", {}).get("version")
                    need(version in versions.get(spec.get("host"), set()), path,
                         f"subset {s.get('name')} selects version {version}, which no Deployment of {spec.get('host')} runs")
                subsets.setdefault(spec.get("host"), set()).add(s.get("name"))
        if d.get("kind") == "Gateway":
            gateways.add(d["metadata"]["name"])
            for server in spec.get("servers", []):
                need(server.get("port", {}).get("protocol") in {"HTTP", "HTTP2", "GRPC"}, path, "gateway protocol")

    for path, d in docs:
        spec = d.get("spec", {})
        if d.get("kind") == "PeerAuthentication":
            need(spec.get("mtls", {}).get("mode") in {"STRICT", "PERMISSIVE", "DISABLE"}, path, "mtls.mode")
        if d.get("kind") != "AuthorizationPolicy":
            continue
        app = spec.get("selector", {}).get("matchLabels", {}).get("app")
        need(app in services, path, f"AuthorizationPolicy selects app {app}, no such service")
        need(spec.get("action", "ALLOW") in {"ALLOW", "DENY", "AUDIT", "CUSTOM"}, path, "action")
        for rule in spec.get("rules", []):
            for f in rule.get("from", []):
                for principal in f.get("source", {}).get("principals", []):
                    parts = principal.split("/")
                    need(len(parts) >= 2 and parts[-2] == "sa", path, f"principal {principal} must end in sa/NAME")
                    if accounts:
                        need(parts[-1] in accounts, path, f"principal {principal}: no ServiceAccount {parts[-1]}")
            for t in rule.get("to", []):
                for m in t.get("operation", {}).get("methods", []):
                    need(m in METHODS, path, f"method {m}")

    for path, d in docs:
        if d.get("kind") != "VirtualService":
            continue
        spec = d["spec"]
        need(bool(spec.get("hosts")), path, "VirtualService without hosts")
        for g in spec.get("gateways", []):
            need(g in gateways, path, f"unknown gateway {g}")
        need(bool(spec.get("http")), path, "VirtualService without http routes")
        for route in spec.get("http", []):
            destinations = route.get("route", [])
            need(bool(destinations), path, "http route without destinations")
            weights = [r.get("weight") for r in destinations if "weight" in r]
            if weights:
                need(len(weights) == len(destinations) and sum(weights) == 100, path, f"weights {weights} must add up to 100")
            for r in destinations:
                host = r.get("destination", {}).get("host")
                need(host in services, path, f"destination host {host}")
                subset = r["destination"].get("subset")
                if subset:
                    need(subset in subsets.get(host, set()), path, f"subset {subset} of {host} has no DestinationRule")
            for m in route.get("match", []):
                need(set(m) <= {"headers", "uri", "method", "queryParams"}, path, f"match {m}")
                for h in m.get("headers", {}).values():
                    need(len(h) == 1 and next(iter(h)) in {"exact", "prefix", "regex"}, path, f"header match {h}")
                if "uri" in m:
                    need(len(m["uri"]) == 1 and next(iter(m["uri"])) in {"exact", "prefix", "regex"}, path, "uri match")
            fault = route.get("fault")
            if fault:
                delay, abort = fault.get("delay"), fault.get("abort")
                need(delay or abort, path, "fault without delay or abort")
                if delay:
                    need(DURATION.match(str(delay.get("fixedDelay", ""))), path, "delay.fixedDelay")
                    need(0 < delay.get("percentage", {}).get("value", 0) <= 100, path, "delay.percentage.value")
                if abort:
                    need(200 <= abort.get("httpStatus", 0) <= 599 or "grpcStatus" in abort, path, "abort status")
                    need(0 < abort.get("percentage", {}).get("value", 0) <= 100, path, "abort.percentage.value")
            if "timeout" in route:
                need(DURATION.match(route["timeout"]), path, "timeout")
            retries = route.get("retries")
            if retries:
                need(retries.get("attempts", 0) > 0, path, "retries.attempts")
                need(DURATION.match(retries.get("perTryTimeout", "")), path, "retries.perTryTimeout")
                known = {"5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "refused-stream",
                         "retriable-status-codes", "unavailable", "cancelled", "deadline-exceeded",
                         "internal", "resource-exhausted"}
                for cond in retries.get("retryOn", "").split(","):
                    need(cond in known, path, f"retryOn {cond}")

    for p in problems:
        print(p)
    print(f"{len(docs)} Istio resources checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
