#!/usr/bin/env python3
"""Drive the ramp chart (charts/ramp) through helm-python-sdk, Helm 4's Go SDK.

Used by e2e/tests/chart.rs. Every run prints exactly one JSON line on stdout and exits 0 when
the action succeeded, 1 when Helm refused it (the line then holds "error" and "error_type"),
2 on bad usage. Helm's own log goes to stderr with --verbose.

    ramp_chart.py --chart DIR [--values JSON] lint
    ramp_chart.py --chart DIR [--values JSON] [--namespace N] render NAME
    ramp_chart.py --chart DIR --kubeconfig K [--namespace N] [--values JSON] install NAME [--create-namespace]
    ramp_chart.py --chart DIR --kubeconfig K [--namespace N] [--values JSON] upgrade NAME
    ramp_chart.py --kubeconfig K [--namespace N] uninstall NAME

install and upgrade never wait for the operator's pods to become ready ("hookOnly"): the tests
check the objects the chart makes, not a running operator.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

try:
    import helm_python as helm
except ImportError as exc:  # reported to the Rust test as a clear failure
    print(json.dumps({"ok": False, "action": "import", "error": f"helm-python-sdk is not installed: {exc}"}))
    sys.exit(2)

# Longest Helm may take for one action (the CRD becoming established, API calls).
TIMEOUT_SECONDS = 60
# Do not wait for Deployments to become ready: only for hooks (the chart has none).
WAIT = "hookOnly"


def release_summary(release: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": release.get("name"),
        "namespace": release.get("namespace"),
        "revision": release.get("revision"),
        "status": release.get("status"),
        "notes": release.get("notes"),
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
        return {"lint": report}
    if args.action == "render":
        chart = helm.Chart.load(args.chart)
        # Schema validation is part of what a user's install does; render alone skips it.
        chart.validate_schema(values)
        rendered = chart.render(values, name=args.name, namespace=args.namespace, is_install=True)
        crds = {c["name"]: c.get("data", "") for c in chart.crds}
        return {"templates": rendered, "crds": sorted(crds)}

    with helm.Config(kubeconfig_path=args.kubeconfig, namespace=args.namespace) as cfg:
        if args.action == "install":
            release = cfg.install(
                helm.Chart.load(args.chart),
                args.name,
                values,
                namespace=args.namespace,
                timeout=TIMEOUT_SECONDS,
                wait=WAIT,
                create_namespace=args.create_namespace,
            )
            return {"release": release_summary(release)}
        if args.action == "upgrade":
            release = cfg.upgrade(
                helm.Chart.load(args.chart),
                args.name,
                values,
                namespace=args.namespace,
                timeout=TIMEOUT_SECONDS,
                wait=WAIT,
            )
            return {"release": release_summary(release)}
        if args.action == "uninstall":
            result = cfg.uninstall(args.name, timeout=TIMEOUT_SECONDS, wait=WAIT)
            return {"info": result.get("info"), "release": release_summary(result.get("release") or {})}
    raise ValueError(f"unknown action {args.action!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chart", help="chart directory")
    parser.add_argument("--kubeconfig", help="kubeconfig of the cluster")
    parser.add_argument("--namespace", default="ramp-system")
    parser.add_argument("--values", help="values as a JSON object")
    parser.add_argument("--create-namespace", action="store_true", help="install: create the namespace")
    parser.add_argument("--verbose", action="store_true", help="Helm's debug log on stderr")
    parser.add_argument("action", choices=["lint", "render", "install", "upgrade", "uninstall"])
    parser.add_argument("name", nargs="?", help="release name")
    args = parser.parse_args()

    if args.action in ("lint", "render", "install", "upgrade") and not args.chart:
        parser.error(f"{args.action} needs --chart")
    if args.action in ("render", "install", "upgrade", "uninstall") and not args.name:
        parser.error(f"{args.action} needs a release name")
    if args.action in ("install", "upgrade", "uninstall") and not args.kubeconfig:
        parser.error(f"{args.action} needs --kubeconfig")

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
