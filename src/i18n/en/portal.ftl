# The portal's pages in English. Ids ending in `-html` carry markup and are rendered with
# `t_html` (arguments escaped); every other text is escaped as a whole.

## Shared by several pages

page-help = Help
code-label = Code
code-or-recovery-label = Code or recovery code
back-to-account = Back to account security
use-another-email = Use another email
set-up-now = Set up now
two-step-not-set-up = Two-step verification is not set up.
code-sent-html = Enter the 6-digit code we sent to <strong>{ $email }</strong>. It is valid for 10 minutes.
too-many-attempts = Too many attempts.
code-send-failed = We could not send the code. Try again in a moment.
code-send-limit = Too many codes were requested.
code-wrong = The code is incorrect. Check it and try again.
email-invalid = Enter a valid email address.

## Error pages, by status

error-400-title = Bad request
error-400 = The request could not be understood. Check the address and try again.
error-401-title = Sign-in required
error-401 = Sign in to continue.
error-403-title = Access denied
error-403 = You do not have permission to open this page. Ask your administrator if you think this is a mistake.
error-404-title = Not found
error-404 = There is nothing at this address.
error-405-title = Method not allowed
error-405 = This address does not accept that kind of request.
error-408-title = Request timed out
error-408 = The form took too long to arrive, so it was not read. Check your connection and send it again.
error-413-title = Too much data
error-413 = This form sent more data than this page accepts. Choose a smaller file or send less, then try again.
error-431-title = Request too large
error-431 = Your browser sent more data with this request than this service accepts, often from too many cookies. Clear this site's cookies, then try again.
error-429-title = Too many requests
error-429 = Too many requests came from this browser in a short time.
error-502-title = Service unavailable
error-502 = The service behind this address did not answer properly. Try again in a moment.
error-503-title = Service unavailable
error-503 = The service is temporarily unavailable. Try again in a moment.
error-504-title = Service timed out
error-504 = The service took too long to answer. Try again in a moment.
error-other-title = Something went wrong
error-other = The request could not be completed. Try again in a moment.

## Sign-in (/login)

login-title = Sign in
login-username = User name or email
login-password = Password
login-submit = Sign in
login-failed = The user name or password is incorrect, or sign-in is temporarily blocked. Try again later.

## Account security (/account)

account-title = Account security
account-user = User name
account-name = Name
account-email = Email
account-level = Sign-in level
account-sign-out = Sign out
account-two-step = Two-step verification
account-app = Authenticator app
account-app-since = On since { $date }
account-recovery-left = Recovery codes left
account-emergency-email = Emergency contact email
account-fresh = You confirmed it is you: you can make changes until { $until }.
account-replace-app = Replace the authenticator app
account-change-emergency-email = Change the emergency email
account-new-codes = Make new recovery codes (the old ones stop working)
account-remove-app = Remove the authenticator app (turns two-step verification off)
account-confirm-first = To change your two-step verification or emergency email, first confirm it is you: enter the code your authenticator app shows now, or a recovery code.
account-confirm = Confirm it is you
account-verify-first = Verify to make changes
account-second-factor-first = Verify with your second factor first.
account-fresh-proof-needed = Confirm it is you first: enter a current code from your authenticator app or a recovery code.
account-codes-renewed = New recovery codes were made; the old ones no longer work.
account-done-authenticator = The new authenticator app is in use; the old one no longer works. Your other sessions were signed out.
account-done-emergency-email = Your emergency contact email was changed.

## Setting up two-step verification (/setup)

setup-title = Set up two-step verification
setup-step-prove = Confirm it is you
setup-step-contact = Emergency email
setup-step-app = Authenticator app
setup-will-send-html = To confirm it is you, we send a code to your registered email, <strong>{ $email }</strong>.
setup-no-email = Your account has no registered email. Ask your administrator for an enrolment token.
setup-send = Send the code
setup-send-again = Send a new code
setup-code-or-token = Code or enrolment token
setup-confirm = Confirm
setup-contact-intro-html = Register an <strong>emergency contact email</strong>. We tell this address, as well as your registered email, whenever your two-step verification changes or a recovery code is used.
setup-contact-label = Emergency contact email
setup-next = Next
setup-contact-code-html = Enter the 6-digit code we sent to <strong>{ $email }</strong>.
setup-app-code = The 6-digit code the app shows
setup-turn-on = Turn on
setup-sent = We sent a code. Check your inbox.
setup-expired = The code has expired or was tried too many times. Request a new one.
setup-not-yet = That code is not valid. Wait for the app to show a new code and enter it.
setup-fault = Something went wrong. Try again in a moment.
setup-done = Two-step verification is on. From now on, signing in asks for a code from your authenticator app.

