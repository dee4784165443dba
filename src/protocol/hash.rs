//! The small hash functions of the protocol (WEBQQ.md §4).
//!
//! Both the client and the simulator need them: the client computes `ptqrtoken` and the
//! friend-list `hash`, the simulator checks them. Every function works on UTF-16 code units,
//! as the original JavaScript did, so non-ASCII input hashes the same way it did in a browser.

/// `hash33` (§4.1): `ptqrtoken = hash33(qrsig)`. With `seed = 5381` it is `bkn` (§4.2).
///
/// The JavaScript shifts a 32-bit value and adds into an unbounded number; reduced mod 2^32
/// that is `e = e * 33 + c`, and the result keeps the low 31 bits.
pub fn hash33_seeded(s: &str, seed: u32) -> u32 {
    let mut e = seed;
    for c in s.encode_utf16() {
        e = e.wrapping_mul(33).wrapping_add(u32::from(c));
    }
    e & 0x7FFF_FFFF
}

/// `ptqrtoken` from the value of the `qrsig` cookie (§3.4, §4.1).
pub fn hash33(s: &str) -> u32 {
    hash33_seeded(s, 0)
}

/// `bkn` / `g_tk` from `skey` (§4.2).
pub fn bkn(skey: &str) -> u32 {
    hash33_seeded(skey, 5381)
}

/// `time33` (§4.3): like hash33 without the final mask. Used for `pt4_auth?auth_token=` and
/// the ptlogin logout `pt4_hkey`.
pub fn time33(s: &str) -> u32 {
    let mut e: u32 = 0;
    for c in s.encode_utf16() {
        e = e.wrapping_mul(33).wrapping_add(u32::from(c));
    }
    e
}

fn hex_upper(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xF) as usize] as char);
    }
    out
}

/// Friend-list hash, variant P ("ECOK", §4.4): the one in force from 2015-03 until the
/// shutdown, required by `get_user_friends2` and `get_group_name_list_mask2` in era E3.
pub fn friend_hash(uin: u64, ptwebqq: &str) -> String {
    let u = (uin & 0xFFFF_FFFF) as u32;
    let mut n = [0u8; 4];
    for (i, c) in ptwebqq.encode_utf16().enumerate() {
        // Char codes are XOR-ed into one byte each; JS stored them in a byte array.
        n[i % 4] ^= (c & 0xFF) as u8;
    }
    let salt = *b"ECOK";
    let v = [
        ((u >> 24) & 0xFF) as u8 ^ salt[0],
        ((u >> 16) & 0xFF) as u8 ^ salt[1],
        ((u >> 8) & 0xFF) as u8 ^ salt[2],
        (u & 0xFF) as u8 ^ salt[3],
    ];
    hex_upper(&[n[0], v[0], n[1], v[1], n[2], v[2], n[3], v[3]])
}

/// Friend-list hash, variant O ("password error", §4.4; 2012-04, 2014-06…2015-03).
pub fn friend_hash_o(uin: u64, ptwebqq: &str) -> String {
    let a: Vec<u16> = ptwebqq
        .encode_utf16()
        .chain("password error".encode_utf16())
        .collect();
    let b: Vec<u16> = uin.to_string().encode_utf16().collect();
    let bytes: Vec<u8> = a
        .iter()
        .enumerate()
        .map(|(i, ac)| ((b[i % b.len()] ^ ac) & 0xFF) as u8)
        .collect();
    hex_upper(&bytes)
}

/// Friend-list hash, variant Q (instrumented quicksort, §4.4; 2013-08…10, 2014-05…06).
pub fn friend_hash_q(uin: u64, ptwebqq: &str) -> String {
    let u = (uin & 0xFFFF_FFFF) as u32;
    let mut r: [i64; 4] = [
        i64::from((u >> 24) & 255),
        i64::from((u >> 16) & 255),
        i64::from((u >> 8) & 255),
        i64::from(u & 255),
    ];
    let mut s: Vec<i64> = ptwebqq.encode_utf16().map(i64::from).collect();
    let mut stack: Vec<(i64, i64)> = vec![(0, s.len() as i64 - 1)];
    while let Some((lo, hi)) = stack.pop() {
        let (mut i, mut j) = (lo, hi);
        if i >= j || i < 0 || j >= s.len() as i64 {
            continue;
        }
        if i + 1 == j {
            if s[i as usize] > s[j as usize] {
                s.swap(i as usize, j as usize);
            }
            continue;
        }
        let pivot = s[i as usize];
        while i < j {
            while i < j && s[j as usize] >= pivot {
                j -= 1;
                r[0] = (r[0] + 3) & 255;
            }
            if i < j {
                s[i as usize] = s[j as usize];
                i += 1;
                r[1] = (r[1] * 13 + 43) & 255;
            }
            while i < j && s[i as usize] <= pivot {
                i += 1;
                r[2] = (r[2] - 3) & 255;
            }
            if i < j {
                s[j as usize] = s[i as usize];
                j -= 1;
                r[3] = (r[0] ^ r[1] ^ r[2] ^ (r[3] + 1)) & 255;
            }
        }
        s[i as usize] = pivot;
        stack.push((lo, i - 1));
        stack.push((i + 1, hi));
    }
    hex_upper(&[r[0] as u8, r[1] as u8, r[2] as u8, r[3] as u8])
}

