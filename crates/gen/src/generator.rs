//! The stream: events generated step by step in event-time order, passed through the
//! disorder stage, and some replaced by malformed messages.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::campaign::CampaignPlan;
use crate::config::{GenConfig, millis};
use crate::disorder::{Disorder, Pending};
use crate::event::{Category, Event};
use crate::json::Edit;
use crate::malformed;
use crate::message::{Message, MessageKind};
use crate::resources::Catalog;
use crate::timeline::Timeline;

/// At most this many events are drafted at once: a step with more is cut into slices of
/// equal time, which keeps memory bounded for any `events`.
const MAX_SLICE_EVENTS: u64 = 1 << 16;

/// Random streams, one per concern, so that changing one setting (say `bad_rate`) leaves
/// the choices of the others alone.
mod stream {
    pub(super) const SETUP: u64 = 0;
    pub(super) const SKELETON: u64 = 1;
    pub(super) const DETAIL: u64 = 2;
    pub(super) const FAULTS: u64 = 3;
}

/// The deterministic message stream of a [`GenConfig`]; an iterator of exactly
/// `events` [`Message`]s.
#[derive(Debug)]
pub struct Generator {
    timeline: Timeline,
    catalog: Catalog,
    plan: CampaignPlan,
    background: u64,
    disorder_ms: i64,
    bad_rate: f64,
    /// Times, resources, categories and arrivals.
    skeleton: ChaCha8Rng,
    /// Field values of each event, drawn in emission order.
    detail: ChaCha8Rng,
    /// Which messages are malformed and how.
    faults: ChaCha8Rng,
    next_step: u64,
    step_range: (i64, i64),
    step_background: u64,
    step_parts: Vec<(u32, Category, u64)>,
    sub: u64,
    subs: u64,
    slice: Vec<Pending>,
    cursor: usize,
    stage: Disorder,
    seq: u64,
    bad_seen: u64,
    remaining: u64,
}

impl Generator {
    /// A generator for `cfg`, or the validation error.
    pub fn new(cfg: GenConfig) -> Result<Self, String> {
        cfg.validate()?;
        let rng = |stream| {
            let mut r = ChaCha8Rng::seed_from_u64(cfg.seed);
            r.set_stream(stream);
            r
        };
        let mut setup = rng(stream::SETUP);
        let catalog = Catalog::new(cfg.resources, &mut setup);
        let timeline = Timeline::new(
            cfg.start.timestamp_millis(),
            millis(cfg.span),
            millis(cfg.window),
        );
        let plan = CampaignPlan::new(cfg.events, &timeline, &catalog, &mut setup);
        Ok(Self {
            background: cfg.events - plan.total(),
            timeline,
            catalog,
            plan,
            disorder_ms: millis(cfg.disorder),
            bad_rate: cfg.bad_rate,
            skeleton: rng(stream::SKELETON),
            detail: rng(stream::DETAIL),
            faults: rng(stream::FAULTS),
            next_step: 0,
            step_range: (0, 0),
            step_background: 0,
            step_parts: Vec::new(),
            sub: 0,
            subs: 0,
            slice: Vec::new(),
            cursor: 0,
            stage: Disorder::default(),
            seq: 0,
            bad_seen: 0,
            remaining: cfg.events,
        })
    }

    /// Event time of the next event to enter the disorder stage, drafting the next slice
    /// when needed; `None` once every event has entered.
    fn next_ts(&mut self) -> Option<i64> {
        while self.cursor == self.slice.len() {
            if !self.draft_slice() {
                return None;
            }
        }
        Some(self.slice[self.cursor].ts)
    }

    /// Drafts the next slice of the current step (starting the next step when the
    /// current one is done), sorted by event time. False when no step is left.
    fn draft_slice(&mut self) -> bool {
        if self.sub == self.subs {
            if self.next_step == self.timeline.steps() {
                return false;
            }
            self.begin_step(self.next_step);
            self.next_step += 1;
        }
        let (from, to) = self.step_range;
        let len = (to - from) as u128;
        let (i, n) = (u128::from(self.sub), u128::from(self.subs));
        let at = |k: u128| from + (len * k / n) as i64;
        let (slice_from, slice_to) = (at(i), at(i + 1));
        let slice_len = (slice_to - slice_from) as u64;
        let split = |count: u64| {
            let c = u128::from(count);
            (c * (i + 1) / n - c * i / n) as u64
        };
        self.sub += 1;

        self.slice.clear();
        self.cursor = 0;
        let rng = &mut self.skeleton;
        for _ in 0..split(self.step_background) {
            let resource = rng.random_range(0..self.catalog.len());
            let category = self.catalog.pick_category(resource, rng);
            self.slice.push(Pending {
                arrival: 0,
                seq: 0,
                ts: slice_from + rng.random_range(0..slice_len) as i64,
                resource,
                category,
            });
        }
        for &(resource, category, count) in &self.step_parts {
            for _ in 0..split(count) {
                self.slice.push(Pending {
                    arrival: 0,
                    seq: 0,
                    ts: slice_from + rng.random_range(0..slice_len) as i64,
                    resource,
                    category,
                });
            }
        }
        self.slice.sort_by_key(|p| p.ts);
        for p in &mut self.slice {
            p.seq = self.seq;
            self.seq += 1;
            p.arrival = p.ts + rng.random_range(0..=self.disorder_ms);
        }
        true
    }

    fn begin_step(&mut self, step: u64) {
        self.step_range = self.timeline.range(step);
        self.step_background = self.timeline.share(self.background, step);
        self.plan.parts(step, &mut self.step_parts);
        let total = self.step_background + self.step_parts.iter().map(|p| p.2).sum::<u64>();
        let len = (self.step_range.1 - self.step_range.0) as u64;
        self.subs = total.div_ceil(MAX_SLICE_EVENTS).clamp(1, len);
        self.sub = 0;
    }

    /// Turns an event leaving the disorder stage into a message.
    fn emit(&mut self, p: Pending) -> Message {
        self.remaining = self.remaining.saturating_sub(1);
        let res = self.catalog.get(p.resource);
        let event = Event::draft(p.ts, res, p.category, &mut self.detail);
        if self.faults.random_bool(self.bad_rate) {
            let bad = malformed::malformed(self.bad_seen, &event, res, &mut self.faults);
            self.bad_seen += 1;
            Message {
                key: if bad.keyed {
                    res.id.clone()
                } else {
                    String::new()
                },
                payload: bad.payload,
                kind: MessageKind::Bad(bad.reason),
            }
        } else {
            let mut text = String::with_capacity(512);
            event.render(res, &Edit::None, &mut text);
            Message {
                key: res.id.clone(),
                payload: text.into_bytes(),
                kind: MessageKind::Good,
            }
        }
    }
}

impl Iterator for Generator {
    type Item = Message;

    fn next(&mut self) -> Option<Message> {
        loop {
            let next_ts = self.next_ts();
            if let Some(p) = self.stage.pop_ready(next_ts) {
                return Some(self.emit(p));
            }
            next_ts?;
            self.stage.push(self.slice[self.cursor]);
            self.cursor += 1;
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (n, usize::try_from(self.remaining).ok())
    }
}
