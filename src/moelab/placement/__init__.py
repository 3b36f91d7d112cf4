"""Expert placement: EPLB (the baseline everyone ships), static and dynamic policies, the simulator."""
