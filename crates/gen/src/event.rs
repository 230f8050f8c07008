//! One synthetic event: its fields, drafted from the resource and the category, and its
//! JSON text.

use std::fmt::{self, Write as _};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::json::{Edit, ObjectWriter};
use crate::resources::{LABELS, Resource, ResourceType, weighted};
use crate::timestamp;

/// The event categories the generator emits (the contract's set is open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Category {
    Auth,
    DataAccess,
    NetworkAccess,
    BruteForce,
    Ddos,
    Malware,
    Vulnerability,
    Patch,
    ClassificationChange,
}

impl Category {
    /// The contract's `category` value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::DataAccess => "data_access",
            Self::NetworkAccess => "network_access",
            Self::BruteForce => "brute_force",
            Self::Ddos => "ddos",
            Self::Malware => "malware",
            Self::Vulnerability => "vulnerability",
            Self::Patch => "patch",
            Self::ClassificationChange => "classification_change",
        }
    }
}

/// An IPv4 or IPv6 address, written as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ip {
    V4([u8; 4]),
    /// Four leading groups and the last one, around a `::`.
    V6([u16; 5]),
}

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4([a, b, c, d]) => write!(f, "{a}.{b}.{c}.{d}"),
            Self::V6([a, b, c, d, e]) => write!(f, "{a:x}:{b:x}:{c:x}:{d:x}::{e:x}"),
        }
    }
}

/// How `classification` is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Classification {
    Absent,
    Null,
    Empty,
    Label(&'static str),
}

/// Offsets (seconds east of UTC) for the non-canonical timestamps.
const OFFSETS: [i32; 5] = [3600, -5 * 3600, 5 * 3600 + 1800, 9 * 3600, -3 * 3600];

const HUMANS: [&str; 12] = [
    "alice@contoso.com",
    "bob@contoso.com",
    "carol@contoso.com",
    "dave@contoso.com",
    "erin@contoso.com",
    "frank@contoso.com",
    "grace@contoso.com",
    "heidi@contoso.com",
    "ivan@contoso.com",
    "judy@contoso.com",
    "oscar@contoso.com",
    "peggy@contoso.com",
];
const SERVICES: [&str; 5] = [
    "svc-backup",
    "svc-deploy",
    "svc-etl",
    "svc-monitor",
    "svc-payments-api",
];
const ATTACK_USERS: [&str; 10] = [
    "root",
    "admin",
    "administrator",
    "test",
    "oracle",
    "ubuntu",
    "guest",
    "sa",
    "postgres",
    "user",
];
const NET_PORTS: [u16; 12] = [
    22, 80, 443, 445, 1433, 3306, 3389, 5432, 6379, 8080, 8443, 9200,
];
const PUBLIC_FIRST_OCTETS: [u8; 14] = [
    5, 23, 45, 62, 77, 91, 103, 118, 141, 176, 185, 193, 203, 212,
];
const TAGS: [&str; 8] = [
    "prod",
    "pci",
    "gdpr",
    "tier-1",
    "internet-facing",
    "legacy",
    "sox",
    "canary",
];
const GEO: [(&str, u32, &str); 4] = [
    ("NL", 1136, "[52.37,4.9]"),
    ("US", 7018, "[40.71,-74.01]"),
    ("DE", 3320, "[50.11,8.68]"),
    ("SG", 9506, "[1.35,103.82]"),
];

// Optional fields that an event may give as an explicit `null`.
const NULLABLE: [&str; 10] = [
    "outcome", "severity", "src_ip", "dst_ip", "dst_port", "protocol", "user", "vuln_id",
    "patched", "message",
];

/// Kinds of fields outside the contract, as bits of [`Event::extras`].
const EXTRA_KINDS: u32 = 7;

/// One event, before it becomes text.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) ts_ms: i64,
    ts_offset_secs: Option<i32>,
    pub(crate) category: Category,
    workload: Option<&'static str>,
    outcome: Option<&'static str>,
    severity: Option<&'static str>,
    src_ip: Option<Ip>,
    dst_ip: Option<Ip>,
    dst_port: Option<u16>,
    protocol: Option<&'static str>,
    user: Option<&'static str>,
    classification: Classification,
    vuln_id: Option<u32>,
    patched: Option<bool>,
    policy_allowed: Option<bool>,
    message: Option<String>,
    /// Bits over [`NULLABLE`]: these fields are written as `null`.
    nulls: u16,
    /// Bits over the extra-field kinds.
    extras: u8,
    extras_first: bool,
    extra_seed: u32,
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

