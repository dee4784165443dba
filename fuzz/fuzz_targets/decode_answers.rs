//! Every decoder of server answers fed arbitrary bytes: none may panic (WEBQQ.md §2: poll2
//! and the list calls answered 502 pages, truncated JSON and odd shapes in the wild).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qqfleet::protocol::contacts::{
    decode_discu_info, decode_discus, decode_friends, decode_group_info, decode_groups,
    decode_online, decode_recent, decode_self_info,
};
use qqfleet::protocol::content::{encode_send, html_unescape, split_text, Content};
use qqfleet::protocol::events::decode_event;
use qqfleet::protocol::ptlogin::{parse_pt4_auth, parse_ptqrlogin};
use qqfleet::protocol::{classify_poll, classify_send, decode_json_body, Endpoint, RetcodeTable};

fuzz_target!(|data: &[u8]| {
    let table = RetcodeTable::default();
    if let Ok(v) = decode_json_body(Endpoint::Poll2, "application/json", data) {
        let _ = classify_poll(&v, &table);
        let _ = classify_send(&v, Endpoint::SendQunMsg2, &table);
        let _ = decode_event(&v);
        let r = v.get("result").cloned().unwrap_or(serde_json::Value::Null);
        let _ = decode_friends(&r);
        let _ = decode_groups(&r);
        let _ = decode_group_info(&r);
        let _ = decode_discus(&r);
        let _ = decode_discu_info(&r);
        let _ = decode_self_info(&r);
        let _ = decode_online(&r);
        let _ = decode_recent(&r);
        if let Some(items) = r.as_array() {
            for item in items {
                let _ = decode_event(item);
                if let Some(c) = item.get("value").and_then(|x| x.get("content")) {
                    let _ = Content::from_json(c).map(|c| c.text());
                }
            }
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = parse_ptqrlogin(&text);
    let _ = parse_pt4_auth(&text);
    let _ = html_unescape(&text);
    let pieces = split_text(&text);
    assert!(pieces.iter().all(|p| p.len() <= 720));
    assert_eq!(pieces.concat(), text);
    let _ = encode_send(&text);
});