## A new authenticator app's QR code (setup and replacement)

qr-scan = In the authenticator app on your phone, add an account and scan this QR code. If you cannot scan it, type the key instead.
qr-key = Key
qr-open = Open in an authenticator app on this device

## Recovery codes, shown once

codes-title = Your recovery codes
codes-save = Save or print these ten recovery codes now and keep them somewhere safe. Each works once, and they will not be shown again after you leave this page.
codes-continue = Continue

## The setup guide (/guide)

guide-title = Two-step verification is required
guide-required-html = { $service } requires <strong>two-step verification</strong>. Your account, { $user }, does not have it set up yet.
guide-required-from-html = From <strong>{ $date }</strong>, { $service } requires <strong>two-step verification</strong>. Your account, { $user }, does not have it set up yet.
guide-why = With two-step verification, a stolen password is not enough: signing in also needs a code from the authenticator app on your phone.
guide-how = How it works
guide-app = Authenticator app
guide-app-text = scan a QR code with an authenticator app on your phone (Google Authenticator, Microsoft Authenticator and others), then enter the 6-digit code it shows each time you sign in. It works without a network connection.
guide-contact = Emergency contact email
guide-contact-text = registered during setup; it receives notices about your two-step verification.
guide-codes = Recovery codes
guide-codes-text = ten single-use codes for when you lose your phone. Keep them somewhere safe.
guide-before = Before setup we send a code to your registered email to confirm it is you.
guide-later-button = Later
guide-must = You need to set up two-step verification to continue.
guide-grace-over = The grace period is over. Set up two-step verification to continue.
guide-later-free = You can set it up later, but it will be required from the date above.
# $left: postponements left after this one; $times: the same counting this one ($left + 1).
guide-later = You can postpone this.
guide-later-left = You can postpone this { $left } more { $left ->
        [one] time
       *[other] times
    } after this one.
guide-later-until = You can postpone this, until { $until }.
guide-later-left-until = You can postpone this { $left } more { $left ->
        [one] time
       *[other] times
    } after this one, until { $until }.

## The second-factor challenge (/2fa)

challenge-title = Two-step verification
challenge-intro = Enter the 6-digit code from the authenticator app on your phone.
challenge-verify = Verify
challenge-recovery-hint = No phone at hand? Enter one of your recovery codes (XXXXX-XXXXX) in the same field.
challenge-banned = Too many wrong codes.
challenge-replayed = That code was already used. Wait for the app to show a new code.
challenge-wrong = The code is incorrect. Check the app and try again.
challenge-recovery-intro = Enter one of the recovery codes you saved (XXXXX-XXXXX). Each works once.
challenge-use-recovery = Use a recovery code instead
challenge-use-totp = Use the authenticator app instead

## "Confirm it is you" before a change (/account/verify)

confirm-title = Confirm it is you
confirm-intro = Before your two-step verification or emergency email can change, confirm it is you: enter the 6-digit code your authenticator app shows now, or a recovery code (XXXXX-XXXXX). You then have 5 minutes to make changes.
confirm-button = Confirm
confirm-refused = The code is incorrect, or was already used. Wait for a new code and try again.

## Replacing the authenticator app (/account/authenticator)

authenticator-title = Replace the authenticator app
authenticator-intro = Set up a new authenticator app. Your current app keeps working until a code from the new one is confirmed here.
authenticator-code = The 6-digit code the new app shows
authenticator-switch = Switch to the new app
authenticator-cancel = Cancel and go back to account security
authenticator-not-valid = That code is not valid. Wait for the new app to show a new code and enter it.

## Changing the emergency email (/emergency-email)

