"""What runs inside Airflow's API server and scheduler: the plugin, the answer middleware
and the run-note listener.
"""
