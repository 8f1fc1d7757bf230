"""Ad-traffic simulator: N editors, M demand partners, labeled incidents of every problem type.

    from connectors.simulator import Scenario, default_scenario, generate
    summary = generate(default_scenario(), "out/sim")      # archive + labels.jsonl + scenario.json

Command line: ``python -m connectors.simulator --editors 50 --partners 8 --hours 24 --seed 7 --out DIR``.
"""
from .generator import Simulation, generate, plan
from .scenario import (EDITOR_METRICS, PARTNER_METRICS, PROBLEM_TYPES, Scenario, default_scenario)

__all__ = ["EDITOR_METRICS", "PARTNER_METRICS", "PROBLEM_TYPES", "Scenario", "Simulation", "default_scenario",
           "generate", "plan"]
