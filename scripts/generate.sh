#!/usr/bin/env bash
# generate.sh regenerates everything derived from the protos in apis/:
# Go messages, gRPC stubs and grpc-gateway handlers under apis/gen/go, and the
# merged OpenAPI document apis/gen/openapi/parley.swagger.json.
#
# Steps: fetch the third-party protos (protodeps.sh), buf lint, then buf
# generate into freshly emptied output directories, so files of deleted protos
# disappear. The output depends only on the protos and the tool versions
# pinned in tools/go.mod, so running it twice gives byte-identical files.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# The tools run at the versions of tools/go.mod, not at whatever the
# workspace's other modules would select (-modfile needs the workspace off;
# buf passes this environment on to the plugins of buf.gen.yaml).
export GOWORK=off
buf() { go tool -modfile=tools/go.mod buf "$@"; }

bash scripts/protodeps.sh

echo "generate: buf lint"
buf lint

echo "generate: buf generate"
# buf (clean: true) and the rm below empty the output directories; the
# gazelle-generated BUILD.bazel files living there are kept aside and put
# back, so regenerating leaves them alone.
keep=$(mktemp -d)
trap 'rm -rf "$keep"' EXIT
(cd apis/gen && find . -name BUILD.bazel -exec cp --parents {} "$keep" \;) 2>/dev/null || true
rm -rf apis/gen/go apis/gen/openapi
buf generate
(cd "$keep" && find . -name BUILD.bazel -exec cp --parents {} "$OLDPWD/apis/gen" \;)

# Sanity checks, so that a silently skipped plugin cannot pass for success.
for want in apis/gen/openapi/parley.swagger.json; do
	[[ -s "$want" ]] || { echo "generate: $want is missing" >&2; exit 1; }
done
go_files=$(find apis/gen/go -name '*.go' | wc -l)
proto_files=$(find apis/parley -name '*.proto' | wc -l)
if ((go_files < proto_files * 2)); then
	echo "generate: only $go_files Go files for $proto_files protos" >&2
	exit 1
fi
echo "generate: $proto_files protos -> $go_files Go files + apis/gen/openapi/parley.swagger.json"
