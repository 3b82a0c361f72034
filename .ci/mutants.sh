#!/usr/bin/env bash
# Mutation testing of the security layers (not part of .ci/run: a few hours on two cores).
# Every check in these files must have a test of its own; a MISSED mutant is a rule no test
# guards. Survivors judged equivalent are listed, with the reason, in SECURITY.md.
#
#   bash .ci/mutants.sh                      # every file below
#   bash .ci/mutants.sh src/fanout/retry.rs  # one file
#
# Output in target/mutants/mutants.out (missed.txt, caught.txt, ...). Extra
# cargo-mutants arguments go in MUTANTS_ARGS (for example "--in-place" on a scratch clone,
# which reuses the build directory and is several times faster).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || cargo install cargo-mutants --locked
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
    files=(
        src/devices/list.rs src/devices/linking.rs src/devices/primary.rs src/devices/limits.rs
        src/devices/legacy.rs src/devices/primary_records.rs
        src/devices/primary_state.rs src/persist/record.rs
        src/fanout/retry.rs src/fanout/retry_request.rs src/fanout/receive.rs
        src/fanout/message_id.rs src/fanout/ledger.rs src/fanout/groups.rs src/fanout/journal.rs
        src/fanout/records.rs src/fanout/state.rs src/fanout/send.rs src/fanout/membership.rs
        src/fanout/call_key_retry.rs
        src/fanout/body_digest.rs src/fanout/lists.rs src/fanout/reach.rs src/server/coverage.rs
        src/group/inbound.rs src/calls/call.rs src/calls/key_message.rs
        src/ratchet/session.rs src/ratchet/state.rs src/ratchet/message.rs
        src/ratchet/skipped.rs src/ratchet/keys.rs src/x3dh/store.rs src/x3dh/kem_prekeys.rs
        src/ratchet/pq/erasure.rs src/ratchet/pq/extension.rs src/ratchet/pq/ratchet.rs
        src/ratchet/pq/state.rs src/primitives/kem768.rs
    )
fi
# Every test binary but the slow seeded suites (their rules have tests of their own).
tests=(--lib)
for t in tests/*.rs; do
    case "$(basename "$t" .rs)" in insider_suite | wycheproof) ;; *) tests+=(--test "$(basename "$t" .rs)") ;; esac
done
args=()
for f in "${files[@]}"; do args+=(-f "$f"); done
# shellcheck disable=SC2086
exec cargo mutants --timeout 120 ${MUTANTS_ARGS:-} "${args[@]}" -o target/mutants -- "${tests[@]}"
