//! What the `webhook` notifier sends for one alert, per format: the body,
//! its content type and the format's own headers. Pure functions, so the
//! shapes are tested without a network.

use kalshi_alerts_core::condition::describe;
use kalshi_alerts_core::price::{format_price, Price};
use kalshi_alerts_core::{ConditionType, FiredAlert};
use serde_json::{json, Value};

/// The payload formats; see [`Format::NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The fired-alert record, as the `file` notifier writes it.
    Generic,
    /// A Slack incoming webhook.
    Slack,
    /// A Discord channel webhook.
    Discord,
    /// A push to an ntfy topic URL.
    Ntfy,
}

impl Format {
    /// The spellings of the `format` setting, in the order of the variants.
    pub const NAMES: &'static [&'static str] = &["generic", "slack", "discord", "ntfy"];

    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "generic" => Some(Format::Generic),
            "slack" => Some(Format::Slack),
            "discord" => Some(Format::Discord),
            "ntfy" => Some(Format::Ntfy),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Generic => "generic",
            Format::Slack => "slack",
            Format::Discord => "discord",
            Format::Ntfy => "ntfy",
        }
    }
}

/// How an ntfy push is marked; unused by the other formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtfyOptions {
    /// One of ntfy's priority names (`min` to `urgent`).
    pub priority: String,
    /// Tags or emoji short codes, sent before the condition type.
    pub tags: Vec<String>,
}

