//! Korean particles (조사) after a name the catalogue cannot know in advance, such as the
//! operator's service name: 을/를, 이/가, 은/는, 과/와 and (으)로 depend on whether the word's last
//! syllable ends in a consonant (받침), and 로 also follows a final ㄹ.
//!
//! For a Hangul syllable this is exact. For a name ending in Latin letters or digits it follows
//! how Koreans usually read it (a trailing vowel letter reads without a final consonant, "stepgate"
//! → 를; most consonant letters read with one, "Acme Portal" → 을; digits by their Korean names).
//! That is a convention, not a rule: an operator whose name reads otherwise can write it in Hangul.

/// How the last sound of a word ends, for choosing a particle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Vowel,
    /// A final consonant other than ㄹ.
    Consonant,
    /// A final ㄹ: takes 을, 이, 은, 과, but 로 (not 으로).
    Rieul,
}

fn ending(word: &str) -> Ending {
    let Some(last) = word.trim_end().chars().rev().find(|c| c.is_alphanumeric()) else {
        return Ending::Vowel;
    };
    if ('\u{AC00}'..='\u{D7A3}').contains(&last) {
        return match (last as u32 - 0xAC00) % 28 {
            0 => Ending::Vowel,
            8 => Ending::Rieul,
            _ => Ending::Consonant,
        };
    }
    match last.to_ascii_lowercase() {
        // 일, 칠, 팔; a word ending in l ("portal" 포털).
        '1' | '7' | '8' | 'l' => Ending::Rieul,
        // 영, 삼, 육; a word ending in a stop or nasal ("quickstart" 퀵스타트 reads with a final
        // consonant in speech, "admin" 어드민, "web" 웹).
        '0' | '3' | '6' | 'b' | 'c' | 'd' | 'g' | 'k' | 'm' | 'n' | 'p' | 'q' | 't' => {
            Ending::Consonant
        }
        // 이, 사, 오, 구, and vowels, r ("-er" reads 어), s, x...
        _ => Ending::Vowel,
    }
}

/// The particle `with` or `without` a final consonant, as `word` needs: `particle("서비스",
/// "을", "를")` is "를".
pub fn particle(word: &str, with: &'static str, without: &'static str) -> &'static str {
    match ending(word) {
        Ending::Vowel => without,
        Ending::Consonant | Ending::Rieul => with,
    }
}

/// 으로 or 로.
pub fn euro(word: &str) -> &'static str {
    match ending(word) {
        Ending::Consonant => "으로",
        Ending::Vowel | Ending::Rieul => "로",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hangul_follows_the_final_consonant() {
        assert_eq!(particle("카카오", "을", "를"), "를");
        assert_eq!(particle("네이버 웍스", "을", "를"), "를");
        assert_eq!(particle("사내 포털", "을", "를"), "을");
        assert_eq!(particle("그룹웨어", "이", "가"), "가");
        assert_eq!(particle("회사 계정", "은", "는"), "은");
        assert_eq!(euro("포털"), "로");
        assert_eq!(euro("계정"), "으로");
        assert_eq!(euro("카카오"), "로");
    }

    #[test]
    fn latin_names_and_digits_read_as_koreans_read_them() {
        assert_eq!(particle("stepgate", "을", "를"), "를");
        assert_eq!(particle("stepgate quickstart", "을", "를"), "을");
        assert_eq!(particle("Acme Portal", "을", "를"), "을");
        assert_eq!(particle("Acme", "을", "를"), "를");
        assert_eq!(particle("Office 365", "을", "를"), "를");
        assert_eq!(particle("Web 2.0", "을", "를"), "을");
        assert_eq!(euro("Portal"), "로");
        assert_eq!(euro("Acme Admin"), "으로");
        assert_eq!(particle("", "을", "를"), "를");
    }
}
