# 포털 화면의 한국어 문구. `-html`로 끝나는 id는 마크업을 담고 있어 `t_html`로 그립니다(인자는
# 이스케이프). 나머지 문구는 통째로 이스케이프됩니다.

## 여러 화면에서 함께 쓰는 문구

page-help = 도움말
code-label = 인증 코드
code-or-recovery-label = 인증 코드 또는 복구 코드
back-to-account = 계정 보안으로 돌아가기
use-another-email = 다른 이메일 입력
set-up-now = 지금 설정하기
two-step-not-set-up = 2단계 인증이 설정되어 있지 않습니다.
code-sent-html = <strong>{ $email }</strong>(으)로 보낸 6자리 인증 코드를 입력하세요. 코드는 10분 동안 유효합니다.
too-many-attempts = 시도 횟수가 너무 많습니다.
code-send-failed = 코드를 보내지 못했습니다. 잠시 후 다시 시도해 주세요.
code-send-limit = 인증 코드 요청 횟수를 초과했습니다.
code-wrong = 코드가 올바르지 않습니다. 확인 후 다시 입력해 주세요.
email-invalid = 올바른 이메일 주소를 입력하세요.

## 오류 화면 (상태 코드별)

error-400-title = 잘못된 요청
error-400 = 요청을 이해할 수 없습니다. 주소를 확인한 뒤 다시 시도해 주세요.
error-401-title = 로그인 필요
error-401 = 계속하려면 로그인해 주세요.
error-403-title = 접근 거부
error-403 = 이 페이지를 열 권한이 없습니다. 잘못되었다고 생각되면 관리자에게 문의해 주세요.
error-404-title = 찾을 수 없음
error-404 = 이 주소에는 아무것도 없습니다.
error-405-title = 허용되지 않는 요청
error-405 = 이 주소는 해당 요청을 받지 않습니다.
error-408-title = 요청 시간 초과
error-408 = 양식이 너무 늦게 도착해 읽지 않았습니다. 연결 상태를 확인한 뒤 다시 보내 주세요.
error-413-title = 데이터가 너무 많습니다
error-413 = 이 양식이 보낸 데이터가 이 페이지가 받는 양보다 많습니다. 더 작은 파일을 고르거나 내용을 줄인 뒤 다시 시도해 주세요.
error-431-title = 요청이 너무 큽니다
error-431 = 브라우저가 이 요청과 함께 보낸 데이터가 너무 많습니다. 쿠키가 너무 많을 때 흔히 생깁니다. 이 사이트의 쿠키를 지운 뒤 다시 시도하세요.
error-429-title = 요청 횟수 초과
error-429 = 짧은 시간에 이 브라우저에서 요청이 너무 많았습니다.
error-502-title = 서비스 응답 오류
error-502 = 서비스가 올바르게 응답하지 않았습니다. 잠시 후 다시 시도해 주세요.
error-503-title = 일시적으로 사용할 수 없음
error-503 = 서비스를 일시적으로 사용할 수 없습니다. 잠시 후 다시 시도해 주세요.
error-504-title = 응답 시간 초과
error-504 = 서비스 응답이 너무 늦습니다. 잠시 후 다시 시도해 주세요.
error-other-title = 오류가 발생했습니다
error-other = 요청을 처리하지 못했습니다. 잠시 후 다시 시도해 주세요.

## 로그인 (/login)

login-title = 로그인
login-username = 아이디 또는 이메일
login-password = 비밀번호
login-submit = 로그인
login-failed = 아이디 또는 비밀번호가 올바르지 않거나 로그인이 일시적으로 제한되었습니다. 잠시 후 다시 시도해 주세요.

## 계정 보안 (/account)

account-title = 계정 보안
account-user = 아이디
account-name = 이름
account-email = 이메일
account-level = 인증 단계
account-sign-out = 로그아웃
account-two-step = 2단계 인증
account-app = 인증 앱
account-app-since = 사용 중 ({ $date }부터)
account-recovery-left = 남은 복구 코드
account-emergency-email = 비상연락용 이메일
account-fresh = 본인 확인을 마쳤습니다. { $until }까지 변경할 수 있습니다.
account-replace-app = 인증 앱 교체
account-change-emergency-email = 비상연락용 이메일 변경
account-new-codes = 복구 코드 새로 만들기 (이전 코드는 사용 불가)
account-remove-app = 인증 앱 해제 (2단계 인증 끄기)
account-confirm-first = 2단계 인증이나 비상연락용 이메일을 변경하려면 먼저 본인 확인을 해 주세요. 인증 앱의 현재 코드나 복구 코드를 입력하세요.
account-confirm = 본인 확인
account-verify-first = 2단계 인증 후 변경하기
account-second-factor-first = 먼저 2단계 인증을 완료하세요.
account-fresh-proof-needed = 먼저 본인 확인을 해 주세요. 인증 앱의 현재 코드나 복구 코드를 입력하세요.
account-codes-renewed = 새 복구 코드를 만들었습니다. 이전 코드는 더 이상 사용할 수 없습니다.
account-done-authenticator = 새 인증 앱으로 교체했습니다. 이전 앱은 더 이상 사용할 수 없으며, 다른 기기의 로그인은 모두 로그아웃되었습니다.
account-done-emergency-email = 비상연락용 이메일을 변경했습니다.

