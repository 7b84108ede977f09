#!/usr/bin/env bash
# protodeps.sh copies the third-party .proto files that apis/ imports into the
# git-ignored third_party/ directory at the repository root.
#
# The Buf Schema Registry is unreachable from our machines, so buf `deps:` cannot
# be used. Instead the protos come from pinned Go modules, fetched through the Go
# module proxy. They are copied as real, writable files (not symlinks): buf
# breaking builds images from exported trees, where symlinks into the module
# cache would not resolve.
#
# Idempotent, works from any working directory, never touches go.mod, go.sum or
# go.work.sum (the download runs outside any module, with the workspace off).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/third_party}"

# Pinned sources: "<module>@<version> <dir inside the module> <file>..."
# (files are relative to the dir and keep that relative path under $DEST).
SOURCES=(
	"github.com/grpc-ecosystem/grpc-gateway@v1.16.0 third_party/googleapis google/api/annotations.proto google/api/http.proto"
	"github.com/bufbuild/protovalidate@v1.2.2 proto/protovalidate buf/validate/validate.proto"
	"github.com/grpc-ecosystem/grpc-gateway/v2@v2.33.0 . protoc-gen-openapiv2/options/annotations.proto protoc-gen-openapiv2/options/openapiv2.proto"
)

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# module_dir prints the module cache directory of <module>@<version>,
# downloading it through the proxy if needed.
module_dir() {
	local json dir
	# Run from an empty directory with the workspace disabled so that no go.mod,
	# go.sum or go.work.sum of this repository can be read or rewritten.
	json="$(cd "$scratch" && GOWORK=off GOFLAGS=-mod=mod go mod download -json "$1")"
	dir="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
	if [[ -z "$dir" || ! -d "$dir" ]]; then
		printf 'protodeps: could not locate %s in the module cache:\n%s\n' "$1" "$json" >&2
		return 1
	fi
	printf '%s\n' "$dir"
}

copied=0
for entry in "${SOURCES[@]}"; do
	read -r -a parts <<<"$entry"
	mod="${parts[0]}"
	sub="${parts[1]}"
	dir="$(module_dir "$mod")"
	for rel in "${parts[@]:2}"; do
		src="$dir/$sub/$rel"
		dst="$DEST/$rel"
		if [[ ! -f "$src" ]]; then
			printf 'protodeps: %s has no %s\n' "$mod" "$sub/$rel" >&2
			exit 1
		fi
		# Skip identical files so repeated runs leave timestamps alone.
		if [[ -f "$dst" && ! -L "$dst" ]] && cmp -s "$src" "$dst"; then
			continue
		fi
		mkdir -p "$(dirname "$dst")"
		rm -f "$dst"
		cp "$src" "$dst"
		# Module cache files are read-only; the copies must be ordinary files.
		chmod u+w,go+r "$dst"
		copied=$((copied + 1))
	done
done

printf 'protodeps: third_party protos ready in %s (%d updated)\n' "$DEST" "$copied"
