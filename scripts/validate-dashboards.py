#!/usr/bin/env python3
"""Checks the Grafana dashboards and provisioning of the betanet stack.

Grafana itself cannot run in CI (no registry to pull it from), so this script
checks statically what Grafana would otherwise reject or render empty:

* every grafana/dashboards/*.json parses, has schemaVersion >= 36, a unique
  uid and title, and the four dashboards (Throughput, Latency, Memory,
  Health) are there;
* every panel has a unique id, a datasource naming the provisioned
  Prometheus uid, and at least one query; every query names that uid too,
  has a unique refId and a non-empty expression whose brackets balance;
* every metric an expression uses is one betanet exports (or Prometheus's
  own `up` / `scrape_*`), so a typo fails here rather than as an empty panel;
* the datasource and dashboard provisioning files parse, the dashboard
  provider's path is where docker-compose.betanet.yml mounts
  grafana/dashboards, and Grafana's home dashboard exists.

    scripts/validate-dashboards.py            # check, exit 1 on any problem
    scripts/validate-dashboards.py --queries  # also print every query as a
                                              # JSON line, $node -> .+
    scripts/validate-dashboards.py --prometheus http://127.0.0.1:9090 --wait 120
        # also run every query against a live Prometheus until each returns
        # data (exit 1 if some still return nothing after --wait seconds);
        # used by scripts/compose-e2e.sh

Needs Python 3.8+ and PyYAML.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("validate-dashboards: needs PyYAML (python3 -m pip install pyyaml)")

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "grafana" / "dashboards"
PROVISIONING = ROOT / "grafana" / "provisioning"
COMPOSE = ROOT / "docker-compose.betanet.yml"

MIN_SCHEMA_VERSION = 36
REQUIRED_DASHBOARDS = ("Throughput", "Latency", "Memory", "Health")

# What betanet serves on /metrics (histograms as their three series).
COUNTERS = [
    "betanet_packets_processed_total",
    "betanet_packets_dropped_total",
    "betanet_packets_received_total",
    "betanet_packets_forwarded_total",
    "betanet_packets_delivered_total",
    "betanet_cover_loops_sent_total",
    "betanet_cover_loops_returned_total",
    "betanet_cover_loops_lost_total",
    "betanet_loop_peer_sent_total",
    "betanet_loop_peer_lost_total",
    "betanet_link_handshakes_total",
    "betanet_link_rekeys_total",
    "betanet_link_records_rejected_total",
    "process_cpu_seconds_total",
]
GAUGES = [
    "betanet_memory_pool_hit_rate",
    "betanet_queue_depth",
    "betanet_replay_cache_entries",
    "betanet_egress_queue_depth",
    "betanet_epoch",
    "betanet_build_info",
    "betanet_loop_loss_ratio",
    "betanet_mixing_entropy_bits",
    "betanet_mixing_pool_packets",
    "betanet_link_sessions",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_start_time_seconds",
]
HISTOGRAMS = [
    "betanet_processing_time_seconds",
    "betanet_mixing_delay_seconds",
    "betanet_loop_rtt_seconds",
]
# Series Prometheus adds to every target.
PROMETHEUS_SERIES = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
]
KNOWN_METRICS = set(COUNTERS + GAUGES + PROMETHEUS_SERIES)
for _h in HISTOGRAMS:
    KNOWN_METRICS.update({_h + "_bucket", _h + "_sum", _h + "_count"})

# Grafana variables and their stand-ins when a query is run outside Grafana.
VARIABLES = {
    "node": ".+",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "15m",
}

METRIC_RE = re.compile(r"\b((?:betanet|process|scrape)_[a-zA-Z0-9_]+|up)\b")


def substitute(expr: str) -> str:
    """Replaces Grafana variables ($node, ${node}, [[node]]) with stand-ins."""
    for name, value in VARIABLES.items():
        expr = expr.replace("${" + name + "}", value)
        expr = expr.replace("[[" + name + "]]", value)
        expr = re.sub(r"\$" + re.escape(name) + r"\b", value, expr)
    return expr


def strip_strings(expr: str) -> str:
    """The expression with the contents of quoted strings removed."""
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def balanced(expr: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    for ch in strip_strings(expr):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack


def metrics_in(expr: str) -> set[str]:
    """Metric names used in an expression (not label names or functions)."""
    found = set()
    text = strip_strings(expr)
    # Label names inside {...} and in by/without/on/ignoring (...) are not metrics.
    text = re.sub(r"\{[^}]*\}", "{}", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    for match in METRIC_RE.finditer(text):
        name = match.group(1)
        rest = text[match.end():].lstrip()
        if rest.startswith("("):  # a function call, not a metric
            continue
        found.add(name)
    return found


class Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")


def load_yaml_dir(checker: Checker, directory: Path) -> list[tuple[Path, dict]]:
    files = sorted(list(directory.glob("*.yml")) + list(directory.glob("*.yaml")))
    if not files:
        checker.error(str(directory.relative_to(ROOT)), "no provisioning files")
    docs = []
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            checker.error(str(path.relative_to(ROOT)), f"invalid YAML: {e}")
            continue
        if not isinstance(doc, dict):
            checker.error(str(path.relative_to(ROOT)), "not a YAML mapping")
            continue
        if doc.get("apiVersion") != 1:
            checker.error(str(path.relative_to(ROOT)), "apiVersion must be 1")
        docs.append((path, doc))
    return docs


def grafana_mounts(checker: Checker) -> dict[str, Path]:
    """Container path -> repository path of the grafana service's bind mounts."""
    try:
        compose = yaml.safe_load(COMPOSE.read_text())
    except (OSError, yaml.YAMLError) as e:
        checker.error(COMPOSE.name, f"cannot read: {e}")
        return {}
    service = (compose.get("services") or {}).get("grafana")
    if not isinstance(service, dict):
        checker.error(COMPOSE.name, "has no grafana service")
        return {}
    mounts = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume.get("target", "")
        else:
            parts = str(volume).split(":")
            if len(parts) < 2:
                continue
            source, target = parts[0], parts[1]
        if source.startswith("."):
            mounts[target.rstrip("/")] = (ROOT / source).resolve()
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env if "=" in item)
    mounts["__home__"] = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", "")
    return mounts


