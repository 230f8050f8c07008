//! The resource catalog: Azure-style resources with a fixed type, workload, region,
//! addresses and (for data sources) classification.

use std::fmt::Write as _;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::event::Category;

/// The kind of a resource, which decides its provider path and its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResourceType {
    Vm,
    Storage,
    Database,
    Network,
    App,
}

/// Types by resource index: 40% vm, 15% storage, 10% database, 15% network, 20% app,
/// and every type among the first ten resources.
const TYPE_PATTERN: [ResourceType; 20] = {
    use ResourceType::*;
    [
        Vm, Storage, Database, Network, App, Vm, App, Vm, Network, Storage, Vm, App, Vm, Database,
        Vm, Network, Storage, App, Vm, Vm,
    ]
};

impl ResourceType {
    /// The contract's `resource_type` value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Vm => "vm",
            Self::Storage => "storage",
            Self::Database => "database",
            Self::Network => "network",
            Self::App => "app",
        }
    }

    /// Storage and databases hold data and carry a classification.
    pub(crate) fn is_data_source(self) -> bool {
        matches!(self, Self::Storage | Self::Database)
    }

    /// Background category mix: what a resource of this type mostly reports.
    fn category_weights(self) -> &'static [(Category, u32)] {
        use Category::*;
        match self {
            Self::Vm => &[
                (Auth, 28),
                (NetworkAccess, 22),
                (BruteForce, 6),
                (Ddos, 2),
                (Malware, 8),
                (Vulnerability, 16),
                (Patch, 18),
            ],
            Self::Storage => &[
                (DataAccess, 60),
                (Auth, 15),
                (ClassificationChange, 10),
                (NetworkAccess, 8),
                (BruteForce, 4),
                (Ddos, 1),
                (Vulnerability, 2),
            ],
            Self::Database => &[
                (DataAccess, 55),
                (Auth, 20),
                (ClassificationChange, 10),
                (BruteForce, 5),
                (Vulnerability, 5),
                (Patch, 4),
                (Ddos, 1),
            ],
            Self::Network => &[(NetworkAccess, 75), (Ddos, 15), (BruteForce, 10)],
            Self::App => &[
                (Auth, 40),
                (NetworkAccess, 15),
                (Ddos, 8),
                (BruteForce, 8),
                (Vulnerability, 14),
                (Patch, 10),
                (Malware, 3),
                (DataAccess, 2),
            ],
        }
    }
}

/// Owning workloads; alerts are routed by them.
const WORKLOADS: [&str; 8] = [
    "payments",
    "identity",
    "analytics",
    "web",
    "data-platform",
    "ml",
    "checkout",
    "logistics",
];

const REGIONS: [&str; 8] = [
    "westeurope",
    "northeurope",
    "eastus",
    "eastus2",
    "westus3",
    "uksouth",
    "swedencentral",
    "southeastasia",
];

/// The classification labels of the contract.
pub(crate) const LABELS: [&str; 4] = ["public", "internal", "confidential", "restricted"];

/// One resource and what stays fixed about it.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    pub(crate) id: String,
    pub(crate) kind: ResourceType,
    pub(crate) workload: &'static str,
    pub(crate) region: &'static str,
    pub(crate) subscription: u32,
    pub(crate) ipv4: [u8; 4],
    pub(crate) ipv6: [u16; 5],
    /// For data sources: the label when classified, `None` while unclassified.
    pub(crate) classification: Option<&'static str>,
}

/// All resources of a run, by index.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    resources: Vec<Resource>,
}

impl Catalog {
    /// `count` resources drawn from `rng`.
    pub(crate) fn new(count: u32, rng: &mut ChaCha8Rng) -> Self {
        let mut data_sources = 0u32;
        let resources = (0..count)
            .map(|i| {
                let kind = TYPE_PATTERN[i as usize % TYPE_PATTERN.len()];
                let workload = WORKLOADS[rng.random_range(0..WORKLOADS.len())];
                let region = REGIONS[rng.random_range(0..REGIONS.len())];
                let subscription = rng.random_range(0..4u32);
                let group = rng.random_range(0..16u32);
                let mut id = format!(
                    "/subscriptions/0000-sub-{subscription}/resourceGroups/rg-{group}/providers/"
                );
                // Writing to a String cannot fail.
                let _ = match kind {
                    ResourceType::Vm => write!(id, "Microsoft.Compute/virtualMachines/vm-{i:04}"),
                    ResourceType::Storage => {
                        write!(id, "Microsoft.Storage/storageAccounts/st{i:04}")
                    }
                    ResourceType::Database => {
                        write!(id, "Microsoft.Sql/servers/sql-{group}/databases/db-{i:04}")
                    }
                    ResourceType::Network => {
                        write!(id, "Microsoft.Network/networkSecurityGroups/nsg-{i:04}")
                    }
                    ResourceType::App => write!(id, "Microsoft.Web/sites/app-{i:04}"),
                };
                let [_, b, c, d] = i.to_be_bytes();
                let classification = if kind.is_data_source() {
                    data_sources += 1;
                    // Two in five data sources start unclassified (the second among them).
                    (!matches!(data_sources % 5, 2 | 4))
                        .then(|| LABELS[rng.random_range(0..LABELS.len())])
                } else {
                    None
                };
                Resource {
                    id,
                    kind,
                    workload,
                    region,
                    subscription,
                    ipv4: [10, b.wrapping_add(subscription as u8 * 64), c, d.max(4)],
                    ipv6: [
                        0xfd00,
                        subscription as u16,
                        u16::from(b),
                        u16::from_be_bytes([c, d]),
                        4,
                    ],
                    classification,
                }
            })
            .collect();
        Self { resources }
    }

    /// The resource at `index`.
    pub(crate) fn get(&self, index: u32) -> &Resource {
        &self.resources[index as usize]
    }

    /// How many resources there are.
    pub(crate) fn len(&self) -> u32 {
        self.resources.len() as u32
    }

    /// A background category for resource `index`, by its type's mix.
    pub(crate) fn pick_category(&self, index: u32, rng: &mut ChaCha8Rng) -> Category {
        weighted(rng, self.get(index).kind.category_weights())
    }
}

/// One item of `items`, with probability proportional to its weight.
pub(crate) fn weighted<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total.max(1));
    for &(item, w) in items {
        if roll < w {
            return item;
        }
        roll -= w;
    }
    items[items.len() - 1].0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ten_resources_cover_every_type_and_both_classification_states() {
        let cat = Catalog::new(10, &mut ChaCha8Rng::seed_from_u64(1));
        let kinds: Vec<_> = (0..10).map(|i| cat.get(i).kind).collect();
        for t in TYPE_PATTERN {
            assert!(kinds.contains(&t));
        }
        let data: Vec<_> = (0..10)
            .map(|i| cat.get(i))
            .filter(|r| r.kind.is_data_source())
            .collect();
        assert!(data.iter().any(|r| r.classification.is_none()));
        assert!(data.iter().any(|r| r.classification.is_some()));
    }

    #[test]
    fn ids_are_unique_and_match_their_type() {
        let cat = Catalog::new(1000, &mut ChaCha8Rng::seed_from_u64(2));
        let ids: std::collections::HashSet<_> = (0..1000).map(|i| cat.get(i).id.clone()).collect();
        assert_eq!(ids.len(), 1000);
        let r = cat.get(41);
        assert!(r.id.starts_with("/subscriptions/0000-sub-"), "{}", r.id);
        assert!(
            r.id.ends_with("/providers/Microsoft.Storage/storageAccounts/st0041"),
            "{}",
            r.id
        );
    }
}
