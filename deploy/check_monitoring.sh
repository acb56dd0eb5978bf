#!/usr/bin/env bash
# Checks deploy/prometheus and deploy/grafana: Prometheus accepts the configuration and the
# alert rules, the rules' unit tests pass (promtool test rules), the dashboard is valid JSON,
# and every metric the rules and the dashboard use is one docs/metrics.md documents.
# Run by `bazel test //deploy:monitoring_test`; exits non-zero on the first problem.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
promtool=$(command -v promtool || true)
if [[ -z $promtool ]]; then
  echo "promtool not found (the prometheus package; tools/setup/install_deps.sh)" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/prometheus/prometheus.yml" "$here/prometheus/alerts.yml" \
  "$here/prometheus/alerts_test.yml" "$work/"
mkdir -p "$work/targets"
echo '[{"targets": ["127.0.0.1:9700"]}]' >"$work/targets/example.json"
(cd "$work" && "$promtool" check config prometheus.yml)
(cd "$work" && "$promtool" check rules alerts.yml)
(cd "$work" && "$promtool" test rules alerts_test.yml)
python3 - "$root" <<'PY'
import json, re, sys
root = sys.argv[1]
documented = set(re.findall(r"`(skein_[a-z0-9_]+)`", open(f"{root}/docs/metrics.md").read()))
used = {}
rules = open(f"{root}/deploy/prometheus/alerts.yml").read()
for name in re.findall(r"\b(skein_[a-z0-9_]+)", rules):
    used.setdefault(name, "alerts.yml")
dashboard = json.load(open(f"{root}/deploy/grafana/skein-dashboard.json"))
assert dashboard["panels"], "the dashboard has no panels"
for panel in dashboard["panels"]:
    assert panel["targets"], f"panel {panel['title']} has no query"
    for target in panel["targets"]:
        for name in re.findall(r"\b(skein_[a-z0-9_]+)", target["expr"]):
            used.setdefault(name, f"dashboard panel '{panel['title']}'")
# Histograms are documented by their base name.
base = lambda n: re.sub(r"_(bucket|sum|count)$", "", n)
missing = sorted(f"{n} (in {where})" for n, where in used.items() if base(n) not in documented)
if missing:
    sys.exit("metrics used but not in docs/metrics.md: " + ", ".join(missing))
print(f"{len(used)} metric names used, all documented")
PY
echo "monitoring checks passed"
