# Messages to users (email, SMS, push) in English. For each kind K (`MessageKind::name`):
# `K-title` is the subject after `[service] `, `K-body` the email between the greeting and the
# sign-off, `K-line` the SMS/push text after `[service] `; `K-greeting` and `K-link` replace the
# shared ones where the kind needs its own. Variables: $service, $user, $has_user (yes/no),
# $code, $factor, $remaining, $new_address, $link. Fluent drops the indentation before a
# placeable at the start of a line; `{"    "}` keeps the indentation of a code or an address.

## The frame every email shares

message-greeting = { $has_user ->
        [yes] Hello { $user },
       *[no] Hello,
    }
message-origin =
    When: { $when }
    From: { $address }
    Browser: { $browser }
message-link = Review your account security: { $link }
message-sign-off =
    This is an automated message; replies are not read. For questions, contact your administrator.
    — { $service }

## Factors named in notices (an unknown factor is named as given)

factor-totp = authenticator app
factor-webauthn = security key
factor-passkey = passkey
factor-sms = text message (SMS)
factor-certificate = client certificate
factor-approver = approver device
factor-email = email
factor-recovery-codes = recovery codes

## One-time codes

enrolment_code-title = Your verification code
enrolment_code-body =
    To finish setting up two-step verification for your { $service } account, confirm that this email address is yours. Enter this code on the setup page:

    {"    "}{ $code }

    The code is valid for 10 minutes. Never share it with anyone.

    If you did not request this, ignore this email and tell your administrator: someone else may know your password.
enrolment_code-link = Continue the setup: { $link }
enrolment_code-line = Your verification code is { $code }. It is valid for 10 minutes; never share it. If you did not request it, ignore this message and tell your administrator.

emergency_email_code-title = Confirm your emergency contact email
emergency_email_code-greeting = Hello,
emergency_email_code-body =
    { $has_user ->
        [yes] { $user }
       *[no] Someone
    } entered this address as the emergency contact email of their { $service } account. To confirm that it receives mail, enter this code on the page where you entered the address:

    {"    "}{ $code }

    The code is valid for 10 minutes. Never share it with anyone.

    If you did not request this, ignore this email: the address will not be added. If the account is yours and you did not add this address, tell your administrator, because someone else may be signed in as you.
emergency_email_code-link = Open the account page: { $link }
emergency_email_code-line = Your code to confirm the emergency contact email is { $code }. It is valid for 10 minutes. If you did not request it, ignore this message and tell your administrator.

## Notices of a change

factor_added-title = A two-step verification method was added
factor_added-body =
    A two-step verification method was just added to your { $service } account:

    {"    "}{ $factor }

    If this was you, there is nothing else to do.

    If it was not you, someone else may have access to your account. Tell your administrator right away: they can change your password and reset your two-step verification.
factor_added-line = A two-step verification method ({ $factor }) was just added to your account. If it was not you, tell your administrator right away.

factor_removed-title = A two-step verification method was removed
factor_removed-body =
    A two-step verification method was just removed from your { $service } account:

    {"    "}{ $factor }

    If this was you, there is nothing else to do. Make sure you still have another way to sign in, such as another method or your recovery codes.

    If it was not you, someone else may have access to your account. Tell your administrator right away: they can change your password and reset your two-step verification.
factor_removed-line = A two-step verification method ({ $factor }) was just removed from your account. If it was not you, tell your administrator right away.

factor_replaced-title = Your two-step verification method was replaced
factor_replaced-body =
    The { $factor } of your { $service } account was just replaced by a new one. Codes from the old one no longer work; your recovery codes still do.

    If this was you, there is nothing else to do.

    If it was not you, someone else may have access to your account and can now sign in with their own device. Tell your administrator right away: they can change your password and reset your two-step verification.
factor_replaced-line = The { $factor } of your account was just replaced; the old one no longer works. If it was not you, tell your administrator right away.

emergency_email_changed-title = Your emergency contact email was changed
emergency_email_changed-body =
    The emergency contact email of your { $service } account was just changed to:

    {"    "}{ $new_address }

    Security notices about your account now also go to that address. This message goes to the addresses registered before the change.

    If this was you, there is nothing else to do.

    If it was not you, someone else may have access to your account. Tell your administrator right away: they can change your password and reset your two-step verification.
emergency_email_changed-line = The emergency contact email of your account was just changed to { $new_address }. If it was not you, tell your administrator right away.

recovery_codes_regenerated-title = New recovery codes were generated
recovery_codes_regenerated-body =
    New recovery codes were just generated for your { $service } account. The previous codes no longer work.

    Keep the new codes somewhere safe, such as a password manager.

    If it was not you, someone else may have access to your account. Tell your administrator right away: they can change your password and reset your two-step verification.
recovery_codes_regenerated-line = New recovery codes were just generated for your account; the old ones no longer work. If it was not you, tell your administrator right away.

## Notices of a sign-in

