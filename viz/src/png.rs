//! PNG output through the `png` crate (RGB, 8 bits, default zlib compression: a 1600x900 chart is
//! a few tens of kilobytes, small enough for reports and the README).

use crate::canvas::Canvas;
use std::path::Path;

/// A PNG of the canvas in memory.
pub fn encode(c: &Canvas) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, c.width() as u32, c.height() as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header()?;
        let rgb: Vec<u8> = c.pixels().iter().flat_map(|p| [(p >> 16) as u8, (p >> 8) as u8, *p as u8]).collect();
        w.write_image_data(&rgb)?;
        w.finish()?;
    }
    Ok(out)
}

/// Write the canvas as a PNG file (to a temporary name, then renamed into place).
pub fn write(c: &Canvas, path: &Path) -> std::io::Result<()> {
    let bytes = encode(c).map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Decode a PNG back into 0RGB pixels: (width, height, pixels). For tests and checks.
pub fn decode(bytes: &[u8]) -> Result<(u32, u32, Vec<u32>), png::DecodingError> {
    let mut r = png::Decoder::new(std::io::Cursor::new(bytes)).read_info()?;
    let mut buf = vec![0; r.output_buffer_size().unwrap_or(0)];
    let info = r.next_frame(&mut buf)?;
    let ch = info.color_type.samples();
    let px = buf[..info.buffer_size()]
        .chunks(ch)
        .map(|p| u32::from(p[0]) << 16 | u32::from(p[1]) << 8 | u32::from(p[2]))
        .collect();
    Ok((info.width, info.height, px))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canvas::Rect;

    #[test]
    fn round_trips_pixels() {
        let mut c = Canvas::new(7, 5, 0x0012_3456);
        c.fill_rect(Rect::new(2, 1, 3, 2), c.rect(), 0x00ff_0080);
        let bytes = encode(&c).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let (w, h, px) = decode(&bytes).unwrap();
        assert_eq!((w, h), (7, 5));
        assert_eq!(px, c.pixels());
    }
}
