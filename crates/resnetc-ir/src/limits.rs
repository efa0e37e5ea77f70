//! Every size resnetc accepts from a file or a flag, in one table. Each is checked before
//! anything it sizes is allocated or looped over, and an error that hits one names it
//! (`resnetc's limit 'nodes' (100000)`), so a user can tell a limit from a bug.
//!
//! The values are far above any CifarResNet (ResNet-110: ~700 nodes, 1.7 M weights, 7 MiB) and
//! far below what would exhaust a machine; each says why it is where it is.

use std::fmt;

/// One limit: its name in messages, its value, and why it is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub name: &'static str,
    pub value: u64,
    pub why: &'static str,
}

impl Limit {
    /// `Ok` when `got` is within the limit, else a message naming `what`, the value and the limit.
    pub fn check(&self, got: u64, what: impl fmt::Display) -> Result<(), String> {
        if got <= self.value {
            return Ok(());
        }
        Err(format!(
            "{what} is {got}, above resnetc's limit '{}' ({}: {})",
            self.name, self.value, self.why
        ))
    }

    /// The value as a `usize` (every limit fits one on a 64-bit machine; saturates elsewhere).
    pub fn get(&self) -> usize {
        usize::try_from(self.value).unwrap_or(usize::MAX)
    }
}

/// A model file's bytes (protobuf itself stops at 2 GiB).
pub const FILE_BYTES: Limit = Limit {
    name: "file bytes",
    value: 2 << 30,
    why: "protobuf's 2 GiB",
};
/// Nodes and initializers in a graph (an identity chain of millions took minutes to import).
pub const NODES: Limit = Limit {
    name: "nodes",
    value: 100_000,
    why: "ResNet-110 has about 700",
};
/// Inputs of one node (only Concat takes more than five).
pub const NODE_INPUTS: Limit = Limit {
    name: "inputs per node",
    value: 4096,
    why: "CifarResNet's ops take at most five",
};
/// Dimensions of a tensor.
pub const RANK: Limit = Limit {
    name: "rank",
    value: 8,
    why: "CifarResNet's tensors have at most four dimensions",
};
/// Bytes of one tensor stored in a file.
pub const TENSOR_BYTES: Limit = Limit {
    name: "tensor bytes",
    value: 1 << 30,
    why: "ResNet-110's largest weight is 147 kB",
};
/// Bytes of all the weights of a model together.
pub const WEIGHT_BYTES: Limit = Limit {
    name: "weight bytes",
    value: 2 << 30,
    why: "ResNet-110's are 7 MiB",
};
/// Elements of any value the executors compute.
pub const ELEMENTS: Limit = Limit {
    name: "elements per value",
    value: 1 << 31,
    why: "32-bit element indices in the kernels",
};
/// Padding of a convolution or pooling on one side (a pad of 65536 once made a 2 GiB plane).
pub const PADDING: Limit = Limit {
    name: "padding",
    value: 4096,
    why: "CifarResNet pads by 1",
};
/// Images in one `bench` run (3 × 32 × 32 floats each: 805 MB of input at the limit).
pub const BATCH: Limit = Limit {
    name: "batch",
    value: 65_536,
    why: "805 MB of CIFAR input",
};
/// Timed runs of one `bench`.
pub const ITERATIONS: Limit = Limit {
    name: "iterations",
    value: 1_000_000,
    why: "hours for a ResNet-56",
};
/// Threads one session starts (the front door caps requests at the cores first).
pub const THREADS: Limit = Limit {
    name: "threads",
    value: 1024,
    why: "starting 100,000 threads took 20 s",
};

/// Every limit, for documentation and `resnetc inspect`-style listings.
pub const ALL: [Limit; 11] = [
    FILE_BYTES,
    NODES,
    NODE_INPUTS,
    RANK,
    TENSOR_BYTES,
    WEIGHT_BYTES,
    ELEMENTS,
    PADDING,
    BATCH,
    ITERATIONS,
    THREADS,
];

#[cfg(test)]
mod tests {
    #[test]
    fn a_limit_names_itself() {
        assert_eq!(super::NODES.check(100_000, "the graph's nodes"), Ok(()));
        assert_eq!(
            super::NODES.check(100_001, "the graph's nodes").unwrap_err(),
            "the graph's nodes is 100001, above resnetc's limit 'nodes' (100000: ResNet-110 has about 700)"
        );
        let names: std::collections::HashSet<_> = super::ALL.iter().map(|l| l.name).collect();
        assert_eq!(names.len(), super::ALL.len());
    }
}