## 2단계 인증 설정 (/setup)

setup-title = 2단계 인증 설정
setup-step-prove = 본인 확인
setup-step-contact = 비상연락용 이메일
setup-step-app = 인증 앱
setup-will-send-html = 본인 확인을 위해 등록된 이메일 <strong>{ $email }</strong>(으)로 인증 코드를 보냅니다.
setup-no-email = 계정에 등록된 이메일이 없습니다. 관리자에게 등록 토큰을 요청하세요.
setup-send = 인증 코드 보내기
setup-send-again = 코드 다시 보내기
setup-code-or-token = 인증 코드 또는 등록 토큰
setup-confirm = 확인
setup-contact-intro-html = <strong>비상연락용 이메일</strong>을 등록하세요. 2단계 인증이 변경되거나 복구 코드가 사용되면 등록된 이메일과 함께 이 주소로도 알려 드립니다.
setup-contact-label = 비상연락용 이메일
setup-next = 다음
setup-contact-code-html = <strong>{ $email }</strong>(으)로 보낸 6자리 인증 코드를 입력하세요.
setup-app-code = 앱에 표시된 6자리 코드
setup-turn-on = 사용 설정
setup-sent = 인증 코드를 보냈습니다. 메일함을 확인하세요.
setup-expired = 코드가 만료되었거나 입력 횟수를 초과했습니다. 새 코드를 요청하세요.
setup-not-yet = 유효하지 않은 코드입니다. 앱에 새 코드가 표시되면 입력하세요.
setup-fault = 문제가 발생했습니다. 잠시 후 다시 시도해 주세요.
setup-done = 2단계 인증이 설정되었습니다. 이제 로그인할 때 인증 앱의 코드를 입력합니다.

## 새 인증 앱의 QR 코드 (설정과 교체)

qr-scan = 휴대폰의 인증 앱에서 계정 추가를 누르고 아래 QR 코드를 스캔하세요. 스캔할 수 없으면 키를 직접 입력하세요.
qr-key = 키
qr-open = 이 기기의 인증 앱에서 열기

## 한 번만 보여 주는 복구 코드

codes-title = 복구 코드
codes-save = 아래 복구 코드 10개를 지금 안전한 곳에 저장하거나 인쇄하세요. 각 코드는 한 번만 사용할 수 있으며, 이 화면을 벗어나면 다시 볼 수 없습니다.
codes-continue = 계속

## 설정 안내 (/guide)

guide-title = 2단계 인증 필수 안내
guide-required-html = { $service }{ $eul } 이용하려면 <strong>2단계 인증</strong>이 필요합니다. { $user } 계정에는 아직 2단계 인증이 설정되어 있지 않습니다.
guide-required-from-html = <strong>{ $date }</strong>부터 { $service }{ $eul } 이용하려면 <strong>2단계 인증</strong>이 필요합니다. { $user } 계정에는 아직 2단계 인증이 설정되어 있지 않습니다.
guide-why = 2단계 인증을 설정하면 비밀번호가 유출되더라도 휴대폰의 인증 앱에서 만든 코드 없이는 누구도 로그인할 수 없습니다.
guide-how = 설정하는 방법
guide-app = 인증 앱
guide-app-text = 휴대폰의 인증 앱(Google Authenticator, Microsoft Authenticator 등)으로 QR 코드를 스캔하고, 로그인할 때마다 앱에 표시되는 6자리 코드를 입력합니다. 인터넷 연결 없이도 동작합니다.
guide-contact = 비상연락용 이메일
guide-contact-text = 설정 중에 등록하며, 2단계 인증 관련 알림을 받습니다.
guide-codes = 복구 코드
guide-codes-text = 휴대폰을 분실했을 때 한 번씩 사용할 수 있는 코드 10개를 드립니다. 안전한 곳에 보관하세요.
guide-before = 설정하기 전에 본인 확인을 위해 등록된 이메일로 인증 코드를 보내 드립니다.
guide-later-button = 나중에 하기
guide-must = 2단계 인증을 설정해야 계속할 수 있습니다.
guide-grace-over = 유예 기간이 끝났습니다. 계속하려면 2단계 인증을 설정하세요.
guide-later-free = 지금 설정하지 않아도 되지만, 위 날짜부터는 반드시 설정해야 합니다.
# $times: 이번을 포함해 미룰 수 있는 횟수 ($left + 1).
guide-later = 미룰 수 있습니다.
guide-later-left = 이번을 포함해 { $times }번 더 미룰 수 있습니다.
guide-later-until = { $until }까지 미룰 수 있습니다.
guide-later-left-until = { $until }까지 이번을 포함해 { $times }번 더 미룰 수 있습니다.

