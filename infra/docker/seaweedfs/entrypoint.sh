#!/bin/sh
# SeaweedFS with one S3 identity whose keys come from the environment (compose reads them from .env).
# The identity file is written at start into a private tmpfs-backed path, so the keys are never baked into
# an image or a committed file; then weed replaces this shell (exec) and receives the container's signals.
set -eu
: "${S3_ACCESS_KEY_ID:?S3_ACCESS_KEY_ID is not set}"
: "${S3_SECRET_ACCESS_KEY:?S3_SECRET_ACCESS_KEY is not set}"
umask 077
mkdir -p /run/glcf
cat > /run/glcf/s3.json <<JSON
{"identities": [{"name": "glcf",
  "credentials": [{"accessKey": "${S3_ACCESS_KEY_ID}", "secretKey": "${S3_SECRET_ACCESS_KEY}"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
JSON
exec weed server -dir=/data -ip=s3 -ip.bind=0.0.0.0 \
  -master.volumeSizeLimitMB="${SEAWEEDFS_VOLUME_SIZE_LIMIT_MB:-1024}" -volume.max=0 \
  -s3 -s3.port=8333 -s3.config=/run/glcf/s3.json