emergency-email-title = Change the emergency email
emergency-email-change = Change it
emergency-email-current-html = We also tell this address when your two-step verification changes or a recovery code is used. Registered now: <strong>{ $email }</strong>
emergency-email-new = New emergency contact email
emergency-email-send = Send a code
emergency-email-same = That is already your emergency email.
emergency-email-sent = We sent a code to the new address. Check its inbox.
emergency-email-expired = The code has expired or was tried too many times. Start again.

## The page frame, shared by every page

nav-account = Account security
nav-sign-out = Sign out
error-home = Go to the start page
retry-in-seconds = { $seconds ->
        [one] Try again in a second.
       *[other] Try again in { $seconds } seconds.
    }
retry-in-minutes = { $minutes ->
        [one] Try again in a minute.
       *[other] Try again in { $minutes } minutes.
    }
retry-in-hours = Try again in { $hours } hours.
codes-as-text = The codes as text, to copy
codes-download = Download as a text file
codes-copy = Copy the codes
codes-copied = Copied
codes-print = Print
codes-print-hint = To print them, use your browser's Print command: the page prints without its buttons.

## The account hub's sections

account-default-method = default
account-new-codes-confirm = I understand that my current recovery codes stop working.
account-remove-warning = Without the app, signing in asks for your password only until you set up two-step verification again, which this service requires. Your other sessions are signed out.
account-remove-confirm = I understand: remove the authenticator app.
account-confirm-box = Tick the box to confirm.
account-events = Recent security events
account-event-when = { $when } · from { $address }
account-continue = Continue to the apps
event-sign_in = Signed in with the password
event-sign_out = Signed out
event-second_factor = Passed two-step verification
event-confirmed = Confirmed it was you
event-factor_added = Turned on two-step verification
event-factor_replaced = Replaced the authenticator app
event-factor_removed = Removed the authenticator app
event-emergency_email_changed = Changed the emergency email
event-recovery_codes_regenerated = Made new recovery codes
event-later = Postponed setting up two-step verification
event-other = Account change

## Account protection