## 2단계 인증 (/2fa)

challenge-title = 2단계 인증
challenge-intro = 휴대폰의 인증 앱에 표시된 6자리 코드를 입력하세요.
challenge-verify = 확인
challenge-recovery-hint = 휴대폰을 사용할 수 없으면 복구 코드(XXXXX-XXXXX)를 같은 칸에 입력하세요.
challenge-banned = 잘못된 코드를 너무 많이 입력했습니다.
challenge-replayed = 이미 사용된 코드입니다. 앱에 새 코드가 표시되면 입력하세요.
challenge-wrong = 코드가 올바르지 않습니다. 앱을 확인한 뒤 다시 입력해 주세요.
challenge-recovery-intro = 보관해 둔 복구 코드(XXXXX-XXXXX) 중 하나를 입력하세요. 각 코드는 한 번만 사용할 수 있습니다.
challenge-use-recovery = 복구 코드로 인증하기
challenge-use-totp = 인증 앱으로 인증하기

## 변경 전 본인 확인 (/account/verify)

confirm-title = 본인 확인
confirm-intro = 2단계 인증 수단이나 비상연락용 이메일을 변경하기 전에 본인임을 확인합니다. 인증 앱에 표시된 6자리 코드나 복구 코드(XXXXX-XXXXX)를 입력하세요. 확인 후 5분 동안 변경할 수 있습니다.
confirm-button = 확인
confirm-refused = 코드가 올바르지 않거나 이미 사용되었습니다. 새 코드가 표시되면 다시 시도하세요.

## 인증 앱 교체 (/account/authenticator)

authenticator-title = 인증 앱 교체
authenticator-intro = 새 인증 앱을 등록합니다. 새 앱의 코드를 확인할 때까지는 지금 쓰는 인증 앱이 그대로 동작합니다.
authenticator-code = 새 앱에 표시된 6자리 코드
authenticator-switch = 새 앱으로 교체
authenticator-cancel = 취소하고 계정 보안으로 돌아가기
authenticator-not-valid = 유효하지 않은 코드입니다. 새 앱에 새 코드가 표시되면 입력하세요.

## 비상연락용 이메일 변경 (/emergency-email)

emergency-email-title = 비상연락용 이메일 변경
emergency-email-change = 변경하기
emergency-email-current-html = 2단계 인증이 변경되거나 복구 코드가 사용되면 이 주소로도 알려 드립니다. 지금 등록된 주소: <strong>{ $email }</strong>
emergency-email-new = 새 비상연락용 이메일
emergency-email-send = 인증 코드 보내기
emergency-email-same = 이미 등록된 비상연락용 이메일입니다.
emergency-email-sent = 새 주소로 인증 코드를 보냈습니다. 메일함을 확인하세요.
emergency-email-expired = 코드가 만료되었거나 입력 횟수를 초과했습니다. 처음부터 다시 시도하세요.

## 모든 화면에 공통인 틀

nav-account = 계정 보안
nav-sign-out = 로그아웃
error-home = 처음 화면으로 가기
retry-in-seconds = { $seconds }초 후에 다시 시도해 주세요.
retry-in-minutes = { $minutes }분 후에 다시 시도해 주세요.
retry-in-hours = { $hours }시간 후에 다시 시도해 주세요.
codes-as-text = 복사할 수 있는 복구 코드
codes-download = 텍스트 파일로 내려받기
codes-copy = 복구 코드 복사
codes-copied = 복사했습니다
codes-print = 인쇄
codes-print-hint = 인쇄하려면 브라우저의 인쇄 기능을 사용하세요. 버튼 없이 코드만 인쇄됩니다.

## 계정 보안 화면의 영역

account-default-method = 기본
account-new-codes-confirm = 지금 쓰는 복구 코드를 더 이상 쓸 수 없게 된다는 것을 확인했습니다.
account-remove-warning = 인증 앱을 해제하면 2단계 인증을 다시 설정하기 전까지 비밀번호만으로 로그인하며, 이 서비스는 2단계 인증을 다시 요구합니다. 다른 기기의 로그인은 모두 로그아웃됩니다.
account-remove-confirm = 확인했습니다. 인증 앱을 해제합니다.
account-confirm-box = 확인란을 선택해 주세요.
account-events = 최근 보안 활동
account-event-when = { $when } · { $address }에서
account-continue = 서비스로 돌아가기
event-sign_in = 비밀번호로 로그인
event-sign_out = 로그아웃
event-second_factor = 2단계 인증 통과
event-confirmed = 본인 확인
event-factor_added = 2단계 인증 설정
event-factor_replaced = 인증 앱 교체
event-factor_removed = 인증 앱 해제
event-emergency_email_changed = 비상연락용 이메일 변경
event-recovery_codes_regenerated = 복구 코드 새로 만들기
event-later = 2단계 인증 설정 미루기
event-other = 계정 변경

