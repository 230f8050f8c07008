//! Attack campaigns: about one resource in ten is hit by brute force or DDoS whose volume
//! rises by half step over step, so that consecutive windows show increases over 25%.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::event::Category;
use crate::resources::{Catalog, ResourceType};
use crate::timeline::Timeline;

/// Events in a campaign's first step before scaling; above the pipeline's default
/// `min_baseline` of 10.
const BASE: f64 = 12.0;
/// Growth from one step to the next.
const GROWTH: f64 = 1.5;
/// Share of all events that campaigns aim for, in percent.
const SHARE_PERCENT: u128 = 15;

/// One campaign: a target, its category and the steps it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Campaign {
    pub(crate) resource: u32,
    pub(crate) category: Category,
    pub(crate) first_step: u64,
    pub(crate) steps: u32,
}

/// All campaigns of a run and their volume.
#[derive(Debug, Clone)]
pub(crate) struct CampaignPlan {
    campaigns: Vec<Campaign>,
    base: f64,
}

fn volume(base: f64, steps: u32) -> u64 {
    (0..steps).map(|k| step_count(base, k)).sum()
}

fn step_count(base: f64, k: u32) -> u64 {
    (base * GROWTH.powi(k as i32)).round() as u64
}

impl CampaignPlan {
    /// Campaigns for a run of `events` events: targets drawn from `catalog`, steps from
    /// the full steps of `timeline`, volume scaled to about 15% of `events` (fewer
    /// campaigns when even the base volume would exceed that).
    pub(crate) fn new(
        events: u64,
        timeline: &Timeline,
        catalog: &Catalog,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let none = Self {
            campaigns: Vec::new(),
            base: BASE,
        };
        let steps = timeline.steps();
        let first_full = u64::from(!timeline.is_full(0));
        let end_full = if timeline.is_full(steps - 1) {
            steps
        } else {
            steps - 1
        };
        if end_full < first_full + 2 {
            return none;
        }
        let full = end_full - first_full;
        let targets = (catalog.len() / 10).max(1) as usize;
        let mut campaigns: Vec<Campaign> =
            rand::seq::index::sample(rng, catalog.len() as usize, targets)
                .into_iter()
                .map(|index| {
                    let resource = index as u32;
                    let category = match catalog.get(resource).kind {
                        ResourceType::Network => Category::Ddos,
                        ResourceType::Vm if rng.random_ratio(3, 4) => Category::BruteForce,
                        ResourceType::App if rng.random_bool(0.5) => Category::BruteForce,
                        ResourceType::Vm | ResourceType::App => Category::Ddos,
                        ResourceType::Storage | ResourceType::Database => Category::BruteForce,
                    };
                    let len = rng.random_range(3..=8u64).min(full);
                    Campaign {
                        resource,
                        category,
                        first_step: first_full + rng.random_range(0..=full - len),
                        steps: len as u32,
                    }
                })
                .collect();

        let budget = (u128::from(events) * SHARE_PERCENT / 100) as u64;
        let at_base: u64 = campaigns.iter().map(|c| volume(BASE, c.steps)).sum();
        if at_base == 0 {
            return none;
        }
        let mut plan = if at_base <= budget {
            Self {
                campaigns,
                base: BASE * budget as f64 / at_base as f64,
            }
        } else {
            let mut used = 0;
            campaigns.retain(|c| {
                let v = volume(BASE, c.steps);
                let keep = used + v <= budget;
                used += if keep { v } else { 0 };
                keep
            });
            Self {
                campaigns,
                base: BASE,
            }
        };
        // Rounding must never push the campaigns past the run's size.
        while plan.total() > events {
            plan.campaigns.pop();
        }
        plan
    }

    /// How many campaign events the run holds.
    pub(crate) fn total(&self) -> u64 {
        self.campaigns
            .iter()
            .map(|c| volume(self.base, c.steps))
            .sum()
    }

    /// The campaigns.
    #[cfg(test)]
    pub(crate) fn campaigns(&self) -> &[Campaign] {
        &self.campaigns
    }

    /// Replaces `out` with `(resource, category, count)` for each campaign active in `step`.
    pub(crate) fn parts(&self, step: u64, out: &mut Vec<(u32, Category, u64)>) {
        out.clear();
        for c in &self.campaigns {
            if (c.first_step..c.first_step + u64::from(c.steps)).contains(&step) {
                let k = (step - c.first_step) as u32;
                out.push((c.resource, c.category, step_count(self.base, k)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn plan(events: u64) -> CampaignPlan {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let catalog = Catalog::new(200, &mut rng);
        let timeline = Timeline::new(0, 2 * 3_600_000, 300_000);
        CampaignPlan::new(events, &timeline, &catalog, &mut rng)
    }

    #[test]
    fn volume_is_a_bounded_share_of_events() {
        for events in [20_000, 1_000_000, 10_000_000] {
            let p = plan(events);
            assert!(!p.campaigns().is_empty());
            let share = p.total() as f64 / events as f64;
            assert!((0.05..=0.2).contains(&share), "{events}: {share}");
        }
        assert!(plan(50).campaigns().is_empty());
    }

    #[test]
    fn counts_rise_by_half() {
        let p = plan(20_000);
        let c = p.campaigns()[0];
        let mut parts = Vec::new();
        let counts: Vec<u64> = (c.first_step..c.first_step + u64::from(c.steps))
            .map(|s| {
                p.parts(s, &mut parts);
                parts
                    .iter()
                    .find(|x| x.0 == c.resource)
                    .map(|x| x.2)
                    .unwrap()
            })
            .collect();
        assert_eq!(&counts[..3], &[12, 18, 27]);
    }
}
