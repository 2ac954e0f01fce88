#!/usr/bin/env python3
"""Drive one Helm action against a cluster through helm-python-sdk (Helm 4's Go SDK).

Used by crates/ramp-sim/tests/helm_*.rs, which starts an embedded ramp-sim, runs this script once
per step and checks the cluster between steps. Every run prints exactly one JSON line on stdout:

    {"ok": true, "action": "install", "release": {"name", "namespace", "version", "status"}, ...}
    {"ok": false, "action": "install", "error": "...", "error_type": "HelmReleaseError"}

and exits 0 on success, 1 on a Helm error, 2 on bad usage. Helm's own log goes to stderr
(`--verbose`), so a failing test shows what Helm was doing.

    helm_release.py --kubeconfig K --namespace N --chart DIR lint
    helm_release.py --kubeconfig K --namespace N --chart DIR install NAME [--values JSON] [--create-namespace]
    helm_release.py --kubeconfig K --namespace N --chart DIR upgrade NAME [--values JSON]
    helm_release.py --kubeconfig K --namespace N rollback NAME [--revision N]
    helm_release.py --kubeconfig K --namespace N uninstall NAME
    helm_release.py --kubeconfig K --namespace N history NAME
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

try:
    import helm_python as helm
except ImportError as exc:  # pragma: no cover - reported to the Rust test as a clear failure
    print(json.dumps({"ok": False, "action": "import", "error": f"helm-python-sdk is not installed: {exc}"}))
    sys.exit(2)

# Helm waits at most this long for anything (CRDs established, resources ready).
TIMEOUT_SECONDS = 60


def summary(release: dict[str, Any]) -> dict[str, Any]:
    """The fields of a release the test checks."""
    return {
        "name": release.get("name"),
        "namespace": release.get("namespace"),
        "revision": release.get("revision"),
        "status": release.get("status"),
    }


def parse_values(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    values = json.loads(text)
    if not isinstance(values, dict):
        raise ValueError(f"--values must be a JSON object, got {text!r}")
    return values


def run(args: argparse.Namespace) -> dict[str, Any]:
    values = parse_values(args.values)
    if args.action == "lint":
        report = helm.lint(args.chart, values, strict=True, namespace=args.namespace)
        problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        if report.get("errors") or problems:
            raise helm.HelmChartInvalidError(f"lint failed: {json.dumps(report)}")
        chart = helm.Chart.load(args.chart)
        rendered = chart.render(values, name="lint", namespace=args.namespace, is_install=True)
        return {"templates": sorted(rendered), "crds": [c["name"] for c in chart.crds]}

    with helm.Config(kubeconfig_path=args.kubeconfig, namespace=args.namespace) as cfg:
        if args.action == "install":
            chart = helm.Chart.load(args.chart)
            release = cfg.install(
                chart,
                args.name,
                values,
                namespace=args.namespace,
                timeout=TIMEOUT_SECONDS,
                create_namespace=args.create_namespace,
            )
            return {"release": summary(release)}
        if args.action == "upgrade":
            chart = helm.Chart.load(args.chart)
            release = cfg.upgrade(chart, args.name, values, namespace=args.namespace, timeout=TIMEOUT_SECONDS)
            return {"release": summary(release)}
        if args.action == "rollback":
            cfg.rollback(args.name, version=args.revision, timeout=TIMEOUT_SECONDS)
            return {"release": summary(cfg.status(args.name))}
        if args.action == "uninstall":
            result = cfg.uninstall(args.name, timeout=TIMEOUT_SECONDS)
            return {"info": result.get("info"), "release": summary(result.get("release") or {})}
        if args.action == "history":
            return {"history": [summary(r) for r in cfg.history(args.name)]}
    raise ValueError(f"unknown action {args.action!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", help="kubeconfig of the cluster (ramp-sim writes one)")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--chart", help="chart directory")
    parser.add_argument("--values", help="values as a JSON object")
    parser.add_argument("--revision", type=int, help="rollback target revision (default: previous)")
    parser.add_argument("--create-namespace", action="store_true", help="install: create the namespace")
    parser.add_argument("--verbose", action="store_true", help="Helm's debug log on stderr")
    parser.add_argument("action", choices=["lint", "install", "upgrade", "rollback", "uninstall", "history"])
    parser.add_argument("name", nargs="?", help="release name")
    args = parser.parse_args()

    if args.action != "lint" and (not args.name or not args.kubeconfig):
        parser.error(f"{args.action} needs --kubeconfig and a release name")
    if args.action in ("lint", "install", "upgrade") and not args.chart:
        parser.error(f"{args.action} needs --chart")

    if args.verbose:
        logging.basicConfig(stream=sys.stderr, level=logging.DEBUG, format="helm: %(message)s")
        helm.enable_logging(logging.DEBUG)

    try:
        result = run(args)
    except (helm.HelmError, ValueError) as exc:
        print(json.dumps({"ok": False, "action": args.action, "error": str(exc), "error_type": type(exc).__name__}))
        return 1
    print(json.dumps({"ok": True, "action": args.action, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