login-keep = Keep me signed in
login-forgot = Forgot your password?
challenge-remember = Don't ask again on this browser
account-where = Where you are signed in
account-done-password = Your password was changed. Your other sessions were signed out.
sessions-title = Sessions and saved sign-ins
sessions-intro = Browsers and devices signed in to your account. If you do not recognise one, end it and change your password.
sessions-this = this browser
sessions-saved = saved sign-in
sessions-facts = { $address } · signed in { $started } · last seen { $last_seen }
sessions-end = Sign out
sessions-delete-saved = Delete saved sign-in
sessions-end-others = Sign out everywhere else
sessions-ended-one = The session was ended.
sessions-ended-others = Every other session was ended.
trusted-title = Trusted browsers
trusted-intro = These browsers skip two-step verification at sign-in until their time runs out. Remove any you no longer use.
trusted-off = The administrator does not allow trusting browsers: every sign-in asks for two-step verification.
trusted-none = No browser is trusted.
trusted-facts = { $address } · first used { $first_used } · last used { $last_used } · until { $expires }
trusted-remove = Remove
trusted-remove-all = Remove all trusted browsers
trusted-removed-one = The browser is no longer trusted.
trusted-removed-all = No browser is trusted any more.
check-title = Confirm it is you
check-intro = You signed in from a browser and network this account has not used before. To continue, confirm with a code sent to your email.
check-send = Send a code to { $to }
check-sent = A 6-digit code was sent to { $to }. It is valid for 10 minutes.
check-resend = Send a new code
check-wrong = The code is incorrect. Check the email and try again.
check-expired = The code has expired or was tried too often. Send a new one.
check-send-limit = Too many codes were sent.
check-send-failed = The code could not be sent. Try again in a moment.
lock-title = Lock your account
lock-intro = This sign-in was reported to you:
lock-when = When
lock-address = From
lock-browser = Browser
lock-app = App
lock-what = If it was not you, lock your account now: every session ends at once (including the one above), trusted browsers are forgotten, and nobody can sign in until you reset your password.
lock-submit = This wasn't me: lock my account
lock-done = Your account is locked and every session has ended. To use it again, reset your password; your two-step verification is asked for too.
lock-bad-link = This link is not valid any more: it was used, it expired, or it is incomplete.
password-title = Change password
password-rules = Use at least { $min } characters. Long phrases are easiest to remember; common passwords and ones built from your name are refused.
password-current = Current password
password-new = New password
password-submit = Change password
password-too-short = The new password is too short: use at least { $min } characters.
password-too-long = The new password is too long.
password-guessable = The new password is too easy to guess (it is common, or built from a word, a pattern or your name). Choose another.
password-wrong-current = The current password is incorrect.
password-banned = Too many wrong passwords.
password-code-needed = Enter a current code from your authenticator app (or a recovery code) as well.
reset-title = Reset password
reset-intro = Enter your user name or email. If the account exists, a link to choose a new password is sent to its email.
reset-send = Send the link
reset-sent = If the account exists and has an email, a link was sent to it. It works once, for 30 minutes.
reset-done = Your password was reset and your account unlocked. Every session was ended: sign in with the new password.
reset-bad-link = This reset link is not valid any more: it was used, it expired, or it is incomplete. Ask for a new one.
event-sign_in_failed = Failed sign-in
event-sign_in_alert = Sign-in from a new browser and network
event-environment_checked = New browser and network confirmed
event-browser_trusted = Browser trusted
event-trusted_browser_removed = Trusted browser removed
event-session_ended = Session ended
event-account_locked = Account locked
event-password_changed = Password changed
unknown-browser = Unknown browser
challenge-sms-intro = We send a 6-digit code by text message to { $to }.
challenge-email-intro = We send a 6-digit code to your emergency email { $to }.
challenge-send = Send the code to { $to }
challenge-sent = A code was sent to { $to }. It works until { $until }.
challenge-resend = Send a new code (the last one stops working)
challenge-expired = That code has run out, was used, or was tried too often. Send a new one.
challenge-send-blocked = Too many codes were requested, so sending is paused.
challenge-send-failed = The code could not be sent just now. Nothing was changed: try again in a moment.
challenge-nothing-arrived = No code arrived?
challenge-help-number = Check that the number above is yours. If it is not, use another method below and change it on your account page.
challenge-help-spam = Look in your spam or junk folder, and check that the address above is yours.
challenge-help-wait = Messages can take a minute. Send a new code only after that: each new code replaces the last one.
challenge-help-blocked = After too many requests, sending is paused for a while; the page says until when.
challenge-help-other = Still nothing? Use another method below, or ask your administrator.
challenge-use-email = Verify by email instead
challenge-use-sms = Get a code by text message instead
setup-method-intro = Choose how you will confirm it is you at each sign-in.
setup-method-app = Use an authenticator app
setup-method-sms = Get codes by text message
setup-phone-label = Mobile phone number
setup-phone-hint = With the country code, e.g. +82 10 1234 5678. We send a code to confirm it.
setup-phone-code = A 6-digit code was sent by text message to { $phone }. Enter it to turn on two-step verification.
setup-method-other = Use another number or method
phone-invalid = Enter a mobile number with its country code, such as +821012345678.
account-sms = Text message (SMS)
setup-step-method = Your method
phone-title = Phone for two-step verification
phone-current = Codes by text message go to { $phone }.
phone-none = No phone is registered. Register one to get codes by text message.
phone-new = New mobile phone number
phone-send = Send a code to this number
phone-sent = A code was sent by text message to the new number.
phone-change = Use this number
phone-another = Use another number
phone-same = That is already your phone for two-step verification.
account-change-phone = Change the phone
account-add-phone = Add a phone for text messages
account-done-phone = Your phone for two-step verification was changed.
account-confirm-first-sms = To change your two-step verification or emergency email, first confirm it is you with a code sent to your phone.
confirm-sms-intro = We send a 6-digit code by text message to { $phone }. A recovery code works too.
confirm-sms-sent = A code was sent to { $phone }. Enter it below (or a recovery code).
challenge-resend-soon = A code was sent moments ago; it can take a minute to arrive.
challenge-resend-wait = You can ask for a new code { $seconds } seconds after the last one.

## Devices: approval on a signed-in device, the security code for another device

