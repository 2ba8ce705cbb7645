"""The commands that ask a running controller about its hosts: `hosts [list]` and `hosts trust DEVICE`.

`hosts` prints the hosts table `status` prints (render.py), with the quarantined devices; `trust`
lifts a device's quarantine. A refusal (no such device, not quarantined, ambiguous) is the
controller's one line, exit code 3 like every refused request.
"""

from __future__ import annotations

import argparse
import json

from ..common.errors import EXIT_OK, printable
from .cluster_access import _client
from .dag_results import _json_default


def _run_hosts_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        status = client.status()
    if args.json:
        keys = ("format", "hosts", "devices", "quarantined")
        print(json.dumps({k: status.get(k) for k in keys}, indent=2, default=_json_default))
        return EXIT_OK
    from ..client.render import print_hosts

    print_hosts(status)
    return EXIT_OK


def _run_hosts_trust(args: argparse.Namespace) -> int:
    with _client(args) as client:
        trusted = client.trust(args.device)
    if args.json:
        print(json.dumps(trusted, indent=2))
        return EXIT_OK
    hosts = trusted.get("node_ids") or []
    on = f"its {len(hosts)} host(s) ({', '.join(hosts)}) get tasks again" if hosts else "its hosts get tasks again"
    print(
        printable(
            f"trusted device {trusted['device']} ({trusted['device_id']}): {on}; it was quarantined after "
            f"{trusted['mismatches']} mismatch(es), the last: {trusted['reason']}"
        )
    )
    return EXIT_OK
