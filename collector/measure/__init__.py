"""Speed measured through a real llama-server, from a plan to records.

- `plan`: a plan YAML -> validated RunSpecs.
- `speed_run`: one speed run against a ready server (warmup, depths x prompts x repetitions -> samples).
- `concurrent`: N clients at once.
- `server_run`: one configuration measured end to end, returned as its record (the measurement layer).
- `runner`: a whole plan: every run's record written as it ends, then the plan's KLD section.
"""

__all__ = ["concurrent", "plan", "runner", "server_run", "speed_run"]