## 계정 보호

login-keep = 로그인 상태 유지
login-forgot = 비밀번호를 잊으셨나요?
challenge-remember = 이 브라우저에서 다시 묻지 않기
account-where = 로그인한 곳
account-done-password = 비밀번호가 변경되었습니다. 다른 기기의 로그인은 해제되었습니다.
sessions-title = 로그인 기기와 로그인 상태 유지
sessions-intro = 계정에 로그인되어 있는 브라우저와 기기입니다. 모르는 기기가 있다면 로그아웃시키고 비밀번호를 바꾸세요.
sessions-this = 현재 브라우저
sessions-saved = 로그인 상태 유지
sessions-facts = { $address } · { $started } 로그인 · 최근 사용 { $last_seen }
sessions-end = 로그아웃
sessions-delete-saved = 로그인 상태 유지 삭제
sessions-end-others = 다른 모든 기기에서 로그아웃
sessions-ended-one = 해당 기기가 로그아웃되었습니다.
sessions-ended-others = 다른 모든 기기가 로그아웃되었습니다.
trusted-title = 신뢰하는 브라우저
trusted-intro = 이 브라우저들은 기간이 끝날 때까지 로그인할 때 2단계 인증을 묻지 않습니다. 더 이상 쓰지 않는 브라우저는 삭제하세요.
trusted-off = 관리자가 브라우저 신뢰를 허용하지 않습니다. 로그인할 때마다 2단계 인증을 거칩니다.
trusted-none = 신뢰하는 브라우저가 없습니다.
trusted-facts = { $address } · 처음 사용 { $first_used } · 최근 사용 { $last_used } · { $expires }까지
trusted-remove = 삭제
trusted-remove-all = 신뢰하는 브라우저 모두 삭제
trusted-removed-one = 해당 브라우저를 더 이상 신뢰하지 않습니다.
trusted-removed-all = 신뢰하는 브라우저를 모두 삭제했습니다.
check-title = 본인 확인
check-intro = 이 계정에서 처음 사용하는 브라우저와 네트워크에서 로그인했습니다. 계속하려면 이메일로 받은 코드로 본인을 확인해 주세요.
check-send = { $to }(으)로 코드 보내기
check-sent = { $to }(으)로 6자리 코드를 보냈습니다. 10분 동안 유효합니다.
check-resend = 새 코드 보내기
check-wrong = 코드가 올바르지 않습니다. 이메일을 확인하고 다시 입력해 주세요.
check-expired = 코드가 만료되었거나 너무 많이 틀렸습니다. 새 코드를 받아 주세요.
check-send-limit = 코드를 너무 많이 보냈습니다.
check-send-failed = 코드를 보내지 못했습니다. 잠시 후 다시 시도해 주세요.
lock-title = 계정 잠그기
lock-intro = 회원님께 알린 로그인입니다.
lock-when = 일시
lock-address = 접속 위치
lock-browser = 브라우저
lock-app = 서비스
lock-what = 본인이 아니라면 지금 계정을 잠그세요. 위의 로그인을 포함한 모든 로그인이 즉시 해제되고, 신뢰하는 브라우저가 삭제되며, 비밀번호를 재설정할 때까지 아무도 로그인할 수 없습니다.
lock-submit = 본인이 아닙니다: 계정 잠그기
lock-done = 계정이 잠기고 모든 로그인이 해제되었습니다. 다시 사용하려면 비밀번호를 재설정하세요. 2단계 인증도 함께 확인합니다.
lock-bad-link = 더 이상 유효하지 않은 링크입니다. 이미 사용했거나 만료되었거나 일부가 빠졌습니다.
password-title = 비밀번호 변경
password-rules = { $min }자 이상으로 정하세요. 긴 문장이 기억하기 쉽습니다. 흔한 비밀번호나 이름으로 만든 비밀번호는 쓸 수 없습니다.
password-current = 현재 비밀번호
password-new = 새 비밀번호
password-submit = 비밀번호 변경
password-too-short = 새 비밀번호가 너무 짧습니다. { $min }자 이상으로 정하세요.
password-too-long = 새 비밀번호가 너무 깁니다.
password-guessable = 새 비밀번호는 추측하기 쉽습니다(흔한 비밀번호이거나 단어, 패턴, 이름으로 만들어졌습니다). 다른 비밀번호를 정하세요.
password-wrong-current = 현재 비밀번호가 올바르지 않습니다.
password-banned = 비밀번호를 너무 많이 틀렸습니다.
password-code-needed = 인증 앱에 지금 표시된 코드(또는 복구 코드)도 입력해 주세요.
reset-title = 비밀번호 재설정
reset-intro = 아이디나 이메일을 입력하세요. 계정이 있으면 새 비밀번호를 정하는 링크를 계정 이메일로 보냅니다.
reset-send = 링크 보내기
reset-sent = 계정이 있고 이메일이 등록되어 있다면 링크를 보냈습니다. 링크는 30분 동안 한 번만 쓸 수 있습니다.
reset-done = 비밀번호가 재설정되고 계정 잠금이 풀렸습니다. 모든 로그인이 해제되었으니 새 비밀번호로 로그인하세요.
reset-bad-link = 더 이상 유효하지 않은 재설정 링크입니다. 이미 사용했거나 만료되었거나 일부가 빠졌습니다. 새 링크를 요청하세요.
event-sign_in_failed = 로그인 실패
event-sign_in_alert = 새로운 브라우저와 네트워크에서 로그인
event-environment_checked = 새로운 브라우저와 네트워크 확인
event-browser_trusted = 브라우저 신뢰
event-trusted_browser_removed = 신뢰하는 브라우저 삭제
event-session_ended = 로그아웃시킴
event-account_locked = 계정 잠금
event-password_changed = 비밀번호 변경
unknown-browser = 알 수 없는 브라우저
challenge-sms-intro = { $to }(으)로 6자리 인증번호를 문자로 보내 드립니다.
challenge-email-intro = 비상 연락용 이메일 { $to }(으)로 6자리 인증 코드를 보내 드립니다.
challenge-send = { $to }(으)로 인증번호 받기
challenge-sent = { $to }(으)로 인증번호를 보냈습니다. { $until }까지 유효합니다.
challenge-resend = 인증번호 다시 받기(이전 번호는 더 이상 쓸 수 없습니다)
challenge-expired = 인증번호가 만료되었거나 이미 사용되었거나 너무 많이 틀렸습니다. 새 인증번호를 받아 주세요.
challenge-send-blocked = 인증번호 요청이 너무 많아 발송을 잠시 멈췄습니다.
challenge-send-failed = 지금은 인증번호를 보내지 못했습니다. 바뀐 것은 없으니 잠시 후 다시 시도해 주세요.
challenge-nothing-arrived = 인증번호가 오지 않나요?
challenge-help-number = 위의 번호가 본인 번호인지 확인해 주세요. 아니라면 아래의 다른 방법으로 인증한 뒤 계정 보안에서 번호를 바꾸세요.
challenge-help-spam = 스팸함이나 정크 메일함을 확인하고, 위의 주소가 본인 주소인지 확인해 주세요.
challenge-help-wait = 메시지가 도착하는 데 1분 정도 걸릴 수 있습니다. 그 뒤에 다시 받으세요. 새 인증번호를 받으면 이전 번호는 쓸 수 없습니다.
challenge-help-blocked = 요청이 너무 많으면 한동안 발송이 멈춥니다. 언제까지인지 화면에 표시됩니다.
challenge-help-other = 그래도 오지 않으면 아래의 다른 방법을 쓰거나 관리자에게 문의하세요.
challenge-use-email = 이메일로 인증하기
challenge-use-sms = 문자로 인증번호 받기
setup-method-intro = 로그인할 때마다 본인을 확인할 방법을 고르세요.
setup-method-app = 인증 앱 사용하기
setup-method-sms = 문자로 인증번호 받기
setup-phone-label = 휴대전화 번호
setup-phone-hint = 국가 번호를 포함해 입력하세요(예: +82 10 1234 5678). 확인을 위해 인증번호를 보내 드립니다.
setup-phone-code = { $phone }(으)로 6자리 인증번호를 문자로 보냈습니다. 입력하면 2단계 인증이 켜집니다.
setup-method-other = 다른 번호나 방법 사용하기
phone-invalid = 국가 번호를 포함한 휴대전화 번호를 입력하세요(예: +821012345678).
account-sms = 문자 메시지(SMS)
setup-step-method = 인증 방법
phone-title = 2단계 인증 휴대전화
phone-current = 인증번호 문자는 { $phone }(으)로 갑니다.
phone-none = 등록된 휴대전화가 없습니다. 문자로 인증번호를 받으려면 번호를 등록하세요.
phone-new = 새 휴대전화 번호
phone-send = 이 번호로 인증번호 받기
phone-sent = 새 번호로 인증번호를 문자로 보냈습니다.
phone-change = 이 번호 사용하기
phone-another = 다른 번호 사용하기
phone-same = 이미 2단계 인증에 쓰는 휴대전화 번호입니다.
account-change-phone = 휴대전화 번호 변경
account-add-phone = 문자 인증용 휴대전화 추가
account-done-phone = 2단계 인증 휴대전화 번호가 변경되었습니다.
account-confirm-first-sms = 2단계 인증이나 비상 연락용 이메일을 바꾸려면 먼저 휴대전화로 받은 인증번호로 본인임을 확인해 주세요.
confirm-sms-intro = { $phone }(으)로 6자리 인증번호를 문자로 보내 드립니다. 복구 코드도 쓸 수 있습니다.
confirm-sms-sent = { $phone }(으)로 인증번호를 보냈습니다. 아래에 입력해 주세요(복구 코드도 됩니다).
challenge-resend-soon = 방금 인증번호를 보냈습니다. 도착하는 데 1분 정도 걸릴 수 있습니다.
challenge-resend-wait = 새 인증번호는 이전 번호를 보내고 { $seconds }초 뒤부터 받을 수 있습니다.

