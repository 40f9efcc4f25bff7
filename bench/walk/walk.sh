#!/usr/bin/env bash
# walk.sh [COMMIT]: which of our files and packages one client message crosses, from
# its POST to its replies' outcomes recorded (TestWalkOneMessage in walk_test.go).
#
# It runs the test twice under coverage: one question, then two, each run lasting
# the same 5 s after the first question. The files with code that ran more in the
# second run are the walk. Timers (the poller's rescan, the scheduled jobs) tick about
# as often in both runs, but one may tick once more: the pair is run three times and
# only the files every pair names are kept. The fake portal (bitrix24/b24test) and the
# tests' own helper (testwait) are not the bot's and are left out. With COMMIT, the
# same test is run on that commit, checked out in a temporary worktree. With
# SUPPORTBOT_WALK_SOURCE=fetch in the environment, the walk is the subtest where the
# message is fetched from the portal's imbot.v2 queue (the poller), instead of the one
# where it is posted to the webhook.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
tree=$here
if [ $# -gt 0 ]; then
	tree=$(mktemp -d)
	git -C "$here" worktree add -q --detach "$tree" "$1"
	trap 'git -C "$here" worktree remove --force "$tree"' EXIT
	cp "$here/walk_test.go" "$tree/walk_test.go"
fi
out=$(mktemp -d)
cd "$tree"
for pair in 1 2 3; do
	for run in one two; do
		second=""
		[ $run = two ] && second=1
		SUPPORTBOT_WALK_SECOND=$second SUPPORTBOT_WALK_PAD=5s go test -count=1 -run "^TestWalkOneMessage\$/^${SUPPORTBOT_WALK_SOURCE:-webhook}\$" \
			-covermode=atomic -coverpkg=./... -coverprofile="$out/$run" . >"$out/$run.log" 2>&1 || { cat "$out/$run.log"; exit 1; }
	done
	# A block's count is the last field; a block may be listed once per test binary.
	awk 'FNR == 1 { next } { n = split($0, f, " "); block = f[1]; count[FILENAME, block] += f[n]; blocks[block] = 1 }
		END { for (b in blocks) if (count[ARGV[2], b] > count[ARGV[1], b]) { split(b, p, ":"); print p[1] } }' \
		"$out/one" "$out/two" | grep -v -e '/b24test/' -e '/testwait/' -e '_test\.go$' | sort -u >"$out/pair$pair"
done
comm -12 "$out/pair1" "$out/pair2" | comm -12 - "$out/pair3" >"$out/files"
cat "$out/files"
echo "$(wc -l <"$out/files") files, $(sed 's#/[^/]*$##' "$out/files" | sort -u | wc -l) packages"
rm -rf "$out"
