//! Decoders of the ptlogin2 JavaScript callbacks (WEBQQ.md §3.4, §3.10, §15.1).

/// The quoted arguments of `name('a','b',...)`. ptlogin answers `ptuiCB('66','0','','0',
/// '二维码未失效。(…)', '')` with a space before the last argument and `\r\n` after (§2).
/// Returns `None` when `name(` is absent or a quote is unterminated.
pub fn callback_args(body: &str, name: &str) -> Option<Vec<String>> {
    let start = body.find(&format!("{name}("))? + name.len() + 1;
    let mut args = Vec::new();
    let mut chars = body[start..].chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        match chars.next()? {
            ')' => return Some(args),
            q @ ('\'' | '"') => {
                let mut s = String::new();
                loop {
                    match chars.next()? {
                        '\\' => s.push(chars.next()?),
                        c if c == q => break,
                        c => s.push(c),
                    }
                }
                args.push(s);
            }
            _ => return None,
        }
        if args.len() > 32 {
            return None;
        }
    }
}

/// The state of a QR code as told by `ptqrlogin` (§3.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QrAnswer {
    Waiting,
    Scanned,
    Expired,
    Confirmed { check_sig_url: String, nick: String },
    Refused { code: i64, message: String },
}

/// Decodes a `ptqrlogin` answer. Matches on the code and falls back to the text (§15.1: one
/// source shows 认证中 with code 66, so the text wins for 66).
pub fn parse_ptqrlogin(body: &str) -> Option<QrAnswer> {
    let args = callback_args(body, "ptuiCB")?;
    let code = args.first()?.trim();
    let message = args.get(4).cloned().unwrap_or_default();
    let by_text = || {
        if message.contains("认证中") {
            Some(QrAnswer::Scanned)
        } else if message.contains("已失效") {
            Some(QrAnswer::Expired)
        } else if message.contains("未失效") {
            Some(QrAnswer::Waiting)
        } else {
            None
        }
    };
    Some(match code {
        "0" => QrAnswer::Confirmed {
            check_sig_url: args.get(2).cloned().filter(|u| !u.is_empty())?,
            nick: args.get(5).cloned().unwrap_or_default(),
        },
        "66" => by_text().unwrap_or(QrAnswer::Waiting),
        "67" => QrAnswer::Scanned,
        "65" => QrAnswer::Expired,
        other => match by_text() {
            Some(a) => a,
            None => QrAnswer::Refused {
                code: other.parse().unwrap_or(-1),
                message,
            },
        },
    })
}

/// Decodes `pt4_auth`: `ptui_auth_CB('<code>','<url>')` → the check_sig URL with the
/// parameters §3.10 says to append, or `None` when it does not offer one.
pub fn parse_pt4_auth(body: &str) -> Option<String> {
    let args = callback_args(body, "ptui_auth_CB")?;
    let url = args.get(1)?;
    if !url.contains("check_sig") {
        return None;
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!(
        "{url}{sep}regmaster=&aid=501004106&s_url=http%3A%2F%2Fw.qq.com%2Fproxy.html"
    ))
}

/// The QQ number in a `uin`/`superuin`/`p_uin` cookie value: `o0123456` → 123456 (§1).
pub fn qq_from_cookie(value: &str) -> Option<u64> {
    let digits = value.trim().strip_prefix('o').unwrap_or(value.trim());
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n: &u64| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_args_handle_spacing_and_escapes() {
        let a = callback_args(
            "ptuiCB('0','0','u','0','登录成功！', '小萌姬');\r\n",
            "ptuiCB",
        )
        .unwrap();
        assert_eq!(a, vec!["0", "0", "u", "0", "登录成功！", "小萌姬"]);
        assert_eq!(
            callback_args(r"ptuiCB('a\'b')", "ptuiCB").unwrap(),
            vec!["a'b"]
        );
        assert!(callback_args("ptuiCB('a", "ptuiCB").is_none());
        assert!(callback_args("<html>", "ptuiCB").is_none());
        assert!(callback_args("ptuiCB(1,2)", "ptuiCB").is_none());
    }

    #[test]
    fn qq_numbers_from_cookies() {
        assert_eq!(qq_from_cookie("o0847708268"), Some(847708268));
        assert_eq!(qq_from_cookie("o1953024456"), Some(1953024456));
        assert_eq!(qq_from_cookie(""), None);
        assert_eq!(qq_from_cookie("oabc"), None);
    }

    #[test]
    fn pt4_auth_appends_the_documented_parameters() {
        let u = parse_pt4_auth("ptui_auth_CB('0','http://ptlogin4.web2.qq.com/check_sig?x=1')")
            .unwrap();
        assert!(u.ends_with("&regmaster=&aid=501004106&s_url=http%3A%2F%2Fw.qq.com%2Fproxy.html"));
        assert_eq!(parse_pt4_auth("ptui_auth_CB('1','')"), None);
    }
}
