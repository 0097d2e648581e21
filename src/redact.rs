//! Masking of personal data in `Debug` output and logs.

use std::fmt;

/// A phone number shown by its last four characters only: `+86••••5678` style.
pub(crate) struct MaskedPhone<'a>(pub(crate) &'a str);

impl fmt::Debug for MaskedPhone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for MaskedPhone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chars = self.0.chars().count();
        let shown = if chars > 6 { 4 } else { 0 };
        f.write_str("\"")?;
        for _ in 0..chars - shown {
            f.write_str("*")?;
        }
        for c in self.0.chars().skip(chars - shown) {
            write!(f, "{c}")?;
        }
        f.write_str("\"")
    }
}

/// The keys of a map whose values are personal data.
pub(crate) struct MaskedValue<T>(pub(crate) T);

impl<T: fmt::Debug> fmt::Debug for MaskedValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "keys {:?} (values hidden)", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_keep_only_their_last_four_characters() {
        assert_eq!(MaskedPhone("+8612345678").to_string(), "\"*******5678\"");
        assert_eq!(MaskedPhone("12345").to_string(), "\"*****\"");
        assert_eq!(MaskedPhone("").to_string(), "\"\"");
        assert_eq!(
            MaskedPhone("+62１２３４５６７８").to_string(),
            "\"*******５６７８\""
        );
    }
}