challenge-use-approve = Approve on my signed-in device instead
challenge-use-device-code = Enter a security code from my signed-in device
approval-intro = Approve this sign-in on a phone or computer where you are already signed in and which you made an approver device.
approval-send = Send a request to my device
approval-send-again = Send a new request
approval-type-number = On your device, open “Approve a sign-in” and type this number:
approval-number-label = Number to type on your device
approval-waiting = Waiting for your approval until { $until }. This page goes on by itself once you approve.
approval-continue = I approved it: continue
approval-too-many = Too many approval requests in a row. Wait, or use another method below.
approval-expired = The request ran out or was replaced. Send a new one.
approval-still-waiting = The request has not been approved yet. Approve it on your device, then continue.
approval-denied = The request was denied on your device. If that was a mistake, send a new one.
device-code-intro = On a device where you are signed in, open “Devices” and choose “Sign in on another device”. Enter the security code it shows.
approvals-title = Approve a sign-in
approvals-intro = Someone is signing in to your account and asks for your approval:
approvals-until = The request runs out at { $until }.
approvals-number-label = Number shown on the signing-in screen
approvals-approve = Approve
approvals-deny = Deny
approvals-not-me-hint = Not you? Someone else knows your password.
approvals-not-me = This wasn't me
approvals-none = No sign-in is waiting for approval. This page shows a new request when one arrives.
approvals-refresh = Check again
approvals-approved = Approved. The other device is signing in.
approvals-denied = Denied. That sign-in cannot go on.
approvals-choose = Choose approve, deny or “this wasn't me”.
approvals-gone = That request is no longer waiting: it was decided, replaced or ran out.
approvals-wrong-number = The number did not match, so the request was denied. If it was you, start the sign-in again on the other device.
approvals-not-me-done = The request was denied, that browser was signed out and its address is blocked for now.
approvals-lock-offer = If you did not try to sign in, someone knows your password. Lock your account: every session ends, including this one, and nobody can sign in until the password is reset.
approvals-not-two-factor = To approve sign-ins here, this browser must be signed in with two-step verification.
approvals-not-recent = This browser passed two-step verification too long ago. Sign out and sign in again to approve sign-ins here.
approvals-not-approver = This browser is not an approver device. Make it one on the Devices page.
approvals-changed = This browser changed since it became an approver device (its device cookie was lost or belongs to another browser). Verify it again before it can approve sign-ins.
devices-title = Devices
devices-intro = Your devices: the ones that approve sign-ins and show security codes, your passkeys, and the browsers you trust.
devices-this = This browser
devices-this-approver = This browser is an approver device: it can approve your sign-ins and show a security code for another device.
devices-this-not-approver = Make this browser an approver device to approve sign-ins on it, the way you use your phone.
devices-add = Use this browser to approve sign-ins
devices-verify-again = Verify this browser again
devices-code = Sign in on another device
devices-code-again = Show a new security code
devices-code-intro = On the other device, after your password, choose “Enter a security code from my signed-in device” and enter:
devices-code-label = Security code
devices-code-until = It works once, until { $until }.
devices-code-not-approver = Only an approver device can show a security code.
devices-approvers = Approver devices
devices-this-badge = this browser
devices-facts = { $address } · added { $added } · last used { $last_used }
devices-remove = Remove
devices-none = No approver devices yet.
devices-trusted-count = { $count ->
    [0] No trusted browsers.
    [one] One trusted browser skips two-step verification.
   *[other] { $count } trusted browsers skip two-step verification.
}
devices-added = This browser is now an approver device.
devices-no-passkeys = No passkeys yet.
devices-manage-passkeys = Manage passkeys
devices-removed = The device was removed.
event-approval_requested = Sign-in approval asked for
event-approval_approved = Sign-in approved on a device
event-approval_denied = Sign-in denied on a device
event-approval_not_me = Sign-in refused: “this wasn't me”
event-approvals_blocked = Too many approval requests
event-approver_added = Approver device added
event-approver_removed = Approver device removed
event-device_code_shown = Security code shown for another device
## Passkeys (portal/passkeys.rs, templates passkeys.html and passkey_verify.html)
passkey-title = Passkeys
passkey-manage = Manage passkeys
passkey-intro = A passkey lets you confirm it is you with your device's screen lock (fingerprint, face or PIN) instead of a code. You can add several, one for each device.
passkey-facts = Added { $created } · last used { $last_used }
passkey-facts-unused = Added { $created } · not used yet
passkey-rename = Rename
passkey-name-label = Name of the passkey
passkey-rename-save = Save the name
passkey-remove = Remove
passkey-remove-named = Remove the passkey { $name }
passkey-none-yet = You have no passkeys yet.
passkey-add = Add a passkey
passkey-default-name = Passkey { $n }
passkey-needs-script = Passkeys need JavaScript in this browser. You can still use your other methods.
passkey-confirm-first = To add or remove a passkey, first confirm it is you.
passkey-added = The passkey was added.
passkey-renamed = The passkey was renamed.
passkey-removed = The passkey was removed.
passkey-expired = That passkey request ran out or was already used. Please try again.
passkey-rejected = The passkey could not be verified. Please try again.
passkey-duplicate = This passkey is already registered.
passkey-too-many = You have the most passkeys allowed. Remove one first.
passkey-not-found = That passkey was not found. It may have been removed already.
passkey-bad-name = Give the passkey a name.
passkey-last-method = This is your last way to confirm it is you. Add another method or make recovery codes before removing it.
passkey-needs-proof = Confirm it is you first, then try again.
passkey-not-allowed = Finish two-step verification first.
passkey-not-verified = The passkey did not confirm it is you. Please try again, or use another method.
passkey-none = You have no passkey to use here. Please use another method.
passkey-use = Use a passkey instead
passkey-verify-intro = Use the passkey on this device or a security key: your browser will ask for your screen lock.
passkey-verify-button = Use my passkey
passkey-browser-failed = The browser did not finish the passkey step. Please try again, or use another method.
passkey-sign-in-title = Or use a passkey
passkey-sign-in = Sign in with a passkey

