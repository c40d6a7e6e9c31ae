//! Colours (0RGB).

/// The palette every panel uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    /// Window background.
    pub bg: u32,
    /// Panel background.
    pub panel: u32,
    /// Panel border (the focused panel uses `focus`).
    pub border: u32,
    /// Focused panel border.
    pub focus: u32,
    /// Grid lines.
    pub grid: u32,
    /// Axis and title text.
    pub text: u32,
    /// Dim text.
    pub dim: u32,
    /// Rising candle (close >= open).
    pub up: u32,
    /// Falling candle.
    pub down: u32,
    /// Volume of a rising bar.
    pub up_vol: u32,
    /// Volume of a falling bar.
    pub down_vol: u32,
    /// Buy fill marker.
    pub buy: u32,
    /// Sell fill marker.
    pub sell: u32,
    /// Position line and label.
    pub position: u32,
    /// Crosshair.
    pub cross: u32,
    /// Overlay colours, by overlay index.
    pub series: [u32; 6],
}

impl Default for Theme {
    fn default() -> Self {
        Theme {
            bg: 0x0010_1418,
            panel: 0x0016_1b22,
            border: 0x0030_3640,
            focus: 0x0058_a6ff,
            grid: 0x0024_2a33,
            text: 0x00c9_d1d9,
            dim: 0x0080_8890,
            up: 0x0026_a69a,
            down: 0x00ef_5350,
            up_vol: 0x0015_5a54,
            down_vol: 0x0080_2d2c,
            buy: 0x0040_90ff,
            sell: 0x00ff_a030,
            position: 0x00e0_e040,
            cross: 0x0090_98a0,
            series: [0x00ff_d54f, 0x00ab_47bc, 0x0042_a5f5, 0x00ff_7043, 0x0066_bb6a, 0x00ec_4080],
        }
    }
}
