//! The audit's outcome: counts, proof failures, the network parameters
//! applied, the per-node verdict table, and what the audited node's result
//! means for the exit code.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use super::analysis::{Analysis, NodeFinding, Verdict};
use super::network::NetworkView;
use super::proofs::ProofFailure;
use crate::role::NodeRole;
use crate::sphinx::NodeId;
use crate::vrf::Epoch;

/// What became of the packets sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleCounts {
    /// Packets sent.
    pub sent: usize,
    /// Packets delivered back to the auditor.
    pub received: usize,
    /// Delivered, but an epoch boundary fell within their transit.
    pub straddled_epoch: usize,
    /// Delivered, but a hop's proofs for the epoch were missing or invalid.
    pub unverifiable: usize,
    /// Analysed.
    pub analysed: usize,
}

/// What an audit concluded about the audited node, most serious first.
/// Each has its own exit code, so scripts can tell an accusation from an
/// audit that could not be carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditOutcome {
    /// The node mixes as its VRF proofs require, with the network's
    /// parameters, and every proof served verified. Exit 0.
    Pass,
    /// A node served proofs that do not verify. Exit 1.
    InvalidProofs,
    /// The node releases packets sooner than its proofs require. Exit 1.
    NotMixing,
    /// The node publishes other network parameters than the network's.
    /// Exit 4.
    Misconfigured,
    /// No audit packet came back: nothing could be judged. Exit 3.
    NoSamples,
    /// Too few or too noisy samples to judge. Exit 3.
    Inconclusive,
}

impl AuditOutcome {
    /// The exit code of `betanet audit` for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            AuditOutcome::Pass => 0,
            AuditOutcome::InvalidProofs | AuditOutcome::NotMixing => 1,
            AuditOutcome::NoSamples | AuditOutcome::Inconclusive => 3,
            AuditOutcome::Misconfigured => 4,
        }
    }
}

/// The result of an audit.
#[derive(Clone, Debug)]
pub struct AuditReport {
    /// The audited node.
    pub target: NodeId,
    /// Where the audit packets were to come back.
    pub listen: SocketAddr,
    /// The role of every node in the table.
    pub roles: BTreeMap<NodeId, NodeRole>,
    /// What became of the packets.
    pub counts: SampleCounts,
    /// The VRF epochs the analysed samples were mixed in.
    pub epochs: Vec<Epoch>,
    /// Nodes whose proofs could not be fetched (kept off the paths) or did
    /// not verify (the audit fails).
    pub proof_failures: Vec<ProofFailure>,
    /// The fit and the per-node findings.
    pub analysis: Analysis,
    /// The network parameters applied, and who departs from them.
    pub network: NetworkView,
    /// The tolerance, ms.
    pub tolerance_ms: f64,
}

impl AuditReport {
    /// The audited node's finding, if any sample was analysed.
    pub fn target_finding(&self) -> Option<&NodeFinding> {
        self.analysis.finding(&self.target)
    }

    /// The verdict on the audited node: `NOT MIXING` if it releases packets
    /// early even by its own published settings; otherwise `MISCONFIGURED`
    /// if those differ from the network's (with or without samples);
    /// otherwise the timing verdict, inconclusive without samples.
    pub fn target_verdict(&self) -> Verdict {
        let timing = self
            .target_finding()
            .map_or(Verdict::Inconclusive, |f| f.verdict);
        if timing != Verdict::NotMixing && self.network.misconfigured.contains_key(&self.target) {
            return Verdict::Misconfigured;
        }
        timing
    }

    /// The proofs that were served but are wrong (see
    /// [`ProofProblem::is_invalid`](super::ProofProblem::is_invalid)).
    pub fn invalid_proofs(&self) -> impl Iterator<Item = &ProofFailure> {
        self.proof_failures
            .iter()
            .filter(|f| f.problem.is_invalid())
    }

