"""The review app (Textual). Thin: shows the plan, edits it through analysis.decide, runs the engine."""
