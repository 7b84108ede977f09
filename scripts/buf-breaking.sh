#!/usr/bin/env bash
# buf-breaking.sh checks the protos in apis/ for changes that break clients.
#
#   scripts/buf-breaking.sh [git-ref]
#
# It compares the working tree against <git-ref>, by default the newest release
# tag (v*) or, before the first release, the previous commit (HEAD~1). The ref's
# apis/ is exported into a temporary directory together with the same
# third-party protos (scripts/protodeps.sh) and built into a buf image, which
# is what `buf breaking` compares against.
#
# Against a release tag breaking changes fail (exit status 100): released
# contracts are what users depend on. Against anything else they are only
# reported and the exit status is 0, since the v1 contracts are still being
# built. Failing to run the check at all is always an error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# buf runs at the version pinned in tools/go.mod (-modfile needs the workspace off).
export GOWORK=off
buf() { go tool -modfile=tools/go.mod buf "$@"; }
say() { printf 'buf-breaking: %s\n' "$*"; }

ref="${1:-}"
release=false
if ! git rev-parse --git-dir >/dev/null 2>&1; then
	say "not a git repository: nothing to compare against; skipping"
	exit 0
fi
if ! git rev-parse --verify --quiet 'HEAD^{commit}' >/dev/null; then
	say "no commits yet: nothing to compare against; skipping"
	exit 0
fi
if [[ -z "$ref" ]]; then
	# Newest by version order; versionsort.suffix puts v1.0.0-rc1 before v1.0.0.
	ref="$(git -c versionsort.suffix=- tag --list 'v*' --sort=-v:refname | head -n 1)"
	if [[ -n "$ref" ]]; then
		release=true
	else
		ref="HEAD~1"
	fi
elif [[ "$ref" == v* ]] && git rev-parse --verify --quiet "refs/tags/$ref" >/dev/null; then
	release=true
fi

if ! commit="$(git rev-parse --verify --quiet "$ref^{commit}")"; then
	if [[ "$ref" == "HEAD~1" ]]; then
		say "HEAD is the first commit: nothing to compare against; skipping"
		exit 0
	fi
	say "unknown git ref $ref" >&2
	exit 2
fi
if [[ -z "$(git ls-tree -r --name-only "$commit" -- apis | grep '\.proto$' || true)" ]]; then
	say "$ref ($commit) has no protos under apis/ yet: nothing to compare against; skipping"
	exit 0
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
against="$scratch/tree"
mkdir -p "$against"
git archive --format=tar "$commit" -- apis | tar -x -C "$against"
# The ref's own buf.yaml describes its layout; before it had one, use ours.
if git cat-file -e "$commit:buf.yaml" 2>/dev/null; then
	git show "$commit:buf.yaml" >"$against/buf.yaml"
else
	cp buf.yaml "$against/buf.yaml"
fi
bash scripts/protodeps.sh "$against/third_party" >/dev/null
bash scripts/protodeps.sh >/dev/null
buf build "$against" --output "$scratch/against.binpb"

if $release; then
	say "comparing apis/ with release $ref ($commit)"
else
	say "comparing apis/ with $ref ($commit); findings are reported, not enforced, until the first v* release"
fi

status=0
buf breaking apis --against "$scratch/against.binpb" || status=$?
case "$status" in
0)
	say "no breaking changes"
	;;
100)
	if $release; then
		say "breaking changes against release $ref (see above)" >&2
		exit 100
	fi
	say "breaking changes against $ref (see above); not enforced before the first release"
	;;
*)
	say "buf breaking failed (exit status $status)" >&2
	exit "$status"
	;;
esac