    /// What the audit concluded (see [`AuditOutcome`]).
    pub fn outcome(&self) -> AuditOutcome {
        if self.invalid_proofs().next().is_some() {
            return AuditOutcome::InvalidProofs;
        }
        match self.target_verdict() {
            Verdict::Ok => AuditOutcome::Pass,
            Verdict::NotMixing => AuditOutcome::NotMixing,
            Verdict::Misconfigured => AuditOutcome::Misconfigured,
            Verdict::Inconclusive if self.counts.received == 0 => AuditOutcome::NoSamples,
            Verdict::Inconclusive => AuditOutcome::Inconclusive,
        }
    }

    /// The audited node mixes as its proofs require, and every proof
    /// served verified.
    pub fn passed(&self) -> bool {
        self.outcome() == AuditOutcome::Pass
    }

    /// One line: why the audit failed, or that it passed.
    pub fn summary(&self) -> String {
        let target = self.target;
        let mut problems = Vec::new();
        let invalid: Vec<&ProofFailure> = self.invalid_proofs().collect();
        if let Some(failure) = invalid.first() {
            problems.push(match invalid.len() - 1 {
                0 => failure.to_string(),
                more => format!("{failure} (and {more} more proof failure(s))"),
            });
        }
        match (self.target_verdict(), self.target_finding()) {
            (Verdict::Ok, _) => {}
            (Verdict::Misconfigured, _) => problems.push(format!(
                "node {target} is MISCONFIGURED: it publishes other network parameters than \
                 the network's ({}); its operator must use the network's settings",
                self.network
                    .misconfigured
                    .get(&target)
                    .map_or_else(String::new, |d| d.join(", "))
            )),
            (Verdict::NotMixing, Some(f)) => problems.push(format!(
                "node {target} is NOT MIXING: it holds {:.0}% of its required delay, \
                 releasing packets {:.1} ms early on average (tolerance {:.1} ms)",
                f.held * 100.0,
                f.mean_shortfall_ms,
                self.tolerance_ms
            )),
            (_, _) if self.counts.sent == 0 => problems.push(format!(
                "no verdict on node {target}: no audit packet could be sent{}",
                self.proof_failures
                    .iter()
                    .find(|f| f.node == target)
                    .map_or_else(String::new, |f| format!(
                        " (its {}; is the node running, its HTTP port reachable?)",
                        f.problem
                    ))
            )),
            (_, _) if self.counts.received == 0 => problems.push(format!(
                "no verdict on node {target}: none of the {} audit packet(s) came back. \
                 Check that this machine reaches every node's udp_addr, that the nodes are \
                 running (their /ready), and that every exit's exit.allow includes {} \
                 (the --listen address)",
                self.counts.sent, self.listen
            )),
            (_, Some(f)) => problems.push(format!(
                "node {target}: INCONCLUSIVE after {} sample(s); send more samples",
                f.samples
            )),
            (_, None) => {
                let why = self
                    .proof_failures
                    .iter()
                    .find(|f| f.node == target && !f.problem.is_invalid())
                    .map_or_else(String::new, |f| format!(": {}", f.problem));
                problems.push(format!(
                    "node {target}: no sample could be analysed ({} sent, {} delivered){why}",
                    self.counts.sent, self.counts.received
                ));
            }
        }
        if problems.is_empty() {
            format!("PASS: node {target} mixes as its VRF proofs require")
        } else {
            format!("FAIL: {}", problems.join("; "))
        }
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        let role = self.roles.get(&self.target).map_or("?", |r| r.as_str());
        let epochs: Vec<String> = self.epochs.iter().map(Epoch::to_string).collect();
        writeln!(f, "audit of node {} ({role})", self.target)?;
        writeln!(
            f,
            "network parameters: {}; epoch(s) {}",
            self.network.network,
            if epochs.is_empty() {
                "-".to_owned()
            } else {
                epochs.join(", ")
            }
        )?;
        for warning in &self.network.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        for (node, differences) in &self.network.misconfigured {
            writeln!(
                f,
                "MISCONFIGURED: node {node} publishes {} (node's ≠ network's)",
                differences.join(", ")
            )?;
        }
        writeln!(
            f,
            "samples: {} sent, {} delivered, {} across an epoch boundary, {} unverifiable, {} analysed",
            c.sent, c.received, c.straddled_epoch, c.unverifiable, c.analysed
        )?;
        let a = &self.analysis;
        match (a.baseline_ms, a.floor_ms) {
            (Some(b), Some(floor)) => writeln!(
                f,
                "baseline {b:.2} ms (fitted transit at zero delay), floor {floor:.2} ms, \
                 residual sd {:.2} ms, {} late outlier(s) left out of the fit; \
                 {} sample(s) early by more than {:.1} ms",
                a.residual_sd_ms, a.trimmed, a.early, self.tolerance_ms
            )?,
            _ => writeln!(f, "baseline: not enough samples to fit")?,
        }
        writeln!(f)?;
        writeln!(
            f,
            "  {:<32}  {:<6}  {:>7}  {:>13}  {:>7}  {:>7}  {:>10}  verdict",
            "node", "role", "samples", "held", "short", "within", "worst (ms)"
        )?;
        let mut rows: Vec<&NodeFinding> = a.nodes.iter().collect();
        rows.sort_by_key(|n| (self.roles.get(&n.node).map(|r| r.layer()), n.node));
        for n in rows {
            let mark = if n.node == self.target { '*' } else { ' ' };
            let role = self.roles.get(&n.node).map_or("?", |r| r.as_str());
            writeln!(
                f,
                "{mark} {:<32}  {role:<6}  {:>7}  {:>6.1}%±{:<5.1}  {:>7.2}  {:>6.1}%  {:>10.2}  {}",
                n.node.to_string(),
                n.samples,
                n.held * 100.0,
                n.held_stderr * 100.0,
                n.mean_shortfall_ms,
                n.within_tolerance * 100.0,
                n.worst_deviation_ms,
                n.verdict
            )?;
        }
        for failure in &self.proof_failures {
            if failure.problem.is_invalid() {
                writeln!(f, "PROOF FAILURE: {failure}")?;
            } else {
                writeln!(f, "warning: {failure} (kept off the audit paths)")?;
            }
        }
        writeln!(f)?;
        writeln!(f, "{}", self.summary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::proofs::ProofProblem;
    use crate::topology::NetworkParams;
    use crate::vrf::VrfError;

    fn report(verdict: Verdict) -> AuditReport {
        let target = NodeId::from_bytes([7; 16]);
        AuditReport {
            target,
            listen: "127.0.0.1:7000".parse().unwrap(),
            roles: [(target, NodeRole::Middle)].into(),
            counts: SampleCounts {
                sent: 20,
                received: 20,
                analysed: 20,
                ..SampleCounts::default()
            },
            epochs: vec![Epoch(5)],
            proof_failures: Vec::new(),
            analysis: Analysis {
                baseline_ms: Some(0.4),
                floor_ms: Some(0.3),
                residual_sd_ms: 0.2,
                samples: 20,
                trimmed: 1,
                early: 0,
                nodes: vec![NodeFinding {
                    node: target,
                    samples: 20,
                    held: 0.02,
                    held_stderr: 0.01,
                    mean_shortfall_ms: 19.6,
                    within_tolerance: 0.1,
                    worst_deviation_ms: -80.0,
                    verdict,
                }],
            },
            network: NetworkView {
                network: NetworkParams::default(),
                published: [(target, Some(NetworkParams::default()))].into(),
                misconfigured: BTreeMap::new(),
                warnings: Vec::new(),
            },
            tolerance_ms: 2.0,
        }
    }

    #[test]
    fn passes_only_with_an_ok_target_and_good_proofs() {
        let ok = report(Verdict::Ok);
        assert!(ok.passed());
        assert!(ok.summary().starts_with("PASS"));
        let text = ok.to_string();
        assert!(text.contains("* 07070707"), "{text}");
        assert!(text.contains("middle"), "{text}");

        let cheat = report(Verdict::NotMixing);
        assert!(!cheat.passed());
        assert!(
            cheat.summary().contains("NOT MIXING"),
            "{}",
            cheat.summary()
        );

        let mut bad_proof = report(Verdict::Ok);
        bad_proof.proof_failures.push(ProofFailure {
            node: NodeId::from_bytes([8; 16]),
            epoch: Some(Epoch(5)),
            problem: ProofProblem::Invalid(VrfError::InvalidProof),
        });
        assert!(!bad_proof.passed());
        let summary = bad_proof.summary();
        assert!(
            summary.contains("08080808") && summary.contains("epoch 5"),
            "{summary}"
        );

        // A node that serves no proofs is left out, not a failure.
        let mut unavailable = report(Verdict::Ok);
        unavailable.proof_failures.push(ProofFailure {
            node: NodeId::from_bytes([8; 16]),
            epoch: None,
            problem: ProofProblem::Unavailable("connection refused".into()),
        });
        assert!(unavailable.passed());
        assert!(unavailable.to_string().contains("warning: node 0808"));

        assert!(!report(Verdict::Inconclusive).passed());
        let mut nothing = report(Verdict::Ok);
        nothing.analysis.nodes.clear();
        nothing.proof_failures = unavailable.proof_failures.clone();
        nothing.proof_failures[0].node = nothing.target;
        assert!(!nothing.passed());
        let summary = nothing.summary();
        assert!(summary.contains("connection refused"), "{summary}");
        assert_eq!(nothing.outcome(), AuditOutcome::Inconclusive);
    }

    #[test]
    fn each_outcome_has_its_exit_code_and_advice() {
        assert_eq!(report(Verdict::Ok).outcome().exit_code(), 0);
        assert_eq!(report(Verdict::NotMixing).outcome().exit_code(), 1);
        assert_eq!(report(Verdict::Inconclusive).outcome().exit_code(), 3);

        let mut unsendable = report(Verdict::Ok);
        unsendable.analysis.nodes.clear();
        unsendable.counts = SampleCounts::default();
        unsendable.proof_failures.push(ProofFailure {
            node: unsendable.target,
            epoch: None,
            problem: ProofProblem::Unavailable("connection refused".into()),
        });
        assert_eq!(unsendable.outcome(), AuditOutcome::NoSamples);
        let summary = unsendable.summary();
        assert!(
            summary.contains("no audit packet could be sent")
                && summary.contains("connection refused"),
            "{summary}"
        );

        let mut silent = report(Verdict::Ok);
        silent.analysis.nodes.clear();
        silent.counts.received = 0;
        assert_eq!(silent.outcome(), AuditOutcome::NoSamples);
        assert_eq!(silent.outcome().exit_code(), 3);
        let summary = silent.summary();
        assert!(
            summary.contains("exit.allow") && summary.contains("127.0.0.1:7000"),
            "{summary}"
        );

        // An honest node on other settings is not accused of not mixing...
        let mut odd = report(Verdict::Misconfigured);
        odd.network
            .misconfigured
            .insert(odd.target, vec!["mean_delay_us 50000 ≠ 20000".into()]);
        assert_eq!(odd.outcome(), AuditOutcome::Misconfigured);
        assert_eq!(odd.outcome().exit_code(), 4);
        assert!(odd.summary().contains("MISCONFIGURED"), "{}", odd.summary());
        assert!(!odd.summary().contains("NOT MIXING"), "{}", odd.summary());
        assert!(odd.to_string().contains("mean_delay_us 50000"));
        // ... and without samples it is still misconfigured, not silent.
        odd.analysis.nodes.clear();
        odd.counts.received = 0;
        assert_eq!(odd.outcome(), AuditOutcome::Misconfigured);

        // A node that skips its delays even by its own settings is NOT MIXING
        // whatever it publishes.
        let mut both = report(Verdict::NotMixing);
        both.network
            .misconfigured
            .insert(both.target, vec!["mean_delay_us 50000 ≠ 20000".into()]);
        assert_eq!(both.outcome(), AuditOutcome::NotMixing);
    }
}