/// One request's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Headers the format itself defines (ntfy's `Title`, say).
    pub headers: Vec<(&'static str, String)>,
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

/// Discord refuses a message whose parts exceed these lengths, in characters.
const DISCORD_CONTENT_MAX: usize = 2000;
const DISCORD_TITLE_MAX: usize = 256;
const DISCORD_DESCRIPTION_MAX: usize = 4096;
const DISCORD_FOOTER_MAX: usize = 2048;
/// An amber side bar: an alert, not an error.
const DISCORD_COLOUR: u32 = 0xF5_A6_23;

/// The request body and headers for `alert` in `format`.
pub fn render(format: Format, alert: &FiredAlert, ntfy: &NtfyOptions) -> Payload {
    match format {
        Format::Generic => Payload {
            content_type: JSON,
            body: serde_json::to_vec(alert).expect("alerts serialise to JSON"),
            headers: Vec::new(),
        },
        Format::Slack => json_payload(slack(alert)),
        Format::Discord => json_payload(discord(alert)),
        Format::Ntfy => ntfy_payload(alert, ntfy),
    }
}

fn json_payload(body: Value) -> Payload {
    Payload {
        content_type: JSON,
        body: body.to_string().into_bytes(),
        headers: Vec::new(),
    }
}

/// The facts every readable format shows, already formatted.
struct Facts {
    summary: String,
    title: String,
    label: String,
    value: String,
    threshold: String,
    bid: String,
    ask: String,
    volume: String,
    fired_at: String,
}

impl Facts {
    fn of(alert: &FiredAlert) -> Facts {
        let market = &alert.market_data;
        let kind = &alert.condition_type;
        let quote = |p: Option<Price>| p.map_or_else(|| "-".to_string(), format_price);
        Facts {
            summary: alert.summary(),
            title: market.title.trim().to_string(),
            label: alert.label.trim().to_string(),
            value: measured(kind, alert.current_value),
            threshold: measured(kind, alert.threshold),
            bid: quote(market.yes_bid),
            ask: quote(market.yes_ask),
            volume: market
                .volume
                .map_or_else(|| "-".to_string(), |v| v.normalize().to_string()),
            fired_at: alert
                .triggered_at
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
        }
    }

    fn value_line(&self) -> String {
        format!("value {} vs threshold {}", self.value, self.threshold)
    }

    fn quote_line(&self) -> String {
        format!(
            "bid {} / ask {}, volume {}",
            self.bid, self.ask, self.volume
        )
    }
}

/// A measured value or threshold in the unit of its condition type.
fn measured(kind: &ConditionType, value: Price) -> String {
    match kind {
        ConditionType::SpreadAbove => format!("{}c", value.normalize()),
        kind if kind.threshold_is_probability() => format_price(value),
        _ => value.normalize().to_string(),
    }
}

/// Slack's incoming-webhook message: `text` in mrkdwn, which is what the
/// channel and the notification show.
fn slack(alert: &FiredAlert) -> Value {
    let facts = Facts::of(alert);
    let mut lines = vec![format!(
        ":rotating_light: *{}*",
        slack_escape(&facts.summary)
    )];
    if !facts.title.is_empty() {
        lines.push(slack_escape(&facts.title));
    }
    if !facts.label.is_empty() {
        lines.push(format!("label: {}", slack_escape(&facts.label)));
    }
    lines.push(facts.value_line());
    lines.push(facts.quote_line());
    lines.push(format!(
        "fired {} · condition `{}`",
        facts.fired_at,
        slack_escape(&alert.condition_id)
    ));
    json!({ "text": lines.join("\n"), "mrkdwn": true })
}

/// Slack reads `&`, `<` and `>` as markup (links, mentions); everything
/// else in mrkdwn is shown as typed.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Discord's webhook message: a one-line `content` (what a phone shows)
/// and an embed with the details. Mentions are switched off, so a market
/// title or label containing `@everyone` pings nobody.
fn discord(alert: &FiredAlert) -> Value {
    let facts = Facts::of(alert);
    let title = if facts.title.is_empty() {
        alert.ticker.clone()
    } else {
        facts.title.clone()
    };
    let mut description = Vec::new();
    if !facts.label.is_empty() {
        description.push(discord_escape(&facts.label));
    }
    description.push(facts.value_line());
    let field = |name: &str, value: &str| json!({ "name": name, "value": value, "inline": true });
    json!({
        "content": truncate(&format!("**{}**", facts.summary), DISCORD_CONTENT_MAX),
        "allowed_mentions": { "parse": [] },
        "embeds": [{
            "title": truncate(&discord_escape(&title), DISCORD_TITLE_MAX),
            "description": truncate(&description.join("\n"), DISCORD_DESCRIPTION_MAX),
            "color": DISCORD_COLOUR,
            "fields": [
                field("Ticker", &alert.ticker),
                field("Condition", &describe(&alert.condition_type, alert.threshold)),
                field("Value", &facts.value),
                field("Bid / ask", &format!("{} / {}", facts.bid, facts.ask)),
                field("Volume", &facts.volume),
                field("Fired", &facts.fired_at),
            ],
            "timestamp": alert.triggered_at.to_rfc3339(),
            "footer": {
                "text": truncate(
                    &format!("condition {} · alert {}", alert.condition_id, alert.id),
                    DISCORD_FOOTER_MAX,
                ),
            },
        }],
    })
}

/// Backslash-escapes Discord's markdown characters in text a market or a
/// user wrote, so a title with `*` or `_` shows as written.
fn discord_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '#' | '[' | ']'
        ) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// At most `max` characters, ending in `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// ntfy's publish-as-plain-text: the body is the message, and `Title`,
/// `Priority` and `Tags` headers mark it.
fn ntfy_payload(alert: &FiredAlert, options: &NtfyOptions) -> Payload {
    let facts = Facts::of(alert);
    let mut lines = Vec::new();
    if !facts.title.is_empty() {
        lines.push(facts.title.clone());
    }
    if !facts.label.is_empty() {
        lines.push(format!("label: {}", facts.label));
    }
    lines.push(facts.value_line());
    lines.push(facts.quote_line());
    lines.push(format!("fired {}", facts.fired_at));

    let mut tags = options.tags.clone();
    tags.push(alert.condition_type.as_str().to_string());
    Payload {
        content_type: TEXT,
        body: lines.join("\n").into_bytes(),
        headers: vec![
            ("Title", header_text(&facts.summary)),
            ("Priority", options.priority.clone()),
            ("Tags", tags.join(",")),
        ],
    }
}

