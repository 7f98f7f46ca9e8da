"""Pure analysis: winner choice, conflicts, the plan model. No IO, no httpx, no textual."""