/// Friend-list hash, variant N (the oldest, ≤2012-04, §4.4).
pub fn friend_hash_n(uin: u64, ptwebqq: &str) -> String {
    let codes: Vec<u32> = ptwebqq.encode_utf16().map(u32::from).collect();
    let len = codes.len();
    let code = |i: usize| -> u32 { codes.get(i).copied().unwrap_or(0) };
    let mut pos = 0usize;
    let mut k: i32 = -1;
    if len == 0 {
        return hex_upper(&k.to_be_bytes());
    }
    for d in uin.to_string().bytes() {
        pos = (pos + usize::from(d - b'0')) % len;
        let mut f: u32 = 0;
        if pos + 4 > len {
            let g = pos + 4 - len;
            for h in 0..4 {
                let byte = if h < g { code(pos + h) } else { code(h - g) };
                f |= (byte & 0xFF) << (8 * (3 - h));
            }
        } else {
            for h in 0..4 {
                f |= (code(pos + h) & 0xFF) << (8 * (3 - h));
            }
        }
        k ^= f as i32;
    }
    hex_upper(&k.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PT_XHAN: &str = "636683b80e7b0b46e26cc6b07c33432a4ab692e52f96e105d4d06fabd0735986";
    const PT_LWQQ: &str = "598b31cd002c96d5e34a74f23b2e4b097462e718f80d6c82cefff275457e1d5e";
    const QRSIG: &str = "hJ9GvNx*oIvLjP5I5dQ19KPa3zwxNI62eALLO*g2JLbKPYsZIRsnbJIxNe74NzQQ";

    #[test]
    fn captured_vectors() {
        assert_eq!(friend_hash_o(34836589, PT_LWQQ), "060D005105045B5D03040A500F035C0C56070C5201015E0B00560A560257080004000E0153020901550C08570056000B50515E5550070F0C07010F5607510D5C43554B40415A4A5D13514A415947");
        assert_eq!(friend_hash(294717557, ""), "005400D20047003E");
    }

    #[test]
    fn computed_vectors() {
        assert_eq!(friend_hash(1953024456, PT_XHAN), "52310C2B06860C83");
        assert_eq!(friend_hash_o(1953024456, PT_XHAN), "070A03050801560C0553065B0551040451060355520F57030751070701050358015252040D065003035F0C055503040151025509035551505004020504000D05405347474259435D155642405B46");
        assert_eq!(friend_hash_q(1953024456, PT_XHAN), "51E082FC");
        assert_eq!(friend_hash_n(1953024456, PT_XHAN), "F9F8F8F1");
        assert_eq!(friend_hash(2769546520, PT_XHAN), "52E00C5006A20C53");
        assert_eq!(friend_hash_q(2769546520, PT_XHAN), "822BA632");
        assert_eq!(friend_hash_n(2769546520, PT_XHAN), "AFABA5F8");
        assert_eq!(friend_hash(34836589, PT_LWQQ), "5847575001DF5026");
        assert_eq!(friend_hash_q(34836589, PT_LWQQ), "9F7C5581");
        assert_eq!(friend_hash_n(34836589, PT_LWQQ), "A6A9AAFF");
    }

    #[test]
    fn token_vectors() {
        assert_eq!(hash33(QRSIG), 1178303247);
        assert_eq!(hash33(""), 0);
        assert_eq!(hash33("a"), 97);
        assert_eq!(hash33("abc"), 108966);
        assert_eq!(bkn("@SoxMZ1bd4"), 1016657201);
        assert_eq!(bkn("@cIJjfYaLL"), 1647847773);
        assert_eq!(bkn("@Z86pBPzDt"), 559630849);
        assert_eq!(bkn(""), 5381);
        assert_eq!(time33("@SoxMZ1bd4"), 116069868);
        assert_eq!(time33("@cIJjfYaLL"), 2894744088);
        assert_eq!(time33(QRSIG), 1178303247);
    }
}