/// `text` as an HTTP header value: as is when it is printable ASCII, else
/// as an RFC 2047 encoded word, which ntfy decodes (header values are
/// bytes on the wire, and most servers read them as Latin-1).
pub fn header_text(text: &str) -> String {
    if text.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
        return text.to_string();
    }
    format!("=?UTF-8?B?{}?=", base64(text.as_bytes()))
}

/// Standard base64 with padding. Written out because it is all this crate
/// needs of the encoding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use kalshi_alerts_core::{Condition, Market};
    use rust_decimal::Decimal;

    use super::*;

    fn alert_with(
        kind: &str,
        threshold: f64,
        value: Decimal,
        title: &str,
        label: &str,
    ) -> FiredAlert {
        let condition: Condition = serde_json::from_value(json!({
            "id": "cond-1", "condition_type": kind, "ticker": "KXBTC-25DEC31-T100000",
            "threshold": threshold, "label": label, "created_at": ""
        }))
        .unwrap();
        let market = Market {
            ticker: "KXBTC-25DEC31-T100000".into(),
            title: title.into(),
            status: "active".into(),
            event_ticker: String::new(),
            yes_bid: Some(Decimal::new(64, 2)),
            yes_ask: Some(Decimal::new(67, 2)),
            volume: Some(Decimal::from(1234)),
        };
        let at = kalshi_alerts_core::condition::parse_timestamp("2026-01-12T22:08:10Z").unwrap();
        FiredAlert::new(&condition, &market, value, at)
    }

    fn alert() -> FiredAlert {
        alert_with(
            "price_above",
            0.6,
            Decimal::new(655, 3),
            "Bitcoin above $100k?",
            "BTC over 60",
        )
    }

    fn ntfy_options() -> NtfyOptions {
        NtfyOptions {
            priority: "high".into(),
            tags: vec!["chart_with_upwards_trend".into()],
        }
    }

    fn json_of(payload: &Payload) -> Value {
        serde_json::from_slice(&payload.body).unwrap()
    }

    #[test]
    fn format_names_and_variants_agree() {
        for name in Format::NAMES {
            assert_eq!(Format::parse(name).unwrap().name(), *name);
        }
        assert_eq!(Format::parse("teams"), None);
    }

    #[test]
    fn generic_body_is_the_fired_alert_record_byte_for_byte() {
        let alert = alert();
        let payload = render(Format::Generic, &alert, &ntfy_options());
        assert_eq!(payload.content_type, "application/json");
        assert_eq!(payload.body, serde_json::to_vec(&alert).unwrap());
        assert_eq!(json_of(&payload)["id"], alert.id.as_str());
        assert!(payload.headers.is_empty());
    }

    #[test]
    fn slack_text_reads_the_alert_in_mrkdwn() {
        let payload = render(Format::Slack, &alert(), &ntfy_options());
        assert_eq!(payload.content_type, "application/json");
        let body = json_of(&payload);
        assert_eq!(body["mrkdwn"], true);
        let text = body["text"].as_str().unwrap();
        assert_eq!(
            text,
            ":rotating_light: *KXBTC-25DEC31-T100000 price &gt; 0.6 (now 0.655)*\n\
             Bitcoin above $100k?\n\
             label: BTC over 60\n\
             value 0.655 vs threshold 0.60\n\
             bid 0.64 / ask 0.67, volume 1234\n\
             fired 2026-01-12 22:08:10 UTC · condition `cond-1`"
        );
    }

    #[test]
    fn slack_escapes_markup_in_market_titles_and_labels() {
        let alert = alert_with(
            "price_above",
            0.6,
            Decimal::new(7, 1),
            "S&P <500> close",
            "<!channel> look",
        );
        let text = json_of(&render(Format::Slack, &alert, &ntfy_options()))["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(text.contains("S&amp;P &lt;500&gt; close"), "{text}");
        assert!(text.contains("&lt;!channel&gt; look"), "{text}");
        assert!(!text.contains("<!channel>"), "{text}");
    }

    #[test]
    fn discord_has_content_and_an_embed_with_fields_and_timestamp() {
        let alert = alert();
        let body = json_of(&render(Format::Discord, &alert, &ntfy_options()));
        assert_eq!(
            body["content"],
            "**KXBTC-25DEC31-T100000 price > 0.6 (now 0.655)**"
        );
        assert_eq!(body["allowed_mentions"], json!({ "parse": [] }));
        let embed = &body["embeds"][0];
        assert_eq!(embed["title"], "Bitcoin above $100k?");
        assert_eq!(
            embed["description"],
            "BTC over 60\nvalue 0.655 vs threshold 0.60"
        );
        assert_eq!(embed["timestamp"], "2026-01-12T22:08:10+00:00");
        let fields: Vec<(String, String)> = embed["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                assert_eq!(f["inline"], true);
                (
                    f["name"].as_str().unwrap().to_string(),
                    f["value"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let expect = |name: &str, value: &str| (name.to_string(), value.to_string());
        assert_eq!(
            fields,
            vec![
                expect("Ticker", "KXBTC-25DEC31-T100000"),
                expect("Condition", "price > 0.6"),
                expect("Value", "0.655"),
                expect("Bid / ask", "0.64 / 0.67"),
                expect("Volume", "1234"),
                expect("Fired", "2026-01-12 22:08:10 UTC"),
            ]
        );
        let footer = embed["footer"]["text"].as_str().unwrap();
        assert!(footer.contains(&alert.id), "{footer}");
    }

    #[test]
    fn discord_escapes_markdown_and_respects_length_limits() {
        let long_title = format!("*Will* it_rain? {}", "x".repeat(400));
        let alert = alert_with("volume_above", 10.0, Decimal::from(20), &long_title, "");
        let body = json_of(&render(Format::Discord, &alert, &ntfy_options()));
        let title = body["embeds"][0]["title"].as_str().unwrap();
        assert!(title.starts_with("\\*Will\\* it\\_rain?"), "{title}");
        assert_eq!(title.chars().count(), DISCORD_TITLE_MAX);
        assert!(title.ends_with('…'));
        assert_eq!(body["embeds"][0]["description"], "value 20 vs threshold 10");
    }

    #[test]
    fn discord_falls_back_to_the_ticker_without_a_market_title() {
        let alert = alert_with("spread_above", 5.0, Decimal::from(9), "", "");
        let body = json_of(&render(Format::Discord, &alert, &ntfy_options()));
        assert_eq!(body["embeds"][0]["title"], "KXBTC-25DEC31-T100000");
        assert_eq!(body["embeds"][0]["description"], "value 9c vs threshold 5c");
    }

    #[test]
    fn ntfy_is_plain_text_with_title_priority_and_tags_headers() {
        let payload = render(Format::Ntfy, &alert(), &ntfy_options());
        assert_eq!(payload.content_type, "text/plain; charset=utf-8");
        assert_eq!(
            String::from_utf8(payload.body).unwrap(),
            "Bitcoin above $100k?\n\
             label: BTC over 60\n\
             value 0.655 vs threshold 0.60\n\
             bid 0.64 / ask 0.67, volume 1234\n\
             fired 2026-01-12 22:08:10 UTC"
        );
        assert_eq!(
            payload.headers,
            vec![
                (
                    "Title",
                    "KXBTC-25DEC31-T100000 price > 0.6 (now 0.655)".to_string()
                ),
                ("Priority", "high".to_string()),
                ("Tags", "chart_with_upwards_trend,price_above".to_string()),
            ]
        );
    }

    #[test]
    fn non_ascii_header_text_is_an_rfc_2047_encoded_word() {
        assert_eq!(header_text("plain ASCII > 0.6"), "plain ASCII > 0.6");
        assert_eq!(header_text("Müller"), "=?UTF-8?B?TcO8bGxlcg==?=");
        assert_eq!(header_text("line\nbreak"), "=?UTF-8?B?bGluZQpicmVhaw==?=");
    }

    #[test]
    fn base64_pads_every_remainder() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
