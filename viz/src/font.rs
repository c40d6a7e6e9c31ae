//! The embedded 8x8 bitmap font (public-domain glyphs from the `font8x8` crate, compiled into the
//! binary): no system font is ever loaded.

/// Glyph width in pixels (the advance between characters).
pub const GLYPH_W: i32 = 8;
/// Glyph height in pixels.
pub const GLYPH_H: i32 = 8;

/// The 8 rows of `c`'s glyph; bit `i` of a row is the pixel at column `i` (left to right).
/// Characters outside ASCII draw as `?`.
pub fn glyph(c: char) -> [u8; 8] {
    let i = if c.is_ascii() { c as usize } else { '?' as usize };
    font8x8::legacy::BASIC_LEGACY[i]
}

/// Width in pixels of `s` drawn at scale 1.
pub fn text_width(s: &str) -> i32 {
    s.chars().count() as i32 * GLYPH_W
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_have_pixels_and_space_has_none() {
        for c in "0123456789.:-ABCxyz".chars() {
            assert!(glyph(c).iter().any(|r| *r != 0), "{c:?} is blank");
        }
        assert!(glyph(' ').iter().all(|r| *r == 0));
        // '1' is not '7': the font maps characters to distinct glyphs.
        assert_ne!(glyph('1'), glyph('7'));
        assert_eq!(text_width("12:30"), 40);
    }
}
