#!/usr/bin/env bash
# Copies the screenshots docs/portal.md shows from the browser suite's output.
# Run `cargo test --test browser --test browser_passkeys` first; they write every page, in every
# condition, to target/browser/.
set -euo pipefail
cd "$(dirname "$0")"
src=../../target/browser
for name in \
    en-1280-light-login ko-390-dark-guide ko-1280-light-setup-prove en-1280-dark-setup-app \
    ko-390-light-recovery-codes ko-390-dark-challenge en-1280-light-account ko-390-dark-account \
    en-390-dark-error-429 ko-390-dark-sessions en-1280-light-trusted-browsers en-390-dark-check \
    ko-390-dark-lock ko-390-dark-challenge-email-sent en-1280-light-setup-method \
    en-1280-light-challenge-approve-waiting ko-390-dark-approvals-request ko-390-dark-devices-approver \
    en-390-dark-passkeys-added en-390-dark-certificates; do
    cp "$src/$name.png" "$name.png"
done
echo "copied to docs/screenshots/"
