//! The QR image of `ptqrshow` (§3.3): a real PNG QR code, so a client that shows it in a
//! terminal or decodes it works as it did against the real service.

use image::{ImageBuffer, Luma};
use qrcode::{EcLevel, QrCode};

/// The URL a QR encodes. The real codes pointed at the phone-side page with the token in
/// `k=`; the simulator keeps that form so the token can be read back from the image.
pub fn qr_url(token: &str) -> String {
    format!("https://txz.qq.com/p?k={token}&f=501004106")
}

/// Renders `data` as a PNG. `module` is the pixel size of one module (`s=`), `margin` the
/// quiet zone in modules (`e=`), `level` the error correction letter (`l=`).
pub fn png(data: &str, module: u32, margin: u32, level: &str) -> Result<Vec<u8>, String> {
    let ec = match level {
        "L" | "l" => EcLevel::L,
        "Q" | "q" => EcLevel::Q,
        "H" | "h" => EcLevel::H,
        _ => EcLevel::M,
    };
    let code =
        QrCode::with_error_correction_level(data.as_bytes(), ec).map_err(|e| e.to_string())?;
    let module = module.clamp(1, 20);
    let margin = margin.min(10);
    let inner = code
        .render::<Luma<u8>>()
        .quiet_zone(false)
        .module_dimensions(module, module)
        .build();
    let pad = margin * module;
    let (w, h) = (inner.width() + 2 * pad, inner.height() + 2 * pad);
    let mut img: ImageBuffer<Luma<u8>, Vec<u8>> = ImageBuffer::from_pixel(w, h, Luma([255]));
    image::imageops::overlay(&mut img, &inner, i64::from(pad), i64::from(pad));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_has_signature() {
        let p = png(&qr_url("abc"), 3, 2, "M").unwrap();
        assert_eq!(&p[..8], b"\x89PNG\r\n\x1a\n");
    }
}
