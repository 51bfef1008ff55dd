//! Random initial passwords that meet Entra's complexity rules.
//!
//! authentik sends its password *hash* as the password (a defect, D15). entra-sync
//! sends a random password instead; sign-in is expected to be federated.

use rand::Rng;
use rand::seq::SliceRandom;

const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const DIGITS: &[u8] = b"23456789";
const SYMBOLS: &[u8] = b"!#%+-=?@^_~";

/// Length of generated passwords (Entra allows 8 to 256).
pub const PASSWORD_LEN: usize = 24;

/// A random ASCII password with at least one character of each of the four classes.
pub fn random_password(rng: &mut impl Rng) -> String {
    let classes = [LOWER, UPPER, DIGITS, SYMBOLS];
    let all: Vec<u8> = classes.concat();
    let mut chars: Vec<u8> = classes
        .iter()
        .map(|c| c[rng.random_range(0..c.len())])
        .collect();
    while chars.len() < PASSWORD_LEN {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    chars.shuffle(rng);
    String::from_utf8(chars).expect("ASCII")
}

/// Whether `password` meets Entra's rules: 8 to 256 ASCII characters, three of four classes.
pub fn meets_complexity(password: &str) -> bool {
    let classes = [
        password.bytes().any(|b| b.is_ascii_lowercase()),
        password.bytes().any(|b| b.is_ascii_uppercase()),
        password.bytes().any(|b| b.is_ascii_digit()),
        password.bytes().any(|b| b.is_ascii_punctuation()),
    ];
    password.is_ascii()
        && (8..=256).contains(&password.len())
        && classes.iter().filter(|c| **c).count() >= 3
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn generated_passwords_are_complex_and_differ() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a = random_password(&mut rng);
        let b = random_password(&mut rng);
        assert_ne!(a, b);
        for _ in 0..1000 {
            assert!(meets_complexity(&random_password(&mut rng)));
        }
        assert!(!meets_complexity("password"));
        assert!(!meets_complexity("Sh0rt!"));
    }
}
