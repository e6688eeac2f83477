//! The password policy (SPEC §3): length in characters and, optionally, four character classes,
//! both of the password's NFC form, the form that is hashed.

use crate::error::CoreError;

/// One rule a password can fail; its `as_str` is the wire name listed in `rules`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    MinLength,
    MaxLength,
    Uppercase,
    Lowercase,
    Digit,
    Special,
}

impl Rule {
    /// The rule's name in error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::MinLength => "min_length",
            Rule::MaxLength => "max_length",
            Rule::Uppercase => "uppercase",
            Rule::Lowercase => "lowercase",
            Rule::Digit => "digit",
            Rule::Special => "special",
        }
    }
}

/// The configured policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters (not bytes).
    pub min_length: usize,
    /// Most characters; bounds the work a login can ask of the hasher.
    pub max_length: usize,
    /// Whether an upper-case letter, a lower-case letter, a digit and a special character are required.
    pub require_classes: bool,
}

impl PasswordPolicy {
    /// The seed's policy: at least 8 characters, all four classes, at most 128 characters.
    pub fn seed() -> Self {
        PasswordPolicy {
            min_length: 8,
            max_length: 128,
            require_classes: true,
        }
    }

    /// The rules `password` breaks, in a fixed order; empty when it passes. They are checked
    /// on its NFC form ([`crate::hash::nfc`]), the one hashed: a decomposed letter counts as one
    /// character, as it does composed, and its combining mark is no special character.
    pub fn unmet(&self, password: &str) -> Vec<Rule> {
        let password = crate::hash::nfc(password);
        let password = password.as_ref();
        let len = password.chars().count();
        let mut unmet = Vec::new();
        if len < self.min_length {
            unmet.push(Rule::MinLength);
        }
        if len > self.max_length {
            unmet.push(Rule::MaxLength);
        }
        if self.require_classes {
            let has = |f: fn(&char) -> bool| password.chars().any(|c| f(&c));
            if !has(|c| c.is_uppercase()) {
                unmet.push(Rule::Uppercase);
            }
            if !has(|c| c.is_lowercase()) {
                unmet.push(Rule::Lowercase);
            }
            if !has(|c| c.is_numeric()) {
                unmet.push(Rule::Digit);
            }
            if !has(|c| !c.is_alphanumeric()) {
                unmet.push(Rule::Special);
            }
        }
        unmet
    }

    /// Checks a new password.
    ///
    /// # Errors
    /// `CoreError::WeakPassword` with the unmet rules.
    pub fn check(&self, password: &str) -> Result<(), CoreError> {
        let unmet = self.unmet(password);
        if unmet.is_empty() {
            Ok(())
        } else {
            Err(CoreError::WeakPassword(unmet))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(policy: &PasswordPolicy, password: &str, expected: &[&str]) {
        let got: Vec<&str> = policy
            .unmet(password)
            .into_iter()
            .map(Rule::as_str)
            .collect();
        assert_eq!(got, expected, "password {password:?}");
    }

    #[test]
    fn seed_policy() {
        let p = PasswordPolicy::seed();
        check(&p, "Str0ng!pw", &[]);
        check(
            &p,
            "",
            &["min_length", "uppercase", "lowercase", "digit", "special"],
        );
        check(&p, "Sh0rt!", &["min_length"]);
        check(&p, "alllowercase1!", &["uppercase"]);
        check(&p, "ALLUPPER1!", &["lowercase"]);
        check(&p, "NoDigits!!", &["digit"]);
        check(&p, "NoSpecial123", &["special"]);
        check(&p, "Ünïcödé1 pw", &[]);
        check(&p, &format!("Aa1!{}", "x".repeat(124)), &[]);
        check(&p, &format!("Aa1!{}", "x".repeat(125)), &["max_length"]);
        // Lengths count characters, not bytes: eight two-byte letters are eight characters.
        check(
            &PasswordPolicy {
                min_length: 8,
                max_length: 8,
                require_classes: false,
            },
            "éééééééé",
            &[],
        );
    }

    #[test]
    fn rules_apply_to_the_nfc_form() {
        let exact = |n| PasswordPolicy {
            min_length: n,
            max_length: n,
            require_classes: false,
        };
        // Eight letters typed decomposed (sixteen code points) are eight characters.
        check(&exact(8), &"e\u{301}".repeat(8), &[]);
        check(&exact(16), &"e\u{301}".repeat(8), &["min_length"]);
        // The Angstrom sign is one character either way; Hangul jamo compose into a syllable.
        check(&exact(1), "\u{212b}", &[]);
        check(&exact(1), "\u{1100}\u{1161}", &[]);
        // NFC can also lengthen: U+0344 is two combining marks in every normal form.
        check(&exact(2), "q\u{344}", &["max_length"]);
        check(&exact(3), "q\u{344}", &[]);
        // A combining accent is part of its letter, not a special character.
        let seed = PasswordPolicy::seed();
        check(&seed, "Cafe\u{301}Pass1", &["special"]);
        check(&seed, "Caf\u{e9}Pass1", &["special"]);
        check(&seed, "Cafe\u{301}Pa55!", &[]);
    }

    #[test]
    fn classes_can_be_turned_off() {
        let p = PasswordPolicy {
            min_length: 12,
            max_length: 64,
            require_classes: false,
        };
        check(&p, "correcthorsebattery", &[]);
        check(&p, "short", &["min_length"]);
    }
}