def to_repo_path(mounts: dict, container_path: str) -> Path | None:
    container_path = container_path.rstrip("/")
    for target, source in mounts.items():
        if target == "__home__":
            continue
        if container_path == target or container_path.startswith(target + "/"):
            return source / container_path[len(target):].lstrip("/")
    return None


def check_provisioning(checker: Checker, mounts: dict) -> set[str]:
    """Returns the uids of the provisioned Prometheus datasources."""
    uids = set()
    for path, doc in load_yaml_dir(checker, PROVISIONING / "datasources"):
        where = str(path.relative_to(ROOT))
        for ds in doc.get("datasources") or []:
            if not ds.get("uid"):
                checker.error(where, f"datasource {ds.get('name')!r} has no fixed uid")
                continue
            if ds.get("type") == "prometheus":
                if not str(ds.get("url", "")).startswith("http"):
                    checker.error(where, f"datasource {ds['uid']} has no http url")
                uids.add(ds["uid"])
    if not uids:
        checker.error("grafana/provisioning/datasources", "no Prometheus datasource with a uid")

    if "/etc/grafana/provisioning" not in mounts or mounts["/etc/grafana/provisioning"] != PROVISIONING:
        checker.error(COMPOSE.name, "grafana must mount ./grafana/provisioning at /etc/grafana/provisioning")

    covered: set[Path] = set()
    for path, doc in load_yaml_dir(checker, PROVISIONING / "dashboards"):
        where = str(path.relative_to(ROOT))
        providers = doc.get("providers") or []
        if not providers:
            checker.error(where, "no dashboard providers")
        for provider in providers:
            if provider.get("type", "file") != "file":
                continue
            container_path = (provider.get("options") or {}).get("path", "")
            local = to_repo_path(mounts, container_path)
            if local is None:
                checker.error(where, f"provider path {container_path!r} is not mounted into grafana by {COMPOSE.name}")
                continue
            jsons = sorted(local.glob("*.json")) if local.is_dir() else ([local] if local.is_file() else [])
            if not jsons:
                checker.error(where, f"provider path {container_path!r} ({local}) holds no dashboards")
            covered.update(p.resolve() for p in jsons)
    for path in sorted(DASHBOARDS.glob("*.json")):
        if path.resolve() not in covered:
            checker.error(str(path.relative_to(ROOT)), "no dashboard provider loads this file")

    home = mounts.get("__home__")
    if home:
        local = to_repo_path(mounts, home)
        if local is None or not local.is_file():
            checker.error(COMPOSE.name, f"GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH {home} does not exist")
    return uids


