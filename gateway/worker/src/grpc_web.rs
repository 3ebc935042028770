//! Unary gRPC calls to the control plane as grpc-web over `fetch` (the control plane serves
//! grpc-web on its one port): a framed request, the answer's message and `grpc-status`.

use wasm_bindgen::JsCast;

/// Calls `method` (`package.Service/Method`) at `base_url` with the GATEWAY key; the answer's
/// message bytes, or why the call failed (for logs; never shown to a caller).
pub async fn call(
    base_url: &str,
    key: &str,
    method: &str,
    message: &[u8],
) -> Result<Vec<u8>, String> {
    let body = frame(message);
    let headers = web_sys::Headers::new().map_err(|_| "headers")?;
    for (k, v) in [
        ("content-type", "application/grpc-web+proto"),
        ("x-grpc-web", "1"),
        ("accept", "application/grpc-web+proto"),
    ] {
        headers.append(k, v).map_err(|_| "header")?;
    }
    headers
        .append("authorization", &format!("Bearer {key}"))
        .map_err(|_| "the gateway key is not valid header text".to_owned())?;
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_headers(headers.as_ref());
    init.set_body(&js_sys::Uint8Array::from(body.as_slice()));
    let url = format!("{base_url}/{method}");
    let request = web_sys::Request::new_with_str_and_init(&url, &init)
        .map_err(|_| "request not built".to_owned())?;
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let resp: web_sys::Response =
        wasm_bindgen_futures::JsFuture::from(global.fetch_with_request(&request))
            .await
            .map_err(|e| format!("control plane unreachable: {e:?}"))?
            .unchecked_into();
    if resp.status() != 200 {
        return Err(format!("HTTP {}", resp.status()));
    }
    // Trailers-only answers carry the status in the headers.
    if let Ok(Some(s)) = resp.headers().get("grpc-status") {
        status(&s, resp.headers().get("grpc-message").ok().flatten())?;
        return Ok(Vec::new());
    }
    let buf = wasm_bindgen_futures::JsFuture::from(resp.array_buffer().map_err(|_| "body")?)
        .await
        .map_err(|_| "body not read".to_owned())?;
    let bytes = js_sys::Uint8Array::new(&buf).to_vec();
    let (message, trailers) = parse(&bytes).ok_or("not a grpc-web answer".to_owned())?;
    let find = |name: &str| {
        trailers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    status(
        &find("grpc-status").ok_or("no grpc-status".to_owned())?,
        find("grpc-message"),
    )?;
    Ok(message)
}

fn status(status: &str, message: Option<String>) -> Result<(), String> {
    if status.trim() == "0" {
        Ok(())
    } else {
        Err(format!(
            "grpc-status {status}: {}",
            message.unwrap_or_default()
        ))
    }
}

/// A grpc-web data frame: flag 0, big-endian length, message.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// An answer's trailers: lower-case names and their values.
pub type Trailers = Vec<(String, String)>;

/// A grpc-web answer body: its (first) message and its trailers as lower-case name/value
/// pairs; `None` without a trailer frame or when a frame is cut.
pub fn parse(mut body: &[u8]) -> Option<(Vec<u8>, Trailers)> {
    let mut message = Vec::new();
    while body.len() >= 5 {
        let flag = body[0];
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let frame = body.get(5..5 + len)?;
        if flag & 0x80 != 0 {
            let text = std::str::from_utf8(frame).ok()?;
            let trailers = text
                .split("\r\n")
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            return Some((message, trailers));
        }
        if message.is_empty() {
            message = frame.to_vec();
        }
        body = &body[5 + len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_trailers_round_trip() {
        let f = frame(b"abc");
        assert_eq!(f, [0, 0, 0, 0, 3, b'a', b'b', b'c']);
        let mut body = f.clone();
        let t = b"grpc-status: 0\r\ngrpc-message: \r\n";
        body.push(0x80);
        body.extend_from_slice(&(t.len() as u32).to_be_bytes());
        body.extend_from_slice(t);
        let (message, trailers) = parse(&body).unwrap();
        assert_eq!(message, b"abc");
        assert!(trailers.contains(&("grpc-status".into(), "0".into())));
        assert_eq!(parse(&f), None);
        assert_eq!(parse(&[0x80, 0, 0, 0, 9, b'x']), None);
        assert!(status("0", None).is_ok());
        assert!(
            status("7", Some("denied".into()))
                .unwrap_err()
                .contains("denied")
        );
    }
}
