//! [`TenantLimits`]: a namespace's share of the machine, as its sandboxes' parent cgroup gets
//! it: a CPU weight relative to the other namespaces (equal by default, so every active tenant
//! gets an equal share of a busy machine) and a cap on the memory all of its sandboxes may use
//! together (its memory budget, when one is set).

/// The default CPU weight of a namespace (cgroup v2's own default: 100).
pub const DEFAULT_CPU_WEIGHT: u32 = 100;
/// The least CPU weight a namespace may have.
pub const MIN_CPU_WEIGHT: u32 = 1;
/// The greatest CPU weight a namespace may have.
pub const MAX_CPU_WEIGHT: u32 = 10_000;

/// A namespace's share of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TenantLimits {
    /// CPU weight against the other namespaces, in cgroup v2 units (1..=10000, 100 by
    /// default): under contention each namespace gets CPU in proportion to its weight,
    /// whatever the number of sandboxes it runs; an idle machine lets any of them use it all.
    pub cpu_weight: u32,
    /// Most memory all of the namespace's sandboxes may hold together, swap included;
    /// `None`: no cap beyond each sandbox's own.
    pub memory_max_bytes: Option<u64>,
}

impl Default for TenantLimits {
    fn default() -> TenantLimits {
        TenantLimits {
            cpu_weight: DEFAULT_CPU_WEIGHT,
            memory_max_bytes: None,
        }
    }
}

/// Why a [`TenantLimits`] cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantLimitsError {
    #[error("cpu weight {0} is out of range: use {MIN_CPU_WEIGHT} to {MAX_CPU_WEIGHT}")]
    CpuWeight(u32),
    #[error("memory cap of {0} bytes is too small: a namespace needs at least {MIN_MEMORY_MAX_BYTES} bytes")]
    Memory(u64),
}

/// The smallest memory cap a namespace may have: one smallest sandbox.
pub const MIN_MEMORY_MAX_BYTES: u64 = crate::limits::MIN_MEMORY_MB as u64 * 1024 * 1024;

impl TenantLimits {
    /// The default weight and a memory cap of `budget_mb` (the namespace's memory budget), if
    /// any.
    pub fn with_memory_budget_mb(budget_mb: Option<u64>) -> TenantLimits {
        TenantLimits {
            memory_max_bytes: budget_mb.map(|mb| mb.saturating_mul(1024 * 1024)),
            ..TenantLimits::default()
        }
    }

    /// Checks the values are within what the kernel (and a useful namespace) accepts.
    pub fn validate(&self) -> Result<(), TenantLimitsError> {
        if !(MIN_CPU_WEIGHT..=MAX_CPU_WEIGHT).contains(&self.cpu_weight) {
            return Err(TenantLimitsError::CpuWeight(self.cpu_weight));
        }
        match self.memory_max_bytes {
            Some(bytes) if bytes < MIN_MEMORY_MAX_BYTES => Err(TenantLimitsError::Memory(bytes)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_equal_weight_and_no_cap() {
        let d = TenantLimits::default();
        assert_eq!(d.cpu_weight, 100);
        assert_eq!(d.memory_max_bytes, None);
        d.validate().unwrap();
        assert_eq!(
            TenantLimits::with_memory_budget_mb(Some(512)).memory_max_bytes,
            Some(512 << 20)
        );
    }

    #[test]
    fn out_of_range_values_are_named() {
        let bad = TenantLimits {
            cpu_weight: 0,
            ..TenantLimits::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("1 to 10000"));
        let small = TenantLimits {
            memory_max_bytes: Some(1 << 20),
            ..TenantLimits::default()
        };
        assert!(small
            .validate()
            .unwrap_err()
            .to_string()
            .contains("at least"));
    }
}