def walk_panels(panels):
    for panel in panels or []:
        yield panel
        yield from walk_panels(panel.get("panels"))


def ds_uid(ds) -> str | None:
    if isinstance(ds, dict):
        return ds.get("uid")
    return None  # a name string or missing: Grafana would guess; we don't allow it


def check_dashboard(checker: Checker, path: Path, uids: set[str], queries: list) -> dict:
    where = str(path.relative_to(ROOT))
    try:
        board = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        checker.error(where, f"invalid JSON: {e}")
        return {}
    if not isinstance(board.get("schemaVersion"), int) or board["schemaVersion"] < MIN_SCHEMA_VERSION:
        checker.error(where, f"schemaVersion {board.get('schemaVersion')!r} < {MIN_SCHEMA_VERSION}")
    for key in ("uid", "title"):
        if not board.get(key):
            checker.error(where, f"no {key}")
    if board.get("id") not in (None,):
        checker.error(where, "\"id\" must be null or absent in a provisioned dashboard")

    for var in (board.get("templating") or {}).get("list") or []:
        if var.get("type") == "query" and ds_uid(var.get("datasource")) not in uids:
            checker.error(where, f"variable ${var.get('name')} does not use datasource uid {sorted(uids)}")

    panels = list(walk_panels(board.get("panels")))
    if not panels:
        checker.error(where, "no panels")
    ids = set()
    for panel in panels:
        title = panel.get("title") or "(untitled)"
        pwhere = f"{where}: panel {panel.get('id')} {title!r}"
        if panel.get("type") == "row":
            continue
        pid = panel.get("id")
        if not isinstance(pid, int):
            checker.error(pwhere, "no integer id")
        elif pid in ids:
            checker.error(pwhere, "duplicate panel id")
        ids.add(pid)
        if not panel.get("title"):
            checker.error(pwhere, "no title")
        if ds_uid(panel.get("datasource")) not in uids:
            checker.error(pwhere, f"datasource is not uid {sorted(uids)}")
        grid = panel.get("gridPos") or {}
        if not all(isinstance(grid.get(k), int) for k in ("h", "w", "x", "y")):
            checker.error(pwhere, "no gridPos")
        targets = panel.get("targets") or []
        if not targets:
            checker.error(pwhere, "has no query")
        refs = set()
        for target in targets:
            ref = target.get("refId")
            twhere = f"{pwhere} query {ref}"
            if not ref or ref in refs:
                checker.error(twhere, "missing or duplicate refId")
            refs.add(ref)
            if ds_uid(target.get("datasource")) not in uids:
                checker.error(twhere, f"datasource is not uid {sorted(uids)}")
            expr = (target.get("expr") or "").strip()
            if not expr:
                checker.error(twhere, "empty expression")
                continue
            if not balanced(expr):
                checker.error(twhere, f"unbalanced brackets in {expr}")
            unknown = metrics_in(expr) - KNOWN_METRICS
            if unknown:
                checker.error(twhere, f"unknown metric(s) {sorted(unknown)} in {expr}")
            leftover = re.findall(r"\$\{?[A-Za-z_]\w*", substitute(expr))
            if leftover:
                checker.error(twhere, f"unknown variable(s) {leftover}")
            queries.append({
                "dashboard": board.get("title"),
                "panel": title,
                "refId": ref,
                "expr": substitute(expr),
            })
    return board


