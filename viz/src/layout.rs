//! Panel layouts: one big chart, 2x2 or 3x3.

use crate::canvas::Rect;

/// How many panels share the chart area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One chart.
    One,
    /// 2 x 2.
    Grid2,
    /// 3 x 3.
    Grid3,
}

impl Layout {
    /// Panels per row (and column).
    pub fn side(self) -> i32 {
        match self {
            Layout::One => 1,
            Layout::Grid2 => 2,
            Layout::Grid3 => 3,
        }
    }
    /// Panels shown.
    pub fn cells(self) -> usize {
        (self.side() * self.side()) as usize
    }
    /// The smallest layout showing `n` charts.
    pub fn fit(n: usize) -> Layout {
        match n {
            0 | 1 => Layout::One,
            2..=4 => Layout::Grid2,
            _ => Layout::Grid3,
        }
    }
    /// The next layout (1 -> 2x2 -> 3x3 -> 1).
    pub fn next(self) -> Layout {
        match self {
            Layout::One => Layout::Grid2,
            Layout::Grid2 => Layout::Grid3,
            Layout::Grid3 => Layout::One,
        }
    }
    /// Parse `1`, `2x2`, `3x3`.
    pub fn parse(s: &str) -> Option<Layout> {
        match s {
            "1" | "1x1" => Some(Layout::One),
            "2x2" => Some(Layout::Grid2),
            "3x3" => Some(Layout::Grid3),
            _ => None,
        }
    }
    /// The panel rectangles over `area`, row by row, with a `gap` between them. Leftover pixels
    /// go to the last row and column so the grid fills the area exactly.
    pub fn rects(self, area: Rect, gap: i32) -> Vec<Rect> {
        let n = self.side();
        let cw = (area.w - gap * (n - 1)) / n;
        let ch = (area.h - gap * (n - 1)) / n;
        let mut out = Vec::with_capacity(self.cells());
        for row in 0..n {
            for col in 0..n {
                let x = area.x + col * (cw + gap);
                let y = area.y + row * (ch + gap);
                let w = if col == n - 1 { area.right() - x } else { cw };
                let h = if row == n - 1 { area.bottom() - y } else { ch };
                out.push(Rect::new(x, y, w, h));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_tile_the_area() {
        let a = Rect::new(10, 20, 301, 200);
        let r = Layout::Grid3.rects(a, 2);
        assert_eq!(r.len(), 9);
        assert_eq!(r[0], Rect::new(10, 20, 99, 65));
        assert_eq!((r[8].right(), r[8].bottom()), (a.right(), a.bottom()));
        assert_eq!(Layout::One.rects(a, 2), vec![a]);
        assert_eq!((Layout::fit(1), Layout::fit(3), Layout::fit(7)), (Layout::One, Layout::Grid2, Layout::Grid3));
    }
}