recovery_code_used-title = A recovery code was used to sign in
recovery_code_used-body =
    A recovery code was just used to sign in to your { $service } account. Each recovery code works only once.

    { $remaining ->
        [0] You have no recovery codes left. Generate new ones on your account page, so that you can still sign in if you lose your other two-step verification methods.
        [one] You have 1 recovery code left. Generate new ones on your account page soon.
        [2] You have 2 recovery codes left. Generate new ones on your account page soon.
        [3] You have 3 recovery codes left. Generate new ones on your account page soon.
       *[other] You have { $remaining } recovery codes left.
    }

    If it was not you, someone else knows your password and one of your recovery codes. Tell your administrator right away: they can change your password and reset your two-step verification.
recovery_code_used-line = A recovery code was just used to sign in to your account ({ $remaining } left). If it was not you, tell your administrator right away.

code_replayed-title = An authenticator code was used twice
code_replayed-body =
    Just now, while signing in to your { $service } account, an authenticator app code that had already been used was entered again. It was refused.

    This can mean that someone saw your code, for example on a fake (phishing) sign-in page, and tried to use it. If you simply submitted the same code twice, there is nothing to do.

    If it was not you, someone else knows your password. Tell your administrator right away: they can change your password and reset your two-step verification. Enter your codes only on the real { $service } sign-in page.
code_replayed-line = An already used authenticator code was just entered again to sign in to your account. If it was not you, tell your administrator right away.

second_factor_failed-title = Failed two-step verification on your account
second_factor_failed-body =
    Just now, someone entered the correct password for your { $service } account but did not pass two-step verification.

    If it was you, there is nothing to do.

    If it was not you, someone else knows your password. Tell your administrator right away: they can change your password and reset your two-step verification.
second_factor_failed-line = Someone just entered your password correctly but failed two-step verification. If it was not you, tell your administrator right away.

## Account protection

sign_in_code-title = Confirm this sign-in
sign_in_code-body =
    Someone, hopefully you, just signed in to your { $service } account from a browser and network the account has not used before. To continue, enter this code on the page that asked for it:

    {"    "}{ $code }

    The code is valid for 10 minutes. Never share it.

    If it was not you, do not enter the code: someone else knows your password. Change it, or tell your administrator.
sign_in_code-line = Your sign-in code is { $code }. It is valid for 10 minutes; never share it. If you did not just sign in, someone knows your password.

sign_in_alert-title = New sign-in to your account
sign_in_alert-body =
    Your { $service } account was just signed in to from a browser and network it has not used before.

    App: { $app }
sign_in_alert-link =
    If this was you, there is nothing to do.

    If it was not you, lock your account now. Every session ends at once, and nobody can sign in until you reset your password:
    { $link }
sign_in_alert-line = New sign-in to your account from an unfamiliar browser and network. If it was not you, lock your account:

account_locked-title = Your account was locked
account_locked-body =
    Your { $service } account was just locked from the link in a sign-in alert. Every session was ended and remembered browsers were forgotten.

    Nobody can sign in until the password is reset.
account_locked-link = To unlock it, reset your password (your two-step verification is asked for too): { $link }
account_locked-line = Your account was locked; every session was ended. Reset your password to unlock it:

password_changed-title = Your password was changed
password_changed-body =
    The password of your { $service } account was just changed. Your other sessions were ended and remembered browsers were forgotten.

    If it was not you, reset your password right away and tell your administrator.
password_changed-line = The password of your account was just changed. If it was not you, tell your administrator right away.

password_reset-title = Reset your password
password_reset-body =
    Someone, hopefully you, asked to reset the password of your { $service } account.
password_reset-link =
    To choose a new password, open this link within 30 minutes. It works once:
    { $link }

    If you did not ask for it, ignore this message: your password stays as it is.
password_reset-line = To reset your password, open this link within 30 minutes:

approvals_blocked-title = Too many sign-in approval requests
approvals_blocked-body =
    Sign-in approval requests for your { $service } account were asked for several times in a row, so new requests are refused for a while.

    Each request follows a correct password. If you did not ask for them, someone knows your password: do not approve anything, and change your password.
approvals_blocked-line = Too many sign-in approval requests for your account; new ones are refused for a while. If it was not you, someone knows your password: change it.

## Second-factor codes by SMS or email

challenge_code-title = Your verification code
challenge_code-body =
    Enter this code to finish signing in to your { $service } account:

    {"    "}{ $code }

    The code is valid for 10 minutes and works once. Never share it: { $service } will never ask you for it by phone or message.

    If you are not signing in, someone else knows your password. Change it, or tell your administrator.
challenge_code-line = Your verification code is { $code }. Valid for 10 minutes; never share it. Not you? Someone knows your password.

phone_code-title = Confirm your phone number
phone_code-body =
    To use this phone for two-step verification on your { $service } account, enter this code:

    {"    "}{ $code }

    The code is valid for 10 minutes. If you did not ask for it, ignore this message.
phone_code-line = Your code to register this phone is { $code }. Valid for 10 minutes; never share it.

phone_changed-title = Your two-step verification phone was changed
phone_changed-body =
    The phone that receives two-step verification codes for your { $service } account was just changed to:

    {"    "}{ $new_address }

    If it was not you, someone else has access to your account. Tell your administrator right away.
phone_changed-line = The 2FA phone of your account was just changed to { $new_address }. If it was not you, tell your administrator right away.
