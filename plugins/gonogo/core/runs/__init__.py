"""A run: its records and what they mean, answers and the decision log, task states,
the status colour, rollback and the outcome, the trigger stamp, gate rules, the rehearsal.
"""
