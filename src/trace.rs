//! W3C Trace Context (`traceparent`): one trace id follows a request from
//! the app through authstore to the webhook delivery it causes.
//!
//! A request's context is the one it came with (a well-formed
//! `traceparent`: same trace, a span of this server's own) or a new trace.
//! `http::request_id` runs each request inside [`scope`], so the access and
//! error lines name its trace, the events it writes record it, and the
//! delivery of those events carries it on.

use std::fmt;

/// The trace a request belongs to, and this server's span in it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

/// `sampled`: the caller may record this trace.
const SAMPLED: u8 = 0x01;

tokio::task_local! {
    static CURRENT: TraceContext;
}

impl TraceContext {
    /// Parses a `traceparent` header. Version `00` exactly as written; a
    /// later version by its first four fields (as the specification asks);
    /// `ff`, upper-case hex, or an all-zero id is refused.
    pub fn parse(header: &str) -> Option<TraceContext> {
        let header = header.trim_matches([' ', '\t']);
        let mut fields = header.split('-');
        let version = lower_hex::<1>(fields.next()?)?;
        let trace_id = lower_hex::<16>(fields.next()?)?;
        let span_id = lower_hex::<8>(fields.next()?)?;
        let [flags] = lower_hex::<1>(fields.next()?)?;
        let rest = fields.next();
        match version {
            [0xff] => return None,
            [0x00] if rest.is_some() => return None,
            _ => {}
        }
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            flags,
        })
    }

    /// A new trace, with this server's span as its root.
    pub fn start() -> TraceContext {
        TraceContext {
            trace_id: random_nonzero(),
            span_id: random_nonzero(),
            flags: SAMPLED,
        }
    }

    /// Parses `header` into this server's span of the caller's trace, or
    /// starts a trace when there is none or it is malformed.
    pub fn continue_or_start(header: Option<&str>) -> TraceContext {
        match header.and_then(TraceContext::parse) {
            Some(parent) => parent.child(),
            None => TraceContext::start(),
        }
    }

    /// A span of the same trace (what a hop made from here carries).
    pub fn child(&self) -> TraceContext {
        TraceContext {
            span_id: random_nonzero(),
            ..*self
        }
    }

    /// A span of the trace `trace_id` (32 lower-case hex digits), as a
    /// webhook delivery of an event recorded in it carries.
    pub fn in_trace(trace_id: &str) -> Option<TraceContext> {
        let trace_id = lower_hex::<16>(trace_id)?;
        (trace_id != [0; 16]).then(|| TraceContext {
            trace_id,
            span_id: random_nonzero(),
            flags: SAMPLED,
        })
    }

    /// The trace id, 32 lower-case hex digits.
    pub fn trace_id(&self) -> String {
        let mut text = String::with_capacity(32);
        push_hex(&mut text, &self.trace_id);
        text
    }

    /// The `traceparent` header value naming this span.
    pub fn header(&self) -> String {
        let mut text = String::with_capacity(55);
        text.push_str("00-");
        push_hex(&mut text, &self.trace_id);
        text.push('-');
        push_hex(&mut text, &self.span_id);
        text.push('-');
        push_hex(&mut text, &[self.flags]);
        text
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.header())
    }
}

/// Runs `work` as part of `context`'s trace.
pub async fn scope<F: std::future::Future>(context: TraceContext, work: F) -> F::Output {
    CURRENT.scope(context, work).await
}

/// The trace of the request being served on this task, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(|context| *context).ok()
}

/// Exactly `N` bytes as 2N lower-case hex digits.
fn lower_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let value = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut bytes = [0u8; N];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let [high, low] = pair else { return None };
        *byte = value(*high)? << 4 | value(*low)?;
    }
    Some(bytes)
}

/// Appends `bytes` as lower-case hex digits (on every request: no
/// formatting machinery).
fn push_hex(text: &mut String, bytes: &[u8]) {
    let digit = |nibble: u8| {
        char::from(if nibble < 10 {
            b'0' + nibble
        } else {
            b'a' + nibble - 10
        })
    };
    for byte in bytes {
        text.push(digit(byte >> 4));
        text.push(digit(byte & 0x0f));
    }
}

thread_local! {
    /// SplitMix64's state, seeded once per thread from OpenSSL: trace and
    /// span ids must be unique and unpredictable enough not to collide,
    /// not secret (they travel in headers), and are made on every request.
    static STATE: std::cell::Cell<u64> = std::cell::Cell::new(seed());
}

fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    if openssl::rand::rand_bytes(&mut bytes).is_err() {
        // No randomness: the time still differs between threads and runs.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return now.as_nanos() as u64 ^ u64::from(std::process::id());
    }
    u64::from_le_bytes(bytes)
}

fn next_u64() -> u64 {
    STATE.with(|state| {
        let next = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

fn random_nonzero<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    while bytes == [0; N] {
        for chunk in bytes.chunks_mut(8) {
            for (byte, random) in chunk.iter_mut().zip(next_u64().to_le_bytes()) {
                *byte = random;
            }
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIVEN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_well_formed_traceparent_is_continued_in_a_span_of_its_own() {
        let parent = TraceContext::parse(GIVEN).unwrap();
        assert_eq!(parent.header(), GIVEN);
        let ours = TraceContext::continue_or_start(Some(GIVEN));
        assert_eq!(ours.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(ours.header(), GIVEN, "a span of our own");
        assert!(ours.header().ends_with("-01"), "the caller's flags");
    }

    #[test]
    fn malformed_traceparents_start_a_trace() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad:?}");
            let started = TraceContext::continue_or_start(Some(bad));
            assert_ne!(started.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        }
        // A later version is read by its first four fields.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        assert!(TraceContext::parse(later).is_some());
    }

    #[test]
    fn started_traces_differ_and_round_trip() {
        let (a, b) = (TraceContext::start(), TraceContext::start());
        assert_ne!(a.trace_id(), b.trace_id());
        assert_eq!(TraceContext::parse(&a.header()), Some(a));
        let delivered = TraceContext::in_trace(&a.trace_id()).unwrap();
        assert_eq!(delivered.trace_id(), a.trace_id());
        assert!(TraceContext::in_trace("not hex").is_none());
    }

    #[actix_web::test]
    async fn the_current_trace_is_the_scopes() {
        assert!(current().is_none());
        let context = TraceContext::start();
        let seen = scope(context, async { current() }).await;
        assert_eq!(seen, Some(context));
    }
}
