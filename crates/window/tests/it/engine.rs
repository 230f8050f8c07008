//! The engine's contract (spec §2): lateness, independence of batch sizes, idle
//! partitions, windows closing as event time passes, and state freed once closed.

use rampart_window::ViolationState;

use crate::*;

#[tokio::test]
async fn a_late_event_is_counted_and_joins_no_window() {
    let mut h = Harness::new().await;
    // Event time is per partition: partition 1 being far ahead makes nothing late on 0.
    let mut out = h.feed(1, &[ev("00:30", "elsewhere", "vm", "auth")]).await;
    let events = [
        // max 00:05:59, wm 00:04:59: the 00:00 window (end 00:05) still takes events.
        ev("00:05:59", "other", "vm", "auth"),
        ev("00:04:30", "on-time", "storage", "brute_force"),
        // max 00:06:00, wm 00:05:00, the 00:00 window's end: late from now on.
        ev("00:06:00", "other", "vm", "auth"),
        ev("00:04:59", "late", "storage", "brute_force"),
        ev("00:01:00", "late", "database", "ddos"),
    ];
    out.extend(h.feed(0, &events).await);
    assert_eq!(out.late, 2);
    out.extend(h.close_all().await);
    assert_eq!(out.late, 2);

    // Neither a count nor a hit: only the on-time event is in the 00:00 window.
    let rates: Vec<(i64, &str, &str, i64)> = out
        .attack_rates
        .iter()
        .map(|r| (r.window_start, &*r.resource_id, &*r.category, r.event_count))
        .collect();
    assert_eq!(rates, [(at("00:00"), "on-time", "brute_force", 1)]);
    assert_hits(
        &out,
        "unclassified_data",
        "late",
        vec![hit("00:00", "on-time", 1)],
    );
    let opened: Vec<&str> = out.violations.iter().map(|v| &*v.resource_id).collect();
    assert_eq!(opened, ["on-time"]);
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

/// A stream over 35 minutes on two partitions with hits of every rule, violations
/// opened and resolved, and late events: each event arrives up to 3 minutes after its
/// time. In arrival order, with the partition of each event (by resource).
fn disordered_stream() -> Vec<(i32, Ev)> {
    let mut rng = Rng(0x5eed);
    let mut events = Vec::new();
    // Rising attacks, for attack_increase.
    for (i, n) in [10, 13, 17, 22, 28, 36, 20].into_iter().enumerate() {
        let w = [
            "00:00", "00:05", "00:10", "00:15", "00:20", "00:25", "00:30",
        ][i];
        events.extend(burst(n, w, ev(w, "vm-1", "vm", "brute_force")));
        events.extend(burst(n, w, ev(w, "net-1", "network", "ddos")));
    }
    // Everything else, one event every 5 seconds.
    for k in 0..(35 * 12) {
        let e = ev("00:00", "", "", "").plus(k * 5 * SECOND);
        let e = match rng.below(4) {
            0 => Ev {
                resource: rng.pick(&["st-1", "st-2", "st-3"]),
                resource_type: "storage",
                category: rng.pick(&["data_access", "classification_change"]),
                classification: rng.pick(&[None, Some(""), Some("internal")]),
                ..e
            },
            1 => Ev {
                resource: rng.pick(&["vm-1", "vm-2"]),
                resource_type: "vm",
                category: rng.pick(&["malware", "vulnerability", "patch", "patch"]),
                patched: rng.pick(&[None, Some(false), Some(true), Some(true)]),
                ..e
            },
            2 => Ev {
                resource: rng.pick(&["net-1", "net-2"]),
                resource_type: "network",
                category: rng.pick(&["network_access", "brute_force", "ddos"]),
                policy_allowed: rng.pick(&[None, Some(false), Some(true)]),
                ..e
            },
            _ => Ev {
                resource: rng.pick(&["vm-2", "vm-3"]),
                resource_type: "vm",
                category: "auth",
                ..e
            },
        };
        events.push(e.workload(rng.pick(&["a", "b"])));
    }
    let mut arriving: Vec<(i64, i32, Ev)> = events
        .into_iter()
        .map(|e| {
            let delay = rng.below(3 * 60) as i64 * SECOND;
            let partition = i32::from(e.resource.ends_with('2'));
            (e.ts + delay, partition, e)
        })
        .collect();
    arriving.sort_by_key(|(arrival, _, _)| *arrival);
    arriving.into_iter().map(|(_, p, e)| (p, e)).collect()
}

/// `out` with its rows in a canonical order.
fn sorted(mut out: Outputs) -> Outputs {
    out.attack_rates.sort_by_key(|r| format!("{r:?}"));
    out.policy_hits.sort_by_key(|r| format!("{r:?}"));
    out.violations.sort_by_key(|r| format!("{r:?}"));
    out
}

/// Feeds what `pending` still holds for each partition, closes every window and returns
/// all of `out` in a canonical order.
async fn finish(mut h: Harness, mut pending: [Vec<(i64, &Ev)>; 2], mut out: Outputs) -> Outputs {
    for (p, rest) in pending.iter_mut().enumerate() {
        if !rest.is_empty() {
            let b = batch(rest.drain(..));
            out.extend(h.engine.process(p as i32, &b).await.expect("process"));
        }
    }
    out.extend(h.close_all().await);
    sorted(out)
}

/// Feeds `stream` (line `i + 1` is `stream[i]`) in batches cut by `cut`: given an event's
/// index and the size of its partition's pending batch, whether to send the batch after it.
async fn feed_cut(stream: &[(i32, Ev)], cut: impl FnMut(usize, usize) -> bool) -> Outputs {
    feed_cut_in_pieces(stream, cut, None).await
}

/// [`feed_cut`], each batch sent as a list of batches of `piece` events (and one empty
/// batch) when `piece` is given.
async fn feed_cut_in_pieces(
    stream: &[(i32, Ev)],
    mut cut: impl FnMut(usize, usize) -> bool,
    piece: Option<usize>,
) -> Outputs {
    let mut h = Harness::new().await;
    let mut out = Outputs::default();
    let mut pending: [Vec<(i64, &Ev)>; 2] = [Vec::new(), Vec::new()];
    for (i, (p, e)) in stream.iter().enumerate() {
        let pending = &mut pending[*p as usize];
        pending.push((i as i64 + 1, e));
        if cut(i, pending.len()) {
            let events = std::mem::take(pending);
            let processed = match piece {
                None => h.engine.process(*p, &batch(events)).await,
                Some(piece) => {
                    let mut pieces: Vec<RecordBatch> = events
                        .chunks(piece)
                        .map(|c| batch(c.iter().copied()))
                        .collect();
                    pieces.insert(pieces.len() / 2, batch([]));
                    h.engine.process_batches(*p, &pieces).await
                }
            };
            out.extend(processed.expect("process"));
        }
    }
    finish(h, pending, out).await
}

#[tokio::test]
async fn results_do_not_depend_on_how_events_are_cut_into_batches() {
    let stream = disordered_stream();
    let whole = feed_cut(&stream, |_, _| false).await;

    // The stream exercises everything.
    assert!(whole.late > 0, "no late events");
    for rule in [
        "attack_increase",
        "unclassified_data",
        "security_health",
        "network_vulnerability",
    ] {
        assert!(
            whole.policy_hits.iter().any(|h| &*h.rule_id == rule),
            "no {rule} hits"
        );
    }
    for state in [ViolationState::Open, ViolationState::Resolved] {
        assert!(
            whole.violations.iter().any(|v| v.state == state),
            "no {state:?} violations"
        );
    }

    let one_by_one = feed_cut(&stream, |_, _| true).await;
    assert_eq!(one_by_one, whole, "one event per batch");
    for seed in [1, 2, 3] {
        let mut rng = Rng(seed);
        let mut target = 1 + rng.below(60) as usize;
        let split = feed_cut(&stream, |_, len| {
            let done = len >= target;
            if done {
                target = 1 + rng.below(60) as usize;
            }
            done
        })
        .await;
        assert_eq!(split, whole, "random batches, seed {seed}");
    }
    // Batches handed as lists of smaller batches: rules run once over each list, and
    // the rows they select are numbered across its batches.
    for piece in [1, 7] {
        let in_pieces = feed_cut_in_pieces(&stream, |_, len| len >= 40, Some(piece)).await;
        assert_eq!(in_pieces, whole, "lists of batches of {piece}");
    }
}

#[tokio::test]
async fn an_idle_partition_closes_its_windows_and_later_events_for_them_are_late() {
    let mut h = Harness::new().await;
    assert_eq!(
        h.idle(0, 10 * MINUTE).await,
        Outputs::default(),
        "no partition yet"
    );
    let out = h
        .feed(0, &[ev("00:07", "st-1", "storage", "data_access")])
        .await;
    assert_eq!(out.windows_closed, 0);

    // The 00:05 window closes when 00:07 + idle - 1 min >= 00:10: after 4 minutes.
    let out = h.idle(0, 4 * MINUTE - SECOND).await;
    assert_eq!((out.windows_closed, out.policy_hits.len()), (0, 0));
    assert_eq!(h.engine.open_windows(), 1);
    let out = h.idle(0, SECOND).await;
    assert_eq!(out.windows_closed, 1);
    assert_hits(
        &out,
        "unclassified_data",
        "closed by idleness",
        vec![hit("00:05", "st-1", 1)],
    );
    assert_eq!(h.engine.open_windows(), 0);

    // An event for the closed window is late; one for the next window is not.
    let mut out = h
        .feed(
            0,
            &[
                ev("00:09:59", "st-1", "storage", "data_access"),
                ev("00:10:00", "st-1", "storage", "data_access"),
            ],
        )
        .await;
    assert_eq!(out.late, 1);
    out.extend(h.close_all().await);
    assert_hits(
        &out,
        "unclassified_data",
        "after idleness",
        vec![hit("00:10", "st-1", 1)],
    );
}

#[tokio::test]
async fn windows_close_as_event_time_passes_their_end_plus_lateness() {
    let mut h = Harness::new().await;
    let out = h
        .feed(0, &burst(3, "00:00", ev("00:00", "vm-1", "vm", "ddos")))
        .await;
    assert!(out.attack_rates.is_empty());
    // 00:05:59 - 1 min < 00:05: still open.
    let out = h.feed(0, &[ev("00:05:59", "vm-1", "vm", "ddos")]).await;
    assert_eq!(out.windows_closed, 0);
    assert!(out.attack_rates.is_empty());
    // 00:06:00 - 1 min = 00:05: closed, before any close_all.
    let out = h.feed(0, &[ev("00:06:00", "vm-2", "vm", "auth")]).await;
    assert_eq!(out.windows_closed, 1);
    let rates: Vec<_> = out
        .attack_rates
        .iter()
        .map(|r| {
            (
                r.window_start,
                r.window_end,
                &*r.resource_id,
                &*r.category,
                r.event_count,
                r.rate_per_min,
            )
        })
        .collect();
    assert_eq!(rates, [(at("00:00"), at("00:05"), "vm-1", "ddos", 3, 0.6)]);
    // The 00:05 window is left for the end of the run.
    let out = h.close_all().await;
    assert_eq!(out.windows_closed, 1);
    assert_eq!(out.attack_rates.len(), 1);
    assert_eq!(out.attack_rates[0].window_start, at("00:05"));
}

#[tokio::test]
async fn closed_windows_are_freed() {
    let mut h = Harness::new().await;
    h.feed(0, &[ev("00:01", "vm-1", "vm", "brute_force")]).await;
    h.feed(1, &[ev("00:01", "vm-2", "vm", "malware")]).await;
    assert_eq!(h.engine.open_windows(), 2, "one window on each partition");
    h.feed(0, &[ev("00:05:30", "vm-1", "vm", "brute_force")])
        .await;
    assert_eq!(h.engine.open_windows(), 3);
    h.feed(0, &[ev("00:06:00", "vm-1", "vm", "brute_force")])
        .await;
    assert_eq!(
        h.engine.open_windows(),
        2,
        "partition 0's 00:00 window is closed; partition 1's is not"
    );

    // A long run in time order never holds more than the windows within the lateness.
    let mut most = 0;
    for minute in 7..(10 * 60) {
        let e = ev("00:00", "vm-1", "vm", "ddos").plus(minute * MINUTE);
        h.feed(0, &[e]).await;
        most = most.max(h.engine.open_windows());
    }
    assert_eq!(most, 3, "partition 0: at most 2 windows, partition 1: 1");
    h.close_all().await;
    assert_eq!(h.engine.open_windows(), 0);
}

#[tokio::test]
async fn the_strings_of_closed_windows_and_resolved_violations_are_freed() {
    // Each window sees resources and a workload no other window sees: attacked VMs, and
    // unclassified storage whose violation is resolved a minute later.
    const PER_WINDOW: i64 = 25;
    const WINDOWS: i64 = 40;
    let name = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let mut h = Harness::new().await;
    let mut most = 0;
    for w in 0..WINDOWS {
        let workload = name(format!("workload-{w}"));
        let mut events = Vec::new();
        for i in 0..PER_WINDOW {
            let t = ev("00:00", name(format!("vm-{w}-{i}")), "vm", "brute_force")
                .workload(workload)
                .plus(w * W + i * SECOND);
            let storage = name(format!("st-{w}-{i}"));
            let opens = ev("00:00", storage, "storage", "access").plus(w * W + i * SECOND);
            let remedy = ev("00:01", storage, "storage", "classification_change")
                .classification("internal")
                .plus(w * W + i * SECOND);
            events.extend([t, opens, remedy]);
        }
        let out = h.feed(0, &in_time_order(events)).await;
        assert_eq!(
            out.violations.len(),
            2 * PER_WINDOW as usize,
            "opened, resolved"
        );
        most = most.max(h.engine.state_strings());
    }
    assert_eq!(h.engine.open_violations(), 0);
    // 51 distinct strings per window (its resources and workload); the state holds the
    // open window, the last closed one's counts and those of the window before it until
    // the lateness has passed. Strings of the closed windows are not kept.
    let per_window = (2 * PER_WINDOW + 1) as usize;
    assert!(
        most <= 4 * per_window,
        "at most {most} strings held, over {} distinct",
        WINDOWS as usize * per_window
    );
}

#[tokio::test]
async fn the_state_over_the_same_resources_stays_the_same_size_however_many_windows() {
    // A saturated resource set: every window sees the same attacked VMs and the same
    // storage accounts, half of whose violations are resolved and opened again each
    // window. Whatever grows with the windows (strings, open violations, windows kept)
    // shows here.
    const RESOURCES: i64 = 25;
    const WINDOWS: i64 = 40;
    let name = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let vms: Vec<&'static str> = (0..RESOURCES).map(|i| name(format!("vm-{i}"))).collect();
    let stores: Vec<&'static str> = (0..RESOURCES).map(|i| name(format!("st-{i}"))).collect();
    let mut h = Harness::new().await;
    let mut sizes = Vec::new();
    for w in 0..WINDOWS {
        let mut events = Vec::new();
        for i in 0..RESOURCES {
            events.push(
                ev("00:00", vms[i as usize], "vm", "brute_force")
                    .workload("web")
                    .plus(w * W + i * SECOND),
            );
            events.push(
                ev("00:00", stores[i as usize], "storage", "access").plus(w * W + i * SECOND),
            );
            if i % 2 == 0 {
                events.push(
                    ev(
                        "00:01",
                        stores[i as usize],
                        "storage",
                        "classification_change",
                    )
                    .classification("internal")
                    .plus(w * W + i * SECOND),
                );
            }
        }
        let out = h.feed(0, &in_time_order(events)).await;
        assert!(
            !out.violations.is_empty(),
            "window {w}: no violation changes"
        );
        sizes.push((
            h.engine.state_strings(),
            h.engine.open_violations(),
            h.engine.open_windows(),
        ));
    }
    // The first windows fill the state; from then on it holds the same resources.
    let settled = sizes[3];
    assert!(settled.1 > 0, "no violation stays open: {sizes:?}");
    assert!(
        sizes[3..].iter().all(|s| *s == settled),
        "the state changed size over the same resources: {sizes:?}"
    );
}

/// Feeds `stream` in batches of `batch_size` per partition; after the events at
/// `restart_after` (indices), stores both partitions' state as JSON, drops the engine
/// and continues with a new one restored from it, as a restarted run does (or, without
/// `restore`, with a new empty one).
async fn feed_with_restarts(
    stream: &[(i32, Ev)],
    batch_size: usize,
    restart_after: &[usize],
    restore: bool,
) -> Outputs {
    let mut h = Harness::new().await;
    let mut out = Outputs::default();
    let mut pending: [Vec<(i64, &Ev)>; 2] = [Vec::new(), Vec::new()];
    for (i, (p, e)) in stream.iter().enumerate() {
        pending[*p as usize].push((i as i64 + 1, e));
        let restart = restart_after.contains(&i);
        for (q, waiting) in pending.iter_mut().enumerate() {
            if waiting.len() >= batch_size || (restart && !waiting.is_empty()) {
                let b = batch(waiting.drain(..));
                out.extend(h.engine.process(q as i32, &b).await.expect("process"));
            }
        }
        if restart {
            // Stored as the pipeline stores it: borrowed, the same JSON as owned.
            let stored: Vec<String> = (0..2)
                .map(|q| {
                    let json = serde_json::to_string(&h.engine.snapshot_borrowed(q)).unwrap();
                    assert_eq!(json, serde_json::to_string(&h.engine.snapshot(q)).unwrap());
                    json
                })
                .collect();
            h = Harness::new().await;
            for (q, json) in stored.iter().enumerate().filter(|_| restore) {
                let warnings = h
                    .engine
                    .restore(q as i32, serde_json::from_str(json).unwrap())
                    .expect("restore");
                assert!(warnings.is_empty(), "{warnings:?}");
            }
        }
    }
    finish(h, pending, out).await
}

#[tokio::test]
async fn a_restored_state_continues_the_results_exactly() {
    let stream = disordered_stream();
    let whole = feed_cut(&stream, |_, _| false).await;
    // Restarts at fixed and at random points; each must give the uninterrupted results.
    let mut rng = Rng(7);
    let random: Vec<usize> = (0..6)
        .map(|_| rng.below(stream.len() as u64) as usize)
        .collect();
    for (what, points) in [
        ("early", vec![3]),
        ("middle", vec![stream.len() / 2]),
        ("late", vec![stream.len() - 2]),
        ("many", random),
    ] {
        let restarted = feed_with_restarts(&stream, 17, &points, true).await;
        assert_eq!(restarted, whole, "restarts {what} at {points:?}");
    }
    // Without the state the results differ: the test can tell.
    let lost = feed_with_restarts(&stream, 17, &[stream.len() / 2], false).await;
    assert_ne!(lost, whole, "a restart without state changes nothing?");
}

#[tokio::test]
async fn a_state_kept_under_another_window_size_is_refused() {
    let mut h = Harness::new().await;
    let b = batch([(1, &ev("00:01", "vm-1", "vm", "brute_force"))]);
    h.engine.process(0, &b).await.unwrap();
    let mut snap = h.engine.snapshot(0);
    assert_eq!(snap.windows.len(), 1);
    snap.window_micros *= 2;
    let err = h.engine.restore(0, snap).unwrap_err();
    assert!(err.contains("windows of"), "{err}");
}

/// The shipped rules read the columns they filter on, and not free text; a rule that
/// filters on `message` makes the engine read it.
#[tokio::test]
async fn the_engine_reads_the_columns_its_rules_use() {
    let schema = events_schema();
    let read_by = |read: &[bool], name: &str| read[schema.index_of(name).unwrap()];
    let shipped = Harness::new().await.engine.event_columns_read();
    for name in [
        ev::RESOURCE_TYPE,
        ev::CATEGORY,
        ev::CLASSIFICATION,
        ev::PATCHED,
        ev::POLICY_ALLOWED,
        ev::TS,
        ev::RESOURCE_ID,
        src::KAFKA_PARTITION,
    ] {
        assert!(read_by(&shipped, name), "{name} is not read");
    }
    for name in [ev::MESSAGE, ev::EXTRA, ev::SRC_IP, ev::USER] {
        assert!(!read_by(&shipped, name), "{name} is read");
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("login_banner.sql"),
        "-- id: login_banner\n-- version: 1\n-- kind: event\n-- action: notify_security_and_owner\n\
         -- description: Logins that show a banner.\n\
         SELECT _row FROM events WHERE message LIKE '%banner%'\n",
    )
    .unwrap();
    let rules = RulesConfig {
        dir: dir.path().display().to_string(),
        ..shipped_rules()
    };
    let custom = Harness::with(&window_config(), &rules, Vec::new())
        .await
        .engine
        .event_columns_read();
    assert!(read_by(&custom, ev::MESSAGE), "message is not read");
    assert!(
        !read_by(&custom, ev::CLASSIFICATION),
        "classification is read"
    );
}

/// What [`WindowEngine::event_columns_read`] promises: the values of the other columns
/// never change the engine's results. Every nullable column it does not read is nulled.
#[tokio::test]
async fn columns_the_engine_does_not_read_do_not_change_its_results() {
    let stream = disordered_stream();
    let whole = feed_cut(&stream, |_, _| false).await;
    let read = Harness::new().await.engine.event_columns_read();
    let mut h = Harness::new().await;
    let mut out = Outputs::default();
    let mut pending: [Vec<(i64, &Ev)>; 2] = [Vec::new(), Vec::new()];
    for (i, (p, e)) in stream.iter().enumerate() {
        pending[*p as usize].push((i as i64 + 1, e));
    }
    for (p, events) in pending.iter_mut().enumerate() {
        let b = batch(events.drain(..));
        let columns = b
            .schema()
            .fields()
            .iter()
            .zip(b.columns())
            .zip(&read)
            .map(|((f, c), read)| {
                if *read || !f.is_nullable() {
                    Arc::clone(c)
                } else {
                    arrow::array::new_null_array(f.data_type(), b.num_rows())
                }
            })
            .collect();
        let nulled = RecordBatch::try_new(b.schema(), columns).unwrap();
        out.extend(h.engine.process(p as i32, &nulled).await.expect("process"));
    }
    out.extend(h.close_all().await);
    assert_eq!(sorted(out), sorted(whole));
}