fn public_ip(rng: &mut ChaCha8Rng, v6: bool) -> Ip {
    if v6 {
        Ip::V6([
            0x2001,
            0xdb8,
            rng.random(),
            rng.random(),
            rng.random_range(1..0xffff),
        ])
    } else {
        Ip::V4([
            pick(rng, &PUBLIC_FIRST_OCTETS),
            rng.random(),
            rng.random(),
            rng.random_range(1..255),
        ])
    }
}

fn internal_ip(rng: &mut ChaCha8Rng, v6: bool) -> Ip {
    if v6 {
        Ip::V6([
            0xfd00,
            rng.random_range(0..4),
            rng.random(),
            rng.random(),
            rng.random_range(1..0xffff),
        ])
    } else {
        Ip::V4([10, rng.random(), rng.random(), rng.random_range(1..255)])
    }
}

fn login_port(kind: ResourceType, rng: &mut ChaCha8Rng) -> u16 {
    match kind {
        ResourceType::Vm | ResourceType::Network => {
            if rng.random_ratio(3, 5) {
                22
            } else {
                3389
            }
        }
        ResourceType::Database => 1433,
        ResourceType::Storage | ResourceType::App => 443,
    }
}

impl Event {
    /// Drafts the fields of a `category` event about `res` at `ts_ms`.
    pub(crate) fn draft(
        ts_ms: i64,
        res: &Resource,
        category: Category,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        use Category::*;
        let v6 = rng.random_ratio(1, 12);
        let dst = if v6 {
            Ip::V6(res.ipv6)
        } else {
            Ip::V4(res.ipv4)
        };
        let mut e = Event {
            ts_ms,
            ts_offset_secs: rng.random_ratio(1, 100).then(|| pick(rng, &OFFSETS)),
            category,
            workload: (!rng.random_ratio(1, 40)).then_some(res.workload),
            outcome: None,
            severity: None,
            src_ip: None,
            dst_ip: None,
            dst_port: None,
            protocol: None,
            user: None,
            classification: Classification::Absent,
            vuln_id: None,
            patched: None,
            policy_allowed: None,
            message: None,
            nulls: 0,
            extras: 0,
            extras_first: false,
            extra_seed: 0,
        };
        match category {
            Auth => {
                let ok = rng.random_ratio(4, 5);
                e.outcome = Some(if ok { "success" } else { "failure" });
                e.severity = Some(if ok { "info" } else { "low" });
                e.src_ip = Some(internal_ip(rng, v6));
                e.dst_ip = Some(dst);
                e.dst_port = Some(login_port(res.kind, rng));
                e.protocol = Some("tcp");
                e.user = Some(if rng.random_ratio(1, 4) {
                    pick(rng, &SERVICES)
                } else {
                    pick(rng, &HUMANS)
                });
            }
            BruteForce => {
                let outcome = weighted(rng, &[("failure", 90), ("blocked", 7), ("success", 3)]);
                e.outcome = Some(outcome);
                e.severity = Some(if outcome == "success" {
                    "critical"
                } else {
                    weighted(rng, &[("medium", 60), ("high", 40)])
                });
                e.src_ip = Some(public_ip(rng, v6));
                e.dst_ip = Some(dst);
                e.dst_port = Some(login_port(res.kind, rng));
                e.protocol = Some("tcp");
                e.user = Some(pick(rng, &ATTACK_USERS));
            }
            Ddos => {
                e.outcome = Some(weighted(rng, &[("blocked", 70), ("unknown", 30)]));
                e.severity = Some(weighted(rng, &[("high", 70), ("critical", 30)]));
                e.src_ip = Some(public_ip(rng, v6));
                e.dst_ip = Some(dst);
                let port = pick(rng, &[443, 80, 53]);
                e.dst_port = Some(port);
                e.protocol = Some(if port == 53 || rng.random_ratio(1, 3) {
                    "udp"
                } else {
                    "tcp"
                });
            }
            Malware => {
                e.outcome = Some(weighted(
                    rng,
                    &[("blocked", 60), ("success", 15), ("unknown", 25)],
                ));
                e.severity = Some(weighted(rng, &[("high", 60), ("critical", 40)]));
                e.vuln_id = rng
                    .random_ratio(7, 10)
                    .then(|| rng.random_range(1..100_000));
                e.patched = weighted(rng, &[(Some(false), 50), (Some(true), 20), (None, 30)]);
                e.user = rng.random_bool(0.5).then(|| pick(rng, &HUMANS));
            }
            Vulnerability => {
                e.outcome = rng.random_ratio(3, 10).then_some("unknown");
                e.severity = Some(weighted(
                    rng,
                    &[("low", 20), ("medium", 40), ("high", 30), ("critical", 10)],
                ));
                e.vuln_id = Some(rng.random_range(1..100_000));
                e.patched = weighted(rng, &[(Some(false), 50), (Some(true), 30), (None, 20)]);
            }
            Patch => {
                let ok = rng.random_ratio(9, 10);
                e.outcome = Some(if ok { "success" } else { "failure" });
                e.severity = Some("info");
                e.patched = if ok {
                    weighted(rng, &[(Some(true), 94), (None, 6)])
                } else {
                    Some(false)
                };
                e.vuln_id = rng.random_ratio(2, 5).then(|| rng.random_range(1..100_000));
                e.user = rng.random_bool(0.5).then(|| pick(rng, &SERVICES));
            }
            NetworkAccess => {
                let allowed = !rng.random_ratio(1, 10);
                e.policy_allowed = Some(allowed);
                e.outcome = Some(if allowed {
                    weighted(rng, &[("success", 85), ("failure", 15)])
                } else {
                    weighted(rng, &[("blocked", 70), ("success", 30)])
                });
                e.severity = Some(if allowed {
                    "info"
                } else {
                    weighted(rng, &[("medium", 70), ("high", 30)])
                });
                e.src_ip = Some(if rng.random_ratio(3, 10) {
                    public_ip(rng, v6)
                } else {
                    internal_ip(rng, v6)
                });
                e.dst_ip = Some(dst);
                if rng.random_ratio(1, 30) {
                    e.protocol = Some("icmp");
                } else {
                    e.dst_port = Some(pick(rng, &NET_PORTS));
                    e.protocol = Some(if rng.random_ratio(1, 10) {
                        "udp"
                    } else {
                        "tcp"
                    });
                }
            }
            DataAccess => {
                let ok = rng.random_ratio(9, 10);
                e.outcome = Some(if ok { "success" } else { "failure" });
                e.severity = Some(if ok { "info" } else { "low" });
                e.src_ip = Some(internal_ip(rng, v6));
                e.dst_port = Some(match res.kind {
                    ResourceType::Database => pick(rng, &[1433, 5432]),
                    _ => 443,
                });
                e.protocol = Some("tcp");
                e.user = Some(if rng.random_ratio(1, 3) {
                    pick(rng, &SERVICES)
                } else {
                    pick(rng, &HUMANS)
                });
            }
            ClassificationChange => {
                e.outcome = Some("success");
                e.severity = Some("info");
                e.user = Some(pick(rng, &HUMANS));
                e.classification = Classification::Label(pick(rng, &LABELS));
            }
        }
        if res.kind.is_data_source() && category != ClassificationChange {
            e.classification = match res.classification {
                Some(label) => Classification::Label(label),
                None => pick(
                    rng,
                    &[
                        Classification::Null,
                        Classification::Absent,
                        Classification::Empty,
                    ],
                ),
            };
        }
        if rng.random_ratio(3, 4) {
            e.message = Some(e.message_text(res, rng));
        }
        if rng.random_ratio(1, 20) {
            e.nulls = 1 << rng.random_range(0..NULLABLE.len());
            if rng.random_bool(0.5) {
                e.nulls |= 1 << rng.random_range(0..NULLABLE.len());
            }
        }
        if rng.random_ratio(1, 5) {
            e.extras = 1 << rng.random_range(0..EXTRA_KINDS);
            if rng.random_ratio(3, 10) {
                e.extras |= 1 << rng.random_range(0..EXTRA_KINDS);
            }
            e.extras_first = rng.random_ratio(1, 4);
            e.extra_seed = rng.random();
        }
        e
    }

