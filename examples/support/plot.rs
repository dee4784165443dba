//! Line plots as PNG, drawn by the benchmarks themselves (no plotting dependency): axes
//! with ticks, one coloured line with dots per series, a legend, and labels in a tiny
//! built-in 5×7 bitmap font. Include it with
//! `#[path = "support/plot.rs"] mod plot;` from an example.

#![allow(dead_code)]

use std::path::Path;

use image::{Rgb, RgbImage};

const W: u32 = 720;
const H: u32 = 440;
const LEFT: u32 = 80;
const RIGHT: u32 = 24;
const TOP: u32 = 40;
const BOTTOM: u32 = 64;
const COLOURS: [[u8; 3]; 6] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [255, 127, 14],
    [148, 103, 189],
    [23, 190, 207],
];

/// Draws `series` (name, points) as lines on one pair of linear axes starting at zero and
/// writes a PNG to `path`.
pub fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> std::io::Result<()> {
    let mut img = RgbImage::from_pixel(W, H, Rgb([255, 255, 255]));
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (mut xmax, mut ymax) = (0f64, 0f64);
    for &(x, y) in pts {
        if x.is_finite() {
            xmax = xmax.max(x);
        }
        if y.is_finite() {
            ymax = ymax.max(y);
        }
    }
    let xmax = nice(if xmax > 0.0 { xmax } else { 1.0 });
    let ymax = nice(if ymax > 0.0 { ymax * 1.1 } else { 1.0 });
    let (x0, y0, x1, y1) = (LEFT, H - BOTTOM, W - RIGHT, TOP);
    let px = |x: f64| x0 as f64 + x / xmax * (x1 - x0) as f64;
    let py = |y: f64| y0 as f64 - y / ymax * (y0 - y1) as f64;
    let grey = Rgb([200, 200, 200]);
    let black = Rgb([0, 0, 0]);
    for i in 0..=5 {
        let fx = xmax * i as f64 / 5.0;
        let fy = ymax * i as f64 / 5.0;
        let gx = px(fx) as i64;
        let gy = py(fy) as i64;
        line(&mut img, gx, y0 as i64, gx, y1 as i64, grey);
        line(&mut img, x0 as i64, gy, x1 as i64, gy, grey);
        let lx = fmt(fx);
        text(
            &mut img,
            gx - (lx.len() as i64 * 6) / 2,
            y0 as i64 + 6,
            &lx,
            black,
        );
        let ly = fmt(fy);
        text(
            &mut img,
            x0 as i64 - 6 - ly.len() as i64 * 6,
            gy - 3,
            &ly,
            black,
        );
    }
    line(&mut img, x0 as i64, y0 as i64, x1 as i64, y0 as i64, black);
    line(&mut img, x0 as i64, y0 as i64, x0 as i64, y1 as i64, black);
    text_scaled(
        &mut img,
        (W as i64 - title.len() as i64 * 12) / 2,
        10,
        title,
        black,
        2,
    );
    text(
        &mut img,
        (x0 + x1) as i64 / 2 - x_label.len() as i64 * 3,
        y0 as i64 + 24,
        x_label,
        black,
    );
    text(&mut img, 4, TOP as i64 - 16, y_label, black);
    for (i, (name, points)) in series.iter().enumerate() {
        let c = Rgb(COLOURS[i % COLOURS.len()]);
        let mut sorted: Vec<(f64, f64)> = points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in sorted.windows(2) {
            let (a, b) = (w[0], w[1]);
            line(
                &mut img,
                px(a.0) as i64,
                py(a.1) as i64,
                px(b.0) as i64,
                py(b.1) as i64,
                c,
            );
            line(
                &mut img,
                px(a.0) as i64,
                py(a.1) as i64 + 1,
                px(b.0) as i64,
                py(b.1) as i64 + 1,
                c,
            );
        }
        for &(x, y) in &sorted {
            dot(&mut img, px(x) as i64, py(y) as i64, c);
        }
        let ly = H as i64 - 20;
        let lx = LEFT as i64 + i as i64 * 180;
        for d in 0..16 {
            put(&mut img, lx + d, ly + 3, c);
            put(&mut img, lx + d, ly + 4, c);
        }
        text(&mut img, lx + 20, ly, name, black);
    }
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(std::io::Error::other)
}

/// The next 1, 2 or 5 × 10^k at or above `v`.
fn nice(v: f64) -> f64 {
    let e = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * e >= v {
            return m * e;
        }
    }
    10.0 * e
}

fn fmt(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, c);
    }
}

fn dot(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    for dx in -3..=3i64 {
        for dy in -3..=3i64 {
            if dx * dx + dy * dy <= 9 {
                put(img, x + dx, y + dy, c);
            }
        }
    }
}

/// Bresenham.
fn line(img: &mut RgbImage, mut x0: i64, mut y0: i64, x1: i64, y1: i64, c: Rgb<u8>) {
    let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
    let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
    let mut err = dx + dy;
    loop {
        put(img, x0, y0, c);
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

fn text(img: &mut RgbImage, x: i64, y: i64, s: &str, c: Rgb<u8>) {
    text_scaled(img, x, y, s, c, 1)
}

fn text_scaled(img: &mut RgbImage, x: i64, y: i64, s: &str, c: Rgb<u8>, k: i64) {
    for (i, ch) in s.chars().enumerate() {
        let rows = glyph(ch);
        for (r, bits) in rows.iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) != 0 {
                    for a in 0..k {
                        for b in 0..k {
                            put(
                                img,
                                x + (i as i64 * 6 + col) * k + a,
                                y + r as i64 * k + b,
                                c,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// 5×7 glyphs, one byte per row (bit 4 = leftmost column). Unknown characters draw a box.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        ' ' => [0; 7],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        ',' => [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '+' => [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        '/' => [0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '=' => [0, 0, 0x1F, 0, 0x1F, 0, 0],
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        '\'' => [0x04, 0x04, 0x08, 0, 0, 0, 0],
        _ => [0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F],
    }
}
