//! A `u32` framebuffer (0RGB, row-major, as minifb wants it) with clipped drawing primitives.

use crate::font::{GLYPH_W, glyph};

/// A rectangle in pixels (`x`, `y` top-left; may extend past the canvas: drawing clips).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Rect {
    /// Left.
    pub x: i32,
    /// Top.
    pub y: i32,
    /// Width.
    pub w: i32,
    /// Height.
    pub h: i32,
}

impl Rect {
    /// A rectangle.
    pub const fn new(x: i32, y: i32, w: i32, h: i32) -> Self {
        Rect { x, y, w, h }
    }
    /// One past the right edge.
    pub fn right(&self) -> i32 {
        self.x + self.w
    }
    /// One past the bottom edge.
    pub fn bottom(&self) -> i32 {
        self.y + self.h
    }
    /// True when the point is inside.
    pub fn contains(&self, x: i32, y: i32) -> bool {
        x >= self.x && x < self.right() && y >= self.y && y < self.bottom()
    }
}

/// An owned framebuffer.
#[derive(Clone, Debug)]
pub struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u32>,
}

impl Canvas {
    /// A `w` x `h` canvas filled with `bg`.
    pub fn new(w: usize, h: usize, bg: u32) -> Self {
        Canvas { w, h, px: vec![bg; w * h] }
    }
    /// Width.
    pub fn width(&self) -> usize {
        self.w
    }
    /// Height.
    pub fn height(&self) -> usize {
        self.h
    }
    /// The whole canvas as a rectangle.
    pub fn rect(&self) -> Rect {
        Rect::new(0, 0, self.w as i32, self.h as i32)
    }
    /// The pixels, row-major 0RGB.
    pub fn pixels(&self) -> &[u32] {
        &self.px
    }
    /// Resize (contents become `bg`).
    pub fn resize(&mut self, w: usize, h: usize, bg: u32) {
        self.w = w;
        self.h = h;
        self.px.clear();
        self.px.resize(w * h, bg);
    }
    /// Fill everything with `c`.
    pub fn clear(&mut self, c: u32) {
        self.px.fill(c);
    }
    /// The pixel at (x, y), None outside.
    pub fn get(&self, x: i32, y: i32) -> Option<u32> {
        (x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h)
            .then(|| self.px[y as usize * self.w + x as usize])
    }
    /// Set one pixel (clipped).
    #[inline]
    pub fn set(&mut self, x: i32, y: i32, c: u32) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            self.px[y as usize * self.w + x as usize] = c;
        }
    }
    /// Fill a rectangle (clipped to the canvas and to `clip`).
    pub fn fill_rect(&mut self, r: Rect, clip: Rect, c: u32) {
        let x0 = r.x.max(clip.x).max(0);
        let y0 = r.y.max(clip.y).max(0);
        let x1 = r.right().min(clip.right()).min(self.w as i32);
        let y1 = r.bottom().min(clip.bottom()).min(self.h as i32);
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        for y in y0..y1 {
            let row = y as usize * self.w;
            self.px[row + x0 as usize..row + x1 as usize].fill(c);
        }
    }
    /// A horizontal line from `x0` to `x1` inclusive.
    pub fn hline(&mut self, x0: i32, x1: i32, y: i32, clip: Rect, c: u32) {
        let (a, b) = (x0.min(x1), x0.max(x1));
        self.fill_rect(Rect::new(a, y, b - a + 1, 1), clip, c);
    }
    /// A vertical line from `y0` to `y1` inclusive.
    pub fn vline(&mut self, x: i32, y0: i32, y1: i32, clip: Rect, c: u32) {
        let (a, b) = (y0.min(y1), y0.max(y1));
        self.fill_rect(Rect::new(x, a, 1, b - a + 1), clip, c);
    }
    /// A dashed horizontal line (`on` pixels drawn, then `off` skipped).
    pub fn dashed_hline(&mut self, x0: i32, x1: i32, y: i32, clip: Rect, c: u32, (on, off): (i32, i32)) {
        let mut x = x0.min(x1);
        let end = x0.max(x1);
        while x <= end {
            self.hline(x, (x + on - 1).min(end), y, clip, c);
            x += on + off;
        }
    }
    /// A line between two points (Bresenham), clipped to `clip`.
    pub fn line(&mut self, (mut x0, mut y0): (i32, i32), (x1, y1): (i32, i32), clip: Rect, c: u32) {
        let dx = (x1 - x0).abs();
        let dy = -(y1 - y0).abs();
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let mut err = dx + dy;
        loop {
            if clip.contains(x0, y0) {
                self.set(x0, y0, c);
            }
            if x0 == x1 && y0 == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x0 += sx;
            }
            if e2 <= dx {
                err += dx;
                y0 += sy;
            }
        }
    }
    /// Draw `s` with its top-left corner at (x, y) in the embedded font; returns the x after it.
    pub fn text(&mut self, x: i32, y: i32, s: &str, clip: Rect, c: u32) -> i32 {
        let mut cx = x;
        for ch in s.chars() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate() {
                if *bits == 0 {
                    continue;
                }
                for col in 0..GLYPH_W {
                    if bits >> col & 1 == 1 {
                        let (px, py) = (cx + col, y + row as i32);
                        if clip.contains(px, py) {
                            self.set(px, py, c);
                        }
                    }
                }
            }
            cx += GLYPH_W;
        }
        cx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rects_clip_and_lines_reach_their_ends() {
        let mut c = Canvas::new(10, 10, 0);
        let all = c.rect();
        c.fill_rect(Rect::new(-5, -5, 8, 8), all, 1);
        assert_eq!((c.get(0, 0), c.get(2, 2), c.get(3, 3)), (Some(1), Some(1), Some(0)));
        c.line((0, 9), (9, 0), all, 2);
        assert_eq!((c.get(0, 9), c.get(9, 0), c.get(5, 4)), (Some(2), Some(2), Some(2)));
        c.fill_rect(Rect::new(0, 0, 10, 10), Rect::new(8, 8, 5, 5), 3);
        assert_eq!((c.get(7, 7), c.get(8, 8), c.get(9, 9)), (Some(0), Some(3), Some(3)));
        assert_eq!(c.get(10, 0), None);
    }

    #[test]
    fn text_draws_glyph_pixels_inside_its_cell_only() {
        let mut c = Canvas::new(40, 12, 0);
        let end = c.text(2, 2, "88", c.rect(), 7);
        assert_eq!(end, 18);
        let lit = |x0: i32, x1: i32| {
            (x0..x1).flat_map(|x| (0..12).map(move |y| (x, y))).filter(|&(x, y)| c.get(x, y) == Some(7)).count()
        };
        assert!(lit(2, 10) > 10 && lit(10, 18) > 10, "both glyphs drawn");
        assert_eq!(lit(18, 40) + lit(0, 2), 0, "nothing outside the text");
    }
}