    fn message_text(&self, res: &Resource, rng: &mut ChaCha8Rng) -> String {
        use Category::*;
        let mut m = String::with_capacity(96);
        let user = self.user.unwrap_or("-");
        let src = self.src_ip.unwrap_or(Ip::V4([0, 0, 0, 0]));
        let port = self.dst_port.unwrap_or(0);
        let n = rng.random_range(2..5000u32);
        // Writing to a String cannot fail.
        let _ = match self.category {
            Auth if self.outcome == Some("success") => write!(
                m,
                "Accepted publickey for {user} from {src} port {} ssh2",
                rng.random_range(1024..65535u16)
            ),
            Auth => write!(
                m,
                "Failed password for {user} from {src} port {}",
                rng.random_range(1024..65535u16)
            ),
            BruteForce => match rng.random_range(0..3) {
                0 => write!(
                    m,
                    "Failed password for invalid user {user} from {src} port {} ssh2",
                    rng.random_range(1024..65535u16)
                ),
                1 => write!(m, "{n} failed sign-ins for \"{user}\" within 60s"),
                _ => write!(
                    m,
                    "An account failed to log on.\r\n\tAccount Name:\t{user}\r\n\tFailure Reason:\tUnknown user name or bad password."
                ),
            },
            Ddos => match rng.random_range(0..2) {
                0 => write!(m, "SYN flood: {n} kpps from {src} to port {port}"),
                _ => write!(m, "Mitigation started: UDP reflection, {n} Mbps peak"),
            },
            Malware => match rng.random_range(0..3) {
                0 => write!(
                    m,
                    "Trojan:Win32/Emotet.{}!ml quarantined: C:\\Users\\Public\\inv-{n}.exe",
                    char::from(b'A' + rng.random_range(0..26u8))
                ),
                1 => write!(
                    m,
                    "Suspicious process tree:\n  winword.exe\n    powershell.exe -nop -enc SQBFAFgA{n}"
                ),
                _ => write!(
                    m,
                    "Schadsoftware entfernt: \u{201e}rechnung-{n}.pdf.exe\u{201c}"
                ),
            },
            Vulnerability => match self.vuln_id {
                Some(id) if rng.random_bool(0.5) => {
                    write!(
                        m,
                        "CVE-2026-{id:05} in openssl 3.0.{}: buffer over-read",
                        n % 16
                    )
                }
                _ => write!(
                    m,
                    "kernel privilege escalation (CVSS {}.{})",
                    4 + n % 6,
                    n % 10
                ),
            },
            Patch if self.outcome == Some("failure") => {
                write!(m, "Update KB50{:05} failed with 0x800f0922", n)
            }
            Patch => match res.kind {
                ResourceType::Vm if rng.random_bool(0.5) => {
                    write!(
                        m,
                        "apt: {} packages upgraded, {} security",
                        n % 90 + 1,
                        n % 7
                    )
                }
                _ => write!(m, "KB50{n:05} installed"),
            },
            NetworkAccess => {
                let proto = self.protocol.unwrap_or("tcp");
                if self.policy_allowed == Some(false) {
                    write!(m, "{proto}/{port} from {src} matched no allow rule")
                } else {
                    write!(
                        m,
                        "{proto}/{port} from {src} allowed by rule 'allow-{}-{port}'",
                        res.workload
                    )
                }
            }
            DataAccess => match res.kind {
                ResourceType::Database => {
                    write!(m, "SELECT * FROM dbo.customers WHERE id = {n} -- rows=1")
                }
                _ => write!(m, "GetBlob container=invoices blob=2026/11/inv-{n}.pdf"),
            },
            ClassificationChange => match self.classification {
                Classification::Label(label) => {
                    write!(m, "Sensitivity label set to \"{label}\" by {user}")
                }
                _ => write!(m, "Sensitivity label removed by {user}"),
            },
        };
        m
    }