## 기기: 로그인된 기기에서 승인, 다른 기기용 보안 인증번호

challenge-use-approve = 로그인된 기기에서 승인하기
challenge-use-device-code = 로그인된 기기의 보안 인증번호 입력하기
approval-intro = 이미 로그인되어 있고 승인 기기로 등록한 휴대폰이나 컴퓨터에서 이 로그인을 승인해 주세요.
approval-send = 내 기기로 승인 요청 보내기
approval-send-again = 승인 요청 다시 보내기
approval-type-number = 기기에서 ‘로그인 승인’을 열고 아래 숫자를 입력하세요.
approval-number-label = 기기에 입력할 숫자
approval-waiting = { $until }까지 승인을 기다립니다. 승인하면 이 화면은 저절로 넘어갑니다.
approval-continue = 승인했어요, 계속하기
approval-too-many = 승인 요청이 너무 많았습니다. 잠시 뒤에 다시 하거나 아래의 다른 방법을 이용하세요.
approval-expired = 요청 시간이 지났거나 새 요청으로 바뀌었습니다. 요청을 다시 보내 주세요.
approval-still-waiting = 아직 승인되지 않았습니다. 기기에서 승인한 뒤 계속하세요.
approval-denied = 기기에서 요청을 거절했습니다. 실수였다면 요청을 다시 보내 주세요.
device-code-intro = 로그인되어 있는 기기에서 ‘기기’를 열고 ‘다른 기기에서 로그인’을 누르세요. 그 화면에 나온 보안 인증번호를 입력하세요.
approvals-title = 로그인 승인
approvals-intro = 누군가 회원님의 계정으로 로그인하며 승인을 요청했습니다.
approvals-until = 요청은 { $until }에 만료됩니다.
approvals-number-label = 로그인 화면에 보이는 숫자
approvals-approve = 승인
approvals-deny = 거절
approvals-not-me-hint = 본인이 아닌가요? 다른 사람이 비밀번호를 알고 있습니다.
approvals-not-me = 본인이 아닙니다
approvals-none = 승인을 기다리는 로그인이 없습니다. 새 요청이 오면 이 화면에 나타납니다.
approvals-refresh = 다시 확인
approvals-approved = 승인했습니다. 다른 기기에서 로그인이 이어집니다.
approvals-denied = 거절했습니다. 그 로그인은 진행되지 않습니다.
approvals-choose = 승인, 거절, ‘본인이 아닙니다’ 중 하나를 고르세요.
approvals-gone = 그 요청은 이제 기다리고 있지 않습니다. 이미 처리되었거나, 새 요청으로 바뀌었거나, 만료되었습니다.
approvals-wrong-number = 숫자가 맞지 않아 요청을 거절했습니다. 본인이라면 다른 기기에서 로그인을 다시 시작하세요.
approvals-not-me-done = 요청을 거절하고, 그 브라우저를 로그아웃시켰으며, 그 주소를 당분간 차단했습니다.
approvals-lock-offer = 로그인하려 한 적이 없다면 다른 사람이 비밀번호를 알고 있습니다. 계정을 잠그세요. 이 기기를 포함한 모든 로그인이 끝나고, 비밀번호를 재설정하기 전까지 아무도 로그인할 수 없습니다.
approvals-not-two-factor = 이 브라우저에서 로그인을 승인하려면 2단계 인증을 거쳐 로그인해야 합니다.
approvals-not-recent = 이 브라우저에서 2단계 인증을 한 지 너무 오래되었습니다. 로그아웃한 뒤 다시 로그인하면 승인할 수 있습니다.
approvals-not-approver = 이 브라우저는 승인 기기가 아닙니다. ‘기기’ 화면에서 승인 기기로 등록하세요.
approvals-changed = 승인 기기로 등록한 뒤 이 브라우저의 기기 정보가 바뀌었습니다(기기 쿠키가 사라졌거나 다른 브라우저의 것입니다). 로그인을 승인하려면 다시 인증하세요.
devices-title = 기기
devices-intro = 로그인을 승인하고 보안 인증번호를 보여 주는 기기, 패스키, 신뢰하는 브라우저를 관리합니다.
devices-this = 이 브라우저
devices-this-approver = 이 브라우저는 승인 기기입니다. 로그인을 승인하고, 다른 기기에서 로그인할 때 쓸 보안 인증번호를 보여 줄 수 있습니다.
devices-this-not-approver = 이 브라우저를 승인 기기로 등록하면 휴대폰처럼 여기서 로그인을 승인할 수 있습니다.
devices-add = 이 브라우저로 로그인 승인하기
devices-verify-again = 이 브라우저 다시 인증하기
devices-code = 다른 기기에서 로그인
devices-code-again = 보안 인증번호 새로 받기
devices-code-intro = 다른 기기에서 비밀번호를 입력한 뒤 ‘로그인된 기기의 보안 인증번호 입력하기’를 고르고 아래 번호를 입력하세요.
devices-code-label = 보안 인증번호
devices-code-until = { $until }까지 한 번만 쓸 수 있습니다.
devices-code-not-approver = 보안 인증번호는 승인 기기에서만 볼 수 있습니다.
devices-approvers = 승인 기기
devices-this-badge = 이 브라우저
devices-facts = { $address } · { $added } 등록 · 최근 사용 { $last_used }
devices-remove = 삭제
devices-none = 아직 승인 기기가 없습니다.
devices-trusted-count = { $count ->
    [0] 신뢰하는 브라우저가 없습니다.
   *[other] 신뢰하는 브라우저 { $count }개는 2단계 인증을 묻지 않습니다.
}
devices-added = 이 브라우저를 승인 기기로 등록했습니다.
devices-no-passkeys = 아직 등록한 패스키가 없습니다.
devices-manage-passkeys = 패스키 관리
devices-removed = 기기를 삭제했습니다.
event-approval_requested = 로그인 승인 요청
event-approval_approved = 기기에서 로그인 승인
event-approval_denied = 기기에서 로그인 거절
event-approval_not_me = 로그인 거절: 본인 아님
event-approvals_blocked = 승인 요청 횟수 초과
event-approver_added = 승인 기기 등록
event-approver_removed = 승인 기기 삭제
event-device_code_shown = 다른 기기용 보안 인증번호 표시
## 패스키 (portal/passkeys.rs, templates passkeys.html, passkey_verify.html)
passkey-title = 패스키
passkey-manage = 패스키 관리
passkey-intro = 패스키를 등록하면 인증번호 대신 기기의 화면 잠금(지문, 얼굴 인식, PIN)으로 본인임을 확인할 수 있습니다. 기기마다 하나씩, 여러 개를 등록할 수 있습니다.
passkey-facts = { $created } 등록 · 마지막 사용 { $last_used }
passkey-facts-unused = { $created } 등록 · 아직 사용하지 않음
passkey-rename = 이름 바꾸기
passkey-name-label = 패스키 이름
passkey-rename-save = 이름 저장
passkey-remove = 삭제
passkey-remove-named = 패스키 { $name } 삭제
passkey-none-yet = 등록된 패스키가 없습니다.
passkey-add = 패스키 추가
passkey-default-name = 패스키 { $n }
passkey-needs-script = 패스키를 쓰려면 이 브라우저에서 JavaScript가 켜져 있어야 합니다. 다른 인증 방법은 그대로 쓸 수 있습니다.
passkey-confirm-first = 패스키를 추가하거나 삭제하려면 먼저 본인임을 확인해 주세요.
passkey-added = 패스키를 추가했습니다.
passkey-renamed = 패스키 이름을 바꿨습니다.
passkey-removed = 패스키를 삭제했습니다.
passkey-expired = 패스키 요청이 만료되었거나 이미 사용되었습니다. 다시 시도해 주세요.
passkey-rejected = 패스키를 확인하지 못했습니다. 다시 시도해 주세요.
passkey-duplicate = 이미 등록된 패스키입니다.
passkey-too-many = 등록할 수 있는 패스키 수를 모두 채웠습니다. 먼저 하나를 삭제해 주세요.
passkey-not-found = 패스키를 찾을 수 없습니다. 이미 삭제되었을 수 있습니다.
passkey-bad-name = 패스키 이름을 입력해 주세요.
passkey-last-method = 본인 확인에 쓸 수 있는 마지막 방법입니다. 삭제하기 전에 다른 인증 방법을 추가하거나 복구 코드를 만들어 주세요.
passkey-needs-proof = 먼저 본인임을 확인한 뒤 다시 시도해 주세요.
passkey-not-allowed = 먼저 2단계 인증을 완료해 주세요.
passkey-not-verified = 패스키로 본인임을 확인하지 못했습니다. 다시 시도하거나 다른 방법을 이용해 주세요.
passkey-none = 여기서 쓸 수 있는 패스키가 없습니다. 다른 방법을 이용해 주세요.
passkey-use = 패스키로 인증하기
passkey-verify-intro = 이 기기의 패스키나 보안 키를 사용합니다. 브라우저가 화면 잠금을 풀어 달라고 안내합니다.
passkey-verify-button = 패스키 사용
passkey-browser-failed = 브라우저에서 패스키 확인을 마치지 못했습니다. 다시 시도하거나 다른 방법을 이용해 주세요.
passkey-sign-in-title = 또는 패스키 사용
passkey-sign-in = 패스키로 로그인

