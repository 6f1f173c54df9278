#!/usr/bin/env bash
# Build docker/endpoint/Dockerfile without a Docker engine (buildah, vfs storage, chroot isolation)
# and smoke-test the image: /ping and /invocations on the CPU provider, /ping 503 with the default
# provider (cuda) where there is no GPU. docs/endpoint.md records a run.
#
#   sudo apt-get install buildah debootstrap      (Debian 12: buildah 1.28)
#   scripts/build_endpoint_image_buildah.sh [MODEL_DIR] [CUDA_IMAGE]
#
# CUDA_IMAGE defaults to a local Debian 12 base made with debootstrap, for machines that cannot
# reach Docker Hub (the dev container: "lookup registry-1.docker.io ... no such host"): it has no
# CUDA libraries, so it checks the build steps and the server, not the GPU. With registry access,
# pass the Dockerfile's own base, docker.io/nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04.
# HOST_CA (default /etc/ssl/certs/ca-certificates.crt) is handed to pip inside the build, for
# networks that re-sign TLS.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL_DIR=${1:-$HOME/.cache/labelwise/models}
CUDA_IMAGE=${2:-localhost/debian-bookworm-base}
HOST_CA=${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
PORT=${PORT:-18790}
B=(buildah --storage-driver vfs)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ $CUDA_IMAGE == localhost/debian-bookworm-base ]] && ! "${B[@]}" inspect "$CUDA_IMAGE" >/dev/null 2>&1; then
  debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >/dev/null
  ctr=$("${B[@]}" from scratch)
  cp -a "$work/rootfs/." "$("${B[@]}" mount "$ctr")/"
  "${B[@]}" umount "$ctr" >/dev/null
  "${B[@]}" commit -q "$ctr" "$CUDA_IMAGE" >/dev/null
  "${B[@]}" rm "$ctr" >/dev/null
fi

printf '[global]\ncert = /run/host-ca.crt\n' >"$work/pip.conf"
time "${B[@]}" bud --isolation chroot --format docker \
  -v "$HOST_CA:/run/host-ca.crt:ro" -v "$work/pip.conf:/etc/pip.conf:ro" \
  --build-arg "CUDA_IMAGE=$CUDA_IMAGE" -f docker/endpoint/Dockerfile -t localhost/labelwise-endpoint:dev .

# The models as SageMaker unpacks model.tar.gz: one directory per model under /opt/ml/model.
mkdir -p "$work/model"
for name in multilingual-e5-small all-minilm-l6-v2 efficientnet-lite0; do
  [[ -f $MODEL_DIR/$name/manifest.json ]] && cp -rL "$MODEL_DIR/$name" "$work/model/$name"
done

ping_until() {  # ping_until STATUS: /ping's JSON once its "status" is STATUS (60 s)
  for _ in $(seq 300); do
    body=$(curl -s -m 2 "http://127.0.0.1:$PORT/ping" || true)
    if [[ $body == *"\"status\": \"$1\""* ]]; then echo "$body"; return 0; fi
    sleep 0.2
  done
  echo "no /ping with status $1" >&2; return 1
}

serve() {  # serve PROVIDER: `serve` in the image (host network), until stop
  ctr=$("${B[@]}" from -q localhost/labelwise-endpoint:dev)
  "${B[@]}" run --isolation chroot -v "$work/model:/opt/ml/model:ro" -e "SAGEMAKER_BIND_TO_PORT=$PORT" \
    -e "LABELWISE_ENDPOINT_PROVIDER=$1" "$ctr" serve --threads 1 >"$work/serve.log" 2>&1 &
  pid=$!
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; "${B[@]}" rm "$ctr" >/dev/null; }

serve cpu
echo "provider cpu: /ping $(ping_until ok)"
for model in multilingual-e5-small all-minilm-l6-v2; do
  curl -s -X POST -H 'Content-Type: application/json' "http://127.0.0.1:$PORT/invocations" \
    -d "{\"op\": \"embed\", \"model\": \"$model\", \"inputs\": [\"hello\"], \"encoding\": \"list\"}" |
    python3 -c 'import json, sys; d = json.load(sys.stdin); print("  /invocations", d["model"], d["provider"], d["dimension"])'
done
stop

serve cuda
echo "provider cuda (no GPU): /ping $(ping_until unhealthy)"
stop
