#!/usr/bin/env bash
# Runs gazelle (pinned in tools/go.mod) over the workspace without Bazel.
# usage: gazelle.sh fix|diff
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-fix}
exec go tool gazelle update -repo_root="$PWD" -mode="$mode" \
  -go_prefix github.com/parleyhq/parley -build_file_name BUILD.bazel .