def run_query(base: str, expr: str) -> tuple[str, int, int]:
    """Runs an instant query: (error or "", series returned, series not NaN)."""
    url = base.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as e:
        try:
            return json.load(e).get("error", str(e)), 0, 0
        except ValueError:
            return str(e), 0, 0
    except (urllib.error.URLError, OSError, ValueError) as e:
        return str(e), 0, 0
    if body.get("status") != "success":
        return body.get("error", "query failed"), 0, 0
    data = body.get("data", {})
    result = data.get("result", [])
    if data.get("resultType") == "scalar":
        result = [{"value": result}]
    numbers = 0
    for series in result:
        try:
            if not math.isnan(float(series["value"][1])):
                numbers += 1
        except (KeyError, IndexError, TypeError, ValueError):
            pass
    return "", len(result), numbers


def check_live(queries: list, base: str, wait: float, fail_on_nan: bool) -> int:
    """Runs every query until each returns data or `wait` seconds pass."""
    deadline = time.monotonic() + wait
    while True:
        outcome = [(q, *run_query(base, q["expr"])) for q in queries]
        failing = [o for o in outcome if o[1] or o[2] == 0 or (fail_on_nan and o[3] == 0)]
        if not failing or time.monotonic() >= deadline:
            break
        time.sleep(5)
    nan_only = [o for o in outcome if not o[1] and o[2] > 0 and o[3] == 0]
    for q, error, series, numbers in outcome:
        if error:
            state = f"ERROR {error}"
        elif series == 0:
            state = "NO DATA"
        elif numbers == 0:
            state = f"NaN only ({series} series)"
        else:
            state = f"ok ({numbers} series)"
        print(f"  {state:<24} {q['dashboard']} / {q['panel']} [{q['refId']}]", file=sys.stderr)
    if nan_only and not fail_on_nan:
        print(f"validate-dashboards: warning: {len(nan_only)} query(ies) return only NaN "
              "(a histogram with no observations yet)", file=sys.stderr)
    print(f"validate-dashboards: {len(queries) - len(failing)}/{len(queries)} queries return data "
          f"from {base}", file=sys.stderr)
    for q, error, series, numbers in failing:
        print(f"FAIL {q['dashboard']} / {q['panel']} [{q['refId']}]: "
              f"{error or ('no data' if series == 0 else 'NaN only')}: {q['expr']}", file=sys.stderr)
    return 1 if failing else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", action="store_true",
                        help="print every panel query as a JSON line (variables substituted)")
    parser.add_argument("--prometheus", metavar="URL",
                        help="also run every query against this Prometheus; each must return data")
    parser.add_argument("--wait", type=float, default=0, metavar="SECS",
                        help="with --prometheus: keep retrying for this long (default 0)")
    parser.add_argument("--fail-on-nan", action="store_true",
                        help="with --prometheus: a query whose every value is NaN fails too")
    args = parser.parse_args()

    checker = Checker()
    mounts = grafana_mounts(checker)
    uids = check_provisioning(checker, mounts)

    queries: list = []
    boards = []
    paths = sorted(DASHBOARDS.glob("*.json"))
    if not paths:
        checker.error("grafana/dashboards", "no dashboards")
    for path in paths:
        board = check_dashboard(checker, path, uids, queries)
        if board:
            boards.append((path, board))

    seen: dict[str, Path] = {}
    for path, board in boards:
        for key in ("uid", "title"):
            value = board.get(key)
            if value in seen:
                checker.error(str(path.relative_to(ROOT)), f"{key} {value!r} also in {seen[value].name}")
            seen[value] = path
    titles = " ".join(str(b.get("title", "")) for _, b in boards)
    for name in REQUIRED_DASHBOARDS:
        if name.lower() not in titles.lower():
            checker.error("grafana/dashboards", f"no {name} dashboard")

    if args.queries:
        for query in queries:
            print(json.dumps(query))

    panels = sum(1 for _, b in boards for p in walk_panels(b.get("panels")) if p.get("type") != "row")
    for error in checker.errors:
        print(f"FAIL {error}", file=sys.stderr)
    print(f"validate-dashboards: {len(boards)} dashboards, {panels} panels, {len(queries)} queries, "
          f"{len(checker.errors)} problem(s)", file=sys.stderr)
    if checker.errors:
        return 1
    if args.prometheus:
        return check_live(queries, args.prometheus, args.wait, args.fail_on_nan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
