"""Peer baselines (anomalib PatchCore and PaDiM) for ``glcf benchmark --peers``; anomalib is imported lazily."""

from __future__ import annotations

from pipelines.peers.jobs import PeerJob, check_peers_installed, glcf_throughput, peer_report_dir, run_peer_job
from pipelines.peers.models import (
    INSTALL_HINT,
    PEERS,
    LayerInfo,
    PeerError,
    PeerResult,
    PeerSpec,
    check_layers,
    fit_and_score,
    parse_peers,
    require_anomalib,
)

__all__ = [
    "INSTALL_HINT",
    "PEERS",
    "LayerInfo",
    "PeerError",
    "PeerJob",
    "PeerResult",
    "PeerSpec",
    "check_layers",
    "check_peers_installed",
    "fit_and_score",
    "glcf_throughput",
    "parse_peers",
    "peer_report_dir",
    "require_anomalib",
    "run_peer_job",
]