## Client certificates

cert-title = Certificates
cert-intro = A certificate your organisation issued can confirm it is you instead of a code, and some pages may need one. Register it here: by the certificate your browser presents, or by uploading its file.
cert-not-offered = This service does not use client certificates.
cert-needed = The page you opened needs a registered certificate on this connection. Register one below, or choose a certificate in your browser when it asks, then open the page again.
cert-open-again = Open the page again
cert-confirm-title = Register this certificate?
cert-confirm-intro = Check that this is your certificate before registering it:
cert-register = Register
cert-cancel = Cancel
cert-presented-title = The certificate your browser presented
cert-presented-intro = Your browser presented this certificate on this connection. It is not registered yet.
cert-presented-yours = It is registered to your account and counts for this connection.
cert-register-presented = Register this certificate
cert-registered-title = Registered certificates
cert-expired-badge = expired
cert-added = Registered { $added }
cert-remove = Remove this certificate
cert-reason = Reason (optional)
cert-remove-confirm = I understand this certificate will no longer work here.
cert-none = No certificates are registered.
cert-upload-title = Register by file
cert-upload-intro = Upload the certificate alone, as a .pem, .crt, .cer or .der file: never its private key or a .p12/.pfx file. You can register up to { $max }.
cert-file = Certificate file
cert-check = Check this certificate
cert-subject = Subject
cert-issuer = Issuer
cert-serial = Serial number
cert-valid = Valid
cert-valid-range = { $from } to { $until }
cert-fingerprint = Fingerprint (SHA-256)
cert-malformed = This file is not a certificate. Upload the certificate alone (.pem, .crt, .cer or .der), not a .p12 or .pfx file.
cert-private-key = This file holds a private key, which must never leave your device. It was not kept. Upload the certificate alone.
cert-expired = This certificate has expired. Have it reissued, then register the new one.
cert-not-yet-valid = This certificate is not valid yet. Register it once it is.
cert-untrusted = This certificate was not issued by an authority this service trusts.
cert-revoked = This certificate was revoked by its issuer. Have it reissued.
cert-taken = This certificate is registered to another account.
cert-already-yours = This certificate is already registered to your account.
cert-too-many = You have registered as many certificates as allowed. Remove one first.
cert-not-staged = The uploaded certificate is no longer waiting. Upload it again.
cert-unknown = That certificate is not registered to your account.
cert-confirm-first = Confirm it is you first.
cert-registered = The certificate was registered.
cert-removed = The certificate was removed. It no longer works here, on any connection.
cert-none-presented = Your browser presented no certificate on this connection.
cert-remove-unconfirmed = Tick the box to confirm the removal.
account-certificates = Certificates
event-certificate_registered = Certificate registered
event-certificate_removed = Certificate removed