    /// Appends the event's JSON text (one line, no newline) to `out`, with `edit` applied.
    pub(crate) fn render(&self, res: &Resource, edit: &Edit, out: &mut String) {
        let mut w = ObjectWriter::begin(out, edit);
        if self.extras_first {
            self.render_extras(&mut w, res);
        }
        if w.field("ts") {
            let out = w.out();
            out.push('"');
            match self.ts_offset_secs {
                Some(offset) => timestamp::push_with_offset(out, self.ts_ms, offset),
                None => timestamp::push_utc_millis(out, self.ts_ms),
            }
            out.push('"');
        }
        w.str("resource_id", &res.id);
        w.str("resource_type", res.kind.as_str());
        w.str("category", self.category.as_str());
        if let Some(workload) = self.workload {
            w.str("workload", workload);
        }
        let null = |i: usize| self.nulls & (1 << i) != 0;
        let opt_str = |w: &mut ObjectWriter<'_>, i: usize, value: Option<&str>| {
            if null(i) {
                w.raw(NULLABLE[i], "null");
            } else if let Some(v) = value {
                w.str(NULLABLE[i], v);
            }
        };
        opt_str(&mut w, 0, self.outcome);
        opt_str(&mut w, 1, self.severity);
        for (i, ip) in [(2, self.src_ip), (3, self.dst_ip)] {
            if null(i) {
                w.raw(NULLABLE[i], "null");
            } else if let Some(ip) = ip
                && w.field(NULLABLE[i])
            {
                let _ = write!(w.out(), "\"{ip}\"");
            }
        }
        if null(4) {
            w.raw("dst_port", "null");
        } else if let Some(port) = self.dst_port
            && w.field("dst_port")
        {
            let _ = write!(w.out(), "{port}");
        }
        opt_str(&mut w, 5, self.protocol);
        opt_str(&mut w, 6, self.user);
        match self.classification {
            Classification::Absent => {}
            Classification::Null => w.raw("classification", "null"),
            Classification::Empty => w.str("classification", ""),
            Classification::Label(label) => w.str("classification", label),
        }
        if null(7) {
            w.raw("vuln_id", "null");
        } else if let Some(id) = self.vuln_id
            && w.field("vuln_id")
        {
            let _ = write!(w.out(), "\"CVE-2026-{id:05}\"");
        }
        let bool_text = |b: bool| if b { "true" } else { "false" };
        if null(8) {
            w.raw("patched", "null");
        } else if let Some(p) = self.patched {
            w.raw("patched", bool_text(p));
        }
        if let Some(p) = self.policy_allowed {
            w.raw("policy_allowed", bool_text(p));
        }
        opt_str(&mut w, 9, self.message.as_deref());
        if !self.extras_first {
            self.render_extras(&mut w, res);
        }
        w.finish();
    }

    /// Fields outside the contract: nested objects, arrays, numbers.
    fn render_extras(&self, w: &mut ObjectWriter<'_>, res: &Resource) {
        let seed = self.extra_seed;
        let has = |bit: u32| self.extras & (1 << bit) != 0;
        if has(0) && w.field("cloud") {
            let _ = write!(
                w.out(),
                "{{\"provider\":\"azure\",\"region\":\"{}\",\"account\":\"0000-sub-{}\"}}",
                res.region,
                res.subscription
            );
        }
        if has(1) && w.field("tags") {
            let out = w.out();
            out.push('[');
            let mut first = true;
            for (i, tag) in TAGS.iter().enumerate() {
                if seed >> i & 1 == 1 || (first && i == TAGS.len() - 1) {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    let _ = write!(out, "\"{tag}\"");
                }
            }
            out.push(']');
        }
        if has(2) && w.field("risk_score") {
            let _ = write!(w.out(), "{}.{}", seed % 10, seed / 10 % 10);
        }
        if has(3) && w.field("labels") {
            let env = if seed.is_multiple_of(5) {
                "staging"
            } else {
                "prod"
            };
            let _ = write!(
                w.out(),
                "{{\"env\":\"{env}\",\"team\":\"{}\"}}",
                res.workload
            );
        }
        if has(4) && w.field("geo") {
            let (country, asn, coords) = GEO[seed as usize % GEO.len()];
            let _ = write!(
                w.out(),
                "{{\"country\":\"{country}\",\"asn\":{asn},\"coords\":{coords}}}"
            );
        }
        if has(5) {
            w.raw(
                "observer",
                "{\"vendor\":\"Microsoft\",\"product\":\"Defender for Cloud\",\"version\":\"4.18.24080.9\"}",
            );
            if w.field("event_id") {
                let _ = write!(w.out(), "{}", 4600 + seed % 100);
            }
        }
        if has(6) {
            w.raw("trace_id", "null");
            if w.field("span_id") {
                let _ = write!(w.out(), "\"{seed:08x}\"");
            }
        }
    }
}
