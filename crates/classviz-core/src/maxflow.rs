//! Minimum s–t cuts by maximum flow (Dinic's algorithm: breadth-first levels,
//! then blocking flows by depth-first search). The graph cut of the paper's
//! §3.1 segmentation runs on it; the tests check it against brute force on
//! small random graphs.

use std::collections::VecDeque;

/// A flow network with directed, capacitated edges; each edge is stored with
/// its reverse (residual) edge at the index next to it.
#[derive(Debug, Clone)]
pub struct Network {
    /// Per node, the indices of its outgoing edges.
    adjacency: Vec<Vec<usize>>,
    to: Vec<usize>,
    capacity: Vec<f64>,
}

/// Residual capacities at or below this count as saturated.
const EPSILON: f64 = 1e-12;

impl Network {
    pub fn new(nodes: usize) -> Network {
        Network { adjacency: vec![Vec::new(); nodes], to: Vec::new(), capacity: Vec::new() }
    }

    pub fn nodes(&self) -> usize {
        self.adjacency.len()
    }

    /// An edge `from → to` of `forward` capacity, and `to → from` of `backward`.
    pub fn add_edge(&mut self, from: usize, to: usize, forward: f64, backward: f64) {
        let index = self.to.len();
        self.adjacency[from].push(index);
        self.to.push(to);
        self.capacity.push(forward.max(0.0));
        self.adjacency[to].push(index + 1);
        self.to.push(from);
        self.capacity.push(backward.max(0.0));
    }

    /// The maximum flow from `source` to `sink` (the network keeps the residual
    /// capacities), and the nodes on the source side of a minimum cut.
    pub fn min_cut(&mut self, source: usize, sink: usize) -> (f64, Vec<bool>) {
        let mut flow = 0.0;
        let mut level = vec![0usize; self.nodes()];
        while self.levels(source, sink, &mut level) {
            let mut next = vec![0usize; self.nodes()];
            loop {
                let pushed = self.push(source, sink, f64::INFINITY, &level, &mut next);
                if pushed <= EPSILON {
                    break;
                }
                flow += pushed;
            }
        }
        (flow, self.reachable(source))
    }

    /// Breadth-first levels from the source over unsaturated edges; whether the sink is reached.
    fn levels(&self, source: usize, sink: usize, level: &mut [usize]) -> bool {
        level.iter_mut().for_each(|l| *l = usize::MAX);
        level[source] = 0;
        let mut queue = VecDeque::from([source]);
        while let Some(node) = queue.pop_front() {
            for &edge in &self.adjacency[node] {
                let to = self.to[edge];
                if self.capacity[edge] > EPSILON && level[to] == usize::MAX {
                    level[to] = level[node] + 1;
                    queue.push_back(to);
                }
            }
        }
        level[sink] != usize::MAX
    }

    /// Push up to `limit` along level-increasing paths from `node` (an
    /// iterative depth-first search, so that long paths cannot overflow the stack).
    fn push(
        &mut self,
        source: usize,
        sink: usize,
        limit: f64,
        level: &[usize],
        next: &mut [usize],
    ) -> f64 {
        let mut path: Vec<usize> = Vec::new();
        let mut node = source;
        loop {
            if node == sink {
                let pushed = path.iter().fold(limit, |m, &e| m.min(self.capacity[e]));
                for &edge in &path {
                    self.capacity[edge] -= pushed;
                    self.capacity[edge ^ 1] += pushed;
                }
                return pushed;
            }
            let mut advanced = false;
            while next[node] < self.adjacency[node].len() {
                let edge = self.adjacency[node][next[node]];
                let to = self.to[edge];
                if self.capacity[edge] > EPSILON && level[to] == level[node] + 1 {
                    path.push(edge);
                    node = to;
                    advanced = true;
                    break;
                }
                next[node] += 1;
            }
            if !advanced {
                // A dead end: never try it again in this phase, and step back.
                let Some(edge) = path.pop() else { return 0.0 };
                node = self.to[edge ^ 1];
                next[node] += 1;
            }
        }
    }

    /// The nodes reachable from `source` in the residual network.
    fn reachable(&self, source: usize) -> Vec<bool> {
        let mut seen = vec![false; self.nodes()];
        seen[source] = true;
        let mut stack = vec![source];
        while let Some(node) = stack.pop() {
            for &edge in &self.adjacency[node] {
                let to = self.to[edge];
                if self.capacity[edge] > EPSILON && !seen[to] {
                    seen[to] = true;
                    stack.push(to);
                }
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The smallest cut over every partition with the source on one side and the sink on the other.
    fn brute_force(nodes: usize, edges: &[(usize, usize, f64)], source: usize, sink: usize) -> f64 {
        let mut best = f64::INFINITY;
        for mask in 0u32..(1 << nodes) {
            let side = |n: usize| mask & (1 << n) != 0;
            if !side(source) || side(sink) {
                continue;
            }
            let cut: f64 =
                edges.iter().filter(|(a, b, _)| side(*a) && !side(*b)).map(|e| e.2).sum();
            best = best.min(cut);
        }
        best
    }

    #[test]
    fn max_flow_equals_the_brute_force_minimum_cut_on_random_graphs() {
        let mut rng = Rng::new(11);
        for trial in 0..300 {
            let nodes = 2 + rng.below(9);
            let mut edges = Vec::new();
            for _ in 0..rng.below(nodes * nodes) {
                let (a, b) = (rng.below(nodes), rng.below(nodes));
                if a != b {
                    edges.push((a, b, (rng.unit() * 10.0).round()));
                }
            }
            let (source, sink) = (0, nodes - 1);
            let mut network = Network::new(nodes);
            for &(a, b, c) in &edges {
                network.add_edge(a, b, c, 0.0);
            }
            let (flow, side) = network.min_cut(source, sink);
            let expected = brute_force(nodes, &edges, source, sink);
            assert!((flow - expected).abs() < 1e-9, "trial {trial}: flow {flow} vs cut {expected}");
            assert!(side[source] && !side[sink]);
            let cut: f64 =
                edges.iter().filter(|(a, b, _)| side[*a] && !side[*b]).map(|e| e.2).sum();
            assert!(
                (cut - expected).abs() < 1e-9,
                "trial {trial}: the returned side is a minimum cut"
            );
        }
    }

    #[test]
    fn a_chain_is_cut_at_its_weakest_link() {
        let mut network = Network::new(4);
        network.add_edge(0, 1, 5.0, 5.0);
        network.add_edge(1, 2, 1.5, 1.5);
        network.add_edge(2, 3, 7.0, 7.0);
        let (flow, side) = network.min_cut(0, 3);
        assert_eq!(flow, 1.5);
        assert_eq!(side, vec![true, true, false, false]);
    }
}