## 인증서

cert-title = 인증서 관리
cert-intro = 소속 기관에서 발급받은 인증서로 인증 코드 대신 본인을 확인할 수 있고, 일부 화면은 인증서가 있어야 열립니다. 브라우저가 제출한 인증서로, 또는 인증서 파일을 올려 여기에서 등록하세요.
cert-not-offered = 이 서비스는 인증서를 사용하지 않습니다.
cert-needed = 열려던 화면은 이 연결에 등록된 인증서가 있어야 합니다. 아래에서 인증서를 등록하거나, 브라우저가 물어보면 인증서를 고른 뒤 화면을 다시 여세요.
cert-open-again = 화면 다시 열기
cert-confirm-title = 이 인증서를 등록할까요?
cert-confirm-intro = 등록하기 전에 본인의 인증서가 맞는지 확인하세요.
cert-register = 등록
cert-cancel = 취소
cert-presented-title = 브라우저가 제출한 인증서
cert-presented-intro = 브라우저가 이 연결에서 아래 인증서를 제출했습니다. 아직 등록되지 않은 인증서입니다.
cert-presented-yours = 회원님 계정에 등록된 인증서이며, 이 연결에서 사용되고 있습니다.
cert-register-presented = 이 인증서 등록
cert-registered-title = 등록된 인증서
cert-expired-badge = 만료됨
cert-added = { $added } 등록
cert-remove = 이 인증서 삭제
cert-reason = 삭제 사유(선택)
cert-remove-confirm = 삭제하면 이 인증서를 더 이상 사용할 수 없음을 확인했습니다.
cert-none = 등록된 인증서가 없습니다.
cert-upload-title = 파일로 등록
cert-upload-intro = 인증서만 .pem, .crt, .cer, .der 파일로 올려 주세요. 개인키나 .p12/.pfx 파일은 절대 올리지 마세요. 인증서는 { $max }개까지 등록할 수 있습니다.
cert-file = 인증서 파일
cert-check = 인증서 확인
cert-subject = 소유자
cert-issuer = 발급자
cert-serial = 일련번호
cert-valid = 유효기간
cert-valid-range = { $from }부터 { $until }까지
cert-fingerprint = 지문(SHA-256)
cert-malformed = 인증서 파일이 아닙니다. .p12나 .pfx 파일이 아닌 인증서만(.pem, .crt, .cer, .der) 올려 주세요.
cert-private-key = 이 파일에는 개인키가 들어 있습니다. 개인키는 기기 밖으로 내보내면 안 되므로 저장하지 않았습니다. 인증서만 올려 주세요.
cert-expired = 유효기간이 지난 인증서입니다. 인증서를 재발급받은 뒤 새 인증서를 등록하세요.
cert-not-yet-valid = 아직 유효기간이 시작되지 않은 인증서입니다. 유효기간이 시작된 뒤 등록하세요.
cert-untrusted = 이 서비스가 신뢰하는 기관에서 발급한 인증서가 아닙니다.
cert-revoked = 발급 기관이 폐기한 인증서입니다. 인증서를 재발급받으세요.
cert-taken = 다른 계정에 등록된 인증서입니다.
cert-already-yours = 이미 회원님 계정에 등록된 인증서입니다.
cert-too-many = 등록할 수 있는 인증서 수를 모두 채웠습니다. 먼저 인증서 하나를 삭제하세요.
cert-not-staged = 올린 인증서의 확인 시간이 지났습니다. 다시 올려 주세요.
cert-unknown = 회원님 계정에 등록된 인증서가 아닙니다.
cert-confirm-first = 먼저 본인 확인을 해 주세요.
cert-registered = 인증서를 등록했습니다.
cert-removed = 인증서를 삭제했습니다. 이제 어떤 연결에서도 이 인증서를 사용할 수 없습니다.
cert-none-presented = 브라우저가 이 연결에서 인증서를 제출하지 않았습니다.
cert-remove-unconfirmed = 삭제를 확인하려면 체크 상자를 선택하세요.
account-certificates = 인증서 관리
event-certificate_registered = 인증서 등록
event-certificate_removed = 인증서 삭제
