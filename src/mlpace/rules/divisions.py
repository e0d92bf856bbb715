"""Divisions, availability categories and scales: which result may claim what.

Divisions are closed and open, in training (every round) and in inference v1.1; published
inference trees of v3.0 on also have a `network` division folder, which mlpace recognises
when it reads them. Availability is spelled per usage: training (rulesets 1.x, the
`submission_status` log key and the system description's `status`;
training_1.1.0/common.yaml) says onprem, cloud, preview, research; inference v1.1 says
available, preview, rdi (`mlpace.rules.inference`, with the rest of the inference rules).

Scale: a mini result runs a scaled-down model on generated data, so it is an open-division
result by construction (DESIGN.md); only the reference scale may claim the closed division.
"""

from __future__ import annotations

from mlpace.errors import MlpaceError

DIVISIONS = ("closed", "open")
# Division folders of published inference trees (v3.0 added `network`).
INFERENCE_DIVISION_FOLDERS = ("closed", "open", "network")

TRAINING_AVAILABILITY = ("onprem", "cloud", "preview", "research")
# Spellings a user may type -> the training `status` value of rulesets 1.x.
AVAILABILITY_SPELLINGS = {
    "onprem": "onprem", "available": "onprem", "on-premise": "onprem",
    "cloud": "cloud", "preview": "preview",
    "research": "research", "rdi": "research",
}

# The category MLCommons groups its published tables by, from any spelling of either vocabulary.
AVAILABILITY_CATEGORY = {"onprem": "available", "on-premise": "available", "available": "available",
                         "cloud": "available", "preview": "preview", "research": "research",
                         "rdi": "research", "research, development, or internal": "research"}
AVAILABILITY_TITLES = {"available": "Available", "preview": "Preview",
                       "research": "Research, development or internal"}

SCALES = ("mini", "reference")
# Scales whose results may be submitted to the closed division.
CLOSED_SCALES = ("reference",)


def default_division(scale: str) -> str:
    """The division a result of this scale is filed under when the user names none."""
    return "closed" if scale in CLOSED_SCALES else "open"


def require_division_allowed(scale: str, division: str | None) -> None:
    """Refuse a closed-division claim for a result that cannot be closed (mini scale)."""
    if division == "closed" and scale not in CLOSED_SCALES:
        raise MlpaceError(f"{scale}-scale results are open division by construction (a scaled-down "
                          "model on generated data); use --division open or --scale reference")
