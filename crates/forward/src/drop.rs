//! Why a packet was not delivered.

/// Why a packet was not delivered. Decided by the core ([`crate::View::route`])
/// or, for the reasons about queues and budgets, by the connection code that
/// acts on a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// A zero-length frame.
    ZeroLength,
    /// Not an IPv4/IPv6 packet, or a truncated header.
    NotIp,
    /// The IP header's length field disagrees with the frame's length.
    Malformed,
    /// No route for the destination in the namespace's router (or no router).
    NoRoute,
    /// The route's gateway host has no connection.
    NoHost,
    /// The source address does not route back to the sending host.
    SpoofedSource,
    /// A plugin lookup could not take the packet (too many packets held for
    /// the address, or too many lookups running).
    PluginPendingFull,
    /// The receiving connection's queue is over its byte or packet bound (it
    /// does not read fast enough).
    QueueFull,
    /// The receiving host's connections together hold their byte budget.
    HostBudget,
    /// The whole service holds its byte budget.
    ServerBudget,
    /// The receiving connection closed meanwhile.
    Closed,
    /// A packet from another node for a host that is not connected here.
    NotLocal,
    /// Over a traffic limit.
    RateLimited,
    /// For a host on another node that cannot be reached now (no link to
    /// it, or its link's queue is full).
    NodeUnreachable,
}

impl DropReason {
    /// Every reason, in a fixed order (for counters indexed by reason).
    pub const ALL: [DropReason; 14] = [
        DropReason::ZeroLength,
        DropReason::NotIp,
        DropReason::Malformed,
        DropReason::NoRoute,
        DropReason::NoHost,
        DropReason::SpoofedSource,
        DropReason::PluginPendingFull,
        DropReason::QueueFull,
        DropReason::HostBudget,
        DropReason::ServerBudget,
        DropReason::Closed,
        DropReason::NotLocal,
        DropReason::RateLimited,
        DropReason::NodeUnreachable,
    ];

    /// The number of reasons.
    pub const COUNT: usize = DropReason::ALL.len();

    /// A short name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::ZeroLength => "zero_length",
            DropReason::NotIp => "not_ip",
            DropReason::Malformed => "malformed",
            DropReason::NoRoute => "no_route",
            DropReason::NoHost => "no_host",
            DropReason::SpoofedSource => "spoofed_source",
            DropReason::PluginPendingFull => "plugin_pending_full",
            DropReason::QueueFull => "queue_full",
            DropReason::HostBudget => "host_budget",
            DropReason::ServerBudget => "server_budget",
            DropReason::Closed => "closed",
            DropReason::NotLocal => "not_local",
            DropReason::RateLimited => "rate_limited",
            DropReason::NodeUnreachable => "node_unreachable",
        }
    }

    /// This reason's index in [`DropReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_follow_all() {
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i, "{}", reason.name());
        }
    }
}
