"""TFLite Micro's tensor arena, computed exactly without running TFLite Micro."""

from __future__ import annotations

from perfsage.targets.tflm_planner.arena import ArenaPlan, plan_arena

__all__ = ["ArenaPlan", "plan_arena"]
