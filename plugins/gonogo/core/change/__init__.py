"""Change control: the plan's fingerprint, the installation's change policy, and the
approval and promotion ledgers.
"""
